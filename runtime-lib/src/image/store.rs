//! The layer store: each layer unpacked once, under its digest, shared by every container.
//!
//! ```text
//! <root>/layers/<alg>/<hex>/   a layer, unpacked (overlayfs lower directory), never changed again
//! <root>/tmp/<pid>-<n>-<hex>/  a layer being unpacked; renamed into layers/ once complete
//! <root>/tmp/<pid>-<n>-<hex>.lock  held (flock) by its unpacker for as long as it works there
//! <root>/containers/<id>/      a container's writable layer and bundle (see ContainerRoot)
//! ```
//!
//! A layer appears in `layers/` only whole and verified: it is unpacked into `tmp/` and renamed
//! with `RENAME_NOREPLACE`. Two processes that unpack the same layer at once each unpack their own
//! copy; the first rename wins and the other copy is removed, so readers never see a partial
//! layer and no lock is needed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::fcntl::{open, AtFlags, Flock, FlockArg, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::unistd::linkat;
use oci_spec::image::{Descriptor, Digest};

use super::digest::{checkable, Hasher, HashingReader};
use super::layout::{image_error, verify, Image, ImageLayout};
use super::unpack::{decompress, unpack_tar, Compression, UnpackOptions};
use crate::{Error, Result};

/// A content-addressed store of unpacked layers (and of the containers made from them).
///
/// ```no_run
/// use hull::image::{ImageLayout, LayerStore};
/// let layout = ImageLayout::open("/srv/images/busybox")?;
/// let image = layout.image(None)?;
/// let store = LayerStore::open("/var/lib/hull-images")?;
/// let layers = store.unpack(&layout, &image)?; // a second call unpacks nothing
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
    opts: UnpackOptions,
}

impl LayerStore {
    /// Opens the store at `root` (an absolute path), creating it (mode 0700) if needed, and
    /// removes what unpackers that died left in its `tmp/`.
    ///
    /// ```no_run
    /// let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn open(root: impl AsRef<Path>) -> Result<LayerStore> {
        let root = root.as_ref().to_path_buf();
        // The store's paths go into overlayfs' mount options, which are text, and where these
        // characters separate values.
        let fit = root
            .to_str()
            .is_some_and(|text| !text.contains([':', ',', '\\', '=']));
        if !root.is_absolute() || !fit {
            return Err(image_error(
                &root,
                "the layer store must be an absolute UTF-8 path without ':', ',', '\\' or '='"
                    .to_string(),
            ));
        }
        for dir in [
            root.clone(),
            root.join("layers"),
            root.join("tmp"),
            root.join("containers"),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| Error::Io {
                    step: "create layer store directory",
                    path: dir.clone(),
                    source,
                })?;
        }
        let store = LayerStore {
            root,
            opts: UnpackOptions::default(),
        };
        store.sweep_tmp();
        Ok(store)
    }

    /// The same store, unpacking layers with `opts` (for example with device nodes allowed).
    ///
    /// ```no_run
    /// use hull::image::{LayerStore, UnpackOptions};
    /// let opts = UnpackOptions {
    ///     allow_devices: true,
    ///     ..Default::default()
    /// };
    /// let store = LayerStore::open("/var/lib/hull-images")?.with_options(opts);
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn with_options(mut self, opts: UnpackOptions) -> LayerStore {
        self.opts = opts;
        self
    }

    /// The store's root directory.
    ///
    /// ```no_run
    /// let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// assert!(store.path().join("layers").is_dir());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the layer of blob digest `digest` is (or will be) unpacked.
    ///
    /// ```no_run
    /// # let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
    /// # let image = layout.image(None)?;
    /// let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// let dir = store.layer_path(image.layers()[0].digest())?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn layer_path(&self, digest: &Digest) -> Result<PathBuf> {
        if !checkable(digest) {
            return Err(image_error(
                &self.root,
                format!("digest {digest} is not one hull can verify"),
            ));
        }
        Ok(self
            .root
            .join("layers")
            .join(digest.algorithm().as_ref())
            .join(digest.digest()))
    }

    /// Unpacks every layer of `image` that the store does not hold yet and returns the layers'
    /// directories, base first.
    ///
    /// ```no_run
    /// use hull::image::{ImageLayout, LayerStore};
    /// let layout = ImageLayout::open("/srv/images/busybox")?;
    /// let store = LayerStore::open("/var/lib/hull-images")?;
    /// let dirs = store.unpack(&layout, &layout.image(None)?)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn unpack(&self, layout: &ImageLayout, image: &Image) -> Result<Vec<PathBuf>> {
        let diff_ids = image.config().rootfs().diff_ids();
        image
            .layers()
            .iter()
            .enumerate()
            .map(|(i, desc)| {
                let diff_id = diff_ids.get(i).map(|d| d.parse::<Digest>()).transpose();
                let diff_id = diff_id.map_err(|e| {
                    image_error(layout.path(), format!("rootfs.diff_ids[{i}]: {e}"))
                })?;
                self.unpack_layer(layout, desc, diff_id.as_ref())
            })
            .collect()
    }

    /// Unpacks the layer `desc` of `layout` unless the store holds it already, and returns its
    /// directory. The blob is checked against `desc`'s digest and size, and the uncompressed
    /// tar against `diff_id` when given (the image config's `rootfs.diff_ids` entry); a layer
    /// that fails either check, or holds a refused entry, leaves nothing in the store.
    ///
    /// ```no_run
    /// use hull::image::{ImageLayout, LayerStore};
    /// let layout = ImageLayout::open("/srv/images/busybox")?;
    /// let image = layout.image(None)?;
    /// let store = LayerStore::open("/var/lib/hull-images")?;
    /// let dir = store.unpack_layer(&layout, &image.layers()[0], None)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn unpack_layer(
        &self,
        layout: &ImageLayout,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
    ) -> Result<PathBuf> {
        let dest = self.layer_path(desc.digest())?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let compression = Compression::of(desc.media_type())?;
        let claim = TmpClaim::new(&self.root.join("tmp"), desc.digest().digest())?;
        self.unpack_into(layout, desc, diff_id, compression, &claim.dir)
            .and_then(|()| self.install(&claim.dir, &dest))?;
        Ok(dest)
    }

    fn unpack_into(
        &self,
        layout: &ImageLayout,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
        compression: Compression,
        tmp: &Path,
    ) -> Result<()> {
        let (blob_path, mut blob) = layout.open_blob(desc)?;
        let layer = desc.digest().to_string();
        let unpacked = (|| {
            let stream = decompress(&mut blob, compression);
            match diff_id {
                Some(diff_id) => {
                    let hasher = Hasher::new(diff_id.algorithm()).ok_or_else(|| {
                        image_error(&blob_path, format!("cannot verify diff_id {diff_id}"))
                    })?;
                    let mut tar = HashingReader::new(stream, hasher);
                    unpack_tar(&mut tar, tmp, &layer, &self.opts)?;
                    let (hex, _) = tar.finish().map_err(|source| Error::Io {
                        step: "decompress layer",
                        path: blob_path.clone(),
                        source,
                    })?;
                    if hex != diff_id.digest() {
                        return Err(image_error(
                            &blob_path,
                            format!("uncompressed content does not match its diff_id {diff_id}"),
                        ));
                    }
                }
                None => {
                    let mut stream = stream;
                    unpack_tar(&mut stream, tmp, &layer, &self.opts)?;
                    std::io::copy(&mut stream, &mut std::io::sink()).map_err(|source| {
                        Error::Io {
                            step: "decompress layer",
                            path: blob_path.clone(),
                            source,
                        }
                    })?;
                }
            }
            Ok(())
        })();
        // A blob that is not what its digest says is reported as such, whatever its content
        // made of the unpacking (a corrupt stream fails to decompress before its end).
        verify(&blob_path, desc, blob)?;
        unpacked
    }

    /// Moves a complete layer into place; losing the race to another unpacker of the same layer
    /// is success (its copy is as good as ours).
    fn install(&self, tmp: &Path, dest: &Path) -> Result<()> {
        let parent = dest.parent().unwrap_or(&self.root);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| Error::Io {
                step: "create layer store directory",
                path: parent.to_path_buf(),
                source,
            })?;
        // The layer's root is the merged root's lowest directory: it must be traversable.
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| Error::Io {
                step: "chmod layer directory",
                path: tmp.to_path_buf(),
                source,
            },
        )?;
        match nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            tmp,
            nix::fcntl::AT_FDCWD,
            dest,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => Ok(()),
            Err(source) => Err(Error::Sys {
                step: "move unpacked layer into the store",
                path: Some(dest.to_path_buf()),
                source,
            }),
        }
    }

    /// Removes the temporary directories of unpackers that are gone (a crash, a kill): those
    /// whose lock nobody holds. A lock, not a pid: the unpacker may live in another pid
    /// namespace, where its pid means another process or none.
    fn sweep_tmp(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = std::fs::read_dir(&tmp) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "lock") {
                if let Ok(lock) = TmpClaim::try_lock(&path) {
                    let _ = std::fs::remove_dir_all(path.with_extension(""));
                    let _ = std::fs::remove_file(&path);
                    drop(lock);
                }
            } else if !path.with_extension("lock").exists() {
                // Every unpacker's lock exists before its directory and goes after it: a
                // directory without one is left over (or from a version without locks).
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}

/// A directory of `tmp/` this unpacker owns, and the lock that says so; dropped, both go.
struct TmpClaim {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<OwnedFd>,
}

impl TmpClaim {
    fn new(tmp: &Path, hex: &str) -> Result<TmpClaim> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let io = |step, path: &Path| {
            let path = path.to_path_buf();
            move |source: Errno| Error::Sys {
                step,
                path: Some(path),
                source,
            }
        };
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{n}-{hex}", std::process::id());
            let (dir, lock_path) = (tmp.join(&name), tmp.join(format!("{name}.lock")));
            // Locked before it has a name: a sweep never sees this lock free.
            let fd = open(
                tmp,
                OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(io("create unpack lock", tmp))?;
            let lock = Flock::lock(fd, FlockArg::LockExclusive)
                .map_err(|(_, e)| io("lock unpack lock", tmp)(e))?;
            let linked = linkat(
                AT_FDCWD,
                format!("/proc/self/fd/{}", lock.as_raw_fd()).as_str(),
                AT_FDCWD,
                &lock_path,
                AtFlags::AT_SYMLINK_FOLLOW,
            );
            match linked {
                // Another pid namespace's unpacker with the same pid and counter.
                Err(Errno::EEXIST) => continue,
                r => r.map_err(io("name unpack lock", &lock_path))?,
            }
            let claim = TmpClaim {
                dir,
                lock_path,
                _lock: lock,
            };
            match nix::unistd::mkdir(&claim.dir, Mode::from_bits_truncate(0o755)) {
                Err(Errno::EEXIST) => continue,
                r => r.map_err(io("create layer directory", &claim.dir))?,
            }
            return Ok(claim);
        }
    }

    fn try_lock(path: &Path) -> nix::Result<Flock<OwnedFd>> {
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Flock::lock(fd, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)
    }
}

impl Drop for TmpClaim {
    fn drop(&mut self) {
        // Only ever a directory this claim made (renamed away when installed): remove_dir_all
        // does not follow symlinks.
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        let _ = std::fs::remove_file(&self.lock_path);
    }
}
