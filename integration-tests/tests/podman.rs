//! Podman as a real client, through conmon (the monitor CRI-O uses too): a private podman (see
//! `integration_tests::podman`) whose only runtime is the one under test, called as podman calls
//! runc (no `--root`, `--log-format=json --log`). Each test has its own podman and leaves
//! nothing behind.

use std::time::{Duration, Instant};

use integration_tests::podman::{available, hull_default_root, Podman};
use integration_tests::tmp::unique;

fn name(what: &str) -> String {
    format!("hull-pm-{what}-{}-{}", std::process::id(), unique())
}

/// Runs `script` in a pty, as a user at a terminal runs `podman -t`.
fn in_a_terminal(script: &str) -> (i32, String) {
    let out = std::process::Command::new("script")
        .args(["-qec", script, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script(1)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn status(p: &Podman, name: &str) -> String {
    p.podman(["inspect", "--format", "{{.State.Status}}", name])
        .out()
        .to_string()
}

#[test]
fn run_prints_output_and_returns_the_exit_code() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let out = p.run(&["--rm"], &["echo", "hello from hull"]);
    out.ok();
    assert_eq!(out.out(), "hello from hull");
    let out = p.run(&["--rm"], &["sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out}");
    // The runtime's own error reaches the user through conmon's json log.
    let out = p.run(&["--rm"], &["no-such-command"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(
        out.stderr.contains("no-such-command") && out.stderr.contains("not found"),
        "{out}"
    );
    p.assert_clean(&[]);
}

#[test]
fn detached_container_exec_top_pause_stop_rm() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let n = name("detached");
    p.run(
        &["-d", "--name", &n, "-e", "FOO=bar", "-w", "/tmp"],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
    )
    .ok();
    let id = p.full_id(&n);
    // Podman's runtime is the one under test, and it keeps its state in its default root.
    let runtime = p.podman(["inspect", "--format", "{{.OCIRuntime}}", &n]);
    assert_eq!(runtime.out(), "hull");
    let state = std::path::Path::new(hull_default_root())
        .join(&id)
        .join("state.json");
    assert!(state.exists(), "no {}", state.display());

    let out = p.podman(["exec", &n, "sh", "-c", "echo $FOO $(pwd); exit 3"]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(out.out(), "bar /tmp");

    let top = p.podman(["top", &n, "pid", "args"]);
    top.ok();
    assert!(top.stdout.contains("trap"), "{top}");

    p.podman(["pause", &n]).ok();
    assert_eq!(status(&p, &n), "paused");
    p.podman(["unpause", &n]).ok();
    assert_eq!(status(&p, &n), "running");

    // The trap makes SIGTERM end it cleanly, well before the timeout.
    p.podman(["stop", "-t", "20", &n]).ok();
    let code = p.podman(["inspect", "--format", "{{.State.ExitCode}}", &n]);
    assert_eq!(code.out(), "0");
    p.podman(["rm", &n]).ok();
    p.assert_clean(&[&id]);
}

#[test]
fn stop_escalates_to_sigkill() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let n = name("stubborn");
    // PID 1 without a SIGTERM handler ignores SIGTERM.
    p.run(&["-d", "--name", &n], &["sleep", "1000"]).ok();
    let id = p.full_id(&n);
    let started = Instant::now();
    p.podman(["stop", "-t", "1", &n]).ok();
    assert!(started.elapsed() < Duration::from_secs(20));
    let code = p.podman(["inspect", "--format", "{{.State.ExitCode}}", &n]);
    assert_eq!(code.out(), "137");
    p.podman(["rm", &n]).ok();
    p.assert_clean(&[&id]);
}

#[test]
fn kill_reaches_the_container() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let n = name("kill");
    p.run(
        &["-d", "--name", &n],
        &[
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.1; done",
        ],
    )
    .ok();
    let id = p.full_id(&n);
    p.podman(["kill", "--signal", "USR1", &n]).ok();
    p.podman(["wait", &n]).ok();
    let code = p.podman(["inspect", "--format", "{{.State.ExitCode}}", &n]);
    assert_eq!(code.out(), "42");
    p.podman(["rm", &n]).ok();
    p.assert_clean(&[&id]);
}

#[test]
fn tty_run_and_tty_exec() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let pm = p.shell_prefix();
    let rootfs = p.rootfs();
    let (code, out) = in_a_terminal(&format!(
        "{pm} run -t --rm --network none --cgroup-parent {} --rootfs '{}' \
         sh -c 'tty; test -t 0 && echo stdin-is-a-tty; exit 4'",
        p.cgroup_parent(),
        rootfs.display()
    ));
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("stdin-is-a-tty"), "{out:?}");

    let n = name("ttyexec");
    p.run(&["-d", "--name", &n], &["sleep", "1000"]).ok();
    let id = p.full_id(&n);
    let (code, out) = in_a_terminal(&format!(
        "{pm} exec -t {n} sh -c 'tty; test -t 1 && echo stdout-is-a-tty; exit 5'"
    ));
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("stdout-is-a-tty"), "{out:?}");
    p.podman(["rm", "--force", "--time", "0", &n]).ok();
    p.assert_clean(&[&id]);
}

#[test]
fn memory_limit_is_visible_inside() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let out = p.run(
        &["--rm", "--memory", "64m"],
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
        ],
    );
    out.ok();
    assert_eq!(out.out(), "67108864");
    p.assert_clean(&[]);
}

/// Makes fd 3 of the podman that `cmd` starts a copy of `fd` (podman's `--preserve-fds 1`).
fn with_fd3(cmd: &mut std::process::Command, fd: &std::os::fd::OwnedFd) {
    let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: dup2 is async-signal-safe; `fd` outlives the spawn.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `cmd` with fd 3 the write end of a pipe; returns what came through the pipe.
fn through_fd3(mut cmd: std::process::Command) -> String {
    let (r, w) = nix::unistd::pipe().unwrap();
    with_fd3(&mut cmd, &w);
    let status = cmd
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run podman");
    drop(w);
    assert!(status.success(), "{status}");
    let mut buf = [0u8; 4096];
    let n = nix::unistd::read(&r, &mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn preserve_fds_reach_the_container() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let mut cmd = p.command();
    cmd.args(["run", "--rm", "--network", "none", "--preserve-fds", "1"])
        .args(["--cgroup-parent", p.cgroup_parent(), "--rootfs"])
        .arg(p.rootfs())
        .args(["sh", "-c", "echo via-preserved-fd >&3"]);
    assert_eq!(through_fd3(cmd), "via-preserved-fd\n");
    p.assert_clean(&[]);
}

#[test]
fn exec_preserve_fds_reach_the_exec_process() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let n = name("execfds");
    p.run(&["-d", "--name", &n], &["sleep", "1000"]).ok();
    let id = p.full_id(&n);
    let mut cmd = p.command();
    cmd.args(["exec", "--preserve-fds", "1", &n])
        .args(["sh", "-c", "echo via-exec-fd >&3"]);
    assert_eq!(through_fd3(cmd), "via-exec-fd\n");
    p.podman(["rm", "--force", "--time", "0", &n]).ok();
    p.assert_clean(&[&id]);
}

#[test]
fn no_pivot_root_in_containers_conf_reaches_the_runtime() {
    if !available() {
        return;
    }
    let p = Podman::with_engine("no_pivot_root = true");
    let out = p.run(&["--rm"], &["echo", "ran without pivot_root"]);
    out.ok();
    assert_eq!(out.out(), "ran without pivot_root");
    let calls = p.runtime_calls();
    let creates: Vec<&String> = calls
        .iter()
        .filter(|c| c.split_whitespace().any(|w| w == "create"))
        .collect();
    assert_eq!(creates.len(), 1, "{calls:#?}");
    assert!(
        creates[0].split_whitespace().any(|w| w == "--no-pivot"),
        "conmon did not pass --no-pivot: {calls:#?}"
    );
    p.assert_clean(&[]);
}

#[test]
fn ten_containers_in_a_row_leave_nothing() {
    if !available() {
        return;
    }
    let p = Podman::new();
    let mut ids = Vec::new();
    for i in 0..10 {
        let n = name(&format!("row{i}"));
        let out = p.run(&["--name", &n], &["sh", "-c", &format!("echo run-{i}")]);
        out.ok();
        assert_eq!(out.out(), format!("run-{i}"));
        ids.push(p.full_id(&n));
        p.podman(["rm", &n]).ok();
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    p.assert_clean(&refs);
}
