//! The standard streams of a container's init and of an exec'd process, as an embedding program
//! asks for them: the caller's own, /dev/null, pipes whose other ends it gets back, or a pty made
//! inside the container (as `--console-socket` makes it) whose master it gets back.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::create::ChildIo;
use crate::error::{Error, SysContext};
use crate::Result;

/// What one standard stream of a container's process is connected to.
///
/// ```no_run
/// use hull::{Container, Stdio};
/// # fn spec() -> hull::oci_spec::runtime::Spec { unimplemented!() }
/// let mut c = Container::builder("demo")
///     .spec(spec())
///     .stdin(Stdio::Null)
///     .stdout(Stdio::Piped)
///     .create()?;
/// let stdout = c.take_io().stdout; // the read end, an OwnedFd
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Stdio {
    /// The calling program's own stream (the default).
    #[default]
    Inherit,
    /// /dev/null.
    Null,
    /// A pipe; the calling program's end comes back in [`ProcessIo`].
    Piped,
    /// A pseudo-terminal made inside the container, as `process.terminal` with a console socket
    /// makes it: it becomes stdin, stdout and stderr (so all three must say `Pty`) and the
    /// controlling terminal, and its master comes back in [`ProcessIo::pty_master`]. Sets
    /// `process.terminal` in the spec given to the builder; a bundle's config.json must set it.
    Pty,
}

/// The calling program's ends of the streams it asked for as [`Stdio::Piped`] or [`Stdio::Pty`]
/// (close-on-exec). Reading a piped stdout to end-of-file waits for every process in the
/// container that holds the stream.
///
/// ```no_run
/// # fn c() -> hull::Container { unimplemented!() }
/// use std::io::Read;
/// let mut container = c();
/// if let Some(out) = container.take_io().stdout {
///     let mut text = String::new();
///     std::fs::File::from(out).read_to_string(&mut text).unwrap();
/// }
/// ```
#[derive(Debug, Default)]
pub struct ProcessIo {
    /// The write end of the process's stdin.
    pub stdin: Option<OwnedFd>,
    /// The read end of its stdout.
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr.
    pub stderr: Option<OwnedFd>,
    /// The pty's master ([`Stdio::Pty`]).
    pub pty_master: Option<OwnedFd>,
}

/// Streams resolved into descriptors: the child's, the caller's ends, and whether a pty is wanted.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub child: [Option<OwnedFd>; 3],
    pub parent: ProcessIo,
    pub pty: bool,
}

/// Makes the pipes and opens /dev/null for `stdio` (stdin, stdout, stderr). With `forward`, an
/// inherited stream is passed as a copy of the caller's own descriptor too (for a helper process
/// whose own stdin is its request socket).
pub(crate) fn prepare(stdio: [Stdio; 3], forward: bool) -> Result<Prepared> {
    let ptys = stdio.iter().filter(|s| **s == Stdio::Pty).count();
    if ptys != 0 && ptys != 3 {
        return Err(Error::InvalidConfig {
            field: "stdio".into(),
            problem: "a pty is the process's stdin, stdout and stderr at once: ask for \
                      Stdio::Pty on all three or on none"
                .into(),
        });
    }
    let mut out = Prepared {
        child: [None, None, None],
        parent: ProcessIo::default(),
        pty: ptys == 3,
    };
    for (i, s) in stdio.into_iter().enumerate() {
        out.child[i] = match s {
            Stdio::Inherit if forward => Some(above_stdio(
                // SAFETY: fd 0, 1 or 2 is only borrowed for the length of the dup.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(i as RawFd) },
            )?),
            Stdio::Inherit | Stdio::Pty => None,
            Stdio::Null => {
                let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                    .sys_path("open", "/dev/null")?;
                Some(above_stdio(null.as_fd())?)
            }
            Stdio::Piped => {
                let (read, write) =
                    nix::unistd::pipe2(OFlag::O_CLOEXEC).sys("create stdio pipe")?;
                let (child, parent) = if i == 0 { (read, write) } else { (write, read) };
                match i {
                    0 => out.parent.stdin = Some(parent),
                    1 => out.parent.stdout = Some(parent),
                    _ => out.parent.stderr = Some(parent),
                }
                Some(above_stdio(child.as_fd())?)
            }
        };
    }
    Ok(out)
}

/// A close-on-exec copy numbered 3 or up, so dup2 onto 0, 1 and 2 in the child never overwrites
/// another of the three (a caller that closed its own stdio gets low numbers from pipe2).
pub(crate) fn above_stdio(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    let n = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).sys("duplicate stdio descriptor")?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The child's stdio and, for a pty, a socket pair: the child's end goes to the init as its
/// console socket, ours receives the master (see [`receive_master`]).
pub(crate) fn child_io(
    child: [Option<OwnedFd>; 3],
    pty: bool,
) -> Result<(ChildIo, Option<OwnedFd>)> {
    let (ours, console) = if pty {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .sys("create pty socket pair")?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    Ok((
        ChildIo {
            stdio: child,
            console,
        },
        ours,
    ))
}

/// The pty master the init (or exec'd process) sent before it reported ready: already queued on
/// `socket` once create or exec returned.
pub(crate) fn receive_master(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.sys("receive pty master")?,
        }
    };
    for cmsg in msg.cmsgs().sys("receive pty master")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&raw) = fds.first() {
                // SAFETY: the kernel just installed `raw` in this process for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    Err(Error::InitLost {
        step: "receive pty master",
        detail: "the process sent no descriptor".into(),
    })
}
