//! Docker Engine as a real client: a private dockerd (see `integration_tests::docker`) whose
//! containerd runc shim calls the runtime under test, registered in daemon.json as `hull`.
//! One daemon per test, shared by many scenarios (a daemon costs seconds, a scenario less);
//! each scenario checks its result inside the container or through `docker inspect`, and that
//! its containers leave nothing behind; each test ends by stopping the daemon and checking
//! that nothing of it is left either.

use std::path::Path;

use integration_tests::docker::{
    available, run_scenarios, Docker, Options, Scenario, IMAGE, RUNTIME,
};
use integration_tests::runtime::runtime_binary;
use integration_tests::tmp::unique;

fn name(what: &str) -> String {
    format!("hull-dk-{what}-{}-{}", std::process::id(), unique())
}

/// Runs `script` in a pty of 33 rows and 111 columns, as a user at a terminal runs `docker -t`.
fn in_a_terminal(script: &str) -> (i32, String) {
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 33 cols 111; {script}"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script(1)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

/// `docker run --runtime hull [flags] IMAGE command...`
fn run(d: &Docker, flags: &[&str], command: &[&str]) -> integration_tests::docker::DockerOutput {
    let mut args = vec!["run", "--runtime", RUNTIME];
    args.extend_from_slice(flags);
    args.push(IMAGE);
    args.extend_from_slice(command);
    d.docker(args)
}

/// `docker run --rm` of a shell script; its trimmed stdout (panics unless it exits 0).
fn sh(d: &Docker, flags: &[&str], script: &str) -> String {
    let mut f = vec!["--rm"];
    f.extend_from_slice(flags);
    let out = run(d, &f, &["sh", "-c", script]);
    out.ok();
    out.out().to_string()
}

/// A detached container `n` running `script` (default: waiting for SIGTERM); its full id. The
/// runtime under test made it: its state is in the shim's root.
fn detached(d: &Docker, n: &str, flags: &[&str], script: &str) -> String {
    let mut f = vec!["-d", "--name", n];
    f.extend_from_slice(flags);
    run(d, &f, &["sh", "-c", script]).ok();
    let id = d.id(n);
    assert_eq!(d.inspect(n, "{{.HostConfig.Runtime}}"), RUNTIME);
    assert_runtime_state(d, &id);
    id
}

const WAIT_FOR_TERM: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

/// The runtime under test wrote this container's state: hull's state.json has fields runc's
/// lacks.
fn assert_runtime_state(d: &Docker, id: &str) {
    let path = d.runtime_root().join(id).join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no runtime state at {}: {e}", path.display()));
    if runtime_binary().ends_with("hull") {
        assert!(
            text.contains("\"init_start_time\""),
            "not hull's state: {text}"
        );
    }
}

/// `docker rm -f` of `n`, then the leak check for its id.
fn remove(d: &Docker, n: &str, id: &str) {
    d.docker(["rm", "-f", "-v", n]).ok();
    d.assert_clean(&[id]);
}

fn exec(d: &Docker, args: &[&str]) -> String {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    let out = d.docker(a);
    out.ok();
    out.out().to_string()
}

/// The value of cgroup-v1 file `v1` or cgroup-v2 file `v2` as the container sees it.
fn cgroup_file(v1: &str, v2: &str) -> String {
    format!("cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
}

/// Polls `cond` (what Docker does on its own schedule: healthchecks, restarts) for up to a
/// minute.
fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What the host's freezer says of container `id`: "frozen" or "thawed" (cgroup v1's
/// freezer.state or v2's cgroup.freeze).
fn freezer_state(d: &Docker, id: &str) -> String {
    let rel = d.container_cgroup(id);
    let v1 = Path::new("/sys/fs/cgroup/freezer")
        .join(&rel)
        .join("freezer.state");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return s.trim().to_lowercase();
    }
    let v2 = Path::new("/sys/fs/cgroup").join(&rel).join("cgroup.freeze");
    match std::fs::read_to_string(&v2).as_deref().map(str::trim) {
        Ok("1") => "frozen".into(),
        Ok("0") => "thawed".into(),
        other => panic!("no freezer for {id}: {other:?}"),
    }
}

fn scenario<'a>(name: &'a str, f: impl Fn() + Send + Sync + 'a) -> Scenario<'a> {
    (name, Box::new(f))
}

#[test]
fn docker_runs_containers_through_the_runtime() {
    if !available() {
        return;
    }
    let mut docker = Docker::start(Options::default());
    let d = &docker;
    let scenarios: Vec<Scenario> = vec![
        scenario("run output and exit codes", || {
            let out = run(d, &["--rm"], &["echo", "hello from hull"]);
            out.ok();
            assert_eq!(out.out(), "hello from hull");
            let out = run(d, &["--rm"], &["sh", "-c", "echo to-stderr >&2; exit 7"]);
            assert_eq!(out.code, 7, "{out}");
            assert!(out.stderr.contains("to-stderr"), "{out}");
            // Docker maps "executable file not found" in the runtime's error to 127.
            let out = run(d, &["--rm"], &["no-such-command"]);
            assert_eq!(out.code, 127, "{out}");
            assert!(out.stderr.contains("no-such-command"), "{out}");
            let out = run(d, &["--rm"], &["/etc/passwd"]);
            assert_eq!(out.code, 126, "{out}");
        }),
        scenario("exec plain -i -u -w -e -d and -it", || {
            let n = name("exec");
            let id = detached(d, &n, &["-e", "FOO=bar"], WAIT_FOR_TERM);
            let out = exec(
                d,
                &[
                    "-w",
                    "/tmp",
                    "-e",
                    "X=1",
                    &n,
                    "sh",
                    "-c",
                    "echo $FOO $X $(pwd)",
                ],
            );
            assert_eq!(out, "bar 1 /tmp");
            let out = d.docker(["exec", &n, "sh", "-c", "exit 3"]);
            assert_eq!(out.code, 3, "{out}");
            // Docker reports any exec that fails to start as 126 (runc's too), unlike run's 127.
            let out = d.docker(["exec", &n, "no-such-command"]);
            assert_eq!(out.code, 126, "{out}");
            assert!(out.stdout.contains("executable file not found"), "{out}");
            assert_eq!(
                exec(d, &["-u", "65534:65534", &n, "id"]),
                "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)"
            );
            let mut cmd = d.command();
            cmd.args(["exec", "-i", &n, "sh", "-c", "read x; echo got $x"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = cmd.spawn().expect("docker exec -i");
            std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"piped\n")
                .expect("write stdin");
            let got = child.wait_with_output().expect("docker exec -i");
            assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "got piped");
            exec(
                d,
                &[
                    "-d",
                    &n,
                    "sh",
                    "-c",
                    "echo detached > /tmp/d.tmp; mv /tmp/d.tmp /tmp/d",
                ],
            );
            exec(
                d,
                &[&n, "sh", "-c", "while [ ! -e /tmp/d ]; do sleep 0.05; done"],
            );
            assert_eq!(exec(d, &[&n, "cat", "/tmp/d"]), "detached");
            // The CLI sends the size after the process started: wait for it.
            let (code, out) = in_a_terminal(&format!(
                "{} exec -it {n} sh -c 'tty; test -t 0 && echo stdin-is-a-tty; \
                 until s=$(stty size 2>/dev/null) && [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ]; do sleep 0.05; done; \
                 echo size $s; exit 5'",
                d.shell_prefix()
            ));
            assert_eq!(code, 5, "{out}");
            assert!(out.contains("/dev/pts/"), "{out:?}");
            assert!(out.contains("stdin-is-a-tty"), "{out:?}");
            assert!(out.contains("size 33 111"), "{out:?}");
            remove(d, &n, &id);
        }),
        scenario("run -it tty size, logs and attach", || {
            let (code, out) = in_a_terminal(&format!(
                "{} run --rm -it --runtime {RUNTIME} {IMAGE} sh -c 'tty; \
                 until s=$(stty size 2>/dev/null) && [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ]; do sleep 0.05; done; \
                 echo size $s; exit 4'",
                d.shell_prefix()
            ));
            assert_eq!(code, 4, "{out}");
            assert!(out.contains("/dev/pts/0"), "{out:?}");
            assert!(out.contains("size 33 111"), "{out:?}");
            let n = name("logs");
            let id = detached(
                d,
                &n,
                &["-i"],
                "echo out; echo err >&2; read x; echo got $x",
            );
            let mut cmd = d.command();
            cmd.args(["attach", &n])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = cmd.spawn().expect("docker attach");
            // The CLI ends an attach at the end of its stdin: keep it open until the container
            // answered (and exited, which ends the attach). If the line never arrives, the
            // container is killed after a minute so the test fails instead of hanging.
            let mut stdin = child.stdin.take().expect("stdin");
            std::io::Write::write_all(&mut stdin, b"hello\n").expect("write stdin");
            let (done, watchdog) = std::sync::mpsc::channel::<()>();
            let guard = std::thread::scope(|s| {
                let n = &n;
                s.spawn(move || {
                    if watchdog
                        .recv_timeout(std::time::Duration::from_secs(60))
                        .is_err()
                    {
                        let _ = d.docker(["kill", n]);
                    }
                });
                let mut got = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut got)
                    .expect("read attach");
                let _ = done.send(());
                got
            });
            drop(stdin);
            let _ = child.wait();
            assert!(guard.contains("got hello"), "{guard:?}");
            d.docker(["wait", &n]).ok();
            let logs = d.docker(["logs", &n]);
            logs.ok();
            assert_eq!(logs.stdout, "out\ngot hello\n");
            assert_eq!(logs.stderr, "err\n");
            remove(d, &n, &id);
        }),
        scenario("top stats pause unpause", || {
            let n = name("top");
            let id = detached(d, &n, &[], WAIT_FOR_TERM);
            let top = d.docker(["top", &n]);
            top.ok();
            assert!(top.stdout.contains("trap"), "{top}");
            let stats = d.docker([
                "stats",
                "--no-stream",
                "--format",
                "{{.PIDs}} {{.MemUsage}}",
                &n,
            ]);
            stats.ok();
            let pids: u32 = stats
                .out()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(0);
            assert!(pids >= 1, "{stats}");
            d.docker(["pause", &n]).ok();
            assert_eq!(d.inspect(&n, "{{.State.Status}}"), "paused");
            assert_eq!(freezer_state(d, &id), "frozen");
            d.docker(["unpause", &n]).ok();
            assert_eq!(d.inspect(&n, "{{.State.Status}}"), "running");
            assert_eq!(freezer_state(d, &id), "thawed");
            assert_eq!(exec(d, &[&n, "echo", "alive"]), "alive");
            // Docker stops, kills and removes a paused container (SIGTERM is delivered once
            // it is thawed).
            d.docker(["pause", &n]).ok();
            d.docker(["stop", "-t", "30", &n]).ok();
            assert_eq!(
                d.inspect(&n, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 0"
            );
            d.docker(["start", &n]).ok();
            d.docker(["pause", &n]).ok();
            d.docker(["kill", &n]).ok();
            assert_eq!(
                d.inspect(&n, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 137"
            );
            d.docker(["start", &n]).ok();
            d.docker(["pause", &n]).ok();
            remove(d, &n, &id);
        }),
        scenario("commit cp diff export of a running container", || {
            let n = name("commit");
            let id = detached(d, &n, &[], "echo data > /d; exec sleep 1000");
            exec(
                d,
                &[&n, "sh", "-c", "while [ ! -e /d ]; do sleep 0.05; done"],
            );
            // docker commit pauses the container (through the runtime) while it copies.
            let image = format!("hull-test/{n}");
            d.docker(["commit", &n, &image]).ok();
            assert_eq!(d.inspect(&n, "{{.State.Status}}"), "running");
            let out = d.docker(["run", "--rm", "--runtime", RUNTIME, &image, "cat", "/d"]);
            assert_eq!(out.ok().out(), "data");
            d.docker(["image", "rm", &image]).ok();
            let host = integration_tests::TempDir::new("docker-cp");
            std::fs::write(host.join("in"), "copied-in").expect("write cp source");
            d.docker_cp(&host.join("in"), Path::new(&format!("{n}:/in")));
            assert_eq!(exec(d, &[&n, "cat", "/in"]), "copied-in");
            d.docker_cp(Path::new(&format!("{n}:/d")), &host.join("out"));
            assert_eq!(
                std::fs::read_to_string(host.join("out")).expect("read out"),
                "data\n"
            );
            let diff = d.docker(["diff", &n]);
            assert!(
                diff.ok().stdout.contains("A /in") && diff.stdout.contains("A /d"),
                "{diff}"
            );
            remove(d, &n, &id);
        }),
        scenario("stop -t, kill -s, restart, writable layer, rm -f", || {
            let n = name("stop");
            let id = detached(
                d,
                &n,
                &[],
                "trap 'exit 42' USR1; trap 'exit 0' TERM; while true; do sleep 0.1; done",
            );
            exec(d, &[&n, "sh", "-c", "echo kept > /kept"]);
            d.docker(["stop", "-t", "30", &n]).ok();
            assert_eq!(
                d.inspect(&n, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 0"
            );
            d.docker(["start", &n]).ok();
            assert_eq!(exec(d, &[&n, "cat", "/kept"]), "kept");
            let pid = d.inspect(&n, "{{.State.Pid}}");
            d.docker(["restart", "-t", "30", &n]).ok();
            assert_eq!(d.inspect(&n, "{{.State.Status}}"), "running");
            assert_ne!(d.inspect(&n, "{{.State.Pid}}"), pid);
            assert_eq!(exec(d, &[&n, "cat", "/kept"]), "kept");
            d.docker(["kill", "-s", "USR1", &n]).ok();
            d.docker(["wait", &n]).ok();
            assert_eq!(d.inspect(&n, "{{.State.ExitCode}}"), "42");
            d.docker(["start", &n]).ok();
            d.docker(["rm", "-f", &n]).ok();
            d.assert_clean(&[&id]);
            // A new container from the same image starts from the image, not the old layer.
            assert_eq!(sh(d, &[], "cat /kept 2>/dev/null || echo gone"), "gone");
            // PID 1 without a handler ignores SIGTERM: stop escalates to SIGKILL.
            let n = name("stubborn");
            run(d, &["-d", "--name", &n], &["sleep", "1000"]).ok();
            let id = d.id(&n);
            d.docker(["stop", "-t", "1", &n]).ok();
            assert_eq!(d.inspect(&n, "{{.State.ExitCode}}"), "137");
            remove(d, &n, &id);
        }),
        scenario("volumes, binds, tmpfs, read-only", || {
            let host = integration_tests::TempDir::new("docker-bind");
            std::fs::write(host.join("f"), "from-host").expect("write bind file");
            let vol = name("vol");
            sh(d, &["-v", &format!("{vol}:/v")], "echo shared > /v/x");
            assert_eq!(sh(d, &["-v", &format!("{vol}:/w")], "cat /w/x"), "shared");
            d.docker(["volume", "rm", &vol]).ok();
            let bind = format!("{}:/b", host.path().display());
            assert_eq!(
                sh(d, &["-v", &bind], "cat /b/f; echo c > /b/g"),
                "from-host"
            );
            assert_eq!(
                std::fs::read_to_string(host.join("g")).expect("read g"),
                "c\n"
            );
            let out = sh(
                d,
                &["-v", &format!("{bind}:ro")],
                "echo x > /b/h 2>/dev/null; echo $?",
            );
            assert_eq!(out, "1");
            assert!(!host.join("h").exists());
            let out = sh(
                d,
                &["--tmpfs", "/t:size=1m"],
                "grep ' /t ' /proc/mounts; dd if=/dev/zero of=/t/f bs=1k count=2000 2>/dev/null; \
                 echo written $(wc -c < /t/f)",
            );
            assert!(
                out.contains("tmpfs /t tmpfs rw,") && out.contains("size=1024k"),
                "{out}"
            );
            assert!(out.ends_with("written 1048576"), "{out}");
            let out = sh(
                d,
                &["--read-only"],
                "touch /x 2>/dev/null; echo $?; grep ' / ' /proc/mounts",
            );
            assert!(
                out.starts_with("1\noverlay / overlay ro,")
                    || out.contains(" / ") && out.contains(" ro,"),
                "{out}"
            );
            let n = name("from");
            run(
                d,
                &["--name", &n, "-v", "/data"],
                &["sh", "-c", "echo from > /data/x"],
            )
            .ok();
            let id = d.id(&n);
            assert_eq!(sh(d, &["--volumes-from", &n], "cat /data/x"), "from");
            remove(d, &n, &id);
        }),
        scenario(
            "network none host bridge, -p, container:, pid container:, ipc host",
            || {
                assert_eq!(
                    sh(
                        d,
                        &["--network", "none"],
                        "ls /sys/class/net | tr '\\n' ' '"
                    ),
                    "lo"
                );
                let host_net = std::fs::read_link("/proc/self/ns/net").expect("net ns");
                assert_eq!(
                    sh(d, &["--network", "host"], "readlink /proc/self/ns/net"),
                    host_net.to_string_lossy()
                );
                let addr = sh(d, &[], "ip -o -4 addr show eth0");
                assert!(addr.contains("inet 10.213."), "{addr}");
                let n = name("web");
                let id = detached(
                    d,
                    &n,
                    &["-p", "127.0.0.1::80"],
                    "echo -e 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-the-container' | nc -l -p 80",
                );
                let port = d.docker(["port", &n, "80"]);
                port.ok();
                let hostport = port.out().lines().next().unwrap_or("").to_string();
                let got = integration_tests::clients::run(
                    {
                        let mut c = std::process::Command::new("busybox");
                        c.args(["wget", "-qO-", &format!("http://{hostport}/")]);
                        c
                    },
                    std::time::Duration::from_secs(30),
                );
                assert!(got.stdout.contains("hello-from-the-container"), "{got}");
                remove(d, &n, &id);
                let n = name("netns");
                let id = detached(d, &n, &[], WAIT_FOR_TERM);
                let its_net = exec(d, &[&n, "readlink", "/proc/self/ns/net"]);
                let c = format!("container:{n}");
                assert_eq!(
                    sh(d, &["--network", &c], "readlink /proc/self/ns/net"),
                    its_net
                );
                let ps = sh(d, &["--pid", &c], "ps -o pid,args");
                assert!(ps.contains("1 sh -c trap"), "{ps}");
                let host_ipc = std::fs::read_link("/proc/self/ns/ipc").expect("ipc ns");
                assert_eq!(
                    sh(d, &["--ipc", "host"], "readlink /proc/self/ns/ipc"),
                    host_ipc.to_string_lossy()
                );
                assert_ne!(
                    sh(d, &[], "readlink /proc/self/ns/ipc"),
                    host_ipc.to_string_lossy()
                );
                remove(d, &n, &id);
            },
        ),
        scenario(
            "memory OOM kill, cpus, pids-limit fork bomb, ulimit",
            || {
                let n = name("oom");
                let out = run(
                    d,
                    &["--name", &n, "-m", "32m", "--memory-swap", "32m"],
                    &["sh", "-c", "tail /dev/zero"],
                );
                assert_eq!(out.code, 137, "{out}");
                // containerd's OOM event may reach dockerd after the exit did.
                wait_for(
                    || d.inspect(&n, "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137",
                    "OOMKilled in inspect",
                );
                let id = d.id(&n);
                remove(d, &n, &id);
                let out = sh(
                    d,
                    &["--cpus", "0.5"],
                    &cgroup_file("cpu/cpu.cfs_quota_us", "cpu.max"),
                );
                assert!(out == "50000" || out == "50000 100000", "{out}");
                // A fork bomb stops at the limit and the container stays usable.
                let n = name("pids");
                // An init that never forks: a shell that fails to fork exits, and with it the container.
                let id = detached(d, &n, &["--pids-limit", "20"], "exec tail -f /dev/null");
                let out = d.docker(["exec", &n, "sh", "-c", "while true; do sleep 1000 & done"]);
                assert_ne!(out.code, 0, "{out}");
                assert!(out.stderr.contains("can't fork"), "{out}");
                let current = exec(d, &[&n, "sh", "-c", "read c < /sys/fs/cgroup/pids/pids.current 2>/dev/null || read c < /sys/fs/cgroup/pids.current; echo $c"]);
                let current: u32 = current.parse().unwrap_or(99);
                assert!((15..=20).contains(&current), "{current} processes");
                exec(d, &[&n, "killall", "sleep"]);
                remove(d, &n, &id);
                assert_eq!(
                    sh(d, &["--ulimit", "nofile=123:456"], "ulimit -n; ulimit -Hn"),
                    "123\n456"
                );
            },
        ),
        scenario(
            "caps, no-new-privileges, user, group-add, device, init",
            || {
                let caps = sh(
                    d,
                    &["--cap-drop", "ALL", "--cap-add", "NET_RAW"],
                    "grep -E 'Cap(Eff|Bnd|Prm)' /proc/self/status | cut -f2 | sort -u",
                );
                assert_eq!(caps, "0000000000002000");
                let out = sh(
                    d,
                    &["--cap-drop", "ALL"],
                    "chown 1 /tmp 2>/dev/null; echo $?",
                );
                assert_eq!(out, "1");
                assert_eq!(
                    sh(
                        d,
                        &["--security-opt", "no-new-privileges"],
                        "grep NoNewPrivs /proc/self/status | cut -f2"
                    ),
                    "1"
                );
                assert_eq!(
                    sh(d, &[], "grep NoNewPrivs /proc/self/status | cut -f2"),
                    "0"
                );
                assert_eq!(
                    sh(
                        d,
                        &[
                            "--user",
                            "1000:1000",
                            "--group-add",
                            "50",
                            "--group-add",
                            "60"
                        ],
                        "id"
                    ),
                    "uid=1000 gid=1000 groups=50,60,1000"
                );
                // Read-only access: the device cgroup refuses opening it for writing.
                let dev = sh(
                    d,
                    &["--device", "/dev/fuse:/dev/myfuse:r"],
                    "ls -l /dev/myfuse; (exec 3</dev/myfuse) && echo read-ok; \
                 (exec 4>/dev/myfuse) 2>/dev/null || echo write-refused",
                );
                assert!(dev.starts_with("crw") && dev.contains("10, 229"), "{dev}");
                assert!(dev.ends_with("read-ok\nwrite-refused"), "{dev}");
                let dev = sh(
                    d,
                    &["--device", "/dev/fuse:/dev/myfuse"],
                    "(exec 4>/dev/myfuse) && echo write-ok",
                );
                assert_eq!(dev, "write-ok");
                let out = sh(d, &[], "ls /dev/fuse 2>&1; true");
                assert!(out.contains("No such file"), "{out}");
                let ps = sh(d, &["--init"], "ps -o pid,args");
                assert!(ps.contains("1 /sbin/docker-init -- sh -c ps"), "{ps}");
            },
        ),
        scenario("sysctl, shm-size, cgroupns, seccomp profile", || {
            assert_eq!(
                sh(
                    d,
                    &[
                        "--sysctl",
                        "net.ipv4.ip_forward=1",
                        "--sysctl",
                        "kernel.shm_rmid_forced=1"
                    ],
                    "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced"
                ),
                "1\n1"
            );
            let shm = sh(d, &["--shm-size", "7m"], "df -k /dev/shm | tail -1");
            assert!(shm.split_whitespace().nth(1) == Some("7168"), "{shm}");
            let own = sh(d, &["--cgroupns", "private"], "cat /proc/self/cgroup");
            assert!(own.lines().all(|l| l.ends_with(":/")), "{own}");
            let host = sh(d, &["--cgroupns", "host"], "cat /proc/self/cgroup");
            assert!(host.contains(d.cgroup_parent()), "{host}");
            let dir = integration_tests::TempDir::new("docker-seccomp");
            let profile = dir.join("profile.json");
            std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#).expect("write profile");
            let out = sh(
                d,
                &["--security-opt", &format!("seccomp={}", profile.display())],
                "mkdir /x 2>&1; grep '^Seccomp:' /proc/self/status",
            );
            assert!(
                out.contains("Operation not permitted") && out.ends_with("2"),
                "{out}"
            );
            assert_eq!(sh(d, &[], "mkdir /x && echo made"), "made");
        }),
        scenario("docker update memory cpus pids", || {
            let n = name("update");
            let id = detached(
                d,
                &n,
                &["-m", "128m", "--memory-swap", "128m"],
                WAIT_FOR_TERM,
            );
            d.docker([
                "update",
                "--memory",
                "64m",
                "--memory-swap",
                "64m",
                "--cpus",
                "0.25",
                "--pids-limit",
                "33",
                &n,
            ])
            .ok();
            let inside = exec(
                d,
                &[
                    &n,
                    "sh",
                    "-c",
                    &format!(
                        "{}; {}; {}",
                        cgroup_file("memory/memory.limit_in_bytes", "memory.max"),
                        cgroup_file("cpu/cpu.cfs_quota_us", "cpu.max"),
                        cgroup_file("pids/pids.max", "pids.max")
                    ),
                ],
            );
            let lines: Vec<&str> = inside.lines().collect();
            assert_eq!(lines[0], "67108864", "{inside}");
            assert!(lines[1].starts_with("25000"), "{inside}");
            assert_eq!(lines[2], "33", "{inside}");
            assert_eq!(
                d.inspect(
                    &n,
                    "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
                ),
                "67108864 250000000 33"
            );
            // The new limit holds: 100 MB no longer fits.
            let out = d.docker(["exec", &n, "sh", "-c", "tail /dev/zero"]);
            assert_eq!(out.code, 137, "{out}");
            assert_eq!(exec(d, &[&n, "echo", "alive"]), "alive");
            remove(d, &n, &id);
        }),
        scenario("healthcheck and restart policy", || {
            let n = name("health");
            let id = detached(
                d,
                &n,
                &[
                    "--health-cmd",
                    "test -e /tmp/ok",
                    "--health-interval",
                    "1s",
                    "--health-retries",
                    "1",
                ],
                "while [ ! -e /tmp/go ]; do sleep 0.1; done; touch /tmp/ok; sleep 1000",
            );
            exec(d, &[&n, "touch", "/tmp/go"]);
            wait_for(
                || d.inspect(&n, "{{.State.Health.Status}}") == "healthy",
                "healthy",
            );
            exec(d, &[&n, "rm", "/tmp/ok"]);
            wait_for(
                || d.inspect(&n, "{{.State.Health.Status}}") == "unhealthy",
                "unhealthy",
            );
            remove(d, &n, &id);
            let n = name("restart");
            run(
                d,
                &["-d", "--name", &n, "--restart", "on-failure:2"],
                &["sh", "-c", "echo ran; exit 5"],
            )
            .ok();
            let id = d.id(&n);
            wait_for(
                || d.inspect(&n, "{{.RestartCount}} {{.State.Status}}") == "2 exited",
                "two restarts",
            );
            assert_eq!(d.inspect(&n, "{{.State.ExitCode}}"), "5");
            assert_eq!(d.docker(["logs", &n]).stdout, "ran\nran\nran\n");
            remove(d, &n, &id);
        }),
        scenario("more run options", || {
            assert_eq!(
                sh(
                    d,
                    &["--oom-score-adj", "500"],
                    "cat /proc/self/oom_score_adj"
                ),
                "500"
            );
            assert_eq!(
                sh(
                    d,
                    &["--cpuset-cpus", "0"],
                    &cgroup_file("cpuset/cpuset.cpus", "cpuset.cpus")
                ),
                "0"
            );
            let out = sh(
                d,
                &["--device-cgroup-rule", "c 10:229 rwm"],
                "mknod /dev/f c 10 229 && (exec 3<>/dev/f) && echo opened",
            );
            assert_eq!(out, "opened");
            let out = sh(
                d,
                &[],
                "mknod /dev/f c 10 229 && (exec 3<>/dev/f) 2>/dev/null || echo refused",
            );
            assert_eq!(out, "refused");
            let out = sh(
                d,
                &["--hostname", "hh", "--domainname", "dd.example", "--add-host", "foo:192.0.2.4", "--dns", "192.0.2.53"],
                "hostname; cat /proc/sys/kernel/domainname; grep foo /etc/hosts; grep nameserver /etc/resolv.conf",
            );
            assert_eq!(out, "hh\ndd.example\n192.0.2.4\tfoo\nnameserver 192.0.2.53");
            assert_eq!(sh(d, &["-w", "/does/not/exist"], "pwd"), "/does/not/exist");
            assert_eq!(
                sh(d, &["-u", "1234"], "id; echo $HOME"),
                "uid=1234 gid=0(root) groups=0(root)\n/"
            );
            let out = sh(
                d,
                &[
                    "--mount",
                    "type=tmpfs,destination=/tm,tmpfs-mode=1770,tmpfs-size=2m",
                ],
                "stat -c %a /tm; grep ' /tm ' /proc/mounts",
            );
            assert!(
                out.starts_with("1770\ntmpfs /tm tmpfs") && out.contains("size=2048k"),
                "{out}"
            );
            let host = integration_tests::TempDir::new("docker-file-bind");
            std::fs::write(host.join("one"), "one-file").expect("write file");
            let file = format!("{}:/etc/one:ro", host.join("one").display());
            assert_eq!(
                sh(
                    d,
                    &["-v", &file],
                    "cat /etc/one; echo; grep -c ' /etc/one ' /proc/mounts"
                ),
                "one-file\n1"
            );
            // --stop-signal, and --init passing a stop on to the shell below it.
            for (flags, code) in [
                (vec!["--stop-signal", "USR1"], "9"),
                (vec!["--init", "--stop-signal", "USR1"], "9"),
            ] {
                let n = name("stopsig");
                let id = detached(
                    d,
                    &n,
                    &flags,
                    "trap 'exit 9' USR1; while true; do sleep 0.1; done",
                );
                d.docker(["stop", "-t", "30", &n]).ok();
                assert_eq!(d.inspect(&n, "{{.State.ExitCode}}"), code, "{flags:?}");
                remove(d, &n, &id);
            }
            let n = name("ipcshare");
            let id = detached(d, &n, &["--ipc", "shareable"], WAIT_FOR_TERM);
            let its_ipc = exec(d, &[&n, "readlink", "/proc/self/ns/ipc"]);
            let c = format!("container:{n}");
            assert_eq!(sh(d, &["--ipc", &c], "readlink /proc/self/ns/ipc"), its_ipc);
            remove(d, &n, &id);
        }),
        scenario("20 containers in parallel", || {
            let names: Vec<String> = (0..20).map(|i| name(&format!("par{i}"))).collect();
            let ids: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = names
                    .iter()
                    .map(|n| {
                        s.spawn(move || {
                            run(
                                d,
                                &["-d", "--name", n],
                                &["sh", "-c", &format!("echo {n} > /me; exec sleep 1000")],
                            )
                            .ok();
                            assert_eq!(exec(d, &[n, "cat", "/me"]), *n);
                            d.id(n)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("start in parallel"))
                    .collect()
            });
            std::thread::scope(|s| {
                for n in &names {
                    s.spawn(move || d.docker(["rm", "-f", n]).ok().code);
                }
            });
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            d.assert_clean(&refs);
        }),
    ];
    run_scenarios(3, scenarios);
    d.assert_no_containers();

    // Without --live-restore a dockerd restart stops every container (through the runtime)
    // and starts those with a restart policy again.
    let n = name("always");
    let id = detached(d, &n, &["--restart", "always"], WAIT_FOR_TERM);
    exec(d, &[&n, "touch", "/layer-file"]);
    let pid = d.inspect(&n, "{{.State.Pid}}");
    docker.restart_dockerd();
    let d = &docker;
    wait_for(
        || d.inspect(&n, "{{.State.Status}}") == "running",
        "running again",
    );
    assert_ne!(d.inspect(&n, "{{.State.Pid}}"), pid);
    assert!(
        !Path::new("/proc").join(&pid).exists(),
        "the old init {pid} survived"
    );
    exec(d, &[&n, "test", "-e", "/layer-file"]);
    remove(d, &n, &id);
    d.assert_no_containers();
    docker.shut_down_and_assert_clean();
}

/// A daemon whose default runtime is the one under test (daemon.json `default-runtime`), with
/// `--live-restore`: containers run without `--runtime` and survive a dockerd restart, and the
/// legacy builder's RUN steps go through the runtime.
#[test]
fn default_runtime_live_restore_and_build() {
    if !available() {
        return;
    }
    let mut docker = Docker::start(Options {
        default_runtime: true,
        live_restore: true,
        log_runtime_calls: true,
        ..Options::default()
    });
    let n = name("live");
    docker
        .docker(["run", "-d", "--name", &n, IMAGE, "sh", "-c", WAIT_FOR_TERM])
        .ok();
    let id = docker.id(&n);
    assert_eq!(docker.inspect(&n, "{{.HostConfig.Runtime}}"), RUNTIME);
    assert_runtime_state(&docker, &id);
    exec(&docker, &[&n, "sh", "-c", "echo before > /layer"]);
    let pid = docker.inspect(&n, "{{.State.Pid}}");

    docker.restart_dockerd();
    let d = &docker;
    assert_eq!(
        d.inspect(&n, "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}")
    );
    assert_eq!(exec(d, &[&n, "cat", "/layer"]), "before");
    let (code, out) = in_a_terminal(&format!(
        "{} exec -it {n} sh -c 'tty; test -t 0 && echo stdin-is-a-tty; exit 8'",
        d.shell_prefix()
    ));
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("stdin-is-a-tty"), "{out:?}");
    d.docker(["pause", &n]).ok();
    assert_eq!(d.inspect(&n, "{{.State.Status}}"), "paused");
    d.docker(["unpause", &n]).ok();
    d.docker([
        "update",
        "--memory",
        "48m",
        "--memory-swap",
        "48m",
        "--pids-limit",
        "44",
        &n,
    ])
    .ok();
    let limits = exec(
        d,
        &[
            &n,
            "sh",
            "-c",
            &format!(
                "{}; {}",
                cgroup_file("memory/memory.limit_in_bytes", "memory.max"),
                cgroup_file("pids/pids.max", "pids.max")
            ),
        ],
    );
    assert_eq!(limits, "50331648\n44");
    d.docker(["stop", "-t", "30", &n]).ok();
    assert_eq!(
        d.inspect(&n, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    remove(d, &n, &id);

    // The legacy builder runs each RUN step as a container of the default runtime.
    let ctx = integration_tests::TempDir::new("docker-build");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {IMAGE}\nRUN echo built > /built && grep -c '^Cap' /proc/self/status > /caps\n\
             RUN [\"sh\", \"-c\", \"cat /built > /again\"]\nCMD [\"cat\", \"/again\"]\n"
        ),
    )
    .expect("write Dockerfile");
    let calls_before = d.runtime_calls().len();
    let mut cmd = d.command();
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "hull-test/built"])
        .arg(ctx.path());
    integration_tests::clients::run(cmd, std::time::Duration::from_secs(120)).ok();
    let creates = d.runtime_calls()[calls_before..]
        .iter()
        .filter(|c| c.split_whitespace().any(|w| w == "create"))
        .count();
    assert_eq!(creates, 2, "{:#?}", d.runtime_calls());
    let out = d.docker(["run", "--rm", "hull-test/built"]);
    out.ok();
    assert_eq!(out.out(), "built");
    d.docker(["image", "rm", "hull-test/built"]).ok();
    d.assert_no_containers();
    docker.shut_down_and_assert_clean();
}

/// Appends `nobody:<first>:<count>` to /etc/subuid and /etc/subgid (dockerd's
/// `--userns-remap=nobody:nogroup` maps containers onto that range; Docker refuses to remap
/// root, and its `default` would add a `dockremap` user to the host) and takes the lines out
/// again on drop.
struct SubIdRange {
    line: String,
}

impl SubIdRange {
    fn add(first: u32, count: u32) -> SubIdRange {
        let line = format!("nobody:{first}:{count}");
        for file in ["/etc/subuid", "/etc/subgid"] {
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            std::fs::write(file, text).unwrap_or_else(|e| panic!("write {file}: {e}"));
        }
        SubIdRange { line }
    }
}

impl Drop for SubIdRange {
    fn drop(&mut self) {
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|l| *l != self.line)
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(file, kept);
        }
    }
}

/// `--userns-remap` (with the runtime registered by `--add-runtime`): Docker maps each container's root onto a range of host ids (a user
/// namespace with uid/gid mappings in the config) and chowns the image layers for it.
#[test]
fn userns_remap() {
    if !available() {
        return;
    }
    const FIRST: u32 = 231_072;
    let _ids = SubIdRange::add(FIRST, 65_536);
    let docker = Docker::start(Options {
        userns_remap: Some("nobody:nogroup".into()),
        add_runtime_flag: true,
        ..Options::default()
    });
    let d = &docker;
    let map = format!("0 {FIRST} 65536");
    let squash = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(squash(sh(d, &[], "cat /proc/self/uid_map")), map);
    assert_eq!(squash(sh(d, &[], "cat /proc/self/gid_map")), map);

    let n = name("remap");
    // Outside the base directory: the remapped root must reach it.
    let bind = integration_tests::TempDir::new_top_level("hull-it-docker-remap", 0o777);
    let id = detached(
        d,
        &n,
        &["-v", &format!("{}:/b", bind.path().display()), "-m", "64m"],
        WAIT_FOR_TERM,
    );
    // The container's root is FIRST on the host: its init, and the files it makes.
    let pid: i32 = d.inspect(&n, "{{.State.Pid}}").parse().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&FIRST.to_string())),
        "{status}"
    );
    assert_eq!(exec(d, &[&n, "id", "-u"]), "0");
    assert_eq!(squash(exec(d, &[&n, "cat", "/proc/self/uid_map"])), map);
    exec(
        d,
        &[
            &n,
            "sh",
            "-c",
            "echo x > /b/made-inside; chown 1:1 /b/made-inside",
        ],
    );
    let meta = std::fs::metadata(bind.join("made-inside")).expect("stat made-inside");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (FIRST + 1, FIRST + 1)
    );
    // A host file owned by an unmapped id shows as nobody and cannot be written.
    std::fs::write(bind.join("host-file"), "host").expect("write host file");
    let out = exec(
        d,
        &[
            &n,
            "sh",
            "-c",
            "stat -c '%u %g' /b/host-file; echo y >> /b/host-file 2>/dev/null; echo $?",
        ],
    );
    assert_eq!(out, "65534 65534\n1");
    let limit = exec(
        d,
        &[
            &n,
            "sh",
            "-c",
            &cgroup_file("memory/memory.limit_in_bytes", "memory.max"),
        ],
    );
    assert_eq!(limit, "67108864");
    let out = d.docker(["exec", &n, "sh", "-c", "tail /dev/zero"]);
    assert_eq!(out.code, 137, "{out}");
    let (code, out) = in_a_terminal(&format!(
        "{} exec -it {n} sh -c 'tty; test -t 0 && echo stdin-is-a-tty; exit 6'",
        d.shell_prefix()
    ));
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("/dev/pts/") && out.contains("stdin-is-a-tty"),
        "{out:?}"
    );
    let (code, out) = in_a_terminal(&format!(
        "{} run --rm -it --runtime {RUNTIME} {IMAGE} sh -c 'tty; stat -c %u /dev/pts/0; exit 7'",
        d.shell_prefix()
    ));
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("/dev/pts/0\n0"), "{out:?}");
    remove(d, &n, &id);
    d.assert_no_containers();
    docker.shut_down_and_assert_clean();
}
