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
