//! linux.resources as systemd unit properties: what systemd itself keeps applied to the scope
//! (across `systemctl daemon-reload`, which rewrites the cgroup files from the unit's
//! properties). What has no property (hugetlb, rdma, cpu burst and idle, realtime, v1 swap,
//! kernel memory, swappiness, the unified keys systemd does not know) is written to the cgroup
//! files afterwards, as for cgroupfs; the properties' values are the same as those writes', so
//! the two agree (runc's conversions).

use std::collections::HashMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::dbus::Arg;
use crate::cgroups::{blkio, cpu, memory};
use crate::error::{Error, Result};

/// systemd's "infinity" for its u64 limits.
const INFINITY: u64 = u64::MAX;

/// Properties that systemd versions older than this project's oldest target lack: dropped, with a
/// warning, when systemd refuses them (the file write that follows still applies the value).
pub const VERSION_GATED: &[&str] = &[
    "CPUQuotaPeriodUSec", // systemd 242
    "AllowedCPUs",        // 244
    "AllowedMemoryNodes", // 244
    "MemorySwapMax",      // 232
];

fn prop(name: &str, value: Arg) -> Arg {
    Arg::property(name, value)
}

fn invalid(field: String, problem: String) -> Error {
    Error::InvalidConfig { field, problem }
}

/// A memory/tasks value: -1 is unlimited, 0 not set, negatives other than -1 invalid.
fn limit(v: i64) -> Option<u64> {
    match v {
        0 => None,
        v if v < 0 => Some(INFINITY),
        v => Some(v as u64),
    }
}

/// The resource properties for `r`; `v2` picks the unified names (MemoryMax, CPUWeight,
/// IOWeight) over the legacy ones (MemoryLimit, CPUShares, BlockIOWeight).
pub fn resources(r: &LinuxResources, v2: bool) -> Result<Vec<Arg>> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        let mem = m.limit().unwrap_or(0);
        if let Some(l) = limit(mem) {
            out.push(prop(
                if v2 { "MemoryMax" } else { "MemoryLimit" },
                Arg::U64(l),
            ));
        }
        if v2 {
            if let Some(l) = m.reservation().and_then(limit) {
                out.push(prop("MemoryLow", Arg::U64(l)));
            }
            if let Some(swap) = m.swap().filter(|s| *s != 0) {
                let s = memory::swap_to_v2(swap, mem)
                    .map_err(|p| invalid("linux.resources.memory.swap".into(), p))?;
                if let Some(l) = limit(s) {
                    out.push(prop("MemorySwapMax", Arg::U64(l)));
                }
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            if v2 {
                out.push(prop("CPUWeight", Arg::U64(cpu::shares_to_weight(shares))));
            } else {
                out.push(prop("CPUShares", Arg::U64(shares)));
            }
        }
        quota(&mut out, c.quota(), c.period());
        // Given on v1 too, as runc does: systemd keeps them, though its legacy hierarchy has
        // no cpuset (hull writes cpuset.cpus/mems there).
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(prop(
                "AllowedCPUs",
                bitmask("linux.resources.cpu.cpus", cpus)?,
            ));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(prop(
                "AllowedMemoryNodes",
                bitmask("linux.resources.cpu.mems", mems)?,
            ));
        }
    }
    if let Some(p) = r.pids() {
        if let Some(l) = limit(p.limit()) {
            out.push(prop("TasksMax", Arg::U64(l)));
        }
    }
    if let Some(b) = r.block_io() {
        io(&mut out, b, v2);
    }
    if v2 {
        if let Some(u) = r.unified() {
            unified(&mut out, u)?;
        }
    }
    Ok(out)
}

/// runc's rule: a quota or a period makes CPUQuotaPerSecUSec (unlimited unless the quota is
/// positive, then quota per second rounded up to systemd's 10 ms granularity).
fn quota(out: &mut Vec<Arg>, quota: Option<i64>, period: Option<u64>) {
    let q = quota.unwrap_or(0);
    let p = period.unwrap_or(0);
    if q == 0 && p == 0 {
        return;
    }
    if p != 0 {
        out.push(prop("CPUQuotaPeriodUSec", Arg::U64(p)));
    }
    let mut per_sec = INFINITY;
    if q > 0 {
        let period = if p == 0 { 100_000 } else { p };
        per_sec = (q as u64).saturating_mul(1_000_000) / period;
        if !per_sec.is_multiple_of(10_000) {
            per_sec = (per_sec / 10_000 + 1) * 10_000;
        }
    }
    out.push(prop("CPUQuotaPerSecUSec", Arg::U64(per_sec)));
}

fn io(out: &mut Vec<Arg>, b: &oci_spec::runtime::LinuxBlockIo, v2: bool) {
    let dev = |major: i64, minor: i64| format!("/dev/block/{major}:{minor}");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if v2 {
            out.push(prop("IOWeight", Arg::U64(blkio::weight_to_io_weight(w))));
        } else {
            out.push(prop("BlockIOWeight", Arg::U64(u64::from(w))));
        }
    }
    if let Some(devices) = b.weight_device().as_ref().filter(|d| !d.is_empty()) {
        let items: Vec<Arg> = devices
            .iter()
            .filter_map(|d| {
                let w = d.weight().filter(|w| *w != 0)?;
                let w = if v2 {
                    blkio::weight_to_io_weight(w)
                } else {
                    u64::from(w)
                };
                Some(Arg::Struct(vec![
                    Arg::Str(dev(d.major(), d.minor())),
                    Arg::U64(w),
                ]))
            })
            .collect();
        if !items.is_empty() {
            let name = if v2 {
                "IODeviceWeight"
            } else {
                "BlockIODeviceWeight"
            };
            out.push(prop(name, Arg::Array("(st)", items)));
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "IOReadBandwidthMax",
            Some("BlockIOReadBandwidth"),
        ),
        (
            b.throttle_write_bps_device(),
            "IOWriteBandwidthMax",
            Some("BlockIOWriteBandwidth"),
        ),
        (b.throttle_read_iops_device(), "IOReadIOPSMax", None),
        (b.throttle_write_iops_device(), "IOWriteIOPSMax", None),
    ];
    for (devices, v2_name, v1_name) in throttles {
        let Some(devices) = devices.as_ref().filter(|d| !d.is_empty()) else {
            continue;
        };
        let Some(name) = (if v2 { Some(v2_name) } else { v1_name }) else {
            continue;
        };
        let items = devices
            .iter()
            .map(|t| {
                Arg::Struct(vec![
                    Arg::Str(dev(t.major(), t.minor())),
                    Arg::U64(t.rate()),
                ])
            })
            .collect();
        out.push(prop(name, Arg::Array("(st)", items)));
    }
}

/// The unified keys systemd has properties for; the others are only written to the files.
fn unified(out: &mut Vec<Arg>, u: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort();
    for (k, v) in keys {
        let field = format!("linux.resources.unified.{k:?}");
        let number = |v: &str| -> Result<u64> {
            let v = v.trim();
            if v == "max" {
                return Ok(INFINITY);
            }
            v.parse::<u64>()
                .map_err(|_| invalid(field.clone(), format!("{v:?} is not a number or \"max\"")))
        };
        match k.as_str() {
            "memory.high" => out.push(prop("MemoryHigh", Arg::U64(number(v)?))),
            "memory.low" => out.push(prop("MemoryLow", Arg::U64(number(v)?))),
            "memory.min" => out.push(prop("MemoryMin", Arg::U64(number(v)?))),
            "memory.max" => out.push(prop("MemoryMax", Arg::U64(number(v)?))),
            "memory.swap.max" => out.push(prop("MemorySwapMax", Arg::U64(number(v)?))),
            "pids.max" => out.push(prop("TasksMax", Arg::U64(number(v)?))),
            "cpu.weight" => out.push(prop("CPUWeight", Arg::U64(number(v)?))),
            "cpu.max" => {
                let mut it = v.split_whitespace();
                let q = it.next().unwrap_or("max");
                let quota = if q == "max" {
                    None
                } else {
                    Some(q.parse::<i64>().map_err(|_| {
                        invalid(field.clone(), format!("{v:?}: quota is not a number"))
                    })?)
                };
                let period = it
                    .next()
                    .map(|p| p.parse::<u64>())
                    .transpose()
                    .map_err(|_| {
                        invalid(field.clone(), format!("{v:?}: period is not a number"))
                    })?;
                // "max" alone still says "unlimited": a period of its default makes that so.
                quota_props(out, quota, period.or(Some(100_000)));
            }
            "cpuset.cpus" => out.push(prop("AllowedCPUs", bitmask(&field, v)?)),
            "cpuset.mems" => out.push(prop("AllowedMemoryNodes", bitmask(&field, v)?)),
            _ => {}
        }
    }
    Ok(())
}

fn quota_props(out: &mut Vec<Arg>, q: Option<i64>, period: Option<u64>) {
    quota(out, q.or(Some(-1)), period)
}

/// A cpuset list (`0-3,7`) as systemd's CPU bitmask: byte i holds CPUs 8i..8i+7, lowest bit
/// first.
pub fn bitmask(field: &str, list: &str) -> Result<Arg> {
    let bad = || {
        invalid(
            field.to_string(),
            format!("{list:?} is not a list of numbers and ranges"),
        )
    };
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse::<usize>(), part.trim().parse::<usize>()),
        };
        let (lo, hi) = (lo.map_err(|_| bad())?, hi.map_err(|_| bad())?);
        // 8192 CPUs: the kernel's largest NR_CPUS; more is a typo, not a machine.
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
        for i in lo..=hi {
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(Arg::Array("y", bytes.into_iter().map(Arg::Byte).collect()))
}

/// DevicePolicy and DeviceAllow for the device rules, as systemd can express them. Hull's own
/// rules (the v1 devices files, the v2 eBPF program, written after the unit starts) are exact;
/// these are never narrower than them, so where systemd cannot say a rule exactly (a deny inside
/// an allowed range) they allow more, never less: otherwise systemd's program, which v2 runs
/// beside hull's, would refuse what the config allows. As runc, a single device this host does
/// not have (`exists(kind, major, minor)` false) is left out: systemd cannot resolve it and
/// says so in its log at every start; hull's own rules still allow it.
pub fn devices(
    rules: &[LinuxDeviceCgroup],
    proc_devices: &str,
    exists: impl Fn(&str, i64, i64) -> bool,
) -> Vec<Arg> {
    // The last rule that names every device decides the default, as in the kernel's v1 list.
    let mut allow_all = true;
    let mut allowed: Vec<Arg> = Vec::new();
    for r in rules {
        let typ = r.typ().unwrap_or(LinuxDeviceType::A);
        let access = r.access().clone().unwrap_or_else(|| "rwm".into());
        let all_access = ['r', 'w', 'm'].iter().all(|c| access.contains(*c));
        if typ == LinuxDeviceType::A && r.major().is_none() && r.minor().is_none() {
            if r.allow() && all_access {
                allow_all = true;
                allowed.clear();
            } else if !r.allow() {
                allow_all = false;
                allowed.clear();
            } else {
                // "a *:* r": every device, some access.
                for kind in ["char-*", "block-*"] {
                    allowed.push(Arg::Struct(vec![Arg::str(kind), Arg::str(access.clone())]));
                }
            }
            continue;
        }
        if !r.allow() {
            continue;
        }
        let kinds: &[(&str, &str)] = match typ {
            LinuxDeviceType::C | LinuxDeviceType::U => &[("char", "Character")],
            LinuxDeviceType::B => &[("block", "Block")],
            _ => &[("char", "Character"), ("block", "Block")],
        };
        for (kind, section) in kinds {
            let spec = match (typ, r.major(), r.minor()) {
                (LinuxDeviceType::A, _, _) | (_, None, _) => format!("{kind}-*"),
                (_, Some(major), Some(minor)) if exists(kind, major, minor) => {
                    format!("/dev/{kind}/{major}:{minor}")
                }
                (_, Some(_), Some(_)) => continue,
                (_, Some(major), None) => match device_name(proc_devices, section, major) {
                    Some(name) => format!("{kind}-{name}"),
                    None => format!("{kind}-*"),
                },
            };
            allowed.push(Arg::Struct(vec![Arg::Str(spec), Arg::str(access.clone())]));
        }
    }
    if allow_all {
        // "auto" with no entries lets every device through.
        return vec![prop("DevicePolicy", Arg::str("auto"))];
    }
    vec![
        prop("DevicePolicy", Arg::str("strict")),
        prop("DeviceAllow", Arg::Array("(ss)", allowed)),
    ]
}

/// The driver name of `major` in /proc/devices' `section` ("Character" or "Block"), which
/// systemd's `char-NAME` / `block-NAME` entries name.
fn device_name(proc_devices: &str, section: &str, major: i64) -> Option<String> {
    let mut in_section = false;
    for line in proc_devices.lines() {
        if let Some(head) = line.strip_suffix(" devices:") {
            in_section = head == section;
            continue;
        }
        if !in_section {
            continue;
        }
        let mut it = line.split_whitespace();
        if it.next().and_then(|m| m.parse::<i64>().ok()) == Some(major) {
            return it.next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxResourcesBuilder};

    fn names(props: &[Arg]) -> Vec<(String, Arg)> {
        props
            .iter()
            .map(|p| match p {
                Arg::Struct(f) => match (&f[0], &f[1]) {
                    (Arg::Str(n), Arg::Variant(v)) => (n.clone(), (**v).clone()),
                    _ => panic!("not a property: {p:?}"),
                },
                _ => panic!("not a property: {p:?}"),
            })
            .collect()
    }

    #[test]
    fn cpu_quota_is_per_second_rounded_up_to_10ms() {
        let mut out = Vec::new();
        quota(&mut out, Some(12_345), Some(100_000));
        let p = names(&out);
        assert_eq!(p[0], ("CPUQuotaPeriodUSec".into(), Arg::U64(100_000)));
        assert_eq!(p[1], ("CPUQuotaPerSecUSec".into(), Arg::U64(130_000)));
        let mut out = Vec::new();
        quota(&mut out, Some(-1), Some(50_000));
        assert_eq!(names(&out)[1].1, Arg::U64(INFINITY));
    }

    #[test]
    fn cpuset_lists_become_little_endian_bitmasks() {
        let Arg::Array("y", b) = bitmask("f", "0-2,9").unwrap() else {
            panic!()
        };
        assert_eq!(b, vec![Arg::Byte(0b111), Arg::Byte(0b10)]);
        assert!(bitmask("f", "3-1").is_err());
        assert!(bitmask("f", "x").is_err());
    }

    #[test]
    fn v1_and_v2_names() {
        let r = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().shares(1024u64).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(names(&resources(&r, true).unwrap())[0].0, "CPUWeight");
        assert_eq!(
            names(&resources(&r, false).unwrap())[0],
            ("CPUShares".into(), Arg::U64(1024))
        );
    }

    #[test]
    fn default_deny_lists_what_is_allowed_never_less() {
        let proc_devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        let rule = |allow: bool, typ, major: Option<i64>, minor: Option<i64>| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(allow)
                .typ(typ)
                .access("rwm");
            if let Some(m) = major {
                b = b.major(m);
            }
            if let Some(m) = minor {
                b = b.minor(m);
            }
            b.build().unwrap()
        };
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None),
            rule(true, LinuxDeviceType::C, Some(1), Some(3)),
            rule(true, LinuxDeviceType::C, Some(10), Some(200)),
            rule(true, LinuxDeviceType::C, Some(136), None),
            rule(true, LinuxDeviceType::B, None, None),
            rule(false, LinuxDeviceType::C, Some(1), Some(3)),
        ];
        let p = names(&devices(&rules, proc_devices, |_, major, _| major != 10));
        assert_eq!(p[0].1, Arg::str("strict"));
        let Arg::Array(_, allowed) = &p[1].1 else {
            panic!()
        };
        let specs: Vec<&Arg> = allowed
            .iter()
            .map(|a| match a {
                Arg::Struct(f) => &f[0],
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            specs,
            [
                &Arg::str("/dev/char/1:3"),
                &Arg::str("char-pts"),
                &Arg::str("block-*")
            ]
        );
        let privileged = vec![rule(true, LinuxDeviceType::A, None, None)];
        assert_eq!(
            names(&devices(&privileged, "", |_, _, _| true))[0].1,
            Arg::str("auto")
        );
    }
}
