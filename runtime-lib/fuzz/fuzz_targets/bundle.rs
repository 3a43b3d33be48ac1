//! config.json bytes, as a hostile bundle would hand them to `hull create`: everything hull checks
//! before it touches the system (parse, validate, the seccomp compiler, the cgroup path rules) must
//! answer with an error, never a panic, a hang or an abort.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One bundle directory with an empty rootfs for every input (validation resolves root.path).
fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hull-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("rootfs"));
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle_dir();
    let Ok(mut spec) = hull::bundle::parse(data, &dir.join("config.json")) else {
        return;
    };
    // Validation opens namespace paths to check their type: an input naming a fifo or a device
    // would make the fuzzer block on, or poke, the machine. Keep only the namespace files.
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            for ns in namespaces.iter_mut() {
                if ns
                    .path()
                    .as_ref()
                    .is_some_and(|p| !p.starts_with("/proc/self/ns/"))
                {
                    ns.set_path(None);
                }
            }
        }
    }
    let _ = hull::bundle::validate(&spec, dir);
    let _ = hull::bundle::warnings(&spec);
    let _ = hull::process_attrs::validate(&spec);
    let _ = hull::process_attrs::check_unsupported(&spec);
    if let Some(linux) = spec.linux() {
        if let Some(seccomp) = linux.seccomp() {
            let _ = hull::seccomp::compile(seccomp);
        }
        if let Some(path) = linux.cgroups_path() {
            let _ = hull::cgroups::inner_path(Some(path), "fuzz");
            if let Some(s) = path.to_str() {
                let _ = hull::cgroups::parse_systemd_path(s);
            }
        }
    }
});
