//! linux.resources.network: v1's net_cls and net_prio (cgroup v2 has neither).

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use super::fs;
use crate::error::{Error, Result};

pub(super) fn needs_cls(n: &LinuxNetwork) -> bool {
    n.class_id().is_some_and(|c| c != 0)
}

pub(super) fn needs_prio(n: &LinuxNetwork) -> bool {
    n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

pub(super) fn set_cls(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    match n.class_id().filter(|c| *c != 0) {
        Some(c) => fs::write(dir, "net_cls.classid", &c.to_string()),
        None => Ok(()),
    }
}

pub(super) fn set_prio(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    for p in n.priorities().as_deref().unwrap_or_default() {
        fs::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

pub(super) fn refuse_v2(n: &LinuxNetwork) -> Result<()> {
    if needs_cls(n) || needs_prio(n) {
        return Err(Error::InvalidConfig {
            field: "linux.resources.network".into(),
            problem: "classID and priorities need the v1 net_cls/net_prio controllers, which cgroup v2 does not have".into(),
        });
    }
    Ok(())
}
