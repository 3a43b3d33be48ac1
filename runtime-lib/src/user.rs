//! process.user and linux.uidMappings/gidMappings.

use nix::unistd::Pid;
use oci_spec::runtime::{Spec, User};

use crate::error::InitResult;
use crate::syscall::Syscall;
use crate::Result;

/// In the runtime: writes /proc/<pid>/uid_map and gid_map (and setgroups where needed) for an init
/// that has just entered a new user namespace.
pub fn write_id_mappings(pid: Pid, spec: &Spec) -> Result<()> {
    let _ = (pid, spec);
    todo!("helper E")
}

/// In the init: additionalGids, gid, uid (in that order, so setgroups still has the privilege), umask.
pub fn set_user(user: &User, sys: &dyn Syscall) -> InitResult<()> {
    let _ = (user, sys);
    todo!("helper E")
}
