//! /dev: the devices every container gets, `linux.devices`, /dev/ptmx and the /dev symlinks.
//!
//! As runc: done unless /dev is a bind mount (even with no /dev mount at all, then on the rootfs
//! itself); a device the config also lists is made as the config says; in a user namespace, or when
//! mknod is refused, the host's device is bind-mounted onto an empty file instead.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::mounts::Entry;
use super::resolve::{self, Create, Root};
use crate::error::{InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;

/// One device node to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// runc's defaults: always present, all 0666 root:root.
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/random", 1, 8),
    ("/dev/full", 1, 7),
    ("/dev/tty", 5, 0),
    ("/dev/zero", 1, 5),
    ("/dev/urandom", 1, 9),
];

/// runc leaves /dev alone only when the config bind-mounts something there.
pub(super) fn needs_setup(spec: &Spec) -> bool {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    !mounts.iter().any(|m| {
        resolve::clean(m.destination()) == Path::new("/dev")
            && Entry::from_spec(m, None).is_ok_and(|e| e.opts.flags.contains(MsFlags::MS_BIND))
    })
}

/// The defaults the config does not override, then the config's devices, in that order.
pub(super) fn list(spec: &Spec) -> InitResult<Vec<Device>> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    let mut out: Vec<Device> = DEFAULTS
        .iter()
        .filter(|(p, ..)| !configured.iter().any(|d| d.path() == Path::new(p)))
        .map(|&(p, major, minor)| Device {
            path: p.into(),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in configured {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            other => {
                return Err(InitFailure::new(InitStep::Devices)
                    .subject(d.path().display())
                    .detail(format!("{} is not a valid device type", other.as_str())))
            }
        };
        out.push(Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & !libc::S_IFMT,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

pub(super) fn setup(spec: &Spec, root: &Root, sys: &dyn Syscall) -> InitResult<()> {
    let bind = in_user_namespace();
    for dev in list(spec)? {
        // /dev/ptmx is the devpts one, see below.
        if resolve::clean(&dev.path) == Path::new("/dev/ptmx") {
            continue;
        }
        create(&dev, root, bind, sys)?;
    }
    let dev_dir = root
        .open_in(Path::new("/dev"), Create::Dir)
        .map_err(|e| InitFailure::sys(InitStep::Devices, "/dev", e))?;
    let dev_dir_path = resolve::fd_path(&dev_dir);
    match nix::unistd::unlinkat(&dev_dir, "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(InitFailure::sys(InitStep::Devices, "/dev/ptmx", e)),
    }
    sys.symlink(Path::new("pts/ptmx"), &dev_dir_path.join("ptmx"))
        .map_err(|e| InitFailure::sys(InitStep::Devices, "/dev/ptmx", e))?;

    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // Only where the kernel has one (CONFIG_PROC_KCORE), as runc.
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match sys.symlink(Path::new(target), &dev_dir_path.join(name)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(InitFailure::sys(
                    InitStep::Devices,
                    format!("/dev/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn create(dev: &Device, root: &Root, bind: bool, sys: &dyn Syscall) -> InitResult<()> {
    let fail = |e| InitFailure::sys(InitStep::Devices, dev.path.display(), e);
    let (Some(parent), Some(name)) = (dev.path.parent(), dev.path.file_name()) else {
        return Err(InitFailure::new(InitStep::Devices)
            .subject(dev.path.display())
            .detail("not a device path"));
    };
    if bind {
        return bind_host_device(dev, root, sys);
    }
    let dir = root.open_in(parent, Create::Dir).map_err(fail)?;
    let node = resolve::fd_path(&dir).join(name);
    let rdev = nix::sys::stat::makedev(dev.major, dev.minor);
    let mode = Mode::from_bits_truncate(dev.mode);
    match sys.mknod(&node, dev.kind, mode, rdev) {
        Ok(()) => {}
        // The spec: an existing file is fine only if it is the requested device.
        Err(Errno::EEXIST) => return check_existing(dev, &dir, name, rdev),
        Err(Errno::EPERM) => return bind_host_device(dev, root, sys),
        Err(e) => return Err(fail(e)),
    }
    // mknod applied the umask; the config's mode is exact.
    sys.fchmodat(dir.as_fd(), name, mode).map_err(fail)?;
    let (uid, gid) = (Uid::from_raw(dev.uid), Gid::from_raw(dev.gid));
    sys.fchownat(dir.as_fd(), name, uid, gid).map_err(fail)
}

fn check_existing(
    dev: &Device,
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    rdev: u64,
) -> InitResult<()> {
    let st = nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| InitFailure::sys(InitStep::Devices, dev.path.display(), e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind == dev.kind && (kind == SFlag::S_IFIFO || st.st_rdev == rdev) {
        return Ok(());
    }
    Err(InitFailure::new(InitStep::Devices)
        .subject(dev.path.display())
        .detail("a file that is not the requested device already exists there"))
}

/// A user namespace may not mknod: the host's node, bind-mounted onto an empty file, is the same
/// device (the source is the config's path on the host, as runc).
fn bind_host_device(dev: &Device, root: &Root, sys: &dyn Syscall) -> InitResult<()> {
    let fail = |e| InitFailure::sys(InitStep::Devices, dev.path.display(), e);
    let fd = root.open_in(&dev.path, Create::File).map_err(fail)?;
    sys.mount(
        Some(&dev.path),
        &resolve::fd_path(&fd),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(|e| fail(e).detail("bind mount host device"))
}

/// Whether the init runs in a user namespace other than the initial one (runc's test).
fn in_user_namespace() -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return false;
    };
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}
