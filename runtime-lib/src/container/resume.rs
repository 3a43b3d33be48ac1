//! `resume`: thaws what `pause` froze.

use super::Container;
use crate::{cgroups, Result, Status};

impl Container {
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
}
