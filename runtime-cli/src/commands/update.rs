use std::path::PathBuf;

use clap::Args;
use hull::oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use hull::Container;

use super::{Ctx, Outcome};
use crate::log::Failure;

/// Update container resource constraints
#[derive(Debug, Args)]
pub struct Update {
    /// Path to a file with the resources to update (JSON), or "-" for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs)
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs)
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight vs. other containers); runc's name, `--cpu-shares` also taken
    #[arg(long, alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs)
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs)
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (in bytes, or with a unit: 64m, 1g)
    #[arg(long, value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Memory reservation or soft_limit (in bytes, or with a unit)
    #[arg(long, value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Total memory usage (memory + swap); set -1 to enable unlimited swap
    #[arg(long, value_parser = parse_bytes)]
    pub memory_swap: Option<i64>,
    /// Maximum number of pids allowed in the container
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Update) -> Outcome {
    let changes = match &args.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(&args),
    };
    Container::load(&ctx.root, &args.id)?.update(&changes)?;
    Ok(0)
}

fn read_resources(path: &PathBuf) -> Result<LinuxResources, Failure> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Failure::msg(format!("read stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::msg(format!("read {path:?}: {}", crate::log::io_message(&e))))?
    };
    serde_json::from_str(&text).map_err(|e| Failure::msg(format!("decode resources: {e}")))
}

fn from_flags(a: &Update) -> LinuxResources {
    let mut r = LinuxResources::default();
    let mut cpu = LinuxCpu::default();
    cpu.set_period(a.cpu_period);
    cpu.set_quota(a.cpu_quota);
    cpu.set_shares(a.cpu_share);
    cpu.set_realtime_period(a.cpu_rt_period);
    cpu.set_realtime_runtime(a.cpu_rt_runtime);
    cpu.set_cpus(a.cpuset_cpus.clone());
    cpu.set_mems(a.cpuset_mems.clone());
    r.set_cpu(Some(cpu));
    let mut mem = LinuxMemory::default();
    mem.set_limit(a.memory);
    mem.set_reservation(a.memory_reservation);
    mem.set_swap(a.memory_swap);
    r.set_memory(Some(mem));
    if let Some(limit) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut blkio = LinuxBlockIo::default();
        blkio.set_weight(Some(w));
        r.set_block_io(Some(blkio));
    }
    r
}

/// runc's (docker's units) RAMInBytes: a number with an optional b/k/m/g/t/p suffix (binary
/// multiples); -1 stays -1 (unlimited).
fn parse_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or(lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let split = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size: {s:?}"))?;
    let mult = match unit {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(format!("invalid size: {s:?}")),
    };
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_as_runc() {
        use super::parse_bytes as p;
        assert_eq!(p("64m"), Ok(64 << 20));
        assert_eq!(p("1g"), Ok(1 << 30));
        assert_eq!(p("1GiB"), Ok(1 << 30));
        assert_eq!(p("4096"), Ok(4096));
        assert_eq!(p("-1"), Ok(-1));
        assert!(p("12x").is_err());
    }
}
