//! Cgroups: `linux.resources` read back from the container's cgroup files and felt inside it,
//! `cgroupsPath`, `update`, `events --stats`, `pause`/`resume`, bad resource values, and no
//! cgroup left after delete. The cgroup directories are found from the init's
//! /proc/<pid>/cgroup, so they may lie nested under the test runner's own cgroup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::runtime::{cgroupfs_driver, systemd_cgroup};
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

/// [`limited`], in a cgroup of its own at the absolute cgroupsPath `/<name>`: the bundle and name.
fn limited_at_own_path(resources: Value) -> (Bundle, String) {
    let name = unique_cgroup_name();
    let mut b = limited(resources);
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    (b, name)
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

/// `exec <id> sh -c <script>`, failing or not.
fn exec_sh(rt: &Runtime, id: &str, script: &str) -> integration_tests::Output {
    rt.exec(["exec", id, "sh", "-c", script])
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
    if systemd_cgroup() {
        // No cgroupsPath with --systemd-cgroup: runc's default, the scope <prefix>-<id>.scope in
        // system.slice, with the runtime's name as the prefix.
        let bin = rt.binary().file_name().unwrap().to_string_lossy();
        let names = [
            format!("/system.slice/runc-{id}.scope"),
            format!("/system.slice/{bin}-{id}.scope"),
        ];
        for g in &cgroupfs::mounted_groups(init) {
            assert!(names.contains(&g.pathname), "{g:?} is none of {names:?}");
        }
        finish(&rt, &b, &id, &dirs, &[]);
        return;
    }
    let mine = procfs::process::Process::myself()
        .unwrap()
        .cgroups()
        .unwrap();
    for g in &cgroupfs::mounted_groups(init) {
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
    // The systemd lane's bundle asks for system.slice:hull-it:<name> instead.
    let want = if systemd_cgroup() {
        format!("/system.slice/hull-it-{name}.scope")
    } else {
        format!("/{name}")
    };
    for g in &cgroupfs::mounted_groups(init) {
        assert_eq!(g.pathname, want, "{:?} cgroup", g.controllers);
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
    if systemd_cgroup()
        && !integration_tests::only_hull(
            "with runc 1.1.5's systemd driver the exec of the fork loop never returns (seen in \
             the systemd guest); TasksMax is checked in guest_lanes/systemd.rs",
        )
    {
        return;
    }
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
    // runc 1.1.5 knows only --cpu-share.
    let flags: &[&str] = if integration_tests::runtime::is_hull() {
        &["--cpu-share", "--cpu-shares"]
    } else {
        &["--cpu-share"]
    };
    for &flag in flags {
        rt.exec(["update", flag, "400", id.as_str()]).ok();
        let want = if cgroupfs::is_v2() { "16" } else { "400" };
        assert_eq!(cgroupfs::value(&cpu), want, "{flag}");
        rt.exec(["update", "--cpu-share", "300", id.as_str()]).ok();
    }

    assert_eq!(rt.status(&id), "running");
    if cgroupfs::is_v2() && systemd_cgroup() {
        // Under systemd the OOM kill empties the scope, systemd removes it, and runc 1.1.5's
        // update then fails on the missing unit: what is left to check is the limits above.
    } else if cgroupfs::is_v2() {
        // v2 takes a limit below the usage and lets the OOM killer act (for runc as for hull),
        // so this comes last: the container may not survive it.
        rt.exec(["update", "--memory", "4096", id.as_str()]).ok();
        assert_eq!(cgroupfs::value(&memory), "4096");
    } else {
        // v1 refuses a limit below the usage, and the old one stays.
        rt.exec(["update", "--memory", "4096", id.as_str()])
            .failed()
            .stderr_has(&["unable to set memory limit to 4096"]);
        assert_eq!(cgroupfs::value(&memory), "33554432");
        assert_eq!(rt.status(&id), "running");
    }
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
    let (b, name) = limited_at_own_path(resources);
    let out = rt.create_fails(&b);
    out.stderr_has(what);
    cgroupfs::assert_removed(&[], &[&name]);
}

#[test]
fn cpu_shares_below_the_minimum_fail_create() {
    if cgroupfs::is_v2() {
        // v2 has no such minimum: shares 1 is cpu.weight 1 (runc 1.1.5 overflows converting it
        // and fails with ERANGE; later runc versions write 1, as hull does).
        if !integration_tests::only_hull("runc 1.1.5 fails converting shares 1 to a weight") {
            return;
        }
        let rt = Runtime::new();
        let b = limited(json!({"cpu": {"shares": 1}}));
        let (id, init, dirs) = running(&rt, &b);
        assert_eq!(cgroupfs::read(&cgroupfs::dir(init, ""), "cpu.weight"), "1");
        finish(&rt, &b, &id, &dirs, &[]);
        return;
    }
    // Under systemd, systemd's words: "Value specified in CPUShares is out of range".
    let what = if systemd_cgroup() {
        "cpu"
    } else {
        "the minimum allowed cpu-shares is 2"
    };
    bad_resources(json!({"cpu": {"shares": 1}}), &[what]);
}

#[test]
fn memory_limit_below_the_usage_fails_create() {
    // v1 refuses a limit below the usage; v2 takes it and OOM-kills the init, which runc reports
    // in the same words.
    let what = if systemd_cgroup() && cgroupfs::is_v2() {
        // Under systemd the OOM kill ends the scope with its cgroup, and runc 1.1.5 fails on the
        // missing directory: only the failure and that nothing is left are common ground.
        ""
    } else if systemd_cgroup() && integration_tests::runtime::is_hull() {
        // Under systemd on v1 hull's limit is also a unit property that systemd writes as the
        // scope starts: the init is OOM-killed if it is still below 4096 bytes then, or hull's
        // later file write is refused as runc's is; which one depends on the init's pace.
        ""
    } else if cgroupfs::is_v2() || integration_tests::runtime::is_hull() {
        // hull sets the limit before the init runs a step, so on v1 too the kernel takes it (the
        // cgroup is still empty) and OOM-kills the init; runc 1.1.5 sets it after the init's
        // mounts, when v1 refuses a limit below the usage.
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
fn systemd_cgroup_without_systemd_fails_naming_the_unit_and_leaves_nothing() {
    if !cgroupfs_driver("a host without systemd; guest_lanes/systemd.rs has the systemd host") {
        return;
    }
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
        "runc 1.1.5 fails with \"systemd not running on this host\", naming no unit",
    ) {
        return;
    }
    // This host runs no systemd (and no system bus): the failure names the unit, so a wrong
    // reading of the path would show.
    out.stderr_has(&["systemd", &format!("hulltest-{name}.scope")]);
    systemd_create_fails(&rt, "machine/x.slice:p:n").stderr_has(&["invalid slice name"]);
}

#[test]
fn cpu_burst_and_idle() {
    let rt = Runtime::new();
    if !integration_tests::only_hull("runc 1.1.5 has no cpu burst (it came in runc 1.2)") {
        return;
    }
    let b = limited(json!({"cpu": {"quota": 50000, "period": 100000, "burst": 20000, "idle": 1}}));
    let (id, init, dirs) = running(&rt, &b);
    let burst = ("cpu", "cpu.cfs_burst_us");
    let idle = ("cpu", "cpu.idle");
    assert_eq!(
        cgroupfs::value(&cgroupfs::knob(init, burst, "cpu.max.burst")),
        "20000"
    );
    assert_eq!(
        cgroupfs::value(&cgroupfs::knob(init, idle, "cpu.idle")),
        "1"
    );
    let inside = format!(
        "cat {} {}",
        cgroupfs::knob_inside(burst, "cpu.max.burst"),
        cgroupfs::knob_inside(idle, "cpu.idle")
    );
    assert_eq!(sh(&rt, &id, &inside), "20000\n1");
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn cpu_quota_really_throttles() {
    let rt = Runtime::new();
    let b = limited(json!({"cpu": {"quota": 10000, "period": 100000}}));
    let (id, init, dirs) = running(&rt, &b);
    let stat = cgroupfs::knob(init, ("cpu", "cpu.stat"), "cpu.stat");
    let key = |k: &str| -> u64 {
        let text = cgroupfs::value(&stat);
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    // Starting the container may already have used up a period's 10 ms (a slow guest).
    let before = key("nr_throttled");
    // Ten periods of a busy loop: each one uses up its 10 ms and waits for the next.
    sh(&rt, &id, "(while :; do :; done) & p=$!; sleep 1; kill $p");
    let throttled = key("nr_throttled") - before;
    assert!(
        throttled >= 5,
        "{throttled} more: {}",
        cgroupfs::value(&stat)
    );
    assert!(key("nr_periods") >= key("nr_throttled"));
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn device_filter_denies_what_no_rule_allows() {
    // Every rule check elsewhere touches a device with a rule of its own; this one opens nodes
    // the container makes itself (CAP_MKNOD): mknod is allowed for any device by runc's default
    // `c *:* m` / `b *:* m` rules and by an explicit `m` rule, opening only where a rule says r.
    let rt = Runtime::new();
    let mut b = limited(json!({}));
    for set in ["bounding", "effective", "permitted"] {
        b.push(&format!("/process/capabilities/{set}"), json!("CAP_MKNOD"));
    }
    // c 10:229 has an r rule, c 1:11 (kmsg) only an m rule, b 7:0 (loop0) none at all.
    for (major, minor, access) in [(10, 229, "r"), (1, 11, "m")] {
        let rule =
            json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": access});
        b.push("/linux/resources/devices", rule);
    }
    let (id, _, dirs) = running(&rt, &b);
    let out = rt.exec([
        "exec",
        id.as_str(),
        "sh",
        "-c",
        "for n in 'allowed c 10 229' 'monly c 1 11' 'unlisted b 7 0'; do set -- $n; \
           mknod /dev/t-$1 $2 $3 $4 && echo mknod-$1; done; \
         for n in allowed monly unlisted; do true < /dev/t-$n && echo open-$n; done",
    ]);
    assert_eq!(
        out.out(),
        "mknod-allowed\nmknod-monly\nmknod-unlisted\nopen-allowed",
        "{out}"
    );
    out.stderr_has(&["/dev/t-monly", "/dev/t-unlisted", "operation not permitted"]);
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn realtime_budget() {
    let rt = Runtime::new();
    if cgroupfs::is_v2()
        && systemd_cgroup()
        && !integration_tests::only_hull("runc 1.1.5's systemd driver ignores realtime on v2")
    {
        return;
    }
    if cgroupfs::is_v2() {
        // cgroup v2 has no cpu.rt_* files.
        bad_resources(
            json!({"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}),
            &["realtime"],
        );
        return;
    }
    if !rt_group_sched() {
        eprintln!("skipped: this kernel has no realtime group scheduling (no cpu.rt_runtime_us)");
        return;
    }
    let b = limited(json!({"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 500000}}));
    let (id, init, dirs) = running(&rt, &b);
    let cpu = cgroupfs::dir(init, "cpu");
    assert_eq!(cgroupfs::read(&cpu, "cpu.rt_runtime_us"), "10000");
    assert_eq!(cgroupfs::read(&cpu, "cpu.rt_period_us"), "500000");
    assert_eq!(
        sh(
            &rt,
            &id,
            "cd /sys/fs/cgroup/cpu && cat cpu.rt_runtime_us cpu.rt_period_us"
        ),
        "10000\n500000"
    );
    finish(&rt, &b, &id, &dirs, &[]);
    if !cgroupfs_driver("a parent cgroup made by the runtime: under systemd it is a slice") {
        return;
    }

    // A parent the runtime makes itself has no realtime budget to hand down: the kernel refuses
    // the child's, for runc as for hull.
    let name = unique_cgroup_name();
    let mut b = limited(json!({"cpu": {"realtimeRuntime": 10000}}));
    b.set("/linux/cgroupsPath", json!(format!("/{name}/child")));
    rt.create_fails(&b)
        .stderr_has(&["cpu.rt_runtime_us", "invalid argument"]);
    remove_or_report_parents(&[&name]);
}

/// True when the kernel has realtime group scheduling (v1's cpu.rt_* files; Debian's 6.1 kernel,
/// the guests', has none).
fn rt_group_sched() -> bool {
    Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists()
        || Path::new("/sys/fs/cgroup/cpu,cpuacct/cpu.rt_runtime_us").exists()
}

/// Cgroups named `names` that a runtime left behind: hull must leave none; runc removes only the
/// container's own directory, not the parents it made, so for runc they are cleaned up here.
fn remove_or_report_parents(names: &[&str]) {
    if integration_tests::runtime::is_hull() {
        cgroupfs::assert_removed(&[], names);
        return;
    }
    for n in names {
        let mut left = cgroupfs::dirs_named(n);
        left.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in left {
            let mut all = vec![d.clone()];
            all.extend(walkdir_dirs(&d));
            all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in all {
                let _ = std::fs::remove_dir(&d);
            }
        }
    }
    cgroupfs::assert_removed(&[], names);
}

fn walkdir_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
            out.extend(walkdir_dirs(&e.path()));
        }
    }
    out
}

#[test]
fn nested_cgroups_path_makes_the_parents() {
    if !cgroupfs_driver("nested cgroupfs parents; guest_lanes/systemd.rs checks nested slices") {
        return;
    }
    let rt = Runtime::new();
    let name = unique_cgroup_name();
    let mut b = limited(json!({"pids": {"limit": 20}}));
    b.set("/linux/cgroupsPath", json!(format!("/{name}/a/b")));
    let (id, init, dirs) = running(&rt, &b);
    for g in cgroupfs::mounted_groups(init) {
        assert_eq!(g.pathname, format!("/{name}/a/b"), "{:?}", g.controllers);
    }
    let pids = cgroupfs::controller_dir(init, "pids");
    assert_eq!(cgroupfs::read(&pids, "pids.max"), "20");
    // The parents are plain cgroups the runtime made, each with the container below it.
    let parent = pids.parent().unwrap();
    assert!(parent.ends_with(format!("{name}/a")), "{parent:?}");
    assert_eq!(cgroupfs::read(parent, "pids.max"), "max");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    cgroupfs::assert_removed(&dirs, &[]);
    // Deliberate: hull removes the parents it made, runc 1.1.5 leaves /<name>/a behind.
    remove_or_report_parents(&[&name]);
}

/// The first real block device on this host: (major, minor) from /sys/block, skipping loop,
/// ram and zram devices.
fn block_device() -> (u64, u64) {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("read /sys/block")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    let name = names.first().expect("a block device in /sys/block");
    let dev = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap();
    let (maj, min) = dev.trim().split_once(':').unwrap();
    (maj.parse().unwrap(), min.parse().unwrap())
}

#[test]
fn block_io_throttles() {
    let rt = Runtime::new();
    let (major, minor) = block_device();
    let dev = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
    let b = limited(json!({"blockIO": {
        "throttleReadBpsDevice": dev(1 << 20),
        "throttleWriteBpsDevice": dev(2 << 20),
        "throttleReadIOPSDevice": dev(100),
        "throttleWriteIOPSDevice": dev(200),
    }}));
    let (id, init, dirs) = running(&rt, &b);
    let blkio = cgroupfs::controller_dir(init, "blkio");
    if cgroupfs::is_v2() {
        assert_eq!(
            cgroupfs::read(&blkio, "io.max"),
            format!("{major}:{minor} rbps=1048576 wbps=2097152 riops=100 wiops=200")
        );
    } else {
        for (file, rate) in [
            ("read_bps_device", 1 << 20),
            ("write_bps_device", 2 << 20),
            ("read_iops_device", 100),
            ("write_iops_device", 200),
        ] {
            let file = format!("blkio.throttle.{file}");
            let want = format!("{major}:{minor} {rate}");
            assert_eq!(cgroupfs::read(&blkio, &file), want, "{file}");
            assert_eq!(
                sh(&rt, &id, &format!("cat /sys/fs/cgroup/blkio/{file}")),
                want
            );
        }
    }
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn block_io_weight_at_create_and_update() {
    if cgroupfs::is_v2() {
        // v2's io.weight / io.bfq.weight: cgroup_v2_guest's in_guest_io_weight_and_unified_errors,
        // on its scratch disk.
        return;
    }
    if systemd_cgroup() {
        // runc 1.1.5 and hull both write blkio.bfq.weight there, which the systemd guest's disk
        // (no BFQ scheduler) lacks: both fail create alike.
        eprintln!("skipped with --systemd-cgroup: blkio weight on a disk without BFQ");
        return;
    }
    let Some(file) = blkio_weight_file() else {
        // A kernel with neither CFQ nor BFQ (only none, mq-deadline, kyber): no weight can be
        // set, and create says which field asked for one, leaving nothing behind. runc 1.1.5
        // fails on the missing blkio.bfq.weight.
        let what = if integration_tests::runtime::is_hull() {
            "linux.resources.blockIO.weight"
        } else {
            "blkio.bfq.weight"
        };
        bad_resources(json!({"blockIO": {"weight": 500}}), &[what]);
        return;
    };
    let rt = Runtime::new();
    let b = limited(json!({"blockIO": {"weight": 500}}));
    let (id, init, dirs) = running(&rt, &b);
    let blkio = cgroupfs::dir(init, "blkio");
    assert_eq!(cgroupfs::read(&blkio, file), "500");
    rt.exec(["update", "--blkio-weight", "300", id.as_str()])
        .ok();
    assert_eq!(cgroupfs::read(&blkio, file), "300");
    assert_eq!(
        sh(&rt, &id, &format!("cat /sys/fs/cgroup/blkio/{file}")),
        "300"
    );
    finish(&rt, &b, &id, &dirs, &[]);
}

/// The weight file a v1 blkio cgroup below the root has on this kernel: CFQ's, or BFQ's where
/// the kernel has no CFQ (runc 1.1.5 picks the same file); none without either scheduler. The
/// root shows BFQ's file in no kernel, so a child is made to look.
fn blkio_weight_file() -> Option<&'static str> {
    let probe = Path::new("/sys/fs/cgroup/blkio").join(format!(
        "hull-it-probe-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir(&probe).expect("make a blkio cgroup to look at");
    let file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| probe.join(f).exists());
    std::fs::remove_dir(&probe).expect("remove the blkio probe");
    file
}

#[test]
fn network_and_rdma_need_their_controllers() {
    let have = |c: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(" - cgroup ") && l.split([',', ' ']).any(|o| o == c))
    };
    let network = [
        (json!({"network": {"classID": 1048577}}), "net_cls"),
        (
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
            "net_prio",
        ),
    ];
    if cgroupfs::is_v2() {
        // v2 has neither controller. runc 1.1.5's v2 manager never looks at the fields; hull
        // refuses them rather than ignore them. (rdma exists on v2, so it is no error there.)
        if integration_tests::only_hull("runc 1.1.5 ignores linux.resources.network on v2") {
            for (resources, _) in network {
                bad_resources(
                    resources,
                    &["classID and priorities need the v1 net_cls/net_prio"],
                );
            }
        }
        return;
    }
    let rdma = (json!({"rdma": {"mlx5_0": {"hcaHandles": 3}}}), "rdma");
    let mut checked = 0;
    for (resources, controller) in network.into_iter().chain([rdma]) {
        if have(controller) {
            continue;
        }
        // runc's words: "cannot set net_cls limit: container could not join or create cgroup".
        bad_resources(resources, &[&format!("cannot set {controller} limit")]);
        checked += 1;
    }
    eprintln!("{checked} of 3 controllers missing on this host, their refusal checked");
}

#[test]
fn update_flags_reach_the_cgroup_files() {
    let rt = Runtime::new();
    let b = limited(json!({"memory": {"limit": 64 << 20}}));
    let (id, init, dirs) = running(&rt, &b);
    let update = |flags: &[&str]| {
        let mut args = vec!["update"];
        args.extend_from_slice(flags);
        args.push(&id);
        rt.exec(args)
    };
    let knob = |v1: (&str, &str), v2: &str| cgroupfs::value(&cgroupfs::knob(init, v1, v2));

    // runc 1.1.5's systemd driver checks a swap limit against the update's own memory limit,
    // not the container's, so in the systemd lane the (unchanged) limit is given again.
    let mut flags = vec!["--memory-reservation", "16m", "--memory-swap", "128m"];
    if systemd_cgroup() {
        flags.extend(["--memory", "64m"]);
    }
    update(&flags).ok();
    assert_eq!(
        knob(("memory", "memory.soft_limit_in_bytes"), "memory.low"),
        "16777216"
    );
    if cgroupfs::is_v2() {
        // memory+swap 128m over memory 64m: 64m of swap alone (runc's conversion).
        if cgroupfs::dir(init, "").join("memory.swap.max").exists() {
            assert_eq!(knob(("", ""), "memory.swap.max"), "67108864");
        }
    } else {
        assert_eq!(
            knob(("memory", "memory.memsw.limit_in_bytes"), ""),
            "134217728"
        );
    }
    assert_eq!(
        knob(("memory", "memory.limit_in_bytes"), "memory.max"),
        "67108864"
    );

    update(&["--cpu-quota", "20000", "--cpu-period", "50000"]).ok();
    // A period alone keeps the quota in force.
    update(&["--cpu-period", "40000"]).ok();
    if cgroupfs::is_v2() {
        assert_eq!(knob(("", ""), "cpu.max"), "20000 40000");
    } else {
        assert_eq!(knob(("cpu", "cpu.cfs_quota_us"), ""), "20000");
        assert_eq!(knob(("cpu", "cpu.cfs_period_us"), ""), "40000");
    }

    update(&["--cpuset-cpus", "0", "--cpuset-mems", "0"]).ok();
    assert_eq!(knob(("cpuset", "cpuset.cpus"), "cpuset.cpus"), "0");
    assert_eq!(knob(("cpuset", "cpuset.mems"), "cpuset.mems"), "0");
    assert_eq!(
        sh(&rt, &id, "grep Cpus_allowed_list /proc/self/status"),
        "Cpus_allowed_list:\t0"
    );

    if cgroupfs::is_v2() {
        // No realtime budgets on v2; hull refuses them, and the limits stay as they were.
        if integration_tests::only_hull("runc 1.1.5 ignores --cpu-rt-* on cgroup v2") {
            update(&["--cpu-rt-runtime", "1000"])
                .failed()
                .stderr_has(&["realtime"]);
        }
    } else if rt_group_sched() {
        update(&["--cpu-rt-period", "500000", "--cpu-rt-runtime", "20000"]).ok();
        assert_eq!(knob(("cpu", "cpu.rt_period_us"), ""), "500000");
        assert_eq!(knob(("cpu", "cpu.rt_runtime_us"), ""), "20000");
    }

    assert_eq!(rt.status(&id), "running");
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn events_stats_match_the_cgroup_files() {
    let rt = Runtime::new();
    let b = limited(json!({"memory": {"limit": 32 << 20}, "pids": {"limit": 30}}));
    let (id, init, dirs) = running(&rt, &b);
    // Hit the limit once, so failcnt (v1) and the OOM counters are not zero.
    let dd = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $?";
    assert_eq!(sh(&rt, &id, dd), "137");
    let out = rt.exec(["events", "--stats", id.as_str()]);
    let v: Value = serde_json::from_str(out.ok().out()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let data = &v["data"];
    let num = |p: &str| {
        data.pointer(p)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {p} in {v}"))
    };
    let file = |v1: (&str, &str), v2: &str| -> u64 {
        cgroupfs::value(&cgroupfs::knob(init, v1, v2))
            .parse()
            .unwrap()
    };
    assert_eq!(
        num("/memory/usage/limit"),
        file(("memory", "memory.limit_in_bytes"), "memory.max")
    );
    assert_eq!(num("/memory/usage/limit"), 32 << 20);
    assert_eq!(num("/pids/limit"), file(("pids", "pids.max"), "pids.max"));
    assert_eq!(num("/pids/limit"), 30);
    assert_eq!(
        num("/pids/current"),
        file(("pids", "pids.current"), "pids.current")
    );
    if cgroupfs::is_v2() {
        // v2 has no failcnt; runc 1.1.5 reports 0 there too.
        assert_eq!(num("/memory/usage/failcnt"), 0);
    } else {
        let failcnt = file(("memory", "memory.failcnt"), "");
        assert!(failcnt > 0, "the 64M dd under 32M never failed a charge");
        // It only grows, and the kernel may count more between the two reads.
        assert!(num("/memory/usage/failcnt") <= failcnt && num("/memory/usage/failcnt") > 0);
    }
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn disable_oom_killer() {
    let rt = Runtime::new();
    let b = limited(json!({"memory": {"limit": 32 << 20, "disableOOMKiller": true}}));
    let id = rt.new_id();
    let log = rt.scratch().join(format!("{id}.log"));
    rt.json_log_cmd(&log)
        .args(["create", "--bundle"])
        .arg(b.path())
        .last(&id)
        .output()
        .ok();
    rt.start(&id).ok();
    let init = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    let dirs: Vec<PathBuf> = cgroupfs::dirs(init).into_iter().map(|(_, d)| d).collect();
    let limit = cgroupfs::knob(init, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(cgroupfs::value(&limit), "33554432");
    if cgroupfs::is_v2() {
        // No such knob on v2: taken, as runc 1.1.5 takes it, but hull says so in the log
        // (runc says nothing).
        if integration_tests::only_hull("runc 1.1.5 ignores disableOOMKiller on v2 silently") {
            let warnings = integration_tests::runtime::log_messages(&log, "warning");
            assert!(
                warnings.iter().any(|m| m.contains("disableOOMKiller")),
                "no disableOOMKiller warning in the log: {warnings:?}"
            );
        }
    } else {
        let control = cgroupfs::read(&cgroupfs::dir(init, "memory"), "memory.oom_control");
        assert!(
            control.lines().any(|l| l == "oom_kill_disable 1"),
            "{control}"
        );
    }
    finish(&rt, &b, &id, &dirs, &[]);
}

/// Kubelet's pods share parents (`/kubepods/...`) that concurrent creates make at once: one
/// runtime may find a parent cpuset cgroup another has just made and not yet filled (a new v1
/// cpuset starts with no cpus and no mems). Filling only the directories it made itself, a
/// runtime copied the empty parent into its own cgroup, and joining that failed with ENOSPC (seen
/// with 10 CRI pods started in parallel). Here the parent is made, empty, before the create.
#[test]
fn an_empty_cpuset_parent_made_by_someone_else_is_filled() {
    if !cgroupfs_driver("a cgroupfs parent path; systemd makes its slices itself") {
        return;
    }
    if cgroupfs::is_v2() {
        eprintln!("skipped: v1 cpuset only (v2 cpusets inherit their parent's)");
        return;
    }
    let Some(cpuset) = ["/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/cpuset,cpu"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cpuset.cpus").exists())
    else {
        eprintln!("skipped: no v1 cpuset hierarchy mounted");
        return;
    };
    /// Removes the parent (and anything below it) also when the test fails.
    struct Parent(String);
    impl Drop for Parent {
        fn drop(&mut self) {
            integration_tests::clients::remove_cgroup_tree(&format!("/{}", self.0));
        }
    }
    let rt = Runtime::new();
    let parent = Parent(unique_cgroup_name());
    let parent = &parent.0;
    std::fs::create_dir(cpuset.join(parent)).expect("make the parent cpuset cgroup");
    assert_eq!(cgroupfs::read(&cpuset.join(parent), "cpuset.cpus"), "");
    let mut b = limited(json!({}));
    b.set("/linux/cgroupsPath", json!(format!("/{parent}/pod/ctr")));
    let (id, _init, dirs) = running(&rt, &b);
    for level in [cpuset.join(parent), cpuset.join(parent).join("pod")] {
        assert_ne!(
            cgroupfs::read(&level, "cpuset.cpus"),
            "",
            "{}",
            level.display()
        );
        assert_ne!(
            cgroupfs::read(&level, "cpuset.mems"),
            "",
            "{}",
            level.display()
        );
    }
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    integration_tests::clients::remove_cgroup_tree(&format!("/{parent}"));
    cgroupfs::assert_removed(&dirs, &[parent]);
}

// Resources before the init's setup and before the hooks: the init is placed in its cgroup with
// every limit set before it runs a step; the device rules follow once its mounts are made,
// before the prestart and createRuntime hooks (runc's order).

/// A hook run by the host's busybox sh.
fn sh_hook(script: &str) -> Value {
    json!({
        "path": "/usr/bin/busybox",
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    })
}

/// `file` of the cgroup at the absolute cgroupsPath `/<name>`, in `controller`'s hierarchy (v1)
/// or the unified one (v2), as the host (and a hook before pivot_root) sees it.
fn host_knob(name: &str, controller: &str, v1: &str, v2: &str) -> String {
    if cgroupfs::is_v2() {
        format!("/sys/fs/cgroup/{name}/{v2}")
    } else {
        format!("/sys/fs/cgroup/{controller}/{name}/{v1}")
    }
}

#[test]
fn the_limits_are_set_before_the_create_runtime_and_create_container_hooks() {
    if !cgroupfs_driver("the hooks read the cgroup at the absolute cgroupsPath the test chose") {
        return;
    }
    let rt = Runtime::new();
    let (mut b, name) =
        limited_at_own_path(json!({"pids": {"limit": 64}, "memory": {"limit": 128 << 20}}));
    let log = b.path().join("hooklog");
    std::fs::create_dir(&log).unwrap();
    let pids = host_knob(&name, "pids", "pids.max", "pids.max");
    let memory = host_knob(&name, "memory", "memory.limit_in_bytes", "memory.max");
    let procs = host_knob(&name, "pids", "cgroup.procs", "cgroup.procs");
    // createRuntime runs on the host; createContainer in the container's namespaces and cgroup,
    // before pivot_root (the host's /sys/fs/cgroup still in view): it checks the cgroup is its own
    // ($$ as its pid namespace sees it, as cgroup.procs shows it to it).
    let runtime = format!("cat {pids} {memory} > {}/createRuntime", log.display());
    let container = format!(
        "{{ grep -qx $$ {procs} && echo own-cgroup; cat {pids} {memory}; }} > {}/createContainer",
        log.display()
    );
    b.set(
        "/hooks",
        json!({"createRuntime": [sh_hook(&runtime)], "createContainer": [sh_hook(&container)]}),
    );
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    let init = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    let dirs: Vec<PathBuf> = cgroupfs::dirs(init).into_iter().map(|(_, d)| d).collect();
    let read = |kind: &str| std::fs::read_to_string(log.join(kind)).unwrap();
    assert_eq!(read("createRuntime"), "64\n134217728\n");
    assert_eq!(read("createContainer"), "own-cgroup\n64\n134217728\n");
    finish(&rt, &b, &id, &dirs, &[&name]);
}

#[test]
fn the_init_s_setup_runs_under_the_pids_limit() {
    // pids.max 1: the init alone fills it, so its fork of the createContainer hook fails, and so
    // does create, leaving nothing behind (set after the init's setup, the limit let it fork).
    let rt = Runtime::new();
    let (mut b, name) = limited_at_own_path(json!({"pids": {"limit": 1}}));
    b.set("/hooks", json!({"createContainer": [sh_hook("true")]}));
    let out = rt.create_fails(&b);
    if integration_tests::runtime::is_hull() {
        out.stderr_has(&["createContainer hook", "cannot run it: try again"]);
    } else {
        out.stderr_has(&["hook", "resource temporarily unavailable"]);
    }
    cgroupfs::assert_removed(&[], &[&name]);
}

/// An ext4 image holding `hello`, attached to a free loop device: its (path, minor); detached
/// on drop. `None` on a kernel without loop devices (the cgroup-v2 guest's).
struct LoopDevice(String);

impl LoopDevice {
    fn new(dir: &Path) -> Option<(LoopDevice, u64)> {
        let content = dir.join("ext4-content");
        std::fs::create_dir(&content).unwrap();
        std::fs::write(content.join("hello"), "from the block device\n").unwrap();
        let image = dir.join("ext4.img");
        let mkfs = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-d"])
            .arg(&content)
            .arg(&image)
            .arg("4M")
            .status()
            .expect("mkfs.ext4");
        assert!(mkfs.success(), "mkfs.ext4 failed");
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .expect("losetup");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("cannot find an unused loop device") {
            eprintln!("skipped: no loop device on this kernel ({stderr})");
            return None;
        }
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let minor = dev
            .trim_start_matches("/dev/loop")
            .parse()
            .expect("loop minor");
        Some((LoopDevice(dev), minor))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// A container that mounts an ext4 loop device at /blk (no device rule for it) and has its node
/// at /dev/blk.
fn block_device_bundle() -> Option<(Bundle, LoopDevice)> {
    let mut b = limited(json!({}));
    let (dev, minor) = LoopDevice::new(b.path())?;
    std::fs::create_dir_all(b.rootfs().join("blk")).unwrap();
    b.mount(json!({"destination": "/blk", "type": "ext4", "source": dev.0, "options": ["ro"]}));
    b.push(
        "/linux/devices",
        json!({"path": "/dev/blk", "type": "b", "major": 7, "minor": minor}),
    );
    Some((b, dev))
}

#[test]
fn a_block_device_mount_needs_no_device_rule_which_still_holds_after() {
    // The device rules come after the init's mounts (as with runc), yet before anything of the
    // container runs: the mount works, opening the device does not.
    if !cgroupfs_driver(
        "hull's systemd scope starts with its DevicePolicy/DeviceAllow properties, so there the \
         rules already hold for the init's mounts (runc sends them later, with its Set)",
    ) {
        return;
    }
    let rt = Runtime::new();
    let Some((b, _dev)) = block_device_bundle() else {
        return;
    };
    let (id, _, dirs) = running(&rt, &b);
    let out = exec_sh(
        &rt,
        &id,
        "cat /blk/hello; head -c1 /dev/blk >/dev/null && echo opened",
    );
    assert_eq!(out.out(), "from the block device", "{out}");
    out.stderr_has(&["/dev/blk", "operation not permitted"]);
    finish(&rt, &b, &id, &dirs, &[]);
}

#[test]
fn a_device_rule_added_by_a_prestart_hook_stays() {
    // runc sets the device rules before the prestart hooks so that a hook may add its own (as
    // GPU hooks do); set after, they would wipe the hook's rule.
    if cgroupfs::is_v2() {
        eprintln!("skipped on cgroup v2: the rules are an eBPF program, no file to add one to");
        return;
    }
    if !cgroupfs_driver("the hook writes to the absolute cgroupsPath the test chose") {
        return;
    }
    let rt = Runtime::new();
    let name = unique_cgroup_name();
    let Some((mut b, dev)) = block_device_bundle() else {
        return;
    };
    let minor = dev.0.trim_start_matches("/dev/loop");
    b.set("/linux/cgroupsPath", json!(format!("/{name}")));
    let allow = format!("echo 'b 7:{minor} r' > /sys/fs/cgroup/devices/{name}/devices.allow");
    b.set("/hooks", json!({"prestart": [sh_hook(&allow)]}));
    let (id, _, dirs) = running(&rt, &b);
    let out = exec_sh(&rt, &id, "head -c1 /dev/blk >/dev/null && echo opened");
    assert_eq!(out.out(), "opened", "{out}");
    finish(&rt, &b, &id, &dirs, &[&name]);
}
