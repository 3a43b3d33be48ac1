//! Cgroups: `linux.resources` read back from the container's cgroup files and felt inside it,
//! `cgroupsPath`, `update`, `events --stats`, `pause`/`resume`, bad resource values, and no
//! cgroup left after delete. The cgroup directories are found from the init's
//! /proc/<pid>/cgroup, so they may lie nested under the test runner's own cgroup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::tmp::unique;
use integration_tests::{cgroupfs, Bundle, Runtime};
use serde_json::{json, Value};

/// Polls `cond` every 10 ms; panics with `what` after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A cgroup name unique on the host (cgroups are host-wide, tests run in parallel).
fn unique_cgroup_name() -> String {
    format!("hull-test-{}-{:04}", std::process::id(), unique())
}

/// `sleep 1000` with these resources on top of the default config's (the device rules). On v2
/// the container gets a cgroup namespace: without one its cgroup2 mount shows the hierarchy's
/// root (as with runc), with one its own cgroup's files, which the tests read from inside.
fn limited(resources: Value) -> Bundle {
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    if cgroupfs::is_v2() {
        b.push("/linux/namespaces", json!({"type": "cgroup"}));
    }
    for (k, v) in resources.as_object().expect("resources object") {
        b.set(&format!("/linux/resources/{k}"), v.clone());
    }
    b
}

/// Creates and starts a container; returns its id, init pid and every cgroup directory of it.
fn running(rt: &Runtime, b: &Bundle) -> (String, i32, Vec<PathBuf>) {
    let id = rt.new_id();
    rt.create(b, &id).ok();
    rt.start(&id).ok();
    let pid = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    let dirs = cgroupfs::dirs(pid).into_iter().map(|(_, d)| d).collect();
    (id, pid, dirs)
}

/// `exec <id> sh -c <script>`, which must succeed; its stdout.
fn sh(rt: &Runtime, id: &str, script: &str) -> String {
    rt.exec(["exec", id, "sh", "-c", script])
        .ok()
        .out()
        .to_string()
}

/// Deletes the container and checks nothing is left, its cgroups included.
fn finish(rt: &Runtime, b: &Bundle, id: &str, dirs: &[PathBuf], names: &[&str]) {
    rt.delete_force(id).ok();
    rt.assert_no_leaks(b, &[id]);
    let mut names = names.to_vec();
    names.push(id);
    cgroupfs::assert_removed(dirs, &names);
}

#[test]
fn default_cgroup_is_the_id_under_the_callers_cgroup() {
    let rt = Runtime::new();
    let b = limited(json!({}));
    let (id, init, dirs) = running(&rt, &b);
    let mine = procfs::process::Process::myself()
        .unwrap()
        .cgroups()
        .unwrap();
    let theirs = procfs::process::Process::new(init)
        .unwrap()
        .cgroups()
        .unwrap();
    for g in &theirs {
        let parent = mine
            .0
            .iter()
            .find(|m| m.hierarchy == g.hierarchy)
            .expect("same hierarchies");
        assert_eq!(
            Path::new(&g.pathname),
            Path::new(&parent.pathname).join(&id),
            "{:?} cgroup",
            g.controllers
        );
    }
    assert!(dirs.iter().all(|d| d.is_dir()));
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn absolute_cgroups_path_places_the_cgroup_there() {
    let rt = Runtime::new();
    let name = unique_cgroup_name();
    let mut b = limited(json!({}));
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    let (id, init, dirs) = running(&rt, &b);
    let groups = procfs::process::Process::new(init)
        .unwrap()
        .cgroups()
        .unwrap();
    for g in &groups {
        assert_eq!(g.pathname, format!("/{name}"), "{:?} cgroup", g.controllers);
    }
    assert_eq!(cgroupfs::dirs_named(&name).len(), dirs.len());
    finish(&rt, &b, &id, &dirs, &[&name]);
}

#[test]
fn memory_limit() {
    let rt = Runtime::new();
    let b = limited(json!({"memory": {"limit": 32 << 20}}));
    let (id, init, dirs) = running(&rt, &b);
    let limit = ("memory", "memory.limit_in_bytes");
    assert_eq!(
        cgroupfs::value(&cgroupfs::knob(init, limit, "memory.max")),
        "33554432"
    );
    assert_eq!(
        sh(
            &rt,
            &id,
            &format!("cat {}", cgroupfs::knob_inside(limit, "memory.max"))
        ),
        "33554432"
    );
    // dd holds one block in memory: 8M fits, 64M cannot (no swap here) and is OOM-killed.
    let out = sh(
        &rt,
        &id,
        "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null; echo small=$?; \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo big=$?",
    );
    assert_eq!(out, "small=0\nbig=137");
    if cgroupfs::is_v2() {
        let events = cgroupfs::value(&cgroupfs::knob(init, limit, "memory.events"));
        assert!(events.lines().any(|l| l == "oom_kill 1"), "{events}");
    } else {
        assert_ne!(
            cgroupfs::read(&cgroupfs::dir(init, "memory"), "memory.failcnt"),
            "0"
        );
    }
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn cpu_shares_quota_and_period() {
    let rt = Runtime::new();
    let b = limited(json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}));
    let (id, init, dirs) = running(&rt, &b);
    if cgroupfs::is_v2() {
        // runc's conversion of shares (2..262144) to cpu.weight (1..10000): 512 -> 20, the
        // value runc 1.1.5 writes on the same guest.
        let cpu = cgroupfs::dir(init, "");
        assert_eq!(cgroupfs::read(&cpu, "cpu.weight"), "20");
        assert_eq!(cgroupfs::read(&cpu, "cpu.max"), "50000 100000");
        assert_eq!(
            sh(
                &rt,
                &id,
                "cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpu.max"
            ),
            "20\n50000 100000"
        );
    } else {
        let cpu = cgroupfs::dir(init, "cpu");
        assert_eq!(cgroupfs::read(&cpu, "cpu.shares"), "512");
        assert_eq!(cgroupfs::read(&cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroupfs::read(&cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(
            sh(
                &rt,
                &id,
                "cd /sys/fs/cgroup/cpu && cat cpu.shares cpu.cfs_quota_us cpu.cfs_period_us"
            ),
            "512\n50000\n100000"
        );
    }
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let rt = Runtime::new();
    let b = limited(json!({"pids": {"limit": 10}}));
    let (id, init, dirs) = running(&rt, &b);
    let max = ("pids", "pids.max");
    assert_eq!(
        cgroupfs::value(&cgroupfs::knob(init, max, "pids.max")),
        "10"
    );
    assert_eq!(
        sh(
            &rt,
            &id,
            &format!("cat {}", cgroupfs::knob_inside(max, "pids.max"))
        ),
        "10"
    );
    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "i=0; while [ $i -lt 20 ]; do sleep 1000 & i=$((i+1)); done; echo forked-all",
    ]);
    assert!(!out.stdout.contains("forked-all"), "{out}");
    out.stderr_has(&["resource temporarily unavailable"]);
    let current: u32 = cgroupfs::value(&cgroupfs::knob(
        init,
        ("pids", "pids.current"),
        "pids.current",
    ))
    .parse()
    .unwrap();
    assert!(current <= 10, "pids.current {current} above the limit");
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn cpuset_cpus() {
    let rt = Runtime::new();
    let b = limited(json!({"cpu": {"cpus": "0", "mems": "0"}}));
    let (id, init, dirs) = running(&rt, &b);
    for file in ["cpuset.cpus", "cpuset.mems"] {
        assert_eq!(
            cgroupfs::value(&cgroupfs::knob(init, ("cpuset", file), file)),
            "0"
        );
    }
    assert_eq!(
        sh(&rt, &id, "grep Cpus_allowed_list /proc/self/status"),
        "Cpus_allowed_list:\t0"
    );
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn device_rules_allow_and_deny() {
    let rt = Runtime::new();
    // /dev/fuse's numbers: in no runtime's default allow list (runc re-allows /dev/null and the
    // other default devices after the config's rules), harmless to open.
    let b = limited(json!({}));
    let node = b.rootfs().join("fuse-node");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(10, 229),
    )
    .expect("mknod");
    let mut b = b;
    b.push(
        "/linux/resources/devices",
        json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}),
    )
    .push(
        "/linux/resources/devices",
        json!({"allow": false, "type": "c", "major": 10, "minor": 229, "access": "w"}),
    );
    let (id, init, dirs) = running(&rt, &b);
    // v1 shows the rules; v2 has only the eBPF program, so there the effect below is the test.
    if !cgroupfs::is_v2() {
        let list = cgroupfs::read(&cgroupfs::dir(init, "devices"), "devices.list");
        assert!(list.lines().any(|l| l == "c 10:229 r"), "{list}");
    }
    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "true < /fuse-node && echo read-ok; true > /fuse-node && echo write-ok; \
         echo x > /dev/null && echo null-ok",
    ]);
    assert_eq!(out.out(), "read-ok\nnull-ok", "{out}");
    out.stderr_has(&["/fuse-node", "operation not permitted"]);
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn update_changes_the_limits_live() {
    let rt = Runtime::new();
    let b = limited(json!({}));
    let (id, init, dirs) = running(&rt, &b);
    let memory = cgroupfs::knob(init, ("memory", "memory.limit_in_bytes"), "memory.max");
    let pids = cgroupfs::knob(init, ("pids", "pids.max"), "pids.max");
    let cpu = cgroupfs::knob(init, ("cpu", "cpu.shares"), "cpu.weight");
    rt.exec([
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        id.as_str(),
    ])
    .ok();
    assert_eq!(cgroupfs::value(&memory), "67108864");
    assert_eq!(cgroupfs::value(&pids), "50");
    let inside = cgroupfs::knob_inside(("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(sh(&rt, &id, &format!("cat {inside}")), "67108864");

    // -r FILE, and -r - (LinuxResources on stdin, as containerd's CRI plugin passes them).
    let file = rt.scratch().join("resources.json");
    std::fs::write(
        &file,
        json!({"memory": {"limit": 32 << 20}, "cpu": {"shares": 300}}).to_string(),
    )
    .unwrap();
    rt.cmd(["update", "-r"]).arg(&file).arg(&id).output().ok();
    rt.cmd(["update", "-r", "-"])
        .last(&id)
        .stdin(json!({"pids": {"limit": 40}}).to_string().as_bytes())
        .output()
        .ok();
    assert_eq!(cgroupfs::value(&memory), "33554432");
    // v2: runc's shares-to-weight conversion, 300 -> 12.
    let weight = if cgroupfs::is_v2() { "12" } else { "300" };
    assert_eq!(cgroupfs::value(&cpu), weight);
    assert_eq!(cgroupfs::value(&pids), "40");
    // runc's flag name; containerd's older shims spell it --cpu-shares.
    for flag in ["--cpu-share", "--cpu-shares"] {
        rt.exec(["update", flag, "400", id.as_str()]).ok();
        let want = if cgroupfs::is_v2() { "16" } else { "400" };
        assert_eq!(cgroupfs::value(&cpu), want, "{flag}");
        rt.exec(["update", "--cpu-share", "300", id.as_str()]).ok();
    }

    if !cgroupfs::is_v2() {
        // v1 refuses a limit below the usage, and the old one stays (v2 takes it and lets the
        // OOM killer act, for runc as for hull).
        rt.exec(["update", "--memory", "4096", id.as_str()])
            .failed()
            .stderr_has(&["unable to set memory limit to 4096"]);
        assert_eq!(cgroupfs::value(&memory), "33554432");
    }
    assert_eq!(rt.status(&id), "running");
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn events_stats_prints_one_json_line() {
    let rt = Runtime::new();
    let b = limited(json!({}));
    let (id, _, dirs) = running(&rt, &b);
    let out = rt.exec(["events", "--stats", id.as_str()]);
    let lines: Vec<&str> = out.ok().out().lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(v["type"], "stats", "{out}");
    assert_eq!(v["id"], id.as_str(), "{out}");
    assert!(
        v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "{out}"
    );
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{out}"
    );
    assert!(
        v["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{out}"
    );
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777"]}),
    )
    .sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done");
    let (id, init, dirs) = running(&rt, &b);
    let count_file = format!("/proc/{init}/root/tmp/count");
    let count = || -> u64 {
        std::fs::read_to_string(&count_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until("the counter starts", || count() >= 3);
    let freezer = cgroupfs::knob(init, ("freezer", "freezer.state"), "cgroup.freeze");
    let (frozen, thawed) = if cgroupfs::is_v2() {
        ("1", "0")
    } else {
        ("FROZEN", "THAWED")
    };

    rt.exec(["pause", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "paused");
    assert_eq!(cgroupfs::value(&freezer), frozen);
    let raw = || std::fs::read_to_string(&count_file).unwrap_or_default();
    let frozen_at = raw();
    std::thread::sleep(Duration::from_millis(300)); // ~30 turns of the loop
    assert_eq!(raw(), frozen_at, "the counter advanced while paused");
    rt.exec(["resume", id.as_str()]).ok();

    assert_eq!(rt.status(&id), "running");
    assert_eq!(cgroupfs::value(&freezer), thawed);
    let before = count();
    wait_until("the counter advances after resume", || count() > before);
    rt.exec(["resume", id.as_str()])
        .failed()
        .stderr_has(&["container not paused"]);
    finish(&rt, &b, &id, &dirs, &[]);
}

/// True until `pid` has exited (a zombie counts as exited).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn kill_9_of_a_paused_container_stops_it() {
    // containerd's `ctr task kill -s 9` of a paused task: runc thaws after the SIGKILL, which a
    // frozen process (cgroup v1) takes only once thawed.
    let rt = Runtime::new();
    let b = limited(json!({}));
    let (id, init, dirs) = running(&rt, &b);
    rt.exec(["pause", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "paused");
    rt.kill(&id, "9").ok();
    rt.wait_status(&id, "stopped");
    assert!(!alive(init));
    rt.delete(&id).ok();
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn delete_force_of_a_paused_container() {
    let rt = Runtime::new();
    let b = limited(json!({}));
    let (id, init, dirs) = running(&rt, &b);
    rt.exec(["pause", id.as_str()]).ok();
    let started = Instant::now();
    rt.delete_force(&id).ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delete --force hung"
    );
    assert!(!alive(init));
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn kill_all_after_the_init_exited_reaches_what_is_left() {
    // A container in the host's pid namespace whose init exits leaves its children running in
    // the cgroup; containerd's shim then sends `kill --all <id> 9`, which runc honours for a
    // stopped container whose cgroup still exists.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.without_namespace("pid")
        .set("/root/readonly", json!(false))
        .sh("sleep 1000 & echo $! > /tmp/child.pid; exit 0");
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    let init = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    let dirs: Vec<PathBuf> = cgroupfs::dirs(init).into_iter().map(|(_, d)| d).collect();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    let pid_file = b.rootfs().join("tmp/child.pid");
    wait_until("the child's pid is written", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child), "the child outlives the init");
    rt.exec(["kill", "--all", id.as_str(), "9"]).ok();
    wait_until("the child dies", || !alive(child));
    // Nothing left to signal is no error either.
    rt.exec(["kill", "--all", id.as_str(), "9"]).ok();
    rt.delete(&id).ok();
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn pause_of_a_stopped_container_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(); // args: true
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.exec(["pause", id.as_str()])
        .failed()
        .stderr_has(&["container not running"]);
    rt.exec(["resume", id.as_str()])
        .failed()
        .stderr_has(&["container not paused"]);
    assert_eq!(rt.status(&id), "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// Creates a container with these resources in its own cgroup, which must fail naming `what`
/// and leave nothing behind, no cgroup either.
fn bad_resources(resources: Value, what: &[&str]) {
    let rt = Runtime::new();
    let name = unique_cgroup_name();
    let mut b = limited(resources);
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    let out = rt.create_fails(&b);
    out.stderr_has(what);
    cgroupfs::assert_removed(&[], &[&name]);
}

#[test]
fn cpu_shares_below_the_minimum_fail_create() {
    if cgroupfs::is_v2() {
        // v2 has no such minimum: shares 1 is cpu.weight 1 (runc 1.1.5 overflows converting it
        // and fails with ERANGE; later runc versions write 1, as hull does).
        return;
    }
    bad_resources(
        json!({"cpu": {"shares": 1}}),
        &["the minimum allowed cpu-shares is 2"],
    );
}

#[test]
fn memory_limit_below_the_usage_fails_create() {
    // v1 refuses the limit; v2 takes it and OOM-kills the init, which runc reports in the same
    // words.
    let what = if cgroupfs::is_v2() {
        "container init was OOM-killed"
    } else {
        "unable to set memory limit to 4096"
    };
    bad_resources(json!({"memory": {"limit": 4096}}), &[what]);
}

#[test]
fn cpuset_of_a_missing_cpu_fails_create() {
    bad_resources(json!({"cpu": {"cpus": "1023"}}), &["cpuset.cpus", "1023"]);
}

/// `--systemd-cgroup create`, which must fail and leave nothing of the container behind.
fn systemd_create_fails(rt: &Runtime, cgroups_path: &str) -> integration_tests::Output {
    let mut b = limited(json!({}));
    b.set("/linux/cgroupsPath", json!(cgroups_path));
    let id = rt.new_id();
    let out = rt
        .cmd(["--systemd-cgroup", "create", "--bundle"])
        .arg(b.path())
        .last(&id)
        .output();
    out.failed();
    rt.assert_no_leaks(&b, &[&id]);
    cgroupfs::assert_removed(&[], &[&id]);
    out
}

#[test]
fn systemd_cgroup_paths_are_parsed_then_refused() {
    let rt = Runtime::new();
    // runc's own check and words, before it looks for systemd.
    systemd_create_fails(&rt, "/a/b").stderr_has(&[
        "expected cgroupsPath to be of format",
        "slice:prefix:name",
        "for systemd cgroups, got",
        "/a/b",
    ]);
    let name = unique_cgroup_name();
    let out = systemd_create_fails(&rt, &format!("system.slice:hulltest:{name}"));
    cgroupfs::assert_removed(&[], &[&name, &format!("hulltest-{name}.scope")]);
    if !integration_tests::only_hull(
        "runc 1.1.5 fails with \"systemd not running on this host\" (its driver exists)",
    ) {
        return;
    }
    // The parsed path shows in the refusal, so a wrong reading of it would too.
    out.stderr_has(&[
        "systemd cgroup driver",
        &format!("hulltest-{name}.scope"),
        "system.slice",
        "not supported",
    ]);
    systemd_create_fails(&rt, "machine/x.slice:p:n").stderr_has(&["invalid slice name"]);
}
