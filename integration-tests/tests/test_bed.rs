//! The test bed checks itself: a leak check that cannot see a leak would make every other test's
//! "nothing left behind" worthless.

use std::process::Command;

use integration_tests::leaks::{leaks, mounts_under};
use integration_tests::runtime::is_hull;
use integration_tests::{Bundle, Runtime};
use serde_json::json;

#[test]
fn leak_check_sees_a_live_container_and_then_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let found = leaks(&rt.root(), &[&id], &[b.path(), &rt.root()]);
    let all = found.join("\n");
    assert!(all.contains("state directory"), "{all}");
    assert!(
        found.iter().any(|l| l.starts_with("process ")),
        "the container's process must be seen: {all}"
    );
    if !is_hull() {
        // runc makes /sys/fs/cgroup/<controller>/<id>: proof that the cgroup check finds them.
        assert!(all.contains("cgroup /sys/fs/cgroup/"), "{all}");
    }
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn leak_check_sees_a_host_mount_under_the_bundle() {
    // The one place the test bed mounts on the host, inside its own temp dir, undone at once:
    // the leak check reads the host's mount table, so only a host mount can test it.
    let b = Bundle::new();
    let dir = b.rootfs().join("tmp");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "hull-leakcheck"])
        .arg(&dir)
        .status()
        .unwrap();
    let seen = mounts_under(b.path());
    let _ = Command::new("umount").arg(&dir).status();
    assert!(mounted.success());
    assert!(
        seen.iter().any(|m| m.contains("hull-leakcheck")),
        "{seen:?}"
    );
    assert!(mounts_under(b.path()).is_empty());
}

#[test]
fn bundle_starts_from_runc_spec_with_terminal_off() {
    let mut b = Bundle::new();
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.config_path()).unwrap()).unwrap();
    assert_eq!(on_disk["process"]["terminal"], false);
    assert_eq!(on_disk["root"]["path"], "rootfs");
    assert_eq!(on_disk["root"]["readonly"], true);
    b.set("/linux/sysctl/net.ipv4.ip_forward", json!("1"));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.config_path()).unwrap()).unwrap();
    assert_eq!(on_disk["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    for applet in [
        "bin/sh",
        "bin/cat",
        "bin/sleep",
        "usr/bin/id",
        "bin/mount",
        "sbin/sysctl",
    ] {
        assert!(b.rootfs().join(applet).exists(), "{applet}");
    }
}
