//! The one channel between the runtime and the container's init.
//!
//! A `SOCK_SEQPACKET` socketpair made before the clone: each [`Message`] is one datagram, so a read
//! never sees half a message, and the kernel reports the other end's death as end-of-file. Messages
//! are JSON (serde) so an init failure crosses as a typed [`InitFailure`], never as a string.
//!
//! The protocol, in order (`init` → runtime unless marked ←). Both sides follow it step by step:
//! `init` (and `exec`) on the child's side, `parent` on the runtime's, which refuses a message out
//! of this order or one the config does not call for.
//!
//! 0. ← `CgroupsApplied` — the runtime set the container's resources, but for the device rules
//!    (see 2), and put the child in the cgroups it was not born in nor joins itself; the child then
//!    joins the v1 hierarchies whose `tasks` files it was given (`cgroups::SelfJoin`) and closes
//!    them. Nothing else happens in the child before this.
//! 1. `IdMapRequest` — only when the init made a new user namespace: it has done so and waits.
//!    ← `IdMapsWritten` — the runtime wrote `/proc/<init>/uid_map` and `gid_map`.
//! 2. `CreateRuntime` — only when the config has hooks: the mounts and device nodes are made,
//!    pivot_root is next. ← `HooksDone { created }` — the runtime set the cgroup's device rules
//!    (after the mounts, as runc: a block device mount needs no rule; before the hooks, which may
//!    add rules of their own) and ran the prestart and createRuntime hooks; the init builds the
//!    state its own hooks (createContainer, startContainer) get from its spec and this creation
//!    time (the whole state could outgrow a datagram: annotations are unbounded).
//! 3. `SeccompListener` — only with SCMP_ACT_NOTIFY (and a process): the filter is loaded, its
//!    listener fd rides with the message (SCM_RIGHTS). ← `ListenerSent` — the runtime handed it to
//!    `listenerPath`.
//! 4. `Ready` — the init ran the whole init sequence up to the exec; the user's executable exists.
//!    ← `Proceed` — the runtime set the device rules if 2 did not, wrote state.json and the pid
//!    file; the init may outlive it now. The init clears its parent-death signal, then closes the
//!    channel: the runtime waits for that end-of-file before `create` returns. It then blocks on
//!    the exec fifo until `start`.
//!
//! `exec`'s process takes 0 and 3 (its own listener), then execs: its end of the channel is
//! close-on-exec, so the runtime's end-of-file is the exec.
//!
//! At any point the child may send `Failed` instead of the next message, and exits. If either side
//! dies the other reads end-of-file: the runtime reports [`crate::Error::InitLost`] (with how the
//! child ended), the init exits (and is killed anyway by its parent-death signal until `Proceed`).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::InitFailure;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    CgroupsApplied,
    IdMapRequest,
    IdMapsWritten,
    CreateRuntime,
    HooksDone { created: String },
    SeccompListener,
    ListenerSent,
    Ready,
    Proceed,
    Failed(InitFailure),
}

impl Message {
    /// The message's name, without what it carries (for errors).
    pub fn name(&self) -> &'static str {
        match self {
            Message::CgroupsApplied => "CgroupsApplied",
            Message::IdMapRequest => "IdMapRequest",
            Message::IdMapsWritten => "IdMapsWritten",
            Message::CreateRuntime => "CreateRuntime",
            Message::HooksDone { .. } => "HooksDone",
            Message::SeccompListener => "SeccompListener",
            Message::ListenerSent => "ListenerSent",
            Message::Ready => "Ready",
            Message::Proceed => "Proceed",
            Message::Failed(_) => "Failed",
        }
    }

    /// Serialising a plain enum of strings cannot fail; were it to, the peer gets nothing and the
    /// sender reports EINVAL rather than panicking in the init.
    fn encode(&self) -> nix::Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|_| Errno::EINVAL)
    }
}

/// Why a receive produced no message.
#[derive(Debug)]
pub enum RecvError {
    /// The other end closed (it exited or crashed).
    Closed,
    Sys(nix::Error),
    /// Not a message of this protocol: a bug, reported rather than trusted.
    Garbled(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Closed => f.write_str("channel closed"),
            RecvError::Sys(e) => write!(f, "{}", e.desc().to_lowercase()),
            RecvError::Garbled(s) => write!(f, "garbled message: {s}"),
        }
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// The runtime's end and the init's end.
pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> nix::Result<()> {
        let data = msg.encode()?;
        // MSG_NOSIGNAL: a dead peer is an EPIPE to report, not a SIGPIPE that kills the runtime.
        match send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
            // The init's Ready runs under a seccomp filter (no_new_privs false) whose profile may
            // refuse sendto: write(2) sends the same datagram. SIGPIPE is ignored in the runtime
            // and its forks (Rust's default) until the execve, so a dead peer is still an EPIPE.
            Err(Errno::EPERM | Errno::ENOSYS) => nix::unistd::write(&self.fd, &data).map(drop),
            r => r.map(drop),
        }
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Message, fd: BorrowedFd<'_>) -> nix::Result<()> {
        let data = msg.encode()?;
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&data)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map(drop)
    }

    pub fn recv(&self) -> Result<Message, RecvError> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    /// A message and the descriptor that came with it, if any.
    pub fn recv_with_fd(&self) -> Result<(Message, Option<OwnedFd>), RecvError> {
        let mut buf = [0u8; 8192];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut reset = false;
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                // The peer closed with a message of ours unread: the kernel says so once, and
                // what the peer sent before (its `Failed`) is still queued behind it.
                Err(Errno::ECONNRESET) if !reset => {
                    reset = true;
                    continue;
                }
                // Refused by the init's seccomp profile (see `send`): read(2) takes the same
                // datagram; no descriptor comes to the init after its filter is loaded.
                Err(Errno::EPERM | Errno::ENOSYS) => match nix::unistd::read(&self.fd, &mut buf) {
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(RecvError::Sys(e)),
                    Ok(n) => break (n, None),
                },
                Err(e) => return Err(RecvError::Sys(e)),
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs().map_err(RecvError::Sys)? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: the kernel just installed `raw` in this process for us.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Err(RecvError::Closed);
        }
        serde_json::from_slice(&buf[..n])
            .map(|m| (m, fd))
            .map_err(|_| RecvError::Garbled(String::from_utf8_lossy(&buf[..n]).into_owned()))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InitStep;

    #[test]
    fn messages_cross_whole_and_typed() {
        let (a, b) = pair().unwrap();
        let failure = InitFailure::new(InitStep::Cwd)
            .subject("/nope")
            .errno(nix::errno::Errno::ENOENT);
        a.send(&Message::Failed(failure.clone())).unwrap();
        a.send(&Message::Ready).unwrap();
        assert_eq!(b.recv().unwrap(), Message::Failed(failure));
        assert_eq!(b.recv().unwrap(), Message::Ready);
        drop(a);
        assert!(matches!(b.recv(), Err(RecvError::Closed)));
    }
}
