//! linux.resources.devices: runc's default rules and the v1 devices controller (v2: devices_v2).

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

use super::fs;
use crate::error::{Error, Result};

/// runc's always-allowed devices (libcontainer/specconv AllowedDevices): mknod of anything,
/// and the standard character devices. Each with the path runc ties it to, if any: a device the
/// spec itself lists at that path replaces the default rule.
const ALLOWED: &[(char, i64, i64, &str, Option<&str>)] = &[
    ('c', -1, -1, "m", None),
    ('b', -1, -1, "m", None),
    ('c', 1, 3, "rwm", Some("/dev/null")),
    ('c', 1, 8, "rwm", Some("/dev/random")),
    ('c', 1, 7, "rwm", Some("/dev/full")),
    ('c', 5, 0, "rwm", Some("/dev/tty")),
    ('c', 1, 5, "rwm", Some("/dev/zero")),
    ('c', 1, 9, "rwm", Some("/dev/urandom")),
    ('c', 136, -1, "rwm", None),
    ('c', 5, 2, "rwm", None),
    ('c', 10, 200, "rwm", None),
];

fn rule(typ: char, major: i64, minor: i64, access: &str) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(match typ {
        'b' => LinuxDeviceType::B,
        _ => LinuxDeviceType::C,
    }));
    r.set_major((major >= 0).then_some(major));
    r.set_minor((minor >= 0).then_some(minor));
    r.set_access(Some(access.to_string()));
    r
}

/// The resources to `set` at create: the spec's `linux.resources` with runc's default device
/// rules appended after the spec's own (so even a config without resources gets a device
/// whitelist, as with runc).
pub fn container_resources(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut r = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let spec_dev_paths: Vec<&Path> = linux
        .and_then(|l| l.devices().as_ref())
        .map(|d| d.iter().map(|d| d.path().as_path()).collect())
        .unwrap_or_default();
    let mut rules = r.devices().clone().unwrap_or_default();
    for &(t, maj, min, access, path) in ALLOWED {
        if path.is_some_and(|p| spec_dev_paths.contains(&Path::new(p))) {
            continue;
        }
        rules.push(rule(t, maj, min, access));
    }
    r.set_devices(Some(rules));
    r
}

/// The line the v1 devices files take: `c 1:3 rwm`, `a *:* rwm`.
pub fn v1_line(i: usize, r: &LinuxDeviceCgroup) -> Result<String> {
    let field = |what: &str| format!("linux.resources.devices[{i}].{what}");
    let typ = match r.typ().unwrap_or_default() {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C => 'c',
        other => {
            return Err(Error::InvalidConfig {
                field: field("type"),
                problem: format!("invalid cgroup device type {:?}", other.as_str()),
            })
        }
    };
    let access = r.access().as_deref().unwrap_or("");
    if access.is_empty() {
        return Err(Error::InvalidConfig {
            field: field("access"),
            problem: "device access cannot be empty".into(),
        });
    }
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::InvalidConfig {
            field: field("access"),
            problem: format!("invalid device access {access:?}: only r, w and m are allowed"),
        });
    }
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    Ok(format!(
        "{typ} {}:{} {access}",
        num(r.major()),
        num(r.minor())
    ))
}

/// Writes the rules in order, starting from deny-all: runc builds its target from an empty
/// whitelist, so rules that only allow still leave everything else denied. The kernel then
/// applies each rule as runc's emulator models it (a wildcard `a` rule switches between
/// allow-all and deny-all and drops the exceptions). Meant for a fresh cgroup; `update` never
/// rewrites devices.
pub(super) fn set_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let lines = rules
        .iter()
        .enumerate()
        .map(|(i, r)| Ok((r.allow(), v1_line(i, r)?)))
        .collect::<Result<Vec<_>>>()?;
    fs::write(dir, "devices.deny", "a")?;
    for (allow, line) in lines {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fs::write(dir, file, &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxDeviceBuilder, SpecBuilder};

    #[test]
    fn defaults_follow_the_spec_rules() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        let res = LinuxResources::default();
        let mut res = res;
        res.set_devices(Some(vec![deny]));
        let null = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1i64)
            .minor(3i64)
            .build()
            .unwrap();
        let spec = SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .resources(res)
                    .devices(vec![null])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let r = container_resources(&spec);
        let lines: Vec<String> = r
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{} {}", d.allow(), v1_line(i, d).unwrap()))
            .collect();
        assert_eq!(lines[0], "false a *:* rwm");
        assert_eq!(lines[1], "true c *:* m");
        assert_eq!(lines[2], "true b *:* m");
        // The spec lists /dev/null itself, so runc's default rule for it is dropped.
        assert!(!lines.contains(&"true c 1:3 rwm".to_string()), "{lines:?}");
        assert!(lines.contains(&"true c 136:* rwm".to_string()), "{lines:?}");
        assert_eq!(lines.len(), 1 + ALLOWED.len() - 1);
    }

    #[test]
    fn no_resources_still_get_the_whitelist() {
        let spec = SpecBuilder::default()
            .linux(LinuxBuilder::default().build().unwrap())
            .build()
            .unwrap();
        let mut spec = spec;
        spec.linux_mut().as_mut().unwrap().set_resources(None);
        let r = container_resources(&spec);
        assert_eq!(r.devices().as_ref().unwrap().len(), ALLOWED.len());
    }

    #[test]
    fn bad_rules_name_their_field() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_access(Some("".into()));
        let e = v1_line(2, &r).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid config linux.resources.devices[2].access: device access cannot be empty"
        );
        r.set_access(Some("rx".into()));
        assert!(v1_line(0, &r).is_err());
        r.set_access(Some("r".into()));
        r.set_typ(Some(LinuxDeviceType::P));
        assert!(v1_line(0, &r).unwrap_err().to_string().contains("\"p\""));
    }
}
