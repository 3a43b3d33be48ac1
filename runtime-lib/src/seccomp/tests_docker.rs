//! Docker's default profile (tests/fixtures/seccomp/docker-default.json) under Hull's compiler.

use std::ffi::CString;

use nix::errno::Errno;

use super::tests::{cstr, errno, exited, in_child, profile, temp_dir};
use super::*;

const DOCKER_DEFAULT: &str = include_str!("../../tests/fixtures/seccomp/docker-default.json");

#[test]
fn docker_default_profile_runs_busybox_and_blocks_the_dangerous() {
    let filter = compile(&profile(DOCKER_DEFAULT)).unwrap();
    let dir = temp_dir("docker");
    let script = format!(
        "mkdir {d}/a && echo hi > {d}/a/f && cat {d}/a/f | grep -q hi && ls / >/dev/null && \
         busybox true",
        d = dir.display()
    );
    let busybox = CString::new("/usr/bin/busybox").unwrap();
    let argv = |args: &[&str]| -> Vec<CString> {
        args.iter().map(|a| CString::new(*a).unwrap()).collect()
    };
    let exec = |args: &[CString]| {
        let _ = nix::unistd::execv(&busybox, args);
        104
    };
    let shell = argv(&["busybox", "sh", "-c", &script]);
    let status = in_child(&filter, |_| exec(&shell));
    assert_eq!(exited(status), Some(0), "{status:?}");
    assert_eq!(std::fs::read_to_string(dir.join("a/f")).unwrap(), "hi\n");

    let unshare = argv(&["busybox", "unshare", "-m", "true"]);
    let status = in_child(&filter, |_| exec(&unshare));
    assert!(
        matches!(exited(status), Some(c) if c != 0 && c != 104),
        "{status:?}"
    );

    let target = cstr(&dir);
    let tmpfs = CString::new("tmpfs").unwrap();
    let status = in_child(&filter, |_| {
        let newuser = (libc::CLONE_NEWUSER | libc::CLONE_FS) as u64;
        // SAFETY: mount with valid C strings; it must be refused before reading them anyway.
        let mount = unsafe {
            libc::syscall(
                libc::SYS_mount,
                tmpfs.as_ptr(),
                target.as_ptr(),
                tmpfs.as_ptr(),
                0,
                0,
            )
        };
        let checks = [
            mount == -1 && Errno::last_raw() == libc::EPERM,
            errno(libc::SYS_unshare, libc::CLONE_NEWNS as u64, 0) == libc::EPERM,
            errno(libc::SYS_keyctl, 0, 0) == libc::EPERM,
            errno(libc::SYS_setns, 0, 0) == libc::EPERM,
            // Allowed, this flag combination would be EINVAL from the kernel.
            errno(libc::SYS_clone, newuser, 0) == libc::EPERM,
            errno(libc::SYS_clone3, 0, 0) == libc::ENOSYS,
            // Newer than every syscall the profile names (fchmodat2, 452).
            errno(452, 0, 0) == libc::ENOSYS,
            errno(libc::SYS_kexec_load, 0, 0) == libc::EPERM,
            // personality: the query and PER_LINUX32 are allowed, ADDR_NO_RANDOMIZE is not.
            errno(libc::SYS_personality, 0xffff_ffff, 0) == 0,
            errno(libc::SYS_personality, 0x0004_0000, 0) == libc::EPERM,
            errno(
                libc::SYS_socket,
                libc::AF_VSOCK as u64,
                libc::SOCK_STREAM as u64,
            ) == libc::EPERM,
        ];
        checks.iter().position(|ok| !ok).map_or(0, |i| 1 + i as i32)
    });
    assert_eq!(exited(status), Some(0), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn docker_profile_is_small_and_needs_no_listener() {
    let filter = compile(&profile(DOCKER_DEFAULT)).unwrap();
    assert!(filter.len() < 2000, "{} instructions", filter.len());
    assert!(!filter.needs_listener());
    assert_eq!(filter.flags(), 0);
}

/// `cargo test --release -p hull --lib seccomp::tests_docker::bench -- --ignored --nocapture`
///
/// `hull create` compiles once per process: the first compile (which also builds the syscall
/// name maps) is the figure on its path.
#[test]
#[ignore]
fn bench_compile_docker_default() {
    let spec = profile(DOCKER_DEFAULT);
    let start = std::time::Instant::now();
    let len = compile(&spec).unwrap().len();
    let first = start.elapsed();
    let runs = 2000;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        compile(&spec).unwrap();
    }
    let each = start.elapsed() / runs;
    println!(
        "docker default profile: {len} BPF instructions; first compile {first:?}, then {each:?} (mean of {runs})"
    );
}

/// The copy create keeps for exec reads back as the same filter, and the kept program still
/// blocks what the profile blocks; anything but that format is refused (exec then compiles).
#[test]
fn a_kept_filter_reads_back_whole_and_nothing_else_does() {
    let filter = compile(&profile(DOCKER_DEFAULT)).unwrap();
    let bytes = filter.to_bytes();
    let back = Filter::from_bytes(&bytes).expect("own format");
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(
        (back.len(), back.flags(), back.needs_listener()),
        (filter.len(), filter.flags(), filter.needs_listener())
    );
    let unshare = [c"busybox", c"unshare", c"-m", c"true"];
    let status = in_child(&back, |_| {
        let _ = nix::unistd::execv(c"/usr/bin/busybox", &unshare);
        104
    });
    assert!(
        matches!(exited(status), Some(c) if c != 0 && c != 104),
        "{status:?}"
    );

    let notify = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "syscalls":[{"names":["mkdirat"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap();
    assert!(Filter::from_bytes(&notify.to_bytes())
        .expect("own format")
        .needs_listener());

    let mut other_version = bytes.clone();
    other_version[7] = b'2';
    for bad in [
        &bytes[..bytes.len() - 3],
        &bytes[..17],
        &other_version[..],
        &[][..],
    ] {
        assert!(Filter::from_bytes(bad).is_none(), "{} bytes", bad.len());
    }
}
