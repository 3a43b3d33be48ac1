//! The runtime's side of the channel (see `channel` for the order), for both children it forks:
//! the init of `create` ([`drive_init`], read beside `init`) and the process of `exec`
//! ([`drive_exec`], read beside `exec`). The driver holds the order and nothing else: what the
//! runtime does at each step (move the child into its cgroup, write its id maps, run the hooks,
//! hand on a seccomp listener) is the caller's, through [`InitSteps`] and [`ExecSteps`]. A message
//! out of order, or one the config does not call for, ends the exchange with
//! [`Error::InitLost`] naming what came and what was awaited.
//!
//! Also the set-up both callers share around the clone: the sockets the child's caller gave
//! ([`connect_sockets`]), the cgroup v2 directory to clone into ([`open_cgroup_v2`]), and the
//! child's first act ([`child_prologue`]).

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::channel::{Channel, Message, RecvError};
use crate::cgroups::CgroupPaths;
use crate::error::{Error, SysContext};
use crate::plan::namespaces::NamespacePlan;
use crate::plan::tty;
use crate::Result;

/// Which of the init's optional messages this config calls for (see `channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct InitCalls {
    /// The init makes a new user namespace: `IdMapRequest`.
    pub id_maps: bool,
    /// The config has hooks: `CreateRuntime`.
    pub hooks: bool,
    /// The init loads a seccomp filter with a notify listener: `SeccompListener`.
    pub listener: bool,
}

impl InitCalls {
    pub(crate) fn of(
        spec: &Spec,
        plan: &NamespacePlan,
        filter: Option<&crate::seccomp::Filter>,
    ) -> InitCalls {
        InitCalls {
            // What the clone does not make the init unshares: either way a new one.
            id_maps: plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER),
            hooks: spec.hooks().is_some(),
            // Without a process the init never takes on an identity, so loads no filter.
            listener: spec.process().is_some() && filter.is_some_and(|f| f.needs_listener()),
        }
    }
}

/// What `create` does at each step of the init's protocol.
pub(crate) trait InitSteps {
    /// Before the init runs a step: the resources set, the init in the cgroups it does not join
    /// itself (see `channel`, step 0).
    fn place(&mut self, pid: Pid) -> Result<()>;
    /// While the init sets itself up.
    fn placed(&mut self, pid: Pid) -> Result<()>;
    /// `IdMapRequest`: the init's new user namespace needs its uid_map and gid_map.
    fn write_id_maps(&mut self, pid: Pid) -> Result<()>;
    /// `CreateRuntime`: the mounts are made; returns the creation time the init's hooks report.
    fn create_runtime(&mut self) -> Result<String>;
    /// `SeccompListener`: the init's notify listener, for `listenerPath`.
    fn send_listener(&mut self, listener: OwnedFd) -> Result<()>;
    /// `Ready`: the init is set up; record the container as created.
    fn ready(&mut self) -> Result<()>;
}

/// What `exec` does at each step of its process's protocol.
pub(crate) trait ExecSteps {
    /// Before the process runs a step: it is in the container's cgroups it does not join itself.
    fn place(&mut self, pid: Pid) -> Result<()>;
    /// `SeccompListener`: the process's notify listener, for `listenerPath`.
    fn send_listener(&mut self, listener: OwnedFd) -> Result<()>;
}

/// `create`'s exchange with its init, in the order of `channel`. Returns once the init closed the
/// channel (it no longer dies with the runtime).
pub(crate) fn drive_init(
    channel: &Channel,
    pid: Pid,
    calls: InitCalls,
    steps: &mut dyn InitSteps,
) -> Result<()> {
    let talk = Talk::new(channel, pid, "wait for init");
    steps.place(pid)?;
    talk.send(&Message::CgroupsApplied)?;
    steps.placed(pid)?;
    if calls.id_maps {
        talk.expect(Message::IdMapRequest)?;
        steps.write_id_maps(pid)?;
        talk.send(&Message::IdMapsWritten)?;
    }
    if calls.hooks {
        talk.expect(Message::CreateRuntime)?;
        let created = steps.create_runtime()?;
        talk.send(&Message::HooksDone { created })?;
    }
    if calls.listener {
        talk.pass_listener(|fd| steps.send_listener(fd))?;
    }
    talk.expect(Message::Ready)?;
    steps.ready()?;
    talk.send(&Message::Proceed)?;
    // Returning earlier would let the runtime's exit kill (PR_SET_PDEATHSIG) a container just
    // reported as created.
    talk.expect_end()
}

/// `exec`'s exchange with its process. Returns once the process exec'd (its end of the channel
/// is close-on-exec) or died without a word (which its waiter sees).
pub(crate) fn drive_exec(
    channel: &Channel,
    pid: Pid,
    listener: bool,
    steps: &mut dyn ExecSteps,
) -> Result<()> {
    let talk = Talk::new(channel, pid, "exec");
    steps.place(pid)?;
    talk.send(&Message::CgroupsApplied)?;
    if listener {
        talk.pass_listener(|fd| steps.send_listener(fd))?;
    }
    talk.expect_end()
}

/// One side of an exchange: the channel, the child, and the step errors are reported under.
struct Talk<'a> {
    channel: &'a Channel,
    pid: Pid,
    step: &'static str,
}

impl<'a> Talk<'a> {
    fn new(channel: &'a Channel, pid: Pid, step: &'static str) -> Talk<'a> {
        Talk { channel, pid, step }
    }

    fn lost(&self, detail: String) -> Error {
        Error::InitLost {
            step: self.step,
            detail,
        }
    }

    /// A child gone before it read our message may have said why first: that is the error.
    fn send(&self, msg: &Message) -> Result<()> {
        let failure = match self.channel.send(msg) {
            Ok(()) => return Ok(()),
            // Only once the child's end is closed does the read below not block.
            Err(e @ (Errno::EPIPE | Errno::ECONNRESET)) => match self.channel.recv() {
                Ok(Message::Failed(failure)) => return Err(Error::Init(failure)),
                _ => e,
            },
            Err(e) => e,
        };
        Err(self.lost(format!(
            "send {}: {}",
            msg.name(),
            failure.desc().to_lowercase()
        )))
    }

    fn recv(&self, awaited: &str) -> Result<(Message, Option<OwnedFd>)> {
        match self.channel.recv_with_fd() {
            Ok((Message::Failed(failure), _)) => Err(Error::Init(failure)),
            Ok(got) => Ok(got),
            Err(RecvError::Closed) => Err(self.lost(format!(
                "{} while waiting for {awaited}",
                how_it_ended(self.pid)
            ))),
            Err(e) => Err(self.lost(format!("{e} while waiting for {awaited}"))),
        }
    }

    fn unexpected(&self, got: &Message, awaited: &str) -> Error {
        self.lost(format!(
            "unexpected message {} while waiting for {awaited}",
            got.name()
        ))
    }

    fn expect(&self, awaited: Message) -> Result<Option<OwnedFd>> {
        match self.recv(awaited.name())? {
            (got, fd) if got == awaited => Ok(fd),
            (got, _) => Err(self.unexpected(&got, awaited.name())),
        }
    }

    /// `SeccompListener` with its descriptor, handed to `pass`, then `ListenerSent`.
    fn pass_listener(&self, pass: impl FnOnce(OwnedFd) -> Result<()>) -> Result<()> {
        let listener = self
            .expect(Message::SeccompListener)?
            .ok_or_else(|| self.lost("SeccompListener came without its descriptor".into()))?;
        pass(listener)?;
        self.send(&Message::ListenerSent)
    }

    /// End-of-file: the child closed its end (exec'd, or detached).
    fn expect_end(&self) -> Result<()> {
        const AWAITED: &str = "the end of the channel";
        match self.channel.recv() {
            Err(RecvError::Closed) => Ok(()),
            Ok(Message::Failed(failure)) => Err(Error::Init(failure)),
            Ok(got) => Err(self.unexpected(&got, AWAITED)),
            Err(e) => Err(self.lost(format!("{e} while waiting for {AWAITED}"))),
        }
    }
}

/// How the child that closed the channel ended, without reaping it: the caller still kills and
/// reaps it, and a reaped pid could by then be another process's.
fn how_it_ended(pid: Pid) -> String {
    match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("channel closed ({})", e.desc().to_lowercase()),
    }
}

/// The console socket (given connected, or connected here from its path) and the pidfd socket.
pub(crate) fn connect_sockets(
    console: Option<OwnedFd>,
    console_path: Option<&Path>,
    pidfd_path: Option<&Path>,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let console = match console {
        Some(socket) => Some(socket),
        None => console_path.map(tty::connect_console_socket).transpose()?,
    };
    let pidfd = pidfd_path
        .map(|p| tty::connect_unix(p, "connect to pidfd socket"))
        .transpose()?;
    Ok((console, pidfd))
}

/// The container's cgroup v2 directory (on a hybrid host, its directory in the unified
/// hierarchy), opened for clone3(CLONE_INTO_CGROUP); `None` on a v1 host without one.
pub(crate) fn open_cgroup_v2(paths: &CgroupPaths) -> Result<Option<OwnedFd>> {
    let Some(dir) = paths.unified.as_ref() else {
        return Ok(None);
    };
    let fd = open(
        &dir.path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys_path("open cgroup", &dir.path)?;
    Ok(Some(fd))
}

/// The fresh child's first act: close its copies of what only the runtime may hold (the state
/// lock, which would stay held as long as the child lives; the runtime's end of the channel,
/// which must read end-of-file when the runtime dies; the pidfd socket; the cgroup directory, a
/// way into the host's cgroupfs), then make `stdio` its fds 0, 1 and 2 (dup2 clears their
/// close-on-exec flag; the originals, numbered 3 and up, close at the exec). False if that
/// failed: the child then exits, and the runtime reports the closed channel.
pub(crate) fn child_prologue(runtime_only: &[Option<RawFd>], stdio: &[Option<RawFd>; 3]) -> bool {
    for &fd in runtime_only.iter().flatten() {
        // SAFETY: each fd is this child's copy of one owned by a value in the runtime's frames;
        // the child leaves through `_exit`, so those values are never dropped here (no double close).
        unsafe { libc::close(fd) };
    }
    for (target, fd) in stdio.iter().enumerate() {
        if let Some(fd) = *fd {
            // SAFETY: dup2 on descriptor numbers this child holds; no memory is touched.
            if unsafe { libc::dup2(fd, target as RawFd) } < 0 {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
#[path = "parent_tests.rs"]
mod tests;
