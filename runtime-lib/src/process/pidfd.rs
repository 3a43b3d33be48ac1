//! A handle on a process that cannot be confused with a later process reusing its pid.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A pidfd (pidfd_open, Linux 5.3), or on a kernel without one (ENOSYS) or a host whose seccomp
/// profile refuses it (EPERM) the bare pid: callers check the process's start time after opening,
/// which leaves only the window runc has on such kernels.
#[derive(Debug)]
pub struct PidFd {
    fd: Option<OwnedFd>,
    pid: Pid,
}

/// How often a handle without a pidfd looks at its process while waiting.
pub const EXIT_POLL: Duration = Duration::from_millis(20);

/// What the message carrying an init's pidfd says on `--pidfd-socket` (runc's init type names).
pub const INIT_KIND: &str = "standard";
/// ... and an exec'd process's.
pub const EXEC_KIND: &str = "setns";

/// `--pidfd-socket`: sends a pidfd of `pid` over the connected `socket` with SCM_RIGHTS, the
/// message's data saying which kind of process it is, as runc does.
pub fn send_to_socket(socket: &OwnedFd, pid: Pid, kind: &str) -> crate::Result<()> {
    use crate::error::SysContext;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let pidfd = PidFd::open(pid).sys("pidfd_open for --pidfd-socket")?;
    // The socket's whole point is a pidfd: without one (before Linux 5.3) there is nothing to send.
    let fd = pidfd
        .fd
        .as_ref()
        .ok_or(Errno::ENOSYS)
        .sys("pidfd_open for --pidfd-socket")?;
    let fds = [fd.as_raw_fd()];
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

impl PidFd {
    pub fn open(pid: Pid) -> nix::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags, no pointers; on success it returns a new fd
        // that nothing else owns.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        match Errno::result(ret) {
            Ok(fd) => Ok(PidFd {
                // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
                fd: Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
                pid,
            }),
            Err(Errno::ENOSYS | Errno::EPERM) => {
                nix::sys::signal::kill(pid, None)?;
                Ok(PidFd { fd: None, pid })
            }
            Err(e) => Err(e),
        }
    }

    /// The pidfd to poll for the exit, if there is one; else see [`PidFd::exited`].
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    pub fn send_signal(&self, signal: Signal) -> nix::Result<()> {
        let Some(fd) = &self.fd else {
            return nix::sys::signal::kill(self.pid, signal);
        };
        // SAFETY: a NULL siginfo is allowed (the kernel fills in a kill(2)-like one).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        match Errno::result(ret) {
            // pidfd_open without pidfd_send_signal: only a profile that refuses the one.
            Err(Errno::ENOSYS | Errno::EPERM) => nix::sys::signal::kill(self.pid, signal),
            r => r.map(drop),
        }
    }

    /// Whether the process has exited: gone, or a zombie child of ours (left for its reaper).
    pub fn exited(&self) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pid), flags) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(_) => true,
            // Not our child: gone once the pid is, or a zombie its own parent has yet to reap
            // (which a pidfd would report as exited too).
            Err(_) => match nix::sys::signal::kill(self.pid, None) {
                Err(Errno::ESRCH) => true,
                _ => is_zombie(self.pid),
            },
        }
    }

    /// True once the process has exited (readable pidfd), waiting at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> nix::Result<bool> {
        let Some(fd) = &self.fd else {
            let deadline = std::time::Instant::now() + timeout;
            loop {
                if self.exited() {
                    return Ok(true);
                }
                if std::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(EXIT_POLL);
            }
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
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

/// The state field of /proc/<pid>/stat (after the command's closing parenthesis) is Z or X.
fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback for kernels without pidfd_open: signals reach the process and its exit (a
    /// zombie child of ours here) is seen.
    #[test]
    fn without_a_pidfd_signals_and_the_exit_still_work() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let handle = PidFd {
            fd: None,
            pid: Pid::from_raw(child.id() as i32),
        };
        assert!(!handle.exited());
        handle.send_signal(Signal::SIGKILL).unwrap();
        assert!(handle.wait_exit(Duration::from_secs(60)).unwrap());
        assert!(is_zombie(handle.pid));
        child.wait().unwrap();
        assert!(handle.exited());
    }
}
