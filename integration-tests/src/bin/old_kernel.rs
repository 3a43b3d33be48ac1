//! `old_kernel ENOSYS|EPERM PROGRAM ARGS...`: runs PROGRAM as on a kernel older than the calls
//! hull may use beyond its oldest supported kernel (see docs-kernel.md): sets no_new_privs, loads
//! a seccomp filter that answers each of those calls with the given errno (ENOSYS as an old kernel
//! does, EPERM as some container hosts' profiles do) and execs PROGRAM. The filter is inherited by
//! everything PROGRAM starts, containers included. Built static by the test bed.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// The calls newer than Linux 4.14, with the release that added them.
const NEWER: &[(libc::c_long, &str)] = &[
    (libc::SYS_rseq, "4.18"),
    (libc::SYS_pidfd_send_signal, "5.1"),
    (libc::SYS_fsopen, "5.2"),
    (libc::SYS_fsconfig, "5.2"),
    (libc::SYS_fsmount, "5.2"),
    (libc::SYS_fspick, "5.2"),
    (libc::SYS_move_mount, "5.2"),
    (libc::SYS_open_tree, "5.2"),
    (libc::SYS_clone3, "5.3"),
    (libc::SYS_pidfd_open, "5.3"),
    (libc::SYS_openat2, "5.6"),
    (libc::SYS_pidfd_getfd, "5.6"),
    (libc::SYS_faccessat2, "5.8"),
    (libc::SYS_close_range, "5.9"),
    (libc::SYS_epoll_pwait2, "5.11"),
    (libc::SYS_mount_setattr, "5.12"),
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

// Classic BPF opcodes (linux/filter.h) and the seccomp_data offsets of `nr` and `arch`.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const NR: u32 = 0;
const ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    }
}

fn program(errno: u32) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        // Another architecture's calls (none here) go through untouched.
        jump(AUDIT_ARCH, 0, (2 * NEWER.len() + 1) as u8),
        stmt(LD_W_ABS, NR),
    ];
    for (nr, _) in NEWER {
        p.push(jump(*nr as u32, 0, 1));
        p.push(stmt(RET_K, libc::SECCOMP_RET_ERRNO | errno));
    }
    p.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    p
}

fn fail(what: &str) -> ! {
    eprintln!("old_kernel: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(125)
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let errno = match args.first().and_then(|a| a.to_str()) {
        Some("ENOSYS") => libc::ENOSYS,
        Some("EPERM") => libc::EPERM,
        _ => {
            eprintln!("usage: old_kernel ENOSYS|EPERM PROGRAM ARGS...");
            std::process::exit(2)
        }
    };
    let Some(argv) = args
        .get(1..)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .map(|s| CString::new(s.clone().into_vec()))
                .collect::<Result<Vec<_>, _>>()
        })
        .and_then(Result::ok)
    else {
        eprintln!("usage: old_kernel ENOSYS|EPERM PROGRAM ARGS...");
        std::process::exit(2)
    };
    let filter = program(errno as u32);
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail("prctl(PR_SET_NO_NEW_PRIVS)");
    }
    // SAFETY: `prog` points at `filter`, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        fail("seccomp(SECCOMP_SET_MODE_FILTER)");
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated strings in a NULL-terminated array, all alive for the call.
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    fail("exec")
}
