//! After the pivot, in the container's own view of `/`: read-only tmpfs and /dev mounts, the
//! read-only root, `linux.readonlyPaths` and `linux.maskedPaths`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, Mode, SFlag};
use oci_spec::runtime::Spec;

use super::mounts::{Entry, Kind};
use super::{resolve, Prepared};
use crate::error::{InitFailure, InitResult, InitStep, SysContext};
use crate::proc_handle::{open_beneath, ProcError, ProcFs};
use crate::syscall::Syscall;

/// Tmpfs mounts and /dev were mounted writable so they could be filled; those the config wants
/// read-only become so now (runc's finalizeRootfs).
pub(super) fn remount_readonly_mounts(
    spec: &Spec,
    targets: &Targets,
    sys: &dyn Syscall,
) -> InitResult<()> {
    let root = resolve::Root::open(Path::new("/"))
        .map_err(|e| InitFailure::sys(InitStep::Mount, "/", e))?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let e = Entry::from_spec(m, None)?;
        let is_dev = resolve::clean(&e.dest) == Path::new("/dev");
        // A v1 `cgroup` mount is a tmpfs holding the hierarchies: `ro` covers it too (runc leaves
        // it writable). Done here, after every mount, as later ones may mount inside it.
        let is_cgroup = e.fstype == "cgroup";
        if !e.opts.flags.contains(MsFlags::MS_RDONLY)
            || !(e.kind == Kind::Tmpfs || is_dev || is_cgroup)
        {
            continue;
        }
        // MS_REMOUNT|MS_BIND changes only the per-mount flags, which a user namespace may do.
        let flags = e.opts.flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        // Resolved in the root as when it was mounted, and named by fd: never a path the
        // rootfs's owner could redirect meanwhile.
        let fd = root
            .open_in(&e.dest, resolve::Create::Nothing)
            .map_err(e.fail("open destination"))?;
        let target = targets.target(&fd, &e.dest);
        let mut tries = 0;
        loop {
            match sys.mount(None, &target, None, flags, None) {
                Err(Errno::EBUSY) if tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                r => break r.map_err(e.fail("remount read-only"))?,
            }
        }
    }
    Ok(())
}

/// `root.readonly`: keep every other flag of the root mount, which may be locked.
pub(super) fn readonly_root(sys: &dyn Syscall) -> InitResult<()> {
    let root = Path::new("/");
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if sys.mount(None, root, None, flags, None).is_ok() {
        return Ok(());
    }
    let current =
        mount_flags(root).map_err(|e| InitFailure::sys(InitStep::ReadonlyRoot, "/", e))?;
    sys.mount(None, root, None, flags | current, None)
        .map_err(|e| InitFailure::sys(InitStep::ReadonlyRoot, "/", e))
}

/// Where readonly and masked paths are found after the pivot: beneath the procfs the config
/// mounted (verified to still be that mount) for `/proc/...`, beneath `/` for the rest; never
/// through a symlink. While a procfs is at hand the init's working directory is its root, so a
/// mount names its target as `self/fd/N` and no path through the container's `/proc` (which the
/// rootfs's owner can swap for a symlink at any time) is ever followed.
pub(super) struct Targets {
    root: OwnedFd,
    proc: Option<ProcFs>,
    /// The config mounted this procfs: a path under /proc whose parent is missing is an error.
    proc_mounted: bool,
    /// /dev/null, checked to be the null device, opened on first use.
    null: std::cell::OnceCell<OwnedFd>,
}

impl Targets {
    pub(super) fn open(prepared: &Prepared, sys: &dyn Syscall) -> InitResult<Targets> {
        let fail = |e| InitFailure::sys(InitStep::Pivot, "/", e);
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let proc = match prepared.proc_mount {
            Some(mounted) => {
                let refuse = |why: String| {
                    InitFailure::new(InitStep::Mount)
                        .subject("/proc")
                        .detail(format!("is no longer the procfs mounted there: {why}"))
                };
                let proc = ProcFs::open_in(root.as_fd()).map_err(|e| refuse(e.to_string()))?;
                if let (Some(want), Some(got)) = (mounted, proc.mount_id()) {
                    if want != got {
                        return Err(refuse(format!("mount {got}, not {want}")));
                    }
                }
                Some(proc)
            }
            // No procfs of ours: whatever /proc is, it is only looked at, never trusted.
            None => ProcFs::open_in(root.as_fd()).ok(),
        };
        if let Some(proc) = &proc {
            sys.fchdir(proc.as_fd()).init(InitStep::Pivot, "/proc")?;
        }
        Ok(Targets {
            root,
            proc,
            proc_mounted: prepared.proc_mount.is_some(),
            null: std::cell::OnceCell::new(),
        })
    }

    /// Back to `/` as the working directory.
    pub(super) fn leave(self, sys: &dyn Syscall) -> InitResult<()> {
        sys.chdir(Path::new("/")).init(InitStep::Pivot, "/")
    }

    /// `p` opened O_PATH without following a symlink; `None` when it does not exist (skipped, as
    /// runc), unless its parent is missing from the procfs the config mounted.
    fn find(&self, p: &str, step: InitStep) -> InitResult<Option<OwnedFd>> {
        let clean = resolve::clean(Path::new(p));
        let fail = |e: ProcError| match e {
            ProcError::Sys(Errno::ELOOP | Errno::EXDEV) => InitFailure::new(step)
                .subject(p)
                .detail("a symlink is in the way (refused: it could lead anywhere)"),
            e => e.init(step, p),
        };
        let in_proc = clean
            .strip_prefix("/proc")
            .ok()
            .filter(|rel| !rel.as_os_str().is_empty());
        let (Some(proc), Some(rel)) = (&self.proc, in_proc) else {
            return match open_beneath(self.root.as_fd(), &clean, OFlag::O_PATH) {
                Ok(fd) => Ok(Some(fd)),
                Err(Errno::ENOENT) => Ok(None),
                Err(e) => Err(fail(ProcError::Sys(e))),
            };
        };
        match proc.open_file(rel, OFlag::O_PATH, false) {
            Ok(fd) => Ok(Some(fd)),
            Err(ProcError::Sys(Errno::ENOENT)) => {
                let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
                let parent_there = parent.is_none_or(|parent| {
                    proc.open_file(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, false)
                        .is_ok()
                });
                if parent_there || !self.proc_mounted {
                    return Ok(None);
                }
                Err(InitFailure::new(step).subject(p).detail(
                    "its parent directory is missing from the container's procfs, which must have it",
                ))
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// The path mount(2) takes for `fd`, which was opened from `path`: relative to the procfs
    /// root we stand in; with no procfs at all (nothing under /proc to protect then), `path`
    /// itself, just checked to hold no symlink.
    fn target(&self, fd: &OwnedFd, path: &Path) -> PathBuf {
        if self.proc.is_some() {
            PathBuf::from(format!("self/fd/{}", fd.as_raw_fd()))
        } else {
            resolve::clean(path)
        }
    }

    /// The container's /dev/null, refused unless it is the null character device (1:3) itself:
    /// a symlink or another file there would make every masked file that file.
    fn null(&self) -> InitResult<&OwnedFd> {
        if let Some(fd) = self.null.get() {
            return Ok(fd);
        }
        let refuse = |why: &str| {
            InitFailure::new(InitStep::MaskedPaths)
                .subject("/dev/null")
                .detail(format!("cannot mask paths with it: {why}"))
        };
        let fd = match open_beneath(self.root.as_fd(), Path::new("dev/null"), OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::EXDEV) => return Err(refuse("it is a symlink")),
            Err(e) => return Err(InitFailure::sys(InitStep::MaskedPaths, "/dev/null", e)),
        };
        let st = fstat(&fd).map_err(|e| InitFailure::sys(InitStep::MaskedPaths, "/dev/null", e))?;
        let is_chr = st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits();
        if !is_chr || st.st_rdev != nix::sys::stat::makedev(1, 3) {
            return Err(refuse("it is not the null device (character device 1:3)"));
        }
        Ok(self.null.get_or_init(|| fd))
    }
}

/// Each path bound onto itself and remounted read-only; a missing path is skipped.
pub(super) fn readonly_paths(
    paths: &[String],
    targets: &Targets,
    sys: &dyn Syscall,
) -> InitResult<()> {
    for p in paths {
        let fail = |e| InitFailure::sys(InitStep::ReadonlyPaths, p, e);
        let Some(fd) = targets.find(p, InitStep::ReadonlyPaths)? else {
            continue;
        };
        let target = targets.target(&fd, Path::new(p));
        let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
        sys.mount(Some(&target), &target, None, rbind, None)
            .map_err(fail)?;
        // The fd names what is under the new bind: the remount needs the bind itself.
        let Some(bound) = targets.find(p, InitStep::ReadonlyPaths)? else {
            return Err(fail(Errno::ENOENT));
        };
        let target = targets.target(&bound, Path::new(p));
        // nosuid, nodev and noexec may be locked: keep them.
        let keep = fd_mount_flags(&bound).map_err(fail)?
            & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        let flags = keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys.mount(Some(&target), &target, None, flags, None)
            .map_err(fail)?;
    }
    Ok(())
}

/// A file is covered by /dev/null, a directory by an empty read-only tmpfs; a missing path is
/// skipped.
pub(super) fn masked_paths(
    paths: &[String],
    targets: &Targets,
    sys: &dyn Syscall,
) -> InitResult<()> {
    for p in paths {
        let fail = |e| InitFailure::sys(InitStep::MaskedPaths, p, e);
        let Some(fd) = targets.find(p, InitStep::MaskedPaths)? else {
            continue;
        };
        let target = targets.target(&fd, Path::new(p));
        let st = fstat(&fd).map_err(fail)?;
        if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
            let tmpfs = Some(Path::new("tmpfs"));
            sys.mount(tmpfs, &target, Some("tmpfs"), MsFlags::MS_RDONLY, None)
                .map_err(fail)?;
        } else {
            let null = targets.target(targets.null()?, Path::new("/dev/null"));
            sys.mount(Some(&null), &target, None, MsFlags::MS_BIND, None)
                .map_err(fail)?;
        }
    }
    Ok(())
}

fn fd_mount_flags(fd: &OwnedFd) -> nix::Result<MsFlags> {
    let st = nix::sys::statvfs::fstatvfs(fd)?;
    Ok(MsFlags::from_bits_truncate(st.flags().bits() as _))
}

/// The mount flags (`MS_*` share the `ST_*` values) of the mount `path` is on.
fn mount_flags(path: &Path) -> nix::Result<MsFlags> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok(MsFlags::from_bits_truncate(st.flags().bits() as _))
}
