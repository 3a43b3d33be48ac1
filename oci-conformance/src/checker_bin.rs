//! Finds, or builds, the statically linked checker. A busybox rootfs has no libc, so the checker
//! must carry its own: `-C target-feature=+crt-static` on the checker crate alone (through
//! `cargo rustc`), which makes a static-pie with glibc.

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when the ELF file has no PT_INTERP program header, i.e. needs no dynamic loader.
pub fn is_static(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        at + 4 <= bytes.len()
            && u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                != PT_INTERP
    })
}

/// The cargo target directory this binary was built in (the one holding CACHEDIR.TAG).
fn target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
}

/// `explicit` (from --checker or OCI_CONFORMANCE_CHECKER), else a static build made with cargo.
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if is_static(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{} is not a statically linked ELF executable",
                path.display()
            ))
        };
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("oci-checker-static")));
    if let Some(path) = sibling.filter(|p| is_static(p)) {
        return Ok(path);
    }
    build()
}

fn build() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let target = target_dir()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("oci-checker-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Its own target dir: no lock shared with the cargo that may be running us, and the
    // crt-static flag only ever applies to the checker crate.
    let status = Command::new(cargo)
        .args([
            "rustc",
            "--quiet",
            "--bin",
            "oci-checker",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .args(["--", "-C", "target-feature=+crt-static"])
        .env_remove("RUSTFLAGS")
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo to build the checker: {e}"))?;
    let path = target.join("debug/oci-checker");
    if !status.success() {
        return Err(format!("building the static checker failed ({status})"));
    }
    if !is_static(&path) {
        return Err(format!("{} was built but is not static", path.display()));
    }
    Ok(path)
}
