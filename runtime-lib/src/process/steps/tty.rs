//! process.terminal with a console socket, in the init: the pty is made inside the container, its master sent to
//! the caller's socket with SCM_RIGHTS (as runc: the master's name, "/dev/ptmx", as the message's
//! data; runc sends its master file's name, and that file is /dev/ptmx opened).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use nix::sys::stat::Mode;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, setsid};

use crate::error::{InitFailure, InitResult, InitStep};

/// The data of the SCM_RIGHTS message, as runc sends it.
pub const MASTER_NAME: &str = "/dev/ptmx";

nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, Winsize);

fn fail(subject: &str) -> impl Fn(Errno) -> InitFailure + '_ {
    move |e| InitFailure::sys(InitStep::Console, subject, e)
}

/// In the init, after pivot_root: open /dev/ptmx, send the master over `socket`, make the slave the
/// controlling terminal and stdin/stdout/stderr, and set the window size (process.consoleSize;
/// ignored when a side is 0, as runc). Returns the slave's path (`/dev/pts/N`): runc bind-mounts
/// it on /dev/console.
pub fn setup_console_with(
    socket: OwnedFd,
    size: Option<&oci_spec::runtime::Box>,
) -> InitResult<PathBuf> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(fail(MASTER_NAME))?;
    grantpt(&master).map_err(fail(MASTER_NAME))?;
    unlockpt(&master).map_err(fail(MASTER_NAME))?;
    let slave_path = PathBuf::from(ptsname_r(&master).map_err(fail(MASTER_NAME))?);
    let slave_name = slave_path.to_string_lossy().into_owned();

    if let Some(size) = size.filter(|s| s.height() != 0 && s.width() != 0) {
        let ws = Winsize {
            ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one `winsize`, which `ws` is, from a valid pty master fd.
        unsafe { tiocswinsz(master.as_raw_fd(), &ws) }
            .map_err(|e| fail(MASTER_NAME)(e).detail("set process.consoleSize"))?;
    }

    let fds = [master.as_raw_fd()];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[IoSlice::new(MASTER_NAME.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| {
        InitFailure::sys(InitStep::Console, "console socket", e).detail("send pty master")
    })?;
    drop(master);
    drop(socket);

    // A new session, so the pty can become its controlling terminal; EPERM means the init already
    // leads one.
    match setsid() {
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => return Err(InitFailure::sys(InitStep::Console, "setsid", e)),
    }
    let slave = open(
        &slave_path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(&slave_name))?;
    // SAFETY: TIOCSCTTY takes an int (0: do not steal from another session) on a valid tty fd.
    unsafe { tiocsctty(slave.as_raw_fd(), 0) }
        .map_err(fail(&slave_name))
        .map_err(|f| f.detail("make it the controlling terminal"))?;
    for dup in [dup2_stdin, dup2_stdout, dup2_stderr] {
        dup(slave.as_fd()).map_err(fail(&slave_name))?;
    }
    Ok(slave_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::steps::testing::in_child;
    use nix::sys::socket::{
        recvmsg, socketpair, AddressFamily, ControlMessageOwned, SockFlag, SockType,
    };
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;

    /// The console socket's two ends: the caller's and the init's.
    fn stream_pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    /// The caller's side: receives the master and its message data.
    fn receive_master(sock: &OwnedFd) -> (String, OwnedFd) {
        let mut data = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else owns it.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let n = msg.bytes;
        (
            String::from_utf8_lossy(&data[..n]).into_owned(),
            fd.expect("an fd came with the message"),
        )
    }

    #[test]
    fn the_master_reaches_the_socket_and_the_slave_is_the_controlling_terminal() {
        let (ours, theirs) = stream_pair();
        // The caller's side runs in a thread while the forked child sets up its console.
        let caller = std::thread::spawn(move || {
            let (name, master) = receive_master(&ours);
            let mut master = std::fs::File::from(master);
            let mut seen = String::new();
            let mut buf = [0u8; 256];
            while !seen.contains("end") {
                let n = master.read(&mut buf).unwrap();
                assert!(n > 0, "eof before the child's report: {seen:?}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            // Lets the child exit once its output is read (a closed slave could lose it).
            master.write_all(b"bye\n").unwrap();
            // Kept open until the child is reaped: closing it would hang up (SIGHUP) the child.
            (name, seen, master)
        });
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(24u64)
            .width(100u64)
            .build()
            .unwrap();
        in_child(move || {
            let slave = setup_console_with(theirs, Some(&size)).map_err(|e| e.to_string())?;
            let ws = nix::sys::termios::tcgetattr(std::io::stdin()).map(|_| ());
            let mut winsize = Winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, Winsize);
            // SAFETY: TIOCGWINSZ writes one `winsize` into `winsize`, from the valid stdout fd.
            unsafe { tiocgwinsz(1, &mut winsize) }.map_err(|e| e.to_string())?;
            // /dev/tty opens only for a process with a controlling terminal.
            let ctty = std::fs::File::open("/dev/tty").is_ok();
            let sid = nix::unistd::getsid(None).map_err(|e| e.to_string())?;
            let leader = sid == nix::unistd::getpid();
            // Written to fd 1 itself: print! would go to the test harness's capture.
            let report = format!(
                "slave={} tty={} ctty={ctty} leader={leader} size={}x{} end\n",
                slave.display(),
                ws.is_ok(),
                winsize.ws_row,
                winsize.ws_col
            );
            std::io::stdout()
                .write_all(report.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if line.trim() != "bye" {
                return Err(format!("stdin gave {line:?}"));
            }
            Ok(())
        })
        .unwrap();
        let (name, seen, _master) = caller.join().unwrap();
        assert_eq!(name, "/dev/ptmx");
        assert!(
            seen.contains("tty=true ctty=true leader=true size=24x100 end"),
            "{seen:?}"
        );
        assert!(seen.starts_with("slave=/dev/pts/"), "{seen:?}");
    }

    #[test]
    fn a_closed_socket_is_a_console_failure() {
        let (ours, theirs) = stream_pair();
        drop(ours);
        in_child(move || {
            let err = setup_console_with(theirs, None).expect_err("nobody receives the master");
            let msg = err.to_string();
            if msg != "set up console \"console socket\": send pty master: broken pipe" {
                return Err(format!("unexpected message {msg:?}"));
            }
            Ok(())
        })
        .unwrap();
    }
}
