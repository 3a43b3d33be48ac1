//! `pause`: freezes the container's processes; here too the cgroup access every cgroup verb
//! shares.

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

    /// Runs `f` on the container's cgroup under the lock, if the status is one of `allowed`
    /// (pause, resume, ps and events share it).
    pub(super) fn with_cgroup<T>(
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

pub(super) fn no_cgroup() -> Error {
    Error::Unsupported {
        feature: "a container created without cgroups".into(),
    }
}
