//! Seccomp profiles as real engines write them, not as a test would: the default profile podman
//! and CRI-O ship (containers-common's `seccomp.json`, the same allow-list lineage as Docker's),
//! turned into the OCI form the engine hands the runtime.
//!
//! Such a profile denies by default (SCMP_ACT_ERRNO) and lists what a container may call: a
//! runtime whose own steps after loading it need anything off the list fails only there.

use std::path::Path;

use serde_json::{json, Map, Value};

/// Where Debian's golang-github-containers-common (a dependency of podman) installs it.
pub const CONTAINERS_DEFAULT: &str = "/usr/share/containers/seccomp.json";

/// The engine's default profile as it reaches `linux.seccomp` for a container holding `caps`,
/// on this machine (x86_64): the engine-side conditions (`includes`, `excludes`: capabilities,
/// architectures, minimum kernel) resolved as podman resolves them.
pub fn containers_default(caps: &[&str]) -> Value {
    let path = Path::new(CONTAINERS_DEFAULT);
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (install golang-github-containers-common, as .ci/run does)",
            path.display()
        )
    });
    let engine: Value = serde_json::from_str(&text).expect("the engine's profile is JSON");
    let kernel = kernel_version();
    let mut architectures = Vec::new();
    for a in engine["archMap"].as_array().into_iter().flatten() {
        if a["architecture"] == "SCMP_ARCH_X86_64" {
            architectures.push(a["architecture"].clone());
            architectures.extend(
                a["subArchitectures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    let holds = |cond: &Value, key: &str, test: &dyn Fn(&str) -> bool| {
        cond[key]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .map(|l| {
                (
                    l.is_empty(),
                    l.iter().all(|x| test(x)),
                    l.iter().any(|x| test(x)),
                )
            })
    };
    let has_cap = |c: &str| caps.contains(&c);
    let native = |a: &str| a == "amd64";
    let mut syscalls = Vec::new();
    for rule in engine["syscalls"].as_array().into_iter().flatten() {
        let inc = &rule["includes"];
        let exc = &rule["excludes"];
        let included = holds(inc, "caps", &has_cap).is_none_or(|(_, all, _)| all)
            && holds(inc, "arches", &native).is_none_or(|(empty, _, any)| empty || any)
            && inc["minKernel"]
                .as_str()
                .is_none_or(|min| kernel >= parse_version(min));
        let excluded = holds(exc, "caps", &has_cap).is_some_and(|(_, _, any)| any)
            || holds(exc, "arches", &native).is_some_and(|(_, _, any)| any);
        if !included || excluded {
            continue;
        }
        let mut r = Map::new();
        for key in ["names", "action", "args", "errnoRet"] {
            if !rule[key].is_null() {
                r.insert(key.into(), rule[key].clone());
            }
        }
        syscalls.push(Value::Object(r));
    }
    json!({
        "defaultAction": engine["defaultAction"],
        "defaultErrnoRet": engine["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls,
    })
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut n = v.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    parse_version(release.trim())
}
