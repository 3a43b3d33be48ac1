//! A fresh child joining its v1 cgroups itself.
//!
//! Writing a pid to `cgroup.procs` (or `tasks`) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, and that first waits out an RCU grace period unless
//! another attach happened within the last one: 5 to 15 ms on this machine kind, more than the
//! whole rest of a `run`. A single thread writing `0` (itself) to a v1 `tasks` file takes no such
//! lock: the kernel skips it when the thread being moved is the writer. The init and an exec'd
//! process are single-threaded until their execve, so they join the v1 hierarchies that way, and
//! the v2 (or hybrid's unified) one by being cloned into it (clone3 CLONE_INTO_CGROUP), which
//! takes the lock only for reading. The runtime opens the files before the clone, when the
//! directories are made and the limits of `create` are still to be set; the child writes only
//! once the runtime says the limits are set (`CgroupsApplied`), and closes them before anything
//! of the container is reached: they are a way into the host's cgroupfs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// The `tasks` files of a container's v1 hierarchies, open for writing.
#[derive(Debug, Default)]
pub struct SelfJoin {
    files: Vec<TasksFile>,
}

#[derive(Debug)]
struct TasksFile {
    path: PathBuf,
    fd: OwnedFd,
    /// `name=systemd`: joined so systemd tools see the container; a failure is not one (runc).
    optional: bool,
}

impl SelfJoin {
    pub(crate) fn push(&mut self, path: PathBuf, fd: OwnedFd, optional: bool) {
        self.files.push(TasksFile { path, fd, optional });
    }

    /// True when the child has nothing to join itself: the runtime moves it.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The descriptors, for the child's list of those it keeps until it has joined.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.files.iter().map(|f| f.fd.as_fd())
    }

    /// Each file, in the order the runtime would have written them: its path, descriptor, and
    /// whether a failure to join it may be ignored.
    pub fn files(&self) -> impl Iterator<Item = (&std::path::Path, BorrowedFd<'_>, bool)> {
        self.files
            .iter()
            .map(|f| (f.path.as_path(), f.fd.as_fd(), f.optional))
    }
}
