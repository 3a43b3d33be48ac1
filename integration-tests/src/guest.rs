//! What the qemu guest lanes (tests/cgroup_v2_guest.rs, tests/systemd_guest.rs) share: where the
//! guest kernel is cached, and the host's test binaries the guest runs.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `$HULL_VM_CACHE`, else `<target>/hull-vm`, from the running test's
/// `<target>/<profile>/deps/<test>`.
pub fn vm_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("HULL_VM_CACHE").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.pop();
    }
    dir.parent().expect("target dir").join("hull-vm")
}

/// The integration test suites `names`, built by the cargo running this test, in its profile and
/// target directory: (name, executable).
pub fn build_suites(names: &[&str]) -> Vec<(String, PathBuf)> {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("cannot tell the cargo profile from {}", exe.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json",
        "-p",
        "integration-tests",
    ])
    .args(["--profile", &profile])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
    .arg("--target-dir")
    .arg(profile_dir.parent().expect("target dir"));
    for suite in names {
        cmd.args(["--test", suite]);
    }
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .expect("run cargo test --no-run");
    assert!(out.status.success(), "cargo test --no-run failed");
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        if let (Some(path), true) = (
            msg["executable"].as_str(),
            names.contains(&name) && msg["target"]["kind"] == serde_json::json!(["test"]),
        ) {
            found.push((name.to_string(), PathBuf::from(path)));
        }
    }
    assert_eq!(found.len(), names.len(), "suites built: {found:?}");
    found
}
