//! OCI image layouts for the image tests: the busybox rootfs as two layers (the second with a
//! whiteout and an opaque directory), gzip and zstd compressed, and hand-made (hostile) layers.
//!
//! Layer 1 (tar+gzip): the busybox rootfs, plus `/etc/motd-lower`, `/opq/a`, `/keep`.
//! Layer 2 (tar+zstd): `/etc/.wh.motd-lower` (hides the file), `/opq/.wh..wh..opq` and `/opq/b`
//! (`/opq` shows only `b`), `/etc/layer2`, and the working directory `/srv/app`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::Digest as _;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer: an uncompressed tar and how to store it.
#[derive(Debug, Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub compression: Compression,
}

/// What [`write_layout`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The layers' blob digests (`sha256:...`), base first.
    pub layers: Vec<String>,
    /// The manifest's digest.
    pub manifest: String,
}

/// A tar stream built entry by entry, with names written as given (a `..` or an absolute path
/// included: the tar crate's own setters refuse those, and hostile layers need them).
pub struct Tar {
    out: Vec<u8>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar { out: Vec::new() }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        assert!(bytes.len() < 100, "test tar names stay short: {name}");
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.push(Self::header(name, tar::EntryType::Directory, mode, 0), b"")
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Regular, 0o644, data.len() as u64);
        self.push(h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name, tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name_literal(target).expect("link name");
        self.push(h, b"")
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name, tar::EntryType::Link, 0o644, 0);
        h.set_link_name_literal(target).expect("link name");
        self.push(h, b"")
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(name, tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.push(h, b"")
    }

    /// A PAX extended header of `len` bytes (one `comment` record) for the entry that follows.
    pub fn pax_header(&mut self, len: usize) -> &mut Self {
        let mut record = Vec::with_capacity(len);
        // "<len> comment=<value>\n", where <len> counts the whole record, its own digits too.
        let digits = len.to_string().len();
        record.extend_from_slice(format!("{len} comment=").as_bytes());
        record.resize(len - 1, b'a');
        record.push(b'\n');
        assert_eq!(digits, len.to_string().len());
        let h = Self::header("././@PaxHeader", tar::EntryType::XHeader, 0o644, len as u64);
        self.push(h, &record)
    }

    /// The tar, with its end-of-archive blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

/// The busybox rootfs as a tar (owners, modes, symlinks kept), with layer 1's extra files.
pub fn busybox_layer() -> Vec<u8> {
    let dir = crate::TempDir::new("image-rootfs");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).expect("create rootfs");
    crate::rootfs::build_unshared(&rootfs);
    std::fs::write(rootfs.join("etc/motd-lower"), "lower\n").expect("write motd-lower");
    std::fs::create_dir(rootfs.join("opq")).expect("create /opq");
    std::fs::write(rootfs.join("opq/a"), "a\n").expect("write /opq/a");
    std::fs::write(rootfs.join("keep"), "kept\n").expect("write /keep");
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).expect("tar the rootfs");
    b.into_inner().expect("finish tar")
}

/// Layer 2: a whiteout, an opaque directory, a new file and the working directory.
pub fn second_layer() -> Vec<u8> {
    Tar::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.motd-lower", b"")
        .file("etc/layer2", b"from layer 2\n")
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"")
        .file("opq/b", b"b\n")
        .dir("srv/", 0o755)
        .dir("srv/app/", 0o755)
        .finish()
}

/// The two busybox layers: gzip, then zstd.
pub fn busybox_layers() -> Vec<Layer> {
    vec![
        Layer {
            tar: busybox_layer(),
            compression: Compression::Gzip,
        },
        Layer {
            tar: second_layer(),
            compression: Compression::Zstd,
        },
    ]
}

/// The image config's `config` the tests start from: a PATH, a variable of the image's own, a
/// working directory and `sh -c` as the entrypoint.
pub fn default_config() -> Value {
    json!({
        "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"],
        "Entrypoint": ["sh", "-c"],
        "Cmd": ["echo \"$IMAGE_VAR:$(pwd):$(id -u):$(id -g)\" > /tmp/out"],
        "WorkingDir": "/srv/app"
    })
}

fn sha256(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn put_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let path = blob_path(dir, &digest);
    std::fs::create_dir_all(path.parent().expect("blob dir")).expect("create blobs/sha256");
    std::fs::write(&path, data).expect("write blob");
    digest
}

/// `blobs/<alg>/<hex>` of `digest` in the layout `dir`.
pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("digest");
    dir.join("blobs").join(alg).join(hex)
}

fn compress(tar: &[u8], c: Compression) -> (Vec<u8>, &'static str) {
    match c {
        Compression::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            (
                e.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// Writes an OCI image layout into the existing directory `dir`: `layers`, and an image config
/// whose `config` is `config`, named `latest` in the index.
pub fn write_layout(dir: &Path, layers: &[Layer], config: Value) -> Written {
    std::fs::write(
        dir.join("oci-layout"),
        json!({"imageLayoutVersion": "1.0.0"}).to_string(),
    )
    .expect("write oci-layout");
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for l in layers {
        let (blob, media_type) = compress(&l.tar, l.compression);
        let digest = put_blob(dir, &blob);
        diff_ids.push(sha256(&l.tar));
        descs.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
        digests.push(digest);
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = put_blob(dir, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descs,
    })
    .to_string();
    let manifest_digest = put_blob(dir, manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    Written {
        layers: digests,
        manifest: manifest_digest,
    }
}
