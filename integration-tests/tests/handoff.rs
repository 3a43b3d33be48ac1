//! What the runtime hands over between the caller and the container besides stdio, as runc does:
//! a pidfd on `--pidfd-socket`, systemd's socket-activation fds ($LISTEN_FDS), the sd_notify
//! READY message ($NOTIFY_SOCKET), and a session keyring of the container's own.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use integration_tests::{Bundle, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::json;

/// Accepts one connection on `listener` and receives one message with one fd: (data, fd).
fn receive_fd(listener: &UnixListener) -> (String, OwnedFd) {
    let (conn, _) = listener.accept().expect("accept on the pidfd socket");
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg on the pidfd socket");
    let mut fd = None;
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            assert_eq!(fds.len(), 1, "one fd per message");
            // SAFETY: the kernel just installed this fd in our table; nothing else owns it.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    let data = String::from_utf8_lossy(&buf[..n]).into_owned();
    (data, fd.expect("an fd came with the message"))
}

/// The pid a pidfd refers to, from its fdinfo (as seen from our pid namespace).
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .expect("read fdinfo");
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("not a pidfd: {info}"));
    line.trim().parse().expect("pid in fdinfo")
}

fn pidfd_kill(fd: &OwnedFd) {
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, a NULL siginfo and no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(
        ret,
        0,
        "pidfd_send_signal: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn pidfd_socket_gets_the_init_and_exec_processes() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    let sock = rt.scratch().join("pidfd.sock");
    let listener = UnixListener::bind(&sock).expect("bind the pidfd socket");

    rt.create_cmd(&b, &id)
        .arg("--pidfd-socket")
        .arg(&sock)
        .output()
        .ok();
    let (kind, init_fd) = receive_fd(&listener);
    assert_eq!(kind, "standard");
    let init_pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(pidfd_pid(&init_fd), init_pid);
    rt.start(&id).ok();

    let pid_file = rt.scratch().join("exec.pid");
    rt.cmd(["exec", "--detach", "--pidfd-socket"])
        .arg(&sock)
        .arg("--pid-file")
        .arg(&pid_file)
        .args([id.as_str(), "sleep", "999"])
        .output()
        .ok();
    let (kind, exec_fd) = receive_fd(&listener);
    assert_eq!(kind, "setns");
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pidfd_pid(&exec_fd), exec_pid);

    // The handles work: killing the init through its pidfd stops the container.
    pidfd_kill(&init_fd);
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn pidfd_socket_that_does_not_exist_fails_create_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["true"]);
    let id = rt.new_id();
    let out = rt
        .create_cmd(&b, &id)
        .arg("--pidfd-socket")
        .arg(rt.scratch().join("missing.sock"))
        .output();
    out.failed().stderr_has(&["pidfd socket", "missing.sock"]);
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn socket_activation_fds_come_first_then_preserved_ones() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo \"$LISTEN_FDS $LISTEN_PID\"; echo activated >&3; echo preserved >&4");
    let (r3, w3) = nix::unistd::pipe().unwrap();
    let (r4, w4) = nix::unistd::pipe().unwrap();
    let out = rt.run_cmd(&b, |c| {
        c.args(["--preserve-fds", "1"])
            .pass_fd(w3)
            .pass_fd(w4)
            .listen_fds(1)
    });
    out.ok();
    assert_eq!(out.out(), "1 1", "{out}");
    let read = |fd: &OwnedFd| {
        let mut buf = [0u8; 64];
        let n = nix::unistd::read(fd, &mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(read(&r3), "activated\n");
    assert_eq!(read(&r4), "preserved\n");
}

#[test]
fn listen_fds_for_another_process_are_not_taken() {
    // LISTEN_PID names someone else (a shell that did not exec, say): nothing is handed over,
    // as go-systemd's activation.Files decides for runc.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo \"[$LISTEN_FDS]\"; if echo probe >&3; then echo fd3-open; else echo fd3-closed; fi");
    let (_r, w) = nix::unistd::pipe().unwrap();
    let out = rt.run_cmd(&b, |c| {
        c.pass_fd(w).env("LISTEN_FDS", "1").env("LISTEN_PID", "1")
    });
    out.ok();
    assert_eq!(out.out(), "[]\nfd3-closed", "{out}");
}

/// /proc/keys of a container: it shows the session keyring the container's processes hold.
fn keys_bundle() -> Bundle {
    let mut b = Bundle::new();
    // runc's default config masks /proc/keys.
    b.set("/linux/maskedPaths", json!([]))
        .args(&["cat", "/proc/keys"]);
    b
}

/// Whether /proc/keys (as `keys`) lists the session keyring of container `id`.
fn lists_session_keyring(keys: &str, id: &str) -> bool {
    keys.lines()
        .any(|l| l.contains(&format!(" keyring   _ses.{id}: ")))
}

#[test]
fn each_container_gets_its_own_session_keyring() {
    let rt = Runtime::new();
    let b = keys_bundle();
    let id = rt.new_id();
    let out = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id).output();
    out.ok();
    assert!(
        lists_session_keyring(out.out(), &id),
        "no _ses.{id} keyring: {out}"
    );
    rt.assert_no_leaks(&b, &[&id]);

    let id = rt.new_id();
    let out = rt
        .cmd(["run", "--no-new-keyring", "--bundle"])
        .arg(b.path())
        .last(&id)
        .output();
    out.ok();
    assert!(!out.out().contains(&format!("_ses.{id}")), "{out}");
    rt.assert_no_leaks(&b, &[&id]);
}

/// The caller's side of $NOTIFY_SOCKET, as systemd: a datagram socket that acknowledges
/// barriers by closing the fd that comes with `BARRIER=1`.
struct Systemd {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl Systemd {
    fn new(rt: &Runtime) -> Systemd {
        let path = rt.scratch().join("systemd-notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        Systemd { socket, path }
    }

    /// The next message; an fd that came with it is closed at once (the barrier's ack).
    fn recv(&self) -> String {
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .expect("no message on the notify socket within 20 s");
        for c in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: just received; closing it is the acknowledgement.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        let n = msg.bytes;
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn nothing_pending(&self) -> bool {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let r = self.socket.recv(&mut buf);
        self.socket.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[test]
fn notify_socket_ready_is_passed_on_at_start_with_the_inits_pid() {
    let rt = Runtime::new();
    let sd = Systemd::new(&rt);
    let mut b = Bundle::new();
    // READY need not be the datagram's first line (runc 1.1 forwards it only when it is).
    b.install_tool("sd_notify")
        .sh("sleep 0.3; sd_notify STATUS=warming READY=1; exec sleep 1000");
    let id = rt.new_id();
    rt.create_cmd(&b, &id)
        .env("NOTIFY_SOCKET", &sd.path)
        .output()
        .ok();
    let init = rt.state(&id)["pid"].as_i64().unwrap();
    // `start` returns only after systemd acknowledged READY and MAINPID.
    let start = rt
        .cmd(["start", id.as_str()])
        .env("NOTIFY_SOCKET", &sd.path)
        .spawn();
    assert_eq!(sd.recv(), "READY=1\n");
    assert_eq!(sd.recv(), format!("MAINPID={init}\n"));
    assert_eq!(sd.recv(), "BARRIER=1");
    start.wait().ok();
    assert_eq!(rt.status(&id), "running");
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn notify_socket_in_the_container_is_read_only_and_announced() {
    let rt = Runtime::new();
    let sd = Systemd::new(&rt);
    let mut b = Bundle::new();
    // The socket directory is a read-only bind: the container can send, not replace the socket.
    b.sh("echo \"$NOTIFY_SOCKET\"; grep ' /run/notify ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; \
          rm /run/notify/notify.sock 2>/dev/null || echo read-only");
    let out = rt.run_cmd(&b, |c| c.env("NOTIFY_SOCKET", &sd.path));
    out.ok();
    assert_eq!(out.out(), "/run/notify/notify.sock\nro\nread-only", "{out}");
    // It never said READY, so nothing reached systemd.
    assert!(sd.nothing_pending());
}

#[test]
fn notify_socket_in_the_foreground_names_the_runtime_as_main_pid() {
    let rt = Runtime::new();
    let sd = Systemd::new(&rt);
    let mut b = Bundle::new();
    b.install_tool("sd_notify")
        .sh("sd_notify READY=1; sleep 0.5; echo done");
    let id = rt.new_id();
    let run = rt
        .cmd(["run", "--bundle"])
        .arg(b.path())
        .last(&id)
        .env("NOTIFY_SOCKET", &sd.path)
        .spawn();
    let runtime_pid = run.pid();
    assert_eq!(sd.recv(), "READY=1\n");
    assert_eq!(sd.recv(), format!("MAINPID={runtime_pid}\n"));
    assert_eq!(sd.recv(), "BARRIER=1");
    let out = run.wait();
    out.ok();
    assert_eq!(out.out(), "done");
    rt.assert_no_leaks(&b, &[&id]);
}

/// Runs `f` on a thread of its own that holds a fresh session keyring named `name`, which only its
/// possessors may see (keyrings belong to a thread's credentials, so the test's other threads keep
/// theirs): a process started from there lists it in /proc/keys exactly while it still holds it.
fn with_private_session_keyring<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let name = std::ffi::CString::new(name).expect("no NUL in the keyring name");
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: KEYCTL_JOIN_SESSION_KEYRING reads one NUL-terminated string that outlives
            // the call; KEYCTL_SETPERM takes two integers.
            let serial = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_JOIN_SESSION_KEYRING,
                    name.as_ptr(),
                )
            };
            assert!(
                serial > 0,
                "join session keyring: {}",
                std::io::Error::last_os_error()
            );
            const POSSESSOR_ALL: libc::c_ulong = 0x3f00_0000;
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_SETPERM,
                    serial,
                    POSSESSOR_ALL,
                )
            };
            assert_eq!(ret, 0, "setperm: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("keyring thread")
    })
}

#[test]
fn exec_joins_the_containers_session_keyring_not_the_callers() {
    let rt = Runtime::new();
    let mut b = keys_bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.started(&b);
    let caller = format!("caller.{id}");
    let out = with_private_session_keyring(&caller, || rt.exec(["exec", &id, "cat", "/proc/keys"]));
    out.ok();
    assert!(
        lists_session_keyring(out.out(), &id),
        "no _ses.{id} keyring: {out}"
    );
    assert!(
        !out.out().contains(&caller),
        "the caller's keyring leaked in: {out}"
    );
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    let first = id;

    // Created with --no-new-keyring, the exec'd process keeps its caller's keyring as the init
    // did: the check above sees a held keyring when there is one.
    let id = rt.new_id();
    rt.create_cmd(&b, &id).arg("--no-new-keyring").output().ok();
    rt.start(&id).ok();
    let caller = format!("caller.{id}");
    let out = with_private_session_keyring(&caller, || rt.exec(["exec", &id, "cat", "/proc/keys"]));
    out.ok();
    assert!(
        out.out().contains(&caller),
        "the caller's keyring is gone: {out}"
    );
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&first, &id]);
}
