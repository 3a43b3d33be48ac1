//! runc's `tmpcopyup` mount option: a tmpfs that starts with a copy of the directory it covers.
//!
//! runc mounts the tmpfs on a host scratch directory, copies, then moves it in. Hull keeps an fd of
//! the covered directory instead: after the tmpfs is mounted over it, the fd still reaches the old
//! contents, which are copied into the new mount without any host path involved.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::mounts::{Ctx, Entry};
use super::resolve::{self, Create};
use crate::error::InitResult;

pub(super) fn mount_tmpfs_copyup(e: &Entry, cx: &Ctx<'_>, dest: OwnedFd) -> InitResult<()> {
    let fail = |err| e.fail("tmpcopyup")(err);
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let lower =
        nix::fcntl::open(&resolve::fd_path(&dest), dir_flags, Mode::empty()).map_err(fail)?;
    let source = e.source.as_deref().or(Some("tmpfs".as_ref()));
    e.mount_at(
        cx,
        &dest,
        source,
        e.opts.flags - nix::mount::MsFlags::MS_RDONLY,
    )
    .map_err(e.fail("mount"))?;
    let upper = e.dest_fd(cx, Create::Nothing)?;
    let upper =
        nix::fcntl::open(&resolve::fd_path(&upper), dir_flags, Mode::empty()).map_err(fail)?;
    copy_dir(lower.as_fd(), upper.as_fd()).map_err(fail)
}

fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let mut dir = nix::dir::Dir::from_fd(nix::unistd::dup(from)?)?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let st = nix::sys::stat::fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        copy_entry(from, to, name, &st)?;
        let (uid, gid) = (
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        );
        nix::unistd::fchownat(to, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

fn copy_entry(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    name: &OsStr,
    st: &FileStat,
) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match kind {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(to, name, mode)?;
            let sub_from = nix::fcntl::openat(from, name, dir_flags, Mode::empty())?;
            let sub_to = nix::fcntl::openat(to, name, dir_flags, Mode::empty())?;
            copy_dir(sub_from.as_fd(), sub_to.as_fd())?;
            // mkdirat applied the umask.
            nix::sys::stat::fchmod(&sub_to, mode)
        }
        SFlag::S_IFREG => {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let mut src = File::from(nix::fcntl::openat(from, name, flags, Mode::empty())?);
            let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
            let dst = nix::fcntl::openat(to, name, create, mode)?;
            nix::sys::stat::fchmod(&dst, mode)?;
            std::io::copy(&mut src, &mut File::from(dst)).map_err(io_errno)?;
            Ok(())
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(from, name)?;
            nix::unistd::symlinkat(target.as_os_str(), to, name)
        }
        _ => nix::sys::stat::mknodat(to, name, kind, mode, st.st_rdev),
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
