//! process.rlimits.

use oci_spec::runtime::PosixRlimit;

use crate::error::InitResult;

pub fn apply(rlimits: &[PosixRlimit]) -> InitResult<()> {
    let _ = rlimits;
    todo!("helper E")
}
