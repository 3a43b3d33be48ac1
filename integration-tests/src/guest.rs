//! What the qemu guest lanes (tests/cgroup_v2_guest.rs, tests/systemd_guest.rs) share: where the
//! guest kernel is cached, the host's test binaries the guest runs, and booting a guest again
//! when its kernel locked up.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs a guest (`command` is a run-in-*-guest.sh invocation) and returns its output, how long
/// the last boot took, and whether that was a second boot.
///
/// A guest whose kernel locked up (a soft lockup under TCG, in a lookup through the overlay to
/// the host's 9p root: seen a few times in some dozens of boots, in both lanes) panics at once
/// (the scripts boot with softlockup_panic) and ends without a status (125): it is booted again,
/// once. A failing test never looks like that: it ends with a status and its FAILED lines.
pub fn run_booting_again_on_lockup(
    mut command: impl FnMut() -> Command,
) -> (Output, Duration, bool) {
    let mut again = false;
    loop {
        let started = Instant::now();
        let out = command()
            .stdin(Stdio::null())
            .output()
            .expect("run the guest script");
        let locked_up = out.status.code() == Some(125)
            && String::from_utf8_lossy(&out.stdout).contains("soft lockup");
        if !locked_up || again {
            return (out, started.elapsed(), again);
        }
        eprintln!(
            "the guest kernel locked up after {:.1?}; booting it again:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout)
        );
        again = true;
    }
}
