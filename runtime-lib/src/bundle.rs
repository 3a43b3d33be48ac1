//! Loading a bundle: config.json through oci-spec, then every check that can be made before the
//! system is touched (so bad input fails before any directory, mount or process exists).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::Result;

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    pub spec: Spec,
    /// Absolute, canonical path of `root.path` (resolved against the bundle directory).
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads `<path>/config.json` and validates it (see `validate`).
    pub fn load(path: &Path) -> Result<Bundle> {
        let _ = path;
        todo!("helper E")
    }
}

/// Every check that needs no side effect. Error wording names the field (`process.args`,
/// `linux.namespaces[2]`...) and what is wrong with it.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    let _ = (spec, bundle);
    todo!("helper E")
}
