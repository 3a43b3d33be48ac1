//! The in-container checker. The driver copies this binary (statically linked) into each bundle's
//! rootfs with the bundle's config.json next to it, and makes it the container process:
//! `oci-checker CHECK...`. Each check compares what the runtime applied, as seen from inside, with
//! the config, and prints one line per assertion: `ok|not ok <TAB> spec-file <TAB> clause <TAB>
//! detail`. The last line is `checker-done`, so the driver can tell a finished run from a crash.

mod devices;
mod fs;
mod ns;
mod process;
mod seccomp;

use std::collections::HashMap;
use std::fmt::Display;

use oci_spec::runtime::Spec;
use serde::Deserialize;

/// Where the driver puts the case's config.json and host facts inside the rootfs.
const CONFIG: &str = "/conformance/config.json";
const HOST: &str = "/conformance/host.json";

/// Facts only the host can know, written by the driver next to the config.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Host {
    /// Inode of each of the runtime's namespaces, keyed by /proc/self/ns name.
    pub host_ns: HashMap<String, u64>,
    /// Inode of the namespace each `path` entry of the config points at, keyed by spec type.
    pub joined_ns: HashMap<String, u64>,
    /// The runtime's own oom_score_adj, which the container inherits when the config is silent.
    pub oom_score_adj: i32,
    /// Case-specific expectations about files in the container.
    pub expect: Vec<Expect>,
    /// The `mounts` check skips config mounts before this index (the base ones, checked elsewhere).
    pub mounts_from: usize,
    /// Whether the mount holding the bundle has a peer group on the host. When it has none, a
    /// `slave` rootfs has no master to show (mount_namespaces(7)), and looks like a private one.
    #[serde(default = "yes")]
    pub rootfs_source_shared: bool,
}

fn yes() -> bool {
    true
}

/// One expectation about a path, from the case that built the bundle.
#[derive(Deserialize)]
pub struct Expect {
    pub file: String,
    pub clause: String,
    pub path: String,
    /// Whether the path must (not) exist.
    pub exists: Option<bool>,
    /// Exact content the file must have.
    pub content: Option<String>,
    /// Result of open(path, O_RDWR): 0 for success, else the errno.
    pub open_errno: Option<i32>,
}

/// Prints assertions in the line format the driver parses.
#[derive(Default)]
pub struct Report {
    failed: usize,
}

impl Report {
    pub fn check(&mut self, file: &str, clause: &str, ok: bool, detail: impl Display) {
        let verdict = if ok { "ok" } else { "not ok" };
        if !ok {
            self.failed += 1;
        }
        // Tabs and newlines separate fields and lines, so details must not contain them.
        let detail = detail.to_string().replace(['\t', '\n', '\r'], " ");
        println!("{verdict}\t{file}\t{clause}\t{detail}");
    }
}

fn main() {
    let checks: Vec<String> = std::env::args().skip(1).collect();
    let mut report = Report::default();
    // Listed before anything else opens a file, so that only inherited descriptors are seen.
    let inherited = process::open_fds();
    let spec = match Spec::load(CONFIG) {
        Ok(spec) => spec,
        Err(err) => {
            report.check(
                "checker",
                "read the bundle config copied into the rootfs",
                false,
                err,
            );
            println!("checker-done");
            std::process::exit(1);
        }
    };
    let host: Host = std::fs::read(HOST)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default();
    for check in &checks {
        let r = &mut report;
        match check.as_str() {
            "args" => process::args(&spec, r),
            "env" => process::env(&spec, r),
            "cwd" => process::cwd(&spec, r),
            "user" => process::user(&spec, r),
            "caps" => process::capabilities(&spec, r),
            "nnp" => process::no_new_privileges(&spec, r),
            "rlimits" => process::rlimits(&spec, r),
            "oom" => process::oom_score_adj(&spec, &host, r),
            "scheduler" => process::scheduler(&spec, r),
            "ioprio" => process::io_priority(&spec, r),
            "tty" => process::terminal(&spec, r),
            "fds" => process::only_stdio(&inherited, r),
            "hostname" => ns::hostname(&spec, r),
            "namespaces" => ns::namespaces(&spec, &host, r),
            "idmap" => ns::id_mappings(&spec, r),
            "timens" => ns::time_offsets(&spec, r),
            "sysctl" => ns::sysctl(&spec, r),
            "cgroup" => ns::cgroup_membership(&spec, r),
            "personality" => ns::personality(&spec, r),
            "mempolicy" => ns::memory_policy(&spec, r),
            "netdev" => ns::net_devices(&spec, r),
            "mounts" => fs::mounts(&spec, &host, r),
            "readonly-root" => fs::readonly_root(&spec, r),
            "propagation" => fs::rootfs_propagation(&spec, &host, r),
            "masked" => fs::masked_paths(&spec, r),
            "readonly-paths" => fs::readonly_paths(&spec, r),
            "expect" => fs::expectations(&host, r),
            "devices" => devices::devices(&spec, r),
            "default-devices" => devices::default_devices(r),
            "dev-symlinks" => devices::dev_symlinks(r),
            "seccomp" => seccomp::seccomp(&spec, r),
            other => r.check("checker", "known check name", false, other),
        }
    }
    println!("checker-done");
    std::process::exit(i32::from(report.failed > 0));
}
