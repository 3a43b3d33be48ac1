//! linux.sysctl, written through the container's /proc/sys after pivot_root.

use std::collections::HashMap;

use crate::error::InitResult;
use crate::syscall::Syscall;

pub fn apply(sysctl: &HashMap<String, String>, sys: &dyn Syscall) -> InitResult<()> {
    let _ = (sysctl, sys);
    todo!("helper E")
}
