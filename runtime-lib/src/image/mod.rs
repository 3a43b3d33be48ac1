//! Containers made from OCI images: an image plus a writable layer that outlives a stop and dies
//! with the container.
//!
//! - [`ImageLayout`] opens an [OCI image layout] directory (`oci-layout`, `index.json`, the
//!   manifest and config blobs), checking every blob it reads against its digest;
//! - [`LayerStore`] unpacks each layer once, by digest, into a directory shared by every
//!   container of every image that has it; [`unpack_layer`] is the unpacker it uses (tar,
//!   tar+gzip, tar+zstd; whiteouts become overlayfs whiteouts; entries that would leave the
//!   layer's root are refused);
//! - [`apply_image_config`] merges the image's `Env`, `Entrypoint`, `Cmd`, `WorkingDir` and
//!   `User` into a runtime [`Spec`](oci_spec::runtime::Spec), as Docker and podman do;
//! - [`ContainerRoot`] is one container's overlayfs root: the image's layers read-only below,
//!   its own upper and work directories above, kept across runs until [`ContainerRoot::remove`].
//!
//! ```no_run
//! use hull::image::{apply_image_config, ContainerRoot, ImageLayout, LayerStore};
//! use hull::{Container, CreateOptions};
//!
//! hull::exe::ensure_sealed()?;
//! let layout = ImageLayout::open("/srv/images/busybox")?;
//! let image = layout.image(None)?;
//! let store = LayerStore::open("/var/lib/hull-images")?;
//! let layers = store.unpack(&layout, &image)?;
//! let root = ContainerRoot::open_or_create(&store, "web", &layers)?;
//!
//! let mut spec = hull::oci_spec::runtime::Spec::default();
//! apply_image_config(&mut spec, image.config(), &root.rootfs(), None)?;
//! let bundle = root.write_bundle(&spec)?;
//! let mut c = Container::create("web", &CreateOptions::new("/run/hull", bundle))?;
//! c.start()?;
//! c.wait()?;
//! c.delete(false)?;
//! root.remove()?; // the writable layer goes with the container
//! # Ok::<(), hull::Error>(())
//! ```
//!
//! Needs root (overlayfs, `trusted.*` extended attributes, files owned by the image's users).
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

#![deny(missing_docs)]

mod config;
mod digest;
mod layout;
mod rootfs;
mod store;
mod unpack;

pub use config::apply_image_config;
pub use layout::{Image, ImageLayout};
pub use rootfs::ContainerRoot;
pub use store::LayerStore;
pub use unpack::{unpack_layer, Compression, UnpackOptions};
