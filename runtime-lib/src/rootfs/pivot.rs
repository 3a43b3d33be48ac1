//! Making the rootfs `/`: pivot_root, or MS_MOVE + chroot with `--no-pivot`.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use procfs::process::Process;

use crate::error::{InitFailure, InitResult, InitStep, SysContext};
use crate::syscall::Syscall;

/// pivot_root(".", "."): the old root ends up stacked under the new one, reachable as "." until
/// it is detached, so no directory has to be made in the rootfs (the LXC trick runc uses).
pub(super) fn pivot_root(rootfs: &Path, sys: &dyn Syscall) -> InitResult<()> {
    let step = InitStep::Pivot;
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = nix::fcntl::open("/", dir, Mode::empty()).init(step, "/")?;
    sys.chdir(&super::reach(rootfs))
        .init(step, rootfs.display())?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .init(step, rootfs.display())?;
    // The kernel leaves "." on the old root today; do not rely on it.
    sys.fchdir(old_root.as_fd()).init(step, "old root")?;
    // Slave, not private: the unmount below must not propagate to the host, while mounts the host
    // still holds references to keep working (runc's reasoning).
    sys.mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| InitFailure::sys(step, "old root", e).detail("make rslave"))?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(|e| InitFailure::sys(step, "old root", e).detail("detach"))?;
    sys.chdir(Path::new("/")).init(step, "/")
}

/// `--no-pivot`: the host's root stays in the namespace, under the chroot. First hide the host's
/// full proc and sysfs mounts, without which the kernel would let the container mount its own
/// proc and sysfs despite masked paths (runc's msMoveRoot).
pub(super) fn move_root(rootfs: &Path, sys: &dyn Syscall) -> InitResult<()> {
    let step = InitStep::Pivot;
    sys.chdir(&super::reach(rootfs))
        .init(step, rootfs.display())?;
    let mounts = Process::myself().and_then(|p| p.mountinfo()).map_err(|e| {
        InitFailure::new(step)
            .subject("/proc/self/mountinfo")
            .detail(e.to_string())
    })?;
    for m in mounts.iter() {
        let full = m.root == "/" && (m.fs_type == "proc" || m.fs_type == "sysfs");
        if !full || m.mount_point.starts_with(rootfs) {
            continue;
        }
        let p = m.mount_point.as_path();
        match sys.mount(None, p, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None) {
            Ok(()) => {}
            // Gone with a parent already detached.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(InitFailure::sys(step, p.display(), e).detail("make rslave")),
        }
        match sys.umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Not ours to unmount (locked in a user namespace): cover it instead.
            Err(Errno::EINVAL | Errno::EPERM) => {
                sys.mount(
                    Some(Path::new("tmpfs")),
                    p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None,
                )
                .map_err(|e| InitFailure::sys(step, p.display(), e).detail("cover"))?;
            }
            Err(e) => return Err(InitFailure::sys(step, p.display(), e).detail("detach")),
        }
    }
    sys.mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)
        .map_err(|e| InitFailure::sys(step, rootfs.display(), e).detail("move to /"))?;
    sys.chroot(Path::new(".")).init(step, rootfs.display())?;
    sys.chdir(Path::new("/")).init(step, "/")
}
