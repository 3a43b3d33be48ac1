//! What `hull events` reports (runc's verb of the same name): a container's resource usage read
//! from its cgroup, and its out-of-memory events.

pub use crate::cgroups::stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Event, Hugetlb, IntelRdt, Memory, MemoryEntry, Pids,
    Stats, Throttling,
};
pub use crate::cgroups::{OomEvent, OomWatcher};
