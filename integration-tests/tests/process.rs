//! `process`: args, env, cwd, user, umask, rlimits, capabilities, noNewPrivileges, oomScoreAdj,
//! each checked from inside the container.

use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

/// The value of a `Key:\tvalue` line of /proc/<pid>/status as printed by the container.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {key} in:\n{status}"))
        .trim()
}

/// Capability numbers of the names these tests use (linux/capability.h).
fn cap_mask(names: &[&str]) -> String {
    let bits: u64 = names
        .iter()
        .map(|n| match *n {
            "CAP_CHOWN" => 1u64 << 0,
            "CAP_KILL" => 1 << 5,
            "CAP_SETUID" => 1 << 7,
            "CAP_NET_BIND_SERVICE" => 1 << 10,
            "CAP_NET_RAW" => 1 << 13,
            "CAP_SYS_ADMIN" => 1 << 21,
            "CAP_SYS_RESOURCE" => 1 << 24,
            "CAP_AUDIT_WRITE" => 1 << 29,
            other => panic!("add {other} to cap_mask"),
        })
        .fold(0, |a, b| a | b);
    format!("{bits:016x}")
}

#[test]
fn args_are_passed_verbatim() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&[
        "sh",
        "-c",
        "printf '[%s]' \"$0\" \"$@\"",
        "zero",
        "one two",
        "",
        "*",
    ]);
    assert_eq!(rt.run(&b).ok().out(), "[zero][one two][][*]");
}

#[test]
fn env_is_exactly_the_config_plus_home() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/process/env",
        json!([
            "PATH=/usr/bin:/bin",
            "FOO=bar baz",
            "EMPTY=",
            "HOME=/custom"
        ]),
    )
    .args(&["env"]);
    let out = rt.run(&b);
    let mut vars: Vec<&str> = out.ok().stdout.lines().collect();
    vars.sort();
    assert_eq!(
        vars,
        [
            "EMPTY=",
            "FOO=bar baz",
            "HOME=/custom",
            "PATH=/usr/bin:/bin"
        ]
    );
}

#[test]
fn home_defaults_to_the_users_passwd_entry() {
    // runc and crun set HOME from /etc/passwd when the config does not: programs rely on it.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo $HOME");
    assert_eq!(rt.run(&b).ok().out(), "/root");
}

#[test]
fn path_lookup_uses_the_containers_path() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let tools = b.rootfs().join("opt/tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::write(tools.join("hello"), "#!/bin/sh\necho hello from tools\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(tools.join("hello"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        tools.join("hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.set("/process/env", json!(["PATH=/opt/tools:/bin"]))
        .args(&["hello"]);
    assert_eq!(rt.run(&b).ok().out(), "hello from tools");
    // The host's PATH plays no part: without /bin in the container's PATH, sh is not found.
    b.set("/process/env", json!(["PATH=/opt/tools"]))
        .args(&["sh"]);
    rt.create_fails(&b)
        .stderr_has(&["executable file not found in $PATH"]);
}

#[test]
fn cwd_is_entered() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/cwd", json!("/usr/bin")).args(&["pwd"]);
    assert_eq!(rt.run(&b).ok().out(), "/usr/bin");
}

#[test]
fn missing_cwd_is_created() {
    // runc creates a missing cwd (inside the rootfs, before the root becomes read-only).
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/cwd", json!("/work/here")).args(&["pwd"]);
    assert_eq!(rt.run(&b).ok().out(), "/work/here");
    assert!(b.rootfs().join("work/here").is_dir());
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000]}),
    )
    .args(&["cat", "/proc/self/status"]);
    let out = rt.run(&b);
    let status = out.ok().stdout.as_str();
    assert_eq!(
        status_field(status, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        status_field(status, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1001"; 4]
    );
    let mut groups: Vec<&str> = status_field(status, "Groups").split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["2000", "3000"]);
}

#[test]
fn root_user_has_no_supplementary_groups_from_the_host() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/status"]);
    let out = rt.run(&b);
    assert_eq!(status_field(&out.ok().stdout, "Groups"), "");
    assert_eq!(
        status_field(&out.stdout, "Uid").split_whitespace().next(),
        Some("0")
    );
}

#[test]
fn umask() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/user/umask", json!(0o027)).sh("umask");
    assert_eq!(rt.run(&b).ok().out(), "0027");
    b.remove("/process/user/umask");
    assert_eq!(rt.run(&b).ok().out(), "0022", "runc's default umask");
}

#[test]
fn rlimits() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        ]),
    )
    .args(&["cat", "/proc/self/limits"]);
    let out = rt.run(&b);
    let limits = out.ok().stdout.as_str();
    let row = |name: &str| integration_tests::procfs::limit(limits, name);
    assert_eq!(row("Max open files"), ["512", "768"]);
    assert_eq!(row("Max core file size"), ["0", "0"]);
    assert_eq!(row("Max processes"), ["300", "400"]);
}

#[test]
fn default_capabilities_of_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/status"]);
    let out = rt.run(&b);
    let s = out.ok().stdout.as_str();
    let want = cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(status_field(s, set), want, "{set}");
    }
    // `runc spec` has no inheritable set, and the kernel raises an ambient capability only if
    // it is also inheritable: runc's default config runs with neither (and must not fail).
    assert_eq!(status_field(s, "CapInh"), cap_mask(&[]));
    assert_eq!(status_field(s, "CapAmb"), cap_mask(&[]));
}

#[test]
fn five_capability_sets_of_a_non_root_user() {
    // For a non-root user without file capabilities, exec keeps bounding and inheritable as set,
    // and permitted = effective = ambient: every set is visible on its own.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}))
        .set(
            "/process/capabilities",
            json!({
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
                "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
                "ambient": ["CAP_KILL"],
            }),
        )
        .args(&["cat", "/proc/self/status"]);
    let out = rt.run(&b);
    let s = out.ok().stdout.as_str();
    assert_eq!(
        status_field(s, "CapBnd"),
        cap_mask(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"])
    );
    assert_eq!(
        status_field(s, "CapInh"),
        cap_mask(&["CAP_KILL", "CAP_NET_RAW"])
    );
    assert_eq!(status_field(s, "CapAmb"), cap_mask(&["CAP_KILL"]));
    assert_eq!(status_field(s, "CapPrm"), cap_mask(&["CAP_KILL"]));
    assert_eq!(status_field(s, "CapEff"), cap_mask(&["CAP_KILL"]));
}

#[test]
fn capabilities_of_root_are_limited_by_bounding() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let set = json!(["CAP_CHOWN", "CAP_SETUID"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": set, "permitted": set, "effective": set, "inheritable": [], "ambient": []}),
    )
    .args(&["cat", "/proc/self/status"]);
    let out = rt.run(&b);
    let s = out.ok().stdout.as_str();
    let want = cap_mask(&["CAP_CHOWN", "CAP_SETUID"]);
    assert_eq!(status_field(s, "CapBnd"), want);
    assert_eq!(status_field(s, "CapEff"), want);
    assert_eq!(status_field(s, "CapPrm"), want);
    assert_eq!(status_field(s, "CapInh"), cap_mask(&[]));
    assert_eq!(status_field(s, "CapAmb"), cap_mask(&[]));
}

#[test]
fn dropped_capability_is_enforced() {
    // Without CAP_CHOWN root cannot give a file away; with it, it can.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/root/readonly", json!(false))
        .sh("touch /f && chown 1000 /f && echo chowned || echo refused");
    assert_eq!(rt.run(&b).ok().out(), "refused");
    let set = json!(["CAP_CHOWN"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": set, "permitted": set, "effective": set}),
    );
    assert_eq!(rt.run(&b).ok().out(), "chowned");
}

#[test]
fn no_new_privileges() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/noNewPrivileges", json!(true))
        .args(&["cat", "/proc/self/status"]);
    assert_eq!(status_field(&rt.run(&b).ok().stdout, "NoNewPrivs"), "1");
    b.set("/process/noNewPrivileges", json!(false));
    assert_eq!(status_field(&rt.run(&b).ok().stdout, "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/oomScoreAdj", json!(123))
        .args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(rt.run(&b).ok().out(), "123");
    // Lowering it would need CAP_SYS_RESOURCE, which this host's bounding set lacks.
    b.set("/process/oomScoreAdj", json!(1000));
    assert_eq!(rt.run(&b).ok().out(), "1000");
}

#[test]
fn container_process_is_pid_1_of_its_namespace() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo $$; cat /proc/self/stat | cut -d' ' -f4");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines[0], "1");
    // The parent of `cat` is the shell: pid 1.
    assert_eq!(lines[1], "1");
}

/// config.md spells the flags `SCHED_FLAG_RESET_ON_FORK`, `SCHED_FLAG_DL_OVERRUN`, ...; the spec
/// crate knows two of them by other names. The spec's spelling must work, and do what it says: an
/// init at nice -5 whose children start at nice 0 again.
#[test]
fn scheduler_flags_in_the_specs_spelling() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/process/scheduler",
        json!({"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}),
    );
    // Field 19 of stat is the nice value: the init's, then the forked cut's own.
    b.sh("cut -d' ' -f19 /proc/1/stat; cat /proc/self/stat | cut -d' ' -f19");
    let out = rt.run(&b);
    let nice: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(nice, ["-5", "0"], "{out}");
}

/// config.md: a bounding capability the runtime cannot give MUST be logged, not dropped in silence.
/// This host keeps CAP_SYS_RESOURCE out of every bounding set, so the container runs without it.
#[test]
fn bounding_capability_the_host_lacks_is_a_warning() {
    if !only_hull("runc 1.1.5 drops it without a word") {
        return;
    }
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let sys_resource = u64::from_str_radix(&cap_mask(&["CAP_SYS_RESOURCE"]), 16).unwrap();
    let bnd = u64::from_str_radix(status_field(&own, "CapBnd"), 16).unwrap();
    if bnd & sys_resource != 0 {
        eprintln!("skipped: this host's bounding set has CAP_SYS_RESOURCE");
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/process/capabilities/bounding", json!("CAP_SYS_RESOURCE"))
        .args(&["grep", "CapBnd", "/proc/self/status"]);
    let id = rt.new_id();
    let (out, log) = rt.run_json_logged(&b, &id);
    let inside = u64::from_str_radix(status_field(&out.ok().stdout, "CapBnd"), 16).unwrap();
    assert_eq!(inside & sys_resource, 0, "{out}");
    let warnings = integration_tests::runtime::log_messages(&log, "warning");
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("bounding") && m.contains("CAP_SYS_RESOURCE")),
        "{warnings:?}"
    );
    rt.assert_no_leaks(&b, &[&id]);
}
