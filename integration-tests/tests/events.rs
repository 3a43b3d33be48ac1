//! `events` without `--stats`: a stream of stats every `--interval`, an `oom` event when the
//! kernel's OOM killer acts in the container (as containerd's shim reads them), and the end of
//! the stream when the container is gone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration_tests::runtime::Running;
use integration_tests::{Bundle, Runtime};
use serde_json::{json, Value};

/// A running `sleep` under a memory limit, and `hull events --interval` on it writing to a file.
fn watched(rt: &Runtime, memory_limit: i64, interval: &str) -> (Bundle, String, PathBuf, Running) {
    let mut b = Bundle::new();
    b.set("/linux/resources/memory", json!({ "limit": memory_limit }))
        .args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let out_file = rt.scratch().join("events.out");
    let events = rt
        .cmd(["events", "--interval", interval, id.as_str()])
        .stdout(std::fs::File::create(&out_file).unwrap().into())
        .spawn();
    (b, id, out_file, events)
}

#[test]
fn events_stream_reports_stats_then_an_oom_kill() {
    let rt = Runtime::new();
    let (b, id, out_file, events) = watched(&rt, 32 << 20, "200ms");
    let read_events = || -> Vec<Value> {
        std::fs::read_to_string(&out_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    };
    let wait_for = |what: &str, pred: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = read_events();
            if all.iter().any(pred) {
                return all;
            }
            assert!(Instant::now() < deadline, "no {what} event in {all:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let all = wait_for("stats", &|e| e["type"] == "stats");
    assert_eq!(all[0]["id"], id.as_str());
    assert!(all.iter().all(|e| e["type"] == "stats"), "{all:?}");

    // 64 MiB held in one dd block cannot fit under 32 MiB (no swap here).
    let out = rt.exec([
        "exec",
        id.as_str(),
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(out.code(), 137, "{out}");
    let all = wait_for("oom", &|e| e["type"] == "oom");
    let oom = all.iter().find(|e| e["type"] == "oom").unwrap();
    assert_eq!(oom["id"], id.as_str(), "{oom}");

    // The stream ends with the container.
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    let done = events.wait();
    assert!(done.success(), "{done}");
    rt.assert_no_leaks(&b, &[&id]);
}

/// The cgroup removed while `events` was not looking (systemd removes a scope's cgroup as soon
/// as it empties; `delete` removes a cgroupfs one): the wait that wakes on the removal ends the
/// stream with status 0. On v2 the removal wakes memory.events as well, whose read then fails
/// with ENODEV; CI's systemd lane saw that end the stream with status 1.
#[test]
fn events_stream_ends_cleanly_when_the_cgroup_is_removed_under_it() {
    let rt = Runtime::new();
    let (b, id, out_file, events) = watched(&rt, 64 << 20, "100ms");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains("\"stats\"")
    {
        assert!(Instant::now() < deadline, "no stats event from events");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped, the stream is in (or about to enter) its wait: every wake-up is pending at once
    // when it goes on.
    let pid = nix::unistd::Pid::from_raw(events.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let done = events.wait();
    assert!(done.success(), "{done}");
    rt.assert_no_leaks(&b, &[&id]);
}
