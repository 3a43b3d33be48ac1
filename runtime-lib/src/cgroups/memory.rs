//! linux.resources.memory.

use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::LinuxMemory;

use super::fs;
use crate::error::{Error, Result};

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// runc's v1 → v2 swap conversion. The spec's `swap` is memory+swap (v1's memsw); v2's
/// memory.swap.max is swap alone. `-1` is unlimited; `0` means "not set".
pub fn swap_to_v2(swap: i64, memory: i64) -> std::result::Result<i64, String> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err("unable to set swap limit without memory limit".into());
    }
    if memory < 0 {
        return Err(format!("invalid memory value: {memory}"));
    }
    if swap < memory {
        return Err("memory+swap limit should be >= memory limit".into());
    }
    Ok(swap - memory)
}

/// v2 number: 0 → not written, -1 → "max".
pub fn v2_value(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

pub(super) fn needs(m: &LinuxMemory) -> bool {
    m.limit().is_some_and(|v| v != 0)
        || m.reservation().is_some_and(|v| v != 0)
        || m.swap().is_some_and(|v| v != 0)
        || m.disable_oom_killer() == Some(true)
        || swappiness(m).is_some()
}

/// The swappiness to write; `-1` (as u64) means unset, as in runc.
fn swappiness(m: &LinuxMemory) -> Option<u64> {
    m.swappiness().filter(|v| *v as i64 != -1)
}

fn field(name: &str) -> String {
    format!("linux.resources.memory.{name}")
}

/// checkBeforeUpdate: refuse a limit at or below what the container already uses.
fn check_usage(dir: &Path, m: &LinuxMemory, usage_file: &str) -> Result<()> {
    if m.check_before_update() != Some(true) {
        return Ok(());
    }
    // Best effort, as runc: no usage to compare with (not created yet) is no refusal.
    let Ok(usage) = fs::read_u64(dir, usage_file) else {
        return Ok(());
    };
    let refuse = |what: &str, name: &str, v: i64| Error::InvalidConfig {
        field: field(name),
        problem: format!("rejecting {what} limit {v} <= usage {usage}"),
    };
    if let Some(s) = m.swap().filter(|v| *v > 0) {
        if s as u64 <= usage {
            return Err(refuse("memory+swap", "swap", s));
        }
    }
    if let Some(l) = m.limit().filter(|v| *v > 0) {
        if l as u64 <= usage {
            return Err(refuse("memory", "limit", l));
        }
    }
    Ok(())
}

fn set_limit_v1(dir: &Path, v: i64) -> Result<()> {
    if v == 0 {
        return Ok(());
    }
    let value = v.to_string();
    match fs::try_write(dir, LIMIT, &value) {
        Ok(()) => Ok(()),
        Err(f) if f.errno() == Some(Errno::EBUSY) => {
            // The kernel could not reclaim down to the new limit: say how far off it is.
            let usage = fs::read_u64(dir, "memory.usage_in_bytes")?;
            let peak = fs::read_u64(dir, "memory.max_usage_in_bytes")?;
            Err(fs::write_error(
                &f.path,
                &value,
                format!("unable to set memory limit to {v} (current usage: {usage}, peak usage: {peak})"),
            ))
        }
        Err(f) => Err(f.into_error(&value)),
    }
}

fn set_swap_v1(dir: &Path, v: i64) -> Result<()> {
    if v == 0 {
        return Ok(());
    }
    fs::write(dir, MEMSW, &v.to_string())
}

pub(super) fn set_v1(dir: &Path, m: &LinuxMemory) -> Result<()> {
    check_usage(dir, m, "memory.usage_in_bytes")?;
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // Unlimited memory with swap unspecified: unlimited swap too, where the kernel has it.
    if limit == -1 && swap == 0 && dir.join(MEMSW).exists() {
        swap = -1;
    }
    // memsw must stay >= limit at every step, so the order of the two writes depends on
    // whether the limits grow or shrink.
    let mut done = false;
    if limit != 0 && swap != 0 {
        let cur = fs::read_u64(dir, LIMIT)?;
        if swap == -1 || cur < swap as u64 {
            set_swap_v1(dir, swap)?;
            set_limit_v1(dir, limit)?;
            done = true;
        }
    }
    if !done {
        set_limit_v1(dir, limit)?;
        set_swap_v1(dir, swap)?;
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        fs::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write(dir, "memory.oom_control", "1")?;
    }
    if let Some(s) = swappiness(m) {
        if s > 100 {
            return Err(Error::InvalidConfig {
                field: field("swappiness"),
                problem: format!("invalid memory swappiness value: {s} (valid range is 0-100)"),
            });
        }
        fs::write(dir, "memory.swappiness", &s.to_string())?;
    }
    Ok(())
}

pub(super) fn set_v2(dir: &Path, m: &LinuxMemory) -> Result<()> {
    if m.disable_oom_killer() == Some(true) {
        // cgroup v2 has no knob for it. runc 1.1.5 ignores the field there without a word, and
        // a client that sets it (podman --oom-kill-disable) would otherwise fail on every v2
        // host; so hull takes it too, but says so.
        log::warn!(
            "{}: ignored, the OOM killer cannot be disabled on cgroup v2 ({})",
            field("disableOOMKiller"),
            dir.display()
        );
    }
    if swappiness(m).is_some() {
        return Err(Error::InvalidConfig {
            field: field("swappiness"),
            problem: "per-cgroup swappiness does not exist on cgroup v2".into(),
        });
    }
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    if limit == 0 && swap == 0 && m.reservation().unwrap_or(0) == 0 {
        return Ok(());
    }
    check_usage(dir, m, "memory.current")?;
    let v2swap = swap_to_v2(swap, limit).map_err(|problem| Error::InvalidConfig {
        field: field("swap"),
        problem,
    })?;
    let mut swap_str = v2_value(v2swap);
    if swap_str.is_none() && swap > 0 {
        // memory == memory+swap: no swap at all.
        swap_str = Some("0".into());
    }
    if let Some(s) = swap_str {
        match fs::try_write(dir, "memory.swap.max", &s) {
            Ok(()) => {}
            // No swap accounting in the kernel: "unlimited" and "none" both hold already.
            Err(f) if f.not_found() && (s == "max" || s == "0") => {}
            Err(f) => return Err(f.into_error(&s)),
        }
    }
    if let Some(v) = v2_value(limit) {
        fs::write(dir, "memory.max", &v)?;
    }
    if let Some(v) = v2_value(m.reservation().unwrap_or(0)) {
        fs::write(dir, "memory.low", &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_converts_as_runc() {
        assert_eq!(swap_to_v2(0, -1), Ok(-1));
        assert_eq!(swap_to_v2(-1, 100), Ok(-1));
        assert_eq!(swap_to_v2(0, 100), Ok(0));
        assert_eq!(swap_to_v2(300, 100), Ok(200));
        assert_eq!(swap_to_v2(100, 100), Ok(0));
        assert!(swap_to_v2(50, 100).unwrap_err().contains(">= memory limit"));
        assert!(swap_to_v2(50, 0)
            .unwrap_err()
            .contains("without memory limit"));
        assert!(swap_to_v2(50, -5)
            .unwrap_err()
            .contains("invalid memory value"));
    }

    #[test]
    fn v2_numbers() {
        assert_eq!(v2_value(0), None);
        assert_eq!(v2_value(-1).as_deref(), Some("max"));
        assert_eq!(v2_value(4096).as_deref(), Some("4096"));
    }
}
