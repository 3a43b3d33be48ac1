//! The seam between the init sequence and the kernel.
//!
//! The init sequence (`process::init`) and `rootfs` reach the kernel only through [`Syscall`], so unit
//! tests can run the whole sequence against a recorder and assert its order and error handling without
//! privileges. [`LinuxSyscall`] is the real thing: each method is one system call, no policy.

use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use crate::proc_handle::{ProcError, ProcFs};

pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    fn setdomainname(&self, name: &str) -> nix::Result<()>;
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()>;
    fn setresgid(&self, gid: Gid) -> nix::Result<()>;
    fn setresuid(&self, uid: Uid) -> nix::Result<()>;
    fn umask(&self, mask: Mode);
    /// Writes a procfs control file (sysctl, oom_score_adj), `path` being under `/proc`: through
    /// a verified procfs handle, never created, never through a symlink or another filesystem.
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), ProcError>;
    /// mount_setattr(2) on `target` (AT_RECURSIVE when `recursive`): sets `attr_set` and clears
    /// `attr_clr` (`MOUNT_ATTR_*`) on the mount, or on the whole tree below it.
    fn mount_setattr(
        &self,
        target: &Path,
        recursive: bool,
        attr_set: u64,
        attr_clr: u64,
    ) -> nix::Result<()>;
}

/// The real kernel.
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }
    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }
    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev)
    }
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, link)
    }
    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }
    fn setdomainname(&self, name: &str) -> nix::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the kernel
        // copies them and does not need a terminating NUL.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()> {
        nix::sched::setns(fd, nstype)
    }
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }
    fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
        nix::unistd::setgroups(gids)
    }
    fn setresgid(&self, gid: Gid) -> nix::Result<()> {
        nix::unistd::setresgid(gid, gid, gid)
    }
    fn setresuid(&self, uid: Uid) -> nix::Result<()> {
        nix::unistd::setresuid(uid, uid, uid)
    }
    fn umask(&self, mask: Mode) {
        nix::sys::stat::umask(mask);
    }
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<(), ProcError> {
        let rel = path
            .strip_prefix("/proc")
            .map_err(|_| ProcError::Sys(nix::errno::Errno::EXDEV))?;
        ProcFs::open()?.write(rel, data)
    }
    fn mount_setattr(
        &self,
        target: &Path,
        recursive: bool,
        attr_set: u64,
        attr_clr: u64,
    ) -> nix::Result<()> {
        use nix::NixPath;
        /// linux/mount.h `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set,
            attr_clr,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
        let r = target.with_nix_path(|path| {
            // SAFETY: `path` is NUL-terminated and `attr` is a live `struct mount_attr` of the size
            // passed; the kernel only reads both during the call.
            unsafe {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags as libc::c_uint,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                )
            }
        })?;
        nix::errno::Errno::result(r).map(drop)
    }
}

/// A `Syscall` that records each call and fails the ones a test picks, so a sequence's order and
/// its handling of each failure can be checked without privileges or side effects.
#[cfg(test)]
pub(crate) mod recorder {
    use std::cell::RefCell;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::path::Path;

    use nix::errno::Errno;
    use nix::mount::{MntFlags, MsFlags};
    use nix::sched::CloneFlags;
    use nix::sys::stat::{Mode, SFlag};
    use nix::unistd::{Gid, Uid};

    use super::Syscall;

    #[derive(Default)]
    pub struct Recorder {
        pub calls: RefCell<Vec<String>>,
        /// Calls whose text starts with one of these fail with the errno.
        pub fail: Vec<(&'static str, Errno)>,
    }

    impl Recorder {
        pub fn failing(fail: Vec<(&'static str, Errno)>) -> Recorder {
            Recorder {
                fail,
                ..Recorder::default()
            }
        }

        fn call(&self, text: String) -> nix::Result<()> {
            let failed = self.fail.iter().find(|(p, _)| text.starts_with(p));
            self.calls.borrow_mut().push(text);
            match failed {
                Some((_, e)) => Err(*e),
                None => Ok(()),
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> nix::Result<()> {
            self.call(format!(
                "mount {source:?} {} {fstype:?} {flags:?} {data:?}",
                target.display()
            ))
        }
        fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
            self.call(format!("umount2 {} {flags:?}", target.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
            self.call(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chroot(&self, path: &Path) -> nix::Result<()> {
            self.call(format!("chroot {}", path.display()))
        }
        fn chdir(&self, path: &Path) -> nix::Result<()> {
            self.call(format!("chdir {}", path.display()))
        }
        fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> nix::Result<()> {
            self.call(format!("mknod {} {kind:?} {perm:?} {dev}", path.display()))
        }
        fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
            self.call(format!("symlink {} {}", target.display(), link.display()))
        }
        fn sethostname(&self, name: &str) -> nix::Result<()> {
            self.call(format!("sethostname {name}"))
        }
        fn setdomainname(&self, name: &str) -> nix::Result<()> {
            self.call(format!("setdomainname {name}"))
        }
        fn setns(&self, fd: BorrowedFd<'_>, nstype: CloneFlags) -> nix::Result<()> {
            self.call(format!("setns {} {nstype:?}", fd.as_raw_fd()))
        }
        fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
            self.call(format!("unshare {flags:?}"))
        }
        fn setgroups(&self, gids: &[Gid]) -> nix::Result<()> {
            self.call(format!("setgroups {gids:?}"))
        }
        fn setresgid(&self, gid: Gid) -> nix::Result<()> {
            self.call(format!("setresgid {gid}"))
        }
        fn setresuid(&self, uid: Uid) -> nix::Result<()> {
            self.call(format!("setresuid {uid}"))
        }
        fn umask(&self, mask: Mode) {
            let _ = self.call(format!("umask {:o}", mask.bits()));
        }
        fn write_file(
            &self,
            path: &Path,
            data: &[u8],
        ) -> Result<(), crate::proc_handle::ProcError> {
            Ok(self.call(format!(
                "write {} {}",
                path.display(),
                String::from_utf8_lossy(data)
            ))?)
        }
        fn mount_setattr(
            &self,
            target: &Path,
            recursive: bool,
            attr_set: u64,
            attr_clr: u64,
        ) -> nix::Result<()> {
            self.call(format!(
                "mount_setattr {} {recursive} {attr_set:#x} {attr_clr:#x}",
                target.display()
            ))
        }
    }
}
