//! One layer (a tar stream, maybe compressed) unpacked into one directory, in the form overlayfs
//! reads as a lower layer: `.wh.NAME` becomes a 0:0 character device NAME, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` attribute of its directory.
//!
//! Everything is written beneath the layer directory's fd, one component at a time with
//! `O_NOFOLLOW`: a symlink the layer made is never followed while writing, so no entry can land
//! outside the directory however the layer is built. Entries that would need that (a `..`, an
//! absolute path, a path or hard link through a symlink, a hard link out of the layer) are
//! refused, naming the entry, and so are device nodes unless [`UnpackOptions::allow_devices`].

use std::cell::Cell;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use oci_spec::image::MediaType;

use crate::{Error, Result};

/// The overlayfs whiteout prefix of the image spec (`.wh.NAME` hides NAME of lower layers).
const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker: nothing of the lower layers shows in this directory.
const OPAQUE: &str = ".wh..wh..opq";

/// How a layer blob is compressed, from its media type.
///
/// ```
/// use hull::image::Compression;
/// use hull::oci_spec::image::MediaType;
/// assert_eq!(Compression::of(&MediaType::ImageLayerGzip)?, Compression::Gzip);
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (any number of members).
    Gzip,
    /// zstd (any number of frames; skippable frames skipped).
    Zstd,
}

impl Compression {
    /// The compression of a layer of media type `media_type` (OCI's and Docker's layer types);
    /// an error for anything that is not a layer hull can read.
    ///
    /// ```
    /// use hull::image::Compression;
    /// use hull::oci_spec::image::MediaType;
    /// assert_eq!(Compression::of(&MediaType::ImageLayerZstd)?, Compression::Zstd);
    /// assert!(Compression::of(&MediaType::ImageConfig).is_err());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn of(media_type: &MediaType) -> Result<Compression> {
        match media_type {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(Compression::None),
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                Ok(Compression::Gzip)
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                Ok(Compression::Zstd)
            }
            MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                Ok(Compression::Gzip)
            }
            MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar" => {
                Ok(Compression::None)
            }
            other => Err(Error::Unsupported {
                feature: format!("layer media type {other}"),
            }),
        }
    }
}

/// What a layer may contain beyond files, directories, links and fifos, and how much of it.
///
/// ```
/// let opts = hull::image::UnpackOptions {
///     allow_devices: true,
///     max_bytes: Some(8 << 30),
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Create character and block devices the layer holds. Off by default: a device node in an
    /// image gives whoever runs in the container the device's access to the host (a disk, the
    /// host's memory), while the runtime's `linux.devices` is where devices belong.
    pub allow_devices: bool,
    /// Refuse a layer whose tar stream (decompressed) is larger: a few KiB of gzip or zstd can
    /// stand for terabytes of zeros. `None`: no limit, as containerd.
    pub max_bytes: Option<u64>,
    /// Refuse a layer with more entries (each costs an inode). `None`: no limit.
    pub max_entries: Option<u64>,
}

/// What the tar reader may hold in memory for one entry: its PAX extended headers and GNU long
/// names, which it reads whole before the entry (a header of any size could otherwise make it
/// allocate that much). Real layers need a few KiB (long paths, a handful of xattrs).
const MAX_METADATA: u64 = 1 << 20;

/// How many more bytes the tar stream may yield: in total, and before the next entry (see
/// [`MAX_METADATA`]). Shared between the reader the tar crate owns and the unpacker.
struct Budget {
    total_left: Cell<u64>,
    metadata_left: Cell<u64>,
    exceeded: Cell<Option<&'static str>>,
}

/// The tar stream, counted against a [`Budget`]: a read past it fails.
struct Metered<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let b = &self.budget;
        let left = b.total_left.get().min(b.metadata_left.get());
        if left == 0 && !buf.is_empty() {
            let which = if b.total_left.get() == 0 {
                "larger than max_bytes (decompressed)"
            } else {
                "more than 1 MiB of PAX or long-name headers for one entry (held in memory)"
            };
            b.exceeded.set(Some(which));
            return Err(std::io::Error::other(which));
        }
        let cap = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        b.total_left.set(b.total_left.get() - n as u64);
        b.metadata_left
            .set(b.metadata_left.get().saturating_sub(n as u64));
        Ok(n)
    }
}

/// Unpacks the layer `blob` (compressed as `compression`) into the existing, empty directory
/// `dest`. `layer` names the layer in errors (its digest). Reads `blob` only as far as the tar
/// goes: a caller that checks a digest drains the rest itself.
///
/// Needs root: entries keep their owners, whiteouts are device nodes and opaque directories
/// `trusted.*` attributes.
///
/// ```no_run
/// use hull::image::{unpack_layer, Compression, UnpackOptions};
/// let blob = std::fs::File::open("layer.tar.gz")?;
/// std::fs::create_dir("layer")?;
/// unpack_layer(blob, Compression::Gzip, "layer".as_ref(), "layer.tar.gz", &UnpackOptions::default())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unpack_layer(
    blob: impl Read,
    compression: Compression,
    dest: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<()> {
    unpack_tar(decompress(blob, compression), dest, layer, opts)
}

/// The tar stream inside a layer blob.
pub(crate) fn decompress<'a>(blob: impl Read + 'a, compression: Compression) -> Box<dyn Read + 'a> {
    match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Compression::Zstd => Box::new(ZstdFrames::new(BufReader::new(blob))),
    }
}

/// [`unpack_layer`] of an uncompressed tar stream.
pub(crate) fn unpack_tar(
    tar: impl Read,
    dest: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<()> {
    let root = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| Error::Sys {
        step: "open layer directory",
        path: Some(dest.to_path_buf()),
        source,
    })?;
    let mut u = Unpacker {
        root,
        layer,
        dest,
        opts,
        parent: None,
        dir_times: Vec::new(),
    };
    u.tar(tar)
}

/// What went wrong with one entry: refused (hostile or not allowed) or failed (I/O).
enum Fail {
    Refused(String),
    Sys(&'static str, Errno),
    Io(&'static str, std::io::Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Sys("write entry", e)
    }
}

type EntryResult<T = ()> = std::result::Result<T, Fail>;

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    dest: &'a Path,
    opts: &'a UnpackOptions,
    /// The directory the last entry went into: entries come grouped by directory, so most
    /// lookups are this one.
    parent: Option<(Vec<OsString>, OwnedFd)>,
    /// Directories' mtimes, set once everything in them is written (each entry changes them).
    dir_times: Vec<(Vec<OsString>, u64)>,
}

impl Unpacker<'_> {
    fn tar(&mut self, stream: impl Read) -> Result<()> {
        let budget = Rc::new(Budget {
            total_left: Cell::new(self.opts.max_bytes.unwrap_or(u64::MAX)),
            metadata_left: Cell::new(MAX_METADATA),
            exceeded: Cell::new(None),
        });
        let stream = Metered {
            inner: stream,
            budget: budget.clone(),
        };
        let mut archive = tar::Archive::new(stream);
        let mut entries = archive.entries().map_err(|e| self.io("read tar", e))?;
        let mut last = PathBuf::new();
        let mut count = 0u64;
        loop {
            // What the tar crate reads from here to the entry it yields is header data.
            budget.metadata_left.set(MAX_METADATA + 4096);
            let Some(entry) = entries.next() else { break };
            budget.metadata_left.set(u64::MAX);
            let refused = |problem: &str| Error::LayerEntry {
                layer: self.layer.to_string(),
                entry: last.clone(),
                problem: format!("the entry after this one: {problem}"),
            };
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(_) if budget.exceeded.get().is_some() => {
                    return Err(refused(budget.exceeded.get().unwrap_or_default()))
                }
                Err(e) => return Err(self.io("read tar entry", e)),
            };
            count += 1;
            if self.opts.max_entries.is_some_and(|max| count > max) {
                return Err(refused("more entries than max_entries"));
            }
            let path = entry
                .path()
                .map_err(|e| self.io("read tar entry name", e))?
                .into_owned();
            let done = self.entry(&mut entry, &path).and_then(|()| {
                // What the entry did not use, read here so it counts as the entry's data.
                std::io::copy(&mut entry, &mut std::io::sink())
                    .map(drop)
                    .map_err(|e| Fail::Io("read tar entry", e))
            });
            let done = match (done, budget.exceeded.get()) {
                (Err(_), Some(problem)) => Err(Fail::Refused(problem.into())),
                (done, _) => done,
            };
            done.map_err(|f| self.entry_error(f, &path))?;
            last = path;
        }
        // Whatever follows the end-of-archive blocks is left to the caller's digest check.
        self.parent = None;
        for (dir, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let Some((name, parents)) = dir.split_last() else {
                continue;
            };
            let parent = self.open_dir(parents, false).map_err(|_| Error::Sys {
                step: "set directory times",
                path: Some(self.dest.join(join(&dir))),
                source: Errno::ENOENT,
            })?;
            let t = TimeSpec::new(mtime as i64, 0);
            nix::sys::stat::utimensat(
                &parent,
                name.as_os_str(),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|source| Error::Sys {
                step: "set directory times",
                path: Some(self.dest.join(join(&dir))),
                source,
            })?;
        }
        Ok(())
    }

    fn entry_error(&self, f: Fail, path: &Path) -> Error {
        match f {
            Fail::Refused(problem) => Error::LayerEntry {
                layer: self.layer.to_string(),
                entry: path.to_path_buf(),
                problem,
            },
            Fail::Sys(step, source) => Error::Sys {
                step,
                path: Some(self.dest.join(path)),
                source,
            },
            Fail::Io(step, source) => Error::Io {
                step,
                path: self.dest.join(path),
                source,
            },
        }
    }

    fn io(&self, step: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            step,
            path: PathBuf::from(self.layer),
            source,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &Path) -> EntryResult {
        use tar::EntryType as T;
        let names = components(path)?;
        let Some((name, parents)) = names.split_last() else {
            // The layer's root itself ("./"): its directory is the layer directory.
            return Ok(());
        };
        if name.as_bytes().starts_with(WHITEOUT.as_bytes()) {
            return self.whiteout(name, parents);
        }
        let kind = entry.header().entry_type();
        let meta = Meta::of(entry)?;
        let parent = self.open_dir(parents, true)?;
        let parent = parent.as_fd();
        match kind {
            T::Directory => self.directory(parent, &names, &meta),
            T::Regular | T::Continuous | T::GNUSparse => regular(entry, parent, name, &meta),
            T::Symlink => symlink(entry, parent, name, &meta),
            T::Link => self.hard_link(entry, parents, name),
            T::Char | T::Block | T::Fifo => self.special(entry, kind, parent, name, &meta),
            // Global PAX headers carry nothing hull applies.
            T::XGlobalHeader => Ok(()),
            other => Err(Fail::Refused(format!("unsupported entry type {other:?}"))),
        }
    }

    /// `.wh.NAME` (NAME hidden) and `.wh..wh..opq` (the directory opaque), in overlayfs' form.
    fn whiteout(&mut self, name: &OsStr, parents: &[OsString]) -> EntryResult {
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            let dir = self.open_dir(parents, true)?;
            let dir = reopen_dir(&dir)?;
            return set_xattr(dir.as_fd(), c"trusted.overlay.opaque", b"y")
                .map_err(|e| Fail::Sys("mark directory opaque", e));
        }
        if name_bytes.starts_with(b".wh..wh.") {
            // aufs' own bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing overlayfs needs.
            return Ok(());
        }
        let hidden = OsStr::from_bytes(&name_bytes[WHITEOUT.len()..]);
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(Fail::Refused(format!("whiteout of {hidden:?}")));
        }
        let parent = self.open_dir(parents, true)?;
        // A whiteout only hides what lower layers have: a same-named entry of this layer
        // stays (written before or after it).
        if exists(parent.as_fd(), hidden)? {
            return Ok(());
        }
        nix::sys::stat::mknodat(
            &parent,
            hidden,
            SFlag::S_IFCHR,
            Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )
        .map_err(|e| Fail::Sys("create whiteout", e))
    }

    fn directory(
        &mut self,
        parent: BorrowedFd<'_>,
        names: &[OsString],
        meta: &Meta,
    ) -> EntryResult {
        let Some(name) = names.last() else {
            return Ok(());
        };
        let mkdir =
            || nix::sys::stat::mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o700));
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EEXIST) if is_dir(parent, name)? => {}
            Err(Errno::EEXIST) => {
                remove(parent, name)?;
                mkdir()?;
            }
            Err(e) => return Err(e.into()),
        }
        let dir = nix::fcntl::openat(
            parent,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        owner_mode_xattrs(dir.as_fd(), meta)?;
        self.dir_times.push((names.to_vec(), meta.mtime));
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parents: &[OsString],
        name: &OsStr,
    ) -> EntryResult {
        let target = link_name(entry, "hard link")?;
        let about = |f: Fail| match f {
            Fail::Refused(why) => Fail::Refused(format!("hard link target {target:?}: {why}")),
            Fail::Sys(_, Errno::ENOENT) => {
                Fail::Refused(format!("hard link target {target:?} is not in this layer"))
            }
            f => f,
        };
        let target_names = components(&target).map_err(about)?;
        let Some((tname, tparents)) = target_names.split_last() else {
            return Err(Fail::Refused("hard link to the layer's root".into()));
        };
        let tdir = self.open_dir(tparents, false).map_err(about)?;
        // The parent in the cache may be the target's: reopen ours afterwards.
        let parent = self.open_dir(parents, true)?;
        replace(parent.as_fd(), name)?;
        // Without AT_SYMLINK_FOLLOW: a symlink target is linked as itself, never followed to
        // something outside the layer.
        nix::unistd::linkat(&tdir, tname.as_os_str(), &parent, name, AtFlags::empty())
            .map_err(|e| Fail::Sys("write entry", e))
            .map_err(about)
    }

    /// A device node or a fifo.
    fn special<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        kind: tar::EntryType,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> EntryResult {
        let (sflag, dev) = if kind == tar::EntryType::Fifo {
            (SFlag::S_IFIFO, 0)
        } else {
            if !self.opts.allow_devices {
                return Err(Fail::Refused(
                    "device node (devices are not allowed in layers unless allow_devices is set)"
                        .into(),
                ));
            }
            let header = entry.header();
            let major = header
                .device_major()
                .map_err(|e| Fail::Io("read device major", e))?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(|e| Fail::Io("read device minor", e))?
                .unwrap_or(0);
            let sflag = if kind == tar::EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            (sflag, nix::sys::stat::makedev(major.into(), minor.into()))
        };
        replace(parent, name)?;
        nix::sys::stat::mknodat(parent, name, sflag, Mode::empty(), dev)?;
        self.special_metadata(parent, name, meta.uid, meta.gid, meta.mode)
    }

    /// Owner and mode of a device or fifo, set by name without following (it cannot be a
    /// symlink: it was just made, in a directory only the unpacker writes).
    fn special_metadata(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        uid: u32,
        gid: u32,
        mode: Mode,
    ) -> EntryResult {
        nix::unistd::fchownat(
            parent,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        nix::sys::stat::fchmodat(
            parent,
            name,
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| match e {
            // Before Linux 6.6 fchmodat has no AT_SYMLINK_NOFOLLOW; the node is no symlink.
            Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL => nix::sys::stat::fchmodat(
                parent,
                name,
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ),
            e => Err(e),
        })?;
        Ok(())
    }

    /// The directory `names` beneath the root, each component opened with `O_NOFOLLOW` (and
    /// created when missing and `create`); a symlink or non-directory on the way is refused.
    fn open_dir(&mut self, names: &[OsString], create: bool) -> EntryResult<OwnedFd> {
        if let Some((cached, fd)) = &self.parent {
            if cached.as_slice() == names {
                return fd.try_clone().map_err(|e| Fail::Io("duplicate fd", e));
            }
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| Fail::Io("duplicate fd", e))?;
        for (i, name) in names.iter().enumerate() {
            let next = match nix::fcntl::openat(&cur, name.as_os_str(), flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(
                        &cur,
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Fail::Sys("create directory", e)),
                    }
                    nix::fcntl::openat(&cur, name.as_os_str(), flags, Mode::empty())
                }
                r => r,
            };
            cur = match next {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    let so_far = join(&names[..=i]);
                    return Err(Fail::Refused(if is_symlink(cur.as_fd(), name) {
                        format!(
                            "{so_far:?} is a symlink: nothing is written through a symlink \
                                 of the layer (it could lead outside the layer's root)"
                        )
                    } else {
                        format!("{so_far:?} is not a directory")
                    }));
                }
                Err(e) => return Err(Fail::Sys("open directory", e)),
            };
        }
        let copy = cur.try_clone().map_err(|e| Fail::Io("duplicate fd", e))?;
        self.parent = Some((names.to_vec(), copy));
        Ok(cur)
    }
}

/// What a tar header says of an entry's owner, mode, time and extended attributes.
struct Meta {
    mode: Mode,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> EntryResult<Meta> {
        let header = entry.header();
        Ok(Meta {
            mode: Mode::from_bits_truncate(header.mode().map_err(|e| Fail::Io("read mode", e))?),
            uid: header.uid().map_err(|e| Fail::Io("read uid", e))? as u32,
            gid: header.gid().map_err(|e| Fail::Io("read gid", e))? as u32,
            mtime: header.mtime().map_err(|e| Fail::Io("read mtime", e))?,
            xattrs: xattrs(entry)?,
        })
    }

    fn time(&self) -> TimeSpec {
        TimeSpec::new(self.mtime as i64, 0)
    }
}

fn regular<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
) -> EntryResult {
    replace(parent, name)?;
    let fd = nix::fcntl::openat(
        parent,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let mut file = File::from(fd);
    std::io::copy(entry, &mut file).map_err(|e| Fail::Io("write file", e))?;
    owner_mode_xattrs(file.as_fd(), meta)?;
    nix::sys::stat::futimens(&file, &meta.time(), &meta.time())?;
    Ok(())
}

fn symlink<R: Read>(
    entry: &tar::Entry<'_, R>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
) -> EntryResult {
    let target = link_name(entry, "symlink")?;
    replace(parent, name)?;
    // The target is only stored: it is resolved inside the container, by the kernel, once the
    // container's root is its `/`.
    nix::unistd::symlinkat(target.as_path(), parent, name)?;
    nix::unistd::fchownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    nix::sys::stat::utimensat(
        parent,
        name,
        &meta.time(),
        &meta.time(),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// The target of a symlink or hard link entry (`what`).
fn link_name<R: Read>(entry: &tar::Entry<'_, R>, what: &str) -> EntryResult<PathBuf> {
    entry
        .link_name()
        .map_err(|e| Fail::Io("read link target", e))?
        .map(|t| t.into_owned())
        .ok_or_else(|| Fail::Refused(format!("{what} without a target")))
}

/// The entry's path as normal components, refused if it is absolute or holds `..`.
fn components(path: &Path) -> EntryResult<Vec<OsString>> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => names.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(Fail::Refused(
                    "\"..\" in the path (it would leave the layer's root)".into(),
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Fail::Refused(
                    "absolute path (entries are relative to the layer's root)".into(),
                ))
            }
        }
    }
    Ok(names)
}

fn join(names: &[OsString]) -> PathBuf {
    names.iter().collect()
}

fn stat_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<SFlag> {
    let st = nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

fn is_symlink(parent: BorrowedFd<'_>, name: &OsStr) -> bool {
    stat_at(parent, name).is_ok_and(|k| k == SFlag::S_IFLNK)
}

fn is_dir(parent: BorrowedFd<'_>, name: &OsStr) -> EntryResult<bool> {
    Ok(stat_at(parent, name)? == SFlag::S_IFDIR)
}

fn exists(parent: BorrowedFd<'_>, name: &OsStr) -> EntryResult<bool> {
    match stat_at(parent, name) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Makes room for a non-directory entry: a later entry of a tar replaces an earlier one.
fn replace(parent: BorrowedFd<'_>, name: &OsStr) -> EntryResult {
    match stat_at(parent, name) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(SFlag::S_IFDIR) => Err(Fail::Refused(
            "replaces a directory written earlier by the same layer".into(),
        )),
        Ok(_) => remove(parent, name),
    }
}

fn remove(parent: BorrowedFd<'_>, name: &OsStr) -> EntryResult {
    nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
        .map_err(|e| Fail::Sys("replace entry", e))
}

/// An `O_RDONLY` fd of a directory fd (the cache hands out duplicates of one open file; the
/// attribute calls need no more than that, but keep them off the cached file's offset).
fn reopen_dir(dir: &OwnedFd) -> EntryResult<OwnedFd> {
    nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Fail::from)
}

/// The entry's extended attributes (PAX `SCHILY.xattr.NAME`) that a layer may set: `user.*`
/// and file capabilities. `trusted.*` (overlayfs' own: opaque, redirect, metacopy) and the
/// LSM labels of the host are never taken from a layer.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> EntryResult<Vec<(CString, Vec<u8>)>> {
    let mut out = Vec::new();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| Fail::Io("read pax header", e))?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|e| Fail::Io("read pax header", e))?;
        let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        if !(name.starts_with(b"user.") || name == b"security.capability") {
            continue;
        }
        if let Ok(name) = CString::new(name) {
            out.push((name, ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn owner_mode_xattrs(fd: BorrowedFd<'_>, meta: &Meta) -> EntryResult {
    let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
    nix::unistd::fchown(fd, Some(uid), Some(gid))?;
    // After the chown, which clears set-user-ID and set-group-ID bits.
    nix::sys::stat::fchmod(fd, meta.mode)?;
    for (name, value) in &meta.xattrs {
        set_xattr(fd, name, value).map_err(|e| Fail::Sys("set extended attribute", e))?;
    }
    Ok(())
}

fn set_xattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, value: &[u8]) -> nix::Result<()> {
    // SAFETY: `fd` is a live descriptor for the call's length, `name` is NUL-terminated and
    // `value` is a valid slice of the length passed; the kernel only reads both.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// A zstd stream of any number of frames (ruzstd's reader stops after one), skipping the
/// skippable frames some tools add (zstd:chunked's table of contents).
struct ZstdFrames<R: BufRead> {
    src: R,
    dec: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(src: R) -> Self {
        ZstdFrames {
            src,
            dec: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if self.in_frame {
                while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                    self.dec
                        .decode_blocks(
                            &mut self.src,
                            ruzstd::decoding::BlockDecodingStrategy::UptoBlocks(1),
                        )
                        .map_err(std::io::Error::other)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = std::io::copy(
                        &mut (&mut self.src).take(length.into()),
                        &mut std::io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}
