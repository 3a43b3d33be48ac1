//! linux.resources.pids.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use super::fs;
use crate::error::Result;

/// The pids.max value: 0 is "not set"; v1 takes any negative as unlimited, v2 only -1.
pub fn pids_max(limit: i64, v2: bool) -> Option<String> {
    match limit {
        0 => None,
        l if l > 0 => Some(l.to_string()),
        -1 => Some("max".into()),
        l if v2 => Some(l.to_string()),
        _ => Some("max".into()),
    }
}

pub(super) fn needs(p: &LinuxPids) -> bool {
    p.limit() != 0
}

pub(super) fn set(dir: &Path, p: &LinuxPids, v2: bool) -> Result<()> {
    match pids_max(p.limit(), v2) {
        Some(v) => fs::write(dir, "pids.max", &v),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(pids_max(0, false), None);
        assert_eq!(pids_max(10, true).as_deref(), Some("10"));
        assert_eq!(pids_max(-1, true).as_deref(), Some("max"));
        assert_eq!(pids_max(-5, false).as_deref(), Some("max"));
        // v2 hands other negatives to the kernel, which refuses them (as runc).
        assert_eq!(pids_max(-5, true).as_deref(), Some("-5"));
    }
}
