//! containerd as a real client: a private containerd (see `integration_tests::containerd`) whose
//! runc shim calls the runtime under test exactly as it calls runc, driven by `ctr run
//! --runc-binary`. Each test starts its own containerd and leaves nothing behind.

use std::time::{Duration, Instant};

use integration_tests::containerd::{available, Containerd};
use integration_tests::runtime::runtime_binary;
use integration_tests::tmp::unique;

fn id(name: &str) -> String {
    format!("hull-ctr-{name}-{}-{}", std::process::id(), unique())
}

/// The runtime under test wrote this task's state: hull's state.json has fields runc's lacks.
fn assert_runtime_state(c: &Containerd, id: &str) {
    let path = c.state_dir(id).join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no runtime state at {}: {e}", path.display()));
    if runtime_binary().ends_with("hull") {
        assert!(
            text.contains("\"init_start_time\""),
            "not hull's state: {text}"
        );
    }
}

/// `<runtime> --root <shim's root> state <id>`: what the runtime itself says of the task.
fn runtime_status(c: &Containerd, id: &str) -> String {
    let out = std::process::Command::new(runtime_binary())
        .arg("--root")
        .arg(c.runtime_root().join("default"))
        .args(["state", id])
        .output()
        .expect("run state");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("state of {id}: {e}: {out:?}"));
    v["status"].as_str().unwrap_or_default().to_string()
}

fn task_status(c: &Containerd, id: &str) -> String {
    let out = c.ctr(["task", "ls"]);
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

fn wait_task_status(c: &Containerd, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while task_status(c, id) != want {
        assert!(
            Instant::now() < deadline,
            "task {id} never became {want}: {}",
            c.ctr(["task", "ls"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn remove(c: &Containerd, id: &str) {
    c.ctr(["task", "delete", id]).ok();
    c.ctr(["container", "delete", id]).ok();
}

/// `ctr events` while it lives: the exit statuses containerd publishes (`/tasks/exit`).
struct TaskExits {
    events: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl TaskExits {
    fn watch(c: &Containerd) -> TaskExits {
        use std::io::BufRead;
        let mut events = c
            .ctr_command(["events"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ctr events");
        let out = events.stdout.take().expect("events stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                if line.map(|l| tx.send(l)).is_err() {
                    break;
                }
            }
        });
        // ctr subscribes once it is connected; an event before that would be missed.
        std::thread::sleep(Duration::from_millis(500));
        TaskExits { events, lines }
    }

    /// The exit status of task `id`'s init (containerd leaves a 0 out of the event).
    fn status_of(&self, id: &str) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no /tasks/exit event of {id}: {e}"));
            let Some((_, body)) = line.split_once(" /tasks/exit ") else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("exit event is not JSON ({e}): {line}"));
            if event["container_id"] == id && event["id"] == id {
                return event["exit_status"].as_i64().unwrap_or(0);
            }
        }
    }
}

impl Drop for TaskExits {
    fn drop(&mut self) {
        let _ = self.events.kill();
        let _ = self.events.wait();
    }
}

/// Runs `script` in a pty, as a user at a terminal runs `ctr -t` (ctr insists on one).
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

#[test]
fn run_prints_output_and_returns_the_exit_code() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let (a, b) = (id("echo"), id("exit"));
    let out = c.run(&["--rm"], &a, &["echo", "hello from hull"]);
    out.ok();
    assert_eq!(out.out(), "hello from hull");
    let out = c.run(&["--rm"], &b, &["sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out}");
    c.assert_clean(&[&a, &b]);
}

#[test]
fn detached_task_exec_ps_pause_resume_kill_delete() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("detached");
    // PID 1 ignores SIGTERM unless it handles it; the trap's status of its own tells that it ran.
    c.run(
        &["-d", "--env", "FOO=bar", "--cwd", "/tmp"],
        &t,
        &[
            "sh",
            "-c",
            "trap 'exit 9' TERM; while true; do sleep 0.1; done",
        ],
    )
    .ok();
    assert_runtime_state(&c, &t);
    assert_eq!(
        c.path_runc_calls(),
        "",
        "the shim ran runc from PATH, not --runc-binary"
    );
    assert_eq!(task_status(&c, &t), "RUNNING");

    let out = c.ctr([
        "task",
        "exec",
        "--exec-id",
        "e1",
        &t,
        "sh",
        "-c",
        "echo $FOO $(pwd); exit 3",
    ]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(out.out(), "bar /tmp");

    let ps = c.ctr(["task", "ps", &t]);
    ps.ok();
    let pid = c
        .ctr(["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.starts_with(&t))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .expect("task pid");
    assert!(
        ps.stdout
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&pid)),
        "init {pid} not in task ps: {ps}"
    );

    let exits = TaskExits::watch(&c);
    c.ctr(["task", "pause", &t]).ok();
    assert_eq!(task_status(&c, &t), "PAUSED");
    assert_eq!(runtime_status(&c, &t), "paused");
    c.ctr(["task", "resume", &t]).ok();
    assert_eq!(task_status(&c, &t), "RUNNING");
    assert_eq!(runtime_status(&c, &t), "running");

    c.ctr(["task", "kill", "-s", "SIGTERM", &t]).ok();
    wait_task_status(&c, &t, "STOPPED");
    // The trap's status, not a SIGKILL's 137: the runtime delivered SIGTERM itself.
    assert_eq!(exits.status_of(&t), 9);
    remove(&c, &t);
    c.assert_clean(&[&t]);
}

#[test]
fn kill_all_stops_every_process_of_the_task() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("killall");
    c.run(
        &["-d"],
        &t,
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
    )
    .ok();
    let ps = || c.ctr(["task", "ps", &t]).stdout.lines().skip(1).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ps() < 3 {
        assert!(Instant::now() < deadline, "{}", c.ctr(["task", "ps", &t]));
        std::thread::sleep(Duration::from_millis(20));
    }
    c.ctr(["task", "kill", "-a", "-s", "SIGKILL", &t]).ok();
    wait_task_status(&c, &t, "STOPPED");
    remove(&c, &t);
    c.assert_clean(&[&t]);
}

#[test]
fn tty_task_and_tty_exec() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let sock = c.path().join("containerd.sock");
    let (a, b) = (id("tty"), id("ttyexec"));
    let bin = runtime_binary().display().to_string();
    let root = c.runtime_root().display().to_string();
    let ctr = format!("{}ctr --address {}", c.ctr_env(), sock.display());
    let (code, out) = in_a_terminal(&format!(
        "{ctr} run -t --rm --runc-binary {bin} --runc-root {root} --cgroup {} {} {a} \
         sh -c 'tty; test -t 0 && echo stdin-is-a-tty; exit 4'",
        c.cgroup_of(&a),
        integration_tests::containerd::IMAGE
    ));
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("stdin-is-a-tty"), "{out:?}");

    c.run(&["-d"], &b, &["sleep", "1000"]).ok();
    let (code, out) = in_a_terminal(&format!(
        "{ctr} task exec -t --exec-id x {b} sh -c 'tty; test -t 1 && echo stdout-is-a-tty; exit 5'"
    ));
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("stdout-is-a-tty"), "{out:?}");
    c.ctr(["task", "kill", "-s", "SIGKILL", &b]).ok();
    wait_task_status(&c, &b, "STOPPED");
    remove(&c, &b);
    c.assert_clean(&[&a, &b]);
}

#[test]
fn memory_limit_is_visible_inside() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("memory");
    // ctr's default spec has no cgroup mount; this adds the one docker's spec has.
    let out = c.run(
        &[
            "--rm",
            "--memory-limit",
            "33554432",
            "--mount",
            "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro",
        ],
        &t,
        &[
            "sh",
            "-c",
            // v1, else v2 (at the cgroup's own path when there is no cgroup namespace).
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || \
             cat \"/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.max\"",
        ],
    );
    out.ok();
    assert_eq!(out.out(), "33554432");
    c.assert_clean(&[&t]);
}

#[test]
fn no_pivot_runs_the_runc_on_containerds_path() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("nopivot");
    // ctr drops --runc-binary with --no-pivot: the shim runs `runc` from containerd's PATH,
    // which is a link to the runtime under test.
    c.run(&["-d", "--no-pivot"], &t, &["sh", "-c", "exec sleep 1000"])
        .ok();
    let calls = c.path_runc_calls();
    assert!(
        calls
            .lines()
            .any(|l| l.contains(" create ") && l.contains("--no-pivot") && l.ends_with(&t)),
        "the runc on PATH was not asked to create {t} without pivot_root: {calls}"
    );
    let out = c.ctr(["task", "exec", "--exec-id", "e", &t, "echo", "exec-ok"]);
    out.ok();
    assert_eq!(out.out(), "exec-ok");
    c.ctr(["task", "kill", "-s", "SIGKILL", &t]).ok();
    wait_task_status(&c, &t, "STOPPED");
    remove(&c, &t);
    c.assert_clean(&[&t]);
}

#[test]
fn ten_containers_in_a_row_leave_nothing() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let ids: Vec<String> = (0..10).map(|i| id(&format!("row{i}"))).collect();
    for (i, t) in ids.iter().enumerate() {
        let out = c.run(&["--rm"], t, &["sh", "-c", &format!("echo run-{i}")]);
        out.ok();
        assert_eq!(out.out(), format!("run-{i}"));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    c.assert_clean(&refs);
}

#[test]
fn a_missing_binary_fails_with_the_runtimes_own_error() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("enoent");
    let out = c.run(&["--rm"], &t, &["/no/such/binary"]);
    assert_ne!(out.code, 0, "{out}");
    // The shim reads the runtime's `--log-format json` log and hands its last error on: the
    // runtime's own words are the proof that it ran.
    let name = runtime_binary().file_name().unwrap().to_string_lossy();
    assert!(
        out.stderr.contains(&format!("{name} create failed"))
            && out.stderr.contains("/no/such/binary"),
        "{out}"
    );
    // ctr --rm cannot remove a container whose task never started.
    let _ = c.ctr(["container", "delete", &t]);
    c.assert_clean(&[&t]);
}

#[test]
fn a_paused_task_dies_on_sigkill() {
    if !available() {
        return;
    }
    let c = Containerd::start();
    let t = id("pausekill");
    c.run(&["-d"], &t, &["sleep", "1000"]).ok();
    c.ctr(["task", "pause", &t]).ok();
    assert_eq!(task_status(&c, &t), "PAUSED");
    // The shim sends `kill <id> 9`: a frozen init takes it only once thawed (cgroup v1).
    c.ctr(["task", "kill", "-s", "SIGKILL", &t]).ok();
    wait_task_status(&c, &t, "STOPPED");
    remove(&c, &t);
    c.assert_clean(&[&t]);
}
