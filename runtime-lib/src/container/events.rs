//! `events`: one stats event, or a watcher of the container's OOM events.

use super::Container;
use crate::{cgroups, Result, Status};

impl Container {
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
}
