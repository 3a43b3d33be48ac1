//! The receiving end of `--console-socket`: what containerd's shim and conmon do, reduced to
//! "accept one connection, take the pty master from its SCM_RIGHTS message".

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

pub struct ConsoleSocket {
    path: PathBuf,
    master: mpsc::Receiver<Result<OwnedFd, String>>,
}

impl ConsoleSocket {
    /// Listens at `path`; a thread accepts the runtime's one connection.
    pub fn bind(path: &Path) -> ConsoleSocket {
        let listener = UnixListener::bind(path)
            .unwrap_or_else(|e| panic!("bind console socket {}: {e}", path.display()));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(receive(&listener));
        });
        ConsoleSocket {
            path: path.to_path_buf(),
            master: rx,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent; panics if none came within `timeout`.
    pub fn master(&self, timeout: Duration) -> OwnedFd {
        match self.master.recv_timeout(timeout) {
            Ok(Ok(fd)) => fd,
            Ok(Err(e)) => panic!("console socket: {e}"),
            Err(_) => panic!(
                "no pty master arrived on {} within {timeout:?}",
                self.path.display()
            ),
        }
    }
}

fn receive(listener: &UnixListener) -> Result<OwnedFd, String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(rights) = c {
            fds.extend(rights);
        }
    }
    let mut owned = fds.into_iter().map(|fd| {
        // SAFETY: the kernel just installed this descriptor in our table for us alone.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let first = owned.next().ok_or("message carried no file descriptor")?;
    Ok(first)
}

/// Reads the pty until every slave is closed (EIO) or `timeout` passes; `\r\n` become `\n`.
pub fn read_until_closed(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        match nix::unistd::read(master, &mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(_) => break, // EIO: the last slave closed
        }
    }
    String::from_utf8_lossy(&data).replace("\r\n", "\n")
}
