//! `process.apparmorProfile` really confining the container's process, on a host whose kernel runs
//! AppArmor. This machine kind's kernel has none (bad_input.rs checks the refusal there); the
//! cgroup-v2 guest's Debian kernel runs AppArmor by default, so `cgroup_v2_guest` runs this suite
//! there, where it must not skip, and the same profile is checked with runc for comparison.
//!
//! The profile allows everything but reading one file of the rootfs: the process must report the
//! profile as its confinement and fail to read that file, which is readable without the profile.

use std::path::Path;
use std::process::Command;

use integration_tests::tmp::unique;
use integration_tests::{Bundle, Runtime};
use serde_json::json;

const DENIED: &str = "denied-by-profile";
const PARSER: &str = "/usr/sbin/apparmor_parser";
const SECURITYFS: &str = "/sys/kernel/security";

/// A loaded profile, removed from the kernel again when dropped.
struct Profile {
    name: String,
    file: std::path::PathBuf,
}

impl Profile {
    fn load(dir: &Path) -> Profile {
        let name = format!("hull-it-{}-{}", std::process::id(), unique());
        let file = dir.join(&name);
        let text = format!(
            "abi <abi/3.0>,\nprofile {name} flags=(attach_disconnected,mediate_deleted) {{\n  \
             file,\n  capability,\n  network,\n  mount,\n  umount,\n  pivot_root,\n  signal,\n  \
             ptrace,\n  unix,\n  deny /{DENIED} r,\n}}\n"
        );
        std::fs::write(&file, text).unwrap();
        let out = Command::new(PARSER).arg("-a").arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "apparmor_parser -a: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Profile { name, file }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = Command::new(PARSER).arg("-R").arg(&self.file).output();
    }
}

fn in_guest() -> bool {
    std::env::var_os("HULL_IN_V2_GUEST").is_some()
}

/// AppArmor ready to load profiles: in the guest its securityfs is mounted here if need be (the
/// guest is thrown away after the run); on any other host nothing is changed and the test skips.
fn apparmor_ready() -> bool {
    let enabled =
        std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.starts_with(b"Y"));
    let apparmorfs = Path::new(SECURITYFS).join("apparmor");
    if enabled && !apparmorfs.exists() && in_guest() {
        let status = Command::new("mount")
            .args(["-t", "securityfs", "securityfs", SECURITYFS])
            .status()
            .unwrap();
        assert!(status.success(), "mount securityfs in the guest");
    }
    let ready = enabled && apparmorfs.exists() && Path::new(PARSER).exists();
    assert!(
        ready || !in_guest(),
        "the guest's kernel runs AppArmor and has {PARSER} from the host: it must not skip"
    );
    if !ready {
        eprintln!("skipped: AppArmor is not enabled here (or {PARSER} is missing)");
    }
    ready
}

fn confined_bundle(profile: Option<&str>) -> Bundle {
    let mut b = Bundle::new();
    std::fs::write(b.rootfs().join(DENIED), "secret\n").unwrap();
    b.sh(&format!(
        "cat /proc/self/attr/current; cat /{DENIED} 2>/dev/null || echo not-readable"
    ));
    if let Some(p) = profile {
        b.set("/process/apparmorProfile", json!(p));
    }
    b
}

/// (confinement as the process reports it, what reading the denied file printed).
fn run(rt: &Runtime, b: &Bundle) -> (String, String) {
    let out = rt.run(b);
    let text = out.ok().stdout.clone();
    let mut lines = text.lines().map(str::to_string);
    let confinement = lines.next().unwrap_or_default();
    let read = lines.next().unwrap_or_default();
    (confinement, read)
}

#[test]
fn apparmor_profile_confines_the_init_and_exec() {
    if !apparmor_ready() {
        return;
    }
    let rt = Runtime::new();
    let profile = Profile::load(rt.scratch());

    // Without a profile the file is readable and the process is unconfined.
    let open = confined_bundle(None);
    let (confinement, read) = run(&rt, &open);
    assert_eq!(
        (confinement.as_str(), read.as_str()),
        ("unconfined", "secret")
    );

    let b = confined_bundle(Some(&profile.name));
    let (confinement, read) = run(&rt, &b);
    assert_eq!(confinement, format!("{} (enforce)", profile.name));
    assert_eq!(read, "not-readable");
    rt.assert_no_leaks(&b, &[]);

    // An exec'd process is confined by its own process.json's profile.
    let mut sleeper = confined_bundle(None);
    sleeper.args(&["sleep", "1000"]);
    let id = rt.started(&sleeper);
    let process = json!({
        "args": ["sh", "-c", format!("cat /proc/self/attr/current; cat /{DENIED} || echo not-readable")],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"],
        "apparmorProfile": profile.name,
    });
    let path = rt.scratch().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let by_file = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    let args = process["args"].as_array().unwrap().iter();
    let by_flag = rt
        .cmd(["exec", "--apparmor", &profile.name])
        .arg(&id)
        .args(args.map(|a| a.as_str().unwrap()))
        .output();
    let confined = format!("{} (enforce)", profile.name);
    for out in [by_file, by_flag] {
        let lines: Vec<&str> = out.ok().stdout.lines().collect();
        assert_eq!(lines, [confined.as_str(), "not-readable"], "{out}");
    }
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&sleeper, &[&id]);

    // runc, on the same host and bundle, confines the same way.
    let runc = Path::new("/usr/sbin/runc");
    if runc.exists() {
        let rt = Runtime::with_binary(runc);
        assert_eq!(
            run(&rt, &b),
            (format!("{} (enforce)", profile.name), "not-readable".into())
        );
    }
}
