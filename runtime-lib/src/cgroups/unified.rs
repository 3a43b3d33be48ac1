//! linux.resources.unified: raw cgroup v2 files.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use nix::errno::Errno;

use super::fs;
use crate::error::{Error, Result};

fn invalid(problem: String) -> Error {
    Error::InvalidConfig {
        field: "linux.resources.unified".into(),
        problem,
    }
}

/// The controller a unified key belongs to ("memory.high" → "memory").
pub fn controller_of(key: &str) -> Result<&str> {
    if key.contains('/') {
        return Err(invalid(format!(
            "unified resource {key:?} must be a file name (no slashes)"
        )));
    }
    match key.split_once('.') {
        Some((c, rest)) if !c.is_empty() && !rest.is_empty() => Ok(c),
        _ => Err(invalid(format!(
            "unified resource {key:?} must be in the form CONTROLLER.PARAMETER"
        ))),
    }
}

/// Writes every key into the v2 directory `dir`; `available` is what its cgroup.controllers lists.
pub(super) fn set(
    dir: &Path,
    unified: &HashMap<String, String>,
    available: &BTreeSet<String>,
) -> Result<()> {
    let mut keys: Vec<_> = unified.iter().collect();
    keys.sort();
    for (k, v) in keys {
        let c = controller_of(k)?;
        match fs::try_write(dir, k, v) {
            Ok(()) => {}
            Err(f) if f.not_found() || f.errno() == Some(Errno::EACCES) => {
                if c != "cgroup" && !available.contains(c) {
                    return Err(invalid(format!(
                        "unified resource {k:?} can't be set: controller {c:?} not available"
                    )));
                }
                return Err(f.into_error(v));
            }
            Err(f) => return Err(f.into_error(v)),
        }
    }
    Ok(())
}

/// On a v1 host (and on hybrid for controllers the cgroup2 hierarchy lacks): runc's refusal.
pub(super) fn refuse_v1() -> Error {
    invalid("cannot use unified on cgroup v1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(controller_of("memory.high").unwrap(), "memory");
        assert_eq!(controller_of("cgroup.freeze").unwrap(), "cgroup");
        assert!(controller_of("../memory.max").is_err());
        assert!(controller_of("memory").is_err());
    }
}
