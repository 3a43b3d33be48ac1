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
    let mut states = Vec::new();
    for entry in entries {
        let entry = entry.io("read state root", root)?;
        // The directory entry's type costs no system call (a stat per container otherwise);
        // anything but a directory is not a container.
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            continue;
        }
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match Container::load_listed(root, &id) {
            Ok(c) => states.push(c.state()),
            Err(Error::ContainerNotFound { .. } | Error::InvalidId { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(states)
}
