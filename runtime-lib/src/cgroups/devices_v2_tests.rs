//! The device program: its instructions, and what it lets through in a real cgroup2 cgroup.

use super::*;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_str(json).unwrap()
}

/// The rules of the kernel test: deny all, null rwm, zero read-only.
const NULL_AND_ZERO: &str = r#"[{"allow":false,"access":"rwm"},
    {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
    {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]"#;

#[test]
fn default_deny_program_shape() {
    let p = program(&rules(NULL_AND_ZERO)).unwrap();
    // prologue 6; c 1:3 rwm: type, major, minor, ret 2; c 1:5 r: the same + access; tail 2.
    assert_eq!(p.len(), 6 + 5 + 6 + 2);
    let prologue = [
        ldx_w(2, 1, 0),
        alu32(AND, 2, 0xffff),
        ldx_w(3, 1, 0),
        alu32(RSH, 3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    assert_eq!(p[..6], prologue);
    // Default deny: the tail returns 0, each exception returns 1.
    assert_eq!(p[p.len() - 2..], [mov_imm(0, 0), exit()]);
    assert_eq!(p[6], jmp32_imm(JNE, 2, DEV_CHAR, 4));
    assert_eq!(p[9..11], [mov_imm(0, 1), exit()]);
    // zero: a request for anything but read skips the block.
    let not_read = i32::from(ACC_WRITE | ACC_MKNOD);
    assert_eq!(p[12], jmp32_imm(JSET, 3, not_read, 4));
    assert_eq!(p[13], jmp32_imm(JNE, 4, 1, 3));
    assert_eq!(p[14], jmp32_imm(JNE, 5, 5, 2));
    // The encoding itself: BPF_JMP32|BPF_JNE|BPF_K, dst r4.
    assert_eq!((p[7].code, p[7].regs), (0x56, 4));
    assert_eq!((p[0].code, p[0].regs), (0x61, 0x12), "ldxw r2 = *(r1 + 0)");
}

#[test]
fn wildcards_leave_out_their_test() {
    let p = program(&rules(
        r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":136,"access":"rwm"},
           {"allow":true,"type":"b","access":"m"}]"#,
    ))
    .unwrap();
    // b *:* m (type, access, ret) sorts before c 136:* rwm (type, major, ret).
    assert_eq!(p.len(), 6 + 4 + 4 + 2);
    assert_eq!(p[6], jmp32_imm(JNE, 2, DEV_BLOCK, 3));
    let not_mknod = i32::from(ACC_READ | ACC_WRITE);
    assert_eq!(p[7], jmp32_imm(JSET, 3, not_mknod, 2));
    assert_eq!(p[10], jmp32_imm(JNE, 2, DEV_CHAR, 3));
    assert_eq!(p[11], jmp32_imm(JNE, 4, 136, 2));
    assert!(p[6..].iter().all(|i| i.regs & 0x0f != 5), "no minor test");
}

#[test]
fn allow_all_then_deny_is_a_blacklist() {
    let p = program(&rules(
        r#"[{"allow":true,"access":"rwm"},
           {"allow":false,"type":"c","major":1,"minor":7,"access":"w"}]"#,
    ))
    .unwrap();
    // The deny exception hits as soon as the request shares a bit: jset +1, else ja next.
    assert_eq!(
        p[7..9],
        [jmp32_imm(JSET, 3, i32::from(ACC_WRITE), 1), ja(4)]
    );
    assert_eq!(p[11..13], [mov_imm(0, 0), exit()]);
    assert_eq!(p[p.len() - 2..], [mov_imm(0, 1), exit()]);
    // No rules at all: runc's empty whitelist, deny everything.
    let none = program(&[]).unwrap();
    assert_eq!(none.len(), 8);
    assert_eq!(none[6..], [mov_imm(0, 0), exit()]);
}

#[test]
fn rules_reduce_as_on_v1() {
    let p = Policy::from_rules(&rules(
        r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
           {"allow":true,"type":"c","major":1,"minor":3,"access":"wm"},
           {"allow":true,"type":"c","major":1,"minor":5,"access":"rw"},
           {"allow":false,"type":"c","major":1,"minor":5,"access":"w"},
           {"allow":true,"type":"c","major":1,"minor":8,"access":"r"},
           {"allow":false,"type":"c","major":1,"minor":8,"access":"r"}]"#,
    ))
    .unwrap();
    assert!(!p.default_allow);
    let ex: Vec<_> = p.exceptions.into_iter().collect();
    assert_eq!(
        ex,
        [
            ((DEV_CHAR, Some(1), Some(3)), ACC_ALL),
            ((DEV_CHAR, Some(1), Some(5)), ACC_READ)
        ]
    );
    // An `a` rule resets, whatever came before.
    let p = Policy::from_rules(&rules(
        r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
           {"allow":true,"access":"r"}]"#,
    ))
    .unwrap();
    assert_eq!(
        p,
        Policy {
            default_allow: true,
            exceptions: BTreeMap::new()
        }
    );
    // runc refuses a hole in a wildcard exception.
    let e = program(&rules(
        r#"[{"allow":true,"type":"c","major":1,"access":"rw"},
           {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("invalid config linux.resources.devices[1]: "),
        "{e}"
    );
    let e = program(&rules(
        r#"[{"allow":true,"type":"c","major":4294967296,"access":"r"}]"#,
    ));
    assert!(e.unwrap_err().to_string().contains("devices[0].major"));
    let e = program(&rules(r#"[{"allow":true,"type":"c","access":"rx"}]"#));
    assert!(e.unwrap_err().to_string().contains("devices[0].access"));
}

#[test]
fn verifier_refusal_carries_its_log() {
    // No exit: the verifier refuses falling off the end.
    let e = load(&[mov_imm(0, 1)], Path::new("/x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("verifier log"), "{e}");
}

static N: AtomicUsize = AtomicUsize::new(0);

fn unique(base: &Path) -> PathBuf {
    let n = N.fetch_add(1, Ordering::SeqCst);
    base.join(format!("hull-devtest-{}-{n}", std::process::id()))
}

/// A fresh child of the (empty) cgroup2 mount; removed on drop, its program with it.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new() -> TestCgroup {
        let p = unique(Path::new("/sys/fs/cgroup/unified"));
        std::fs::create_dir(&p).unwrap();
        TestCgroup(p)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        std::fs::remove_dir(&self.0).unwrap();
    }
}

/// A private temp dir for device nodes, and the NUL-terminated paths of `names` in it.
fn node_paths<const K: usize>(names: [&str; K]) -> (PathBuf, [CString; K]) {
    let dir = unique(&std::env::temp_dir());
    std::fs::create_dir(&dir).unwrap();
    let paths = names.map(|n| CString::new(dir.join(n).into_os_string().into_encoded_bytes()));
    (dir, paths.map(Result::unwrap))
}

/// 0, or the errno open(2) fails with.
fn open_errno(path: &CStr, flags: libc::c_int) -> i32 {
    // SAFETY: path is NUL-terminated; the fd, if any, is closed right away.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Errno::last_raw();
    }
    // SAFETY: fd was just opened here and is not used again.
    unsafe { libc::close(fd) };
    0
}

/// 0, or the errno mknod(2) fails with.
fn mknod_errno(path: &CStr, kind: libc::mode_t, major: u32, minor: u32) -> i32 {
    // SAFETY: path is NUL-terminated.
    let r = unsafe { libc::mknod(path.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    if r == 0 {
        0
    } else {
        Errno::last_raw()
    }
}

/// Runs `check` in a forked child moved into the cgroup `dir`; returns its exit status (the
/// index of the first failed check, 0 when all passed).
fn in_cgroup(dir: &Path, check: impl FnOnce() -> i32) -> WaitStatus {
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .unwrap();
    // SAFETY: the child only makes system calls on values prepared before the fork (no
    // allocation), then _exit()s.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // "0" moves the writer itself.
            // SAFETY: writes one byte of a static buffer to an fd we hold.
            let moved = unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) } == 1;
            let code = if moved { check() } else { 100 };
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).unwrap(),
    }
}

/// The exit status of a child whose checks all passed.
fn passed(s: WaitStatus) -> bool {
    matches!(s, WaitStatus::Exited(_, 0))
}

/// The index (from 1) of the first check that is false, 0 when all hold.
fn first_failed(checks: &[bool]) -> i32 {
    checks.iter().position(|ok| !ok).map_or(0, |i| i as i32 + 1)
}

#[test]
fn program_enforces_rules_in_a_real_cgroup() {
    let cg = TestCgroup::new();
    set(&cg.0, &rules(NULL_AND_ZERO)).unwrap();
    assert_eq!(attached_count(&cg.0).unwrap(), 1);
    let (tmp, [null, zero]) = node_paths(["null", "zero"]);
    let status = in_cgroup(&cg.0, || {
        first_failed(&[
            open_errno(c"/dev/null", libc::O_RDWR) == 0,
            open_errno(c"/dev/zero", libc::O_RDONLY) == 0,
            open_errno(c"/dev/zero", libc::O_WRONLY) == libc::EPERM,
            open_errno(c"/dev/full", libc::O_RDONLY) == libc::EPERM,
            // null has `m`, zero has not.
            mknod_errno(&null, libc::S_IFCHR, 1, 3) == 0,
            mknod_errno(&zero, libc::S_IFCHR, 1, 5) == libc::EPERM,
        ])
    });
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(passed(status), "{status:?}");
    // The same checks outside the cgroup pass the other way: the program made the difference.
    assert_eq!(open_errno(c"/dev/full", libc::O_RDONLY), 0);
}

#[test]
fn runc_default_rules_load_enforce_and_replace() {
    let spec = crate::spec::default_spec(false).unwrap();
    let res = super::super::container_resources(&spec);
    let rules = res.devices().clone().unwrap();
    let insns = program(&rules).unwrap();
    assert!(insns.len() > 30, "{}", insns.len());

    let cg = TestCgroup::new();
    set(&cg.0, &rules).unwrap();
    assert_eq!(attached_count(&cg.0).unwrap(), 1);
    // Setting again replaces the program instead of stacking a second one.
    set(&cg.0, &rules).unwrap();
    assert_eq!(attached_count(&cg.0).unwrap(), 1);

    let (tmp, [chr, blk]) = node_paths(["chr", "blk"]);
    let status = in_cgroup(&cg.0, || {
        first_failed(&[
            open_errno(c"/dev/full", libc::O_RDWR) == 0,
            open_errno(c"/dev/kmsg", libc::O_RDONLY) == libc::EPERM,
            // runc allows mknod of any device, not its use.
            mknod_errno(&chr, libc::S_IFCHR, 1, 11) == 0,
            mknod_errno(&blk, libc::S_IFBLK, 7, 0) == 0,
        ])
    });
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(passed(status), "{status:?}");
}
