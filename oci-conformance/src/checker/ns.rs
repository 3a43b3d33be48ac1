//! Checks of namespaces and what lives in them: config-linux.md "Namespaces", "User namespace
//! mappings", "Offset for Time Namespace", "Sysctl", cgroups path, "Personality", "Memory policy",
//! "Network Devices"; config.md "Hostname" and "Domainname".

use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::{Linux, LinuxIdMapping, Spec};

use crate::process::spec_name;
use crate::{Host, Report};

const CREATE: &str = "(runtime.md: create: all of the properties configured in config.json except for process MUST be applied)";

fn linux(spec: &Spec) -> Linux {
    spec.linux().clone().unwrap_or_default()
}

pub fn hostname(spec: &Spec, r: &mut Report) {
    let uts = nix::sys::utsname::uname();
    if let Some(want) = spec.hostname() {
        let got = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned());
        let ok = got.as_ref().is_ok_and(|got| got == want);
        let clause = format!("hostname specifies the container's hostname as seen by processes running inside the container {CREATE}");
        r.check(
            "config.md",
            &clause,
            ok,
            format!("hostname {got:?}, config {want:?}"),
        );
    }
    if let Some(want) = spec.domainname() {
        let got = uts
            .as_ref()
            .map(|u| u.domainname().to_string_lossy().into_owned());
        let ok = got.as_ref().is_ok_and(|got| got == want);
        let clause = format!("domainname specifies the container's domainname as seen by processes running inside the container {CREATE}");
        r.check(
            "config.md",
            &clause,
            ok,
            format!("domainname {got:?}, config {want:?}"),
        );
    }
}

/// The /proc/self/ns entry for each namespace type the spec names.
const NS_TYPES: [(&str, &str); 8] = [
    ("pid", "pid"),
    ("network", "net"),
    ("mount", "mnt"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("user", "user"),
    ("cgroup", "cgroup"),
    ("time", "time"),
];

pub fn namespaces(spec: &Spec, host: &Host, r: &mut Report) {
    let configured = linux(spec).namespaces().clone().unwrap_or_default();
    let mut inherited = Vec::new();
    for (spec_type, proc_name) in NS_TYPES {
        let got = std::fs::metadata(format!("/proc/self/ns/{proc_name}"))
            .map(|m| m.ino())
            .ok();
        let host_ino = host.host_ns.get(proc_name).copied();
        let entry = configured
            .iter()
            .find(|ns| spec_name(&ns.typ()) == spec_type);
        match entry {
            Some(ns) if ns.path().is_some() => {
                let want = host.joined_ns.get(spec_type).copied();
                let clause = "namespaces[].path: the runtime MUST place the container process in the namespace associated with that path";
                let detail = format!("{proc_name} namespace inode {got:?}, path's inode {want:?}");
                r.check(
                    "config-linux.md",
                    clause,
                    got.is_some() && got == want,
                    detail,
                );
            }
            Some(_) => {
                let clause = "namespaces: if path is not specified, the runtime MUST create a new container namespace of type type";
                let detail =
                    format!("{spec_type}: {proc_name} inode {got:?}, runtime's {host_ino:?}");
                r.check(
                    "config-linux.md",
                    clause,
                    got.is_some() && got != host_ino,
                    detail,
                );
            }
            None => inherited.push((spec_type, got, host_ino)),
        }
    }
    let wrong: Vec<_> = inherited
        .iter()
        .filter(|(_, got, host)| got != host)
        .collect();
    let clause = "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime namespace of that type";
    r.check(
        "config-linux.md",
        clause,
        wrong.is_empty(),
        format!("(type, inode, runtime's inode) differing: {wrong:?}"),
    );
}

fn read_map(path: &str) -> Option<Vec<(u32, u32, u32)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut rows: Vec<(u32, u32, u32)> = text
        .lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next()??, it.next()??))
        })
        .collect();
    rows.sort();
    Some(rows)
}

fn want_map(config: &Option<Vec<LinuxIdMapping>>) -> Vec<(u32, u32, u32)> {
    let mut rows: Vec<_> = config
        .iter()
        .flatten()
        .map(|m| (m.container_id(), m.host_id(), m.size()))
        .collect();
    rows.sort();
    rows
}

pub fn id_mappings(spec: &Spec, r: &mut Report) {
    let linux = linux(spec);
    for (name, file, config) in [
        ("uidMappings", "/proc/self/uid_map", linux.uid_mappings()),
        ("gidMappings", "/proc/self/gid_map", linux.gid_mappings()),
    ] {
        let want = want_map(config);
        let got = read_map(file);
        let clause = format!(
            "{name} describes the user namespace mappings from the host to the container {CREATE}"
        );
        r.check(
            "config-linux.md",
            &clause,
            got.as_ref() == Some(&want),
            format!("{file} {got:?}, config {want:?}"),
        );
    }
}

pub fn time_offsets(spec: &Spec, r: &mut Report) {
    let offsets = linux(spec).time_offsets().clone().unwrap_or_default();
    let text = std::fs::read_to_string("/proc/self/timens_offsets").unwrap_or_default();
    let mut bad = Vec::new();
    for clock in ["monotonic", "boottime"] {
        let want = offsets
            .get(clock)
            .map(|o| (o.secs().unwrap_or(0), i64::from(o.nanosecs().unwrap_or(0))))
            .unwrap_or((0, 0));
        let got = text.lines().find_map(|line| {
            let mut it = line.split_whitespace();
            (it.next()? == clock)
                .then(|| Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?)))?
        });
        if got != Some(want) {
            bad.push(format!("{clock}: got {got:?}, config {want:?}"));
        }
    }
    let clause = format!("timeOffsets sets the offset for the time namespace {CREATE}");
    r.check("config-linux.md", &clause, bad.is_empty(), bad.join("; "));
}

pub fn sysctl(spec: &Spec, r: &mut Report) {
    for (key, want) in linux(spec).sysctl().clone().unwrap_or_default() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let got = std::fs::read_to_string(&path).map(|s| s.trim().to_owned());
        let ok = got
            .as_ref()
            .is_ok_and(|got| got.split_whitespace().eq(want.split_whitespace()));
        let clause = format!("sysctl: kernel parameters are modified for the container {CREATE}");
        r.check(
            "config-linux.md",
            &clause,
            ok,
            format!("{path} = {got:?}, config {key}={want:?}"),
        );
    }
}

pub fn cgroup_membership(spec: &Spec, r: &mut Report) {
    let linux = linux(spec);
    let Some(path) = linux.cgroups_path().clone() else {
        return;
    };
    let own_cgroupns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| spec_name(&ns.typ()) == "cgroup" && ns.path().is_none());
    let want = if own_cgroupns {
        "/".to_owned()
    } else {
        path.display().to_string()
    };
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // The controllers every runtime needs for the resources it applies; names vary by host.
    let bad: Vec<&str> = text
        .lines()
        .filter(|line| {
            let mut it = line.splitn(3, ':');
            let (_, controllers, got) =
                (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
            let relevant = controllers
                .split(',')
                .any(|c| ["memory", "pids", "cpu", "devices"].contains(&c));
            relevant && got != want
        })
        .collect();
    let clause = "cgroupsPath: for an absolute path the runtime MUST take the path to be relative to the cgroups mount point";
    r.check(
        "config-linux.md",
        clause,
        !text.is_empty() && bad.is_empty(),
        format!("expected {want}, got lines {bad:?}"),
    );
}

pub fn personality(spec: &Spec, r: &mut Report) {
    let Some(config) = linux(spec).personality().clone() else {
        return;
    };
    const PER_LINUX32: libc::c_int = 0x0008;
    // SAFETY: 0xffffffff only queries the current persona.
    let got = unsafe { libc::personality(0xffff_ffff) } & 0xff;
    let want = if spec_name(&config.domain()) == "LINUX32" {
        PER_LINUX32
    } else {
        0
    };
    let machine = nix::sys::utsname::uname().map(|u| u.machine().to_string_lossy().into_owned());
    let clause = format!("personality sets the Linux execution personality (LINUX32 makes uname show a 32 bit CPU) {CREATE}");
    r.check(
        "config-linux.md",
        &clause,
        got == want,
        format!("persona {got:#x}, want {want:#x}, uname machine {machine:?}"),
    );
}

fn parse_nodes(list: &str) -> u64 {
    let mut mask = 0u64;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u32>(), hi.trim().parse::<u32>()) {
            (lo..=hi.min(63)).for_each(|n| mask |= 1 << n);
        }
    }
    mask
}

pub fn memory_policy(spec: &Spec, r: &mut Report) {
    let Some(config) = linux(spec).memory_policy().clone() else {
        return;
    };
    let mode = match spec_name(&config.mode()).as_str() {
        "MPOL_DEFAULT" => 0,
        "MPOL_PREFERRED" => 1,
        "MPOL_BIND" => 2,
        "MPOL_INTERLEAVE" => 3,
        "MPOL_LOCAL" => 4,
        "MPOL_PREFERRED_MANY" => 5,
        "MPOL_WEIGHTED_INTERLEAVE" => 6,
        _ => -1,
    };
    let flags = config.flags().iter().flatten().fold(0, |acc, f| {
        acc | match spec_name(f).as_str() {
            "MPOL_F_NUMA_BALANCING" => 1 << 13,
            "MPOL_F_RELATIVE_NODES" => 1 << 14,
            "MPOL_F_STATIC_NODES" => 1 << 15,
            _ => 0,
        }
    });
    let mut got_mode: libc::c_int = -1;
    let mut got_mask = [0u64; 16];
    // SAFETY: get_mempolicy writes one int and at most maxnode bits into the buffers given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut got_mode,
            got_mask.as_mut_ptr(),
            16 * 64,
            0usize,
            0usize,
        )
    };
    let want_mask = parse_nodes(config.nodes().as_deref().unwrap_or(""));
    let mask_ok = want_mask == 0 || got_mask[0] == want_mask;
    let ok = rc == 0 && got_mode == (mode | flags) && mask_ok;
    let clause = format!("memoryPolicy sets the NUMA memory policy for the container {CREATE}");
    let detail = format!(
        "mode {got_mode:#x} nodes {:#x}, config mode {:#x} nodes {want_mask:#x}",
        got_mask[0],
        mode | flags
    );
    r.check("config-linux.md", &clause, ok, detail);
}

pub fn net_devices(spec: &Spec, r: &mut Report) {
    for (host_name, device) in linux(spec).net_devices().clone().unwrap_or_default() {
        let name = device.name().clone().unwrap_or(host_name.clone());
        let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok());
        let clause = "netDevices: the devices MUST be made available in the container, and the runtime MUST set the network device state to \"up\"";
        let ok = flags.is_some_and(|f| f & libc::IFF_UP as u32 != 0);
        r.check(
            "config-linux.md",
            clause,
            ok,
            format!("{host_name} as {name}: flags {flags:?}"),
        );
    }
}
