//! Descriptor hygiene (CVE-2024-21626 class): no descriptor of the caller's or of the runtime's
//! own (the cgroup v2 directory used for clone3 CLONE_INTO_CGROUP, state files, channel ends) may
//! give the container a way to a host directory, as `process.cwd`, `exec --cwd`, or a path through
//! `/proc/self/fd/N`. Runs on the cgroup-v2 guest too (guest_lanes/cgroup_v2.rs), where the runtime
//! holds the cgroup directory fd at the clone.

use std::os::fd::OwnedFd;
use std::path::Path;

use integration_tests::{Bundle, Runtime};
use serde_json::json;

/// A host directory holding a file only the host has, opened `n` times (each a descriptor the
/// caller leaks to the runtime: no FD_CLOEXEC, not named by --preserve-fds).
fn host_dir(rt: &Runtime, n: usize) -> (std::path::PathBuf, Vec<OwnedFd>) {
    let dir = rt.scratch().join("host-dir");
    std::fs::create_dir_all(&dir).expect("mkdir host dir");
    std::fs::write(dir.join("host-marker"), "HOST-ONLY\n").expect("write marker");
    let fds = (0..n)
        .map(|_| {
            nix::fcntl::open(
                &dir,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .expect("open host dir")
        })
        .collect();
    (dir, fds)
}

/// Run in the container: says ESCAPED if the working directory, or where `..` leads from it, is
/// on the host (the marker directory, a cgroupfs, the host's root holding this bundle).
fn escape_probe(bundle: &Path) -> String {
    format!(
        "if [ -e host-marker ] || [ -e cgroup.procs ] || [ -e cgroup.controllers ]; then echo ESCAPED cwd; fi; \
         cd ../../../../../../../../../..; \
         if [ -d '.{}/rootfs/bin' ]; then echo ESCAPED root; fi; echo probe-done",
        bundle.display()
    )
}

#[test]
fn exec_cwd_through_a_callers_leaked_fd_stays_inside() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let id = rt.started(&b);
    // The caller leaks fds 3..=7, all on a host directory (`exec 7</somedir; hull exec ...`).
    let (_dir, fds) = host_dir(&rt, 5);
    let mut cmd = rt.cmd(["exec", "--cwd", "/proc/self/fd/7"]).arg(&id);
    for fd in fds {
        cmd = cmd.pass_fd(fd);
    }
    let out = cmd.args(["sh", "-c", &escape_probe(b.path())]).output();
    assert!(!out.stdout.contains("ESCAPED"), "{out}");
    assert!(
        !out.success(),
        "exec into a host directory must fail: {out}"
    );
    assert!(out.stderr.contains("cwd"), "{out}");

    // Nor through a path, or as a descriptor the process inherits.
    let (_dir, fds) = host_dir(&rt, 5);
    let mut cmd = rt.cmd(["exec"]).arg(&id);
    for fd in fds {
        cmd = cmd.pass_fd(fd);
    }
    let out = cmd
        .args([
            "sh",
            "-c",
            "cat /proc/self/fd/7/host-marker; ls -l /proc/self/fd/; echo done",
        ])
        .output();
    assert!(out.stdout.contains("done"), "{out}");
    assert!(!out.stdout.contains("HOST-ONLY"), "{out}");
    assert!(!out.stdout.contains("host-dir"), "{out}");

    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn create_cwd_through_any_fd_number_stays_inside() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(&escape_probe(b.path()));
    for n in 3..=20 {
        b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        let (_dir, fds) = host_dir(&rt, 3);
        let id = rt.new_id();
        let mut cmd = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id);
        for fd in fds {
            cmd = cmd.pass_fd(fd);
        }
        let out = cmd.output();
        assert!(
            !out.stdout.contains("ESCAPED"),
            "cwd /proc/self/fd/{n} reached the host: {out}"
        );
        // Either refused, or a directory inside the container (none there at these numbers).
        assert!(
            !out.success() || out.stdout.contains("probe-done"),
            "fd {n}: {out}"
        );
        rt.assert_no_leaks(&b, &[&id]);
    }
}

/// close_range may be refused (a seccomp allow-list without it, kernels before 5.9): the runtime
/// marks descriptors close-on-exec another way and the container still runs, with no descriptor
/// of the caller's.
#[test]
fn close_range_denied_by_seccomp_still_runs() {
    let rt = Runtime::new();
    for errno in [1, 38] {
        // EPERM, ENOSYS
        let mut b = Bundle::new();
        // Without noNewPrivileges the filter is loaded before the runtime's last steps.
        b.set("/process/noNewPrivileges", json!(false));
        b.set(
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]}),
        );
        b.sh("ls /proc/self/fd; echo ran");
        let (_dir, fds) = host_dir(&rt, 2);
        let mut cmd = rt.cmd(["run", "--bundle"]).arg(b.path());
        let id = rt.new_id();
        cmd = cmd.last(&id);
        for fd in fds {
            cmd = cmd.pass_fd(fd);
        }
        let out = cmd.output();
        out.ok();
        assert!(out.stdout.contains("ran"), "errno {errno}: {out}");
        let fds: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.parse::<u32>().is_ok())
            .collect();
        // 0, 1, 2 and the fd of ls's own readdir.
        assert!(
            fds.len() <= 4,
            "errno {errno}: descriptors leaked in: {out}"
        );
        rt.assert_no_leaks(&b, &[&id]);
    }
}
