//! Hull on a kernel older than the calls it may use: the real binary, run the way engines run it,
//! under a seccomp filter (src/bin/old_kernel.rs) that answers every call newer than Linux 4.14
//! (clone3, openat2, pidfd_*, close_range, mount_setattr, the new mount API, faccessat2, ...)
//! with ENOSYS as such a kernel does, or with EPERM as some hosts' profiles do. Each of those calls
//! needs its fallback (docs-kernel.md) for the lifecycle to work.

use std::os::unix::fs::PermissionsExt;

use integration_tests::runtime::{runtime_binary, tool_binary};
use integration_tests::{only_hull, Bundle, Runtime, TempDir};
use serde_json::json;

/// A runtime whose every command runs under the old-kernel filter answering `errno`: a script
/// named `hull` (so the test bed treats it as hull) that execs the wrapper.
struct OldKernel {
    // First: it deletes its containers (through the script) before the script's directory goes.
    rt: Runtime,
    _dir: TempDir,
}

fn old_kernel(errno: &str) -> OldKernel {
    let dir = TempDir::new("old-kernel");
    let script = dir.join("hull");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{}' {errno} '{}' \"$@\"\n",
            tool_binary("old_kernel").display(),
            runtime_binary().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    OldKernel {
        rt: Runtime::with_binary(&script),
        _dir: dir,
    }
}

const ERRNOS: [&str; 2] = ["ENOSYS", "EPERM"];

/// create (with a createRuntime hook, watched without a pidfd), start, exec, pause, resume, kill,
/// delete; then run, and `delete --force` of a running container.
#[test]
fn lifecycle_without_the_newer_calls() {
    if !only_hull("the wrapper is for hull's own fallbacks") {
        return;
    }
    for errno in ERRNOS {
        let old = old_kernel(errno);
        let rt = &old.rt;
        let mut b = Bundle::sleeping();
        let hook_out = rt.scratch().join("hook-ran");
        b.set(
            "/hooks",
            json!({"createRuntime": [{"path": "/bin/sh",
                "args": ["sh", "-c", format!("cat >/dev/null; echo ok > {}", hook_out.display())]}]}),
        );
        let id = rt.new_id();
        rt.create(&b, &id).ok();
        assert!(
            hook_out.exists(),
            "{errno}: the createRuntime hook did not run"
        );
        // The init is still the runtime's code: its sealed copy is the memfd, since the overlay
        // needs fsopen/fsmount (Linux 5.2).
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            exe.to_string_lossy().contains("memfd:hull"),
            "{errno}: the init runs from {}",
            exe.display()
        );
        rt.start(&id).ok();
        rt.wait_status(&id, "running");
        // The filter really is there: the container inherited it.
        let out = rt.exec(["exec", &id, "sh", "-c", "grep Seccomp: /proc/self/status"]);
        assert!(out.ok().out().contains("Seccomp:\t2"), "{errno}: {out}");
        rt.cmd(["pause", &id]).output().ok();
        assert_eq!(rt.status(&id), "paused", "{errno}");
        rt.cmd(["resume", &id]).output().ok();
        assert_eq!(rt.status(&id), "running", "{errno}");
        rt.kill(&id, "KILL").ok();
        rt.wait_status(&id, "stopped");
        rt.delete(&id).ok();

        let mut run = Bundle::new();
        run.sh("echo run-ok");
        assert_eq!(rt.run(&run).ok().out(), "run-ok", "{errno}");

        let forced = rt.new_id();
        rt.create(&b, &forced).ok();
        rt.start(&forced).ok();
        rt.delete_force(&forced).ok();
        rt.assert_no_leaks(&b, &[&id, &forced]);
    }
}

/// A container with its own user namespace (id mappings, setresuid in the namespace, the rootfs
/// reached by a walk when openat2 is missing), with and without noNewPrivileges.
#[test]
fn user_namespace_without_the_newer_calls() {
    if !only_hull("the wrapper is for hull's own fallbacks") {
        return;
    }
    for errno in ERRNOS {
        let old = old_kernel(errno);
        let rt = &old.rt;
        for nnp in [true, false] {
            let mut b = Bundle::new();
            b.user_namespace();
            b.set("/process/noNewPrivileges", json!(nnp));
            b.sh("cat /proc/self/uid_map; id -u");
            let out = rt.run(&b);
            let text = out.ok().out();
            assert!(text.contains("100000"), "{errno} nnp={nnp}: {out}");
            assert!(text.ends_with('0'), "{errno} nnp={nnp}: {out}");
            rt.assert_no_leaks(&b, &[]);
        }
    }
}

/// What has no fallback fails naming the call: recursive mount attributes need mount_setattr
/// (Linux 5.12), and nothing of the container is left.
#[test]
fn recursive_mount_attributes_need_mount_setattr() {
    if !only_hull("the wrapper is for hull's own fallbacks") {
        return;
    }
    for errno in ERRNOS {
        let old = old_kernel(errno);
        let mut b = Bundle::new();
        b.mount(
            json!({"destination": "/mnt", "type": "bind", "source": "/usr",
                       "options": ["rbind", "rro"]}),
        );
        let out = old.rt.create_fails(&b);
        out.stderr_has(&["/mnt", "mount_setattr"]);
    }
}
