//! The manager of a rootless container that has no cgroup of its own: no hierarchy was writable
//! (see [`super::rootless`]), so it stays in its creator's cgroups, as runc leaves it. Nothing to
//! make, join or remove; the checks before create made sure no resource needs a cgroup.

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::{CgroupPaths, FreezerState, Manager, OomWatcher, Stats};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Unplaced {
    paths: CgroupPaths,
}

impl Unplaced {
    pub(super) fn load(paths: CgroupPaths) -> Unplaced {
        Unplaced { paths }
    }
}

fn no_cgroup(what: &str) -> Error {
    Error::Unsupported {
        feature: format!(
            "{what} for a rootless container without a cgroup of its own (no writable, delegated \
             cgroup for this user)"
        ),
    }
}

impl Manager for Unplaced {
    fn create(&mut self, _resources: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }

    fn join(&self, _pid: Pid) -> Result<()> {
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        // `update` comes here with whatever it was given; create's resources were checked.
        match super::rootless::needed(r).first() {
            None if r.unified().as_ref().is_none_or(|u| u.is_empty()) => Ok(()),
            Some((_, field)) => Err(no_cgroup(&format!("linux.resources.{field}"))),
            None => Err(no_cgroup("linux.resources.unified")),
        }
    }

    fn freeze(&self) -> Result<()> {
        Err(no_cgroup("pause"))
    }

    fn thaw(&self) -> Result<()> {
        Err(no_cgroup("resume"))
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        Ok(FreezerState::Undefined)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }

    fn stats(&self) -> Result<Stats> {
        Ok(Stats::default())
    }

    fn oom_kill_count(&self) -> Result<u64> {
        Ok(0)
    }

    fn oom_watcher(&self) -> Result<OomWatcher> {
        Err(no_cgroup("memory events"))
    }

    fn destroy(&mut self) -> Result<()> {
        Ok(())
    }

    fn paths(&self) -> &CgroupPaths {
        &self.paths
    }
}
