//! A process added to a running container (`exec`): a fork of the runtime that joins the
//! container's namespaces, takes on the process's user, limits and capabilities, and execs.
//!
//! The channel carries one message at most: `Failed` if a step fails. On success the exec closes
//! the child's end (it is O_CLOEXEC), so the runtime reads end-of-file exactly when the user's
//! program has replaced the runtime's code.

use std::os::fd::{AsFd, OwnedFd, RawFd};

use oci_spec::runtime::Process;

use super::channel::{Channel, Message};
use super::fds;
use super::init::{
    await_cgroups, io_failure, join_session_keyring, load_seccomp_late, seccomp_at_exec,
    take_identity, Executable,
};
use super::steps::{lsm, process_attrs, rlimits, tty};
use crate::cgroups::SelfJoin;
use crate::error::{InitResult, InitStep, SysContext};
use crate::plan::namespaces::NamespacePlan;
use crate::plan::process_attrs::AffinityStage;
use crate::syscall::Syscall;

pub struct Exec<'a> {
    pub process: &'a Process,
    pub plan: &'a NamespacePlan,
    pub channel: Channel,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: u32,
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// The container's id, whose session keyring the process joins as the init did; `None` when
    /// the container was created with `--no-new-keyring`.
    pub session_keyring: Option<&'a str>,
    /// The container's v1 cgroups, which the process joins itself (see `init::await_cgroups`).
    pub cgroups: std::cell::Cell<SelfJoin>,
}

/// Runs in the forked child; returns only on failure (the child's exit code).
pub fn run(exec: Exec<'_>, sys: &dyn Syscall) -> i32 {
    let failure = match prepare(&exec, sys) {
        Ok(executable) => executable.exec(seccomp_at_exec(exec.process, exec.seccomp), sys),
        Err(failure) => failure,
    };
    let _ = exec.channel.send(&Message::Failed(failure));
    1
}

/// The init sequence's process half, in the same order (the rootfs is already there).
pub(super) fn prepare(exec: &Exec<'_>, sys: &dyn Syscall) -> InitResult<Executable> {
    let process = exec.process;
    // The runtime's binary must not be reachable by the container's processes before the exec.
    sys.set_dumpable(false)
        .init(InitStep::Sync, "prctl(PR_SET_DUMPABLE)")?;
    // As the init: before any path is followed, and from the host's /proc (not yet joined the
    // container's mount namespace, whose /proc the container controls).
    let cgroups = exec.cgroups.take();
    let mut keep = vec![
        Some(exec.channel.as_fd()),
        exec.console_socket.as_ref().map(|s| s.as_fd()),
    ];
    keep.extend(cgroups.fds().map(Some));
    sys.sanitize_fds(3 + exec.preserve_fds as RawFd, &keep)?;
    drop(keep);
    // Before the runtime moves us into the container's cgroup (which may reset the affinity to
    // its cpuset), then after: config.md's initial and final.
    let affinity = process.exec_cpu_affinity().as_ref();
    process_attrs::apply_exec_cpu_affinity(affinity, AffinityStage::Initial, sys)?;
    await_cgroups(&exec.channel, cgroups, sys)?;
    process_attrs::apply_exec_cpu_affinity(affinity, AffinityStage::Final, sys)?;
    exec.plan.join(sys)?;
    // Else the process would hold its caller's (the shim's, conmon's) session keyring.
    if let Some(id) = exec.session_keyring {
        lsm::set_key_label(process, sys)?;
        join_session_keyring(id, sys)?;
    }
    if let Some(socket) = &exec.console_socket {
        sys.setsid().init(InitStep::Console, "setsid")?;
        let socket = socket
            .try_clone()
            .map_err(|e| io_failure(InitStep::Console, "socket", e))?;
        let _slave = tty::setup_console_with(socket, process.console_size().as_ref())?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default(), sys)?;
    process_attrs::apply_scheduler(process.scheduler().as_ref(), sys)?;
    process_attrs::apply_io_priority(process.io_priority().as_ref(), sys)?;
    sys.mark_cloexec_from(3 + exec.preserve_fds as RawFd)?;
    take_identity(process, exec.seccomp, &exec.channel, sys)?;
    sys.chdir(process.cwd())
        .init(InitStep::Cwd, process.cwd().display())?;
    fds::check_cwd_inside_root(process.cwd())?;
    let executable = Executable::resolve(process)?;
    load_seccomp_late(process, exec.seccomp, &exec.channel, sys)?;
    Ok(executable)
}
