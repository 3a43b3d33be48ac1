//! After the pivot, in the container's own view of `/`: read-only tmpfs and /dev mounts, the
//! read-only root, `linux.readonlyPaths` and `linux.maskedPaths`.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use super::mounts::{Entry, Kind};
use super::resolve;
use crate::error::{InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;

/// Tmpfs mounts and /dev were mounted writable so they could be filled; those the config wants
/// read-only become so now (runc's finalizeRootfs).
pub(super) fn remount_readonly_mounts(spec: &Spec, sys: &dyn Syscall) -> InitResult<()> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let e = Entry::from_spec(m)?;
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
        let mut tries = 0;
        loop {
            match sys.mount(None, &e.dest, None, flags, None) {
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

/// Each path bound onto itself and remounted read-only; a missing path is skipped.
pub(super) fn readonly_paths(paths: &[String], sys: &dyn Syscall) -> InitResult<()> {
    for p in paths {
        let path = Path::new(p);
        let fail = |e| InitFailure::sys(InitStep::ReadonlyPaths, p, e);
        let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
        match sys.mount(Some(path), path, None, rbind, None) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(fail(e)),
        }
        // nosuid, nodev and noexec may be locked: keep them.
        let keep = mount_flags(path).map_err(fail)?
            & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        let flags = keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        sys.mount(Some(path), path, None, flags, None)
            .map_err(fail)?;
    }
    Ok(())
}

/// A file is covered by /dev/null, a directory by an empty read-only tmpfs; a missing path is
/// skipped.
pub(super) fn masked_paths(paths: &[String], sys: &dyn Syscall) -> InitResult<()> {
    for p in paths {
        let path = Path::new(p);
        let fail = |e| InitFailure::sys(InitStep::MaskedPaths, p, e);
        match sys.mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => {
                let tmpfs = Some(Path::new("tmpfs"));
                sys.mount(tmpfs, path, Some("tmpfs"), MsFlags::MS_RDONLY, None)
                    .map_err(fail)?;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

/// The mount flags (`MS_*` share the `ST_*` values) of the mount `path` is on.
fn mount_flags(path: &Path) -> nix::Result<MsFlags> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok(MsFlags::from_bits_truncate(st.flags().bits() as _))
}
