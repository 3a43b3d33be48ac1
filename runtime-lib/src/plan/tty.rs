//! process.terminal and `--pidfd-socket` on the host: the runtime connects to the caller's
//! sockets before the init exists (the init's side: `crate::process::steps::tty`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use crate::error::SysContext;
use crate::Result;

/// In the runtime, before the init exists: connect to `--console-socket`.
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    connect_unix(path, "connect to console socket")
}

/// A connected AF_UNIX stream socket (`--console-socket`, `--pidfd-socket`); `step` names it in
/// the error.
pub fn connect_unix(path: &Path, step: &'static str) -> Result<OwnedFd> {
    let addr = UnixAddr::new(path).sys_path(step, path)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .sys_path(step, path)?;
    connect(sock.as_raw_fd(), &addr).sys_path(step, path)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn connect_reaches_a_listener_and_names_a_missing_path() {
        let dir = std::env::temp_dir().join(format!("hull-tty-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let sock = connect_console_socket(&path).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        nix::unistd::write(&sock, b"x").unwrap();
        let mut b = [0u8; 1];
        peer.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");

        let missing = dir.join("missing.sock");
        let msg = connect_console_socket(&missing).unwrap_err().to_string();
        assert!(msg.starts_with("connect to console socket"), "{msg}");
        assert!(msg.contains("missing.sock"), "{msg}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
