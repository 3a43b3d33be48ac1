//! Running from a sealed copy of the runtime's own executable (the CVE-2019-5736 class).
//!
//! Hull does not re-exec for the container's init: the init is cloned from the calling process and
//! an exec'd process is forked from it, so until their `execve` both have the caller's executable
//! as `/proc/self/exe`. A process in the container that gets hold of that file (the init's
//! `/proc/1/exe` before `start` with CAP_SYS_PTRACE, or a `#!/proc/self/exe` script that makes the
//! kernel run the runtime's binary inside the container, whose `/proc/<pid>/exe` is then open to
//! any process there) can reopen it for writing once no process runs it any more, and replace the
//! host's binary.
//!
//! [`ensure_sealed`] closes that hole before any container-side process exists: the program
//! re-executes itself (same argv and environment) from a copy no one can write:
//!
//! 1. a read-only overlayfs made with the new mount API (fsopen/fsconfig/fsmount): two lower
//!    layers (the binary's directory over `/dev`) and no upper layer, so the superblock itself is
//!    read-only and not even a process that clones the mount and clears its read-only flag can
//!    write; the mount is detached (no mount table lists it) and lives as long as a process runs
//!    from it. No copy: it costs a mount and an `execve`.
//! 2. when that is not possible (no CAP_SYS_ADMIN, as rootless; no new mount API or overlayfs;
//!    a binary on a filesystem overlayfs refuses as a layer; `HULL_EXE_SEAL=memfd`): a memfd
//!    holding a copy of the binary, sealed against any write, growth or shrinking and against new
//!    seals. Costs the copy (the binary's size in shared memory, for as long as a process runs it).
//!
//! Whether the running program is such a copy is checked on the file itself ([`sealed_by`]), not
//! taken from the environment: the marker variable the re-exec sets only stops a second attempt
//! of the same method (a re-exec loop), and is removed at once.
//!
//! ```no_run
//! fn main() -> hull::Result<()> {
//!     // Before any thread or file exists: the program re-executes itself from the sealed copy.
//!     hull::exe::ensure_sealed()?;
//!     assert!(hull::exe::is_sealed());
//!     // ... create containers, exec into them ...
//!     Ok(())
//! }
//! ```

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use nix::fcntl::{fcntl, open, AtFlags, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, OVERLAYFS_SUPER_MAGIC};
use nix::sys::statvfs::FsFlags;

use crate::error::{Context, Error, SysContext};
use crate::Result;

/// Set by the re-exec to the method it used; removed by [`ensure_sealed`] in the new program.
pub(crate) const MARKER_ENV: &str = "_HULL_EXE_SEALED";

/// `memfd` skips the overlay and copies the binary into a sealed memfd (for hosts where the
/// overlay misbehaves, and for the tests of that path). Read only by [`ensure_sealed`].
///
/// ```
/// assert_eq!(hull::exe::METHOD_ENV, "HULL_EXE_SEAL");
/// ```
pub const METHOD_ENV: &str = "HULL_EXE_SEAL";

const SELF_EXE: &str = "/proc/self/exe";

/// How the running executable is protected from writes.
///
/// ```
/// match hull::exe::sealed_by() {
///     Some(hull::exe::Seal::Overlay) => println!("running from a read-only overlay"),
///     Some(hull::exe::Seal::Memfd) => println!("running from a sealed memfd"),
///     None => println!("not sealed: create and exec would refuse"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// A file of a detached, read-only overlayfs with no upper layer.
    Overlay,
    /// A memfd sealed against writes (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL).
    Memfd,
}

impl Seal {
    fn name(self) -> &'static str {
        match self {
            Seal::Overlay => "overlay",
            Seal::Memfd => "memfd",
        }
    }
}

/// The seals a memfd copy must carry: with these no one can change its bytes or its seals.
fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Makes sure the running program is a sealed copy of itself, re-executing it (same argv and
/// environment) from one if it is not: on success in this process it returns how it is sealed,
/// otherwise it does not return unless sealing failed.
///
/// Call it first thing in `main`, before any other thread exists and before anything is opened,
/// in every program that creates containers or execs into them; [`crate::Container::create`] and
/// [`crate::Container::exec`] refuse to run from an executable that is not sealed.
///
/// Errors: [`Error::ExeNotSealed`] when no sealed copy could be made or the re-executed program
/// is still not one; [`Error::Io`] or [`Error::Sys`] for the copy or the `execve` itself.
///
/// ```no_run
/// fn main() -> hull::Result<()> {
///     // Returns here only in the sealed copy (or with the error).
///     let seal = hull::exe::ensure_sealed()?;
///     eprintln!("sealed by {seal:?}");
///     Ok(())
/// }
/// ```
pub fn ensure_sealed() -> Result<Seal> {
    crate::container::main_calls_hull();
    let marker = std::env::var_os(MARKER_ENV);
    if marker.is_some() {
        // The caller is still single-threaded (see above), and nothing the runtime starts
        // (hooks, the container) should see the marker.
        std::env::remove_var(MARKER_ENV);
    }
    if let Some(seal) = sealed_by() {
        // A start of this program as the helper of a multi-threaded caller (see
        // `container::helper`): it serves the request and exits, never running the program.
        if std::env::var_os(crate::container::HELPER_ENV).is_some() {
            crate::container::serve_and_exit();
        }
        return Ok(seal);
    }
    let memfd_only = std::env::var_os(METHOD_ENV).is_some_and(|m| m == "memfd");
    let overlay_first = match marker.as_deref() {
        None => !memfd_only,
        // The overlay was made, yet the program it started is not on one: the copy, once.
        Some(m) if m == Seal::Overlay.name() => false,
        // The copy was made and is not what runs (or the marker was set by hand): no loop.
        Some(m) => {
            return Err(Error::ExeNotSealed {
                detail: format!(
                    "{MARKER_ENV}={} is set but {SELF_EXE} is not a sealed copy",
                    m.to_string_lossy()
                ),
            })
        }
    };
    let overlay = match overlay_first {
        true => overlay_copy().map_err(|e| {
            log::debug!("no sealed overlay of the executable ({e}); copying it instead");
        }),
        false => Err(()),
    };
    let (exe, seal) = match overlay {
        Ok(fd) => (fd, Seal::Overlay),
        Err(()) => (memfd_copy()?, Seal::Memfd),
    };
    Err(reexec(exe.as_fd(), seal))
}

/// True when the running executable is a sealed copy (see [`sealed_by`]).
///
/// ```
/// let mut opts = hull::CreateOptions::new("/run/hull", "/srv/bundle");
/// // A test program that trusts its containers may run unsealed.
/// opts.unsealed_exe = !hull::exe::is_sealed();
/// ```
pub fn is_sealed() -> bool {
    sealed_by().is_some()
}

/// How the running executable is sealed, if it is: a memfd carrying the write seals, or a file of
/// a read-only overlayfs mount that no mount table of ours lists (a detached one, as
/// [`ensure_sealed`] makes; only a process with CAP_SYS_ADMIN can make one). Checked once per
/// process: only an `execve` changes the executable.
///
/// ```
/// // A test binary is not a sealed copy, unless it called ensure_sealed.
/// assert_eq!(hull::exe::sealed_by().is_some(), hull::exe::is_sealed());
/// ```
pub fn sealed_by() -> Option<Seal> {
    static SEALED: OnceLock<Option<Seal>> = OnceLock::new();
    *SEALED.get_or_init(probe)
}

fn probe() -> Option<Seal> {
    let exe = open(SELF_EXE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    // Only shmem (memfd) and hugetlbfs files answer F_GET_SEALS.
    if let Ok(bits) = fcntl(&exe, FcntlArg::F_GET_SEALS) {
        let seals = SealFlag::from_bits_truncate(bits);
        return seals.contains(required_seals()).then_some(Seal::Memfd);
    }
    let fs = fstatfs(&exe).ok()?;
    let read_only = fs.flags().contains(FsFlags::ST_RDONLY);
    (fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC && read_only && detached(exe.as_fd()))
        .then_some(Seal::Overlay)
}

/// The file's mount is in no mount table of this process's mount namespace.
fn detached(file: BorrowedFd<'_>) -> bool {
    let fdinfo = format!("/proc/self/fdinfo/{}", file.as_raw_fd());
    let Some(mnt_id) = std::fs::read_to_string(fdinfo).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("mnt_id:").map(|v| v.trim().to_string()))
    }) else {
        return false;
    };
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(table) => !table
            .lines()
            .any(|l| l.split(' ').next() == Some(mnt_id.as_str())),
        Err(_) => false,
    }
}

/// execveat(2) of `exe` with this program's argv and environment, plus the marker.
fn reexec(exe: BorrowedFd<'_>, seal: Seal) -> Error {
    let argv: Vec<CString> = std::env::args_os().filter_map(c_string).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER_ENV)
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            c_string(kv)
        })
        .collect();
    envp.extend(c_string(format!("{MARKER_ENV}={}", seal.name()).into()));
    let empty: &CStr = c"";
    match nix::unistd::execveat(exe, empty, &argv, &envp, AtFlags::AT_EMPTY_PATH) {
        Ok(never) => match never {},
        Err(source) => Error::Sys {
            step: "execute the sealed copy of the runtime's executable",
            path: None,
            source,
        },
    }
}

/// Arguments and variables come from the kernel's NUL-terminated strings: none holds a NUL.
fn c_string(s: OsString) -> Option<CString> {
    CString::new(s.into_vec()).ok()
}

/// fsconfig(2) commands (linux/mount.h).
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
/// The second, empty-for-our-purpose lower layer: overlayfs needs two lower layers to run without
/// an upper one, a layer may not overlap another (no ancestor of the binary's directory), and an
/// anonymous mount (a fresh tmpfs) cannot be a layer. The binary's directory is the upper of the
/// two, so a file of the same name here cannot shadow it; `/dev` exists everywhere.
const SECOND_LAYER: &str = "/dev";

/// The running executable, opened (O_PATH) through a fresh detached read-only overlayfs.
fn overlay_copy() -> Result<OwnedFd> {
    let path = std::fs::read_link(SELF_EXE).io("read", SELF_EXE)?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(unsealable(&path, "has no directory"));
    };
    // A binary deleted or replaced since it started is not in its directory any more.
    let running = std::fs::metadata(SELF_EXE).io("stat", SELF_EXE)?;
    let ctx = fs_fd("fsopen overlay", || {
        // SAFETY: a NUL-terminated name and flags; the kernel returns a new fd or -1.
        unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) }
    })?;
    let lowerdir = format!(
        "{}:{}",
        escape_layer(dir.as_os_str().as_bytes()),
        SECOND_LAYER
    );
    fsconfig_string(ctx.as_fd(), c"lowerdir", &lowerdir)?;
    // xino is of no use here, and turned on by itself when the layers are on different
    // filesystems it logs to the kernel log on every mount.
    let _ = fsconfig_string(ctx.as_fd(), c"xino", "off");
    fs_call("fsconfig create overlay", || {
        // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux; the context fd is live.
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        }
    })?;
    let mnt = fs_fd("fsmount overlay", || {
        // SAFETY: plain integer arguments on a live context fd; returns a new fd or -1.
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                ctx.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        }
    })?;
    let exe = nix::fcntl::openat(
        &mnt,
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys_path("open through the sealed overlay", &path)?;
    // overlayfs reports its own st_dev but the layer's st_ino (xino off).
    let seen = fstat(&exe).sys_path("stat through the sealed overlay", &path)?;
    if seen.st_ino != running.ino()
        || seen.st_size != running.size() as i64
        || seen.st_mtime != running.mtime()
        || seen.st_mtime_nsec != running.mtime_nsec()
    {
        return Err(unsealable(&path, "is not the running program any more"));
    }
    Ok(exe)
}

/// overlayfs splits lowerdir at `:` and takes `\` as its escape.
fn escape_layer(dir: &[u8]) -> String {
    String::from_utf8_lossy(dir)
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

fn fsconfig_string(ctx: BorrowedFd<'_>, key: &CStr, value: &str) -> Result<()> {
    let value = CString::new(value).map_err(|_| Error::ExeNotSealed {
        detail: format!("overlay option {key:?} holds a NUL"),
    })?;
    fs_call("fsconfig overlay", || {
        // SAFETY: key and value are NUL-terminated and outlive the call; aux is unused.
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        }
    })
    .map(drop)
}

/// A new-mount-API call: its return value, or its errno as the step's error.
fn fs_call(step: &'static str, call: impl FnOnce() -> libc::c_long) -> Result<libc::c_long> {
    match call() {
        ret if ret < 0 => Err(nix::errno::Errno::last()).sys(step),
        ret => Ok(ret),
    }
}

/// [`fs_call`] for the calls that return a new fd.
fn fs_fd(step: &'static str, call: impl FnOnce() -> libc::c_long) -> Result<OwnedFd> {
    let ret = fs_call(step, call)?;
    let fd = libc::c_int::try_from(ret).map_err(|_| Error::ExeNotSealed {
        detail: format!("{step} returned {ret}"),
    })?;
    // SAFETY: the kernel just returned this fd, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unsealable(path: &Path, why: &str) -> Error {
    Error::ExeNotSealed {
        detail: format!("{} {why}", path.display()),
    }
}

/// memfd_create(2) flag (Linux 6.3): the memfd may be executed even where the
/// vm.memfd_noexec sysctl would otherwise make it non-executable.
const MFD_EXEC: libc::c_uint = 0x10;

/// A copy of the running executable in a memfd sealed against writes.
fn memfd_copy() -> Result<OwnedFd> {
    let mut src = File::open(SELF_EXE).io("open", SELF_EXE)?;
    let len = src.metadata().io("stat", SELF_EXE)?.len();
    let base = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let memfd = memfd_create(c"hull", base | MFdFlags::from_bits_retain(MFD_EXEC))
        .or_else(|e| match e {
            // Before 6.3 the flag is unknown, and memfds are executable anyway.
            nix::errno::Errno::EINVAL => memfd_create(c"hull", base),
            e => Err(e),
        })
        .sys("memfd_create for the runtime's executable")?;
    // read(2) and write(2), not sendfile: sendfile moves the pages through the task's splice
    // pipe, which can keep them referenced after the call, and F_SEAL_WRITE then fails with
    // EBUSY (seen in the benchmark, about one run in a hundred).
    let mut copied: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut dst = File::from(memfd);
    while copied < len {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).io("copy the executable into a memfd", SELF_EXE),
        };
        std::io::Write::write_all(&mut dst, &buf[..n])
            .io("copy the executable into a memfd", SELF_EXE)?;
        copied += n as u64;
    }
    let memfd = OwnedFd::from(dst);
    // A file that grew while being copied is not the program that is running.
    let mut probe = [0u8; 1];
    if copied != len || src.read(&mut probe).io("read", SELF_EXE)? != 0 {
        return Err(Error::ExeNotSealed {
            detail: format!("{SELF_EXE} changed size while being copied"),
        });
    }
    // EBUSY: a page of the copy still had an extra reference when the kernel looked (newly
    // written shmem pages wait in per-CPU LRU batches, and the kernel drains only the calling
    // CPU's before it gives up); the benchmark saw it under load. Those references go soon:
    // try again, for at most about a second in all.
    let mut attempt = 0u64;
    loop {
        match fcntl(&memfd, FcntlArg::F_ADD_SEALS(required_seals())) {
            Err(nix::errno::Errno::EBUSY) if attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 * attempt));
            }
            r => {
                r.sys("seal the memfd copy of the executable")?;
                break;
            }
        }
    }
    Ok(memfd)
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;

    #[test]
    fn layer_paths_escape_colons_and_backslashes() {
        assert_eq!(escape_layer(b"/usr/bin"), "/usr/bin");
        assert_eq!(escape_layer(b"/a:b\\c"), "/a\\:b\\\\c");
    }

    #[test]
    fn the_test_program_is_not_sealed() {
        assert_eq!(sealed_by(), None);
    }

    #[test]
    fn memfd_copy_is_the_program_and_refuses_writes() {
        let copy = memfd_copy().unwrap();
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        assert!(std::fs::read(&path).unwrap() == std::fs::read(SELF_EXE).unwrap());
        let bits = fcntl(&copy, FcntlArg::F_GET_SEALS).unwrap();
        assert!(SealFlag::from_bits_truncate(bits).contains(required_seals()));
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        let e = f.write_all(b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn overlay_copy_is_the_program_on_a_read_only_detached_mount() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: making an overlay needs root");
            return;
        }
        let exe = match overlay_copy() {
            Ok(exe) => exe,
            Err(e) => return eprintln!("skipped: no overlay on this host ({e})"),
        };
        let path = format!("/proc/self/fd/{}", exe.as_raw_fd());
        let read = File::open(&path).unwrap();
        let fs = fstatfs(&read).unwrap();
        assert_eq!(fs.filesystem_type(), OVERLAYFS_SUPER_MAGIC);
        assert!(fs.flags().contains(FsFlags::ST_RDONLY));
        assert!(detached(read.as_fd()));
        let e = OpenOptions::new().write(true).open(&path).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        assert!(std::fs::read(&path).unwrap() == std::fs::read(SELF_EXE).unwrap());
    }
}
