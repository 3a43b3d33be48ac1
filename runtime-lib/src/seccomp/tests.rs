//! Filters installed for real, in forked children (the test thread must stay unfiltered).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::LinuxSeccomp;

use super::*;
use crate::error::Error;

pub(super) fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

/// Forks; the child forbids core dumps, sets no_new_privs, installs `filter` and exits with
/// `f`'s result (100+ when the setup failed). `f` runs in the child, so it must not panic.
pub(super) fn in_child(filter: &Filter, f: impl FnOnce(Option<OwnedFd>) -> i32) -> WaitStatus {
    // SAFETY: the child makes system calls only and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = if setrlimit(Resource::RLIMIT_CORE, 0, 0).is_err() {
                101
            } else if nix::sys::prctl::set_no_new_privs().is_err() {
                102
            } else {
                match install(filter) {
                    Ok(listener) => f(listener),
                    Err(_) => 103,
                }
            };
            // SAFETY: ends the child without running the test harness's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).unwrap(),
    }
}

/// The errno of a raw syscall, 0 when it succeeded.
pub(super) fn errno(nr: libc::c_long, a0: u64, a1: u64) -> i32 {
    // SAFETY: only called with syscalls that read no memory from these arguments.
    let ret = unsafe { libc::syscall(nr, a0, a1) };
    if ret == -1 {
        Errno::last_raw()
    } else {
        0
    }
}

pub(super) fn exited(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

fn signaled(status: WaitStatus) -> Option<Signal> {
    match status {
        WaitStatus::Signaled(_, sig, _) => Some(sig),
        _ => None,
    }
}

/// A fresh directory under the system temp dir.
pub(super) fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hull-seccomp-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

#[test]
fn errno_action_default_eperm_and_custom_errno_ret() {
    let dir = temp_dir("mkdir");
    let (a, b) = (cstr(&dir.join("a")), cstr(&dir.join("b")));
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},
            {"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":28}]}"#,
    ))
    .unwrap();
    let status = in_child(&filter, |_| {
        // SAFETY: valid C strings.
        let mkdir = unsafe { libc::syscall(libc::SYS_mkdir, a.as_ptr(), 0o755) };
        let mkdir = (mkdir, Errno::last_raw());
        // SAFETY: as above.
        let at = unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, b.as_ptr(), 0o755) };
        let at = (at, Errno::last_raw());
        i32::from(mkdir != (-1, libc::EPERM)) | i32::from(at != (-1, libc::ENOSPC)) << 1
    });
    assert_eq!(exited(status), Some(0), "{status:?}");
    assert!(!dir.join("a").exists() && !dir.join("b").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn kill_trap_trace_and_log_actions() {
    let cases = [
        ("SCMP_ACT_KILL_PROCESS", Err(Signal::SIGSYS)),
        ("SCMP_ACT_KILL_THREAD", Err(Signal::SIGSYS)),
        ("SCMP_ACT_KILL", Err(Signal::SIGSYS)),
        ("SCMP_ACT_TRAP", Err(Signal::SIGSYS)),
        // No tracer: the kernel fails the call with ENOSYS.
        ("SCMP_ACT_TRACE", Ok(libc::ENOSYS)),
        ("SCMP_ACT_LOG", Ok(0)),
        ("SCMP_ACT_ALLOW", Ok(0)),
    ];
    for (action, expected) in cases {
        let filter = compile(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["getppid"],"action":"{action}"}}]}}"#
        )))
        .unwrap();
        let status = in_child(&filter, |_| errno(libc::SYS_getppid, 0, 0));
        match expected {
            Ok(e) => assert_eq!(exited(status), Some(e), "{action}: {status:?}"),
            Err(sig) => assert_eq!(signaled(status), Some(sig), "{action}: {status:?}"),
        }
    }
}

#[test]
fn every_operator_compares_64_bits() {
    const V: u64 = 0x1_0000_0005;
    const MASK: u64 = 0xffff_0000_0000_00ff;
    const V2: u64 = 0x1234_0000_0000_0042;
    // One harmless syscall per operator (they ignore their arguments), errnoRet 40 + k.
    let ops = [
        ("SCMP_CMP_NE", libc::SYS_getpid),
        ("SCMP_CMP_LT", libc::SYS_getppid),
        ("SCMP_CMP_LE", libc::SYS_getuid),
        ("SCMP_CMP_EQ", libc::SYS_geteuid),
        ("SCMP_CMP_GE", libc::SYS_getgid),
        ("SCMP_CMP_GT", libc::SYS_getegid),
        ("SCMP_CMP_MASKED_EQ", libc::SYS_getpgrp),
    ];
    let names = [
        "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getpgrp",
    ];
    let entries: Vec<String> = ops
        .iter()
        .zip(names)
        .enumerate()
        .map(|(k, ((op, _), name))| {
            let (value, two) = if *op == "SCMP_CMP_MASKED_EQ" {
                (MASK, V2)
            } else {
                (V, 0)
            };
            format!(
                r#"{{"names":["{name}"],"action":"SCMP_ACT_ERRNO","errnoRet":{},
                   "args":[{{"index":0,"value":{value},"valueTwo":{two},"op":"{op}"}}]}}"#,
                40 + k
            )
        })
        .collect();
    let filter = compile(&profile(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        entries.join(",")
    )))
    .unwrap();
    let xs = [
        0,
        5,
        V - 1,
        V,
        V + 1,
        0x5,
        0x2_0000_0000,
        u64::MAX,
        V2,
        0x1234_5678_9abc_de42,
        V2 + 1,
        0x42,
    ];
    let mut expected = Vec::new();
    for (k, (op, nr)) in ops.iter().enumerate() {
        for x in xs {
            let hit = match *op {
                "SCMP_CMP_NE" => x != V,
                "SCMP_CMP_LT" => x < V,
                "SCMP_CMP_LE" => x <= V,
                "SCMP_CMP_EQ" => x == V,
                "SCMP_CMP_GE" => x >= V,
                "SCMP_CMP_GT" => x > V,
                _ => x & MASK == V2 & MASK,
            };
            expected.push((*nr, x, if hit { 40 + k as i32 } else { 0 }));
        }
    }
    let status = in_child(&filter, |_| {
        match expected
            .iter()
            .position(|(nr, x, e)| errno(*nr, *x, 0) != *e)
        {
            None => 0,
            Some(i) => 1 + i as i32,
        }
    });
    let code = exited(status).unwrap();
    assert_eq!(code, 0, "mismatch at {:?}", expected.get(code as usize - 1));
}

#[test]
fn rules_and_conditions_combine_as_runc() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":20,"args":[
                {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":21,"args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
            {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":21,"args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["getuid"],"action":"SCMP_ACT_ERRNO","errnoRet":22,"args":[{"index":0,"value":10,"op":"SCMP_CMP_GE"}]},
            {"names":["getuid"],"action":"SCMP_ACT_ERRNO","errnoRet":23,"args":[{"index":0,"value":5,"op":"SCMP_CMP_GE"}]},
            {"names":["geteuid"],"action":"SCMP_ACT_ERRNO","errnoRet":24,"args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
            {"names":["geteuid"],"action":"SCMP_ACT_ERRNO","errnoRet":25},
            {"names":["getgid"],"action":"SCMP_ACT_ERRNO","errnoRet":26,"args":[
                {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    let cases: [(libc::c_long, u64, u64, i32); 13] = [
        // Conditions of one entry: ANDed.
        (libc::SYS_getpid, 1, 2, 20),
        (libc::SYS_getpid, 1, 3, 0),
        (libc::SYS_getpid, 0, 2, 0),
        // Entries for one syscall: ORed.
        (libc::SYS_getppid, 1, 0, 21),
        (libc::SYS_getppid, 2, 0, 21),
        (libc::SYS_getppid, 3, 0, 0),
        // Conditional rules with different actions: the first listed wins.
        (libc::SYS_getuid, 12, 0, 22),
        (libc::SYS_getuid, 7, 0, 23),
        (libc::SYS_getuid, 1, 0, 0),
        // An unconditional rule wins over conditional ones.
        (libc::SYS_geteuid, 1, 0, 25),
        // Two conditions on one argument become two rules (runc).
        (libc::SYS_getgid, 1, 0, 26),
        (libc::SYS_getgid, 2, 0, 26),
        (libc::SYS_getgid, 3, 0, 0),
    ];
    let status = in_child(&filter, |_| {
        match cases
            .iter()
            .position(|(nr, a, b, e)| errno(*nr, *a, *b) != *e)
        {
            None => 0,
            Some(i) => 1 + i as i32,
        }
    });
    let code = exited(status).unwrap();
    assert_eq!(code, 0, "case {:?}", cases.get(code as usize - 1));
}

/// i386 syscalls from a 64-bit process: `int 0x80` makes one with AUDIT_ARCH_I386.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32) -> i32 {
    let ret: i32;
    // SAFETY: the i386 entry with a syscall that takes no arguments; the kernel preserves every
    // register but eax and zeroes r8-r11, which are declared clobbered.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") nr as i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        )
    };
    ret
}

/// An i386 syscall with its first argument (in ebx, which Rust's asm cannot name: swapped in).
#[cfg(target_arch = "x86_64")]
fn int80_1(nr: u32, a0: u32) -> i32 {
    let ret: i32;
    // SAFETY: as `int80`; rbx is restored by the second exchange.
    unsafe {
        std::arch::asm!(
            "xchg {a0:r}, rbx",
            "int 0x80",
            "xchg {a0:r}, rbx",
            a0 = inout(reg) u64::from(a0) => _,
            inlateout("eax") nr as i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        )
    };
    ret
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_architectures_are_filtered_apart_from_native() {
    const I386_GETPID: u32 = 20;
    const I386_GETUID32: u32 = 199;
    const I386_GETPPID: u32 = 64;
    const X32_GETPID: i64 = 0x4000_0000 | libc::SYS_getpid;
    const X32_IOCTL: i64 = 0x4000_0000 | 514;
    let all = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":30},
                        {"names":["getuid32"],"action":"SCMP_ACT_ERRNO","errnoRet":31},
                        {"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":32},
                        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":33,
                         "args":[{"index":0,"value":4294967303,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    let status = in_child(&all, |_| {
        let checks = [
            errno(libc::SYS_getpid, 0, 0) == 30,
            int80(I386_GETPID) == -30,
            // getuid32 exists on x86 only: native getuid stays allowed.
            int80(I386_GETUID32) == -31,
            errno(libc::SYS_getuid, 0, 0) == 0,
            // x32 numbers have bit 30 set (this kernel lacks the x32 ABI: the filter answers).
            errno(X32_GETPID, 0, 0) == 30,
            errno(X32_IOCTL, 0, 0) == 32,
            errno(libc::SYS_ioctl, u64::MAX, 0) == 32,
            // 32-bit ABIs compare the low half only (0x1_0000_0007 → 7), 64-bit ones all of it.
            int80_1(I386_GETPPID, 7) == -33,
            int80_1(I386_GETPPID, 8) > 0,
            errno(libc::SYS_getppid, 7, 0) == 0,
            errno(libc::SYS_getppid, 0x1_0000_0007, 0) == 33,
        ];
        checks.iter().position(|ok| !ok).map_or(0, |i| 1 + i as i32)
    });
    assert_eq!(exited(status), Some(0), "{status:?}");

    // Without them listed, compat syscalls hit the bad-architecture action; native ones work.
    let native = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":30}]}"#,
    ))
    .unwrap();
    let i386 = in_child(&native, |_| {
        if errno(libc::SYS_getpid, 0, 0) != 30 {
            return 1;
        }
        int80(I386_GETPID);
        2
    });
    assert_eq!(signaled(i386), Some(Signal::SIGSYS), "{i386:?}");
    let x32 = in_child(&native, |_| {
        errno(X32_GETPID, 0, 0);
        2
    });
    assert_eq!(signaled(x32), Some(Signal::SIGSYS), "{x32:?}");
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    // openat is the highest number named: anything above gets ENOSYS, below the default errno.
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,"syscalls":[
            {"names":["exit_group","exit","rt_sigreturn","getpid","openat"],"action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let status = in_child(&filter, |_| {
        let checks = [
            errno(libc::SYS_getpid, 0, 0) == 0,
            errno(libc::SYS_getppid, 0, 0) == libc::EACCES,
            errno(libc::SYS_openat + 1, 0, 0) == libc::ENOSYS,
            errno(libc::SYS_clone3, 0, 0) == libc::ENOSYS,
            errno(1000, 0, 0) == libc::ENOSYS,
        ];
        checks.iter().position(|ok| !ok).map_or(0, |i| 1 + i as i32)
    });
    assert_eq!(exited(status), Some(0), "{status:?}");

    // Even under a killing default, a newer syscall is refused, not fatal.
    let kill = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[
            {"names":["exit_group","getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let status = in_child(&kill, |_| {
        if errno(libc::SYS_exit_group + 10, 0, 0) != libc::ENOSYS {
            return 1;
        }
        // Below the highest named number and not allowed: killed.
        errno(libc::SYS_getppid, 0, 0);
        2
    });
    assert_eq!(signaled(status), Some(Signal::SIGSYS), "{status:?}");
}

#[test]
fn flags_reach_the_kernel() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":50}]}"#,
    ))
    .unwrap();
    // WAIT_KILLABLE_RECV only goes with a listener (as libseccomp does).
    assert_eq!(
        filter.flags(),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    let status = in_child(&filter, |_| errno(libc::SYS_getppid, 0, 0));
    assert_eq!(exited(status), Some(50), "{status:?}");
}

fn invalid_field(json: &str) -> String {
    match compile(&profile(json)) {
        Err(Error::InvalidConfig { field, problem }) => format!("{field}: {problem}"),
        other => panic!("{json}: {other:?}"),
    }
}

#[test]
fn malformed_profiles_are_clear_errors() {
    let e = invalid_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_KILL","errnoRet":1}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].errnoRet: ") && e.contains("SCMP_ACT_KILL"),
        "{e}"
    );
    let e = invalid_field(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#);
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet: "), "{e}");
    let e = invalid_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index: "),
        "{e}"
    );
    let e = invalid_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.syscalls[0].names: "), "{e}");
    let e = invalid_field(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#);
    assert!(e.starts_with("linux.seccomp.defaultAction: "), "{e}");
    let e = invalid_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.listenerPath: "), "{e}");
    let e = invalid_field(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].names: ") && e.contains("write"),
        "{e}"
    );
    let e = invalid_field(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"m"}"#);
    assert!(e.starts_with("linux.seccomp.listenerMetadata: "), "{e}");

    // Unknown names of actions, architectures and operators fail when config.json is parsed.
    for (bad, word) in [
        (r#"{"defaultAction":"SCMP_ACT_FOO"}"#, "SCMP_ACT_FOO"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}"#,
            "SCMP_ARCH_Z80",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#,
            "SCMP_CMP_XX",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_NOPE"]}"#,
            "SECCOMP_FILTER_FLAG_NOPE",
        ),
    ] {
        let config = format!(r#"{{"ociVersion":"1.0.2","linux":{{"seccomp":{bad}}}}}"#);
        match crate::bundle::parse(config.as_bytes(), Path::new("config.json")) {
            Err(e @ Error::ConfigSyntax { .. }) => {
                assert!(e.to_string().contains(word), "{e}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn unknown_syscall_names_and_foreign_architectures_are_skipped() {
    let filter = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PPC64LE","SCMP_ARCH_S390X"],
            "syscalls":[{"names":["no_such_syscall","getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":60}]}"#,
    ))
    .unwrap();
    let status = in_child(&filter, |_| errno(libc::SYS_getppid, 0, 0));
    assert_eq!(exited(status), Some(60), "{status:?}");
}

#[test]
fn supported_lists_what_the_spec_names() {
    let (actions, operators, archs, flags) = supported();
    assert_eq!(actions.len(), 9);
    assert_eq!(operators.len(), 7);
    assert!(archs.contains(&"SCMP_ARCH_X86_64") && archs.len() == 23);
    assert_eq!(flags.len(), 4);
    // Each name parses as the spec type it lists.
    for a in actions {
        serde_json::from_str::<oci_spec::runtime::LinuxSeccompAction>(&format!("{a:?}")).unwrap();
    }
    for a in archs {
        serde_json::from_str::<oci_spec::runtime::Arch>(&format!("{a:?}")).unwrap();
    }
}
