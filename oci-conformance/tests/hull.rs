//! CI entry point: the conformance suite against the freshly built hull. Every case that is not
//! skipped (host limitations only) must pass; there is no list of expected failures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory this test binary was built in; hull's binary is built next to it.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// HULL_BIN if set; otherwise `cargo rustc -p hull-cli` (a no-op when fresh) and its output.
fn hull() -> PathBuf {
    if let Some(bin) = std::env::var_os("HULL_BIN") {
        return PathBuf::from(bin);
    }
    let target = target_dir();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "rustc",
            "--quiet",
            "-p",
            "hull-cli",
            "--bin",
            "hull",
            "--manifest-path",
        ])
        .arg(&manifest)
        // As the integration tests build it (one static executable), so the two never rebuild
        // each other's binary.
        .args([
            "--",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo build -p hull-cli");
    assert!(status.success(), "cargo build -p hull-cli failed");
    target.join("debug/hull")
}

#[test]
fn hull_passes_every_observable_clause() {
    assert!(
        nix_is_root(),
        "the conformance suite creates containers: run the tests as root"
    );
    let hull = hull();
    assert!(hull.exists(), "no hull binary at {}", hull.display());
    let out = Command::new(env!("CARGO_BIN_EXE_oci-conformance"))
        .arg("--runtime")
        .arg(&hull)
        // The one place hull keeps runc's behaviour over runtime.md: containerd's runc shim deletes
        // a created (never started) task with a plain `delete`, so refusing it would strand tasks.
        .arg("--deviation=operations-wrong-status/delete=containerd deletes created containers without --force, as runc and crun allow")
        .output()
        .expect("run oci-conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Shown by the test harness when the assertion fails (and with --nocapture).
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("not ok") && !l.contains("# TODO deliberate deviation"))
        .collect();
    let summary = stdout.lines().last().unwrap_or("no summary");
    assert!(
        out.status.success() && failures.is_empty(),
        "hull is not conformant ({summary}):\n{}",
        failures.join("\n")
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
