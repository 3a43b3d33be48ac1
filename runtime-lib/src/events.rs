//! What `hull events` reports (runc's verb of the same name): a container's resource usage read
//! from its cgroup, and its out-of-memory events.
//!
//! ```no_run
//! use hull::events::{Event, OomEvent};
//! use std::time::Duration;
//!
//! // `hull events --interval 5s web`: a stats line every 5 s, an oom line at each OOM kill.
//! let c = hull::Container::load("/run/hull".as_ref(), "web")?;
//! let mut watcher = c.oom_watcher()?;
//! loop {
//!     let event = match watcher.wait(Duration::from_secs(5))? {
//!         OomEvent::Oom => Event::oom(c.id()),
//!         OomEvent::Timeout => c.stats()?,
//!         OomEvent::Gone => break,
//!     };
//!     println!("{}", serde_json::to_string(&event).unwrap_or_default());
//! }
//! # Ok::<(), hull::Error>(())
//! ```

pub use crate::cgroups::stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Event, Hugetlb, IntelRdt, Memory, MemoryEntry, Pids,
    Stats, Throttling,
};
pub use crate::cgroups::{OomEvent, OomWatcher};
