//! The seam between the init sequence and the kernel.
//!
//! The init sequence (`process::init`), `exec`'s sequence (`process::exec`) and `rootfs` change the
//! process and the kernel through [`Syscall`] (but for what is listed last), so unit tests can run the whole sequence against
//! a recorder and assert its order and error handling without privileges. What they do besides is
//! only looked at (stat, open O_PATH, /proc reads) or made inside the rootfs directory they are
//! given. [`LinuxSyscall`] is the real thing: each method is one system call, no policy, except the
//! few named steps below whose calls always go together (the descriptor sweeps, the capability
//! sets, the seccomp load), which keep their policy in their own modules.
//!
//! Not yet through it, each a no-op unless the config asks for it (see `process::init`): network
//! devices, the console, the hooks.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::LinuxCapabilities;

use nix::sched::CpuSet;

use crate::error::InitResult;
use crate::proc_handle::{ProcError, ProcFs};
use crate::process::fds;
use crate::process::steps::capabilities;
use crate::process::steps::process_attrs::SchedAttr;
use crate::seccomp::Filter;

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    fn setdomainname(&self, name: &str) -> nix::Result<()>;
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()>;
    fn setresgid(&self, gid: Gid) -> nix::Result<()>;
    fn setresuid(&self, uid: Uid) -> nix::Result<()>;
    fn umask(&self, mask: Mode);
    /// Writes a procfs control file (sysctl, oom_score_adj), `path` being under `/proc`: through
    /// a verified procfs handle, never created, never through a symlink or another filesystem.
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), ProcError>;
    /// mount_setattr(2) on `target` (AT_RECURSIVE when `recursive`): sets `attr_set` and clears
    /// `attr_clr` (`MOUNT_ATTR_*`) on the mount, or on the whole tree below it.
    fn mount_setattr(
        &self,
        target: &Path,
        recursive: bool,
        attr_set: u64,
        attr_clr: u64,
    ) -> nix::Result<()>;
    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()>;
    /// fchmodat(2) of `name` in `dir`, following a symlink (the node was just made there).
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()>;
    /// fchownat(2) of `name` in `dir`, AT_SYMLINK_NOFOLLOW.
    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: Uid, gid: Gid) -> nix::Result<()>;
    /// fchown(2) to `uid`, the group left as it is.
    fn fchown(&self, fd: BorrowedFd<'_>, uid: Uid) -> nix::Result<()>;
    fn setsid(&self) -> nix::Result<()>;
    /// prctl(PR_SET_PDEATHSIG).
    fn set_pdeathsig(&self, sig: Option<Signal>) -> nix::Result<()>;
    /// prctl(PR_SET_DUMPABLE).
    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()>;
    /// prctl(PR_SET_NO_NEW_PRIVS).
    fn set_no_new_privs(&self) -> nix::Result<()>;
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()>;
    /// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name).
    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()>;
    /// Every signal back to its default action, none blocked (rt_sigaction, rt_sigprocmask).
    fn reset_signals(&self);
    /// execve(2); returns only its failure.
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> nix::Error;
    /// The step `fds::sanitize`: closes the caller's descriptors from `first` up but `keep`.
    fn sanitize_fds(&self, first: RawFd, keep: &[Option<BorrowedFd<'_>>]) -> InitResult<()>;
    /// Writes `0` to `tasks`, a v1 cgroup's `tasks` file: this thread (the whole process, which
    /// has no other) moves into that cgroup (see `cgroups::SelfJoin`).
    fn join_cgroup(&self, tasks: BorrowedFd<'_>) -> nix::Result<()>;
    /// The step `fds::mark_cloexec_from`: every descriptor from `first` up close-on-exec.
    fn mark_cloexec_from(&self, first: RawFd) -> InitResult<()>;
    /// The step `capabilities::prepare`: the bounding set shrunk, keepcaps set.
    fn drop_bounding_set(
        &self,
        caps: Option<&LinuxCapabilities>,
    ) -> InitResult<capabilities::Prepared>;
    /// The step `capabilities::apply`: the effective, permitted, inheritable and ambient sets.
    fn apply_capabilities(&self, prepared: &capabilities::Prepared) -> InitResult<()>;
    /// The step `seccomp::install`: loads the filter, returns its notify listener if any.
    fn load_seccomp(&self, filter: &Filter) -> InitResult<Option<OwnedFd>>;
    /// sched_setattr(2) on this thread.
    fn sched_setattr(&self, attr: &SchedAttr) -> nix::Result<()>;
    /// sched_setaffinity(2) on this thread.
    fn sched_setaffinity(&self, set: &CpuSet) -> nix::Result<()>;
    /// ioprio_set(2) of this process (IOPRIO_WHO_PROCESS, 0).
    fn ioprio_set(&self, value: libc::c_int) -> nix::Result<()>;
    /// set_mempolicy(2) with `nodes` as its node mask (none when empty).
    fn set_mempolicy(&self, mode: libc::c_int, nodes: &[libc::c_ulong]) -> nix::Result<()>;
    /// personality(2).
    fn personality(&self, persona: libc::c_ulong) -> nix::Result<()>;
}

/// The real kernel.
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }
    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }
    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev)
    }
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, link)
    }
    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }
    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the kernel
        // copies them and does not need a terminating NUL.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()> {
        nix::sched::setns(fd, nstype)
    }
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
        nix::unistd::setgroups(gids)
    }
    fn setresgid(&self, gid: Gid) -> nix::Result<()> {
        nix::unistd::setresgid(gid, gid, gid)
    }
    fn setresuid(&self, uid: Uid) -> nix::Result<()> {
        nix::unistd::setresuid(uid, uid, uid)
    }
    fn umask(&self, mask: Mode) {
        nix::sys::stat::umask(mask);
    }
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), ProcError> {
        let rel = path
            .strip_prefix("/proc")
            .map_err(|_| ProcError::Sys(nix::errno::Errno::EXDEV))?;
        ProcFs::open()?.write(rel, data)
    }
    fn mount_setattr(
        &self,
        target: &Path,
        recursive: bool,
        attr_set: u64,
        attr_clr: u64,
    ) -> nix::Result<()> {
        use nix::NixPath;
        /// linux/mount.h `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set,
            attr_clr,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
        let r = target.with_nix_path(|path| {
            // SAFETY: `path` is NUL-terminated and `attr` is a live `struct mount_attr` of the size
            // passed; the kernel only reads both during the call.
            unsafe {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags as libc::c_uint,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                )
            }
        })?;
        nix::errno::Errno::result(r).map(drop)
    }
    fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
        nix::unistd::fchdir(dir)
    }
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()> {
        use nix::sys::stat::FchmodatFlags;
        nix::sys::stat::fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink)
    }
    fn fchownat(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: Uid, gid: Gid) -> nix::Result<()> {
        use nix::fcntl::AtFlags;
        nix::unistd::fchownat(
            dir,
            name,
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }
    fn fchown(&self, fd: BorrowedFd<'_>, uid: Uid) -> nix::Result<()> {
        nix::unistd::fchown(fd, Some(uid), None)
    }
    fn setsid(&self) -> nix::Result<()> {
        nix::unistd::setsid().map(drop)
    }
    fn set_pdeathsig(&self, sig: Option<Signal>) -> nix::Result<()> {
        nix::sys::prctl::set_pdeathsig(sig)
    }
    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
        nix::sys::prctl::set_dumpable(dumpable)
    }
    fn set_no_new_privs(&self) -> nix::Result<()> {
        nix::sys::prctl::set_no_new_privs()
    }
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        nix::sys::resource::setrlimit(resource, soft, hard)
    }
    fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
        // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads one NUL-terminated string that outlives the
        // call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                libc::KEYCTL_JOIN_SESSION_KEYRING,
                name.as_ptr(),
            )
        };
        nix::errno::Errno::result(ret).map(drop)
    }
    fn reset_signals(&self) {
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: SIG_DFL installs no handler code; invalid numbers only return an error.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        );
    }
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> nix::Error {
        match nix::unistd::execve(path, argv, envp) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }
    fn sanitize_fds(&self, first: RawFd, keep: &[Option<BorrowedFd<'_>>]) -> InitResult<()> {
        fds::sanitize(first, keep)
    }
    fn join_cgroup(&self, tasks: BorrowedFd<'_>) -> nix::Result<()> {
        nix::unistd::write(tasks, b"0").map(drop)
    }
    fn mark_cloexec_from(&self, first: RawFd) -> InitResult<()> {
        fds::mark_cloexec_from(None, first)
    }
    fn drop_bounding_set(
        &self,
        caps: Option<&LinuxCapabilities>,
    ) -> InitResult<capabilities::Prepared> {
        capabilities::prepare(caps)
    }
    fn apply_capabilities(&self, prepared: &capabilities::Prepared) -> InitResult<()> {
        capabilities::apply(prepared)
    }
    fn load_seccomp(&self, filter: &Filter) -> InitResult<Option<OwnedFd>> {
        crate::seccomp::install(filter)
    }
    fn sched_setattr(&self, attr: &SchedAttr) -> nix::Result<()> {
        // SAFETY: sched_setattr(pid 0 = this thread, attr, flags 0) only reads `attr`, which is a
        // live repr(C) sched_attr whose `size` field says how much of it the kernel may read.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn sched_setaffinity(&self, set: &CpuSet) -> nix::Result<()> {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)
    }
    fn ioprio_set(&self, value: libc::c_int) -> nix::Result<()> {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        // SAFETY: ioprio_set takes only integers.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn set_mempolicy(&self, mode: libc::c_int, nodes: &[libc::c_ulong]) -> nix::Result<()> {
        // The kernel reads maxnode - 1 bits (a historical off-by-one every caller compensates
        // for).
        let maxnode = (nodes.len() * libc::c_ulong::BITS as usize + 1) as libc::c_ulong;
        let ptr = if nodes.is_empty() {
            std::ptr::null()
        } else {
            nodes.as_ptr()
        };
        // SAFETY: `ptr` is null or points to `nodes`, which holds at least maxnode - 1 bits and
        // outlives the call; the kernel only reads it.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn personality(&self, persona: libc::c_ulong) -> nix::Result<()> {
        // SAFETY: personality takes an integer and changes only this process's execution domain.
        let r = unsafe { libc::personality(persona) };
        nix::errno::Errno::result(r).map(drop)
    }
}

/// A `Syscall` that records each call and fails the ones a test picks, so a sequence's order and
/// its handling of each failure can be checked without privileges or side effects.
#[cfg(test)]
pub(crate) mod recorder {
    use std::cell::RefCell;
    use std::ffi::{CStr, CString, OsStr};
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::path::Path;

    use nix::errno::Errno;
    use nix::mount::{MntFlags, MsFlags};
    use nix::sched::CloneFlags;
    use nix::sys::resource::Resource;
    use nix::sys::signal::Signal;
    use nix::sys::stat::{Mode, SFlag};
    use nix::unistd::{Gid, Uid};
    use oci_spec::runtime::LinuxCapabilities;

    use super::Syscall;
    use crate::error::{InitFailure, InitResult, InitStep};
    use crate::process::steps::capabilities;
    use crate::seccomp::Filter;

    #[derive(Default)]
    pub struct Recorder {
        pub calls: RefCell<Vec<String>>,
        /// Calls whose text starts with one of these fail with the errno.
        pub fail: Vec<(&'static str, Errno)>,
    }

    impl Recorder {
        pub fn failing(fail: Vec<(&'static str, Errno)>) -> Recorder {
            Recorder {
                fail,
                ..Recorder::default()
            }
        }

        fn call(&self, text: String) -> nix::Result<()> {
            let failed = self.fail.iter().find(|(p, _)| text.starts_with(p));
            self.calls.borrow_mut().push(text);
            match failed {
                Some((_, e)) => Err(*e),
                None => Ok(()),
            }
        }

        /// A named step: fails as the module that does it for real would name the failure.
        fn step(&self, text: String, step: InitStep) -> InitResult<()> {
            self.call(text)
                .map_err(|e| InitFailure::sys(step, "recorded", e))
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> nix::Result<()> {
            self.call(format!(
                "mount {source:?} {} {fstype:?} {flags:?} {data:?}",
                target.display()
            ))
        }
        fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
            self.call(format!("umount2 {} {flags:?}", target.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
            self.call(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chroot(&self, path: &Path) -> nix::Result<()> {
            self.call(format!("chroot {}", path.display()))
        }
        fn chdir(&self, path: &Path) -> nix::Result<()> {
            self.call(format!("chdir {}", path.display()))
        }
        fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()> {
            self.call(format!("mknod {} {kind:?} {perm:?} {dev}", path.display()))
        }
        fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
            self.call(format!("symlink {} {}", target.display(), link.display()))
        }
        fn sethostname(&self, name: &str) -> nix::Result<()> {
            self.call(format!("sethostname {name}"))
        }
        fn setdomainname(&self, name: &str) -> nix::Result<()> {
            self.call(format!("setdomainname {name}"))
        }
        fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()> {
            self.call(format!("setns {} {nstype:?}", fd.as_raw_fd()))
        }
        fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
            self.call(format!("unshare {flags:?}"))
        }
        fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
            self.call(format!("setgroups {gids:?}"))
        }
        fn setresgid(&self, gid: Gid) -> nix::Result<()> {
            self.call(format!("setresgid {gid}"))
        }
        fn setresuid(&self, uid: Uid) -> nix::Result<()> {
            self.call(format!("setresuid {uid}"))
        }
        fn umask(&self, mask: Mode) {
            let _ = self.call(format!("umask {:o}", mask.bits()));
        }
        fn write_file(
            &self,
            path: &Path,
            data: &[u8],
        ) -> Result<(), crate::proc_handle::ProcError> {
            Ok(self.call(format!(
                "write {} {}",
                path.display(),
                String::from_utf8_lossy(data)
            ))?)
        }
        fn mount_setattr(
            &self,
            target: &Path,
            recursive: bool,
            attr_set: u64,
            attr_clr: u64,
        ) -> nix::Result<()> {
            self.call(format!(
                "mount_setattr {} {recursive} {attr_set:#x} {attr_clr:#x}",
                target.display()
            ))
        }
        fn fchdir(&self, dir: BorrowedFd<'_>) -> nix::Result<()> {
            self.call(format!("fchdir {}", dir.as_raw_fd()))
        }
        fn fchmodat(&self, _dir: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> nix::Result<()> {
            self.call(format!(
                "fchmodat {} {:o}",
                name.to_string_lossy(),
                mode.bits()
            ))
        }
        fn fchownat(
            &self,
            _dir: BorrowedFd<'_>,
            name: &OsStr,
            uid: Uid,
            gid: Gid,
        ) -> nix::Result<()> {
            self.call(format!("fchownat {} {uid} {gid}", name.to_string_lossy()))
        }
        fn fchown(&self, fd: BorrowedFd<'_>, uid: Uid) -> nix::Result<()> {
            self.call(format!("fchown {} {uid}", fd.as_raw_fd()))
        }
        fn setsid(&self) -> nix::Result<()> {
            self.call("setsid".into())
        }
        fn set_pdeathsig(&self, sig: Option<Signal>) -> nix::Result<()> {
            self.call(format!("prctl PR_SET_PDEATHSIG {sig:?}"))
        }
        fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
            self.call(format!("prctl PR_SET_DUMPABLE {dumpable}"))
        }
        fn set_no_new_privs(&self) -> nix::Result<()> {
            self.call("prctl PR_SET_NO_NEW_PRIVS".into())
        }
        fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> nix::Result<()> {
            self.call(format!("setrlimit {resource:?} {soft} {hard}"))
        }
        fn join_session_keyring(&self, name: &CStr) -> nix::Result<()> {
            self.call(format!(
                "keyctl JOIN_SESSION_KEYRING {}",
                name.to_string_lossy()
            ))
        }
        fn reset_signals(&self) {
            let _ = self.call("reset_signals".into());
        }
        fn execve(&self, path: &CStr, argv: &[CString], _envp: &[CString]) -> nix::Error {
            let _ = self.call(format!("execve {} {argv:?}", path.to_string_lossy()));
            // A recorded execve never replaces the process.
            Errno::ENOEXEC
        }
        fn sanitize_fds(&self, first: RawFd, keep: &[Option<BorrowedFd<'_>>]) -> InitResult<()> {
            let kept = keep.iter().flatten().count();
            self.step(format!("sanitize_fds {first} keep {kept}"), InitStep::Sync)
        }
        fn join_cgroup(&self, _tasks: BorrowedFd<'_>) -> nix::Result<()> {
            self.call("join_cgroup".into())
        }
        fn mark_cloexec_from(&self, first: RawFd) -> InitResult<()> {
            self.step(format!("mark_cloexec_from {first}"), InitStep::Sync)
        }
        fn drop_bounding_set(
            &self,
            caps: Option<&LinuxCapabilities>,
        ) -> InitResult<capabilities::Prepared> {
            self.step("drop_bounding_set".into(), InitStep::Capabilities)?;
            Ok(capabilities::Prepared::recorded(caps))
        }
        fn apply_capabilities(&self, _prepared: &capabilities::Prepared) -> InitResult<()> {
            self.step("apply_capabilities".into(), InitStep::Capabilities)
        }
        fn load_seccomp(&self, filter: &Filter) -> InitResult<Option<OwnedFd>> {
            self.step(
                format!("load_seccomp listener={}", filter.needs_listener()),
                InitStep::Seccomp,
            )?;
            Ok(None)
        }
        fn sched_setattr(
            &self,
            attr: &crate::process::steps::process_attrs::SchedAttr,
        ) -> nix::Result<()> {
            self.call(format!(
                "sched_setattr policy {} nice {} priority {}",
                attr.sched_policy, attr.sched_nice, attr.sched_priority
            ))
        }
        fn sched_setaffinity(&self, set: &nix::sched::CpuSet) -> nix::Result<()> {
            let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect();
            self.call(format!("sched_setaffinity {cpus:?}"))
        }
        fn ioprio_set(&self, value: libc::c_int) -> nix::Result<()> {
            self.call(format!("ioprio_set {value:#x}"))
        }
        fn set_mempolicy(&self, mode: libc::c_int, nodes: &[libc::c_ulong]) -> nix::Result<()> {
            self.call(format!("set_mempolicy {mode:#x} {nodes:?}"))
        }
        fn personality(&self, persona: libc::c_ulong) -> nix::Result<()> {
            self.call(format!("personality {persona:#x}"))
        }
    }
}
