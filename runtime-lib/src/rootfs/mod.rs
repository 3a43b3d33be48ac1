//! The container's root filesystem, in spec order: rootfsPropagation, root.path bind, mounts (in
//! config order, destinations resolved inside the rootfs), devices, pivot_root (or MS_MOVE + chroot),
//! masked and readonly paths, readonly root.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::InitResult;
use crate::syscall::Syscall;

/// In the init's new mount namespace, before pivot: everything up to and including devices.
pub fn prepare(spec: &Spec, rootfs: &Path, sys: &dyn Syscall) -> InitResult<()> {
    let _ = (spec, rootfs, sys);
    todo!("helper A")
}

/// Makes `rootfs` the root: pivot_root with the old root detached, or MS_MOVE + chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool, sys: &dyn Syscall) -> InitResult<()> {
    let _ = (rootfs, no_pivot, sys);
    todo!("helper A")
}

/// After pivot: maskedPaths, readonlyPaths, root.readonly.
pub fn finalize(spec: &Spec, sys: &dyn Syscall) -> InitResult<()> {
    let _ = (spec, sys);
    todo!("helper A")
}
