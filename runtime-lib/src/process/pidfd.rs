//! A handle on a process that cannot be confused with a later process reusing its pid.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

#[derive(Debug)]
pub struct PidFd(OwnedFd);

/// What the message carrying an init's pidfd says on `--pidfd-socket` (runc's init type names).
pub const INIT_KIND: &str = "standard";
/// ... and an exec'd process's.
pub const EXEC_KIND: &str = "setns";

/// `--pidfd-socket`: sends a pidfd of `pid` over the connected `socket` with SCM_RIGHTS, the
/// message's data saying which kind of process it is, as runc does.
pub fn send_to_socket(socket: &OwnedFd, pid: Pid, kind: &str) -> crate::Result<()> {
    use crate::error::SysContext;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let pidfd = PidFd::open(pid).sys("pidfd_open for --pidfd-socket")?;
    let fds = [pidfd.0.as_raw_fd()];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[std::io::IoSlice::new(kind.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .sys("send pidfd to --pidfd-socket")?;
    Ok(())
}

impl AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PidFd {
    pub fn open(pid: Pid) -> nix::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags, no pointers; on success it returns a new fd
        // that nothing else owns.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        let fd = Errno::result(ret)? as i32;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn send_signal(&self, signal: Signal) -> nix::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: a NULL siginfo is allowed (the kernel fills in a kill(2)-like one).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        Errno::result(ret).map(drop)
    }

    /// True once the process has exited (readable pidfd), waiting at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> nix::Result<bool> {
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        loop {
            match poll(&mut fds, ms) {
                Ok(n) => return Ok(n > 0),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
