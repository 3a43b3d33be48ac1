//! `process.terminal` with `--console-socket`: the pty is made inside the container, becomes its
//! controlling terminal, and its master reaches the socket (as containerd's shim and conmon use it).

use std::time::Duration;

use integration_tests::console::read_until_closed;
use integration_tests::{only_hull, Bundle, ConsoleSocket, Runtime};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn terminal_bundle(script: &str) -> Bundle {
    let mut b = Bundle::new();
    b.set("/process/terminal", json!(true)).sh(script);
    b
}

#[test]
fn console_socket_receives_the_pty_master() {
    let rt = Runtime::new();
    let b = terminal_bundle(
        "tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty; \
         cut -d' ' -f7 /proc/self/stat; ls -l /dev/console | cut -c1; echo done",
    );
    let sock = ConsoleSocket::bind(&rt.scratch().join("console.sock"));
    let id = rt.new_id();
    rt.create_cmd(&b, &id)
        .arg("--console-socket")
        .arg(sock.path())
        .output()
        .ok();
    let master = sock.master(WAIT);
    rt.start(&id).ok();
    let text = read_until_closed(&master, WAIT);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines.first().copied(), Some("/dev/pts/0"), "{text}");
    assert_eq!(lines.get(1).copied(), Some("all-tty"), "{text}");
    // tty_nr of /proc/self/stat: non-zero when the process has a controlling terminal.
    assert_ne!(
        lines.get(2).copied(),
        Some("0"),
        "no controlling terminal: {text}"
    );
    assert_eq!(
        lines.get(3).copied(),
        Some("c"),
        "/dev/console is the pty: {text}"
    );
    assert_eq!(lines.last().copied(), Some("done"), "{text}");
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn input_written_to_the_master_reaches_the_container() {
    let rt = Runtime::new();
    let b = terminal_bundle("read line; echo got:$line");
    let sock = ConsoleSocket::bind(&rt.scratch().join("console.sock"));
    let id = rt.new_id();
    rt.create_cmd(&b, &id)
        .arg("--console-socket")
        .arg(sock.path())
        .output()
        .ok();
    let master = sock.master(WAIT);
    rt.start(&id).ok();
    nix::unistd::write(&master, b"typed\n").unwrap();
    let text = read_until_closed(&master, WAIT);
    // The terminal echoes the input, then the container answers.
    assert!(text.contains("got:typed"), "{text:?}");
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn run_detach_with_console_socket() {
    let rt = Runtime::new();
    let b = terminal_bundle("echo detached-tty; sleep 1000");
    let sock = ConsoleSocket::bind(&rt.scratch().join("console.sock"));
    let id = rt.new_id();
    rt.cmd(["run", "--detach", "--console-socket"])
        .arg(sock.path())
        .arg("--bundle")
        .arg(b.path())
        .arg(&id)
        .output()
        .ok();
    let master = sock.master(WAIT);
    assert_eq!(rt.status(&id), "running");
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&master, &mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("detached-tty"));
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn console_socket_without_terminal_is_refused() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["true"]);
    let sock = ConsoleSocket::bind(&rt.scratch().join("console.sock"));
    let id = rt.new_id();
    rt.create_cmd(&b, &id)
        .arg("--console-socket")
        .arg(sock.path())
        .output()
        .failed()
        .stderr_has(&["console"]);
    rt.assert_no_leaks(&b, &[&id]);
}

/// runc's foreground `run` with a terminal and no console socket: the runtime takes the pty master
/// itself and relays the container's terminal to its own stdout.
#[test]
fn foreground_run_relays_its_own_pty() {
    if !only_hull("runc opens /dev/tty, so it needs the caller to have a controlling terminal") {
        return;
    }
    let rt = Runtime::new();
    let b = terminal_bundle("tty; test -t 0 && test -t 1 && echo all-tty; exit 5");
    let out = rt.run(&b);
    assert_eq!(out.code(), 5, "{out}");
    let lines: Vec<&str> = out.out().lines().map(str::trim).collect();
    assert_eq!(lines, ["/dev/pts/0", "all-tty"], "{out}");
}

#[test]
fn foreground_exec_relays_its_own_pty() {
    if !only_hull("runc opens /dev/tty, so it needs the caller to have a controlling terminal") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let id = rt.started(&b);
    let out = rt
        .cmd(["exec", "-t", &id, "sh", "-c"])
        .arg("tty; test -t 0 && test -t 1 && echo all-tty; read line; echo got-$line; exit 5")
        .stdin(b"hello\n")
        .output();
    assert_eq!(out.code(), 5, "{out}");
    let lines: Vec<&str> = out.out().lines().map(str::trim).collect();
    // The caller's input went through the pty, which echoes it: whenever it arrives, possibly
    // before the shell's first line.
    assert!(lines.contains(&"hello"), "no echo of the input: {out}");
    let said: Vec<&str> = lines.iter().copied().filter(|l| *l != "hello").collect();
    assert!(said[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(said[1], "all-tty", "{out}");
    assert_eq!(said.last(), Some(&"got-hello"), "{out}");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

fn set_window_size(fd: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pty fd.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

/// What the container's terminal reports while `args` (a foreground `run` or `exec -t` of
/// [`RESIZE_SCRIPT`]) runs under a caller's terminal of 30x100 that becomes 40x120: the first
/// `stty size` must already see 30x100 (the size is copied before the process runs, never after,
/// a race CI once lost), and the resize must follow (SIGWINCH to the runtime, which copies the new
/// size to the container's pty), as runc does; the runtime then exits 0.
fn follows_the_callers_window_size(rt: &Runtime, args: &[&std::ffi::OsStr]) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // The caller's terminal: the runtime's stdio is its slave, and its controlling terminal.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    set_window_size(&pty.master, 30, 100);
    let slave = std::fs::File::from(pty.slave);
    // Under strace, every ioctl of the runtime's main thread (the terminal's own included) takes
    // 300 ms more: a runtime that copies the size only after the process runs loses the race
    // every time, where unslowed it loses it only under load.
    let mut cmd = std::process::Command::new("strace");
    cmd.args([
        "-o",
        "/dev/null",
        "-e",
        "trace=ioctl",
        "-e",
        "inject=ioctl:delay_enter=300000",
    ])
    .arg(rt.binary())
    .arg("--root")
    .arg(rt.root())
    .args(args)
    .stdin(slave.try_clone().unwrap())
    .stdout(slave.try_clone().unwrap())
    .stderr(slave);
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn the runtime");
    drop(cmd);
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        // EIO once the runtime (the slave's last holder) has exited.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + WAIT;
        while !seen.contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(text) => seen.push_str(&text),
                Err(_) => panic!("never saw {what:?}; the terminal showed {seen:?}"),
            }
        }
        seen.clone()
    };
    let first = wait_for("\n");
    assert_eq!(
        first.lines().next().map(str::trim),
        Some("30 100"),
        "{first:?}"
    );
    set_window_size(&pty.master, 40, 120);
    let seen = wait_for("resized 40 120");
    let status = child.wait().expect("wait for the runtime");
    assert_eq!(status.code(), Some(0), "{seen:?}");
}

/// Prints the terminal's size, then waits for it to change and prints the new one.
const RESIZE_SCRIPT: &str = "stty size; i=0; while [ $i -lt 100 ]; do s=$(stty size); \
     if [ \"$s\" != '30 100' ]; then echo \"resized $s\"; exit 0; fi; sleep 0.1; i=$((i+1)); done; exit 9";

#[test]
fn foreground_run_follows_the_callers_window_size() {
    if !only_hull("runc opens /dev/tty, which this test's pty is not for its process group") {
        return;
    }
    let rt = Runtime::new();
    let b = terminal_bundle(RESIZE_SCRIPT);
    let id = rt.new_id();
    let args = [
        "run".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref(),
    ];
    follows_the_callers_window_size(&rt, &args);
    rt.assert_no_leaks(&b, &[&id]);
}

/// exec's process runs as soon as its pty exists, before the runtime holds the master: the
/// caller's size goes in as its process.consoleSize.
#[test]
fn foreground_exec_follows_the_callers_window_size() {
    if !only_hull("runc opens /dev/tty, which this test's pty is not for its process group") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let id = rt.started(&b);
    let args = [
        "exec".as_ref(),
        "-t".as_ref(),
        id.as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        RESIZE_SCRIPT.as_ref(),
    ];
    follows_the_callers_window_size(&rt, &args);
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}
