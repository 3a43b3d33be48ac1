//! The container's root filesystem, in spec order: rootfsPropagation, root.path bind, mounts (in
//! config order, destinations resolved inside the rootfs), devices, pivot_root (or MS_MOVE + chroot),
//! masked and readonly paths, readonly root. Behaviour follows runc 1.1.5 unless noted.

mod cgroup;
mod copyup;
mod devices;
mod masked_readonly;
mod mounts;
pub mod options;
mod pivot;
pub(crate) mod resolve;
#[cfg(test)]
mod tests;

pub use mounts::BindSources;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;
use procfs::process::{MountOptFields, Process};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::proc_handle::ProcFs;
use crate::syscall::Syscall;

/// What `prepare` made that `finalize` must find again after the pivot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// The config mounted a procfs on /proc: `Some(mount id)` (`Some(None)` on a kernel that
    /// does not tell mount ids).
    pub proc_mount: Option<Option<u64>>,
}

/// In the init's new mount namespace, before pivot: everything up to and including devices.
///
/// `rootfs` must be absolute. Relative bind sources are taken from the init's working directory
/// (runc's is the bundle).
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    sources: &BindSources,
    sys: &dyn Syscall,
) -> InitResult<Prepared> {
    // Nothing done in this namespace may reach the host: "/" becomes a slave of it, unless the
    // config asks for private. "shared" and "unbindable" wait for `finalize`: on the host's "/"
    // the one would send our mounts back to the host, and the other would forbid the bind of
    // root.path whenever the bundle sits on the root mount.
    let root_flags = rootfs_propagation(spec)?
        .filter(|f| f.intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE))
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    sys.mount(None, Path::new("/"), None, root_flags, None)
        .map_err(|e| InitFailure::sys(InitStep::RootfsPropagation, "/", e))?;
    // A slave parent is fine for pivot_root, and keeps rootfsPropagation=slave meaningful.
    let keep_slave = root_flags.contains(MsFlags::MS_SLAVE);
    make_parent_private(rootfs, keep_slave, sys)?;
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    let at = reach(rootfs);
    sys.mount(Some(&at), &at, None, bind, None)
        .map_err(|e| InitFailure::sys(InitStep::RootfsBind, rootfs.display(), e))?;

    let root = resolve::Root::open(&at)
        .map_err(|e| InitFailure::sys(InitStep::RootfsBind, rootfs.display(), e))?;
    mounts::mount_all(&mounts::Ctx {
        root: &root,
        sys,
        spec,
        sources,
    })?;
    let proc_mount = mounted_proc(spec, &root)?;
    if devices::needs_setup(spec) {
        devices::setup(spec, &root, sys)?;
    }
    Ok(Prepared { proc_mount })
}

/// The procfs the config put on /proc, as it is now: the root of a procfs, and which mount.
fn mounted_proc(spec: &Spec, root: &resolve::Root) -> InitResult<Option<Option<u64>>> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let on_proc = mounts.iter().any(|m| {
        resolve::clean(m.destination()) == Path::new("/proc")
            && m.typ()
                .as_deref()
                .is_some_and(|t| t == "proc" || t == "bind")
    });
    if !on_proc {
        return Ok(None);
    }
    let proc = ProcFs::open_in(root.fd()).map_err(|e| e.init(InitStep::Mount, "/proc"))?;
    Ok(Some(proc.mount_id()))
}

/// `rootfs` as the init names it in system calls: relative to its working directory (the
/// bundle, see `process::init`) when it lies beneath it. In a user namespace the mapped root may
/// not be allowed to traverse the host's directories above the bundle (a 0700 engine state
/// directory); a relative path never walks them. `rootfs` itself stays the name in messages and
/// the key for mount tables.
pub(crate) fn reach(rootfs: &Path) -> std::path::PathBuf {
    let Ok(cwd) = nix::unistd::getcwd() else {
        return rootfs.to_path_buf();
    };
    match rootfs.strip_prefix(&cwd) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.to_path_buf(),
        Err(_) => rootfs.to_path_buf(),
    }
}

/// Makes `rootfs` the root: pivot_root with the old root detached, or MS_MOVE + chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool, sys: &dyn Syscall) -> InitResult<()> {
    if no_pivot {
        pivot::move_root(rootfs, sys)
    } else {
        pivot::pivot_root(rootfs, sys)
    }
}

/// After pivot: read-only tmpfs and /dev mounts, root.readonly, readonlyPaths, maskedPaths, then
/// a shared or unbindable rootfsPropagation on the new root.
///
/// runc writes sysctls (and sets the hostname) between root.readonly and readonlyPaths: the
/// default config makes /proc/sys read-only, so sysctl must be applied before this is called.
pub fn finalize(spec: &Spec, prepared: &Prepared, sys: &dyn Syscall) -> InitResult<()> {
    // First: /proc is checked before anything is mounted by a path through it.
    let targets = masked_readonly::Targets::open(prepared, sys)?;
    masked_readonly::remount_readonly_mounts(spec, &targets, sys)?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        masked_readonly::readonly_root(sys)?;
    }
    let linux = spec.linux().as_ref();
    let readonly = linux.and_then(|l| l.readonly_paths().as_deref());
    let masked = linux.and_then(|l| l.masked_paths().as_deref());
    masked_readonly::readonly_paths(readonly.unwrap_or_default(), &targets, sys)?;
    masked_readonly::masked_paths(masked.unwrap_or_default(), &targets, sys)?;
    targets.leave(sys)?;
    // "shared" and "unbindable" need the new root itself: before the pivot they would make it
    // impossible (pivot_root refuses a shared mount) or reach the host's "/" (runc ≥ 1.1.6).
    // Last: readonly and masked paths are binds, which an unbindable tree refuses.
    if let Some(flags) = rootfs_propagation(spec)? {
        if !flags.intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE) {
            sys.mount(None, Path::new("/"), None, flags, None)
                .map_err(|e| InitFailure::sys(InitStep::RootfsPropagation, "/", e))?;
        }
    }
    Ok(())
}

/// `linux.rootfsPropagation` as mount flags; None when absent or empty.
fn rootfs_propagation(spec: &Spec) -> InitResult<Option<MsFlags>> {
    let Some(name) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    match options::propagation(name) {
        Some(flags) => Ok(Some(flags)),
        None => Err(InitFailure::new(InitStep::RootfsPropagation)
            .subject(name)
            .detail(format!("rootfsPropagation={name} is not supported"))),
    }
}

/// The bind of the rootfs must not propagate to other namespaces, and pivot_root refuses a shared
/// parent: a shared mount holding the rootfs becomes private (runc's rootfsParentMountPrivate).
fn make_parent_private(rootfs: &Path, slave: bool, sys: &dyn Syscall) -> InitResult<()> {
    let step = InitStep::RootfsPropagation;
    let mounts = Process::myself().and_then(|p| p.mountinfo()).map_err(|e| {
        InitFailure::new(step)
            .subject("/proc/self/mountinfo")
            .detail(e.to_string())
    })?;
    let parent = mounts
        .iter()
        .filter(|m| rootfs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len());
    let Some(parent) = parent else {
        return Ok(());
    };
    if parent
        .opt_fields
        .iter()
        .any(|f| matches!(f, MountOptFields::Shared(_)))
    {
        let flags = if slave {
            MsFlags::MS_SLAVE
        } else {
            MsFlags::MS_PRIVATE
        };
        sys.mount(None, &parent.mount_point, None, flags, None)
            .map_err(|e| InitFailure::sys(step, parent.mount_point.display(), e))?;
    }
    Ok(())
}

/// After pivot, with a terminal: the pty slave bind-mounted on /dev/console, as runc does, so
/// programs that open /dev/console reach the container's terminal rather than nothing.
pub fn mount_console(slave: &Path, sys: &dyn Syscall) -> InitResult<()> {
    let fail = |e| InitFailure::sys(InitStep::Console, "/dev/console", e);
    let root = resolve::Root::open(Path::new("/")).map_err(fail)?;
    let fd = root
        .open_in(Path::new("/dev/console"), resolve::Create::File)
        .map_err(fail)?;
    // The fd is named from inside a verified procfs: a path through the container's /proc could
    // be swapped for a symlink by the rootfs's owner.
    let proc = ProcFs::open().map_err(|e| e.init(InitStep::Console, "/proc"))?;
    sys.fchdir(proc.as_fd()).map_err(fail)?;
    let target = PathBuf::from(format!("self/fd/{}", fd.as_raw_fd()));
    let mounted = sys
        .mount(Some(slave), &target, None, MsFlags::MS_BIND, None)
        .map_err(fail);
    sys.chdir(Path::new("/")).map_err(fail)?;
    mounted
}
