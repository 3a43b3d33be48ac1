//! linux.seccomp, observed from inside real containers.

use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

fn with_profile(script: &str, profile: serde_json::Value) -> Bundle {
    let mut b = Bundle::new();
    b.sh(script);
    b.set("/linux/seccomp", profile);
    b
}

#[test]
fn denied_syscall_fails_with_eperm_and_others_work() {
    let rt = Runtime::new();
    let b = with_profile(
        "mkdir /tmp/x 2>&1; echo rc=$?; echo still-running",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let out = rt.run(&b);
    let text = out.out();
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(
        text.contains("rc=1") && text.contains("still-running"),
        "{text}"
    );
    // The filter is really installed in the container's process.
    let b = with_profile(
        "grep Seccomp: /proc/self/status",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    assert!(rt.run(&b).ok().out().contains("Seccomp:\t2"));
}

#[test]
fn errno_ret_reaches_the_process() {
    let rt = Runtime::new();
    // ENOSPC (28): "No space left on device".
    let b = with_profile(
        "mkdir /tmp/y 2>&1; true",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}),
    );
    let out = rt.run(&b);
    assert!(out.out().contains("No space left on device"), "{out}");
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let rt = Runtime::new();
    let b = with_profile(
        "mkdir /tmp/z; echo status $?",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    let out = rt.run(&b);
    // The shell's child is killed by SIGSYS (128 + 31); the shell itself goes on.
    assert_eq!(out.out(), "status 159", "{out}");
    let b = with_profile(
        "exec mkdir /tmp/z",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    assert_eq!(rt.run(&b).code(), 128 + 31, "killed by SIGSYS");
}

#[test]
fn argument_rule_blocks_one_value_only() {
    let rt = Runtime::new();
    // umask(2) with 077 is refused, any other mask allowed.
    let b = with_profile(
        "umask 022 && echo ok1; umask 077 2>/dev/null && echo ok2 || echo denied",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["umask"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 63, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let out = rt.run(&b);
    assert!(out.out().contains("ok1"), "{out}");
    assert!(!out.out().contains("ok2"), "{out}");
}

#[test]
fn allow_list_with_errno_default() {
    if !only_hull("runc's Go init makes syscalls of its own after loading the filter (futex...)") {
        return;
    }
    let rt = Runtime::new();
    // A deny-by-default profile: busybox works with what it needs, anything else is ENOSYS-like.
    let allowed = [
        "execve",
        "brk",
        "mmap",
        "munmap",
        "mprotect",
        "arch_prctl",
        "set_tid_address",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "write",
        "writev",
        "read",
        "exit",
        "exit_group",
        "ioctl",
        "fcntl",
        "close",
        "openat",
        "newfstatat",
        "fstat",
        "stat",
        "prlimit64",
        "set_robust_list",
        "rseq",
        "getcwd",
        "uname",
        "lseek",
        "dup2",
        "dup3",
    ];
    let b = with_profile(
        "echo hello",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
               "syscalls": [{"names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW"},
                            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}),
    );
    assert_eq!(rt.run(&b).ok().out(), "hello");
}

#[test]
fn malformed_profile_fails_create_and_leaves_nothing() {
    if !only_hull("runc 1.1.5 accepts errnoRet on SCMP_ACT_ALLOW, against config-linux.md") {
        return;
    }
    let rt = Runtime::new();
    let b = with_profile(
        "true",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
    );
    rt.create_fails(&b).stderr_has(&["errnoRet"]);
    let b = with_profile("true", json!({"defaultAction": "SCMP_ACT_NOPE"}));
    rt.create_fails(&b).stderr_has(&["SCMP_ACT_NOPE"]);
}

#[test]
fn notify_listener_reaches_listener_path() {
    let rt = Runtime::new();
    let sock = integration_tests::ConsoleSocket::bind(&rt.scratch().join("agent.sock"));
    let b = with_profile(
        "mkdir /dev/shm/x 2>&1; echo rc=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "listenerPath": sock.path(), "listenerMetadata": "meta",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| rt.run(&b));
        // The agent gets the listener during create; closing it unanswered makes the notified
        // syscall fail with ENOSYS, which the container then shows.
        let listener = sock.master(std::time::Duration::from_secs(20));
        let target = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&listener)
        ))
        .unwrap();
        assert_eq!(target.to_string_lossy(), "anon_inode:seccomp notify");
        drop(listener);
        run.join().unwrap()
    });
    assert!(out.out().contains("Function not implemented"), "{out}");
}

#[test]
fn docker_default_profile_runs_busybox_and_refuses_unshare_and_mount() {
    let rt = Runtime::new();
    let profile: serde_json::Value = serde_json::from_str(include_str!(
        "../../runtime-lib/tests/fixtures/seccomp/docker-default.json"
    ))
    .unwrap();
    let script =
        "echo start; ls / >/dev/null && echo ls-ok; unshare -n true 2>&1; echo unshare=$?; \
                  mount -t tmpfs none /mnt 2>&1; echo mount=$?";
    // With CAP_SYS_ADMIN, so that only the filter can be what refuses unshare and mount.
    let admin = |b: &mut Bundle| {
        for set in ["bounding", "effective", "permitted"] {
            b.push(
                &format!("/process/capabilities/{set}"),
                json!("CAP_SYS_ADMIN"),
            );
        }
    };
    let mut without = Bundle::new();
    without.sh(script);
    admin(&mut without);
    let unfiltered = rt.run(&without);
    assert!(unfiltered.out().contains("unshare=0"), "{unfiltered}");
    let mut b = with_profile(script, profile);
    admin(&mut b);
    let out = rt.run(&b);
    let text = out.out();
    assert!(text.starts_with("start\nls-ok"), "{out}");
    assert!(
        text.contains("unshare=1") && text.contains("mount=1"),
        "{out}"
    );
    assert!(text.contains("Operation not permitted"), "{out}");
}

/// Answers one notification on `listener`: `None` lets the syscall run, `Some(e)` fails it.
fn answer(listener: &std::os::fd::OwnedFd, error: Option<i32>) {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid seccomp_notif (the kernel wants it zeroed); the ioctl fills it.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `notif` lives across the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_RECV");
    let mut resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: 0,
        error: error.map_or(0, |e| -e),
        flags: if error.is_none() {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: `resp` lives across the call; the kernel only reads it.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
    assert_eq!(r, 0, "SECCOMP_IOCTL_NOTIF_SEND");
}

#[test]
fn notify_agent_answers_continue_then_an_errno() {
    let rt = Runtime::new();
    let sock = integration_tests::ConsoleSocket::bind(&rt.scratch().join("agent.sock"));
    let b = with_profile(
        "mkdir /dev/shm/a && echo a-made; mkdir /dev/shm/b 2>&1; echo done",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock.path(),
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| rt.run(&b));
        let listener = sock.master(std::time::Duration::from_secs(20));
        answer(&listener, None);
        answer(&listener, Some(libc::ENOSPC));
        run.join().unwrap()
    });
    let text = out.out();
    assert!(text.starts_with("a-made"), "{out}");
    assert!(text.contains("No space left on device"), "{out}");
}

const EPERM: i64 = 1;
const ENOSYS: i64 = 38;

/// A profile that allows everything but `name`, refused with `errno`.
fn deny(name: &str, errno: i64) -> serde_json::Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]})
}

/// Runs `true` (the runtime's PATH lookup included) with `profile`, then, with `exec`, execs `true`
/// into a sleeping container with the same profile; panics naming `what` if either fails.
fn runs_and_execs(rt: &Runtime, nnp: bool, exec: bool, profile: &serde_json::Value, what: &str) {
    let user = |b: &mut Bundle| {
        b.set("/process/noNewPrivileges", json!(nnp));
        // Not root, so the runtime hands stdio (files of root's here) to the user: fchown.
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        b.set("/linux/seccomp", profile.clone());
    };
    let mut b = Bundle::new();
    user(&mut b);
    let out = rt.run(&b);
    assert!(out.success(), "run, {what}, nnp={nnp}: {out}");
    if !exec {
        return;
    }
    let mut sleeping = Bundle::sleeping();
    user(&mut sleeping);
    let id = rt.new_id();
    rt.create(&sleeping, &id).ok();
    rt.start(&id).ok();
    let out = rt.exec(["exec", &id, "true"]);
    assert!(out.success(), "exec, {what}, nnp={nnp}: {out}");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&sleeping, &[&id]);
}

/// What the runtime does between loading the filter and the execve (with noNewPrivileges false;
/// see hull's process::init::take_identity) and can do without, or did there before it moved
/// ahead of the filter: each refused in turn, with EPERM (a profile's usual answer) and ENOSYS (an
/// older kernel's), must leave `run` and `exec` working.
const OPTIONAL_AFTER_FILTER: [&str; 12] = [
    "access",         // the PATH lookup's check: left to the execve
    "statx",          // the PATH lookup's stat: std falls back to newfstatat
    "newfstatat",     // the stdio owner's stat: before the filter now
    "fchown",         // stdio handed to the user: before the filter now
    "umask",          // before the filter now
    "close_range",    // before the filter, and a /proc/self/fd walk if refused
    "openat",         // /etc/passwd for HOME: "/" then
    "fcntl",          // channel checks
    "sendto",         // Ready to the runtime: write(2) instead
    "recvmsg",        // the runtime's Proceed: read(2) instead
    "rt_sigaction",   // the signal reset: left as they are
    "rt_sigprocmask", // the signal mask reset: left as it is
];

/// With no_new_privs only the execve runs under the filter (init and exec share that code): `run`
/// alone shows it.
fn optional_calls_refused(nnp: bool) {
    let exec = !nnp;
    if !only_hull("runc's Go init needs more of these (its runtime's own calls)") {
        return;
    }
    let rt = Runtime::new();
    for name in OPTIONAL_AFTER_FILTER {
        for errno in [EPERM, ENOSYS] {
            let what = format!("{name} errno {errno}");
            runs_and_execs(&rt, nnp, exec, &deny(name, errno), &what);
        }
    }
    // The bounding set (prctl PR_CAPBSET_DROP 24, PR_CAPBSET_READ 23) is made before the filter: a
    // profile may refuse those prctl options and allow the others the capability change needs.
    for errno in [EPERM, ENOSYS] {
        let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno,
             "args": [{"index": 0, "value": 24, "op": "SCMP_CMP_EQ"}]},
            {"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno,
             "args": [{"index": 0, "value": 23, "op": "SCMP_CMP_EQ"}]}]});
        let what = format!("prctl(PR_CAPBSET_*) errno {errno}");
        runs_and_execs(&rt, nnp, exec, &profile, &what);
        // And the bounding set is the config's (runc spec's: AUDIT_WRITE, KILL, NET_BIND_SERVICE),
        // not left whole because the kernel's capability list could not be read.
        let mut b = with_profile("grep CapBnd /proc/self/status", profile);
        b.set("/process/noNewPrivileges", json!(nnp));
        let out = rt.run(&b);
        assert_eq!(out.ok().out(), "CapBnd:\t0000000020000420", "{what}");
    }
}

#[test]
fn optional_calls_refused_by_the_profile_nnp_false() {
    optional_calls_refused(false);
}

#[test]
fn optional_calls_refused_by_the_profile_nnp_true() {
    optional_calls_refused(true);
}

/// What config-linux.md makes the runtime do under the filter when noNewPrivileges is false (the
/// filter comes before the capabilities are dropped): a profile that refuses it fails create,
/// naming the step and the call. With noNewPrivileges the filter is loaded right before the
/// execve, and the same profiles run.
#[test]
fn required_calls_refused_fail_naming_the_step() {
    if !only_hull("hull's own error messages") {
        return;
    }
    let rt = Runtime::new();
    let required: [(&str, &[&str]); 7] = [
        ("setgroups", &["set user", "setgroups"]),
        ("setresgid", &["set user", "setresgid"]),
        ("setresuid", &["set user", "setresuid"]),
        ("capget", &["set capabilities", "capget"]),
        ("capset", &["set capabilities", "capset"]),
        ("chdir", &["chdir to cwd"]),
        ("getcwd", &["chdir to cwd", "getcwd"]),
    ];
    for (name, words) in required {
        let mut b = Bundle::new();
        b.set("/process/noNewPrivileges", json!(false));
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        b.set("/linux/seccomp", deny(name, EPERM));
        let out = rt.create_fails(&b);
        out.stderr_has(words);
        out.stderr_has(&["operation not permitted"]);
        b.set("/process/noNewPrivileges", json!(true));
        let out = rt.run(&b);
        assert!(out.success(), "{name} with noNewPrivileges: {out}");
    }
    // `exec` the same: the container runs as root, and its profile refuses only the exec's uid.
    let mut b = Bundle::sleeping();
    b.set("/process/noNewPrivileges", json!(false));
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["setresuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
             "args": [{"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let out = rt.exec(["exec", "--user", "1000:1000", &id, "true"]);
    out.failed()
        .stderr_has(&["set user", "uid 1000", "setresuid: operation not permitted"]);
    rt.exec(["exec", &id, "true"]).ok();
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// Docker's default profile as it was around 2019 (its shape: SCMP_ACT_ERRNO by default and a
/// long allow-list), before the calls of Linux 5.1 and later were added to it: no close_range,
/// openat2, clone3, pidfd_*, faccessat2, epoll_pwait2, mount_setattr, rseq... Engines and the
/// conformance tools ship such lists; the runtime must not need more than they allow.
fn profile_2019() -> serde_json::Value {
    const NEWER: [&str; 37] = [
        "rseq",
        "pidfd_send_signal",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "pidfd_open",
        "clone3",
        "openat2",
        "pidfd_getfd",
        "faccessat2",
        "close_range",
        "process_madvise",
        "epoll_pwait2",
        "mount_setattr",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
        "quotactl_fd",
        "memfd_secret",
        "process_mrelease",
        "futex_waitv",
        "set_mempolicy_home_node",
        "cachestat",
        "fchmodat2",
        "map_shadow_stack",
        "futex_wake",
        "futex_wait",
        "futex_requeue",
        "statmount",
        "listmount",
        "mseal",
    ];
    let mut profile: serde_json::Value = serde_json::from_str(include_str!(
        "../../runtime-lib/tests/fixtures/seccomp/docker-default.json"
    ))
    .unwrap();
    let rules = profile["syscalls"].as_array_mut().unwrap();
    for rule in rules.iter_mut() {
        let names = rule["names"].as_array_mut().unwrap();
        names.retain(|n| !NEWER.contains(&n.as_str().unwrap_or("")));
    }
    rules.retain(|r| !r["names"].as_array().unwrap().is_empty());
    let allowed = profile["syscalls"].to_string();
    assert!(!allowed.contains("close_range") && !allowed.contains("\"clone3\""));
    assert!(allowed.contains("\"capset\"") && allowed.contains("\"setresuid\""));
    profile
}

#[test]
fn allow_list_of_2019_runs_and_execs() {
    let rt = Runtime::new();
    let profile = profile_2019();
    for nnp in [false, true] {
        let mut b = with_profile("echo hello; id -u", profile.clone());
        b.set("/process/noNewPrivileges", json!(nnp));
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        assert_eq!(rt.run(&b).ok().out(), "hello\n1000", "nnp={nnp}");
        let mut sleeping = Bundle::sleeping();
        sleeping.set("/process/noNewPrivileges", json!(nnp));
        sleeping.set("/linux/seccomp", profile.clone());
        let id = rt.new_id();
        rt.create(&sleeping, &id).ok();
        rt.start(&id).ok();
        let out = rt.exec(["exec", &id, "sh", "-c", "echo in-exec"]);
        assert_eq!(out.ok().out(), "in-exec", "nnp={nnp}");
        rt.delete_force(&id).ok();
        rt.assert_no_leaks(&sleeping, &[&id]);
    }
}
