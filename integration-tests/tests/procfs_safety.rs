//! The container's /proc as the runtime leaves it: masked and read-only even when the rootfs's
//! owner races the runtime (`rootfs/proc` exchanged with a symlink), no filesystem mounted inside
//! it, procfs writes (oomScoreAdj) that land in procfs or fail, and masks made only from the real
//! null device (CVE-2025-31133 family).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

/// Run in the container: any procfs it can reach (at /proc or wherever the racer put the real
/// directory) must have core_pattern read-only and the masked files masked. `: >>` opens for
/// writing and writes nothing, so the host's core_pattern is never changed.
const PROBE: &str = "for p in /proc /proc-swap; do \
      if [ -e $p/sys/kernel/core_pattern ] && (: >> $p/sys/kernel/core_pattern) 2>/dev/null; then echo WRITABLE $p; fi; \
      if [ -f $p/timer_list ] && [ -n \"$(head -c 1 $p/timer_list 2>/dev/null)\" ]; then echo UNMASKED $p; fi; \
    done; echo probe-done";

fn renameat2_exchange(a: &Path, b: &Path) -> i32 {
    let a = CString::new(a.as_os_str().as_bytes()).expect("no NUL");
    let b = CString::new(b.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: two NUL-terminated paths that outlive the call; the kernel only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) as i32
    }
}

#[test]
fn proc_swapped_for_a_symlink_during_create_never_leaves_it_writable() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(PROBE);
    let rootfs = b.rootfs();
    std::fs::create_dir_all(rootfs.join("fake")).expect("mkdir fake");
    std::os::unix::fs::symlink("/fake", rootfs.join("proc-swap")).expect("symlink");
    let (proc_dir, swap) = (rootfs.join("proc"), rootfs.join("proc-swap"));
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let racer = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (a, b) = (proc_dir.clone(), swap.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if renameat2_exchange(&a, &b) == 0 {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut ids = Vec::new();
    let mut created = 0;
    let mut findings = Vec::new();
    for _ in 0..100 {
        let id = rt.new_id();
        let out = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id).output();
        if out.stdout.contains("probe-done") {
            created += 1;
        }
        for line in out.stdout.lines() {
            if line.starts_with("WRITABLE") || line.starts_with("UNMASKED") {
                findings.push(format!("{id}: {line}"));
            }
        }
        ids.push(id);
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().expect("racer");
    // Leave the bundle as it was: `proc` the directory.
    if std::fs::symlink_metadata(&proc_dir).is_ok_and(|m| m.file_type().is_symlink()) {
        assert_eq!(renameat2_exchange(&proc_dir, &swap), 0);
    }
    eprintln!(
        "{created} of 100 containers ran, {} swaps",
        swaps.load(Ordering::Relaxed)
    );
    assert!(findings.is_empty(), "{}", findings.join("\n"));
    // Else the race proved nothing (8 to 38 of 100 ran in runs on this machine kind).
    assert!(created > 0, "no container ran while racing");
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    rt.assert_no_leaks(&b, &refs);
}

#[test]
fn mounts_inside_proc_are_refused_naming_the_destination() {
    if !only_hull("runc 1.1.5 checks only bind mounts inside /proc") {
        return;
    }
    let rt = Runtime::new();
    for (typ, dest) in [
        ("tmpfs", "/proc/self"),
        ("tmpfs", "/proc/sys"),
        ("mqueue", "/proc/fs"),
        ("tmpfs", "/proc/../proc/sysrq-trigger"),
    ] {
        let mut b = Bundle::new();
        b.mount(json!({"destination": dest, "type": typ, "source": typ}));
        let out = rt.create_fails(&b);
        let shown = dest.replace("/../proc", "");
        assert!(out.stderr.contains(&shown), "{typ} on {dest}: {out}");
        assert!(
            out.stderr.contains("inside /proc"),
            "{typ} on {dest}: {out}"
        );
    }
    // lxcfs-style binds over the files it emulates stay allowed.
    let mut b = Bundle::new();
    let fake = b.path().join("fake-meminfo");
    std::fs::write(&fake, "MemTotal: 42 kB\n").expect("write fake meminfo");
    b.mount(json!({"destination": "/proc/meminfo", "type": "bind",
                   "source": fake, "options": ["bind", "ro"]}));
    b.args(&["cat", "/proc/meminfo"]);
    assert!(rt.run(&b).ok().out().contains("MemTotal: 42 kB"));
}

#[test]
fn oom_score_adj_reaches_procfs_or_create_fails() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/oomScoreAdj", json!(500));
    b.args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(rt.run(&b).ok().out(), "500");
    if !only_hull("runc 1.1.5 accepts a tmpfs on /proc/self") {
        return;
    }
    // A tmpfs over /proc/self would swallow the write (and an AppArmor or SELinux label with it).
    b.mount(json!({"destination": "/proc/self", "type": "tmpfs", "source": "tmpfs"}));
    let out = rt.create_fails(&b);
    assert!(out.stderr.contains("/proc/self"), "{out}");
}

#[test]
fn dev_null_symlink_never_becomes_the_mask() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // A host file, also bound into the container at the same path, so a symlink to it resolves
    // the same inside and out.
    let secret = b.path().join("host-secret");
    std::fs::write(&secret, "HOST-SECRET\n").expect("write secret");
    let dev = b.path().join("dev-src");
    std::fs::create_dir_all(&dev).expect("mkdir dev-src");
    std::os::unix::fs::symlink(&secret, dev.join("null")).expect("symlink null");
    b.mount(
        json!({"destination": secret, "type": "bind", "source": secret,
                   "options": ["bind"]}),
    );
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["destination"] != "/dev");
        mounts.insert(
            1,
            json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]}),
        );
    });
    b.sh("cat /proc/timer_list /proc/keys 2>&1; echo written > /proc/timer_list 2>&1; echo probe-done");
    let id = rt.new_id();
    let out = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id).output();
    rt.assert_no_leaks(&b, &[&id]);
    assert!(!out.stdout.contains("HOST-SECRET"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read secret"),
        "HOST-SECRET\n",
        "{out}"
    );
    assert!(
        !out.success(),
        "masking from a symlinked /dev/null must fail: {out}"
    );
    assert!(out.stderr.contains("/dev/null"), "{out}");
}

#[test]
fn masked_path_with_its_parent_missing_from_procfs_fails_create() {
    if !only_hull("runc 1.1.5 skips every missing masked path") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // A missing file is skipped, as runc (kernels differ in what /proc has)...
    b.set(
        "/linux/maskedPaths",
        json!(["/proc/no-such-file", "/proc/kcore"]),
    );
    rt.run(&b).ok();
    // ...but a missing directory of our own procfs means /proc is not what was mounted there.
    b.set("/linux/maskedPaths", json!(["/proc/no-such-dir/file"]));
    let out = rt.create_fails(&b);
    assert!(out.stderr.contains("/proc/no-such-dir/file"), "{out}");
    assert!(out.stderr.contains("parent directory is missing"), "{out}");
}
