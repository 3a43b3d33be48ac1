//! Private temporary directories under `$TMPDIR/hull-it/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory every test bed file lives under, so a leftover is easy to attribute.
///
/// Mode 0700, owned by root, as containerd's and Docker's state directories are: every bundle
/// sits where a container's mapped ids cannot traverse, so a runtime step that follows a host path
/// from inside a user namespace fails in every such test, not only in one made for it.
pub fn base_dir() -> PathBuf {
    static MADE: std::sync::Once = std::sync::Once::new();
    let base = std::env::temp_dir().join("hull-it");
    MADE.call_once(|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&base).expect("create the test bed's base directory");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))
            .expect("make the test bed's base directory 0700");
    });
    base
}

/// A number unique within this process, for names that must not collide between parallel tests.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A directory removed on drop, unless something is still mounted beneath it: removing files
/// through a leftover mount could reach outside the test's own files (a bind of a host directory),
/// so then the directory is left in place and the leak check reports the mount.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/hull-it/<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> TempDir {
        let base = base_dir();
        let path = base.join(format!("{prefix}-{}-{:04}", std::process::id(), unique()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Creates `$TMPDIR/<prefix>-<pid>-<n>` with `mode`, outside the base directory, for a
    /// directory other users must traverse (the base directory is 0700, see [`base_dir`]): a
    /// Docker daemon's data root under --userns-remap, which the remapped root must enter.
    pub fn new_top_level(prefix: &str, mode: u32) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{:04}", std::process::id(), unique()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !crate::leaks::mounts_under(&self.path).is_empty() {
            eprintln!(
                "leaving {} in place: something is still mounted beneath it",
                self.path.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
