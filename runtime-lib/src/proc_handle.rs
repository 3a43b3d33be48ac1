//! A procfs the runtime can trust, and files opened beneath a directory without following a
//! symlink; a process told apart from a later one with its pid by its start time.
//!
//! Inside the container `/proc` is a path in a root filesystem someone else controls: its owner can
//! swap `rootfs/proc` for a symlink at any moment (renameat2 RENAME_EXCHANGE), and a config can
//! put another filesystem over `/proc/self`. So nothing is written into procfs by path: [`ProcFs`]
//! opens `/proc` without following symlinks, checks it is the root of a procfs, and every file is
//! then opened beneath that handle, never with O_CREAT, and checked to be on procfs itself before
//! a byte is written to it.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use serde::{Deserialize, Serialize};

use crate::error::{Context, InitFailure, InitStep, Result};

/// The inode number of every procfs root (fs/proc/root.c).
const PROC_ROOT_INO: u64 = 1;

/// Why a procfs handle or a file beneath it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcError {
    /// A system call failed (ELOOP: a symlink was in the way).
    Sys(Errno),
    /// The directory is not the root of a procfs mount.
    NotProcRoot,
    /// The file opened is not on procfs (another filesystem is mounted over it).
    NotOnProc,
}

impl From<Errno> for ProcError {
    fn from(e: Errno) -> Self {
        ProcError::Sys(e)
    }
}

impl std::fmt::Display for ProcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcError::Sys(e) => f.write_str(&e.desc().to_lowercase()),
            ProcError::NotProcRoot => f.write_str("not the root of a procfs mount"),
            ProcError::NotOnProc => f.write_str("not on procfs (something is mounted over it)"),
        }
    }
}

impl ProcError {
    /// The init's report of a failed procfs step.
    pub fn init(self, step: InitStep, subject: impl std::fmt::Display) -> InitFailure {
        match self {
            ProcError::Sys(e) => InitFailure::sys(step, subject, e),
            other => InitFailure::new(step)
                .subject(subject)
                .detail(format!("/proc: {other}")),
        }
    }

    /// The runtime's report of a failed procfs step on `path`.
    pub fn host(self, step: &'static str, path: PathBuf) -> crate::Error {
        match self {
            ProcError::Sys(source) => crate::Error::Sys {
                step,
                path: Some(path),
                source,
            },
            other => crate::Error::Io {
                step,
                path,
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    /// The errno to report: the system call's, or EXDEV for a file that left procfs.
    pub fn errno(&self) -> Errno {
        match self {
            ProcError::Sys(e) => *e,
            ProcError::NotProcRoot | ProcError::NotOnProc => Errno::EXDEV,
        }
    }
}

/// An open, verified procfs root.
pub struct ProcFs {
    fd: OwnedFd,
}

impl ProcFs {
    /// The procfs at `/proc` of this process's root.
    pub fn open() -> Result<ProcFs, ProcError> {
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Self::open_in(root.as_fd())
    }

    /// The procfs at `proc` beneath `root`, a symlink on the way being an error.
    pub fn open_in(root: BorrowedFd<'_>) -> Result<ProcFs, ProcError> {
        // Readable, not O_PATH: the fd walk (crate::process::fds) reads directories beneath it.
        let fd = open_beneath(
            root,
            Path::new("proc"),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )?;
        let on_proc = fstatfs(&fd)?.filesystem_type() == PROC_SUPER_MAGIC;
        if !on_proc || fstat(&fd)?.st_ino != PROC_ROOT_INO {
            return Err(ProcError::NotProcRoot);
        }
        Ok(ProcFs { fd })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The id of the mount this procfs is (statx STATX_MNT_ID, Linux 5.8+; before that, or with
    /// statx refused, the `mnt_id` of this handle's fdinfo, read through this same procfs);
    /// `None` when neither says (a procfs of a pid namespace we are not in).
    pub fn mount_id(&self) -> Option<u64> {
        mount_id(self.fd.as_fd()).or_else(|| self.fdinfo_mount_id())
    }

    fn fdinfo_mount_id(&self) -> Option<u64> {
        let rel = format!("thread-self/fdinfo/{}", self.fd.as_raw_fd());
        let fd = self
            .open_file(Path::new(&rel), OFlag::O_RDONLY, true)
            .ok()?;
        let text = std::io::read_to_string(std::fs::File::from(fd)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Opens `rel` (`self/oom_score_adj`, `sys/kernel/hostname`, `1234/uid_map`) beneath this
    /// procfs: no symlink followed but procfs's own `self` and `thread-self` as the first
    /// component, never created. With `require_proc` the file itself must be on procfs.
    pub fn open_file(
        &self,
        rel: &Path,
        flags: OFlag,
        require_proc: bool,
    ) -> Result<OwnedFd, ProcError> {
        let rel = self.expand_self(rel)?;
        let fd = open_beneath(self.fd.as_fd(), &rel, flags - OFlag::O_CREAT)?;
        if require_proc && fstatfs(&fd)?.filesystem_type() != PROC_SUPER_MAGIC {
            return Err(ProcError::NotOnProc);
        }
        Ok(fd)
    }

    /// Writes `data` in one write(2) (the kernel takes a map or an attribute only whole) to a
    /// procfs file beneath this handle.
    pub fn write(&self, rel: &Path, data: &[u8]) -> Result<(), ProcError> {
        let fd = self.open_file(rel, OFlag::O_WRONLY | OFlag::O_NOCTTY, true)?;
        let n = nix::unistd::write(&fd, data)?;
        if n != data.len() {
            return Err(ProcError::Sys(Errno::EIO));
        }
        Ok(())
    }

    /// `self` and `thread-self` are procfs's own symlinks: read, not followed, so the rest of the
    /// path can still be opened with no symlink allowed.
    fn expand_self(&self, rel: &Path) -> Result<PathBuf, ProcError> {
        let mut parts = rel
            .components()
            .filter(|c| !matches!(c, Component::RootDir));
        let Some(Component::Normal(first)) = parts.next() else {
            return Ok(rel.to_path_buf());
        };
        if first != "self" && first != "thread-self" {
            return Ok(rel.to_path_buf());
        }
        let target = nix::fcntl::readlinkat(&self.fd, first)?;
        let mut out = PathBuf::from(target);
        out.extend(parts);
        Ok(out)
    }
}

/// A file or directory in this process's mount namespace: the id of the mount it is on.
pub fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a NUL-terminated empty string, `stx` a live statx the kernel fills in;
    // with AT_EMPTY_PATH the call reads only `fd`.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    (r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

/// Opens `path` beneath `dir` (O_CLOEXEC added): `..`, absolute symlinks, any symlink at all and
/// magic links are refused (ELOOP or EXDEV), so the file is one that lies under `dir` by name.
/// openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); on kernels without it (before 5.6, or a
/// seccomp profile that answers ENOSYS or EPERM) the same walk, one O_NOFOLLOW component at a time.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let flags = flags | OFlag::O_CLOEXEC;
    let rel = relative(path)?;
    let how = OpenHow::new().flags(flags).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    match openat2(dir, &rel, how) {
        // openat2 answers EPERM only for O_NOATIME, which no caller passes: a profile's refusal.
        Err(Errno::ENOSYS | Errno::EPERM) => walk_beneath(dir, &rel, flags),
        r => r,
    }
}

/// `path` without its leading `/` and `.`s; a `..` is refused (nothing here needs one).
fn relative(path: &Path) -> nix::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err(Errno::EXDEV),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

/// The fallback of [`open_beneath`]: every component opened O_PATH | O_NOFOLLOW from the last,
/// and a symlink met on the way (which O_PATH | O_NOFOLLOW opens as itself) refused.
pub(crate) fn walk_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let names: Vec<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = names.split_last() else {
        return nix::fcntl::openat(dir, ".", flags, Mode::empty());
    };
    let mut cur: Option<OwnedFd> = None;
    for name in parents {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let next = nix::fcntl::openat(
            at,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let kind = SFlag::from_bits_truncate(fstat(&next)?.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        if kind != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(dir, |f| f.as_fd());
    let fd = nix::fcntl::openat(
        at,
        last.as_os_str(),
        flags | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    // O_PATH | O_NOFOLLOW opens a symlink rather than failing on it.
    if fstat(&fd)?.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits() {
        return Err(Errno::ELOOP);
    }
    Ok(fd)
}

/// One process, told from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub pid: i32,
    /// /proc/<pid>/stat field 22.
    pub start_time: u64,
}

impl ProcessId {
    /// `pid` as it is now; `None` if there is no such process.
    pub(crate) fn of(pid: i32) -> Option<ProcessId> {
        start_time(pid)
            .ok()
            .map(|start_time| ProcessId { pid, start_time })
    }

    pub(crate) fn alive(&self) -> bool {
        init_alive(self.pid, self.start_time)
    }
}

/// True while `pid` is the process that was started at `start_time` and has not exited.
pub(crate) fn init_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Ok((state, started)) => started == start_time && !matches!(state, 'Z' | 'X' | 'x'),
        Err(_) => false,
    }
}

/// The start time of `pid` (field 22 of /proc/<pid>/stat).
pub(crate) fn start_time(pid: i32) -> Result<u64> {
    proc_stat(pid).map(|(_, started)| started).io(
        "read start time of",
        PathBuf::from(format!("/proc/{pid}/stat")),
    )
}

/// Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, read in one open and one read:
/// `state` and `list` ask this of every container, and a general /proc parser costs twice the
/// calls. The kernel renders the whole line on the first read; field 22 comes well before the
/// end of the buffer whatever the command name.
fn proc_stat(pid: i32) -> std::io::Result<(char, u64)> {
    let mut buf = [0u8; 1024];
    let mut f = fs::File::open(format!("/proc/{pid}/stat"))?;
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    parse_stat(&buf[..n]).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "malformed /proc/<pid>/stat",
        )
    })
}

/// Fields 3 and 22 of a /proc/<pid>/stat line.
fn parse_stat(data: &[u8]) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and parentheses: the fields after it follow the
    // last ')'.
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&data[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the first after ')'; field 22 is 19 further on.
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

/// [`read_unsized`] for a file read whole by its first `read(2)` when it fits: a regular file (a
/// short read is its end) or a one-value kernfs file (rendered whole on the first read). Saves
/// the read that only finds the end: `list` reads state.json and freezer.state of every
/// container. A file that fills the buffer is read on to its end.
pub(crate) fn read_small(f: &mut fs::File) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; 4096];
    let n = loop {
        match f.read(&mut out) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    out.truncate(n);
    if n == 4096 {
        out.extend(read_unsized(f)?);
    }
    Ok(out)
}

/// The whole content of a small file in fixed-size reads. `fs::read` and `read_to_string` first
/// ask the file's size (statx, and lseek), which procfs and cgroupfs report as 0 anyway: two
/// calls per file wasted on every status check and cgroup read.
pub(crate) fn read_unsized(f: &mut fs::File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hull-proc-handle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("b", d.join("a/link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("abs")).unwrap();
        d
    }

    fn dirfd(p: &Path) -> OwnedFd {
        nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn read_small_reads_a_file_that_fills_its_first_read_to_the_end() {
        let d = tmp("small");
        for len in [0, 7, 4095, 4096, 4097, 10_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = d.join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            let got = read_small(&mut fs::File::open(&p).unwrap()).unwrap();
            assert_eq!(got, data, "{len} bytes");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn openat2_and_the_walk_agree_on_symlinks_and_dotdot() {
        let d = tmp("agree");
        let dir = dirfd(&d);
        for walk in [false, true] {
            let open = |p: &str| {
                let p = Path::new(p);
                if walk {
                    walk_beneath(dir.as_fd(), &relative(p)?, OFlag::O_PATH | OFlag::O_CLOEXEC)
                } else {
                    open_beneath(dir.as_fd(), p, OFlag::O_PATH)
                }
            };
            assert!(open("a/b/f").is_ok(), "walk={walk}");
            assert!(open("/a/./b").is_ok(), "walk={walk}");
            assert_eq!(open("a/link/f").err(), Some(Errno::ELOOP), "walk={walk}");
            assert_eq!(open("a/link").err(), Some(Errno::ELOOP), "walk={walk}");
            assert_eq!(open("abs").err(), Some(Errno::ELOOP), "walk={walk}");
            assert_eq!(open("a/missing").err(), Some(Errno::ENOENT), "walk={walk}");
            assert_eq!(open("a/b/f/x").err(), Some(Errno::ENOTDIR), "walk={walk}");
        }
        assert_eq!(
            open_beneath(dir.as_fd(), Path::new("a/../a"), OFlag::O_PATH).err(),
            Some(Errno::EXDEV)
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn host_proc_is_verified_and_self_is_expanded() {
        let proc = ProcFs::open().unwrap();
        assert!(proc.mount_id().is_some());
        // The fallback for kernels without STATX_MNT_ID names the same mount.
        assert_eq!(proc.fdinfo_mount_id(), proc.mount_id());
        let fd = proc
            .open_file(Path::new("self/status"), OFlag::O_RDONLY, true)
            .unwrap();
        let mut buf = [0u8; 5];
        nix::unistd::read(&fd, &mut buf).unwrap();
        assert_eq!(&buf, b"Name:");
        // Never created: a missing file stays missing.
        assert_eq!(
            proc.write(Path::new("self/no-such-file"), b"1").err(),
            Some(ProcError::Sys(Errno::ENOENT))
        );
        // A plain directory is no procfs.
        let d = tmp("notproc");
        std::fs::create_dir_all(d.join("proc")).unwrap();
        assert_eq!(
            ProcFs::open_in(dirfd(&d).as_fd()).err(),
            Some(ProcError::NotProcRoot)
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod stat_tests {
    use super::{init_alive, parse_stat, start_time};

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let line = b"4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
                     987654 2330624 112 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat(b"4242 (x) Z 1"), None);
        // The real thing agrees with the general parser.
        let me = std::process::id() as i32;
        let general = procfs::process::Process::myself().unwrap().stat().unwrap();
        assert_eq!(start_time(me).unwrap(), general.starttime);
        assert!(init_alive(me, general.starttime));
        assert!(!init_alive(me, general.starttime + 1));
    }
}
