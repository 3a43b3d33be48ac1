//! Hull on a pure cgroup-v2 host: this machine kind is hybrid, so [`cgroup_v2_guest`] boots a
//! qemu guest (integration-tests/vm/run-in-v2-guest.sh: Debian's 6.1 kernel, the host's / as its
//! root, cgroup2 alone on /sys/fs/cgroup) once, and runs this same test binary inside it with
//! `--ignored` on the `in_guest_*` tests below, which drive the runtime under test through the
//! ordinary test bed. Their results come back on the host as the guest's libtest output.
//!
//! The guest needs qemu-system-x86 (installed on first use when root) and Debian's kernel package
//! (fetched into `<target>/hull-vm`). When either cannot be had the host test says so on stderr
//! and passes, unless `HULL_REQUIRE_V2_GUEST=1` (CI), which makes it fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::runtime::runtime_binary;
use integration_tests::{Bundle, Runtime};
use serde_json::json;

use crate::read;

/// Set in the guest: the `in_guest_*` tests run only there.
const GUEST_ENV: &str = "HULL_IN_V2_GUEST";

/// The host's suites that run in the guest too, whole: what they check is meant to hold on
/// every host kind (those reading cgroup files read v1 or v2 ones as the host has them).
const GUEST_SUITES: &[&str] = &[
    "lifecycle",
    "cgroups",
    "exec",
    "events",
    "containerd",
    "lsm",
    "descriptors",
    "interrupted",
    "docker",
    "rootless",
    "podman_rootless",
    "cri",
];

/// How long one suite may run in the guest before it is killed (and reported as hung, with what
/// the guest's processes were blocked in), so that the suites after it still run.
const SUITE_BUDGET: Duration = Duration::from_secs(420);

/// What of a host suite runs in the guest when not all of it: environment and test names. Docker's
/// whole scenario list takes about 19 minutes under TCG; the guest runs what cgroup v2 changes (the
/// limits `docker update` sets, the freezer of pause), --userns-remap, and a live-restore. Of the
/// CRI scenarios (all pass there, in about 4 minutes), the two that read and set v2 cgroup files
/// through CRI: UpdateContainerResources and ContainerStats, and OOMKilled from the v2 OOM events.
const GUEST_SELECTION: &[(&str, &str, &[&str])] = &[
    (
        "docker",
        "HULL_DOCKER_SCENARIOS='docker update,top stats pause'",
        &[
            "--exact",
            "docker_runs_containers_through_the_runtime",
            "userns_remap",
            "default_runtime_live_restore_and_build",
        ],
    ),
    (
        "cri",
        "",
        &[
            "--exact",
            "container_stats_and_update_container_resources",
            "container_status_exit_codes_and_oom_killed",
        ],
    ),
];

/// This file's own tests that the guest runs; the host test checks each one reported `ok`.
const IN_GUEST: &[&str] = &[
    "in_guest_pure_v2_host",
    "in_guest_cgroup_namespace_view",
    "in_guest_limits_on_the_host_side",
    "in_guest_default_cgroup_path",
    "in_guest_memory_limit_oom_kills",
    "in_guest_pids_limit_stops_forks",
    "in_guest_pause_resume_update",
    "in_guest_init_and_exec_are_born_in_the_cgroup",
    "in_guest_same_cgroup_files_as_runc",
    "in_guest_io_weight_and_unified_errors",
    "in_guest_v1_only_fields_as_runc",
    "in_guest_userns_oom_score_adj_below_the_callers",
];

fn vm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/run-in-v2-guest.sh")
}

#[test]
fn cgroup_v2_guest() {
    if std::env::var_os(GUEST_ENV).is_some() {
        return;
    }
    let required = std::env::var("HULL_REQUIRE_V2_GUEST").is_ok_and(|v| v == "1");
    if !integration_tests::guest::prepared(&vm_script(), "cgroup-v2", required) {
        return;
    }

    // Built on the host (static: the guest runs it from the shared root as is); the guest's test
    // bed must not start a cargo build of its own.
    let runtime = runtime_binary();
    let exe = std::env::current_exe().expect("current_exe");
    let mut suites: Vec<(String, PathBuf, &str, Vec<String>)> =
        integration_tests::guest::build_suites(GUEST_SUITES)
            .into_iter()
            .map(|(name, path)| {
                let (env, args) = GUEST_SELECTION
                    .iter()
                    .find(|(suite, ..)| *suite == name)
                    .map(|(_, env, args)| (*env, args.iter().map(|a| a.to_string()).collect()))
                    .unwrap_or(("", Vec::new()));
                (name, path, env, args)
            })
            .collect();
    let mut own = vec!["--ignored".to_string(), "--exact".to_string()];
    own.extend(
        IN_GUEST
            .iter()
            .map(|t| integration_tests::guest::test_name(module_path!(), t)),
    );
    suites.push(("cgroup_v2_guest".into(), exe, "", own));

    // One boot for everything; tests run one at a time (two vCPUs under TCG, and two tests at
    // once once locked up the 6.1 guest kernel).
    let dir = integration_tests::tmp::TempDir::new("v2-lane");
    let script = integration_tests::guest::suites_script(
        suites
            .iter()
            .map(|(name, path, env, args)| (name.as_str(), *env, path.as_path(), args.as_slice())),
        SUITE_BUDGET,
    );
    let script_path = dir.join("suites.sh");
    std::fs::write(&script_path, script).expect("write the guest script");
    let (out, took, _) = integration_tests::guest::run_booting_again_on_lockup(|| {
        let mut c = Command::new(vm_script());
        c.arg("bash")
            .arg(&script_path)
            .env("HULL_VM_CACHE", integration_tests::guest::vm_cache())
            .env(GUEST_ENV, "1")
            .env("HULL_TEST_RUNTIME", runtime)
            .env("HULL_REQUIRE_CLIENTS", "1")
            .env("RUST_BACKTRACE", "1");
        c
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "guest run of {} suites with {} took {took:.1?}, exit {}\n--- guest output\n{text}\n--- stderr\n{}",
        suites.len(),
        runtime.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(out.status.success(), "the guest failed: {report}");
    let mut total = 0;
    for (name, ..) in &suites {
        let section = text
            .split(&format!("=== suite {name}\n"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("=== suite {name} exit ")).next())
            .unwrap_or_else(|| panic!("suite {name} did not run in the guest: {report}"));
        if let Some(hung) = integration_tests::guest::timed_out(&text, name) {
            panic!("{hung}\n{report}");
        }
        let failed: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("test ") && l.ends_with("FAILED"))
            .collect();
        assert!(
            failed.is_empty(),
            "in the guest, {name}: {failed:#?}\n{report}"
        );
        let passed: usize = section
            .lines()
            .find_map(|l| l.strip_prefix("test result: ok. "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("suite {name} did not pass in the guest: {report}"));
        assert!(
            passed > 0,
            "suite {name} ran no test in the guest: {report}"
        );
        total += passed;
    }
    for name in IN_GUEST {
        assert!(
            text.contains(&format!(
                "test {} ... ok",
                integration_tests::guest::test_name(module_path!(), name)
            )),
            "{name} did not pass in the guest: {report}"
        );
    }
    eprintln!("{total} tests passed in the cgroup-v2 guest in {took:.1?}");
}

/// True in this lane's guest (see [`crate::in_guest`]).
fn in_guest(test: &str) -> bool {
    crate::in_guest(GUEST_ENV, "cgroup_v2", test)
}

/// The container's cgroup as the host sees it (`/sys/fs/cgroup/<path>`), from its init's
/// /proc/<pid>/cgroup.
fn host_cgroup_of(rt: &Runtime, id: &str) -> PathBuf {
    let pid = rt.state(id)["pid"].as_i64().expect("state has a pid");
    let line = read(format!("/proc/{pid}/cgroup"));
    let path = line
        .strip_prefix("0::")
        .unwrap_or_else(|| panic!("not a pure v2 /proc/{pid}/cgroup: {line:?}"));
    assert_ne!(path, "/", "the container must get a cgroup of its own");
    Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
}

/// Gone within a moment: cgroup removal can trail the exit of the last process slightly.
fn assert_gone(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} left after delete", dir.display());
}

fn limited_bundle(memory: i64, pids: i64) -> Bundle {
    let mut b = Bundle::new();
    b.set(
        "/linux/resources",
        json!({"memory": {"limit": memory}, "pids": {"limit": pids}}),
    );
    b
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_pure_v2_host() {
    if !in_guest("in_guest_pure_v2_host") {
        return;
    }
    // The guest itself: cgroup2 alone, with the controllers the other tests rely on delegated.
    let mounts = read("/proc/self/mounts");
    assert!(
        mounts.contains(" /sys/fs/cgroup cgroup2 "),
        "no cgroup2 on /sys/fs/cgroup:\n{mounts}"
    );
    assert!(
        !mounts.lines().any(|l| l.contains(" cgroup ")),
        "a v1 hierarchy is mounted:\n{mounts}"
    );
    let enabled = read("/sys/fs/cgroup/cgroup.subtree_control");
    for c in ["cpuset", "cpu", "io", "memory", "pids"] {
        assert!(enabled.split(' ').any(|e| e == c), "{c} not in {enabled:?}");
    }
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_cgroup_namespace_view() {
    if !in_guest("in_guest_cgroup_namespace_view") {
        return;
    }
    let rt = Runtime::new();
    let mut b = limited_bundle(64 << 20, 64);
    b.push("/linux/namespaces", json!({"type": "cgroup"}));
    // In its own cgroup namespace the container is at the root of what it sees, and the cgroup2
    // mount of the default config shows its own cgroup's files.
    b.sh("cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max");
    let out = rt.run(&b);
    out.ok();
    assert_eq!(out.out(), "0::/\n67108864\n64", "{out}");
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_limits_on_the_host_side() {
    if !in_guest("in_guest_limits_on_the_host_side") {
        return;
    }
    let rt = Runtime::new();
    let id = rt.new_id();
    let mut b = limited_bundle(48 << 20, 32);
    // A nested path under a parent someone else made and limits (a pod's cgroup under kubelet):
    // the runtime must leave it in place on delete.
    let parent = format!("hull-it-v2-{}", std::process::id());
    let parent_dir = Path::new("/sys/fs/cgroup").join(&parent);
    std::fs::create_dir(&parent_dir).expect("create the parent cgroup");
    b.set("/linux/cgroupsPath", json!(format!("/{parent}/{id}")))
        .args(&["sleep", "1000"]);
    rt.create(&b, &id).ok();
    let cg = host_cgroup_of(&rt, &id);
    assert_eq!(cg, Path::new("/sys/fs/cgroup").join(&parent).join(&id));
    assert_eq!(read(cg.join("memory.max")), (48 << 20).to_string());
    assert_eq!(read(cg.join("pids.max")), "32");
    let pid = rt.state(&id)["pid"].as_i64().expect("pid").to_string();
    assert!(
        read(cg.join("cgroup.procs")).lines().any(|p| p == pid),
        "init {pid} not in {}/cgroup.procs",
        cg.display()
    );

    rt.start(&id).ok();
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    assert_gone(&cg);
    assert!(parent_dir.exists(), "delete removed the parent cgroup");
    std::fs::remove_dir(&parent_dir).expect("remove the parent cgroup");
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_default_cgroup_path() {
    if !in_guest("in_guest_default_cgroup_path") {
        return;
    }
    let rt = Runtime::new();
    let id = rt.new_id();
    let mut b = limited_bundle(40 << 20, 20);
    b.args(&["sleep", "1000"]);
    rt.create(&b, &id).ok();
    let cg = host_cgroup_of(&rt, &id);
    assert_eq!(read(cg.join("memory.max")), (40 << 20).to_string());
    assert_eq!(read(cg.join("pids.max")), "20");
    rt.delete_force(&id).ok();
    assert_gone(&cg);
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_memory_limit_oom_kills() {
    if !in_guest("in_guest_memory_limit_oom_kills") {
        return;
    }
    let rt = Runtime::new();
    let mut b = limited_bundle(32 << 20, 64);
    // A string doubled up to 128 MiB (the guest has no swap to absorb it).
    b.args(&[
        "awk",
        "BEGIN { s = \"x\"; while (length(s) < 134217728) s = s s; print length(s) }",
    ]);
    let out = rt.run(&b);
    assert_eq!(out.code(), 137, "expected an OOM kill (SIGKILL): {out}");
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_pids_limit_stops_forks() {
    if !in_guest("in_guest_pids_limit_stops_forks") {
        return;
    }
    let rt = Runtime::new();
    let mut b = limited_bundle(64 << 20, 8);
    // Each background sleep is one more task; the 8th fork must fail (sh itself is the first).
    b.sh("i=0; while [ $i -lt 16 ]; do sleep 30 & i=$((i+1)); done; echo started $i");
    let out = rt.run(&b);
    assert!(
        !out.stdout.contains("started 16"),
        "16 forks succeeded under pids.max 8: {out}"
    );
    assert!(
        out.stderr.contains("fork") || out.stderr.contains("Resource temporarily unavailable"),
        "no failed fork reported: {out}"
    );
}

/// What containerd's shim does before every runtime call: it raises its own oom_score_adj to
/// containerd's + 1 holding CAP_SYS_RESOURCE, which makes that value its floor, and Docker's
/// config asks for less (0). Only a process with CAP_SYS_RESOURCE in the host's user namespace
/// may go below the floor, so with `--userns-remap` the runtime must set oomScoreAdj itself, not
/// leave it to the process in the container's user namespace (as runc does, before it clones
/// into that namespace): for the init and for an exec. (The host kind lacks CAP_SYS_RESOURCE
/// altogether, so no floor exists there: the guest is where this can fail.)
#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_userns_oom_score_adj_below_the_callers() {
    if !in_guest("in_guest_userns_oom_score_adj_below_the_callers") {
        return;
    }
    let dir = integration_tests::TempDir::new("oom-floor");
    let wrapper = dir.join("runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho 100 > /proc/self/oom_score_adj || exit 99\nexec {:?} \"$@\"\n",
            runtime_binary()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod wrapper");
    let rt = Runtime::with_binary(&wrapper);
    let mut b = Bundle::new();
    b.user_namespace();
    b.set("/process/oomScoreAdj", json!(0))
        .sh("cat /proc/self/oom_score_adj");
    assert_eq!(rt.run(&b).ok().out(), "0");

    b.args(&["sleep", "1000"]);
    let id = rt.started(&b);
    let process = dir.join("process.json");
    std::fs::write(
        &process,
        json!({"args": ["cat", "/proc/self/oom_score_adj"], "cwd": "/", "oomScoreAdj": 0,
               "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
               "user": {"uid": 0, "gid": 0}})
        .to_string(),
    )
    .expect("write process.json");
    let out = rt.exec([
        "exec".as_ref(),
        "--process".as_ref(),
        process.as_os_str(),
        id.as_ref(),
    ]);
    assert_eq!(out.ok().out(), "0");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_pause_resume_update() {
    if !in_guest("in_guest_pause_resume_update") {
        return;
    }
    let rt = Runtime::new();
    let id = rt.new_id();
    let mut b = limited_bundle(64 << 20, 64);
    b.args(&["sleep", "1000"]);
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let cg = host_cgroup_of(&rt, &id);

    // v2 freezes through cgroup.freeze (no freezer hierarchy).
    rt.exec(["pause", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "paused");
    assert_eq!(read(cg.join("cgroup.freeze")), "1");
    rt.exec(["resume", id.as_str()]).ok();
    assert_eq!(rt.status(&id), "running");
    assert_eq!(read(cg.join("cgroup.freeze")), "0");

    rt.exec([
        "update",
        "--memory",
        "100000000",
        "--pids-limit",
        "40",
        id.as_str(),
    ])
    .ok();
    // The kernel rounds memory.max down to whole pages.
    assert_eq!(read(cg.join("memory.max")), "99999744");
    assert_eq!(read(cg.join("pids.max")), "40");

    rt.delete_force(&id).ok();
    assert_gone(&cg);
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_init_and_exec_are_born_in_the_cgroup() {
    if !in_guest("in_guest_init_and_exec_are_born_in_the_cgroup") {
        return;
    }
    // On v2 the runtime clones the init and exec'd processes straight into the container's
    // cgroup (clone3 CLONE_INTO_CGROUP) instead of moving them there after the clone: --debug
    // says which way each went, and the processes must be in the cgroup either way.
    let rt = Runtime::new();
    let id = rt.new_id();
    let mut b = limited_bundle(64 << 20, 64);
    b.args(&["sleep", "1000"]);
    let log = rt.scratch().join("debug.log");
    let with_debug = |args: &[&str]| rt.json_log_cmd(&log).arg("--debug").args(args).output();
    with_debug(&["create", "--bundle", b.path().to_str().unwrap(), &id]).ok();
    let cg = host_cgroup_of(&rt, &id);
    with_debug(&["start", &id]).ok();
    let out = with_debug(&["exec", &id, "cat", "/proc/self/cgroup"]);
    out.ok();
    let text = read(&log);
    let born = text
        .lines()
        .filter(|l| l.contains("cloned into its cgroup"))
        .count();
    assert_eq!(
        born, 2,
        "init and exec not both cloned into the cgroup:\n{text}"
    );
    assert!(!text.contains("clone3(CLONE_INTO_CGROUP) failed"), "{text}");
    let rel = cg.strip_prefix("/sys/fs/cgroup").unwrap();
    // Without a cgroup namespace the exec'd process sees the host path of its cgroup.
    assert_eq!(out.out(), format!("0::/{}", rel.display()), "{out}");
    rt.delete_force(&id).ok();
    assert_gone(&cg);
    rt.assert_no_leaks(&b, &[&id]);
}

/// The cgroup files a container with `resources` gets from `rt`: (file, content) for each of
/// `files` that exists in its cgroup.
fn cgroup_files(
    rt: &Runtime,
    resources: serde_json::Value,
    files: &[&str],
) -> Vec<(String, String)> {
    let id = rt.new_id();
    let mut b = Bundle::new();
    b.set("/linux/resources", resources)
        .args(&["sleep", "1000"]);
    rt.create(&b, &id).ok();
    let cg = host_cgroup_of(rt, &id);
    let got = files
        .iter()
        .filter(|f| cg.join(f).exists())
        .map(|f| (f.to_string(), read(cg.join(f))))
        .collect();
    rt.delete_force(&id).ok();
    assert_gone(&cg);
    rt.assert_no_leaks(&b, &[&id]);
    got
}

/// major:minor of the guest's scratch disk (run-in-v2-guest.sh attaches it as /dev/vda).
fn scratch_disk() -> (i64, i64) {
    let dev = read("/sys/block/vda/dev");
    let (maj, min) = dev.split_once(':').expect("major:minor");
    (maj.parse().unwrap(), min.parse().unwrap())
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_same_cgroup_files_as_runc() {
    if !in_guest("in_guest_same_cgroup_files_as_runc") {
        return;
    }
    // One config touching every v2 conversion runc makes (shares -> weight, swap -> swap.max
    // as swap minus limit, reservation -> low, quota/period -> max, blkio throttles -> io.max,
    // hugetlb, unified); both runtimes must leave the same files.
    let (maj, min) = scratch_disk();
    let resources = json!({
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 33},
        "blockIO": {
            "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 100}]
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "unified": {"memory.high": "50331648"}
    });
    let files = [
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "memory.high",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.max",
        "hugetlb.2MB.max",
    ];
    let hull = cgroup_files(&Runtime::new(), resources.clone(), &files);
    let runc = cgroup_files(
        &Runtime::with_binary(Path::new("/usr/sbin/runc")),
        resources,
        &files,
    );
    assert_eq!(hull, runc, "hull's cgroup files differ from runc's");
    // Not vacuous: the values are the converted ones.
    let get = |f: &str| hull.iter().find(|(n, _)| n == f).map(|(_, v)| v.as_str());
    assert_eq!(get("memory.swap.max"), Some("33554432"));
    assert_eq!(get("cpu.weight"), Some("39"));
    assert_eq!(get("cpu.max"), Some("20000 100000"));
    assert_eq!(
        get("io.max"),
        Some(format!("{maj}:{min} rbps=1048576 wbps=max riops=max wiops=100").as_str())
    );
    assert_eq!(get("hugetlb.2MB.max"), Some("4194304"));
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_io_weight_and_unified_errors() {
    if !in_guest("in_guest_io_weight_and_unified_errors") {
        return;
    }
    let rt = Runtime::new();
    // blockIO.weight lands in io.weight (io.bfq.weight when BFQ is the disk's scheduler), as
    // runc's conversion from the v1 range (10..1000) to v2's (1..10000) gives it.
    let files = cgroup_files(
        &rt,
        json!({"blockIO": {"weight": 500}}),
        &["io.bfq.weight", "io.weight"],
    );
    let runc = cgroup_files(
        &Runtime::with_binary(Path::new("/usr/sbin/runc")),
        json!({"blockIO": {"weight": 500}}),
        &["io.bfq.weight", "io.weight"],
    );
    assert_eq!(files, runc);
    assert!(!files.is_empty());

    // A unified key the kernel does not have is an error naming it, and leaves nothing.
    let mut b = Bundle::new();
    b.set(
        "/linux/resources/unified",
        json!({"memory.no_such_knob": "1"}),
    );
    rt.create_fails(&b).stderr_has(&["memory.no_such_knob"]);
}

/// `create` of a `sleep` container with `resources` by `rt`, logging JSON to a file: whether it
/// worked, and its stderr and log together. Nothing may be left either way.
fn create_outcome(rt: &Runtime, resources: serde_json::Value) -> (bool, String) {
    let id = rt.new_id();
    let mut b = Bundle::new();
    b.set("/linux/resources", resources)
        .args(&["sleep", "1000"]);
    let log = rt.scratch().join(format!("{id}.log"));
    let out = rt
        .json_log_cmd(&log)
        .args(["create", "--bundle"])
        .arg(b.path())
        .last(&id)
        .output();
    let text = format!(
        "{}{}",
        out.stderr,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    if out.success() {
        let cg = host_cgroup_of(rt, &id);
        rt.delete_force(&id).ok();
        assert_gone(&cg);
    }
    rt.assert_no_leaks(&b, &[&id]);
    (out.success(), text)
}

#[test]
#[ignore = "runs inside the cgroup-v2 guest: see cgroup_v2_guest"]
fn in_guest_v1_only_fields_as_runc() {
    if !in_guest("in_guest_v1_only_fields_as_runc") {
        return;
    }
    // Fields with no v2 file, each given to hull and to runc 1.1.5 on this same guest. runc
    // takes all four and does nothing, without a word. Hull takes disableOOMKiller as runc
    // (a client that sets it would fail on every v2 host) with a warning in the log, and
    // deliberately refuses the others: a budget, a swappiness or a class id that silently does
    // nothing is what the house rules forbid. Should runc refuse one, hull must as well.
    let hull = Runtime::new();
    let runc = Runtime::with_binary(Path::new("/usr/sbin/runc"));
    let cases = [
        (
            "disableOOMKiller",
            json!({"memory": {"limit": 64 << 20, "disableOOMKiller": true}}),
        ),
        ("swappiness", json!({"memory": {"swappiness": 10}})),
        (
            "realtimeRuntime",
            json!({"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}),
        ),
        ("classID", json!({"network": {"classID": 1048577}})),
    ];
    for (field, resources) in cases {
        let (hull_ok, hull_text) = create_outcome(&hull, resources.clone());
        let (runc_ok, runc_text) = create_outcome(&runc, resources);
        let record =
            format!("{field}: hull ok={hull_ok} {hull_text:?}\nrunc ok={runc_ok} {runc_text:?}");
        assert!(runc_ok, "runc now refuses {field}:\n{record}");
        assert_eq!(hull_ok, field == "disableOOMKiller", "{record}");
        if hull_ok {
            let warned = hull_text.contains("warning") && hull_text.contains(field);
            assert!(warned, "no warning naming {field}:\n{record}");
        } else {
            let named = hull_text.contains(field) || hull_text.contains("network");
            assert!(named, "hull's error does not name {field}:\n{record}");
        }
    }
}
