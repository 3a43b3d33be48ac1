//! `create` and `exec` for a multi-threaded caller, through a fresh single-threaded helper.
//!
//! hull clones the init (and an exec'd process) from the calling process with the raw clone
//! system call, and the child runs hull's Rust (allocations, locks, serde) until it execs the
//! container's program. In a process with other threads that child is a copy of one thread of a
//! process whose other threads may hold the allocator's or any other lock at that instant: held
//! forever in the child, which hangs or corrupts its heap. Nothing hull could do in the child
//! would make that safe short of never allocating, which the init sequence cannot promise.
//!
//! So a caller with more than one thread (a tokio program, say) does not clone anything itself:
//! it starts a helper with `std::process::Command` (whose child runs only async-signal-safe code
//! between its fork and its execve: a dup2 of the socket onto stdin, the exec) running the
//! program's own executable, `/proc/self/exe`, which is the sealed copy `exe::ensure_sealed` made
//! (so the helper is sealed too, and no container-side process ever runs an unsealed file). The
//! program's `main` calls `hull::exe::ensure_sealed()` first thing, which recognises the helper by
//! `_HULL_HELPER` and never returns into the program's own code: it reads the request (serde,
//! over a SOCK_SEQPACKET socket pair on its stdin, the init's stdio descriptors with it as
//! SCM_RIGHTS), runs the same single-threaded create or exec as the CLI does, cloning with
//! CLONE_PARENT so that the *caller* is the init's parent (its waitpid and exit status work as
//! in-process), answers with the pid or the typed error (see [`super::wire`]) and the pty master,
//! and exits. The container is made and owned exactly as in-process: same state directory, same
//! locks, same cleanup on failure.
//!
//! This is runc's answer too (libcontainer re-executes `/proc/self/exe init` so that the Go
//! runtime's threads never fork), minus its C constructor: hull's helper is an ordinary start of
//! the program that turns into the helper at `ensure_sealed`. A single-threaded caller (the CLI)
//! keeps the in-process path and pays nothing. Costs: one fork+exec of the program per create or
//! exec (its start-up up to `ensure_sealed`), and preserve_fds / listen_fds are refused through
//! it (the caller's descriptor numbers are not reproduced in the helper).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{
    recv, recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

use super::create::Config;
use super::stdio::{Prepared, ProcessIo};
use super::{builder, Container, CreateOptions, ExecOptions};
use crate::error::{Error, SysContext};
use crate::process::spawn;
use crate::Result;

/// Set in the helper's environment; read and removed by `exe::ensure_sealed`.
pub(crate) const HELPER_ENV: &str = "_HULL_HELPER";

/// `exe::ensure_sealed` ran in this process: its `main` calls it, so a helper started from this
/// executable becomes a helper instead of running the program.
static MAIN_CALLS_HULL: AtomicBool = AtomicBool::new(false);

/// Called by `exe::ensure_sealed` on entry.
pub(crate) fn main_calls_hull() {
    MAIN_CALLS_HULL.store(true, Ordering::Relaxed);
}

/// Whether `create` / `exec` must go through a helper: this process has other threads.
pub(crate) fn needed() -> Result<bool> {
    if spawn::clone_parent() || threads() <= 1 {
        return Ok(false);
    }
    if !MAIN_CALLS_HULL.load(Ordering::Relaxed) {
        return Err(Error::Unsupported {
            feature: "create or exec from a multi-threaded program whose main does not call \
                      hull::exe::ensure_sealed() first (the helper process that runs them for \
                      it is a new start of the program, which that call turns into the helper)"
                .into(),
        });
    }
    Ok(true)
}

/// The number of threads of this process; as many as it takes to use the helper when unknown.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(usize::MAX)
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Create {
        id: String,
        opts: CreateOptions,
        spec: Option<Box<Spec>>,
        base: Option<PathBuf>,
        /// Which of stdin, stdout, stderr come as descriptors (in that order).
        stdio: [bool; 3],
        pty: bool,
    },
    Exec {
        root: PathBuf,
        id: String,
        process: Box<Process>,
        opts: ExecOptions,
        stdio: [bool; 3],
        pty: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum Response {
    /// The init's (or exec'd process's) pid; the pty master rides along when one was asked for.
    Done {
        pid: i32,
    },
    Failed {
        error: Error,
        spawned: Vec<i32>,
    },
}

fn refuse_fd_passing(preserve_fds: u32, listen_fds: u32) -> Result<()> {
    if preserve_fds > 0 || listen_fds > 0 {
        return Err(Error::Unsupported {
            feature: "preserve_fds and listen_fds from a multi-threaded program".into(),
        });
    }
    Ok(())
}

/// `create` through a helper.
pub(crate) fn create(
    id: &str,
    opts: &CreateOptions,
    config: Config,
    prepared: Prepared,
) -> Result<Container> {
    refuse_fd_passing(opts.preserve_fds, opts.listen_fds)?;
    let (spec, base) = match config {
        Config::Bundle => (None, None),
        Config::Spec { spec, base } => (Some(spec), base),
    };
    let request = Request::Create {
        id: id.to_string(),
        opts: opts.clone(),
        spec,
        base,
        stdio: prepared.child.each_ref().map(Option::is_some),
        pty: prepared.pty,
    };
    let (pid, master) = ask(&request, &prepared.child)?;
    let mut c = Container::load(&opts.root, id)?;
    c.child = Some(Pid::from_raw(pid));
    c.io = prepared.parent;
    c.io.pty_master = master;
    Ok(c)
}

/// `exec` through a helper.
pub(crate) fn exec(
    c: &Container,
    process: &Process,
    opts: &ExecOptions,
    prepared: Prepared,
) -> Result<(Pid, ProcessIo)> {
    refuse_fd_passing(opts.preserve_fds, 0)?;
    let root = c.dir.path().parent().map(PathBuf::from).unwrap_or_default();
    let request = Request::Exec {
        root,
        id: c.id().to_string(),
        process: Box::new(process.clone()),
        opts: opts.clone(),
        stdio: prepared.child.each_ref().map(Option::is_some),
        pty: prepared.pty,
    };
    let (pid, master) = ask(&request, &prepared.child)?;
    let mut io = prepared.parent;
    io.pty_master = master;
    Ok((Pid::from_raw(pid), io))
}

/// Starts a helper, hands it `request` and `fds`, and returns its answer.
fn ask(request: &Request, fds: &[Option<OwnedFd>; 3]) -> Result<(i32, Option<OwnedFd>)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .sys("create helper socket pair")?;
    let exe = "/proc/self/exe";
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0("hull-helper")
        .env(HELPER_ENV, "1")
        .stdin(std::process::Stdio::from(theirs));
    let spawned = cmd.spawn();
    // The command holds our copy of the helper's end: without it, a helper that dies unheard is
    // an end-of-file here.
    drop(cmd);
    let mut helper = spawned.map_err(|source| Error::Io {
        step: "start hull helper",
        path: exe.into(),
        source,
    })?;
    let fds: Vec<BorrowedFd<'_>> = fds.iter().flatten().map(|fd| fd.as_fd()).collect();
    let answer = send(&ours, request, &fds).and_then(|()| receive::<Response>(&ours));
    let waited = helper.wait();
    let (response, master) = match answer {
        Ok(answer) => answer,
        Err(e) => {
            let how = match waited {
                Ok(status) => format!("the helper ended ({status}) without an answer: {e}"),
                Err(_) => e.to_string(),
            };
            return Err(Error::InitLost {
                step: "ask hull helper",
                detail: how,
            });
        }
    };
    match response {
        Response::Done { pid } => Ok((pid, master.into_iter().next())),
        Response::Failed { error, spawned } => {
            // Killed by the helper already; ours to collect, as their parent.
            for pid in spawned {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            }
            Err(error)
        }
    }
}

/// In a helper (from `exe::ensure_sealed`): serves the one request on stdin, then exits.
pub(crate) fn serve_and_exit() -> ! {
    std::env::remove_var(HELPER_ENV);
    spawn::clone_for_parent();
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("hull helper: {e}");
            1
        }
    };
    std::process::exit(code)
}

/// The marker variable alone proves nothing: whoever controls a privileged hull program's
/// environment and stdin (a setuid or file-capability wrapper, sudo keeping the environment, a
/// service passing a client's) could otherwise have it create or exec whatever a request asks,
/// past the program's own checks. A real request comes from the program that started this
/// helper: a SEQPACKET socketpair it made, so the peer is our parent, with our effective uid.
fn check_requester(socket: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    let refuse = |why: String| Error::Unsupported {
        feature: format!(
            "a hull helper request {why} (the helper serves only the program that started it)"
        ),
    };
    let kind = getsockopt(socket, sockopt::SockType).sys("read the helper socket's type")?;
    if kind != SockType::SeqPacket {
        return Err(refuse("on a socket that is not SOCK_SEQPACKET".into()));
    }
    let peer = getsockopt(socket, sockopt::PeerCredentials)
        .sys("read the helper socket's peer credentials")?;
    let parent = nix::unistd::getppid().as_raw();
    if peer.pid() != parent {
        return Err(refuse(format!(
            "from pid {}, not from the parent {parent}",
            peer.pid()
        )));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if peer.uid() != euid {
        return Err(refuse(format!("from uid {}, not {euid}", peer.uid())));
    }
    Ok(())
}

fn serve() -> Result<()> {
    // SAFETY: fd 0 is the request socket the caller set up as our stdin; borrowed for the dup.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let socket = super::stdio::above_stdio(stdin)?;
    check_requester(&socket)?;
    // The container's processes get the stdin the caller chose (below), never the socket.
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .sys_path("open", "/dev/null")?;
    // SAFETY: dup2 onto fd 0, which only the closed-over socket copy used.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(nix::errno::Errno::last()).sys("replace helper stdin");
    }
    let (request, fds) = receive::<Request>(&socket)?;
    let mut fds = fds.into_iter();
    let mut take = |wanted: [bool; 3]| wanted.map(|w| if w { fds.next() } else { None });
    let (outcome, created) = match request {
        Request::Create {
            id,
            opts,
            spec,
            base,
            stdio,
            pty,
        } => {
            let config = match spec {
                Some(spec) => Config::Spec { spec, base },
                None => Config::Bundle,
            };
            let prepared = Prepared {
                child: take(stdio),
                parent: ProcessIo::default(),
                pty,
            };
            match builder::local_create(&id, &opts, config, prepared) {
                Ok(mut c) => (Ok((c.pid(), c.take_io().pty_master)), Some(c)),
                Err(e) => (Err(e), None),
            }
        }
        Request::Exec {
            root,
            id,
            process,
            opts,
            stdio,
            pty,
        } => {
            let prepared = Prepared {
                child: take(stdio),
                parent: ProcessIo::default(),
                pty,
            };
            let outcome = Container::load(&root, &id)
                .and_then(|c| builder::local_exec(&c, &process, &opts, prepared))
                .map(|(pid, io)| (pid.as_raw(), io.pty_master));
            (outcome, None)
        }
    };
    let sent = match outcome {
        Ok((pid, master)) => {
            let fds: Vec<BorrowedFd<'_>> = master.iter().map(|m| m.as_fd()).collect();
            send(&socket, &Response::Done { pid }, &fds)
        }
        Err(e) => {
            let spawned = spawn::take_spawned();
            return send(&socket, &Response::Failed { error: e, spawned }, &[]);
        }
    };
    if let (Err(e), Some(c)) = (&sent, created) {
        // Nobody will ever know of this container: undo it (the caller, its init's parent,
        // is gone, so its init is reaped by the subreaper).
        log::warn!("hull helper: the caller went away ({e}): deleting the container");
        let _ = c.delete(true);
    }
    sent
}

/// One datagram: `msg` as JSON, `fds` attached.
fn send<T: Serialize>(socket: &OwnedFd, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<()> {
    let data = serde_json::to_vec(msg).map_err(|e| Error::InitLost {
        step: "encode helper message",
        detail: e.to_string(),
    })?;
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[std::io::IoSlice::new(&data)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .sys("send to hull helper")?;
    Ok(())
}

/// One datagram, whatever its size, and the descriptors that came with it.
fn receive<T: serde::de::DeserializeOwned>(socket: &OwnedFd) -> Result<(T, Vec<OwnedFd>)> {
    let size = loop {
        match recv(
            socket.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.sys("receive from hull helper")?,
        }
    };
    if size == 0 {
        return Err(Error::InitLost {
            step: "receive from hull helper",
            detail: "the other side closed the socket".into(),
        });
    }
    let mut buf = vec![0u8; size];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut fds = Vec::new();
    let n = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).sys("receive from hull helper"),
            Ok(msg) => {
                for cmsg in msg.cmsgs().sys("receive from hull helper")? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: the kernel just installed these descriptors in this process.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break msg.bytes;
            }
        }
    };
    let msg = serde_json::from_slice(&buf[..n]).map_err(|e| Error::InitLost {
        step: "decode helper message",
        detail: e.to_string(),
    })?;
    Ok((msg, fds))
}
