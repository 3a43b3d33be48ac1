//! `exec` into a running container (as containerd's shim and conmon use it: `--process`,
//! `--detach --pid-file`, `--tty --console-socket`, `--preserve-fds`), and the verbs that see the
//! exec'd processes: `ps` and `kill --all`.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::console::read_until_closed;
use integration_tests::procfs::{limit, status_field};
use integration_tests::{cgroupfs, Bundle, ConsoleSocket, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose: the process has exited.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

/// Polls `cond` every 10 ms; panics with `what` after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read pid file {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid file holds {text:?}: {e}"))
}

/// A started container running `sleep 1000` (or `b`'s args); returns its id and init pid.
fn running(rt: &Runtime, b: &Bundle) -> (String, i32) {
    let id = rt.started(b);
    let pid = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    (id, pid)
}

/// `exec --detach --pid-file <scratch>/<name> <id> <args>`; returns the exec'd pid.
fn exec_detached(rt: &Runtime, id: &str, name: &str, args: &[&str]) -> i32 {
    let pid_file = rt.scratch().join(name);
    rt.cmd(["exec", "--detach", "--pid-file"])
        .arg(&pid_file)
        .arg(id)
        .args(args)
        .output()
        .ok();
    read_pid(&pid_file)
}

fn finish(rt: &Runtime, b: &Bundle, id: &str) {
    rt.delete_force(id).ok();
    rt.assert_no_leaks(b, &[id]);
}

#[test]
fn exec_output_input_and_exit_status_pass_through() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 7",
    ]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.out(), "to-out");
    assert!(out.stderr.contains("to-err"), "{out}");
    assert!(!out.stdout.contains("to-err"), "{out}");

    let out = rt
        .cmd(["exec", id.as_str(), "cat"])
        .stdin(b"through exec's stdin\n")
        .output();
    assert_eq!(out.ok().out(), "through exec's stdin");

    let out = rt.exec(["exec", id.as_str(), "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code(), 137, "a killed exec reports 128 + signal: {out}");
    // The container is not disturbed by what its exec'd processes do.
    assert_eq!(rt.status(&id), "running");
    finish(&rt, &b, &id);
}

#[test]
fn exec_joins_the_containers_namespaces() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // A tmpfs only the container's mount namespace has: the host cannot see the marker in the
    // bundle's rootfs, an exec'd process can only if it shares the init's mounts.
    b.set("/hostname", json!("exec-ns-test"))
        .mount(
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "mode=1777"]}),
        )
        .sh("echo from-init > /tmp/marker; exec sleep 1000");
    let (id, init) = running(&rt, &b);
    let marker = format!("/proc/{init}/root/tmp/marker");
    wait_until("the init writes its marker", || Path::new(&marker).exists());
    assert!(!b.rootfs().join("tmp/marker").exists());

    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "hostname; echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /tmp/marker",
    ]);
    let lines: Vec<&str> = out.ok().stdout.lines().map(str::trim).collect();
    assert_eq!(lines.first().copied(), Some("exec-ns-test"), "{out}");
    let pid: u32 = lines[1].parse().expect("$$ is a number");
    assert!(
        pid > 1 && pid < 100,
        "exec'd shell is pid {pid}: not in the container's pid namespace"
    );
    assert_eq!(
        lines[2], "sleep 1000",
        "pid 1 is the container's init: {out}"
    );
    assert_eq!(lines[3], "from-init", "{out}");

    // Every namespace of an exec'd process is the init's.
    let exec_pid = exec_detached(&rt, &id, "exec.pid", &["sleep", "1000"]);
    for ns in ["mnt", "pid", "uts", "ipc", "net", "user", "cgroup"] {
        let link = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).expect("ns link");
        assert_eq!(link(exec_pid), link(init), "{ns} namespace");
    }
    finish(&rt, &b, &id);
}

#[test]
fn exec_user_env_and_cwd_flags() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    let out = rt.exec([
        "exec",
        "--user",
        "1000:1001",
        "--env",
        "FOO=from-flag",
        "--env",
        "TERM=dumb",
        "--cwd",
        "/etc",
        id.as_str(),
        "sh",
        "-c",
        "id -u; id -g; echo $FOO; echo $TERM; echo $PATH; pwd",
    ]);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    assert_eq!(lines[2], "from-flag", "{out}");
    // --env overrides the config's TERM=xterm and keeps the rest of its environment.
    assert_eq!(lines[3], "dumb", "{out}");
    assert!(lines[4].contains("/bin"), "PATH from the config: {out}");
    assert_eq!(lines[5], "/etc", "{out}");
    finish(&rt, &b, &id);
}

/// The container's process template: config.json's user, env and cwd as they were at create.
fn template_bundle() -> Bundle {
    let mut b = Bundle::sleeping();
    b.set("/process/user", json!({"uid": 1234, "gid": 4321}))
        .set("/process/cwd", json!("/etc"))
        .push("/process/env", json!("FROM_CONFIG=at-create"));
    b
}

/// The uid, gid, cwd and `$FROM_CONFIG` of `hull exec <id> sh` (no --process).
fn exec_sees(rt: &Runtime, id: &str) -> Vec<String> {
    let script = "id -u; id -g; pwd; echo ${FROM_CONFIG:-unset}";
    let out = rt.exec(["exec", id, "sh", "-c", script]);
    out.ok().stdout.lines().map(str::to_string).collect()
}

#[test]
fn exec_takes_its_template_from_the_state_not_the_changed_or_removed_bundle() {
    if !integration_tests::only_hull("runc 1.1's exec reads config.json again") {
        return;
    }
    let rt = Runtime::new();
    let mut b = template_bundle();
    let (id, _) = running(&rt, &b);
    // The bundle changes after create: exec must not take its process from there.
    b.set("/process/user", json!({"uid": 0, "gid": 0}))
        .set("/process/cwd", json!("/"))
        .set("/process/env", json!(["PATH=/bin", "FROM_CONFIG=changed"]));
    assert_eq!(exec_sees(&rt, &id), ["1234", "4321", "/etc", "at-create"]);
    // Nor does it need the bundle's config at all.
    std::fs::remove_file(b.config_path()).expect("remove config.json");
    assert_eq!(exec_sees(&rt, &id), ["1234", "4321", "/etc", "at-create"]);
    finish(&rt, &b, &id);
}

#[test]
fn exec_of_a_container_whose_state_has_no_template_reads_the_bundle() {
    if !integration_tests::only_hull("hull's state directory") {
        return;
    }
    let rt = Runtime::new();
    let mut b = template_bundle();
    let (id, _) = running(&rt, &b);
    // The state directory as a hull before the template left it.
    let template = rt.root().join(&id).join("process.json");
    std::fs::remove_file(&template).expect("create keeps the process template");
    b.set(
        "/process/env",
        json!(["PATH=/bin", "FROM_CONFIG=from-bundle"]),
    );
    assert_eq!(exec_sees(&rt, &id), ["1234", "4321", "/etc", "from-bundle"]);
    finish(&rt, &b, &id);
}

#[test]
fn exec_detach_writes_a_live_pid_in_the_containers_cgroup() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    let pid = exec_detached(&rt, &id, "exec.pid", &["sleep", "999"]);
    assert!(alive(pid), "exec'd process {pid} is not running");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, "sleep\0999\0");
    let dirs = cgroupfs::dirs(init);
    assert!(!dirs.is_empty());
    for (ctrls, dir) in &dirs {
        assert!(
            cgroupfs::procs(dir).contains(&pid),
            "exec'd {pid} is not in the container's {ctrls:?} cgroup {}",
            dir.display()
        );
    }
    rt.delete_force(&id).ok();
    wait_until("delete --force kills the exec'd process", || !alive(pid));
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn exec_process_json_as_containerd_writes_it() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    let mut process = json!({
        "terminal": false,
        "user": {"uid": 65534, "gid": 65534, "additionalGids": [5]},
        "args": ["sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO; grep CapBnd /proc/self/status"],
        "env": ["PATH=/usr/bin:/bin", "FOO=from-process-json"],
        "cwd": "/tmp",
        "capabilities": {
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
        },
        "noNewPrivileges": true
    });
    let path = rt.scratch().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let out = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines[..3], ["65534", "65534", "65534 5"], "{out}");
    assert_eq!(lines[3], "/tmp", "{out}");
    assert_eq!(lines[4], "from-process-json", "{out}");
    // CAP_KILL is bit 5.
    assert_eq!(lines[5].split_whitespace().last(), Some("0000000000000020"));

    // containerd's exact form: --process with --detach --pid-file.
    process["args"] = json!(["sleep", "998"]);
    std::fs::write(&path, process.to_string()).unwrap();
    let pid_file = rt.scratch().join("exec.pid");
    rt.cmd(["exec", "--process"])
        .arg(&path)
        .arg("--detach")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .output()
        .ok();
    let pid = read_pid(&pid_file);
    assert!(alive(pid));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534\t")),
        "{status}"
    );
    finish(&rt, &b, &id);
}

#[test]
fn exec_tty_sends_the_pty_master_to_the_console_socket() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    let sock = ConsoleSocket::bind(&rt.scratch().join("console.sock"));
    let pid_file = rt.scratch().join("exec.pid");
    rt.cmd(["exec", "--tty", "--detach", "--console-socket"])
        .arg(sock.path())
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .args([
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && test -t 2 && echo all-tty; echo done",
        ])
        .output()
        .ok();
    let master = sock.master(WAIT);
    let pid = read_pid(&pid_file);
    let text = read_until_closed(&master, WAIT);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{text:?}"
    );
    assert_eq!(lines.get(1).copied(), Some("all-tty"), "{text:?}");
    assert_eq!(lines.last().copied(), Some("done"), "{text:?}");
    wait_until("the exec'd process exits", || !alive(pid));
    finish(&rt, &b, &id);
}

/// A detached process has nobody to relay its terminal: without --console-socket its pty master
/// would have nowhere to go (in the foreground the runtime relays it, see terminal.rs).
#[test]
fn detached_exec_tty_without_console_socket_is_refused() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    rt.exec(["exec", "--tty", "--detach", id.as_str(), "sleep", "100"])
        .failed()
        .stderr_has(&["console", "socket"]);
    let pids = cgroupfs::controller_dir(init, "pids");
    assert_eq!(cgroupfs::procs(&pids), [init]);
    finish(&rt, &b, &id);
}

#[test]
fn exec_of_a_missing_executable_fails_and_leaves_no_process() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    rt.exec(["exec", id.as_str(), "no-such-program"])
        .failed()
        .stderr_has(&["executable file not found in $PATH", "no-such-program"]);
    let pids = cgroupfs::controller_dir(init, "pids");
    wait_until("only the init is left in the container", || {
        cgroupfs::procs(&pids) == [init]
    });
    assert_eq!(rt.status(&id), "running");
    finish(&rt, &b, &id);
}

#[test]
fn exec_into_a_stopped_container_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(); // args: true
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.exec(["exec", id.as_str(), "true"])
        .failed()
        .stderr_has(&["cannot exec in a stopped container"]);
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    rt.exec(["pause", id.as_str()]).ok();
    rt.exec(["exec", id.as_str(), "true"])
        .failed()
        .stderr_has(&["cannot exec in a paused container (use --ignore-paused to override)"]);
    assert_eq!(rt.status(&id), "paused");

    // With --ignore-paused the process is started, and (like everything in the frozen cgroup)
    // runs once the container is resumed.
    let freezer = cgroupfs::controller_dir(init, "freezer");
    let exec = rt
        .cmd([
            "exec",
            "--ignore-paused",
            id.as_str(),
            "echo",
            "ran-after-resume",
        ])
        .spawn();
    let exec = std::thread::spawn(move || exec.wait());
    wait_until("the exec'd process joins the frozen cgroup", || {
        exec.is_finished() || cgroupfs::procs(&freezer).len() > 1
    });
    rt.exec(["resume", id.as_str()]).ok();
    let out = exec.join().expect("exec thread");
    assert_eq!(out.ok().out(), "ran-after-resume");
    assert_eq!(rt.status(&id), "running");
    finish(&rt, &b, &id);
}

#[test]
fn exec_preserve_fds_passes_fd_3() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    let (r, w) = nix::unistd::pipe().expect("pipe");
    rt.cmd(["exec", "--preserve-fds", "1", id.as_str()])
        .args(["sh", "-c", "echo via-fd-3 >&3"])
        .pass_fd(w)
        .output()
        .ok();
    let text = std::io::read_to_string(std::fs::File::from(r)).unwrap();
    assert_eq!(text.trim(), "via-fd-3");

    // Without --preserve-fds the same descriptor does not reach the process.
    let (_r, w) = nix::unistd::pipe().expect("pipe");
    let out = rt
        .cmd(["exec", id.as_str()])
        .args(["sh", "-c", "readlink /proc/$$/fd/3 || echo none"])
        .pass_fd(w)
        .output();
    assert_eq!(
        out.ok().out(),
        "none",
        "fd 3 leaked into the exec'd process"
    );
    finish(&rt, &b, &id);
}

#[test]
fn ps_lists_the_init_and_exec_processes() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    let exec_pid = exec_detached(&rt, &id, "exec.pid", &["sleep", "997"]);

    let table = rt.exec(["ps", id.as_str()]);
    let mut lines = table.ok().stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    let col = header
        .iter()
        .position(|h| *h == "PID")
        .unwrap_or_else(|| panic!("no PID column: {table}"));
    let pids: Vec<i32> = lines
        .filter_map(|l| l.split_whitespace().nth(col)?.parse().ok())
        .collect();
    assert!(pids.contains(&init), "{table}");
    assert!(pids.contains(&exec_pid), "{table}");

    let json = rt.exec(["ps", "--format", "json", id.as_str()]);
    let v: serde_json::Value =
        serde_json::from_str(json.ok().out()).unwrap_or_else(|e| panic!("ps json ({e}): {json}"));
    let mut listed: Vec<i64> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {json}"))
        .iter()
        .map(|p| p.as_i64().expect("pids are numbers"))
        .collect();
    listed.sort();
    let mut want = vec![i64::from(init), i64::from(exec_pid)];
    want.sort();
    assert_eq!(listed, want, "{json}");

    // Arguments after the id go to ps(1).
    let custom = rt.exec(["ps", id.as_str(), "-o", "pid,args"]);
    assert!(
        custom
            .ok()
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [&*exec_pid.to_string(), "sleep", "997"]),
        "{custom}"
    );
    finish(&rt, &b, &id);
}

#[test]
fn kill_all_reaches_exec_processes() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    let exec_pid = exec_detached(&rt, &id, "exec.pid", &["sleep", "996"]);
    assert!(alive(exec_pid));
    rt.exec(["kill", "--all", id.as_str(), "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    wait_until("the exec'd process dies", || !alive(exec_pid));
    assert!(!alive(init));
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// Twenty execs in a row and ten at once: each one's output and status arrive, each process
/// starts with only stdio open (nothing of the runtime leaks in), and afterwards the container
/// holds its init alone, with no zombie and no descriptor more than before.
#[test]
fn many_execs_in_a_row_and_at_once_leak_nothing() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    let fd_count = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let init_fds = fd_count(init);
    for i in 0..20 {
        let out = rt.exec([
            "exec",
            id.as_str(),
            "sh",
            "-c",
            &format!("ls /proc/self/fd | tr '\\n' ' '; exit {}", i % 4),
        ]);
        assert_eq!(out.code(), i % 4, "{out}");
        // ls's own directory fd is the 3.
        assert_eq!(out.out().trim_end(), "0 1 2 3", "exec {i}: {out}");
    }
    let handles: Vec<_> = (0..10)
        .map(|i| {
            rt.cmd(["exec", id.as_str(), "sh", "-c"])
                .arg(format!("echo at-once-{i}"))
                .spawn()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.wait();
        out.ok();
        assert_eq!(out.out(), format!("at-once-{i}"));
    }
    let procs: Vec<i32> = rt
        .exec(["ps", "--format", "json", id.as_str()])
        .ok()
        .stdout
        .parse::<serde_json::Value>()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap() as i32)
                .collect()
        })
        .unwrap();
    assert_eq!(procs, [init], "processes left in the container");
    assert_eq!(fd_count(init), init_fds, "the init's descriptors changed");
    finish(&rt, &b, &id);
}

#[test]
fn exec_into_a_sub_cgroup_is_refused_not_ignored() {
    if !integration_tests::only_hull("runc 1.1 implements exec --cgroup") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, _) = running(&rt, &b);
    rt.exec(["exec", "--cgroup", "sub", id.as_str(), "true"])
        .failed()
        .stderr_has(&["--cgroup", "not supported"]);
    finish(&rt, &b, &id);
}

/// `exec [flags] <id> grep -E '<keys>' /proc/self/status`: the exec'd process's view of itself.
fn exec_status(rt: &Runtime, id: &str, flags: &[&str], keys: &str) -> String {
    let out = rt
        .cmd(["exec"])
        .args(flags)
        .arg(id)
        .args(["grep", "-E", keys, "/proc/self/status"])
        .output();
    out.ok().out().to_string()
}

#[test]
fn exec_cap_adds_to_bounding_effective_permitted_and_ambient_where_inheritable() {
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    // CAP_NET_RAW (bit 13, 0x2000) is inheritable but not otherwise held: the one case in which
    // an ambient capability survives the execve of a non-root user.
    b.push("/process/capabilities/bounding", json!("CAP_NET_RAW"))
        .set("/process/capabilities/inheritable", json!(["CAP_NET_RAW"]));
    let (id, _) = running(&rt, &b);
    let caps = "^Cap(Eff|Prm|Bnd|Amb)";
    let bits = |s: &str, key: &str| u64::from_str_radix(status_field(s, key), 16).unwrap();

    // Root: CAP_SYS_PTRACE (bit 19) joins bounding, permitted and effective.
    let root = exec_status(&rt, &id, &["--cap", "CAP_SYS_PTRACE"], caps);
    for key in ["CapBnd", "CapPrm", "CapEff"] {
        assert_ne!(
            bits(&root, key) & 1 << 19,
            0,
            "{key} lacks CAP_SYS_PTRACE: {root}"
        );
    }
    let plain = exec_status(&rt, &id, &[], caps);
    assert_eq!(bits(&plain, "CapBnd") & 1 << 19, 0, "{plain}");

    // A non-root user keeps it only through ambient, which needs it inheritable.
    let user = exec_status(&rt, &id, &["-u", "1000", "--cap", "CAP_NET_RAW"], caps);
    assert_eq!(bits(&user, "CapAmb"), 0x2000, "{user}");
    assert_eq!(bits(&user, "CapEff"), 0x2000, "{user}");
    let user = exec_status(&rt, &id, &["-u", "1000"], caps);
    assert_eq!(bits(&user, "CapAmb"), 0, "{user}");
    assert_eq!(bits(&user, "CapEff"), 0, "{user}");
    // Not inheritable: runc's ambient entry is dropped by the kernel, the user has none of it.
    let user = exec_status(&rt, &id, &["-u", "1000", "--cap", "CAP_SYS_PTRACE"], caps);
    assert_eq!(bits(&user, "CapAmb"), 0, "{user}");
    assert_eq!(bits(&user, "CapEff"), 0, "{user}");
    assert_ne!(bits(&user, "CapBnd") & 1 << 19, 0, "{user}");
    finish(&rt, &b, &id);
}

#[test]
fn exec_additional_gids_and_no_new_privs_flags() {
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    b.set("/process/noNewPrivileges", json!(false));
    let (id, _) = running(&rt, &b);
    let keys = "^(Groups|NoNewPrivs):";
    let out = exec_status(&rt, &id, &["-u", "1000:1000", "-g", "20", "-g", "10"], keys);
    assert_eq!(status_field(&out, "Groups"), "10 20", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    let out = exec_status(&rt, &id, &["-u", "1000:1000"], keys);
    assert_eq!(status_field(&out, "Groups"), "", "{out}");
    let out = exec_status(&rt, &id, &["--no-new-privs"], keys);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    finish(&rt, &b, &id);
}

#[test]
fn exec_process_json_rlimits_reach_the_process() {
    if integration_tests::runtime::systemd_cgroup()
        && !integration_tests::only_hull(
            "runc 1.1.5 in the systemd guest gives the exec'd process a nofile soft limit equal \
             to the hard one (seen in both hierarchies; not systemd-cgroup specific)",
        )
    {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let (id, init) = running(&rt, &b);
    let process = json!({
        "args": ["/bin/cat", "/proc/self/limits"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
            {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192}
        ]
    });
    let path = rt.scratch().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let out = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    assert_eq!(
        limit(out.ok().out(), "Max open files"),
        ["123", "456"],
        "{out}"
    );
    assert_eq!(
        limit(out.out(), "Max core file size"),
        ["4096", "8192"],
        "{out}"
    );
    // The init keeps its own.
    let init_limits = std::fs::read_to_string(format!("/proc/{init}/limits")).unwrap();
    assert_ne!(limit(&init_limits, "Max open files"), ["123", "456"]);
    finish(&rt, &b, &id);
}

#[test]
fn exec_runs_under_the_containers_seccomp_filter() {
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let (id, _) = running(&rt, &b);
    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?; \
         echo still-running",
    ]);
    let text = out.ok().out();
    assert_eq!(status_field(text, "Seccomp"), "2", "{out}");
    assert!(
        text.contains("Operation not permitted") && text.contains("rc=1"),
        "{out}"
    );
    // EPERM, not the read-only rootfs's EROFS: the filter answered first.
    assert!(text.ends_with("still-running"), "{out}");
    finish(&rt, &b, &id);
}

/// Rewrites the container's state.json through `f`, as another writer of the state could.
fn edit_state(rt: &Runtime, id: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = rt.root().join(id).join("state.json");
    let text = std::fs::read(&path).expect("read state.json");
    let mut record: Value = serde_json::from_slice(&text).expect("parse state.json");
    f(record.as_object_mut().expect("state.json is an object"));
    std::fs::write(&path, record.to_string()).expect("write state.json");
}

#[test]
fn exec_loads_the_filter_create_compiled_and_compiles_again_without_it() {
    if !integration_tests::only_hull("hull's state directory") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let (id, _) = running(&rt, &b);
    // The profile in the record now differs from the program create compiled: which one exec
    // loads shows in mkdir's error (EPERM from the filter, EROFS from the read-only rootfs).
    edit_state(&rt, &id, |record| {
        record["seccomp"]["syscalls"][0]["names"] = json!(["rmdir"]);
    });
    let mkdir = ["exec", id.as_str(), "sh", "-c", "mkdir /x 2>&1; true"];
    let out = rt.exec(mkdir);
    assert!(out.ok().out().contains("Operation not permitted"), "{out}");
    // A kept program that is not one this hull wrote is not loaded: the record's profile is
    // compiled instead.
    let kept = rt.root().join(&id).join("seccomp.bpf");
    let mut bytes = std::fs::read(&kept).expect("create keeps the compiled filter");
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&kept, bytes).expect("write seccomp.bpf");
    let out = rt.exec(mkdir);
    assert!(out.ok().out().contains("Read-only file system"), "{out}");
    finish(&rt, &b, &id);
}

#[test]
fn exec_into_a_user_namespace_sees_the_inits_id_maps() {
    if integration_tests::runtime::systemd_cgroup()
        && !integration_tests::only_hull(
            "runc 1.1.5 fails this create in the systemd guest (EACCES binding the rootfs in \
             the user namespace; not understood yet)",
        )
    {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    b.user_namespace();
    let (id, init) = running(&rt, &b);
    let out = rt.exec([
        "exec",
        "-u",
        "7:8",
        id.as_str(),
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g",
    ]);
    let text = out.ok().out();
    let parts: Vec<&str> = text.split("--\n").collect();
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{init}/{f}")).unwrap();
    assert_eq!(parts[0], read("uid_map"), "{out}");
    assert_eq!(parts[1], read("gid_map"), "{out}");
    assert_eq!(parts[2].trim(), "7\n8", "{out}");
    // Seen from the host, the process runs as the mapped ids.
    let pid = exec_detached(&rt, &id, "exec.pid", &["sleep", "1000"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "Uid").split_whitespace().next(),
        Some("100000")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/user")).unwrap()
    );
    finish(&rt, &b, &id);
}

/// process.execCPUAffinity (config.md): `final` is the exec'd process's affinity once it is in
/// the container's cgroup, from the config's process (exec's default) and from --process; the
/// init is left alone ("not applicable to the container's init process"); a CPU the host cannot
/// run on fails the exec, naming the field.
#[test]
fn exec_cpu_affinity_initial_and_final() {
    if !integration_tests::only_hull("runc 1.1.5 predates execCPUAffinity (runc 1.2 has it)") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: needs two CPUs to tell an affinity from the default");
        return;
    }
    let last = (cpus - 1).to_string();
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    b.set(
        "/process/execCPUAffinity",
        json!({"initial": "0", "final": last}),
    );
    let (id, _) = running(&rt, &b);
    let allowed = |out: &integration_tests::Output| {
        status_field(&out.ok().stdout, "Cpus_allowed_list").to_string()
    };
    let host = status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "Cpus_allowed_list",
    )
    .to_string();
    let init = rt.exec(["exec", &id, "cat", "/proc/1/status"]);
    assert_eq!(allowed(&init), host, "the init keeps its affinity: {init}");
    let from_config = rt.exec(["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(allowed(&from_config), last, "{from_config}");

    let process = json!({
        "args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "execCPUAffinity": {"initial": last, "final": "0"}
    });
    let path = rt.scratch().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let out = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    assert_eq!(allowed(&out), "0", "{out}");

    let offline = json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "execCPUAffinity": {"final": (cpus + 64).to_string()}
    });
    std::fs::write(&path, offline.to_string()).unwrap();
    let out = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    assert!(!out.success(), "exec on a CPU the host lacks ran: {out}");
    if integration_tests::runtime::is_hull() {
        out.stderr_has(&["execCPUAffinity.final"]);
    }
    finish(&rt, &b, &id);
}
