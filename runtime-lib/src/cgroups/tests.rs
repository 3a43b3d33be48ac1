//! Tests against the real cgroup hierarchies of this host (hybrid on the development machine:
//! v1 controllers plus an empty cgroup2 mount at /sys/fs/cgroup/unified). Each test works in its
//! own `/hull-test-<pid>-<n>` cgroup and asserts that nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use super::probe::{host, Mode};
use super::*;

/// Serialises the tests that change the cgroup2 root's subtree_control (and put it back).
static UNIFIED_ROOT: Mutex<()> = Mutex::new(());

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "hull-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A busybox child, killed and reaped when dropped.
struct Child(std::process::Child);

impl Child {
    fn sh(script: &str) -> Child {
        Child(
            Command::new("/usr/bin/busybox")
                .args(["sh", "-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn busybox"),
        )
    }
    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Destroys the manager even when an assertion fails halfway (declare it before the children,
/// so they are killed first).
struct Cg(Box<dyn Manager>);

impl std::ops::Deref for Cg {
    type Target = dyn Manager;
    fn deref(&self) -> &(dyn Manager + 'static) {
        &*self.0
    }
}

impl std::ops::DerefMut for Cg {
    fn deref_mut(&mut self) -> &mut (dyn Manager + 'static) {
        &mut *self.0
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {:?}: {e}", dir.join(file)))
        .trim()
        .to_string()
}

/// Every directory a manager could have made, for the "nothing left" checks.
fn all_dirs(m: &dyn Manager) -> Vec<PathBuf> {
    let p = m.paths();
    let mut out: Vec<PathBuf> = p.v1.values().map(|d| d.path.clone()).collect();
    out.extend(p.unified.iter().map(|d| d.path.clone()));
    out.extend(p.created.iter().cloned());
    out
}

fn assert_nothing_left(dirs: &[PathBuf], name: &str) {
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind");
    }
    // And nowhere else under any hierarchy's root either.
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = e.path().join(name);
        assert!(!p.exists(), "{p:?} left behind");
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the container's processes get cpu time within a short while.
fn runs(m: &dyn Manager) -> bool {
    let before = m.stats().unwrap().cpu.usage.total;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
        if m.stats().unwrap().cpu.usage.total > before {
            return true;
        }
    }
    false
}

/// Whether the container's processes get no cpu time at all over a while.
fn still(m: &dyn Manager) -> bool {
    let before = m.stats().unwrap().cpu.usage.total;
    std::thread::sleep(Duration::from_millis(300));
    m.stats().unwrap().cpu.usage.total == before
}

fn v1_host() -> bool {
    host().unwrap().mode != Mode::V2
}

#[test]
fn v1_lifecycle_apply_set_freeze_stats_destroy() {
    if !v1_host() {
        return;
    }
    let id = unique("life");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let busy = Child::sh("sleep 0.3; x=$(busybox seq 1 30000); while :; do :; done");
    let create_res = res(r#"{"cpu":{"cpus":"0","mems":"0"}}"#);
    m.apply(busy.pid(), Some(&create_res)).unwrap();
    let dirs = all_dirs(&*m);

    // In every hierarchy, at the path runc would use.
    let cgs = procfs::process::Process::new(busy.pid().as_raw())
        .unwrap()
        .cgroups()
        .unwrap();
    // Not an unmounted hierarchy the kernel still lists (one a benchmark mounted and unmounted).
    let h = host().unwrap();
    let mounted = |cg: &&procfs::ProcessCGroup| {
        cg.hierarchy == 0 || cg.controllers.iter().any(|c| h.v1.contains_key(c))
    };
    for cg in cgs.0.iter().filter(mounted) {
        assert_eq!(cg.pathname, format!("/{id}"), "{cg:?}");
    }
    for (c, d) in &m.paths().v1 {
        assert_eq!(d.path, d.mount.join(&id), "{c}");
        assert!(
            read(&d.path, "cgroup.procs").contains(&busy.pid().to_string()),
            "{c}"
        );
    }
    if host().unwrap().mode == Mode::Hybrid {
        let u = m.paths().unified.as_ref().unwrap();
        assert_eq!(u.path, Path::new("/sys/fs/cgroup/unified").join(&id));
        assert!(read(&u.path, "cgroup.procs").contains(&busy.pid().to_string()));
    }

    // Every limit lands in its file.
    let spec_res = res(
        r#"{"memory":{"limit":67108864,"swap":134217728,"reservation":33554432,"swappiness":20},
            "cpu":{"shares":512,"quota":20000,"period":100000,"cpus":"0","idle":0},
            "pids":{"limit":20},
            "devices":[{"allow":false,"access":"rwm"}]}"#,
    );
    let mut spec = Spec::default();
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_resources(Some(spec_res));
    spec.linux_mut().as_mut().unwrap().set_devices(None);
    m.set(&container_resources(&spec)).unwrap();
    let p = &m.paths().v1;
    let mem = &p["memory"].path;
    assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(mem, "memory.swappiness"), "20");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "134217728");
    }
    let cpu = &p["cpu"].path;
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&p["cpuset"].path, "cpuset.cpus"), "0");
    assert_eq!(read(&p["pids"].path, "pids.max"), "20");
    let devs = read(&p["devices"].path, "devices.list");
    assert!(devs.contains("c 1:3 rwm"), "{devs}");
    assert!(devs.contains("c 136:* rwm"), "{devs}");
    assert!(!devs.contains("a *:* rwm"), "{devs}");
    // Without any rule of the spec's own, runc's defaults still make a whitelist.
    m.set(&container_resources(&Spec::default())).unwrap();
    let devs = read(&p["devices"].path, "devices.list");
    assert!(
        !devs.contains("a *:* rwm") && devs.contains("c 1:5 rwm"),
        "{devs}"
    );
    // A privileged container's allow-all rule wins.
    m.set(&res(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#))
        .unwrap();
    assert_eq!(read(&p["devices"].path, "devices.list"), "a *:* rwm");
    m.set(&container_resources(&spec)).unwrap();

    // Paused means stopped: no cpu time while frozen, and it runs again once thawed.
    assert!(runs(&*m));
    pause(&*m).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    assert_eq!(read(&p["freezer"].path, "freezer.state"), "FROZEN");
    assert!(still(&*m), "a frozen process got cpu time");
    resume(&*m).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(runs(&*m));

    // ps and stats.
    assert!(m.pids().unwrap().contains(&busy.pid().as_raw()));
    let s = m.stats().unwrap();
    assert!(s.cpu.usage.total > 0, "{s:?}");
    assert!(s.memory.usage.usage > 0, "{s:?}");
    assert_eq!(s.memory.usage.limit, 67108864);
    assert!(s.pids.current >= 1 && s.pids.limit == 20, "{s:?}");
    assert_eq!(s.cpuset.cpus, vec![0]);
    let ev = serde_json::to_value(stats_event(&*m, &id).unwrap()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);

    // A later process rebuilds the manager from state.json.
    let stored = serde_json::to_string(m.paths()).unwrap();
    let loaded = load(&serde_json::from_str(&stored).unwrap());
    assert_eq!(loaded.paths(), m.paths());
    assert!(loaded.pids().unwrap().contains(&busy.pid().as_raw()));
    // exec: a second process joins the existing cgroups.
    let exec = Child::sh("sleep 1000");
    loaded.join(exec.pid()).unwrap();
    let cgs = procfs::process::Process::new(exec.pid().as_raw())
        .unwrap()
        .cgroups()
        .unwrap();
    assert!(
        cgs.0
            .iter()
            .filter(mounted)
            .all(|cg| cg.pathname == format!("/{id}")),
        "{cgs:?}"
    );
    assert!(m.pids().unwrap().contains(&exec.pid().as_raw()));

    // update: a period alone keeps the quota; a new memory limit is live at once.
    let current = container_resources(&spec);
    let changes = res(r#"{"cpu":{"period":50000},"memory":{"limit":100663296}}"#);
    let now = update(&*loaded, &current, &changes).unwrap();
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(mem, "memory.limit_in_bytes"), "100663296");
    assert_eq!(now.memory().unwrap().limit(), Some(100663296));

    // Processes still inside keep the cgroup: destroy says so (delete kills them first).
    drop(busy);
    let e = m.destroy().unwrap_err().to_string();
    assert!(e.contains("remove cgroup") && e.contains("busy"), "{e}");
    drop(exec);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}

/// `self_join` hands out one `tasks` file per v1 hierarchy, and a child writing `0` to each (as
/// the init does) lands in the container's cgroup everywhere; `join_rest` adds the unified one.
#[test]
fn v1_a_child_joins_its_v1_cgroups_itself() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    if !v1_host() {
        return;
    }
    let id = unique("selfjoin");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    m.create(None).unwrap();
    let dirs = all_dirs(&*m);
    let join = m.self_join().unwrap();
    let files: Vec<PathBuf> = join.files().map(|(p, ..)| p.to_path_buf()).collect();
    let wanted: Vec<PathBuf> = m
        .paths()
        .v1
        .values()
        .map(|d| d.path.join("tasks"))
        .collect();
    for w in &wanted {
        assert!(files.contains(w), "{w:?} not handed out: {files:?}");
    }
    let fds: Vec<i32> = join.fds().map(|fd| fd.as_raw_fd()).collect();
    let mut cmd = Command::new("/usr/bin/busybox");
    cmd.args(["sleep", "30"]).stdin(Stdio::null());
    // SAFETY: write(2) is async-signal-safe; the descriptors stay open in the child until exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = Child(cmd.spawn().expect("spawn busybox"));
    drop(join);
    m.join_rest(child.pid(), false, true).unwrap();
    let cgs = procfs::process::Process::new(child.pid().as_raw())
        .unwrap()
        .cgroups()
        .unwrap();
    let h = host().unwrap();
    for cg in cgs.0.iter() {
        let ours = cg.hierarchy == 0 || cg.controllers.iter().any(|c| h.v1.contains_key(c));
        if ours && (cg.hierarchy != 0 || h.mode == Mode::Hybrid) {
            assert_eq!(cg.pathname, format!("/{id}"), "{cg:?}");
        }
    }
    drop(child);
    drop(m);
    assert_nothing_left(&dirs, &id);
}

#[test]
fn v1_bad_values_name_file_and_value_and_leave_nothing() {
    if !v1_host() {
        return;
    }
    // Refused while the cgroup is being made (cpuset must be valid before anyone joins).
    let id = unique("bad");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let child = Child::sh("sleep 1000");
    let e = m
        .apply(child.pid(), Some(&res(r#"{"cpu":{"cpus":"99"}}"#)))
        .unwrap_err()
        .to_string();
    let cpuset = m.paths().v1["cpuset"].path.join("cpuset.cpus");
    assert!(e.starts_with(&format!("write {cpuset:?}: \"99\": ")), "{e}");
    assert_nothing_left(&all_dirs(&*m), &id);

    // Refused by set: the caller then destroys.
    let id = unique("bad");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    m.apply(child.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    let e = m.set(&res(r#"{"cpu":{"shares":1}}"#)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid config linux.resources.cpu.shares: the minimum allowed cpu-shares is 2"
    );
    let e = m
        .set(&res(r#"{"cpu":{"quota":1}}"#))
        .unwrap_err()
        .to_string();
    let quota = m.paths().v1["cpu"].path.join("cpu.cfs_quota_us");
    assert_eq!(e, format!("write {quota:?}: \"1\": invalid argument"));
    let e = m
        .set(&res(r#"{"memory":{"swappiness":101}}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("valid range is 0-100"), "{e}");
    let e = m
        .set(&res(r#"{"unified":{"memory.max":"1"}}"#))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid config linux.resources.unified: cannot use unified on cgroup v1"
    );
    let e = m
        .set(&res(
            r#"{"devices":[{"allow":true,"type":"c","access":""}]}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("devices[0].access"), "{e}");
    if !m.paths().v1.contains_key("net_cls") {
        let e = m
            .set(&res(r#"{"network":{"classID":1048577}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot set net_cls limit"), "{e}");
    }
    drop(child);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}

#[test]
fn v1_memory_limit_below_usage_says_so() {
    if !v1_host() {
        return;
    }
    let id = unique("low");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let child = Child::sh("sleep 0.3; x=$(busybox seq 1 50000); sleep 1000");
    m.apply(child.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    std::thread::sleep(Duration::from_millis(800));
    let e = m
        .set(&res(r#"{"memory":{"limit":4096}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unable to set memory limit to 4096 (current usage: "),
        "{e}"
    );
    assert!(e.contains("memory.limit_in_bytes\": \"4096\""), "{e}");
    // checkBeforeUpdate refuses before the kernel is asked.
    let e = m
        .set(&res(
            r#"{"memory":{"limit":8192,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rejecting memory limit 8192 <= usage"), "{e}");
    drop(child);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}

#[test]
fn v1_oom_kill_is_reported() {
    if !v1_host() {
        return;
    }
    let id = unique("oom");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let mut hog = Child::sh("sleep 0.5; exec busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
    m.apply(hog.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    m.set(&res(r#"{"memory":{"limit":16777216,"swap":16777216}}"#))
        .unwrap();
    let mut w = m.oom_watcher().unwrap();
    assert_eq!(w.wait(Duration::from_secs(10)).unwrap(), OomEvent::Oom);
    let status = hog.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(m.oom_kill_count().unwrap() >= 1);
    drop(hog);
    m.destroy().unwrap();
    // Removing the cgroup ends the stream.
    assert_eq!(w.wait(Duration::from_secs(5)).unwrap(), OomEvent::Gone);
    assert_nothing_left(&dirs, &id);
}

#[test]
fn v1_kill_all_and_pids_limit() {
    if !v1_host() {
        return;
    }
    let id = unique("all");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let parent = Child::sh("sleep 0.3; for i in 1 2 3 4 5 6; do busybox sleep 1000 & done; wait");
    m.apply(parent.pid(), None).unwrap();
    m.set(&res(r#"{"pids":{"limit":4}}"#)).unwrap();
    let dirs = all_dirs(&*m);
    // The limit stops the fork loop: the kernel counts refused forks in pids.events.
    let pids_dir = m.paths().v1["pids"].path.clone();
    wait_until("a refused fork", || {
        read(&pids_dir, "pids.events") != "max 0"
    });
    let n = m.pids().unwrap().len();
    assert!((2..=4).contains(&n), "{n} processes");
    assert!(m.stats().unwrap().pids.current <= 4);
    signal_all(&*m, Signal::SIGCONT, &[]).unwrap();
    assert!(m.pids().unwrap().len() >= 2, "SIGCONT kills nothing");
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    kill_all(&*m, &[], Duration::from_secs(5)).unwrap();
    assert!(m.pids().unwrap().is_empty());
    drop(parent);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}

#[test]
fn v1_relative_and_nested_paths() {
    if !v1_host() {
        return;
    }
    let h = host().unwrap();
    // Relative: under the runtime's own cgroup in each hierarchy (runc's rule).
    let id = unique("rel");
    let mut m = Cg(new(None, &id).unwrap());
    let mem = &m.paths().v1["memory"];
    let own = h.own_dir("memory", &h.v1["memory"]);
    assert_eq!(mem.path, own.join(&id));
    if let Some(u) = &m.paths().unified {
        assert_eq!(u.path, Path::new("/sys/fs/cgroup/unified").join(&id));
    }
    let child = Child::sh("sleep 1000");
    m.apply(child.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    drop(child);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);

    // Nested: the parents Hull made go too (runc leaves them).
    let top = unique("nest");
    let path = format!("/{top}/a/b");
    let mut m = Cg(new(Some(Path::new(&path)), "x").unwrap());
    let child = Child::sh("sleep 1000");
    m.apply(child.pid(), None).unwrap();
    assert!(m.paths().v1["pids"].path.ends_with(format!("{top}/a/b")));
    let dirs = all_dirs(&*m);
    assert!(dirs.iter().any(|d| d.ends_with(&top)));
    drop(child);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &top);
}

/// Restores the cgroup2 root's subtree_control as it was.
struct RootControllers {
    root: PathBuf,
    before: String,
}

impl RootControllers {
    fn save(root: &Path) -> RootControllers {
        RootControllers {
            root: root.to_path_buf(),
            before: read(root, "cgroup.subtree_control"),
        }
    }
}

impl Drop for RootControllers {
    fn drop(&mut self) {
        let now = read(&self.root, "cgroup.subtree_control");
        for c in now.split_whitespace() {
            if !self.before.split_whitespace().any(|b| b == c) {
                let _ = std::fs::write(self.root.join("cgroup.subtree_control"), format!("-{c}"));
            }
        }
    }
}

#[test]
fn hybrid_hugetlb_comes_from_the_unified_hierarchy() {
    let h = host().unwrap();
    if h.mode != Mode::Hybrid
        || h.v1.contains_key("hugetlb")
        || !h.unified_controllers.contains("hugetlb")
    {
        return;
    }
    let _lock = UNIFIED_ROOT.lock().unwrap_or_else(|e| e.into_inner());
    let unified_root = h.unified.as_ref().unwrap().mount_point.clone();
    let _restore = RootControllers::save(&unified_root);
    let id = unique("huge");
    let mut m = Cg(new(Some(Path::new(&format!("/{id}"))), &id).unwrap());
    let child = Child::sh("sleep 1000");
    m.apply(child.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    let size = hugetlb::page_sizes()[0].clone();
    let limit = 4 * 1024 * 1024 * 1024u64;
    m.set(&res(&format!(
        r#"{{"hugepageLimits":[{{"pageSize":"{size}","limit":{limit}}}]}}"#
    )))
    .unwrap();
    let u = m.paths().unified.clone().unwrap().path;
    assert_eq!(read(&u, &format!("hugetlb.{size}.max")), limit.to_string());
    assert!(m.stats().unwrap().hugetlb.contains_key(&size));
    let e = m
        .set(&res(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid hugepage size \"3MB\""), "{e}");
    drop(child);
    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}

/// The v2 manager against the cgroup2 mount this host has (on hybrid, /sys/fs/cgroup/unified,
/// which has no memory/cpu/pids/io controllers; the v2 guest lane covers those).
#[test]
fn v2_manager_on_the_cgroup2_mount() {
    let h = host().unwrap();
    let Some(u) = h.unified.clone() else { return };
    let _lock = UNIFIED_ROOT.lock().unwrap_or_else(|e| e.into_inner());
    let _restore = RootControllers::save(&u.mount_point);
    let id = unique("v2");
    let own = h.own_dir("", &u);
    let mut m = Cg(Box::new(v2::V2::at(
        &u,
        &own,
        Path::new(&format!("/{id}/leaf")),
    )));
    let busy = Child::sh("while :; do :; done");
    m.apply(busy.pid(), None).unwrap();
    let dirs = all_dirs(&*m);
    let dir = m.paths().unified.clone().unwrap().path;
    assert_eq!(dir, u.mount_point.join(&id).join("leaf"));
    assert_eq!(read(&dir, "cgroup.procs"), busy.pid().to_string());
    let cg = procfs::process::Process::new(busy.pid().as_raw())
        .unwrap()
        .cgroups()
        .unwrap();
    assert!(cg
        .0
        .iter()
        .any(|c| c.hierarchy == 0 && c.pathname == format!("/{id}/leaf")));

    // cgroup.freeze really stops it.
    assert!(runs(&*m));
    m.freeze().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    assert!(still(&*m), "a frozen process got cpu time");
    m.thaw().unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(runs(&*m));

    assert_eq!(m.pids().unwrap(), vec![busy.pid().as_raw()]);
    let s = m.stats().unwrap();
    assert!(s.cpu.usage.total > 0, "{s:?}");
    assert_eq!(s.pids.current, 1);

    // What the mount offers is honoured; what it lacks fails naming the file.
    if h.unified_controllers.contains("hugetlb") {
        let size = hugetlb::page_sizes()[0].clone();
        m.set(&res(&format!(
            r#"{{"hugepageLimits":[{{"pageSize":"{size}","limit":2147483648}}]}}"#
        )))
        .unwrap();
        assert_eq!(read(&dir, &format!("hugetlb.{size}.max")), "2147483648");
        let mut unified = std::collections::HashMap::new();
        unified.insert(format!("hugetlb.{size}.max"), "1073741824".to_string());
        let mut r = LinuxResources::default();
        r.set_unified(Some(unified));
        m.set(&r).unwrap();
        assert_eq!(read(&dir, &format!("hugetlb.{size}.max")), "1073741824");
    }
    if !h.unified_controllers.contains("memory") {
        let e = m
            .set(&res(r#"{"memory":{"limit":1048576}}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "write {:?}: \"1048576\": no such file or directory",
                dir.join("memory.max")
            )
        );
        let e = m
            .set(&res(r#"{"unified":{"memory.high":"1"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("controller \"memory\" not available"), "{e}");
    }
    // Device rules become one eBPF program on the cgroup, replaced by a second set.
    let defaults = super::container_resources(&crate::spec::default_spec(false).unwrap());
    m.set(&defaults).unwrap();
    m.set(&defaults).unwrap();
    assert_eq!(super::devices_v2::attached_count(&dir).unwrap(), 1);

    // The stream of events ends when the cgroup empties.
    let mut w = m.oom_watcher().unwrap();
    assert_eq!(
        w.wait(Duration::from_millis(100)).unwrap(),
        OomEvent::Timeout
    );
    drop(busy);
    assert_eq!(w.wait(Duration::from_secs(5)).unwrap(), OomEvent::Gone);

    m.destroy().unwrap();
    assert_nothing_left(&dirs, &id);
}
