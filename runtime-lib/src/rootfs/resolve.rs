//! Paths inside the container's rootfs, resolved as if the rootfs were `/`.
//!
//! A symlink in the rootfs (`/evil -> /etc`, `/x -> ../../../tmp`) is followed *inside* the rootfs,
//! exactly as runc's securejoin does, so a mount can never land on the host. Missing components
//! are created on the way (directories, and the last one as the caller asks). The result is an
//! `O_PATH` fd, opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS) from the rootfs fd: if
//! anything was swapped for a symlink meanwhile, the open fails instead of following it. Mounts then
//! target `/proc/self/fd/N`, never a path string the container could change underneath.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Linux's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// What to create for a missing last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create nothing: a missing component is an ENOENT.
    Nothing,
    /// Directories all the way.
    Dir,
    /// Directories, and an empty file for the last component (a bind mount of a non-directory).
    File,
}

/// The rootfs, opened once after it was bind-mounted onto itself.
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// The root opened at `path` (absolute, or relative to the working directory).
    pub fn open(path: &Path) -> nix::Result<Root> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty())?;
        Ok(Root { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolves `path` inside the root, creating what is missing as `create` says, and opens the
    /// result `O_PATH`.
    pub fn open_in(&self, path: &Path, create: Create) -> nix::Result<OwnedFd> {
        // Most destinations exist: the kernel resolves the whole path inside the root in one
        // call, with the same rules as `resolve` (symlinks followed inside the root, `..` stopped
        // at it), and atomically. The walk below is for what must be created, and for kernels
        // or profiles without openat2.
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let parts: Vec<OsString> = components(path).collect();
        match openat2(&self.fd, &join(&parts), how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if create != Create::Nothing => {
                if let Some(fd) = self.create_last(&parts, create)? {
                    return Ok(fd);
                }
            }
            Err(_) => {}
        }
        let resolved = self.resolve(path, create)?;
        self.open_resolved(&resolved, OFlag::empty())
    }

    /// The common missing destination, a new entry in an existing directory (`/dev/pts`, each
    /// hierarchy under a cgroup mount's tmpfs): the parent resolved by the kernel in one call as in
    /// `open_in`, the last component made there and opened beneath it without following anything.
    /// `None` (the walk decides) when the parent is missing too, or the last component is `..` or
    /// exists after all (a dangling symlink, which the walk follows inside the root).
    fn create_last(&self, parts: &[OsString], create: Create) -> nix::Result<Option<OwnedFd>> {
        let Some((last, parent)) = parts.split_last() else {
            return Ok(None);
        };
        if last == ".." {
            return Ok(None);
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let Ok(dir) = openat2(&self.fd, &join(parent), how) else {
            return Ok(None);
        };
        if nix::fcntl::readlinkat(&dir, last.as_os_str()) != Err(Errno::ENOENT) {
            return Ok(None);
        }
        make(dir.as_fd(), last, create == Create::File)?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        openat2(&dir, last.as_os_str(), how).map(Some)
    }

    /// The path inside the root that `path` leads to (symlinks followed inside the root), as
    /// components. Missing components are created when `create` says so, else kept as written.
    pub fn resolve(&self, path: &Path, create: Create) -> nix::Result<Vec<OsString>> {
        if create == Create::Nothing {
            let parts: Vec<OsString> = components(path).collect();
            if let Some(resolved) = self.without_symlinks(parts) {
                return Ok(resolved);
            }
        }
        let mut pending: VecDeque<OsString> = components(path).collect();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                resolved.pop();
                continue;
            }
            let parent = self.open_resolved(&resolved, OFlag::O_DIRECTORY)?;
            match nix::fcntl::readlinkat(&parent, c.as_os_str()) {
                Ok(target) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    if Path::new(&target).is_absolute() {
                        resolved.clear();
                    }
                    for t in components(Path::new(&target)).rev() {
                        pending.push_front(t);
                    }
                }
                // Exists and is not a symlink.
                Err(Errno::EINVAL) => resolved.push(c),
                Err(Errno::ENOENT) if create == Create::Nothing => {
                    // Nothing below a missing component exists: finish lexically, as securejoin.
                    resolved.push(c);
                    for c in pending.drain(..) {
                        if c == ".." {
                            resolved.pop();
                        } else {
                            resolved.push(c);
                        }
                    }
                }
                Err(Errno::ENOENT) => {
                    let last = pending.is_empty();
                    make(parent.as_fd(), &c, last && create == Create::File)?;
                    resolved.push(c);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(resolved)
    }

    /// `parts` as the walk would resolve them (creating nothing) when no symlink lies on the way:
    /// all exist as written, or all but a missing last one, which one openat2 that refuses
    /// symlinks proves (two when the last is missing), where the walk costs three calls per
    /// component. `None` when that is not shown (a symlink, a `..`, more missing, no openat2): the
    /// walk decides.
    fn without_symlinks(&self, parts: Vec<OsString>) -> Option<Vec<OsString>> {
        if parts.iter().any(|c| c == "..") {
            return None;
        }
        let how = |extra: OFlag| {
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
                .resolve(
                    ResolveFlag::RESOLVE_IN_ROOT
                        | ResolveFlag::RESOLVE_NO_SYMLINKS
                        | ResolveFlag::RESOLVE_NO_MAGICLINKS,
                )
        };
        match openat2(&self.fd, &join(&parts), how(OFlag::empty())) {
            Ok(_) => Some(parts),
            Err(Errno::ENOENT) => {
                let (last, parent) = parts.split_last()?;
                let dir = openat2(&self.fd, &join(parent), how(OFlag::O_DIRECTORY)).ok()?;
                let missing = nix::fcntl::readlinkat(&dir, last.as_os_str()) == Err(Errno::ENOENT);
                missing.then_some(parts)
            }
            Err(_) => None,
        }
    }

    /// Opens already-resolved components; fails rather than follow a symlink or leave the root.
    fn open_resolved(&self, resolved: &[OsString], extra: OFlag) -> nix::Result<OwnedFd> {
        let path = join(resolved);
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
            .resolve(
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match openat2(&self.fd, &path, how) {
            // Resolved components hold no `..` and no symlink: a walk that refuses symlinks is
            // the same lookup, for kernels without openat2 (before 5.6) or a seccomp'd one
            // (ENOSYS, or EPERM from a host's profile: openat2 itself never answers EPERM here).
            Err(Errno::ENOSYS | Errno::EPERM) => crate::proc_handle::walk_beneath(
                self.fd.as_fd(),
                &path,
                OFlag::O_PATH | OFlag::O_CLOEXEC | extra,
            ),
            r => r,
        }
    }
}

/// Creates one missing component in `parent`; losing a race to another creator is fine.
fn make(parent: BorrowedFd<'_>, name: &OsStr, file: bool) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(0o755);
    let r = if file {
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        nix::fcntl::openat(parent, name, flags | OFlag::O_NOFOLLOW, mode).map(drop)
    } else {
        nix::sys::stat::mkdirat(parent, name, mode)
    };
    match r {
        Err(Errno::EEXIST) => Ok(()),
        r => r,
    }
}

/// The normal components of `path` and its `..`s, in order: `/` and `.` say nothing inside a root.
fn components(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// `a/b/c`, or `.` for the root itself.
pub fn join(components: &[OsString]) -> PathBuf {
    if components.is_empty() {
        return PathBuf::from(".");
    }
    components.iter().collect()
}

/// `/proc/self/fd/N`: the path mount(2) and friends take to act on exactly what `fd` is.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The resolved path as the container will see it (`/a/b`), for messages and checks.
pub fn container_path(components: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in components {
        p.push(c);
    }
    p
}

/// Lexical cleaning without touching the filesystem: `/dev/../dev/` → `/dev` (runc's CleanPath).
pub fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    let mut p = PathBuf::from("/");
    p.extend(out);
    p
}
