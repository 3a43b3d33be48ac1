//! The seccomp profile real engines use by default (podman's and CRI-O's, Docker's lineage), as
//! they hand it over: an allow-list denying everything else with EPERM. Every way hull loads a
//! filter (before the capabilities are dropped without no_new_privs, last with it; the init and
//! exec; in a user namespace) must still reach the user's process, and the profile must hold
//! there.

use integration_tests::profiles::containers_default;
use integration_tests::{Bundle, Runtime};
use serde_json::json;

/// runc spec's default capabilities, which the profile's conditions are resolved against.
const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

#[test]
fn containers_default_profile_runs_the_init_and_exec() {
    let rt = Runtime::new();
    let profile = containers_default(&CAPS);
    for no_new_privileges in [false, true] {
        for userns in [false, true] {
            let what = format!("noNewPrivileges {no_new_privileges}, user namespace {userns}");
            let mut b = Bundle::new();
            if userns {
                b.user_namespace();
            }
            b.set("/linux/seccomp", profile.clone())
                .set("/process/noNewPrivileges", json!(no_new_privileges))
                // chroot is allowed only with CAP_SYS_CHROOT, which these caps lack: EPERM shows
                // the engine's profile is the one in force, not a permissive stand-in.
                .sh("grep Seccomp: /proc/self/status; chroot / true 2>&1; echo init-ran; sleep 1000");
            let id = rt.new_id();
            rt.create(&b, &id).ok();
            rt.start(&id).ok();
            let exec = rt
                .exec([
                    "exec",
                    id.as_str(),
                    "sh",
                    "-c",
                    "grep Seccomp: /proc/self/status; echo exec-ran",
                ])
                .ok()
                .out()
                .to_string();
            assert_eq!(exec, "Seccomp:\t2\nexec-ran", "{what}");
            rt.kill(&id, "KILL").ok();
            rt.wait_status(&id, "stopped");
            rt.delete(&id).ok();
            let out = rt.run(&{
                let mut once = Bundle::new();
                if userns {
                    once.user_namespace();
                }
                once.set("/linux/seccomp", profile.clone())
                    .set("/process/noNewPrivileges", json!(no_new_privileges))
                    .sh("grep Seccomp: /proc/self/status; chroot / true 2>&1; echo init-ran");
                once
            });
            let text = out.ok().out().to_string();
            assert!(text.starts_with("Seccomp:\t2\n"), "{what}: {text}");
            assert!(text.contains("Operation not permitted"), "{what}: {text}");
            assert!(text.ends_with("init-ran"), "{what}: {text}");
            rt.assert_no_leaks(&b, &[&id]);
        }
    }
}
