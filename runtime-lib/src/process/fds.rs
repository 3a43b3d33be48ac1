//! Descriptor hygiene for the init and `exec`'d processes (CVE-2024-21626 class).
//!
//! The child is a fork of the runtime: it holds every descriptor its caller left open and every one
//! the runtime had at the clone. Any directory among them is a way out of the container for a path
//! like `/proc/self/fd/7/../../..` (as `process.cwd`, as the executable, or in any path the init
//! itself follows), and a caller's descriptor that no `--preserve-fds` names must not reach the
//! container at all. So, before the child follows a single path for the container:
//! - the caller's descriptors (the ones without FD_CLOEXEC: the runtime opens all of its own
//!   O_CLOEXEC) above the preserved range are closed;
//! - directories above the preserved range are closed, whoever opened them (the child never uses
//!   one it did not open itself later);
//! - what is left (the runtime's channel ends, fifos, sockets, log) is close-on-exec.

use std::os::fd::{BorrowedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::stat::{fstat, SFlag};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::proc_handle::ProcFs;

/// Closes the caller's descriptors and every directory from `first` up, except `keep` (`None`s
/// skipped), and marks the rest close-on-exec. Reads the fd table from the /proc of this
/// process's root: run it before joining the container's mount namespace (or pivoting into its
/// root), whose /proc the container controls.
pub(crate) fn sanitize(first: RawFd, keep: &[Option<BorrowedFd<'_>>]) -> InitResult<()> {
    let proc = ProcFs::open().map_err(|e| e.init(InitStep::Sync, "/proc"))?;
    let keep: Vec<BorrowedFd<'_>> = keep.iter().flatten().copied().collect();
    sanitize_with(&proc, first, &keep)
}

fn sanitize_with(proc: &ProcFs, first: RawFd, keep: &[BorrowedFd<'_>]) -> InitResult<()> {
    use std::os::fd::AsRawFd;
    let mut keep: Vec<RawFd> = keep.iter().map(|f| f.as_raw_fd()).collect();
    keep.push(proc.as_fd().as_raw_fd());
    let fds = open_fds(proc).map_err(|e| fd_failure("list /proc/self/fd", e))?;
    for fd in fds
        .into_iter()
        .filter(|&fd| fd >= first && !keep.contains(&fd))
    {
        // SAFETY: only inspected; nothing here takes ownership of it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let flags = match fcntl(borrowed, FcntlArg::F_GETFD) {
            Ok(flags) => FdFlag::from_bits_truncate(flags),
            // The directory fd of the walk itself, closed since.
            Err(Errno::EBADF) => continue,
            Err(e) => return Err(fd_failure(&format!("fcntl fd {fd}"), e)),
        };
        let is_dir = fstat(borrowed)
            .map(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits())
            .map_err(|e| fd_failure(&format!("fstat fd {fd}"), e))?;
        if !flags.contains(FdFlag::FD_CLOEXEC) || is_dir {
            // SAFETY: a caller's descriptor (nothing in this process owns it) or a directory the
            // child never uses; the child leaves through execve or _exit, so no owner of it in the
            // runtime's frames ever closes it again.
            unsafe { libc::close(fd) };
        }
    }
    mark_cloexec_from(Some(proc), first)
}

/// Marks every descriptor from `first` up close-on-exec: close_range(CLOSE_RANGE_CLOEXEC), or
/// where it is missing (ENOSYS before Linux 5.9, EINVAL for the flag on 5.9-5.10) or denied (a
/// seccomp profile, EPERM) the same one fd at a time from `proc`'s /proc/self/fd.
/// `proc` is opened (the /proc of this process's root) only if the fallback needs it.
pub(crate) fn mark_cloexec_from(proc: Option<&ProcFs>, first: RawFd) -> InitResult<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; it takes no pointers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match Errno::result(ret) {
        Ok(_) => return Ok(()),
        Err(Errno::ENOSYS | Errno::EINVAL | Errno::EPERM | Errno::EACCES) => {}
        Err(e) => return Err(fd_failure("close_range", e)),
    }
    let opened;
    let proc = match proc {
        Some(proc) => proc,
        None => {
            opened = ProcFs::open().map_err(|e| e.init(InitStep::Sync, "/proc"))?;
            &opened
        }
    };
    let fds = open_fds(proc).map_err(|e| fd_failure("list /proc/self/fd", e))?;
    for fd in fds.into_iter().filter(|&fd| fd >= first) {
        // SAFETY: only its flags change; nothing takes ownership of it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(fd_failure(&format!("fcntl fd {fd}"), e)),
        }
    }
    Ok(())
}

/// The numbers in `<proc>/self/fd`; the directory's own fd is closed before this returns.
fn open_fds(proc: &ProcFs) -> nix::Result<Vec<RawFd>> {
    let fd = proc
        .open_file(
            Path::new("self/fd"),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            true,
        )
        .map_err(|e| e.errno())?;
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|s| s.parse::<RawFd>().ok())
        {
            out.push(n);
        }
    }
    Ok(out)
}

fn fd_failure(what: &str, e: Errno) -> InitFailure {
    InitFailure::sys(InitStep::Sync, "file descriptors", e).detail(what.to_string())
}

/// After `chdir(process.cwd)`: the working directory must be reachable from the container's root.
/// A directory outside it (a leaked descriptor's `/proc/self/fd/N`) has no path from `/`: the
/// kernel's getcwd then answers with "(unreachable)" (or glibc turns that into ENOENT).
pub(crate) fn check_cwd_inside_root(cwd: &Path) -> InitResult<()> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let outside = || {
        InitFailure::new(InitStep::Cwd)
            .subject(cwd.display())
            .detail("the working directory is outside the container's root")
    };
    match Errno::result(ret) {
        Ok(_) => {}
        Err(Errno::ENOENT) => return Err(outside()),
        Err(e) => return Err(InitFailure::sys(InitStep::Cwd, cwd.display(), e).detail("getcwd")),
    }
    if buf.first() != Some(&b'/') {
        return Err(outside());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::fd::{AsFd, AsRawFd};

    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};

    use super::*;
    use crate::process::steps::testing::in_child;

    /// A filter that answers close_range with `errno` and allows everything else.
    fn deny_close_range(errno: u32) -> Result<(), String> {
        let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
        let rules = BTreeMap::from([(libc::SYS_close_range, vec![])]);
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            arch,
        )
        .map_err(|e| e.to_string())?;
        let program: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())
    }

    #[test]
    fn cloexec_falls_back_to_the_fd_walk_when_close_range_is_denied() {
        for errno in [libc::EPERM, libc::ENOSYS] {
            in_child(|| {
                let fd = nix::fcntl::open(
                    "/dev/null",
                    nix::fcntl::OFlag::O_RDONLY,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| e.to_string())?;
                deny_close_range(errno as u32)?;
                // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
                let r = unsafe {
                    libc::syscall(libc::SYS_close_range, 1000, 1001, libc::CLOSE_RANGE_CLOEXEC)
                };
                if r != -1 {
                    return Err("the filter did not deny close_range".into());
                }
                mark_cloexec_from(None, fd.as_raw_fd()).map_err(|e| e.to_string())?;
                let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFD).map_err(|e| e.to_string())?;
                if !FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC) {
                    return Err(format!(
                        "errno {errno}: fd {} not close-on-exec",
                        fd.as_raw_fd()
                    ));
                }
                Ok(())
            })
            .unwrap();
        }
    }

    #[test]
    fn sanitize_closes_callers_fds_and_directories_keeps_the_rest() {
        in_child(|| {
            let open = |p: &str, flags| {
                nix::fcntl::open(p, flags, nix::sys::stat::Mode::empty()).map_err(|e| e.to_string())
            };
            use nix::fcntl::OFlag;
            let leaked = open("/dev/null", OFlag::O_RDONLY)?;
            let dir = open("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)?;
            let kept_dir = open("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            let own = open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC)?;
            let first = leaked.as_raw_fd().min(dir.as_raw_fd());
            sanitize(first, &[Some(kept_dir.as_fd())]).map_err(|e| e.to_string())?;
            let state = |fd: &std::os::fd::OwnedFd| fcntl(fd.as_fd(), FcntlArg::F_GETFD);
            if state(&leaked) != Err(Errno::EBADF) || state(&dir) != Err(Errno::EBADF) {
                return Err("a caller's fd or a directory survived".into());
            }
            if state(&own).is_err() || state(&kept_dir).is_err() {
                return Err("the runtime's own or a kept fd was closed".into());
            }
            // The child leaves through _exit: the closed ones are never closed again.
            std::mem::forget((leaked, dir));
            Ok(())
        })
        .unwrap();
    }
}
