//! Interrupted and overlapping lifecycles: a `create` or `delete` SIGKILLed at any moment, a
//! `delete --force` racing a live `create`, and a `cgroupsPath` naming a cgroup that other
//! processes already use. Whatever happened, `delete --force` must leave nothing of the container
//! and nothing else harmed, and the id must be usable again.
//!
//! The random moments come from a fixed seed, so a failing trial can be replayed.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use integration_tests::runtime::{is_hull, log_messages, COMMAND_TIMEOUT};
use integration_tests::{cgroupfs, only_hull, Bundle, Runtime};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// xorshift64*: deterministic delays without a crate for it.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn micros_below(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros() as u64))
    }
}

/// Everything of container `id` is gone: state directory, mounts, processes, and its cgroup
/// directories in every hierarchy, at any depth.
fn assert_all_gone(rt: &Runtime, b: &Bundle, id: &str) {
    rt.assert_no_leaks(b, &[id]);
    cgroupfs::assert_removed(&[], &[id]);
}

/// The id is usable again, and that container goes away as any other.
fn assert_id_reusable(rt: &Runtime, b: &Bundle, id: &str) {
    rt.create(b, id).ok();
    rt.delete_force(id).ok();
    assert_all_gone(rt, b, id);
}

#[test]
fn create_killed_at_any_moment_is_undone_by_delete_force() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let mut rng = Rng(0x6b69_6c6c_6372_6561);
    let (mut nothing, mut half, mut whole) = (0, 0, 0);
    for trial in 0..100 {
        let id = rt.new_id();
        let delay = rng.micros_below(Duration::from_millis(80));
        let create = rt.create_cmd(&b, &id).spawn();
        std::thread::sleep(delay);
        // A zombie (create already done) takes the signal without effect.
        let _ = kill(Pid::from_raw(create.pid() as i32), Signal::SIGKILL);
        let out = create.wait();
        let ctx = format!("trial {trial}, SIGKILL {delay:?} after spawn: {out}");

        if rt.root().join(&id).exists() && is_hull() {
            // Half-created (or created): listed, and `state` says what it is (runc 1.1.5 does
            // neither: "container does not exist").
            let list = rt.exec(["list", "--quiet"]);
            list.ok();
            assert!(
                list.stdout.lines().any(|l| l == id),
                "{ctx}\nnot listed:\n{list}"
            );
            let state = rt.state(&id);
            let status = state["status"].as_str().unwrap_or_default().to_string();
            if out.success() || status == "created" {
                // Done, or killed after the init had left its runtime behind: a container.
                assert_eq!(status, "created", "{ctx}");
                whole += 1;
            } else {
                // Its create is dead and nothing of it runs (the init dies with its runtime).
                assert_eq!(status, "stopped", "{ctx}\n{state}");
                assert_eq!(state["pid"], 0, "{ctx}\n{state}");
                half += 1;
            }
        } else {
            nothing += 1;
        }
        rt.delete_force(&id).ok();
        assert_all_gone(&rt, &b, &id);
        assert_id_reusable(&rt, &b, &id);
    }
    eprintln!(
        "killed before the state dir: {nothing}, half-way: {half}, once a container: {whole}"
    );
}

#[test]
fn delete_killed_at_any_moment_is_finished_by_a_second_delete() {
    let rt = Runtime::new();
    let mut rng = Rng(0x6465_6c65_7465_2121);
    // One container owning its pid namespace, one sharing the host's with a second process
    // (delete then freezes, kills and thaws its cgroup: more moments to be killed at).
    let own = Bundle::sleeping();
    let mut shared = Bundle::new();
    shared
        .args(&["sh", "-c", "sleep 1000 & exec sleep 1001"])
        .without_namespace("pid");
    for trial in 0..40 {
        let b = if trial % 2 == 0 { &own } else { &shared };
        let id = rt.started(b);
        let delay = rng.micros_below(Duration::from_millis(15));
        let delete = rt.cmd(["delete", "--force", &id]).spawn();
        std::thread::sleep(delay);
        let _ = kill(Pid::from_raw(delete.pid() as i32), Signal::SIGKILL);
        let first = delete.wait();
        let second = rt.delete_force(&id);
        assert!(
            second.success(),
            "trial {trial}, first delete SIGKILLed {delay:?} after spawn: {first}\n{second}"
        );
        assert_all_gone(&rt, b, &id);
        assert_id_reusable(&rt, b, &id);
    }
}

#[test]
fn delete_force_during_create_never_reports_a_container_gone_that_lives() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let mut rng = Rng(0x7261_6365_2d64_656c);
    let mut refused = Vec::new();
    for trial in 0..40 {
        let id = rt.new_id();
        let create = rt.create_cmd(&b, &id).spawn();
        // The delete comes once the create has made the state directory: from then on a
        // container of that id is being created (before, there is none to delete).
        let dir = rt.root().join(&id);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while !dir.exists() && !exited(create.pid()) {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: the create neither made {} nor exited in {COMMAND_TIMEOUT:?}; {}",
                dir.display(),
                where_blocked(create.pid())
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(rng.micros_below(Duration::from_millis(20)));
        let delete = rt.delete_force(&id);
        let created = create.wait();
        if delete.success() {
            // Nothing of that id may exist afterwards: no process, no state, no cgroup.
            assert!(
                !dir.exists(),
                "trial {trial}: delete exited 0 and the container lives on\n{delete}\n{created}"
            );
            assert_all_gone(&rt, &b, &id);
        } else {
            refused.push(format!("trial {trial}: {delete}"));
            rt.delete_force(&id).ok();
            assert_all_gone(&rt, &b, &id);
        }
    }
    // Hull waits for the create's lock instead of refusing: every delete must have worked.
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

/// What `pid` is doing: its state, the kernel function it sleeps in and its kernel stack.
fn where_blocked(pid: u32) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let state = read("status")
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or_default()
        .to_string();
    format!(
        "{pid}: {state}, in {}, stack:\n{}",
        read("wchan"),
        read("stack")
    )
}

/// True once `pid` (our child, not reaped yet) has exited.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true)
}

/// A cgroup `name` at the root of every cgroup hierarchy mounted on this host, holding `member`
/// (as a cgroup some other tool made and runs processes in). Removed on drop, after the member.
struct SharedCgroup {
    dirs: Vec<PathBuf>,
    member: Child,
}

impl SharedCgroup {
    fn new(name: &str) -> SharedCgroup {
        let member = Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep");
        let mut dirs = Vec::new();
        for (fs_type, options, mount) in cgroup_mounts() {
            let dir = mount.join(name);
            std::fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
            dirs.push(dir.clone());
            if fs_type == "cgroup" && options.split(',').any(|o| o == "cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(mount.join(f)).expect("read root cpuset");
                    std::fs::write(dir.join(f), v.trim()).expect("write cpuset");
                }
            }
            std::fs::write(dir.join("cgroup.procs"), member.id().to_string())
                .unwrap_or_else(|e| panic!("put {} in {}: {e}", member.id(), dir.display()));
        }
        SharedCgroup { dirs, member }
    }

    fn member_alive(&mut self) -> bool {
        matches!(self.member.try_wait(), Ok(None))
    }
}

impl Drop for SharedCgroup {
    fn drop(&mut self) {
        let _ = self.member.kill();
        let _ = self.member.wait();
        for d in &self.dirs {
            // The kernel drops the exited member from its cgroups a moment after the wait.
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// (fs type, super options, mount point) of every cgroup hierarchy mounted under /sys/fs/cgroup.
fn cgroup_mounts() -> Vec<(String, String, PathBuf)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount = PathBuf::from(left.split(' ').nth(4).unwrap_or_default());
        let mut r = right.split(' ');
        let fs_type = r.next().unwrap_or_default().to_string();
        let options = r.nth(1).unwrap_or_default().to_string();
        if (fs_type == "cgroup" || fs_type == "cgroup2") && mount.starts_with("/sys/fs/cgroup") {
            found.push((fs_type, options, mount));
        }
    }
    found
}

fn shared_cgroup_spared(pid_namespace: bool) {
    let rt = Runtime::new();
    let name = format!("hull-it-shared-{}-{}", std::process::id(), pid_namespace);
    let mut shared = SharedCgroup::new(&name);
    let mut b = Bundle::new();
    // A second process, which without a pid namespace of its own outlives the init.
    b.args(&["sh", "-c", "sleep 1000 & exec sleep 1001"])
        .set("/linux/cgroupsPath", format!("/{name}").into());
    if !pid_namespace {
        b.without_namespace("pid");
    }
    let id = rt.new_id();
    let log = rt.scratch().join(format!("{id}.log"));
    rt.json_log_cmd(&log)
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .ok();
    let warnings = log_messages(&log, "warning");
    // runc 1.1.5 warns without naming the cgroup: "container's cgroup is not empty".
    if only_hull("runc's warning does not name the cgroup") {
        assert!(
            warnings.iter().any(|w| w.contains(&name)),
            "no warning naming the cgroup {name}: {warnings:#?}"
        );
    }
    rt.start(&id).ok();
    let init = rt.state(&id)["pid"].as_i64().expect("pid");
    let dir = cgroupfs::controller_dir(init as i32, "devices");
    assert!(dir.ends_with(&name), "{}", dir.display());

    rt.delete_force(&id).ok();
    assert!(
        shared.member_alive(),
        "delete --force killed process {} of the shared cgroup {name}",
        shared.member.id()
    );
    // Every process of the container is gone, and its state.
    rt.assert_no_leaks(&b, &[&id]);
    assert_id_reusable(&rt, &b, &id);
    assert!(shared.member_alive());

    // `kill --all` signals the container's processes only, too (runc 1.1.5: every process of
    // the cgroup).
    if only_hull("runc's kill --all signals every process of the cgroup") {
        let id = rt.started(&b);
        rt.exec(["kill", "--all", &id, "KILL"]).ok();
        rt.wait_status(&id, "stopped");
        assert!(
            shared.member_alive(),
            "kill --all killed process {} of the shared cgroup {name}",
            shared.member.id()
        );
        rt.delete_force(&id).ok();
        rt.assert_no_leaks(&b, &[&id]);
        assert!(shared.member_alive());
    }
}

#[test]
fn delete_force_spares_the_other_processes_of_a_shared_cgroup() {
    shared_cgroup_spared(true);
}

#[test]
fn delete_force_spares_the_other_processes_of_a_shared_cgroup_without_pid_namespace() {
    shared_cgroup_spared(false);
}

#[test]
fn delete_force_waits_for_a_live_create_which_list_and_state_show_creating() {
    if !only_hull("runc 1.1.5 neither lists a container being created nor waits for its create") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::sleeping();
    // A createRuntime hook holds the create half-way until the test opens the gate.
    let started = rt.scratch().join("hook-started");
    let gate = rt.scratch().join("gate");
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.01; done",
        started.display(),
        gate.display()
    );
    b.set(
        "/hooks",
        serde_json::json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}),
    );
    // Opened on every way out, so a failing run leaves no create blocked in its hook.
    let _opened_on_drop = Gate(gate.clone());
    let id = rt.new_id();
    let create = rt.create_cmd(&b, &id).spawn();
    while !started.exists() {
        assert!(!exited(create.pid()), "create ended before its hook ran");
        std::thread::sleep(Duration::from_millis(5));
    }

    let state = rt.state(&id);
    assert_eq!(state["status"], "creating", "{state}");
    let init = state["pid"].as_i64().unwrap_or(0);
    assert!(init > 0, "{state}");
    let list = rt.exec(["list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&list.ok().stdout).expect("list JSON");
    assert!(
        listed.as_array().is_some_and(|l| l
            .iter()
            .any(|c| c["id"] == id.as_str() && c["status"] == "creating" && c["pid"] == init)),
        "{listed}"
    );

    // The delete waits on the lock the create holds (the kernel lists it as a blocked flock on
    // the state directory) and does not return meanwhile.
    let delete = rt.cmd(["delete", "--force", &id]).spawn();
    let ino = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(rt.root().join(&id)).expect("state dir"),
    );
    while !flock_waiter_on(ino) {
        assert!(
            !exited(delete.pid()),
            "delete ended while the create was still running: {}",
            delete.wait()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&gate, "").expect("open the gate");
    create.wait().ok();
    delete.wait().ok();
    assert_all_gone(&rt, &b, &id);
}

/// The hook's gate, opened when dropped.
struct Gate(PathBuf);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// True if /proc/locks shows a process waiting for an flock on inode `ino`.
fn flock_waiter_on(ino: u64) -> bool {
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("-> FLOCK") && l.contains(&format!(":{ino} ")))
}
