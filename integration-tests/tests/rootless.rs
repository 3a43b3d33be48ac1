//! Rootless: the runtime run by a real unprivileged user (made per test, see
//! `integration_tests::rootless`) on the bundle its own `spec --rootless` prints. On a host
//! without cgroup delegation (hybrid here) the container gets no cgroup; on a cgroup v2 host
//! with a delegated subtree (the v2 guest) it gets one there and its limits hold.

use std::path::Path;

use integration_tests::leaks::assert_no_leaks;
use integration_tests::rootless::TestUser;
use integration_tests::runtime::{is_hull, only_hull, runtime_binary};
use serde_json::json;

fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Nothing of the user's containers is left: no state directory, no process, no cgroup, no
/// mount under the bundle.
fn assert_clean(user: &TestUser, ids: &[&str], bundle: &Path) {
    let root = user.default_root(runtime_binary());
    assert_no_leaks(&root, ids, &[bundle]);
    let left = user.leftovers(&root);
    assert!(left.is_empty(), "left in {}: {left:?}", root.display());
    // Members of a dead pid namespace are reaped by the kernel after delete returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !user.processes().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        user.processes().is_empty(),
        "user processes left: {:?}",
        user.processes()
    );
}

#[test]
fn lifecycle_exec_and_ps_as_an_unprivileged_user() {
    let user = TestUser::create();
    let b = user.bundle(runtime_binary(), &["sleep", "1000"]);
    let id = "rl-life";
    user.rt(&["create", "--bundle", b.path(), id]).ok();
    // The default root follows runc: $XDG_RUNTIME_DIR/<runtime>, the user's own.
    let root = user.default_root(runtime_binary());
    assert!(root.join(id).is_dir(), "no state in {}", root.display());
    // 0700 with the sticky bit, as runc makes its own (a runtime-dir cleaner leaves it alone).
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&root).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o1700, "{}", root.display());
    let state: serde_json::Value =
        serde_json::from_str(&user.rt(&["state", id]).ok().stdout).expect("state json");
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().expect("pid") as i32;
    user.rt(&["start", id]).ok();
    let list = user.rt(&["list"]).ok().stdout.clone();
    assert!(list.contains(id) && list.contains("running"), "{list}");
    // The container's root is the user: uid 0 inside is the user's uid outside.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("init status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(uid_line.contains(&user.uid.to_string()), "{uid_line}");
    let out = user.rt(&["exec", id, "id"]);
    assert!(
        out.ok().out().starts_with("uid=0(root) gid=0(root)"),
        "{out}"
    );
    assert_eq!(user.rt(&["exec", id, "sh", "-c", "exit 3"]).code(), 3);
    user.rt(&["exec", "-d", id, "sleep", "999"]).ok();
    if is_hull() {
        // runc 1.1.5 fails here without a cgroup ("unable to get all container pids").
        let ps = user.rt(&["ps", id, "--format", "json"]).ok().stdout.clone();
        let pids: Vec<i32> = serde_json::from_str(&ps).expect("ps json");
        assert!(pids.contains(&pid) && pids.len() == 2, "{pids:?}");
        // kill --all reaches the exec'd process too (the init, pid 1, ignores SIGTERM).
        user.rt(&["kill", "--all", id, "TERM"]).ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let left = || -> Vec<i32> {
            let ps = user.rt(&["ps", id, "--format", "json"]).ok().stdout.clone();
            serde_json::from_str(&ps).expect("ps json")
        };
        while left().len() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(left(), [pid]);
    }
    user.rt(&["kill", id, "KILL"]).ok();
    user.rt(&["delete", "--force", id]).ok();
    assert_clean(&user, &[id], &b.dir);
}

#[test]
fn run_prints_and_exits_with_the_containers_code() {
    let user = TestUser::create();
    let b = user.bundle(
        runtime_binary(),
        &["sh", "-c", "echo hello from $(id -u); exit 7"],
    );
    let out = user.rt(&["--debug", "run", "--bundle", b.path(), "rl-run"]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.out(), "hello from 0");
    if is_hull() {
        // Without CAP_SYS_ADMIN no overlay can be mounted: the sealed copy is a memfd.
        out.stderr_has(&["running from a sealed copy (memfd)"]);
    }
    assert_clean(&user, &["rl-run"], &b.dir);
}

#[test]
fn several_id_ranges_through_newuidmap() {
    let user = TestUser::create();
    let mut b = user.bundle(
        runtime_binary(),
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
        ],
    );
    let (uid, gid, sub) = (user.uid, user.gid, user.sub_start);
    b.edit(|c| {
        let maps = |own: u32| {
            json!([{"containerID": 0, "hostID": own, "size": 1},
                                     {"containerID": 1, "hostID": sub, "size": 65536}])
        };
        c["linux"]["uidMappings"] = maps(uid);
        c["linux"]["gidMappings"] = maps(gid);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let out = user.rt(&["run", "--bundle", b.path(), "rl-maps"]);
    let lines: Vec<Vec<String>> = out
        .ok()
        .out()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines[0], ["1000"]);
    assert_eq!(lines[1], ["1000"]);
    let sub = sub.to_string();
    assert_eq!(lines[2], ["0", &uid.to_string(), "1"]);
    assert_eq!(lines[3], ["1", &sub, "65536"]);
    assert_eq!(lines[4], ["0", &gid.to_string(), "1"]);
    assert_eq!(lines[5], ["1", &sub, "65536"]);
    assert_clean(&user, &["rl-maps"], &b.dir);
}

#[test]
fn ranges_outside_the_users_subuid_fail_cleanly() {
    let user = TestUser::create();
    let mut b = user.bundle(runtime_binary(), &["true"]);
    let uid = user.uid;
    b.edit(|c| {
        // Host ids 1..65537 are not the user's to map.
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1},
                                           {"containerID": 1, "hostID": 1, "size": 65536}]);
    });
    let out = user.rt(&["run", "--bundle", b.path(), "rl-badmap"]);
    out.failed();
    if is_hull() {
        out.stderr_has(&["linux.uidMappings", "newuidmap"]);
    }
    assert_clean(&user, &["rl-badmap"], &b.dir);
}

#[test]
fn limits_without_a_writable_cgroup_are_an_error_naming_the_field() {
    if pure_v2() {
        eprintln!("skipped: a pure v2 host; the delegated case is tested below");
    }
    let user = TestUser::create();
    let mut b = user.bundle(runtime_binary(), &["true"]);
    b.edit(|c| c["linux"]["resources"] = json!({"memory": {"limit": 104857600}}));
    let out = user.rt(&["run", "--bundle", b.path(), "rl-mem"]);
    // runc: "cannot set memory limit: container could not join or create cgroup".
    out.failed().stderr_has(&["cannot set memory limit"]);
    if is_hull() {
        out.stderr_has(&["linux.resources.memory", "rootless"]);
    }
    assert_clean(&user, &["rl-mem"], &b.dir);
}

#[test]
fn no_user_namespace_fails_before_anything_is_made() {
    if !is_hull() {
        eprintln!("skipped: runc 1.1.5 says \"rootless container requires user namespaces\" too");
    }
    let user = TestUser::create();
    let mut b = user.bundle(runtime_binary(), &["true"]);
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "user");
        let linux = c["linux"].as_object_mut().expect("linux");
        linux.remove("uidMappings");
        linux.remove("gidMappings");
    });
    let out = user.rt(&["run", "--bundle", b.path(), "rl-nouserns"]);
    out.failed().stderr_has(&["user namespace"]);
    if is_hull() {
        out.stderr_has(&["linux.namespaces"]);
    }
    assert_clean(&user, &["rl-nouserns"], &b.dir);
}

#[test]
fn rootless_flag_values_are_runcs() {
    let user = TestUser::create();
    let b = user.bundle(runtime_binary(), &["true"]);
    let out = user.rt(&[
        "--rootless",
        "maybe",
        "run",
        "--bundle",
        b.path(),
        "rl-flag",
    ]);
    out.failed();
    // --rootless false as a user: the cgroups are not writable, and that is not ignored.
    let out = user.rt(&[
        "--rootless",
        "false",
        "run",
        "--bundle",
        b.path(),
        "rl-flag",
    ]);
    if !pure_v2() {
        out.failed().stderr_has(&["permission denied"]);
    }
    user.rt(&["--rootless", "true", "run", "--bundle", b.path(), "rl-flag"])
        .ok();
    assert_clean(&user, &["rl-flag"], &b.dir);
}

#[test]
fn pause_needs_a_cgroup_of_its_own() {
    let mut user = TestUser::create();
    let delegated = pure_v2().then(|| user.delegate());
    let b = user.bundle(runtime_binary(), &["sleep", "1000"]);
    let id = "rl-pause";
    user.rt(&["run", "-d", "--bundle", b.path(), id]).ok();
    let out = user.rt(&["pause", id]);
    match &delegated {
        Some(dir) => {
            out.ok();
            let state = user.rt(&["state", id]).ok().stdout.clone();
            assert!(state.contains("\"paused\""), "{state}");
            assert_eq!(
                std::fs::read_to_string(dir.join(id).join("cgroup.freeze"))
                    .unwrap()
                    .trim(),
                "1"
            );
            user.rt(&["resume", id]).ok();
        }
        None => {
            out.failed();
            if is_hull() {
                out.stderr_has(&["pause", "rootless"]);
            }
        }
    }
    user.rt(&["delete", "--force", id]).ok();
    assert_clean(&user, &[id], &b.dir);
}

/// The v2 guest: a subtree chowned to the user as systemd's delegation does; the container's
/// cgroup is made there and its limits are enforced.
#[test]
fn delegated_cgroup_v2_gets_the_container_and_its_limits() {
    if !pure_v2() {
        eprintln!("skipped: needs a pure cgroup v2 host (the v2 guest runs it)");
        return;
    }
    let mut user = TestUser::create();
    let delegated = user.delegate();
    let mut b = user.bundle(
        runtime_binary(),
        // The subshell dies at the first fork the limit refuses; the container lives on.
        &[
            "sh",
            "-c",
            "(for i in 1 2 3 4 5 6 7 8; do sleep 100 & done); sleep 1000",
        ],
    );
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 4}});
    });
    let id = "rl-deleg";
    user.rt(&["run", "-d", "--bundle", b.path(), id]).ok();
    let cg = delegated.join(id);
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap_or_default();
    assert_eq!(read("memory.max").trim(), "33554432");
    assert_eq!(read("pids.max").trim(), "4");
    // The shell forks until the limit refuses one (a grace period, not a timed assertion).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read("pids.events").trim() == "max 0" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let events = read("pids.events");
    assert!(
        !events.contains("max 0"),
        "the limit never refused a fork: {events}"
    );
    let pids: Vec<String> = read("cgroup.procs").lines().map(String::from).collect();
    assert!(!pids.is_empty() && pids.len() <= 4, "{pids:?}");
    let state: serde_json::Value =
        serde_json::from_str(&user.rt(&["state", id]).ok().stdout).expect("state");
    let init_cgroup =
        std::fs::read_to_string(format!("/proc/{}/cgroup", state["pid"])).expect("init cgroup");
    assert!(
        init_cgroup.contains(&format!("{}.slice/{id}", user.name)),
        "{init_cgroup}"
    );
    user.rt(&["delete", "--force", id]).ok();
    assert!(!cg.exists(), "{} left behind", cg.display());
    assert_clean(&user, &[id], &b.dir);
}

#[test]
fn mounts_and_devices_needing_privileges_fail_before_anything_is_made() {
    let user = TestUser::create();
    let cases: Vec<(&str, serde_json::Value, &[&str])> = vec![
        (
            "/mounts/-",
            json!({"destination": "/mnt", "type": "ext4", "source": "/dev/null"}),
            &["mounts[7] (/mnt)", "ext4", "without privileges"],
        ),
        (
            "/mounts/-",
            json!({"destination": "/mnt", "type": "sysfs", "source": "sysfs"}),
            &["mounts[7] (/mnt)", "network namespace"],
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/hull-no-such-device", "type": "c", "major": 1, "minor": 3}]),
            &["linux.devices[0] (/dev/hull-no-such-device)", "not there"],
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/zero", "type": "c", "major": 1, "minor": 3}]),
            &["linux.devices[0] (/dev/zero)", "not device 1:3"],
        ),
    ];
    for (i, (pointer, value, words)) in cases.into_iter().enumerate() {
        if i == 3
            && !only_hull("runc 1.1.5 binds the host's node whatever numbers the config gives")
        {
            continue;
        }
        let mut b = user.bundle(runtime_binary(), &["true"]);
        b.edit(|c| match pointer {
            "/mounts/-" => c["mounts"].as_array_mut().expect("mounts").push(value),
            _ => c["linux"]["devices"] = value,
        });
        let id = format!("rl-priv-{i}");
        let out = user.rt(&["run", "--bundle", b.path(), &id]);
        // runc fails too, later (EPERM from mount, a bind of a missing or different node).
        out.failed();
        if is_hull() {
            out.stderr_has(words);
        }
        assert_clean(&user, &[&id], &b.dir);
    }
}

#[test]
fn real_root_keeps_its_root_despite_xdg_runtime_dir() {
    let xdg = integration_tests::tmp::TempDir::new("xdg");
    let out = std::process::Command::new(runtime_binary())
        .arg("list")
        .env("XDG_RUNTIME_DIR", xdg.path())
        .output()
        .expect("run list");
    assert!(out.status.success(), "{out:?}");
    let name = runtime_binary().file_name().expect("name");
    assert!(
        !xdg.join(name).exists(),
        "root used $XDG_RUNTIME_DIR/{}",
        name.to_string_lossy()
    );
}
