//! `mounts[]`, in config order, each onto its destination resolved inside the rootfs.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{FchmodatFlags, Mode};
use oci_spec::runtime::{Mount, Spec};

use super::options::{self, MountOptions};
use super::resolve::{self, Create, Root};
use super::{cgroup, copyup};
use crate::error::{InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;

/// What every mount needs besides its own entry.
pub(super) struct Ctx<'a> {
    pub root: &'a Root,
    pub sys: &'a dyn Syscall,
    pub spec: &'a Spec,
    pub sources: &'a BindSources,
}

/// The bind-mount sources of `mounts[]`, opened (O_PATH) while the init still had the caller's
/// ids: once it is the mapped root of a user namespace it may not traverse the host directories
/// above them (a 0700 engine state directory, a bind of a directory under /root), which crun
/// handles and runc 1.1 does not. Mounting from the descriptor also binds what was checked, not
/// what a later rename puts at the path.
#[derive(Default)]
pub struct BindSources(Vec<Option<OwnedFd>>);

impl BindSources {
    /// Opens the source of every bind mount of `spec`, relative to the working directory (the
    /// bundle) when relative, as mount(2) would read it.
    pub fn open(spec: &Spec) -> InitResult<BindSources> {
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let mut fds = Vec::with_capacity(mounts.len());
        for m in mounts {
            let e = Entry::from_spec(m, None)?;
            if e.kind != Kind::Bind {
                fds.push(None);
                continue;
            }
            let source = e.source.clone().unwrap_or_default();
            let fd = nix::fcntl::open(
                &source,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(e.fail(&format!("stat source {:?}", source.display())))?;
            fds.push(Some(fd));
        }
        Ok(BindSources(fds))
    }

    fn get(&self, index: Option<usize>) -> Option<&OwnedFd> {
        self.0.get(index?)?.as_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Proc,
    Sysfs,
    Tmpfs,
    Mqueue,
    Bind,
    /// `cgroup`: cgroup v1 hierarchies (or the unified one on a cgroup v2 host), as runc lays them out.
    Cgroup,
    /// Any other filesystem (devpts, cgroup2, overlay...): mounted as asked.
    Other,
}

/// One `mounts[]` entry, read the way runc reads it.
pub(super) struct Entry {
    pub dest: PathBuf,
    pub source: Option<PathBuf>,
    pub fstype: String,
    pub kind: Kind,
    pub opts: MountOptions,
    /// Its place in `mounts[]` (None for the ones hull derives, such as cgroup v1 binds).
    pub index: Option<usize>,
}

pub(super) fn mount_all(cx: &Ctx<'_>) -> InitResult<()> {
    for (i, m) in cx
        .spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        Entry::from_spec(m, Some(i))?.mount(cx)?;
    }
    Ok(())
}

impl Entry {
    pub fn from_spec(m: &Mount, index: Option<usize>) -> InitResult<Entry> {
        let dest = m.destination().clone();
        let unsupported = |what: String| {
            InitFailure::new(InitStep::Mount)
                .subject(dest.display())
                .detail(format!("{what} is not supported by hull"))
        };
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(
                "an idmapped mount (uidMappings, gidMappings)".into(),
            ));
        }
        let opts = options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|o| unsupported(format!("mount option {o:?}")))?;
        let fstype = m.typ().clone().unwrap_or_default();
        let kind = if opts.flags.contains(MsFlags::MS_BIND) || fstype == "bind" {
            Kind::Bind
        } else {
            match fstype.as_str() {
                "proc" => Kind::Proc,
                "sysfs" => Kind::Sysfs,
                "tmpfs" => Kind::Tmpfs,
                "mqueue" => Kind::Mqueue,
                "cgroup" => Kind::Cgroup,
                _ => Kind::Other,
            }
        };
        let mut e = Entry {
            dest,
            source: m.source().clone(),
            fstype,
            kind,
            opts,
            index,
        };
        if kind == Kind::Bind {
            // runc needs the `bind` option and fails with ENODEV without it; crun and the spec's
            // examples treat type "bind" as a bind mount, which is what the writer meant.
            e.opts.flags.insert(MsFlags::MS_BIND);
        }
        Ok(e)
    }

    pub fn fail(&self, what: &str) -> impl FnOnce(Errno) -> InitFailure + '_ {
        let what = what.to_string();
        move |e| {
            // EINVAL from mount(2) is most often an option the filesystem does not take: say
            // which were passed, since the errno alone names none.
            let what = if e == Errno::EINVAL && !self.opts.data.is_empty() {
                format!(
                    "{what} {} with options {:?}",
                    if self.fstype.is_empty() {
                        "bind"
                    } else {
                        &self.fstype
                    },
                    self.opts.data
                )
            } else {
                what
            };
            InitFailure::sys(InitStep::Mount, self.dest.display(), e).detail(what)
        }
    }

    fn refuse(&self, why: impl Into<String>) -> InitFailure {
        InitFailure::new(InitStep::Mount)
            .subject(self.dest.display())
            .detail(why)
    }

    pub fn mount(&self, cx: &Ctx<'_>) -> InitResult<()> {
        self.check_proc_mount(cx)?;
        match self.kind {
            Kind::Proc | Kind::Sysfs => self.mount_proc_or_sysfs(cx)?,
            Kind::Tmpfs => self.mount_tmpfs(cx)?,
            Kind::Bind => self.mount_bind(cx)?,
            Kind::Cgroup => return cgroup::mount(self, cx),
            Kind::Mqueue | Kind::Other => {
                let fd = self.dest_fd(cx, Create::Dir)?;
                let r = self.mount_at(cx, &fd, self.source_or_type(), self.first_flags());
                match r {
                    Err(e @ (Errno::EPERM | Errno::EBUSY)) if self.fstype == "cgroup2" => {
                        cgroup::bind_host_cgroup2(self, cx, e)?
                    }
                    r => r.map_err(self.fail("mount"))?,
                }
                self.propagate(cx)?;
            }
        }
        self.set_rec_attr(cx)
    }

    /// runc refuses proc and sysfs on anything but a plain directory (a symlink there was an
    /// attack); a missing one is created.
    fn mount_proc_or_sysfs(&self, cx: &Ctx<'_>) -> InitResult<()> {
        let resolved = cx
            .root
            .resolve(&self.dest, Create::Nothing)
            .map_err(self.fail("resolve destination"))?;
        let lexical = resolve::clean(&self.dest);
        if resolve::container_path(&resolved) != lexical {
            return Err(self.refuse(format!(
                "filesystem {:?} must be mounted on ordinary directory",
                self.fstype
            )));
        }
        let fd = self.dest_fd(cx, Create::Dir)?;
        let stat = nix::sys::stat::fstat(&fd).map_err(self.fail("stat destination"))?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(self.refuse(format!(
                "filesystem {:?} must be mounted on ordinary directory",
                self.fstype
            )));
        }
        match self.mount_at(cx, &fd, self.source_or_type(), self.first_flags()) {
            // sysfs belongs to the network namespace's owner: without a new netns, a user
            // namespace cannot mount it. Give the host's /sys instead, recursively, with the
            // flags asked for (runc 1.2 does the same).
            Err(Errno::EPERM) if self.kind == Kind::Sysfs => {
                let flags = self.opts.flags | MsFlags::MS_BIND | MsFlags::MS_REC;
                self.mount_at(cx, &fd, Some(Path::new("/sys")), flags)
                    .map_err(self.fail("bind /sys (sysfs not permitted)"))?;
                self.remount_bind(cx, Path::new("/sys"), flags)?;
            }
            r => r.map_err(self.fail("mount"))?,
        }
        self.propagate(cx)
    }

    fn mount_tmpfs(&self, cx: &Ctx<'_>) -> InitResult<()> {
        // A tmpfs over an existing directory keeps the directory's mode, as runc does.
        let old_mode = match cx.root.open_in(&self.dest, Create::Nothing) {
            Ok(fd) => Some(nix::sys::stat::fstat(&fd).map_err(self.fail("stat destination"))?),
            Err(_) => None,
        };
        let fd = self.dest_fd(cx, Create::Dir)?;
        if self.opts.tmpcopyup {
            copyup::mount_tmpfs_copyup(self, cx, fd)?;
        } else {
            self.mount_at(cx, &fd, self.source_or_type(), self.first_flags())
                .map_err(self.fail("mount"))?;
        }
        self.propagate(cx)?;
        if let Some(st) = old_mode {
            let fd = self.dest_fd(cx, Create::Nothing)?;
            let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                &resolve::fd_path(&fd),
                mode,
                FchmodatFlags::FollowSymlink,
            )
            .map_err(self.fail("chmod"))?;
        }
        Ok(())
    }

    fn mount_bind(&self, cx: &Ctx<'_>) -> InitResult<()> {
        let (source, st) = match cx.sources.get(self.index) {
            Some(fd) => (
                resolve::fd_path(fd),
                nix::sys::stat::fstat(fd).map_err(self.fail("stat source"))?,
            ),
            None => {
                let source = self.source.clone().unwrap_or_default();
                let st = nix::sys::stat::stat(&source)
                    .map_err(self.fail(&format!("stat source {:?}", source.display())))?;
                (source, st)
            }
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let fd = self.dest_fd(cx, if is_dir { Create::Dir } else { Create::File })?;
        self.mount_at(cx, &fd, Some(&source), self.first_flags())
            .map_err(self.fail("bind mount"))?;
        self.propagate(cx)?;
        // The kernel ignores every other flag on a new bind: a remount applies them.
        let plain = MsFlags::MS_REC | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
        if !(self.opts.flags - plain).is_empty() {
            self.remount_bind(cx, &source, self.opts.flags)?;
        }
        Ok(())
    }

    /// MS_REMOUNT|MS_BIND with `flags`. Flags the kernel locked (a read-only source, or nosuid,
    /// nodev, noexec, atime of a mount from a more privileged namespace) cannot be dropped: on
    /// failure, retry keeping the ones the mount already has.
    pub fn remount_bind(&self, cx: &Ctx<'_>, source: &Path, flags: MsFlags) -> InitResult<()> {
        let fd = self.dest_fd(cx, Create::Nothing)?;
        let flags = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
        let Err(err) = self.mount_at(cx, &fd, Some(source), flags) else {
            return Ok(());
        };
        let locked = nix::sys::statvfs::fstatvfs(&fd)
            .map(|s| MsFlags::from_bits_truncate(s.flags().bits() as _) & locked_flags())
            .map_err(self.fail("statvfs"))?;
        if locked.is_empty() || (flags & locked) == locked {
            return Err(self.fail("remount")(err));
        }
        self.mount_at(cx, &fd, Some(source), flags | locked)
            .map_err(self.fail("remount"))
    }

    /// Each propagation option in its own call: mount(2) takes one propagation type at a time.
    pub fn propagate(&self, cx: &Ctx<'_>) -> InitResult<()> {
        if self.opts.propagation.is_empty() {
            return Ok(());
        }
        // The fd used for the mount names the covered directory: reopen to reach the new mount.
        let fd = self.dest_fd(cx, Create::Nothing)?;
        for p in &self.opts.propagation {
            self.mount_at(cx, &fd, None, *p)
                .map_err(self.fail("set propagation"))?;
        }
        Ok(())
    }

    fn set_rec_attr(&self, cx: &Ctx<'_>) -> InitResult<()> {
        let Some(attr) = self.opts.rec_attr else {
            return Ok(());
        };
        let fd = self.dest_fd(cx, Create::Nothing)?;
        cx.sys
            .mount_setattr(&resolve::fd_path(&fd), true, attr.set, attr.clr)
            .map_err(self.fail("mount_setattr"))
    }

    pub fn dest_fd(&self, cx: &Ctx<'_>, create: Create) -> InitResult<OwnedFd> {
        let what = if create == Create::Nothing {
            "open destination"
        } else {
            "create destination"
        };
        cx.root.open_in(&self.dest, create).map_err(self.fail(what))
    }

    pub fn mount_at(
        &self,
        cx: &Ctx<'_>,
        fd: &OwnedFd,
        source: Option<&Path>,
        flags: MsFlags,
    ) -> nix::Result<()> {
        let data = Some(self.opts.data.as_str()).filter(|d| !d.is_empty());
        let fstype = Some(self.fstype.as_str())
            .filter(|t| !t.is_empty() && !flags.intersects(MsFlags::MS_BIND | MsFlags::MS_REMOUNT));
        let (fstype, data) = if source.is_none() {
            (None, None) // a propagation change takes nothing else
        } else {
            (fstype, data)
        };
        cx.sys
            .mount(source, &resolve::fd_path(fd), fstype, flags, data)
    }

    /// Flags of the first mount: a tmpfs (and /dev) is filled first and made read-only in
    /// `finalize`, as runc does.
    fn first_flags(&self) -> MsFlags {
        let mut flags = self.opts.flags;
        if self.kind == Kind::Tmpfs || resolve::clean(&self.dest) == Path::new("/dev") {
            flags.remove(MsFlags::MS_RDONLY);
        }
        flags
    }

    fn source_or_type(&self) -> Option<&Path> {
        match &self.source {
            Some(s) if !s.as_os_str().is_empty() => Some(s),
            _ => Some(Path::new(&self.fstype)),
        }
    }

    /// runc's guard against covering /proc (CVE-2019-16884 and friends), for mounts of every
    /// type: only a proc may go on /proc itself, and below it only the files lxcfs emulates
    /// (runc's list). Anything else there (a tmpfs on /proc/self, say) would hide what the init
    /// writes to procfs or what masked and readonly paths protect. The destination is checked
    /// as written and as resolved in the rootfs (a symlink, `..`).
    fn check_proc_mount(&self, cx: &Ctx<'_>) -> InitResult<()> {
        const ALLOWED: &[&str] = &[
            "/proc/cpuinfo",
            "/proc/diskstats",
            "/proc/meminfo",
            "/proc/stat",
            "/proc/swaps",
            "/proc/uptime",
            "/proc/loadavg",
            "/proc/slabinfo",
            "/proc/pressure/cpu",
            "/proc/pressure/io",
            "/proc/pressure/memory",
            "/proc/net/dev",
            "/proc/sys/kernel/ns_last_pid",
        ];
        let resolved = cx
            .root
            .resolve(&self.dest, Create::Nothing)
            .map_err(self.fail("resolve destination"))?;
        for dest in [
            resolve::clean(&self.dest),
            resolve::container_path(&resolved),
        ] {
            if !dest.starts_with("/proc") {
                continue;
            }
            if dest == Path::new("/proc") {
                if self.kind == Kind::Proc || self.is_proc_bind()? {
                    continue;
                }
                return Err(self.refuse(format!(
                    "{:?} cannot be mounted because it is not of type proc",
                    dest.display()
                )));
            }
            if ALLOWED.iter().any(|a| dest == Path::new(a)) {
                continue;
            }
            return Err(self.refuse(format!(
                "{:?} cannot be mounted because it is inside /proc",
                dest.display()
            )));
        }
        Ok(())
    }

    /// A bind whose source is a procfs.
    fn is_proc_bind(&self) -> InitResult<bool> {
        if self.kind != Kind::Bind {
            return Ok(false);
        }
        let source = self.source.clone().unwrap_or_default();
        let fs = nix::sys::statfs::statfs(&source)
            .map_err(self.fail(&format!("statfs source {:?}", source.display())))?;
        Ok(fs.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
    }
}

/// The per-mount flags a less privileged namespace may not clear.
fn locked_flags() -> MsFlags {
    MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC
        | MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_RELATIME
}
