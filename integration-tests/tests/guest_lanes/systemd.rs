//! The systemd cgroup driver (`--systemd-cgroup`) on hosts that boot systemd: this machine kind
//! does not, so [`systemd_guest`] boots a qemu guest with systemd as PID 1
//! (integration-tests/vm/run-in-systemd-guest.sh) once with systemd's unified hierarchy (pure
//! cgroup v2) and once with its legacy one (cgroup v1 only), and in each runs the lifecycle,
//! cgroups, exec and events suites with `HULL_IT_SYSTEMD_CGROUP=1` (every runtime command gets
//! `--systemd-cgroup`, every cgroupfs cgroupsPath becomes `system.slice:hull-it:<name>`, and the
//! leak checks also look for units), plus this file's `in_guest_*` tests, which compare the units
//! and cgroup files the runtime under test makes with runc's on the same bundle.
//!
//! Needs what the cgroup-v2 guest needs (qemu-system-x86, Debian's kernel) plus systemd and dbus
//! on the host (the guest's root is the host's /). Without them the host test says so and
//! passes, unless `HULL_REQUIRE_SYSTEMD_GUEST=1` (CI), which makes it fail instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::runtime::{is_hull, only_hull, runtime_binary, SYSTEMD_CGROUP_ENV};
use integration_tests::tmp::unique;
use integration_tests::{cgroupfs, leaks, Bundle, Runtime};
use serde_json::{json, Value};

use crate::read;

/// Set in the guest: the `in_guest_*` tests run only there.
const GUEST_ENV: &str = "HULL_IN_SYSTEMD_GUEST";

/// The host's suites that run in the guest in systemd mode, whole.
const GUEST_SUITES: &[&str] = &["lifecycle", "cgroups", "exec", "events"];

/// How long one suite may run in the guest before it is killed (and reported as hung, with what
/// the guest's processes were blocked in), so that the suites after it still run.
const SUITE_BUDGET: Duration = Duration::from_secs(420);

/// Suites of which the unified boot runs a part, with `--systemd-cgroup` given by their clients:
/// (suite, environment, test arguments). Docker with `native.cgroupdriver=systemd` (the limits of
/// `docker update` and the freezer of pause), and containerd's CRI with `SystemdCgroup = true` and
/// kubelet's slices (a pod's lifecycle, and UpdateContainerResources with ContainerStats).
const GUEST_SELECTION: &[(&str, &str, &[&str])] = &[
    (
        "docker",
        "HULL_DOCKER_SCENARIOS='docker update,top stats pause'",
        &["--exact", "docker_runs_containers_through_the_runtime"],
    ),
    (
        "cri",
        "",
        &[
            "--exact",
            "version_and_the_pod_sandbox_lifecycle",
            "container_stats_and_update_container_resources",
        ],
    ),
];

/// This file's own tests that the guest runs; the host test checks each one reported `ok`.
const IN_GUEST: &[&str] = &[
    "in_guest_systemd_host",
    "in_guest_unit_layout_as_runc",
    "in_guest_unit_properties_and_files_as_runc",
    "in_guest_update_pause_ps_exec_kill_delete",
    "in_guest_create_failures_leave_nothing",
    "in_guest_containerd_runc_systemd_cgroup",
    "in_guest_podman_systemd_cgroup_manager",
];

/// The reference runtime every layout is compared with.
const RUNC: &str = "/usr/sbin/runc";

fn vm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/run-in-systemd-guest.sh")
}

#[test]
fn systemd_guest() {
    if std::env::var_os(GUEST_ENV).is_some() {
        return;
    }
    let required = std::env::var("HULL_REQUIRE_SYSTEMD_GUEST").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = ["/lib/systemd/systemd", "/usr/bin/dbus-daemon", RUNC]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        assert!(!required, "the systemd guest needs {missing:?}");
        eprintln!("SKIPPED systemd_guest: {missing:?} not installed");
        return;
    }
    if !integration_tests::guest::prepared(&vm_script(), "systemd", required) {
        return;
    }

    let runtime = runtime_binary();
    let exe = std::env::current_exe().expect("current_exe");
    let built = integration_tests::guest::build_suites(&all_suites());
    let mut suites: Vec<(String, PathBuf, Vec<String>)> = built
        .iter()
        .filter(|(name, _)| GUEST_SUITES.contains(&name.as_str()))
        .map(|(name, path)| (name.clone(), path.clone(), Vec::new()))
        .collect();
    let mut own = vec!["--ignored".to_string(), "--exact".to_string()];
    own.extend(
        IN_GUEST
            .iter()
            .map(|t| integration_tests::guest::test_name(module_path!(), t)),
    );
    suites.push(("systemd_guest".into(), exe, own));

    let dir = integration_tests::tmp::TempDir::new("systemd-lane");
    // One script per boot: the selections run in the unified one only.
    let script = |suites: &[(String, PathBuf, Vec<String>)], envs: &[String]| {
        // How long systemd took to reach the command (guest time; TCG is ~10x slower).
        let mut script = String::from("echo \"=== booted in $(cut -d' ' -f1 /proc/uptime) s\"\n");
        script.push_str(&integration_tests::guest::suites_script(
            suites.iter().zip(envs).map(|((name, path, args), env)| {
                (name.as_str(), env.as_str(), path.as_path(), args.as_slice())
            }),
            SUITE_BUDGET,
        ));
        // Whatever a suite left in systemd: the leak checks name the test, this the lane.
        // What the guest had left: a global OOM in this 2 GiB guest panics it (TMPDIR is a tmpfs).
        script.push_str("echo '=== memory'; free -m; df -m \"${TMPDIR:-/tmp}\"\n");
        script.push_str(
            "echo '=== units left'; systemctl list-units --all --plain --no-legend --no-pager | grep -E 'hull-it|runc-|hullit|docker-|kubepods' ; echo '=== end'\n",
        );
        script
    };
    let plain_envs = vec![String::new(); suites.len()];
    let mut unified_suites = suites.clone();
    let mut unified_envs = plain_envs.clone();
    for (name, env, args) in GUEST_SELECTION {
        let path = built
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .expect("selected suite built");
        unified_suites.push((
            name.to_string(),
            path,
            args.iter().map(|a| a.to_string()).collect(),
        ));
        unified_envs.push(env.to_string());
    }
    let scripts = [
        (
            "unified",
            script(&unified_suites, &unified_envs),
            &unified_suites,
        ),
        ("legacy", script(&suites, &plain_envs), &suites),
    ];

    // HULL_SYSTEMD_GUEST_BOOTS=legacy (or unified) runs one boot only, when chasing a failure.
    let boots = std::env::var("HULL_SYSTEMD_GUEST_BOOTS").ok();
    let mut failures = Vec::new();
    for (hierarchy, script, suites) in scripts {
        if boots
            .as_deref()
            .is_some_and(|b| !b.split(',').any(|b| b == hierarchy))
        {
            eprintln!("{hierarchy} boot not selected by HULL_SYSTEMD_GUEST_BOOTS");
            continue;
        }
        let script_path = dir.join(format!("suites-{hierarchy}.sh"));
        std::fs::write(&script_path, script).expect("write the guest script");
        let (out, took, _) = integration_tests::guest::run_booting_again_on_lockup(|| {
            let mut c = Command::new(vm_script());
            c.arg("bash")
                .arg(&script_path)
                .env("HULL_VM_CACHE", integration_tests::guest::vm_cache())
                .env("HULL_VM_CGROUP", hierarchy)
                .env(GUEST_ENV, hierarchy)
                .env(SYSTEMD_CGROUP_ENV, "1")
                .env("HULL_TEST_RUNTIME", runtime)
                .env("RUST_BACKTRACE", "1");
            c
        });
        let text = String::from_utf8_lossy(&out.stdout);
        let report = format!(
            "systemd guest ({hierarchy}) run of {} suites with {} took {took:.1?}, exit {}\n--- guest output\n{text}\n--- stderr\n{}",
            suites.len(),
            runtime.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{report}");
        if !out.status.success() {
            failures.push(format!(
                "{hierarchy}: the guest failed:\n{}",
                why_the_guest_failed(&format!("{text}\n{}", String::from_utf8_lossy(&out.stderr)))
            ));
            continue;
        }
        let mut total = 0;
        for (name, ..) in suites.iter() {
            let Some(section) = text
                .split(&format!("=== suite {name}\n"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("=== suite {name} exit ")).next())
            else {
                failures.push(format!("{hierarchy}: suite {name} did not run"));
                continue;
            };
            if let Some(hung) = integration_tests::guest::timed_out(&text, name) {
                failures.push(format!("{hierarchy}: {hung}"));
                continue;
            }
            for l in section.lines() {
                if l.starts_with("test ") && l.ends_with("FAILED") {
                    failures.push(format!("{hierarchy}, {name}: {l}"));
                }
            }
            match section
                .lines()
                .find_map(|l| l.strip_prefix("test result: ok. "))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n > 0 => total += n,
                _ => failures.push(format!("{hierarchy}: suite {name} did not pass")),
            }
        }
        for name in IN_GUEST {
            let full = integration_tests::guest::test_name(module_path!(), name);
            if !text.contains(&format!("test {full} ... ok")) {
                failures.push(format!("{hierarchy}: {name} did not pass"));
            }
        }
        let left = text
            .split("=== units left\n")
            .nth(1)
            .and_then(|r| r.split("=== end").next())
            .unwrap_or("(no unit listing)")
            .trim();
        if !left.is_empty() {
            failures.push(format!("{hierarchy}: units left behind: {left}"));
        }
        let booted = text
            .lines()
            .find_map(|l| l.strip_prefix("=== booted in "))
            .unwrap_or("?");
        eprintln!(
            "{total} tests passed in the systemd guest ({hierarchy}) in {took:.1?}, booted in {booted}"
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The lines of a failed guest's output that say where it was and why the kernel stopped it,
/// for the failure message itself (a CI report may show only the end of the whole output).
fn why_the_guest_failed(output: &str) -> String {
    const KERNEL: &[&str] = &[
        "Kernel panic",
        "not syncing",
        "Out of memory",
        "Killed process",
        "invoked oom-killer",
        "BUG:",
        "Oops",
        "segfault",
        "hung_task",
        "Attempted to kill",
    ];
    let lines: Vec<&str> = output.lines().collect();
    let mut picked: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| KERNEL.iter().any(|k| l.contains(k)))
        .take(40)
        .collect();
    // Where the guest was: the last suite started and the last test lines before the end.
    if let Some(i) = lines.iter().rposition(|l| l.starts_with("=== suite ")) {
        picked.push(lines[i]);
        let tests: Vec<&str> = lines[i..]
            .iter()
            .copied()
            .filter(|l| l.starts_with("test "))
            .collect();
        picked.extend(&tests[tests.len().saturating_sub(3)..]);
    }
    picked.extend(lines.iter().rev().take(5).rev());
    picked.join("\n")
}

fn all_suites() -> Vec<&'static str> {
    let mut all = GUEST_SUITES.to_vec();
    all.extend(GUEST_SELECTION.iter().map(|(s, ..)| *s));
    all
}

/// True in this lane's guest (see [`crate::in_guest`]).
fn in_guest(test: &str) -> bool {
    crate::in_guest(GUEST_ENV, "systemd", test)
}

/// A name unique on the guest for slices and scopes (no `-`: in a slice name it means nesting).
fn unique_name() -> String {
    format!("hullit{}x{}", std::process::id(), unique())
}

/// `systemctl show <unit> -p ...`: (property, value) in the order asked.
fn show(unit: &str, props: &[&str]) -> Vec<(String, String)> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", "--no-pager"]);
    for p in props {
        cmd.args(["-p", p]);
    }
    // A scope with an empty prefix is named "-<name>.scope".
    cmd.args(["--", unit]);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run systemctl show");
    assert!(out.status.success(), "systemctl show {unit} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut got: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // In the order asked; a list property (DeviceAllow) sorted, its order meaning nothing.
    got.sort_by(|(k1, v1), (k2, v2)| {
        let at = |k: &String| props.iter().position(|p| p == k);
        at(k1).cmp(&at(k2)).then(v1.cmp(v2))
    });
    got
}

fn prop(props: &[(String, String)], name: &str) -> String {
    props
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unit of `pid`'s cgroup: the last component of its path in systemd's own hierarchy.
fn unit_of(pid: i32) -> String {
    let dir = if cgroupfs::is_v2() {
        cgroupfs::dir(pid, "")
    } else {
        cgroupfs::dir(pid, "name=systemd")
    };
    dir.file_name()
        .expect("a unit's cgroup")
        .to_string_lossy()
        .into_owned()
}

fn init_pid(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().expect("state has a pid") as i32
}

/// Stops the slices a test asked for (runc leaves a slice it made; so may the runtime under test):
/// they hold no process any more, so nothing of a container goes with them.
fn stop_units(units: &[String]) {
    for u in units {
        let _ = Command::new("systemctl")
            .args(["stop", "--", u])
            .stdin(Stdio::null())
            .output();
    }
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_systemd_host() {
    if !in_guest("in_guest_systemd_host") {
        return;
    }
    // The guest itself: systemd is PID 1, owns the hierarchy the lane asked for, and the system
    // bus answers; otherwise every other test here proves nothing.
    assert_eq!(read("/proc/1/comm"), "systemd");
    let mounts = read("/proc/self/mounts");
    let v2 = mounts.contains(" /sys/fs/cgroup cgroup2 ");
    let want_v2 = std::env::var(GUEST_ENV).is_ok_and(|h| h == "unified");
    assert_eq!(v2, want_v2, "hierarchy:\n{mounts}");
    if !want_v2 {
        assert!(
            mounts.contains(" /sys/fs/cgroup/systemd cgroup "),
            "{mounts}"
        );
        assert!(
            !mounts.contains(" cgroup2 "),
            "a v2 hierarchy is mounted:\n{mounts}"
        );
    }
    let out = Command::new("busctl")
        .args(["--system", "status", "--no-pager"])
        .stdin(Stdio::null())
        .output()
        .expect("run busctl");
    assert!(out.status.success(), "no system bus: {out:?}");
}

/// What `rt` made for `cgroups_path`: whether create worked, and the unit and the cgroup path of
/// the container's init in systemd's own hierarchy. Under the hull, every other hierarchy must
/// hold it in the same place (runc 1.1.5 on the legacy hierarchy sometimes leaves the devices
/// cgroup at the slice). Nothing is left.
fn layout(rt: &Runtime, cgroups_path: &str) -> (bool, String, Vec<String>) {
    let mut b = Bundle::sleeping();
    b.set("/linux/cgroupsPath", json!(cgroups_path));
    let id = rt.new_id();
    let out = rt.create(&b, &id);
    if !out.success() {
        rt.assert_no_leaks(&b, &[&id]);
        return (false, out.stderr.clone(), Vec::new());
    }
    let pid = init_pid(rt, &id);
    let unit = unit_of(pid);
    let active = show(&unit, &["ActiveState"]);
    assert_eq!(prop(&active, "ActiveState"), "active", "{unit}");
    let groups = cgroupfs::mounted_groups(pid);
    let systemd = |g: &&procfs::ProcessCGroup| {
        g.hierarchy == 0 || g.controllers.iter().any(|c| c == "name=systemd")
    };
    let paths: Vec<String> = groups
        .iter()
        .filter(systemd)
        .map(|g| format!("{}:{}", g.controllers.join(","), g.pathname))
        .collect();
    if is_hull() {
        let own = &groups
            .iter()
            .find(systemd)
            .expect("systemd's hierarchy")
            .pathname;
        // On the legacy hierarchy systemd itself sometimes leaves the devices cgroup of a scope
        // in a nested slice at the slice (seen with runc and with hull alike).
        for g in groups
            .iter()
            .filter(|g| !g.controllers.iter().any(|c| c == "devices"))
        {
            assert_eq!(&g.pathname, own, "{g:?}");
        }
    }
    let dirs: Vec<PathBuf> = cgroupfs::dirs(pid).into_iter().map(|(_, d)| d).collect();
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    cgroupfs::assert_removed(&dirs, &[]);
    assert!(
        leaks::units(&[&unit]).is_empty(),
        "{unit} left after delete"
    );
    (true, unit, paths)
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_unit_layout_as_runc() {
    if !in_guest("in_guest_unit_layout_as_runc") {
        return;
    }
    let rt = Runtime::new();
    let runc = Runtime::with_binary(Path::new(RUNC));
    let n = unique_name();
    let top = format!("{n}top");
    let cases = [
        (format!("system.slice:hull-it:{n}a"), "system.slice"),
        (format!(":hull-it:{n}b"), "an empty slice"),
        (format!("system.slice::{n}c"), "an empty prefix"),
        (format!("{top}-inner.slice:hull-it:{n}d"), "a nested slice"),
        (
            format!("system.slice:hull-it:{n}e.slice"),
            "a name that is a slice",
        ),
    ];
    let made = StopOnDrop(vec![
        format!("{top}-inner.slice"),
        format!("{top}.slice"),
        format!("{n}e.slice"),
    ]);
    for (path, what) in &cases {
        let theirs = layout(&runc, path);
        let ours = layout(&rt, path);
        let record = format!(
            "{what} ({path}):\nrunc {theirs:#?}\n{} {ours:#?}",
            rt.binary().display()
        );
        assert_eq!(ours.0, theirs.0, "create worked for one only: {record}");
        if theirs.0 {
            assert_eq!((&ours.1, &ours.2), (&theirs.1, &theirs.2), "{record}");
        }
        eprintln!("{record}");
    }
    // Not vacuous: the layouts are the ones runc documents.
    let (ok, unit, paths) = layout(&rt, &cases[0].0);
    assert!(ok);
    assert_eq!(unit, format!("hull-it-{n}a.scope"));
    assert!(
        paths
            .iter()
            .all(|p| p.ends_with(&format!(":/system.slice/hull-it-{n}a.scope"))),
        "{paths:?}"
    );
    let (ok, _, paths) = layout(&rt, &cases[1].0);
    assert!(ok);
    assert!(
        paths.iter().all(|p| p.contains(":/system.slice/")),
        "{paths:?}"
    );
    let (ok, _, paths) = layout(&rt, &cases[3].0);
    assert!(ok);
    let nested = format!(":/{top}.slice/{top}-inner.slice/hull-it-{n}d.scope");
    assert!(paths.iter().all(|p| p.ends_with(&nested)), "{paths:?}");
    drop(made);
}

/// Slices a test asked for, stopped however the test ends.
struct StopOnDrop(Vec<String>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_units(&self.0);
    }
}

/// Every resource systemd has a property for, and the device rules of the default config.
fn all_resources(v2: bool) -> Value {
    let mut r = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 33},
    });
    if v2 {
        // runc 1.1.5 under systemd's legacy hierarchy fails on blkio.bfq.weight when the disk's
        // scheduler is not BFQ; on v2 the weight is IOWeight.
        r["blockIO"] = json!({"weight": 500});
        r["unified"] = json!({"memory.high": "50331648"});
    }
    r
}

const PROPERTIES: &[&str] = &[
    "Slice",
    "Delegate",
    "MemoryMax",
    "MemoryLow",
    "MemoryHigh",
    "MemorySwapMax",
    "MemoryLimit",
    "CPUWeight",
    "CPUShares",
    "CPUQuotaPerSecUSec",
    "CPUQuotaPeriodUSec",
    "AllowedCPUs",
    "AllowedMemoryNodes",
    "TasksMax",
    "IOWeight",
    "BlockIOWeight",
    "DevicePolicy",
    "DeviceAllow",
];

const V2_FILES: &[&str] = &[
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.swap.max",
    "cpu.weight",
    "cpu.max",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.bfq.weight",
];

const V1_FILES: &[(&str, &str)] = &[
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_period_us"),
    ("cpuset", "cpuset.cpus"),
    ("cpuset", "cpuset.mems"),
    ("pids", "pids.max"),
    ("devices", "devices.list"),
];

/// The cgroup files of `pid` this test compares, as (file, content) for those that exist.
fn files_of(pid: i32) -> Vec<(String, String)> {
    if cgroupfs::is_v2() {
        let dir = cgroupfs::dir(pid, "");
        V2_FILES
            .iter()
            .filter(|f| dir.join(f).exists())
            .map(|f| (f.to_string(), read(dir.join(f))))
            .collect()
    } else {
        V1_FILES
            .iter()
            .map(|(c, f)| (c, f, cgroupfs::dir(pid, c).join(f)))
            .filter(|(.., p)| p.exists())
            .map(|(_, f, p)| {
                let mut v = read(p);
                if *f == "devices.list" {
                    // The kernel lists the rules in the order they were written: a set.
                    let mut lines: Vec<&str> = v.lines().collect();
                    lines.sort_unstable();
                    v = lines.join("\n");
                }
                (f.to_string(), v)
            })
            .collect()
    }
}

/// (name, value) pairs: a unit's properties, a cgroup's files.
type Pairs = Vec<(String, String)>;

/// The unit's properties and the cgroup files `rt` gives a container with [`all_resources`].
fn properties_and_files(rt: &Runtime) -> (Pairs, Pairs) {
    let n = unique_name();
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:hull-it:{n}")),
    );
    b.edit(|c| {
        let devices = c["linux"]["resources"]["devices"].clone();
        let mut r = all_resources(cgroupfs::is_v2());
        r["devices"] = devices;
        c["linux"]["resources"] = r;
    });
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    let pid = init_pid(rt, &id);
    let unit = format!("hull-it-{n}.scope");
    assert_eq!(unit_of(pid), unit);
    let props = show(&unit, PROPERTIES);
    let files = files_of(pid);
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    assert!(leaks::units(&[&n]).is_empty(), "{unit} left after delete");
    (props, files)
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_unit_properties_and_files_as_runc() {
    if !in_guest("in_guest_unit_properties_and_files_as_runc") {
        return;
    }
    let (runc_props, runc_files) = properties_and_files(&Runtime::with_binary(Path::new(RUNC)));
    let (mut props, files) = properties_and_files(&Runtime::new());
    eprintln!("runc: {runc_props:#?}\n{runc_files:#?}\nours: {props:#?}\n{files:#?}");
    if is_hull() && cgroupfs::is_v2() {
        // Deliberately more than runc 1.1.5, which writes io.weight only to the file: hull gives
        // systemd the weight too (blockIO.weight 500 is IOWeight 4950, runc's conversion), so a
        // daemon-reload does not reset it. The file is compared below.
        assert_eq!(prop(&props, "IOWeight"), "4950");
        let runc_io = prop(&runc_props, "IOWeight");
        for p in props.iter_mut().filter(|(n, _)| n == "IOWeight") {
            p.1 = runc_io.clone();
        }
    }
    assert_eq!(
        props, runc_props,
        "the unit's properties differ from runc's"
    );
    assert_eq!(files, runc_files, "the cgroup files differ from runc's");
    // Not vacuous: what runc itself gives on this host.
    assert_eq!(prop(&props, "Slice"), "system.slice");
    assert_eq!(prop(&props, "Delegate"), "yes");
    assert_eq!(prop(&props, "TasksMax"), "33");
    assert!(
        prop(&props, "DeviceAllow").contains("/dev/char/1:3 rwm"),
        "{props:?}"
    );
    let get = |f: &str| files.iter().find(|(n, _)| n == f).map(|(_, v)| v.as_str());
    if cgroupfs::is_v2() {
        assert_eq!(prop(&props, "MemoryMax"), "67108864");
        assert_eq!(prop(&props, "CPUQuotaPerSecUSec"), "200ms");
        assert_eq!(get("memory.max"), Some("67108864"));
        assert_eq!(get("cpu.max"), Some("20000 100000"));
        assert_eq!(get("memory.high"), Some("50331648"));
    } else {
        assert_eq!(get("memory.limit_in_bytes"), Some("67108864"));
        assert_eq!(get("cpu.cfs_quota_us"), Some("20000"));
        assert_eq!(get("cpu.shares"), Some("512"));
    }
    assert_eq!(get("pids.max"), Some("33"));
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_update_pause_ps_exec_kill_delete() {
    if !in_guest("in_guest_update_pause_ps_exec_kill_delete") {
        return;
    }
    let rt = Runtime::new();
    let n = unique_name();
    let unit = format!("hull-it-{n}.scope");
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:hull-it:{n}")),
    )
    .set("/linux/resources/memory", json!({"limit": 64 << 20}))
    .set("/linux/resources/pids", json!({"limit": 33}));
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let pid = init_pid(&rt, &id);
    assert_eq!(unit_of(pid), unit);
    let dirs: Vec<PathBuf> = cgroupfs::dirs(pid).into_iter().map(|(_, d)| d).collect();

    // update: the unit's properties and the files both change.
    rt.exec([
        "update",
        "--memory",
        "100000000",
        "--pids-limit",
        "40",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        &id,
    ])
    .ok();
    let props = show(
        &unit,
        &["TasksMax", "MemoryMax", "MemoryLimit", "CPUQuotaPerSecUSec"],
    );
    assert_eq!(prop(&props, "TasksMax"), "40", "{props:?}");
    assert_eq!(prop(&props, "CPUQuotaPerSecUSec"), "300ms", "{props:?}");
    let memory_prop = if cgroupfs::is_v2() {
        "MemoryMax"
    } else {
        "MemoryLimit"
    };
    assert_eq!(prop(&props, memory_prop), "100000000", "{props:?}");
    let pids = cgroupfs::knob(pid, ("pids", "pids.max"), "pids.max");
    assert_eq!(cgroupfs::value(&pids), "40");
    let memory = cgroupfs::knob(pid, ("memory", "memory.limit_in_bytes"), "memory.max");
    // The kernel rounds the limit down to whole pages.
    assert_eq!(cgroupfs::value(&memory), "99999744");

    // pause/resume through the freezer of the scope's cgroup.
    let freezer = cgroupfs::knob(pid, ("freezer", "freezer.state"), "cgroup.freeze");
    rt.exec(["pause", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "paused");
    let frozen = cgroupfs::value(&freezer);
    assert!(frozen == "1" || frozen == "FROZEN", "{frozen}");
    rt.exec(["resume", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "running");

    // exec joins the scope's cgroup; ps lists init and exec'd processes.
    let own = rt.exec(["exec", id.as_str(), "cat", "/proc/self/cgroup"]);
    let unit_line = own
        .ok()
        .stdout
        .lines()
        .find(|l| l.starts_with("0::") || l.contains("name=systemd"))
        .unwrap_or_default()
        .to_string();
    assert!(
        unit_line.ends_with(&format!("/system.slice/{unit}")),
        "{own}"
    );
    let bg = rt.cmd(["exec", id.as_str(), "sleep", "999"]).spawn();
    // Until the exec'd process is sleep (before, it is the runtime's own setup process).
    let sleeping = |o: &integration_tests::Output| {
        let listed: Vec<i32> = serde_json::from_str(o.out()).unwrap_or_default();
        listed.iter().any(|p| {
            *p != pid
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
        })
    };
    let ps = (0..200)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            rt.exec(["ps", "--format", "json", id.as_str()])
        })
        .find(|o| o.success() && sleeping(o))
        .expect("ps lists the exec'd process");
    let listed: Vec<i32> = serde_json::from_str(ps.out()).expect("ps json");
    assert!(listed.contains(&pid), "{ps}");
    assert_eq!(listed.len(), 2, "{ps}");

    // events --stats reads the scope's cgroup.
    let stats = rt.exec(["events", "--stats", id.as_str()]);
    let stats: Value = serde_json::from_str(stats.ok().out()).expect("events json");
    assert_eq!(stats["data"]["pids"]["current"], json!(2), "{stats}");

    // kill --all reaches every process in the scope.
    rt.exec(["kill", "--all", id.as_str(), "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    // The exec'd sleep was killed too, so its runtime process ends.
    bg.wait();
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    cgroupfs::assert_removed(&dirs, &[&n]);
    assert!(leaks::units(&[&n]).is_empty(), "{unit} left after delete");
    rt.exec(["state", id.as_str()]).failed();
}

/// A runtime wrapper whose calls see no D-Bus: in a mount namespace of their own, the system
/// bus's socket and systemd's private one are covered.
fn without_bus(dir: &Path) -> PathBuf {
    let wrapper = dir.join("runtime-without-bus");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount -t tmpfs tmpfs /run/dbus && mount --bind /dev/null /run/systemd/private && exec \"$0\" \"$@\"' {:?} \"$@\"\n",
            runtime_binary()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the wrapper");
    wrapper
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_create_failures_leave_nothing() {
    if !in_guest("in_guest_create_failures_leave_nothing") {
        return;
    }
    let rt = Runtime::new();
    // The control: the same bundle with a good path and the bus in place works, so each failure
    // below is the one the test sets up, not a driver that cannot create anything.
    let n = unique_name();
    let (ok, unit, _) = layout(&rt, &format!("system.slice:hull-it:{n}"));
    assert!(ok, "a good systemd cgroupsPath fails: {unit}");
    // Malformed cgroupsPaths, in runc's words.
    for bad in ["a:b", "a:b:c:d"] {
        let mut b = Bundle::sleeping();
        b.set("/linux/cgroupsPath", json!(bad));
        rt.create_fails(&b).stderr_has(&[
            "expected cgroupsPath to be of format",
            "slice:prefix:name",
            bad,
        ]);
    }
    let mut b = Bundle::sleeping();
    b.set("/linux/cgroupsPath", json!("x/y.slice:p:n"));
    rt.create_fails(&b).stderr_has(&["invalid slice name"]);

    // A unit name systemd refuses (longer than a unit name may be): its error comes back.
    let long = format!("{}{}", unique_name(), "n".repeat(260));
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:hull-it:{long}")),
    );
    let out = rt.create_fails(&b);
    assert!(leaks::units(&[&long[..20]]).is_empty());
    if is_hull() {
        out.stderr_has(&[&format!("hull-it-{long}.scope")]);
    }

    // No bus to reach systemd on.
    let dir = integration_tests::TempDir::new("no-bus");
    let n = unique_name();
    let nobus = Runtime::with_binary(&without_bus(dir.path()));
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:hull-it:{n}")),
    );
    let out = nobus.create_fails(&b);
    assert!(leaks::units(&[&n]).is_empty());
    cgroupfs::assert_removed(&[], &[&n]);
    if only_hull("runc's words for an unreachable bus name no unit") {
        out.stderr_has(&[&format!("hull-it-{n}.scope")]);
    }

    // A scope of that name already active: runc 1.1.5 joins it (with a deprecation warning),
    // hull must refuse with systemd's error and leave the other scope alone.
    if !only_hull("runc 1.1.5 joins an existing active scope") {
        return;
    }
    let n = unique_name();
    let unit = format!("hull-it-{n}.scope");
    let mut other = Command::new("systemd-run")
        .args(["--scope", "--unit", &unit, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run systemd-run");
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while prop(&show(&unit, &["ActiveState"]), "ActiveState") != "active" {
        assert!(Instant::now() < deadline, "{unit} never became active");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut b = Bundle::sleeping();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:hull-it:{n}")),
    );
    let id = rt.new_id();
    let out = rt.create(&b, &id);
    let still = prop(&show(&unit, &["ActiveState"]), "ActiveState");
    let _ = other.kill();
    let _ = other.wait();
    stop_units(std::slice::from_ref(&unit));
    assert!(!out.success(), "create joined an active scope: {out}");
    // systemd's UnitExists: "Unit <name> was already loaded or has a fragment file."
    out.stderr_has(&[&unit, "already"]);
    assert_eq!(still, "active", "the other scope was touched");
    rt.assert_no_leaks(&b, &[&id]);
}

/// The unit, cgroup path and `Delegate` of the container whose init is `pid`, checked to be a
/// scope of `slice` whose cgroup holds that init.
fn assert_in_scope(pid: i32, slice: &str, name: &str) -> String {
    let unit = unit_of(pid);
    assert!(
        unit.ends_with(".scope") && unit.contains(name),
        "process {pid} is in {unit}, not a scope of {name}"
    );
    let props = show(&unit, &["Slice", "Delegate", "ActiveState", "ControlGroup"]);
    assert_eq!(prop(&props, "Slice"), slice, "{props:?}");
    assert_eq!(prop(&props, "Delegate"), "yes", "{props:?}");
    assert_eq!(prop(&props, "ActiveState"), "active", "{props:?}");
    let cgroup = prop(&props, "ControlGroup");
    let groups = cgroupfs::mounted_groups(pid);
    assert!(
        groups.iter().all(|g| g.pathname == cgroup),
        "{pid} is not in the scope's cgroup {cgroup}: {groups:?}"
    );
    unit
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_containerd_runc_systemd_cgroup() {
    if !in_guest("in_guest_containerd_runc_systemd_cgroup") {
        return;
    }
    use integration_tests::containerd::{Containerd, IMAGE};
    let c = Containerd::start();
    let id = format!("hull-it-ctr-{}", unique_name());
    // What kubelet's SystemdCgroup = true amounts to for the shim: --systemd-cgroup and a
    // slice:prefix:name cgroup, which ctr insists on.
    let run = |flags: &[&str], command: &[&str]| {
        let mut args = vec!["run", "--runc-systemd-cgroup", "--runc-binary"];
        let bin = runtime_binary().display().to_string();
        let root = c.runtime_root().display().to_string();
        let cgroup = format!("system.slice:hull-it:{id}");
        let mut owned = vec![bin, "--runc-root".into(), root, "--cgroup".into(), cgroup];
        owned.extend(flags.iter().map(|f| f.to_string()));
        owned.push(IMAGE.into());
        owned.push(id.clone());
        owned.extend(command.iter().map(|f| f.to_string()));
        args.extend(owned.iter().map(String::as_str));
        c.ctr(args)
    };
    run(&["-d"], &["sleep", "1000"]).ok();
    let pid: i32 = c
        .ctr(["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("task pid");
    let unit = assert_in_scope(pid, "system.slice", &id);
    assert_eq!(unit, format!("hull-it-{id}.scope"));
    // An exec joins the scope too.
    let out = c.ctr([
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "cat",
        "/proc/self/cgroup",
    ]);
    out.ok();
    assert!(
        out.stdout.contains(&unit) || out.stdout.trim() == "0::/",
        "{out}"
    );
    c.ctr(["task", "kill", "-a", "-s", "SIGKILL", &id]).ok();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while c.ctr(["task", "delete", &id]).code != 0 {
        assert!(Instant::now() < deadline, "task {id} never deleted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.ctr(["container", "delete", &id]).ok();
    c.assert_clean(&[&id]);
    assert!(leaks::units(&[&id]).is_empty(), "{unit} left after delete");
}

#[test]
#[ignore = "runs inside the systemd guest: see systemd_guest"]
fn in_guest_podman_systemd_cgroup_manager() {
    if !in_guest("in_guest_podman_systemd_cgroup_manager") {
        return;
    }
    use integration_tests::podman::Podman;
    // The test bed's podman runs with --cgroup-manager systemd in this lane, under a slice of
    // its own.
    let p = Podman::new();
    let name = format!("hullit-pm-{}", unique_name());
    p.run(
        &["-d", "--name", &name, "--memory", "64m"],
        &["sleep", "1000"],
    )
    .ok();
    let id = p.full_id(&name);
    let pid: i32 = p
        .podman(["inspect", "--format", "{{.State.Pid}}", &name])
        .out()
        .parse()
        .expect("inspect pid");
    let unit = assert_in_scope(pid, p.cgroup_parent(), &id);
    assert_eq!(unit, format!("libpod-{id}.scope"));
    let limit = cgroupfs::knob(pid, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(cgroupfs::value(&limit), (64 << 20).to_string());
    let out = p.podman(["exec", &name, "cat", "/proc/self/cgroup"]);
    out.ok();
    p.podman(["stop", "--time", "0", &name]).ok();
    p.podman(["rm", &name]).ok();
    p.assert_clean(&[&id]);
    assert!(leaks::units(&[&id]).is_empty(), "{unit} left after rm");
}
