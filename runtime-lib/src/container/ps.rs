//! `ps`: the container's processes, from its cgroup or, without one, its pid namespace.

use super::Container;
use crate::error::Error;
use crate::{Result, Status};

impl Container {
    /// `ps`: the host pids of every process in the container (runc's `ps --format json`).
    /// Errors: [`crate::Error::InvalidStatus`] once it has stopped.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// for pid in c.pids()? {
    ///     println!("{pid}");
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn pids(&self) -> Result<Vec<i32>> {
        let allowed = [Status::Created, Status::Running, Status::Paused];
        let init = self.pid();
        self.with_cgroup("ps", &allowed, |m| {
            let unplaced = m.paths().v1.is_empty() && m.paths().unified.is_none();
            if unplaced {
                // A rootless container without a cgroup of its own (see cgroups::rootless): its
                // processes are those of its pid namespace, when it has one.
                return pid_namespace_members(init);
            }
            m.pids()
        })
    }
}

/// The host pids of the processes in `init`'s pid namespace, if that is not ours (else just
/// `init`: without a cgroup nothing else tells the container's processes apart).
pub(super) fn pid_namespace_members(init: i32) -> Result<Vec<i32>> {
    let ns = crate::plan::namespaces::pid_namespace_inode(nix::unistd::Pid::from_raw(init))?;
    let ours = crate::plan::namespaces::pid_namespace_inode(nix::unistd::getpid())?;
    if ns == ours {
        return Ok(vec![init]);
    }
    let entries = std::fs::read_dir("/proc").map_err(|source| Error::Io {
        step: "read",
        path: "/proc".into(),
        source,
    })?;
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            // Processes that exit meanwhile, or that we may not inspect, are not listed.
            crate::plan::namespaces::pid_namespace_inode(nix::unistd::Pid::from_raw(pid))
                .is_ok_and(|i| i == ns)
        })
        .collect();
    pids.sort_unstable();
    Ok(pids)
}
