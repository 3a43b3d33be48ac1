use std::path::Path;

use super::Container;
use crate::error::Context;
use crate::{Error, Result, State};

/// Every container under `root`, with its status computed now, sorted by id. A missing root is an
/// empty list; a directory that is not (or no longer) a container is skipped. runc's `list`.
///
/// ```no_run
/// for s in hull::container::list("/run/hull".as_ref())? {
///     println!("{}\t{}\t{}", s.id, s.pid, s.status);
/// }
/// # Ok::<(), hull::Error>(())
/// ```
pub fn list(root: &Path) -> Result<Vec<State>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).io("read state root", root),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.io("read state root", root)?;
        // The directory entry's type costs no system call (a stat per container otherwise);
        // anything but a directory is not a container.
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            continue;
        }
        if let Some(id) = entry.file_name().to_str() {
            ids.push(id.to_string());
        }
    }
    let mut states = states_of(root, &ids)?;
    states.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(states)
}

/// Below this many containers one thread lists them (a thread costs about as much as 2
/// containers' system calls).
const PER_THREAD: usize = 64;

/// The states of `ids`, in their order. A container's status costs about a dozen system calls
/// (state.json, the init's /proc stat, the freezer, the exec fifo) and the containers are
/// independent, so a long list is split between the CPUs this process may run on: `list` of
/// 1,000 on 2 CPUs takes a little over half the time.
fn states_of(root: &Path, ids: &[String]) -> Result<Vec<State>> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus.min(ids.len() / PER_THREAD).max(1);
    if threads == 1 {
        return states_in(root, ids);
    }
    let chunk = ids.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let running: Vec<_> = ids
            .chunks(chunk)
            .map(|part| scope.spawn(move || states_in(root, part)))
            .collect();
        let mut states = Vec::with_capacity(ids.len());
        for t in running {
            // A panic in a lister is a bug; resumed here, where the caller would have seen it.
            let part = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            states.extend(part);
        }
        Ok(states)
    })
}

fn states_in(root: &Path, ids: &[String]) -> Result<Vec<State>> {
    let mut states = Vec::with_capacity(ids.len());
    for id in ids {
        match Container::load_listed(root, id) {
            Ok(c) => states.push(c.state()),
            Err(Error::ContainerNotFound { .. } | Error::InvalidId { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(states)
}
