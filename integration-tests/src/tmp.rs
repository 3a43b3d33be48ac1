//! Private temporary directories under `$TMPDIR/hull-it/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory every test bed file lives under, so a leftover is easy to attribute.
pub fn base_dir() -> PathBuf {
    std::env::temp_dir().join("hull-it")
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
        std::fs::create_dir_all(&base).expect("create the test bed's base directory");
        let path = base.join(format!("{prefix}-{}-{:04}", std::process::id(), unique()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Creates `$TMPDIR/<prefix>-<pid>-<n>` with `mode`, outside the base directory, for a
    /// directory other users must traverse (the base directory's mode is whatever the first
    /// test process's umask made it).
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
