//! `run` and `exec` in the foreground, as runc's signal proxy has them: a signal to the runtime
//! reaches the container's process, and the runtime exits with that process's status.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use integration_tests::runtime::{Cmd, Running};
use integration_tests::{Bundle, Runtime};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(20);

/// What the container's shell runs: a trap that reports the signal and exits with a code of its
/// own, so a runtime killed by the signal (and not passing it on) cannot pass for one that did.
fn trapping(signal: &str) -> String {
    format!(
        "trap 'echo got-{signal}; exit 3' {signal}; echo ready; \
         while true; do sleep 0.05; done"
    )
}

/// Starts `cmd` with its stdout a pipe; returns it and the lines it writes.
fn spawn_piped(cmd: Cmd<'_>) -> (Running, Receiver<String>) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    let running = cmd.stdout(write).spawn();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(read)).lines() {
            if line.map(|l| tx.send(l)).is_err() {
                break;
            }
        }
    });
    (running, rx)
}

/// Waits for "ready", sends `signal` to the runtime, and checks that the trap ran and its exit
/// code came back as the runtime's.
fn signal_reaches_the_trap(running: Running, lines: &Receiver<String>, signal: Signal) {
    let name = signal.as_str().trim_start_matches("SIG");
    let line = lines
        .recv_timeout(WAIT)
        .expect("the container never said ready");
    assert_eq!(line, "ready");
    kill(Pid::from_raw(running.pid() as i32), signal).expect("signal the runtime");
    let out = running.wait();
    assert_eq!(
        lines.recv_timeout(WAIT).as_deref(),
        Ok(format!("got-{name}").as_str()),
        "{out}"
    );
    assert_eq!(out.code(), 3, "{out}");
}

#[test]
fn foreground_run_passes_signals_to_the_init() {
    let rt = Runtime::new();
    // SIGTSTP: runc passes it on too, and stops neither itself nor the container's init by it.
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGTSTP,
    ] {
        let mut b = Bundle::new();
        // pid 1 of a pid namespace ignores a signal it has no handler for: only the trap ends it.
        b.sh(&trapping(signal.as_str().trim_start_matches("SIG")));
        let id = rt.new_id();
        let cmd = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id);
        let (running, lines) = spawn_piped(cmd);
        signal_reaches_the_trap(running, &lines, signal);
        rt.assert_no_leaks(&b, &[&id]);
    }
}

#[test]
fn foreground_exec_passes_signals_to_its_process() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let id = rt.started(&b);
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGALRM,
        Signal::SIGPWR,
    ] {
        let script = trapping(signal.as_str().trim_start_matches("SIG"));
        let cmd = rt.cmd(["exec", &id, "sh", "-c", &script]);
        let (running, lines) = spawn_piped(cmd);
        signal_reaches_the_trap(running, &lines, signal);
    }
    // The init was not the one signalled.
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// A signal that comes while `run` is still creating the container (here: during a createRuntime
/// hook) does not end the runtime half-way: it is passed on once the init exists, the runtime
/// exits with the init's status, and nothing is left behind. In its own pid namespace the init is
/// that namespace's init, and the kernel drops a signal it has no handler for (runc's run exits 0
/// there too); without one it dies of it (runc 1.1.5 loses it there as well: its init, still Go
/// code then, swallows it; hull passes it on, as a caller stopping the container means).
#[test]
fn foreground_run_holds_a_signal_that_comes_during_create() {
    use std::os::unix::process::ExitStatusExt;
    let rt = Runtime::new();
    let mut cases = vec![(true, 0)];
    if integration_tests::runtime::is_hull() {
        cases.push((false, 128 + Signal::SIGTERM as i32));
    }
    for (own_pid_ns, code) in cases {
        let marker = rt.scratch().join(format!("in-hook-{own_pid_ns}"));
        let mut b = Bundle::new();
        // Long enough to be there when the signal is passed on, whenever that is.
        b.args(&["sleep", "2"]).set(
            "/hooks/createRuntime",
            serde_json::json!([{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("touch {}; sleep 1", marker.display())]
            }]),
        );
        if !own_pid_ns {
            b.without_namespace("pid");
        }
        let id = rt.new_id();
        let cmd = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id);
        let (running, _lines) = spawn_piped(cmd);
        let deadline = std::time::Instant::now() + WAIT;
        while !marker.exists() {
            assert!(std::time::Instant::now() < deadline, "the hook never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        kill(Pid::from_raw(running.pid() as i32), Signal::SIGTERM).expect("signal the runtime");
        let out = running.wait();
        assert_eq!(out.status.signal(), None, "the runtime was killed: {out}");
        assert_eq!(out.code(), code, "own pid namespace: {own_pid_ns}: {out}");
        rt.assert_no_leaks(&b, &[&id]);
    }
}
