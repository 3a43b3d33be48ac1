//! `update`: new resources for a live container, merged, written and recorded.

use super::Container;
use crate::error::Error;
use crate::{cgroups, Result, Status};

impl Container {
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
        let paths = record.cgroups.clone().ok_or_else(super::pause::no_cgroup)?;
        let current = record.resources.clone().unwrap_or_default();
        let merged = cgroups::update(&*cgroups::load(&paths), &current, changes)?;
        record.resources = Some(merged);
        self.dir.write(&record)?;
        self.record = record;
        Ok(())
    }
}
