//! process.capabilities: the five sets, applied with the `caps` crate.

use oci_spec::runtime::LinuxCapabilities;

use crate::error::InitResult;

/// Before changing uid: keep the permitted set across setuid, and shrink the bounding set (which needs
/// CAP_SETPCAP, so it must happen while the init is still root).
pub fn prepare(caps: Option<&LinuxCapabilities>) -> InitResult<()> {
    let _ = caps;
    todo!("helper E")
}

/// After changing uid: set effective, permitted, inheritable, then ambient.
pub fn apply(caps: Option<&LinuxCapabilities>) -> InitResult<()> {
    let _ = caps;
    todo!("helper E")
}
