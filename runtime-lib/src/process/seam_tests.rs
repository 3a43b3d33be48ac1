//! The init's and `exec`'s sequences run against the recording `Syscall`: the order of the spec's
//! steps, and a failing call stopping the sequence with its step. No privileges needed: nothing is
//! mounted, joined or changed in the test process; the rootfs is a scratch directory.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use super::channel::{self, Channel, Message};
use super::exec::{self, Exec};
use super::init::{self, Init};
use crate::cgroups::SelfJoin;
use crate::error::{InitFailure, InitStep};
use crate::plan::namespaces::NamespacePlan;
use crate::seccomp::{self, Filter};
use crate::syscall::recorder::Recorder;

/// A scratch bundle: `rootfs/` and a bind source `data/`, removed on drop.
struct Bundle(PathBuf);

impl Bundle {
    fn new() -> Bundle {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hull-seam-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["rootfs", "data"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Bundle(dir)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config with a step of each kind: a namespace joined, new ones (a user namespace among them),
/// a tmpfs and a read-only bind, the default devices, a read-only root, hostname, domainname, a
/// sysctl, masked and read-only paths, an rlimit, an AppArmor profile, a user with an additional
/// group, capabilities.
fn spec(bundle: &Bundle, no_new_privileges: bool) -> Spec {
    serde_json::from_value(spec_json(bundle, no_new_privileges)).unwrap()
}

fn spec_json(bundle: &Bundle, no_new_privileges: bool) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "seam",
        "domainname": "example",
        "process": {
            "args": ["/bin/sh"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "capabilities": {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "apparmorProfile": "seam-profile",
            "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
            "noNewPrivileges": no_new_privileges
        },
        "mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]},
            {"destination": "/data", "type": "bind",
             "source": bundle.0.join("data"), "options": ["rbind", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "mount"}, {"type": "uts"}, {"type": "user"},
                {"type": "network", "path": "/proc/self/ns/net"}
            ],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "maskedPaths": ["/proc/fs", "/proc/uptime"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

fn filter(listener: bool) -> Filter {
    let action = if listener {
        "SCMP_ACT_NOTIFY"
    } else {
        "SCMP_ACT_ERRNO"
    };
    let mut json = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": action}]
    });
    if listener {
        json["listenerPath"] = "/run/seam-agent.sock".into();
    }
    seccomp::compile(&serde_json::from_value(json).unwrap()).unwrap()
}

/// The runtime's side of the channel: cgroups applied, id mappings written when asked.
fn runtime(channel: Channel) -> std::thread::JoinHandle<Vec<Message>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        if channel.send(&Message::CgroupsApplied).is_err() {
            return got;
        }
        while let Ok(msg) = channel.recv() {
            if msg == Message::IdMapRequest {
                let _ = channel.send(&Message::IdMapsWritten);
            }
            got.push(msg);
        }
        got
    })
}

/// Two v1 hierarchies to join, the second `name=systemd`'s (the recorder writes nothing).
fn cgroups() -> SelfJoin {
    let mut join = SelfJoin::default();
    for (name, optional) in [("pids", false), ("systemd", true)] {
        let fd = std::fs::File::open("/dev/null").unwrap().into();
        join.push(
            format!("/sys/fs/cgroup/{name}/seam/tasks").into(),
            fd,
            optional,
        );
    }
    join
}

fn fifo_pair() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

/// Runs the init's `prepare` against `rec`; the calls it made, and its failure if any.
fn run_init(
    no_new_privileges: bool,
    filter: Option<&Filter>,
    rec: &Recorder,
) -> Result<Vec<String>, InitFailure> {
    run_init_unsharing(CloneFlags::empty(), no_new_privileges, filter, rec)
}

/// The same with `edit` applied to the config first.
fn run_init_edited(
    edit: fn(&mut serde_json::Value),
    rec: &Recorder,
) -> Result<Vec<String>, InitFailure> {
    run_init_with(CloneFlags::empty(), false, None, rec, edit)
}

/// The same, `unshare` being the namespaces the clone could not make.
fn run_init_unsharing(
    unshare: CloneFlags,
    no_new_privileges: bool,
    filter: Option<&Filter>,
    rec: &Recorder,
) -> Result<Vec<String>, InitFailure> {
    run_init_with(unshare, no_new_privileges, filter, rec, |_| {})
}

fn run_init_with(
    unshare: CloneFlags,
    no_new_privileges: bool,
    filter: Option<&Filter>,
    rec: &Recorder,
    edit: fn(&mut serde_json::Value),
) -> Result<Vec<String>, InitFailure> {
    let bundle = Bundle::new();
    let mut json = spec_json(&bundle, no_new_privileges);
    edit(&mut json);
    let spec: Spec = serde_json::from_value(json).unwrap();
    let plan = NamespacePlan::from_spec(&spec).unwrap();
    let (ours, theirs) = channel::pair().unwrap();
    let runtime = runtime(theirs);
    let (exec_fifo, exec_done) = fifo_pair();
    let rootfs = bundle.0.join("rootfs");
    let init = Init {
        id: "seam",
        spec: &spec,
        bundle: &bundle.0,
        rootfs: &rootfs,
        plan: &plan,
        unshare,
        channel: ours,
        exec_fifo,
        exec_done,
        seccomp: filter,
        console_socket: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        cgroups: std::cell::Cell::new(cgroups()),
    };
    let result = init::prepare(&init, rec);
    drop(init);
    runtime.join().unwrap();
    result.map(|_| rec.calls())
}

/// The index of the first call that starts with `prefix` and ends with `suffix`.
fn position(calls: &[String], (prefix, suffix): (&str, &str)) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix) && c.ends_with(suffix))
        .unwrap_or_else(|| panic!("no call {prefix:?}..{suffix:?} in {calls:#?}"))
}

/// Each call found, each after the one before.
fn assert_order(calls: &[String], steps: &[(&str, &str)]) {
    let mut last = None;
    for &step in steps {
        let at = position(calls, step);
        if let Some((before, prev)) = last {
            assert!(
                at > before,
                "{step:?} (call {at}) is not after {prev:?} (call {before}): {calls:#?}"
            );
        }
        last = Some((at, step));
    }
}

fn absent(calls: &[String], prefix: &str) -> bool {
    !calls.iter().any(|c| c.starts_with(prefix))
}

/// config-linux.md and runtime.md's order, as runc applies it; no_new_privs false: the filter is
/// loaded before the user's ids change and the capabilities go.
#[test]
fn init_runs_the_spec_steps_in_order() {
    let rec = Recorder::default();
    let calls = run_init(false, Some(&filter(false)), &rec).unwrap();
    assert_order(
        &calls,
        &[
            ("prctl PR_SET_PDEATHSIG Some(SIGKILL)", ""),
            ("prctl PR_SET_DUMPABLE false", ""),
            ("sanitize_fds 3", ""),
            // The v1 cgroups joined, before any other step (the runtime's CgroupsApplied first).
            ("join_cgroup", ""),
            // linux.namespaces: the one with a path joined, then the new user namespace mapped.
            ("setns", "CLONE_NEWNET)"),
            ("chdir /", ""),
            ("prctl PR_SET_DUMPABLE true", ""),
            ("setresgid 0", ""),
            ("setresuid 0", ""),
            ("setsid", ""),
            ("keyctl JOIN_SESSION_KEYRING _ses.seam", ""),
            // rootfsPropagation, root.path, mounts in config order, devices.
            ("mount None / None MsFlags(MS_REC | MS_SLAVE)", ""),
            // (Named relative to the working directory when beneath it: `rootfs::reach`.)
            (
                "mount Some(\"",
                "rootfs None MsFlags(MS_BIND | MS_REC) None",
            ),
            ("mount Some(\"tmpfs\") /proc/self/fd/", "Some(\"mode=755\")"),
            (
                "mount Some(\"/proc/self/fd/",
                "MsFlags(MS_RDONLY | MS_BIND | MS_REC) None",
            ),
            ("mknod /proc/self/fd/", ""),
            ("fchownat null 0 0", ""),
            ("symlink pts/ptmx", ""),
            ("pivot_root . .", ""),
            ("umount2 . MntFlags(MNT_DETACH)", ""),
            ("sethostname seam", ""),
            ("setdomainname example", ""),
            ("write /proc/sys/net/ipv4/ip_forward 1", ""),
            // root.readonly, then readonlyPaths, then maskedPaths (a directory, a file).
            (
                "mount None / None MsFlags(MS_RDONLY | MS_REMOUNT | MS_BIND)",
                "",
            ),
            ("mount Some(\"self/fd/", "MsFlags(MS_BIND | MS_REC) None"),
            (
                "mount Some(\"self/fd/",
                "MsFlags(MS_RDONLY | MS_REMOUNT | MS_BIND) None",
            ),
            ("mount Some(\"tmpfs\") self/fd/", "MsFlags(MS_RDONLY) None"),
            ("mount Some(\"self/fd/", "MsFlags(MS_BIND) None"),
            ("setrlimit RLIMIT_NOFILE 1024 1024", ""),
            ("sched_setattr policy 3 nice 7", ""),
            ("ioprio_set 0x4004", ""),
            ("mark_cloexec_from 3", ""),
            ("write /proc/self/attr/", "exec seam-profile"),
            ("drop_bounding_set", ""),
            ("umask 22", ""),
            ("load_seccomp listener=false", ""),
            ("setgroups [Gid(5)]", ""),
            ("setresgid 1000", ""),
            ("setresuid 1000", ""),
            ("apply_capabilities", ""),
        ],
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("chdir /"),
        "cwd last"
    );
    assert!(absent(&calls, "prctl PR_SET_NO_NEW_PRIVS"), "{calls:#?}");
}

/// no_new_privs true: set after the capabilities, and the filter waits for the exec, where it goes
/// in after the signals are reset, right before execve.
#[test]
fn with_no_new_privs_the_filter_is_loaded_right_before_execve() {
    let filter = filter(false);
    let rec = Recorder::default();
    let calls = run_init(true, Some(&filter), &rec).unwrap();
    assert_order(
        &calls,
        &[
            ("setresuid 1000", ""),
            ("apply_capabilities", ""),
            ("prctl PR_SET_NO_NEW_PRIVS", ""),
        ],
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("chdir /"),
        "cwd last"
    );
    assert!(absent(&calls, "load_seccomp"), "{calls:#?}");

    let bundle = Bundle::new();
    let spec = spec(&bundle, true);
    let process = spec.process().as_ref().unwrap();
    let at_exec = init::seccomp_at_exec(process, Some(&filter));
    assert!(at_exec.is_some(), "the exec loads the filter");
    let exec = init::Executable::resolve(process).unwrap();
    let rec = Recorder::default();
    let failure = exec.exec(at_exec, &rec);
    assert_eq!(failure.step, InitStep::Exec);
    assert_eq!(
        rec.calls(),
        [
            "reset_signals",
            "load_seccomp listener=false",
            "execve /bin/sh [\"/bin/sh\"]"
        ]
    );
}

/// A notify listener with no_new_privs: loaded last in the preparation, after the cwd, so its agent
/// has it before `create` returns; the exec loads nothing more.
#[test]
fn with_no_new_privs_a_listener_is_loaded_at_the_end_of_the_preparation() {
    let filter = filter(true);
    let rec = Recorder::default();
    let calls = run_init(true, Some(&filter), &rec).unwrap();
    assert_order(
        &calls,
        &[
            ("prctl PR_SET_NO_NEW_PRIVS", ""),
            ("load_seccomp listener=true", ""),
        ],
    );
    assert_eq!(
        calls[calls.len() - 2..],
        ["chdir /", "load_seccomp listener=true"]
    );
    let bundle = Bundle::new();
    let spec = spec(&bundle, true);
    let process = spec.process().as_ref().unwrap();
    assert!(init::seccomp_at_exec(process, Some(&filter)).is_none());
}

/// linux.personality last, after the executable is found (as runc: it changes how the kernel
/// reports the machine from then on).
#[test]
fn personality_is_set_last() {
    let rec = Recorder::default();
    let calls = run_init_edited(
        |json| json["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"}),
        &rec,
    )
    .unwrap();
    assert_eq!(calls[calls.len() - 2..], ["chdir /", "personality 0x8"]);
}

/// Each call failing in turn: the sequence stops at it, with the step it belongs to.
#[test]
fn a_failing_call_stops_the_init_with_its_step() {
    let cases: &[(&'static str, bool, InitStep)] = &[
        ("prctl PR_SET_PDEATHSIG", false, InitStep::Sync),
        ("setns", false, InitStep::JoinNamespace),
        ("chdir /", false, InitStep::Bundle),
        ("prctl PR_SET_DUMPABLE true", false, InitStep::IdMappings),
        ("setresuid 0", false, InitStep::User),
        ("setsid", false, InitStep::Console),
        ("mount None / None", false, InitStep::RootfsPropagation),
        ("mount Some(\"", false, InitStep::RootfsBind),
        ("mount Some(\"tmpfs\")", false, InitStep::Mount),
        ("join_cgroup", false, InitStep::Cgroups),
        ("mknod", false, InitStep::Devices),
        ("fchownat", false, InitStep::Devices),
        ("pivot_root", false, InitStep::Pivot),
        ("sethostname", false, InitStep::Hostname),
        ("setdomainname", false, InitStep::Domainname),
        ("write /proc/sys/", false, InitStep::Sysctl),
        ("mount Some(\"self/fd/", false, InitStep::ReadonlyPaths),
        ("setrlimit", false, InitStep::Rlimits),
        ("sched_setattr", false, InitStep::Scheduler),
        ("ioprio_set", false, InitStep::IoPriority),
        ("write /proc/self/attr/", false, InitStep::SecurityLabels),
        ("setgroups", false, InitStep::User),
        ("setresgid 1000", false, InitStep::User),
        ("setresuid 1000", false, InitStep::User),
        ("prctl PR_SET_NO_NEW_PRIVS", true, InitStep::NoNewPrivileges),
    ];
    for &(call, no_new_privileges, step) in cases {
        let rec = Recorder::failing(vec![(call, Errno::EIO)]);
        let failure = run_init(no_new_privileges, None, &rec)
            .expect_err(&format!("{call} failing must fail the init"));
        assert_eq!(failure.step, step, "{call}: {failure}");
        assert_eq!(failure.errno, Some(Errno::EIO as i32), "{call}: {failure}");
        let calls = rec.calls();
        let last = calls.last().map(String::as_str).unwrap_or_default();
        assert!(
            last.starts_with(call),
            "{call}: the sequence went on after it: {calls:#?}"
        );
    }
}

/// Namespaces the clone could not make: unshared after the joins, before anything else.
#[test]
fn namespaces_the_clone_could_not_make_are_unshared_after_the_joins() {
    let rec = Recorder::default();
    let calls = run_init_unsharing(CloneFlags::CLONE_NEWUTS, false, None, &rec).unwrap();
    assert_order(
        &calls,
        &[
            ("setns", "CLONE_NEWNET)"),
            ("unshare CloneFlags(CLONE_NEWUTS)", ""),
            ("chdir /", ""),
            ("prctl PR_SET_DUMPABLE true", ""),
            ("mount None / None", ""),
            ("sethostname seam", ""),
        ],
    );
    let rec = Recorder::failing(vec![("unshare", Errno::EPERM)]);
    let failure = run_init_unsharing(CloneFlags::CLONE_NEWUTS, false, None, &rec)
        .expect_err("a failing unshare fails the init");
    assert_eq!(failure.step, InitStep::CreateNamespaces);
    assert_eq!(
        rec.calls().last().map(String::as_str),
        Some("unshare CloneFlags(CLONE_NEWUTS)")
    );
}

/// `exec`'s sequence: the process half of the init's, in the same order.
fn run_exec(rec: &Recorder, filter: Option<&Filter>) -> Result<Vec<String>, InitFailure> {
    let bundle = Bundle::new();
    let mut spec = spec(&bundle, false);
    let namespaces = serde_json::json!([
        {"type": "mount", "path": "/proc/self/ns/mnt"},
        {"type": "network", "path": "/proc/self/ns/net"}
    ]);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_namespaces(Some(serde_json::from_value(namespaces).unwrap()));
    spec.set_linux(Some(linux));
    let plan = NamespacePlan::from_spec(&spec).unwrap();
    let (ours, theirs) = channel::pair().unwrap();
    let runtime = runtime(theirs);
    let exec = Exec {
        process: spec.process().as_ref().unwrap(),
        plan: &plan,
        channel: ours,
        console_socket: None,
        preserve_fds: 0,
        seccomp: filter,
        session_keyring: Some("seam"),
        cgroups: std::cell::Cell::new(cgroups()),
    };
    let result = exec::prepare(&exec, rec);
    drop(exec);
    runtime.join().unwrap();
    result.map(|_| rec.calls())
}

#[test]
fn exec_runs_the_process_steps_in_the_init_order() {
    let rec = Recorder::default();
    let calls = run_exec(&rec, Some(&filter(false))).unwrap();
    assert_order(
        &calls,
        &[
            ("prctl PR_SET_DUMPABLE false", ""),
            ("sanitize_fds 3", ""),
            ("join_cgroup", ""),
            ("setns", "CLONE_NEWNS)"),
            ("setns", "CLONE_NEWNET)"),
            ("keyctl JOIN_SESSION_KEYRING _ses.seam", ""),
            ("setrlimit RLIMIT_NOFILE 1024 1024", ""),
            ("sched_setattr policy 3 nice 7", ""),
            ("ioprio_set 0x4004", ""),
            ("mark_cloexec_from 3", ""),
            ("write /proc/self/attr/", "exec seam-profile"),
            ("drop_bounding_set", ""),
            ("load_seccomp listener=false", ""),
            ("setgroups [Gid(5)]", ""),
            ("setresgid 1000", ""),
            ("setresuid 1000", ""),
            ("apply_capabilities", ""),
        ],
    );
    assert_eq!(calls.last().map(String::as_str), Some("chdir /"));
    for init_only in ["mount", "pivot_root", "sethostname", "setsid"] {
        assert!(absent(&calls, init_only), "{init_only}: {calls:#?}");
    }
}

#[test]
fn a_failing_call_stops_exec_with_its_step() {
    let cases: &[(&'static str, InitStep)] = &[
        ("join_cgroup", InitStep::Cgroups),
        ("setns", InitStep::JoinNamespace),
        ("setrlimit", InitStep::Rlimits),
        ("sched_setattr", InitStep::Scheduler),
        ("write /proc/self/attr/", InitStep::SecurityLabels),
        ("load_seccomp", InitStep::Seccomp),
        ("setresuid 1000", InitStep::User),
        ("chdir /", InitStep::Cwd),
    ];
    for &(call, step) in cases {
        let rec = Recorder::failing(vec![(call, Errno::EIO)]);
        let failure = run_exec(&rec, Some(&filter(false)))
            .expect_err(&format!("{call} failing must fail exec"));
        assert_eq!(failure.step, step, "{call}: {failure}");
        let calls = rec.calls();
        let last = calls.last().map(String::as_str).unwrap_or_default();
        assert!(last.starts_with(call), "{call}: went on: {calls:#?}");
    }
}
