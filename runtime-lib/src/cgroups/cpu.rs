//! linux.resources.cpu: cpu (shares/weight, quota, period, burst, idle, realtime) and cpuset
//! (cpus, mems).

use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::LinuxCpu;

use super::fs;
use crate::error::{Error, Result};

/// runc 1.1's v1 → v2 conversion: shares [2, 262144] map linearly onto weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// The v2 `cpu.max` line: quota ("max" when unlimited or unset) and period (100000 by default).
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> String {
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_string(),
    };
    format!("{q} {}", period.filter(|p| *p != 0).unwrap_or(100_000))
}

/// Whether the cpu controller has anything to write (cpuset aside).
pub(super) fn needs_cpu(c: &LinuxCpu) -> bool {
    nz_u(c.shares())
        || nz_i(c.quota())
        || nz_u(c.period())
        || c.burst().is_some()
        || c.idle().is_some()
        || nz_i(c.realtime_runtime())
        || nz_u(c.realtime_period())
}

pub(super) fn needs_cpuset(c: &LinuxCpu) -> bool {
    non_empty(c.cpus()) || non_empty(c.mems())
}

fn nz_u(v: Option<u64>) -> bool {
    v.is_some_and(|v| v != 0)
}
fn nz_i(v: Option<i64>) -> bool {
    v.is_some_and(|v| v != 0)
}
fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

/// The realtime budget, which must be in place before a SCHED_RR/FIFO process joins.
pub(super) fn set_rt_v1(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let runtime = c.realtime_runtime().filter(|v| *v != 0);
    let mut period = None;
    if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
        let p = p.to_string();
        match fs::try_write(dir, "cpu.rt_period_us", &p) {
            Ok(()) => {}
            // Period and runtime depend on each other; retry the period after the runtime.
            Err(f) if f.errno() == Some(Errno::EINVAL) && runtime.is_some() => period = Some(p),
            Err(f) => return Err(f.into_error(&p)),
        }
    }
    if let Some(rt) = runtime {
        fs::write(dir, "cpu.rt_runtime_us", &rt.to_string())?;
        if let Some(p) = period {
            fs::write(dir, "cpu.rt_period_us", &p)?;
        }
    }
    Ok(())
}

pub(super) fn set_v1(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(shares) = c.shares().filter(|v| *v != 0) {
        let value = shares.to_string();
        fs::write(dir, "cpu.shares", &value)?;
        // The kernel clamps silently; runc reports the clamp.
        let got = fs::read_u64(dir, "cpu.shares")?;
        let field = || "linux.resources.cpu.shares".to_string();
        if shares > got {
            return Err(Error::InvalidConfig {
                field: field(),
                problem: format!("the maximum allowed cpu-shares is {got}"),
            });
        }
        if shares < got {
            return Err(Error::InvalidConfig {
                field: field(),
                problem: format!("the minimum allowed cpu-shares is {got}"),
            });
        }
    }
    let quota = c.quota().filter(|v| *v != 0);
    let mut period = None;
    if let Some(p) = c.period().filter(|v| *v != 0) {
        let p = p.to_string();
        match fs::try_write(dir, "cpu.cfs_period_us", &p) {
            Ok(()) => {}
            // A smaller period can exceed the parent's quota until the new quota is in.
            Err(f) if f.errno() == Some(Errno::EINVAL) && quota.is_some() => period = Some(p),
            Err(f) => return Err(f.into_error(&p)),
        }
    }
    let mut burst = None;
    if let Some(b) = c.burst() {
        let b = b.to_string();
        match fs::try_write(dir, "cpu.cfs_burst_us", &b) {
            Ok(()) => {}
            Err(f) if f.errno() == Some(Errno::EINVAL) && quota.is_some() => burst = Some(b),
            Err(f) => return Err(f.into_error(&b)),
        }
    }
    if let Some(q) = quota {
        fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
        if let Some(p) = period {
            fs::write(dir, "cpu.cfs_period_us", &p)?;
        }
        if let Some(b) = burst {
            fs::write(dir, "cpu.cfs_burst_us", &b)?;
        }
    }
    if let Some(idle) = c.idle() {
        fs::write(dir, "cpu.idle", &idle.to_string())?;
    }
    set_rt_v1(dir, c)
}

pub(super) fn set_cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus and mems, which no process can join: fill them
/// from the parent where still empty.
pub(super) fn cpuset_copy_from_parent(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(dir, file)?.trim().is_empty() {
            let v = fs::read(parent, file)?;
            fs::write(dir, file, v.trim())?;
        }
    }
    Ok(())
}

pub(super) fn set_v2(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if nz_i(c.realtime_runtime()) || nz_u(c.realtime_period()) {
        return Err(Error::InvalidConfig {
            field: "linux.resources.cpu.realtimeRuntime".into(),
            problem: "realtime scheduling budgets do not exist on cgroup v2".into(),
        });
    }
    if let Some(idle) = c.idle() {
        fs::write(dir, "cpu.idle", &idle.to_string())?;
    }
    if let Some(shares) = c.shares().filter(|v| *v != 0) {
        fs::write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    let max = nz_i(c.quota()) || nz_u(c.period());
    let mut burst = None;
    if let Some(b) = c.burst() {
        let b = b.to_string();
        match fs::try_write(dir, "cpu.max.burst", &b) {
            Ok(()) => {}
            Err(f) if f.errno() == Some(Errno::EINVAL) && max => burst = Some(b),
            Err(f) => return Err(f.into_error(&b)),
        }
    }
    if max {
        let quota = match c.quota().filter(|v| *v != 0) {
            Some(q) => Some(q),
            // Only the period changes: keep the quota in force (cpu.max takes both at once).
            None => current_quota(dir)?,
        };
        fs::write(dir, "cpu.max", &cpu_max(quota, c.period()))?;
        if let Some(b) = burst {
            fs::write(dir, "cpu.max.burst", &b)?;
        }
    }
    Ok(())
}

fn current_quota(dir: &Path) -> Result<Option<i64>> {
    Ok(fs::read_opt(dir, "cpu.max")?.and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|q| q.parse::<i64>().ok())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_to_weight_as_runc_1_1() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(512), 20);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max(Some(50000), Some(100000)), "50000 100000");
        assert_eq!(cpu_max(None, Some(20000)), "max 20000");
        assert_eq!(cpu_max(Some(-1), None), "max 100000");
        assert_eq!(cpu_max(Some(30000), None), "30000 100000");
    }
}
