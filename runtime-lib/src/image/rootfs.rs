//! A container's root: the image's layers under overlayfs, with the container's own writable
//! upper layer, kept in the layer store until the container is removed.
//!
//! ```text
//! <store>/containers/<id>/config.json   the bundle's config (write_bundle), root.path "rootfs"
//! <store>/containers/<id>/layers.json   the lower layers, base first (to mount again later)
//! <store>/containers/<id>/upper/        the writable layer: what the container changed
//! <store>/containers/<id>/work/         overlayfs' work directory
//! <store>/containers/<id>/rootfs/       the overlay mount: the container's root
//! ```
//!
//! The directory is the container's bundle. The overlay stays mounted between runs (a stopped
//! container's next run finds its changes); after a reboot [`ContainerRoot::open`] mounts it
//! again from `layers.json`.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{RootBuilder, Spec};

use super::layout::image_error;
use super::store::LayerStore;
use crate::{Error, Result};

/// overlayfs takes its options in one page.
const MAX_MOUNT_DATA: usize = 4095;

/// One container's overlayfs root and bundle directory in a [`LayerStore`].
///
/// ```no_run
/// use hull::image::{ContainerRoot, ImageLayout, LayerStore};
/// let layout = ImageLayout::open("/srv/images/busybox")?;
/// let store = LayerStore::open("/var/lib/hull-images")?;
/// let layers = store.unpack(&layout, &layout.image(None)?)?;
/// let root = ContainerRoot::create(&store, "web", &layers)?;
/// println!("{}", root.rootfs().display());
/// root.remove()?;
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
pub struct ContainerRoot {
    id: String,
    dir: PathBuf,
    layers: Vec<PathBuf>,
}

impl ContainerRoot {
    /// Makes the container `id`'s directories (an error if it exists) over `layers` (the store's
    /// layer directories, base first, as [`LayerStore::unpack`] returns them) and mounts its
    /// root.
    ///
    /// ```no_run
    /// # use hull::image::{ContainerRoot, LayerStore};
    /// # let store = LayerStore::open("/var/lib/hull-images")?;
    /// # let layers = vec![];
    /// let root = ContainerRoot::create(&store, "web", &layers)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn create(store: &LayerStore, id: &str, layers: &[PathBuf]) -> Result<ContainerRoot> {
        crate::state::validate_id(id)?;
        let dir = store.path().join("containers").join(id);
        if layers.is_empty() {
            return Err(image_error(&dir, "an image without layers".to_string()));
        }
        check_layers(store, layers)?;
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        about_container(made, id, "create container directory", &dir)?;
        let root = ContainerRoot {
            id: id.to_string(),
            dir,
            layers: layers.to_vec(),
        };
        let made = root.make().and_then(|()| root.mount());
        match made {
            Ok(()) => Ok(root),
            Err(e) => {
                let _ = root.remove();
                Err(e)
            }
        }
    }

    /// The existing container `id`, its root mounted (again, after a reboot).
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn open(store: &LayerStore, id: &str) -> Result<ContainerRoot> {
        crate::state::validate_id(id)?;
        let dir = store.path().join("containers").join(id);
        let list = dir.join("layers.json");
        let text = about_container(std::fs::read(&list), id, "read", &list)?;
        let layers: Vec<PathBuf> =
            serde_json::from_slice(&text).map_err(|e| image_error(&list, e.to_string()))?;
        check_layers(store, &layers)?;
        let root = ContainerRoot {
            id: id.to_string(),
            dir,
            layers,
        };
        root.mount()?;
        Ok(root)
    }

    /// [`ContainerRoot::open`] if the container exists, else [`ContainerRoot::create`].
    ///
    /// ```no_run
    /// # use hull::image::{ContainerRoot, LayerStore};
    /// # let store = LayerStore::open("/var/lib/hull-images")?;
    /// # let layers = vec![];
    /// let root = ContainerRoot::open_or_create(&store, "web", &layers)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn open_or_create(
        store: &LayerStore,
        id: &str,
        layers: &[PathBuf],
    ) -> Result<ContainerRoot> {
        match ContainerRoot::open(store, id) {
            Err(Error::ContainerNotFound { .. }) => ContainerRoot::create(store, id, layers),
            r => r,
        }
    }

    /// The container's id.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// assert_eq!(root.id(), "web");
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's directory: its bundle once [`ContainerRoot::write_bundle`] wrote the
    /// config.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// println!("{}", root.path().display());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The overlay mount point: the container's root filesystem.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// let passwd = std::fs::read_to_string(root.rootfs().join("etc/passwd"));
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The writable layer: everything the container created or changed, and a whiteout for
    /// everything it deleted.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// let changed = std::fs::read_dir(root.upper())?.count();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The lower layers, base first.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// println!("{} layers", root.layers().len());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// `spec` with `root.path` set to this root, absolute and read-write (the upper layer is the
    /// container's to change): what [`crate::Container::builder`] takes, no bundle on disk.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// let spec = root.spec(&hull::oci_spec::runtime::Spec::default())?;
    /// let c = hull::Container::builder("web").spec(spec).root("/run/hull").create()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn spec(&self, spec: &Spec) -> Result<Spec> {
        let rootfs = std::path::absolute(self.rootfs()).map_err(|source| Error::Io {
            step: "resolve the container root",
            path: self.rootfs(),
            source,
        })?;
        with_root(spec, rootfs)
    }

    /// Writes `spec` as the bundle's config.json, with `root.path` set to this root (read-write:
    /// the upper layer is the container's to change), and returns the bundle directory, for
    /// [`crate::CreateOptions::new`].
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// let bundle = root.write_bundle(&hull::oci_spec::runtime::Spec::default())?;
    /// let opts = hull::CreateOptions::new("/run/hull", bundle);
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn write_bundle(&self, spec: &Spec) -> Result<PathBuf> {
        let spec = with_root(spec, PathBuf::from("rootfs"))?;
        let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::InvalidConfig {
            field: ".".into(),
            problem: e.to_string(),
        })?;
        let path = self.dir.join("config.json");
        let tmp = self.dir.join(".config.json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| Error::Io {
                step: "write config",
                path: path.clone(),
                source,
            })?;
        Ok(self.dir.clone())
    }

    /// Whether the overlay is mounted on [`ContainerRoot::rootfs`].
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// assert!(root.is_mounted());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn is_mounted(&self) -> bool {
        let dev = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.dev()).ok();
        match (dev(&self.rootfs()), dev(&self.dir)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }

    /// Mounts the overlay unless it is mounted.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// root.unmount()?;
    /// root.mount()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        for l in &self.layers {
            if !l.is_dir() {
                return Err(image_error(l, "layer missing from the store".to_string()));
            }
        }
        // overlayfs lists the top layer first.
        let lower: Vec<String> = self
            .layers
            .iter()
            .rev()
            .map(|l| l.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},index=off",
            lower.join(":"),
            self.upper().display(),
            self.dir.join("work").display()
        );
        if data.len() > MAX_MOUNT_DATA {
            return Err(Error::Unsupported {
                feature: format!(
                    "{} layers under this store path (overlayfs options of {} bytes, at most \
                     {MAX_MOUNT_DATA})",
                    self.layers.len(),
                    data.len()
                ),
            });
        }
        nix::mount::mount(
            Some("overlay"),
            &self.rootfs(),
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| Error::Sys {
            step: "mount overlay",
            path: Some(self.rootfs()),
            source,
        })
    }

    /// Unmounts the overlay if it is mounted; the writable layer stays for the next run. Fails
    /// (EBUSY) while a host process still uses the root.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// # let root = hull::image::ContainerRoot::open(&store, "web")?;
    /// root.unmount()?;
    /// assert!(!root.is_mounted());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn unmount(&self) -> Result<()> {
        // Mounted twice (two opens raced) is undone twice; the bound only stops a loop.
        for _ in 0..16 {
            if !self.is_mounted() {
                return Ok(());
            }
            match nix::mount::umount2(&self.rootfs(), MntFlags::empty()) {
                Ok(()) | Err(Errno::EINVAL) => {}
                Err(source) => {
                    return Err(Error::Sys {
                        step: "unmount container root",
                        path: Some(self.rootfs()),
                        source,
                    })
                }
            }
        }
        Err(Error::Sys {
            step: "unmount container root",
            path: Some(self.rootfs()),
            source: Errno::EBUSY,
        })
    }

    /// Removes the container's root: unmounts it and deletes its writable layer and directory.
    /// The container running on it must be deleted first: while any process's root is this
    /// root, the call fails with EBUSY and changes nothing. The store's layers stay.
    ///
    /// ```no_run
    /// # let store = hull::image::LayerStore::open("/var/lib/hull-images")?;
    /// hull::image::ContainerRoot::open(&store, "web")?.remove()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn remove(self) -> Result<()> {
        // Its writable layer would go from under it; the check holds whether or not the host
        // still has the root mounted (the container has its own copy of the mount).
        if let Some(pid) = self.process_inside() {
            return Err(Error::Sys {
                step: "remove container root: a process still runs on it (pid in path)",
                path: Some(PathBuf::from(format!("/proc/{pid}/root"))),
                source: Errno::EBUSY,
            });
        }
        self.unmount()?;
        // Deleting through a mount would delete the layers (or whatever is mounted): refuse
        // while anything at all is mounted beneath the directory.
        let mounted = procfs::process::Process::myself()
            .and_then(|p| p.mountinfo())
            .map_err(|_| Error::Sys {
                step: "read mountinfo",
                path: Some(PathBuf::from("/proc/self/mountinfo")),
                source: Errno::EIO,
            })?
            .into_iter()
            .find(|m| m.mount_point.starts_with(&self.dir));
        if let Some(m) = mounted {
            return Err(Error::Sys {
                step: "remove container root: still mounted",
                path: Some(m.mount_point),
                source: Errno::EBUSY,
            });
        }
        std::fs::remove_dir_all(&self.dir).map_err(|source| Error::Io {
            step: "remove container root",
            path: self.dir.clone(),
            source,
        })
    }

    /// A process (in any mount namespace) whose root is an overlay with this writable layer.
    fn process_inside(&self) -> Option<i32> {
        let id = |m: std::fs::Metadata| (m.dev(), m.ino());
        let host_root = std::fs::metadata("/").ok().map(id)?;
        let upper = self.dir.join("upper");
        let upper = upper.to_str()?;
        let processes = procfs::process::all_processes().ok()?;
        processes.flatten().find_map(|p| {
            let root = std::fs::metadata(format!("/proc/{}/root", p.pid))
                .ok()
                .map(id)?;
            if root == host_root {
                return None;
            }
            let mounts = p.mountinfo().ok()?;
            let top = mounts
                .iter()
                .rev()
                .find(|m| m.mount_point == Path::new("/"))?;
            let ours = top.fs_type == "overlay"
                && top.super_options.get("upperdir").and_then(|v| v.as_deref()) == Some(upper);
            ours.then_some(p.pid)
        })
    }

    fn make(&self) -> Result<()> {
        for (name, mode) in [("upper", 0o755), ("work", 0o700), ("rootfs", 0o755)] {
            let p = self.dir.join(name);
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(&p)
                .map_err(|source| Error::Io {
                    step: "create container directory",
                    path: p,
                    source,
                })?;
        }
        let list = self.dir.join("layers.json");
        let text =
            serde_json::to_vec(&self.layers).map_err(|e| image_error(&list, e.to_string()))?;
        std::fs::write(&list, text).map_err(|source| Error::Io {
            step: "write",
            path: list,
            source,
        })
    }
}

/// `spec` with a writable `root.path` at `rootfs` (the upper layer is the container's to change).
fn with_root(spec: &Spec, rootfs: PathBuf) -> Result<Spec> {
    let root = RootBuilder::default()
        .path(rootfs)
        .readonly(false)
        .build()
        .map_err(|e| Error::InvalidConfig {
            field: "root".into(),
            problem: e.to_string(),
        })?;
    let mut spec = spec.clone();
    spec.set_root(Some(root));
    Ok(spec)
}

/// `r`'s error as hull's: the container's directory already there or not there is about the
/// container `id` itself, anything else an I/O error of `step` on `path`.
fn about_container<T>(
    r: std::io::Result<T>,
    id: &str,
    step: &'static str,
    path: &Path,
) -> Result<T> {
    r.map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => Error::ContainerExists { id: id.to_string() },
        std::io::ErrorKind::NotFound => Error::ContainerNotFound { id: id.to_string() },
        _ => Error::Io {
            step,
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The layers must be the store's: lexically beneath its layers/ (no `..` to climb out), with
/// nothing overlayfs' option parser would split on, and present.
fn check_layers(store: &LayerStore, layers: &[PathBuf]) -> Result<()> {
    let layer_root = store.path().join("layers");
    for l in layers {
        let plain = l
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
            && !l.to_string_lossy().contains([':', ',', '\\', '=']);
        if !plain || !l.starts_with(&layer_root) || !l.is_dir() {
            return Err(image_error(
                l,
                format!("not a layer of the store {}", store.path().display()),
            ));
        }
    }
    Ok(())
}
