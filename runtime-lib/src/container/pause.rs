use super::Container;
use crate::error::Error;
use crate::{cgroups, Result, Status};

impl Container {
    /// `pause`: freezes every process of a created or running container (runc's `pause`).
    /// Errors: [`crate::Error::InvalidStatus`] in any other status.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// c.pause()?;
    /// assert_eq!(c.status(), hull::Status::Paused);
    /// c.resume()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn pause(&self) -> Result<()> {
        self.with_cgroup("pause", &[Status::Created, Status::Running], |m| {
            cgroups::pause(m)
        })
    }

    /// `resume`: thaws a paused container (runc's `resume`). Errors:
    /// [`crate::Error::InvalidStatus`] unless it is paused.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// if c.status() == hull::Status::Paused {
    ///     c.resume()?;
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn resume(&self) -> Result<()> {
        self.with_cgroup("resume", &[Status::Paused], |m| cgroups::resume(m))
    }

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

    /// `events --stats`: one stats event (runc's JSON shape), read from the container's cgroup.
    /// Errors: [`crate::Error::InvalidStatus`] once it has stopped.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let stats = c.stats()?.data.unwrap_or_default();
    /// println!("cpu {} ns, memory {} bytes", stats.cpu.usage.total, stats.memory.usage.usage);
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn stats(&self) -> Result<cgroups::stats::Event> {
        let allowed = [Status::Created, Status::Running, Status::Paused];
        let id = self.id().to_string();
        self.with_cgroup("events", &allowed, |m| cgroups::stats_event(m, &id))
    }

    /// `events`: a watcher of the container's OOM events (see [`crate::events`]). Errors:
    /// [`crate::Error::InvalidStatus`] once it has stopped.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let mut watcher = c.oom_watcher()?;
    /// if watcher.wait(std::time::Duration::from_secs(10))? == hull::events::OomEvent::Oom {
    ///     eprintln!("web ran out of memory");
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn oom_watcher(&self) -> Result<cgroups::OomWatcher> {
        let allowed = [Status::Created, Status::Running, Status::Paused];
        self.with_cgroup("events", &allowed, |m| m.oom_watcher())
    }

    /// `update`: merges `changes` into the container's resources (runc's rules), writes them and
    /// records the result (runc's `update --resources`). Errors:
    /// [`crate::Error::InvalidStatus`] once it has stopped, [`crate::Error::InvalidConfig`] for a
    /// value the merge or the cgroup refuses.
    ///
    /// ```no_run
    /// use hull::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    ///
    /// let memory = LinuxMemoryBuilder::default().limit(256 << 20).build().expect("memory");
    /// let changes = LinuxResourcesBuilder::default().memory(memory).build().expect("resources");
    /// let mut c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// c.update(&changes)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn update(&mut self, changes: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _lock = self.dir.lock()?;
        let mut record = self.dir.read()?;
        let status = self.dir.status(&record);
        if status == Status::Stopped {
            return Err(Error::InvalidStatus {
                id: record.state.id.clone(),
                op: "update",
                status,
            });
        }
        let paths = record.cgroups.clone().ok_or_else(no_cgroup)?;
        let current = record.resources.clone().unwrap_or_default();
        let merged = cgroups::update(&*cgroups::load(&paths), &current, changes)?;
        record.resources = Some(merged);
        self.dir.write(&record)?;
        self.record = record;
        Ok(())
    }

    /// Runs `f` on the container's cgroup under the lock, if the status is one of `allowed`.
    fn with_cgroup<T>(
        &self,
        op: &'static str,
        allowed: &[Status],
        f: impl FnOnce(&dyn cgroups::Manager) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.dir.lock()?;
        let record = self.dir.read()?;
        let status = self.dir.status(&record);
        if !allowed.contains(&status) {
            return Err(Error::InvalidStatus {
                id: record.state.id.clone(),
                op,
                status,
            });
        }
        let paths = record.cgroups.as_ref().ok_or_else(no_cgroup)?;
        f(&*cgroups::load(paths))
    }
}

fn no_cgroup() -> Error {
    Error::Unsupported {
        feature: "a container created without cgroups".into(),
    }
}

/// The host pids of the processes in `init`'s pid namespace, if that is not ours (else just
/// `init`: without a cgroup nothing else tells the container's processes apart).
pub(super) fn pid_namespace_members(init: i32) -> Result<Vec<i32>> {
    let ns = crate::namespaces::pid_namespace_inode(nix::unistd::Pid::from_raw(init))?;
    let ours = crate::namespaces::pid_namespace_inode(nix::unistd::getpid())?;
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
            crate::namespaces::pid_namespace_inode(nix::unistd::Pid::from_raw(pid))
                .is_ok_and(|i| i == ns)
        })
        .collect();
    pids.sort_unstable();
    Ok(pids)
}
