use std::path::Path;

use crate::{Result, State};

/// Every container under `root`, with its status computed now. A missing root is an empty list.
pub fn list(root: &Path) -> Result<Vec<State>> {
    let _ = root;
    todo!()
}
