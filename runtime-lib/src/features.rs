//! `features` (runtime-spec features.md): what this build of Hull implements, for engines to probe.
//! Built from the same tables the code uses (mount options, seccomp), so it cannot drift from them.
//!
//! ```
//! let f = hull::features::features();
//! assert_eq!(f.oci_version_max(), hull::features::OCI_VERSION_MAX);
//! ```

use std::str::FromStr;

use oci_spec::runtime::{
    Apparmor, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, MemoryPolicy, MountExtensions,
    NetDevices, Seccomp, Selinux,
};
use oci_spec::runtime::{Arch, LinuxNamespaceType, LinuxSeccompAction};

use crate::rootfs::options;

/// What `hull features` prints (runc's verb of the same name): the spec versions, hooks, mount
/// options, namespaces, capabilities, seccomp actions, operators and architectures, and the
/// Linux features this build implements. Needs no privilege and touches nothing.
///
/// ```
/// let f = hull::features::features();
/// let hooks = f.hooks().clone().unwrap_or_default();
/// assert!(hooks.iter().any(|h| h == "createRuntime"));
/// println!("{}", serde_json::to_string_pretty(&f).expect("serialise"));
/// ```
pub fn features() -> Features {
    let mut f = Features::default();
    f.set_oci_version_min("1.0.0".to_string());
    f.set_oci_version_max(OCI_VERSION_MAX.to_string());
    f.set_hooks(Some(
        crate::hooks::HookKind::ALL.map(|k| k.to_string()).to_vec(),
    ));
    f.set_mount_options(Some(
        options::known().into_iter().map(String::from).collect(),
    ));
    f.set_linux(Some(linux()));
    f.set_annotations(Some(
        [
            ("dev.hull.version", env!("CARGO_PKG_VERSION")),
            // Pure Rust filters (seccompiler), no libseccomp: engines that read runc's
            // libseccomp annotations must not assume one.
            ("dev.hull.seccomp", "seccompiler"),
            ("dev.hull.checkpoint.enabled", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    ));
    // No annotation of config.json changes what hull does (it only copies them into the state):
    // an empty list, which features.md distinguishes from null ("unknown").
    f.set_potentially_unsafe_config_annotations(Some(Vec::new()));
    f
}

/// features-linux.md's part.
fn linux() -> LinuxFeature {
    let mut linux = LinuxFeature::default();
    linux.set_namespaces(Some(vec![
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Time,
    ]));
    linux.set_capabilities(Some(
        caps::all()
            .into_iter()
            .map(|c| c.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    ));
    let mut cgroup = Cgroup::default();
    cgroup.set_v1(Some(true));
    cgroup.set_v2(Some(true));
    cgroup.set_systemd(Some(false));
    cgroup.set_systemd_user(Some(false));
    cgroup.set_rdma(Some(true));
    linux.set_cgroup(Some(cgroup));
    linux.set_seccomp(Some(seccomp()));
    // What this build can do (features-linux.md), not what the host runs: see crate::plan::lsm. SELinux
    // stays off while linux.mountLabel is refused on SELinux hosts: an engine labelling both
    // would get a container half labelled.
    let mut apparmor = Apparmor::default();
    apparmor.set_enabled(Some(true));
    linux.set_apparmor(Some(apparmor));
    let mut selinux = Selinux::default();
    selinux.set_enabled(Some(false));
    linux.set_selinux(Some(selinux));
    let mut intel_rdt = IntelRdt::default();
    intel_rdt.set_enabled(Some(false));
    linux.set_intel_rdt(Some(intel_rdt));
    let mut net_devices = NetDevices::default();
    net_devices.set_enabled(Some(true));
    linux.set_net_devices(Some(net_devices));
    linux.set_memory_policy(Some(memory_policy()));
    // features-linux.md: `enabled` says whether uidMappings/gidMappings of mounts are parsed and
    // used; hull refuses such a mount by name (rootfs::mounts), so false, not null.
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(false));
    let mut mount_extensions = MountExtensions::default();
    mount_extensions.set_idmap(Some(idmap));
    linux.set_mount_extensions(Some(mount_extensions));
    linux
}

/// The seccomp actions, operators, architectures and flags the filter compiler takes.
fn seccomp() -> Seccomp {
    let (actions, operators, archs, flags) = crate::seccomp::supported();
    let mut seccomp = Seccomp::default();
    seccomp.set_enabled(Some(true));
    seccomp.set_actions(Some(
        actions
            .iter()
            .filter_map(|a| LinuxSeccompAction::from_str(a).ok())
            .collect(),
    ));
    seccomp.set_operators(Some(operators.iter().map(|s| s.to_string()).collect()));
    seccomp.set_archs(Some(
        archs
            .iter()
            .filter_map(|a| Arch::from_str(a).ok())
            .collect(),
    ));
    let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    seccomp.set_known_flags(Some(flags.clone()));
    seccomp.set_supported_flags(Some(flags));
    seccomp
}

/// The `linux.memoryPolicy` modes and flags `process_attrs` applies.
fn memory_policy() -> MemoryPolicy {
    let mut memory_policy = MemoryPolicy::default();
    memory_policy.set_modes(Some(
        [
            "MPOL_DEFAULT",
            "MPOL_BIND",
            "MPOL_INTERLEAVE",
            "MPOL_WEIGHTED_INTERLEAVE",
            "MPOL_PREFERRED",
            "MPOL_PREFERRED_MANY",
            "MPOL_LOCAL",
        ]
        .map(String::from)
        .to_vec(),
    ));
    memory_policy.set_flags(Some(
        [
            "MPOL_F_NUMA_BALANCING",
            "MPOL_F_RELATIVE_NODES",
            "MPOL_F_STATIC_NODES",
        ]
        .map(String::from)
        .to_vec(),
    ));
    memory_policy
}

/// The newest runtime-spec whose fields hull implements or refuses by name (memoryPolicy,
/// netDevices and execCPUAffinity are 1.3's); configs of any 1.x are accepted, as runc does.
///
/// ```
/// assert!(hull::features::OCI_VERSION_MAX.starts_with("1."));
/// ```
pub const OCI_VERSION_MAX: &str = "1.3.0";

#[cfg(test)]
mod tests {
    #[test]
    fn features_name_what_the_parsers_accept() {
        let f = super::features();
        let json = serde_json::to_value(&f).unwrap();
        let opts = json["mountOptions"].as_array().unwrap();
        for o in opts {
            let o = o.as_str().unwrap();
            assert!(crate::rootfs::options::parse(&[o]).is_ok(), "{o}");
        }
        assert!(opts.iter().any(|o| o == "rro"));
        let actions = json["linux"]["seccomp"]["actions"].as_array().unwrap();
        assert!(
            actions.iter().any(|a| a == "SCMP_ACT_NOTIFY"),
            "{actions:?}"
        );
        assert!(json["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
    }
}
