//! The caller's end of `--console-socket`: receives the pty master the runtime sends over
//! SCM_RIGHTS and collects everything the container writes to its terminal.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

pub struct Console {
    reader: JoinHandle<String>,
}

fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    for cmsg in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our table; we own it now.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("no descriptor in the console socket message".into())
}

impl Console {
    /// Binds the socket at `path`; a thread accepts one connection and reads the pty until hangup.
    pub fn listen(path: &Path) -> Result<Console, String> {
        let listener =
            UnixListener::bind(path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        let reader = std::thread::spawn(move || {
            let master = match receive_master(&listener) {
                Ok(fd) => fd,
                Err(e) => return format!("console: {e}"),
            };
            let mut file = std::fs::File::from(master);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            // EIO means every slave descriptor is closed: the container is gone.
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&out).into_owned()
        });
        Ok(Console { reader })
    }

    /// Waits (bounded) for the reader and returns what the container printed.
    pub fn collect(self) -> String {
        for _ in 0..500 {
            if self.reader.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.reader.is_finished() {
            return "console reader did not finish".into();
        }
        self.reader
            .join()
            .unwrap_or_else(|_| "console reader panicked".into())
    }
}
