//! An OCI image layout directory: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout,
};
use serde::de::DeserializeOwned;

use super::digest::{checkable, Hasher, HashingReader};
use crate::{Error, Result};

/// The annotation an index uses to name a manifest ("a tag").
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The image spec's limit for a manifest; an index, a config and `oci-layout` are held to it too,
/// so a hostile layout cannot make hull read gigabytes of JSON into memory.
const MAX_JSON: u64 = 4 << 20;

/// An OCI image layout directory, opened.
///
/// ```no_run
/// let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
/// let image = layout.image(Some("latest"))?;
/// println!("{} layers", image.layers().len());
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageLayout {
    dir: PathBuf,
    index: ImageIndex,
}

/// One image of a layout: its manifest and config, both read and verified.
///
/// ```no_run
/// let image = hull::image::ImageLayout::open("/srv/images/busybox")?.image(None)?;
/// println!("{}: {:?}", image.digest(), image.config().config().as_ref().and_then(|c| c.cmd().clone()));
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Image {
    digest: Digest,
    manifest: ImageManifest,
    config: ImageConfiguration,
}

impl Image {
    /// The manifest's digest: the image's identity.
    ///
    /// ```no_run
    /// # let image = hull::image::ImageLayout::open("/srv/images/busybox")?.image(None)?;
    /// println!("{}", image.digest());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The image manifest.
    ///
    /// ```no_run
    /// # let image = hull::image::ImageLayout::open("/srv/images/busybox")?.image(None)?;
    /// println!("{:?}", image.manifest().annotations());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// The image configuration (what [`super::apply_image_config`] merges into a spec).
    ///
    /// ```no_run
    /// # let image = hull::image::ImageLayout::open("/srv/images/busybox")?.image(None)?;
    /// println!("{}", image.config().architecture());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn config(&self) -> &ImageConfiguration {
        &self.config
    }

    /// The layers, base first (the order they are applied in).
    ///
    /// ```no_run
    /// # let image = hull::image::ImageLayout::open("/srv/images/busybox")?.image(None)?;
    /// for layer in image.layers() {
    ///     println!("{} {}", layer.digest(), layer.size());
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }
}

impl ImageLayout {
    /// Opens the layout at `dir`: checks `oci-layout` and reads `index.json`.
    ///
    /// ```no_run
    /// let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<ImageLayout> {
        let dir = dir.as_ref().to_path_buf();
        let marker = dir.join("oci-layout");
        let layout: OciLayout = parse(&marker, &read_limited(&marker)?)?;
        if !layout.image_layout_version().starts_with("1.") {
            return Err(image_error(
                &marker,
                format!(
                    "imageLayoutVersion {:?} is not supported (1.x is)",
                    layout.image_layout_version()
                ),
            ));
        }
        let index_path = dir.join("index.json");
        let index = parse(&index_path, &read_limited(&index_path)?)?;
        Ok(ImageLayout { dir, index })
    }

    /// The layout's directory.
    ///
    /// ```no_run
    /// # let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
    /// assert!(layout.path().join("index.json").exists());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `index.json`.
    ///
    /// ```no_run
    /// # let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
    /// println!("{} manifests", layout.index().manifests().len());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// The image the index names `reference` (its `org.opencontainers.image.ref.name`
    /// annotation), or with `None` the index's only manifest. A nested index (a multi-platform
    /// image) resolves to the manifest for this machine's architecture on Linux.
    ///
    /// ```no_run
    /// # let layout = hull::image::ImageLayout::open("/srv/images/busybox")?;
    /// let image = layout.image(Some("1.36"))?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn image(&self, reference: Option<&str>) -> Result<Image> {
        let index_path = self.dir.join("index.json");
        let candidates: Vec<&Descriptor> = match reference {
            Some(r) => self
                .index
                .manifests()
                .iter()
                .filter(|d| ref_name(d) == Some(r))
                .collect(),
            None => self.index.manifests().iter().collect(),
        };
        let desc = match candidates.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(image_error(
                    &index_path,
                    match reference {
                        Some(r) => format!("no manifest named {r:?}"),
                        None => "no manifest".to_string(),
                    },
                ))
            }
            _ => {
                let names: Vec<&str> = candidates.iter().filter_map(|d| ref_name(d)).collect();
                return Err(image_error(
                    &index_path,
                    format!(
                        "{} manifests, name one of them ({names:?})",
                        candidates.len()
                    ),
                ));
            }
        };
        let desc = self.platform_manifest(desc)?;
        let manifest: ImageManifest = self.read_json(&desc)?;
        let config: ImageConfiguration = self.read_json(manifest.config())?;
        let diff_ids = config.rootfs().diff_ids().len();
        if diff_ids != manifest.layers().len() {
            return Err(image_error(
                &self.blob_path(manifest.config().digest())?,
                format!(
                    "rootfs.diff_ids has {diff_ids} entries for {} layers",
                    manifest.layers().len()
                ),
            ));
        }
        Ok(Image {
            digest: desc.digest().clone(),
            manifest,
            config,
        })
    }

    /// Follows nested indexes (at most a few deep) to the manifest for this machine.
    fn platform_manifest(&self, mut desc: Descriptor) -> Result<Descriptor> {
        for _ in 0..4 {
            if *desc.media_type() != MediaType::ImageIndex {
                return Ok(desc);
            }
            let index: ImageIndex = self.read_json(&desc)?;
            let arch = host_architecture();
            let found = index.manifests().iter().find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == arch
                })
            });
            desc = match found {
                Some(d) => d.clone(),
                None => {
                    return Err(image_error(
                        &self.blob_path(desc.digest())?,
                        format!("no manifest for linux/{arch}"),
                    ))
                }
            };
        }
        Err(image_error(
            &self.dir.join("index.json"),
            "indexes nested too deep".to_string(),
        ))
    }

    /// `blobs/<alg>/<hex>`, for a digest hull can verify (which also keeps the name inside
    /// `blobs/`).
    pub(crate) fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        if !checkable(digest) {
            return Err(image_error(
                &self.dir.join("blobs"),
                format!("digest {digest} is not one hull can verify (sha256, sha384, sha512)"),
            ));
        }
        Ok(self
            .dir
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest()))
    }

    /// The blob `desc` points to, opened for reading through a [`HashingReader`]; the caller
    /// checks the result with [`verify`].
    pub(crate) fn open_blob(&self, desc: &Descriptor) -> Result<(PathBuf, HashingReader<File>)> {
        let path = self.blob_path(desc.digest())?;
        let file = File::open(&path).map_err(|source| Error::Io {
            step: "open blob",
            path: path.clone(),
            source,
        })?;
        let hasher = Hasher::new(desc.digest().algorithm())
            .ok_or_else(|| image_error(&path, format!("cannot verify digest {}", desc.digest())))?;
        Ok((path, HashingReader::new(file, hasher)))
    }

    fn read_json<T: DeserializeOwned>(&self, desc: &Descriptor) -> Result<T> {
        if desc.size() > MAX_JSON {
            return Err(image_error(
                &self.blob_path(desc.digest())?,
                format!("{} bytes, more than the {MAX_JSON} allowed", desc.size()),
            ));
        }
        let (path, mut reader) = self.open_blob(desc)?;
        let mut data = Vec::new();
        (&mut reader)
            .take(MAX_JSON + 1)
            .read_to_end(&mut data)
            .map_err(|source| Error::Io {
                step: "read blob",
                path: path.clone(),
                source,
            })?;
        verify(&path, desc, reader)?;
        parse(&path, &data)
    }
}

/// Checks what was read through `reader` (to its end) against `desc`'s digest and size.
pub(crate) fn verify(
    path: &Path,
    desc: &Descriptor,
    reader: HashingReader<impl Read>,
) -> Result<()> {
    let (hex, size) = reader.finish().map_err(|source| Error::Io {
        step: "read blob",
        path: path.to_path_buf(),
        source,
    })?;
    if hex != desc.digest().digest() {
        return Err(image_error(
            path,
            format!(
                "content does not match its digest {} (it hashes to {}:{hex})",
                desc.digest(),
                desc.digest().algorithm()
            ),
        ));
    }
    if size != desc.size() {
        return Err(image_error(
            path,
            format!("{size} bytes, the descriptor says {}", desc.size()),
        ));
    }
    Ok(())
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// The image spec's (Go's) name for this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|source| Error::Io {
        step: "open",
        path: path.to_path_buf(),
        source,
    })?;
    let mut data = Vec::new();
    file.take(MAX_JSON + 1)
        .read_to_end(&mut data)
        .map_err(|source| Error::Io {
            step: "read",
            path: path.to_path_buf(),
            source,
        })?;
    if data.len() as u64 > MAX_JSON {
        return Err(image_error(
            path,
            format!("more than the {MAX_JSON} bytes allowed"),
        ));
    }
    Ok(data)
}

fn parse<T: DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| image_error(path, e.to_string()))
}

pub(crate) fn image_error(path: &Path, problem: String) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        problem,
    }
}
