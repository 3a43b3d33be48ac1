//! The default config.json `hull spec` writes: the same document `runc spec` writes.
//!
//! runc's starter bundle is what users and scripts expect (`sed -i 's/"sh"/.../' config.json`), so
//! every value here is runc 1.1.5's, including `"hostname": "runc"` and `ociVersion` "1.0.2-dev".
//!
//! A program starts from [`default_spec`] and changes what it needs through the
//! [`crate::oci_spec`] types (the same version hull reads), then writes it with [`to_json`].
//!
//! ```
//! let mut spec = hull::spec::default_spec(false)?;
//! let mut process = spec.process().clone().unwrap_or_default();
//! process.set_args(Some(vec!["echo".into(), "hello".into()]));
//! process.set_terminal(Some(false));
//! spec.set_process(Some(process));
//! let json = hull::spec::to_json(&spec)?;
//! assert!(json.contains("\"hello\""));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

/// The runtime-spec version of the config schema hull reads (oci-spec's types), as `--version`
/// reports it.
///
/// ```
/// println!("runtime-spec {}", hull::spec::SUPPORTED_VERSION);
/// ```
pub const SUPPORTED_VERSION: &str = oci_spec::runtime::VERSION;

/// The `ociVersion` runc 1.1.5 writes.
const OCI_VERSION: &str = "1.0.2-dev";

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// runc's default spec; `rootless` gives runc's `spec --rootless` variant: no network namespace
/// (a rootless user cannot configure one), a user namespace mapping root to the caller's euid/egid,
/// /sys bind-mounted (sysfs cannot be mounted without owning the network namespace), no devpts
/// `gid=5` (that gid is unmapped) and no device cgroup rules. What `hull spec` writes.
///
/// ```
/// let spec = hull::spec::default_spec(false)?;
/// assert_eq!(spec.hostname().as_deref(), Some("runc"));
/// assert_eq!(spec.root().as_ref().map(|r| r.path().clone()), Some("rootfs".into()));
/// # Ok::<(), hull::Error>(())
/// ```
///
/// Errors: [`crate::Error::InvalidConfig`] if oci-spec's builders refuse a field (they are given
/// every required one, so only a change of oci-spec could make them).
pub fn default_spec(rootless: bool) -> crate::Result<Spec> {
    build(rootless).map_err(|e| crate::Error::InvalidConfig {
        field: "(the default spec)".into(),
        problem: e.to_string(),
    })
}

fn build(rootless: bool) -> Result<Spec, oci_spec::OciSpecError> {
    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process()?)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()?,
        )
        .hostname("runc")
        .mounts(mounts(rootless)?)
        .linux(linux(rootless)?)
        .build()?;
    spec.set_annotations(None);
    Ok(spec)
}

/// runc's `sh` with a terminal, as root, three capabilities, an open-files limit, no_new_privs.
fn process() -> Result<oci_spec::runtime::Process, oci_spec::OciSpecError> {
    let caps: oci_spec::runtime::Capabilities = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    // The builders start from oci-spec's own defaults (youki's), so fields runc leaves out are
    // cleared after building.
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .ambient(caps)
        .build()?;
    capabilities.set_inheritable(None);
    ProcessBuilder::default()
        .terminal(true)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(vec!["sh".to_string()])
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "TERM=xterm".to_string(),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()?])
        .no_new_privileges(true)
        .build()
}

/// The namespaces, masked and read-only paths, and either the device cgroup rule (root) or the
/// user namespace's id mappings (rootless).
fn linux(rootless: bool) -> Result<oci_spec::runtime::Linux, oci_spec::OciSpecError> {
    let mut namespaces = vec![LinuxNamespaceType::Pid];
    if !rootless {
        namespaces.push(LinuxNamespaceType::Network);
    }
    namespaces.extend([
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]);
    if rootless {
        namespaces.push(LinuxNamespaceType::User);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(strings(MASKED_PATHS))
        .readonly_paths(strings(READONLY_PATHS));
    if rootless {
        // No device rules: a rootless container cannot set up a device cgroup.
        let map = |host_id: u32| {
            LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(1u32)
                .build()
        };
        linux = linux
            .uid_mappings(vec![map(nix::unistd::geteuid().as_raw())?])
            .gid_mappings(vec![map(nix::unistd::getegid().as_raw())?]);
    } else {
        linux = linux.resources(
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .access("rwm")
                    .build()?])
                .build()?,
        );
    }

    let mut linux = linux.build()?;
    if rootless {
        linux.set_resources(None);
    }
    Ok(linux)
}

fn mounts(rootless: bool) -> Result<Vec<Mount>, oci_spec::OciSpecError> {
    let mount = |destination: &str, typ: &str, source: &str, options: &[&str]| {
        let m = MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source);
        if options.is_empty() {
            m.build()
        } else {
            m.options(strings(options)).build()
        }
    };
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        // The tty group; unmapped in a rootless container's user namespace.
        devpts.push("gid=5");
    }
    let sys = if rootless {
        mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?
    } else {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount("/dev/pts", "devpts", "devpts", &devpts)?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        sys,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// The spec formatted as `runc spec` formats config.json: tab-indented, no trailing newline,
/// capability names sorted (oci-spec keeps each capability set in a `HashSet`, whose order would
/// change from run to run; runc's lists are sorted). Fields come in oci-spec's order.
///
/// ```
/// let json = hull::spec::to_json(&hull::spec::default_spec(true)?)?;
/// assert!(json.starts_with("{\n\t\"ociVersion\": \"1.0.2-dev\""));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_json(spec: &Spec) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(spec, &mut ser)?;
    let text = String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)?;
    Ok(sort_capability_lists(&text))
}

/// Sorts the elements of every capability set array in pretty-printed JSON. Capability names are
/// bare `CAP_*` strings, one per line, so sorting lines sorts the set.
fn sort_capability_lists(text: &str) -> String {
    const SETS: &[&str] = &[
        "\"bounding\": [",
        "\"effective\": [",
        "\"inheritable\": [",
        "\"permitted\": [",
        "\"ambient\": [",
    ];
    let mut lines: Vec<String> = Vec::new();
    let mut set: Option<Vec<String>> = None;
    for line in text.split('\n') {
        match &mut set {
            Some(items) if line.trim_start().starts_with(']') => {
                items.sort();
                let last = items.len().saturating_sub(1);
                for (i, item) in items.drain(..).enumerate() {
                    lines.push(if i == last { item } else { item + "," });
                }
                set = None;
                lines.push(line.to_string());
            }
            Some(items) => items.push(line.trim_end_matches(',').to_string()),
            None => {
                if SETS.iter().any(|s| line.trim_start() == *s) {
                    set = Some(Vec::new());
                }
                lines.push(line.to_string());
            }
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// `runc spec` and `runc spec --rootless` (runc 1.1.5, run as root) verbatim.
    const RUNC_SPEC: &str = include_str!("../../tests/fixtures/runc-spec.json");
    const RUNC_SPEC_ROOTLESS: &str = include_str!("../../tests/fixtures/runc-spec-rootless.json");

    fn parsed(s: &str) -> Value {
        serde_json::from_str(s).expect("valid JSON")
    }

    /// The spec as a JSON value with its capability sets in runc's (sorted) order.
    fn canonical(spec: &Spec) -> Value {
        let mut v = serde_json::to_value(spec).unwrap();
        for set in v["process"]["capabilities"]
            .as_object_mut()
            .unwrap()
            .values_mut()
        {
            set.as_array_mut()
                .unwrap()
                .sort_by_key(|c| c.as_str().unwrap().to_string());
        }
        v
    }

    #[test]
    fn default_spec_is_runcs() {
        assert_eq!(canonical(&default_spec(false).unwrap()), parsed(RUNC_SPEC));
    }

    #[test]
    fn rootless_spec_is_runcs_with_callers_ids() {
        let mut runc = parsed(RUNC_SPEC_ROOTLESS);
        // runc maps root to the caller's effective ids; the fixture was made as root.
        runc["linux"]["uidMappings"][0]["hostID"] = nix::unistd::geteuid().as_raw().into();
        runc["linux"]["gidMappings"][0]["hostID"] = nix::unistd::getegid().as_raw().into();
        assert_eq!(canonical(&default_spec(true).unwrap()), runc);
    }

    #[test]
    fn json_text_is_stable_and_formatted_as_runc() {
        let text = to_json(&default_spec(false).unwrap()).unwrap();
        // Every run the same text, whatever order the capability sets iterate in.
        for _ in 0..8 {
            assert_eq!(to_json(&default_spec(false).unwrap()).unwrap(), text);
        }
        assert!(text.contains("\n\t\t\t\"bounding\": [\n\t\t\t\t\"CAP_AUDIT_WRITE\",\n\t\t\t\t\"CAP_KILL\",\n\t\t\t\t\"CAP_NET_BIND_SERVICE\"\n\t\t\t]"));
        // Tab-indented without a final newline, as runc writes it (oci-spec orders the top-level
        // fields differently, so the text is not byte-identical).
        assert!(text.starts_with("{\n\t\"ociVersion\": \"1.0.2-dev\",\n"));
        assert!(text.ends_with("\n\t}\n}") && RUNC_SPEC.ends_with("\n\t}\n}"));
        assert_eq!(parsed(&text), parsed(RUNC_SPEC));
    }

    #[test]
    fn rootless_json_text_parses_back_to_the_spec() {
        let spec = default_spec(true).unwrap();
        let back: Spec = serde_json::from_str(&to_json(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn capability_sorting_touches_only_capability_sets() {
        let text = "{\n\t\"args\": [\n\t\t\"b\",\n\t\t\"a\"\n\t],\n\t\"ambient\": [\n\t\t\"CAP_KILL\",\n\t\t\"CAP_AUDIT_WRITE\"\n\t]\n}";
        let want = "{\n\t\"args\": [\n\t\t\"b\",\n\t\t\"a\"\n\t],\n\t\"ambient\": [\n\t\t\"CAP_AUDIT_WRITE\",\n\t\t\"CAP_KILL\"\n\t]\n}";
        assert_eq!(sort_capability_lists(text), want);
    }
}
