//! SCMP_ACT_NOTIFY end to end: a filtered child hands its listener to the "runtime" (this test),
//! which sends it with `send_listener` to an "agent" (a thread) that answers the notifications.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use nix::sys::wait::WaitStatus;

use super::tests::{in_child, profile, temp_dir};
use super::*;
use crate::error::Error;
use crate::{State, Status};

/// Receives one message with at most one fd.
fn recv_with_fd(fd: std::os::fd::BorrowedFd) -> (Vec<u8>, Option<OwnedFd>) {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg =
        recvmsg::<UnixAddr>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    let received = msg.cmsgs().unwrap().find_map(|c| match c {
        // SAFETY: SCM_RIGHTS installed this fd in our table; nothing else owns it.
        ControlMessageOwned::ScmRights(fds) => Some(unsafe { OwnedFd::from_raw_fd(fds[0]) }),
        _ => None,
    });
    let n = msg.bytes;
    buf.truncate(n);
    (buf, received)
}

/// Answers one notification: `None` lets the syscall run (SECCOMP_USER_NOTIF_FLAG_CONTINUE),
/// `Some(e)` fails it with `e`. Returns the syscall number it was about.
fn answer(listener: &OwnedFd, error: Option<i32>) -> i32 {
    // SAFETY: all-zero is a valid seccomp_notif, and the kernel wants it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl fills `notif`, which lives across the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_RECV: {}", Errno::last());
    let mut resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: 0,
        error: error.map_or(0, |e| -e),
        flags: if error.is_none() {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads `resp`, which lives across the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_SEND: {}", Errno::last());
    notif.data.nr
}

#[test]
fn notify_listener_reaches_the_agent_which_answers() {
    let dir = temp_dir("notify");
    let socket = dir.join("agent.sock");
    let agent = UnixListener::bind(&socket).unwrap();
    let filter = compile(&profile(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"meta",
            "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{{"names":["mkdirat"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        socket.display()
    )))
    .unwrap();
    assert!(filter.needs_listener());
    assert_ne!(filter.flags() & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, 0);
    assert_ne!(filter.flags() & libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH, 0);
    assert_ne!(
        filter.flags() & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        0
    );

    // The agent: takes the connection, reads the state and the listener, answers two calls.
    let agent = std::thread::spawn(move || {
        let (conn, _) = agent.accept().unwrap();
        let (json, listener) = recv_with_fd(conn.as_fd());
        let listener = listener.expect("the listener came with the state");
        let state: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let first = answer(&listener, None);
        let second = answer(&listener, Some(libc::ENOSPC));
        (state, first, second)
    });

    let (runtime_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let (a, b) = (
        CString::new(dir.join("a").into_os_string().into_encoded_bytes()).unwrap(),
        CString::new(dir.join("b").into_os_string().into_encoded_bytes()).unwrap(),
    );
    // SAFETY: fork in a test; the child only makes system calls (nix's sendmsg allocates, which
    // glibc makes safe after fork).
    let pid = match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Parent { child } => child,
        nix::unistd::ForkResult::Child => {
            let status = in_child(&filter, |listener| {
                let Some(listener) = listener else { return 1 };
                let raw = [listener.as_raw_fd()];
                let sent = sendmsg::<UnixAddr>(
                    child_end.as_raw_fd(),
                    &[std::io::IoSlice::new(b"fd")],
                    &[ControlMessage::ScmRights(&raw)],
                    MsgFlags::empty(),
                    None,
                );
                if sent.is_err() {
                    return 2;
                }
                drop(listener);
                // SAFETY: valid C strings.
                let first = unsafe { libc::mkdirat(libc::AT_FDCWD, a.as_ptr(), 0o755) };
                // SAFETY: as above.
                let second = unsafe { libc::mkdirat(libc::AT_FDCWD, b.as_ptr(), 0o755) };
                let second = (second, Errno::last_raw());
                i32::from(first != 0) << 2 | i32::from(second != (-1, libc::ENOSPC)) << 3
            });
            let code = match status {
                WaitStatus::Exited(_, c) => c,
                _ => 99,
            };
            // SAFETY: ends the intermediate child, whose child did the work.
            unsafe { libc::_exit(code) }
        }
    };
    drop(child_end);

    // The runtime: gets the listener from the child and passes it on.
    let (_, listener) = recv_with_fd(runtime_end.as_fd());
    let listener = listener.expect("the child sent its listener");
    let state = State {
        oci_version: "1.2.1".into(),
        id: "notify-test".into(),
        pid: pid.as_raw(),
        status: Status::Creating,
        bundle: dir.clone(),
        rootfs: dir.join("rootfs"),
        created: "2026-01-01T00:00:00.000000000Z".into(),
        owner: "root".into(),
        annotations: HashMap::from([("k".into(), "v".into())]),
    };
    send_listener(&socket, Some("meta"), &state, listener.as_fd()).unwrap();
    drop(listener);

    let (json, first, second) = agent.join().unwrap();
    let status = nix::sys::wait::waitpid(pid, None).unwrap();
    assert_eq!(status, WaitStatus::Exited(pid, 0));
    assert_eq!(
        (first, second),
        (libc::SYS_mkdirat as i32, libc::SYS_mkdirat as i32)
    );
    assert!(dir.join("a").is_dir() && !dir.join("b").exists());
    assert_eq!(
        json,
        serde_json::json!({
            "ociVersion": "1.2.1",
            "fds": ["seccompFd"],
            "pid": pid.as_raw(),
            "metadata": "meta",
            "state": {
                "ociVersion": "1.2.1",
                "id": "notify-test",
                "status": "creating",
                "pid": pid.as_raw(),
                "bundle": dir,
                "annotations": {"k": "v"}
            }
        })
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_exec_listener_names_the_process_and_the_running_container() {
    let state = State {
        oci_version: "1.2.1".into(),
        id: "c".into(),
        pid: 100,
        status: Status::Running,
        bundle: "/b".into(),
        rootfs: "/b/rootfs".into(),
        created: String::new(),
        owner: String::new(),
        annotations: HashMap::new(),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&notify::process_state(None, &state, 200)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "ociVersion": "1.2.1",
            "fds": ["seccompFd"],
            "pid": 200,
            "state": {"ociVersion": "1.2.1", "id": "c", "status": "running", "pid": 100, "bundle": "/b"}
        })
    );
}

#[test]
fn a_missing_agent_is_a_clear_error() {
    let dir = temp_dir("noagent");
    let state = State {
        oci_version: "1.2.1".into(),
        id: "x".into(),
        pid: 1,
        status: Status::Creating,
        bundle: dir.clone(),
        rootfs: dir.clone(),
        created: String::new(),
        owner: String::new(),
        annotations: HashMap::new(),
    };
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let e = send_listener(&dir.join("nobody.sock"), None, &state, devnull.as_fd()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("seccomp agent"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
