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
