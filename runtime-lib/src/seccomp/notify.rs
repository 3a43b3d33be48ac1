//! SCMP_ACT_NOTIFY: hands the filter's listener to the seccomp agent at `listenerPath`.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{ContainerProcessState, ContainerState, State, SECCOMP_FD_NAME};

use crate::error::{Context, Error};
use crate::{Result, Status};

/// Connects to the agent's `SOCK_STREAM` socket at `listener_path`, sends the container process
/// state (config-linux.md, "The Container Process State") as JSON with `fd` in `SCM_RIGHTS` on the
/// first `sendmsg`, and closes the connection: one connection per listener, as the spec wants.
///
/// For the init's listener: `state` as it is during `create` (`creating`, as runc sends it), whose
/// pid is the init's.
pub fn send_listener(
    listener_path: &Path,
    metadata: Option<&str>,
    state: &crate::State,
    fd: BorrowedFd,
) -> Result<()> {
    send_process_listener(listener_path, metadata, state, state.pid, fd)
}

/// [`send_listener`] for the listener of another process of the container (an `exec`'d one):
/// runc sends that process's pid as `pid` and the container's state (`running`, the init's pid)
/// as `state`.
pub fn send_process_listener(
    listener_path: &Path,
    metadata: Option<&str>,
    state: &crate::State,
    pid: i32,
    fd: BorrowedFd,
) -> Result<()> {
    let json = process_state(metadata, state, pid);
    let mut stream = UnixStream::connect(listener_path).io(
        "connect to the seccomp agent at listenerPath",
        listener_path,
    )?;
    let raw = [fd.as_raw_fd()];
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(&json)],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|source| Error::Sys {
        step: "send the seccomp listener to listenerPath",
        path: Some(listener_path.into()),
        source,
    })?;
    // A stream may take the JSON in several writes; the fd went with the first, as required.
    stream
        .write_all(&json[sent..])
        .io("send the seccomp listener to listenerPath", listener_path)
}

/// runc's `specs.ContainerProcessState`: `ociVersion`, `fds`, `pid`, `metadata`, `state`.
pub(super) fn process_state(metadata: Option<&str>, state: &crate::State, pid: i32) -> Vec<u8> {
    let mut spec_state = State::default();
    spec_state
        .set_version(state.oci_version.clone())
        .set_id(state.id.clone())
        .set_status(match state.status {
            Status::Creating => ContainerState::Creating,
            Status::Created => ContainerState::Created,
            // The spec's process state has no "paused"; a paused container is still running.
            Status::Running | Status::Paused => ContainerState::Running,
            Status::Stopped => ContainerState::Stopped,
        })
        .set_pid((state.pid > 0).then_some(state.pid))
        .set_bundle(state.bundle.clone())
        .set_annotations((!state.annotations.is_empty()).then(|| state.annotations.clone()));
    let mut process = ContainerProcessState::default();
    process
        .set_version(state.oci_version.clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_string()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_string))
        .set_state(spec_state);
    serde_json::to_vec(&process).expect("plain data serialises")
}
