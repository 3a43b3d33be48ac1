//! Usage counters in the JSON shape runc's `events` prints (runc's types/events.go), so tools
//! that parse runc's output parse Hull's. Go's `omitempty` is mirrored field by field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{fs, hugetlb};
use crate::error::Result;

fn zero(v: &u64) -> bool {
    *v == 0
}

/// One line of `hull events`: `{"type":"stats","id":..,"data":{..}}` or `{"type":"oom","id":..}`.
/// [`crate::Container::stats`] returns a `stats` one; serde gives runc's JSON.
///
/// ```no_run
/// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
/// let event: hull::events::Event = c.stats()?;
/// if let Some(stats) = &event.data {
///     println!("{} bytes, {} processes", stats.memory.usage.usage, stats.pids.current);
/// }
/// println!("{}", serde_json::to_string(&event).unwrap_or_default());
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `"stats"` or `"oom"` (JSON `type`).
    #[serde(rename = "type")]
    pub typ: String,
    /// The container's id.
    pub id: String,
    /// The usage, for a `stats` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    pub(crate) fn stats(id: &str, stats: Stats) -> Event {
        Event {
            typ: "stats".into(),
            id: id.into(),
            data: Some(stats),
        }
    }
    /// The `oom` event of container `id`, as `hull events` prints it when
    /// [`crate::events::OomWatcher::wait`] reports one.
    ///
    /// ```
    /// let line = serde_json::to_string(&hull::events::Event::oom("web")).unwrap_or_default();
    /// assert_eq!(line, r#"{"type":"oom","id":"web"}"#);
    /// ```
    pub fn oom(id: &str) -> Event {
        Event {
            typ: "oom".into(),
            id: id.into(),
            data: None,
        }
    }
}

/// What a `stats` event carries: the container's cgroup counters, read once.
///
/// ```
/// let s = hull::events::Stats::default();
/// assert_eq!(s.pids.current, 0);
/// assert!(s.hugetlb.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// The cpuset (v1 files; what v2 has of them).
    pub cpuset: CpuSet,
    /// Memory and swap usage and limits.
    pub memory: Memory,
    /// Process count and limit.
    pub pids: Pids,
    /// Block I/O counters.
    pub blkio: Blkio,
    /// Huge page usage by page size (`"2MB"`, `"1GB"`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Always empty (Intel RDT is not managed).
    pub intel_rdt: IntelRdt,
    /// runc fills this only for networks its CLI never configures: always null.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

/// CPU usage (`cpu`, `cpuacct` on v1; `cpu.stat` on v2).
///
/// ```
/// fn throttled(c: &hull::events::Cpu) -> bool {
///     c.throttling.throttled_periods > 0
/// }
/// assert!(!throttled(&Default::default()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Time spent.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// Nanoseconds.
///
/// ```
/// fn cpu_seconds(u: &hull::events::CpuUsage) -> f64 {
///     u.total as f64 / 1e9
/// }
/// assert_eq!(cpu_seconds(&Default::default()), 0.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// All the container's CPU time.
    #[serde(default, skip_serializing_if = "zero")]
    pub total: u64,
    /// Total time by CPU (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel time by CPU (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User time by CPU (v1 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Time in the kernel.
    pub kernel: u64,
    /// Time in user space.
    pub user: u64,
}

/// CFS throttling counters (`cpu.stat`).
///
/// ```
/// let t = hull::events::Throttling { periods: 10, throttled_periods: 3, throttled_time: 0 };
/// let json = serde_json::to_string(&t).unwrap_or_default();
/// assert_eq!(json, r#"{"periods":10,"throttledPeriods":3}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods that elapsed.
    #[serde(default, skip_serializing_if = "zero")]
    pub periods: u64,
    /// Periods in which the container was throttled.
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    /// Total time throttled, in nanoseconds.
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// The cpuset controller's settings (runc's `cpuset`).
///
/// ```
/// fn may_run_on(c: &hull::events::CpuSet, cpu: u16) -> bool {
///     c.cpus.contains(&cpu)
/// }
/// assert!(!may_run_on(&Default::default(), 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    /// CPUs the container may run on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// `cpuset.cpu_exclusive`.
    pub cpu_exclusive: u64,
    /// Memory nodes the container may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// `cpuset.mem_hardwall`.
    pub mem_hardwall: u64,
    /// `cpuset.mem_exclusive`.
    pub mem_exclusive: u64,
    /// `cpuset.memory_migrate`.
    pub memory_migrate: u64,
    /// `cpuset.memory_spread_page`.
    pub memory_spread_page: u64,
    /// `cpuset.memory_spread_slab`.
    pub memory_spread_slab: u64,
    /// `cpuset.memory_pressure`.
    pub memory_pressure: u64,
    /// `cpuset.sched_load_balance`.
    pub sched_load_balance: u64,
    /// `cpuset.sched_relax_domain_level`.
    pub sched_relax_domain_level: i64,
}

/// Usage, peak, limit and failure count of one kind of memory, in bytes.
///
/// ```
/// fn headroom(m: &hull::events::MemoryEntry) -> u64 {
///     m.limit.saturating_sub(m.usage)
/// }
/// assert_eq!(headroom(&Default::default()), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// The limit in bytes.
    pub limit: u64,
    /// Current usage in bytes.
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    /// Peak usage in bytes, where the kernel keeps it.
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    /// How often the limit was hit (v1).
    pub failcnt: u64,
}

/// The memory controller's counters.
///
/// ```
/// fn rss(m: &hull::events::Memory) -> Option<u64> {
///     m.raw.get("rss").or_else(|| m.raw.get("anon")).copied()
/// }
/// assert_eq!(rss(&Default::default()), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Page cache in bytes.
    #[serde(default, skip_serializing_if = "zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory plus swap (v1's memsw; on v2 the sum, as runc reports it).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 kmem).
    pub kernel: MemoryEntry,
    /// TCP buffer memory (v1 kmem.tcp).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat, key by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// The pids controller's counters.
///
/// ```
/// fn unlimited(p: &hull::events::Pids) -> bool {
///     p.limit == 0
/// }
/// assert!(unlimited(&Default::default()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    /// Processes (and threads) in the container now.
    #[serde(default, skip_serializing_if = "zero")]
    pub current: u64,
    /// pids.max (0 when unlimited).
    #[serde(default, skip_serializing_if = "zero")]
    pub limit: u64,
}

/// One counter of one block device.
///
/// ```
/// let e = hull::events::BlkioEntry { major: 8, minor: 0, op: "Read".into(), value: 4096 };
/// assert_eq!(format!("{}:{} {} {}", e.major, e.minor, e.op, e.value), "8:0 Read 4096");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// The device's major number.
    #[serde(default, skip_serializing_if = "zero")]
    pub major: u64,
    /// The device's minor number.
    #[serde(default, skip_serializing_if = "zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The counter.
    #[serde(default, skip_serializing_if = "zero")]
    pub value: u64,
}

/// Block I/O counters (v1 blkio files; on v2 the two `io.stat` gives).
///
/// ```
/// fn bytes_read(b: &hull::events::Blkio) -> u64 {
///     b.io_service_bytes_recursive.iter().filter(|e| e.op == "Read").map(|e| e.value).sum()
/// }
/// assert_eq!(bytes_read(&Default::default()), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
// runc's names: camelCase but for ioQueueRecursive.
#[serde(rename_all = "camelCase", default)]
pub struct Blkio {
    /// Bytes transferred, by device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations, by device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Operations queued (v1).
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Time servicing I/O (v1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Time waiting in queues (v1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Operations merged (v1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Time the device was busy (v1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors transferred (v1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// One huge page size's counters.
///
/// ```
/// fn used(s: &hull::events::Stats, size: &str) -> u64 {
///     s.hugetlb.get(size).map_or(0, |h| h.usage)
/// }
/// assert_eq!(used(&Default::default(), "2MB"), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    /// Bytes of huge pages in use.
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    /// Peak usage in bytes.
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    /// How often the limit was hit.
    pub failcnt: u64,
}

/// Intel RDT is not managed by Hull: always `{}`, as runc prints it without RDT.
///
/// ```
/// assert_eq!(serde_json::to_string(&hull::events::IntelRdt {}).unwrap_or_default(), "{}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// "0-2,4" → [0, 1, 2, 4].
pub fn parse_cpu_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Lines of v1 blkio files: "8:0 Read 123", "8:0 123"; "Total N" lines are skipped.
pub fn parse_blkio(content: &str) -> Vec<BlkioEntry> {
    content
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split([' ', ':']).filter(|s| !s.is_empty()).collect();
            let (op, value) = match f.len() {
                3 => ("", f[2]),
                4 => (f[2], f[3]),
                _ => return None,
            };
            Some(BlkioEntry {
                major: f[0].parse().ok()?,
                minor: f[1].parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") into runc's two tables.
pub fn parse_io_stat(content: &str, blkio: &mut Blkio) {
    for line in content.lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (op, table) = match k {
                "rbytes" => ("Read", &mut blkio.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut blkio.io_service_bytes_recursive),
                "rios" => ("Read", &mut blkio.io_serviced_recursive),
                "wios" => ("Write", &mut blkio.io_serviced_recursive),
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                table.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
    }
}

const CLOCK_TICKS: u64 = 100;

pub(super) fn cpu_v1(cpu: Option<&Path>, cpuacct: Option<&Path>, s: &mut Stats) -> Result<()> {
    if let Some(dir) = cpu {
        if let Some(c) = fs::read_opt(dir, "cpu.stat")? {
            for (k, v) in fs::parse_flat_keyed(&c) {
                match k {
                    "nr_periods" => s.cpu.throttling.periods = v,
                    "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                    "throttled_time" => s.cpu.throttling.throttled_time = v,
                    _ => {}
                }
            }
        }
    }
    let Some(dir) = cpuacct else {
        return Ok(());
    };
    let u = &mut s.cpu.usage;
    u.total = fs::read_u64(dir, "cpuacct.usage")?;
    for (k, v) in fs::parse_flat_keyed(&fs::read(dir, "cpuacct.stat")?) {
        match k {
            "user" => u.user = v * 1_000_000_000 / CLOCK_TICKS,
            "system" => u.kernel = v * 1_000_000_000 / CLOCK_TICKS,
            _ => {}
        }
    }
    u.percpu = fs::read(dir, "cpuacct.usage_percpu")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if let Some(all) = fs::read_opt(dir, "cpuacct.usage_all")? {
        // "cpu user system" header, then one line per cpu.
        for line in all.lines().skip(1) {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [_, user, system] = f[..] {
                u.percpu_user.push(user);
                u.percpu_kernel.push(system);
            }
        }
    }
    Ok(())
}

pub(super) fn cpuset_v1(dir: &Path, s: &mut Stats) -> Result<()> {
    let c = &mut s.cpuset;
    let list = |file: &str| -> Result<Vec<u16>> {
        let v = fs::read(dir, file)?;
        parse_cpu_list(&v).ok_or_else(|| fs::parse_error(&dir.join(file), &v))
    };
    c.cpus = list("cpuset.cpus")?;
    c.mems = list("cpuset.mems")?;
    let num = |file: &str| -> Result<u64> { Ok(fs::read_u64_opt(dir, file)?.unwrap_or(0)) };
    c.cpu_exclusive = num("cpuset.cpu_exclusive")?;
    c.mem_hardwall = num("cpuset.mem_hardwall")?;
    c.mem_exclusive = num("cpuset.mem_exclusive")?;
    c.memory_migrate = num("cpuset.memory_migrate")?;
    c.memory_spread_page = num("cpuset.memory_spread_page")?;
    c.memory_spread_slab = num("cpuset.memory_spread_slab")?;
    c.memory_pressure = num("cpuset.memory_pressure")?;
    c.sched_load_balance = num("cpuset.sched_load_balance")?;
    if let Some(v) = fs::read_opt(dir, "cpuset.sched_relax_domain_level")? {
        c.sched_relax_domain_level = v.trim().parse().unwrap_or(0);
    }
    Ok(())
}

fn memory_entry_v1(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let f = |name: &str| format!("{prefix}.{name}");
    let Some(usage) = fs::read_u64_opt(dir, &f("usage_in_bytes"))? else {
        return Ok(MemoryEntry::default());
    };
    Ok(MemoryEntry {
        usage,
        max: fs::read_u64(dir, &f("max_usage_in_bytes"))?,
        failcnt: fs::read_u64(dir, &f("failcnt"))?,
        limit: fs::read_u64(dir, &f("limit_in_bytes"))?,
    })
}

pub(super) fn memory_v1(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(raw) = fs::read_opt(dir, "memory.stat")? else {
        return Ok(());
    };
    let m = &mut s.memory;
    m.raw = fs::parse_flat_keyed(&raw)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = memory_entry_v1(dir, "memory")?;
    m.swap = memory_entry_v1(dir, "memory.memsw")?;
    m.kernel = memory_entry_v1(dir, "memory.kmem")?;
    m.kernel_tcp = memory_entry_v1(dir, "memory.kmem.tcp")?;
    Ok(())
}

pub(super) fn pids(dir: &Path, s: &mut Stats) -> Result<()> {
    match fs::read_u64_opt(dir, "pids.current")? {
        Some(current) => {
            s.pids.current = current;
            let max = fs::read_u64(dir, "pids.max")?;
            s.pids.limit = if max == u64::MAX { 0 } else { max };
        }
        // v2 without the pids controller: count the members.
        None => s.pids.current = fs::read(dir, "cgroup.procs")?.lines().count() as u64,
    }
    Ok(())
}

pub(super) fn blkio_v1(dir: &Path, s: &mut Stats) -> Result<()> {
    let b = &mut s.blkio;
    // runc's order of preference: BFQ debug, BFQ, CFQ, throttle recursive, throttle. A group is
    // used when its first file has entries.
    let groups: [&[(&str, usize)]; 5] = [
        &[
            ("blkio.bfq.sectors_recursive", 7),
            ("blkio.bfq.io_service_time_recursive", 3),
            ("blkio.bfq.io_wait_time_recursive", 4),
            ("blkio.bfq.io_merged_recursive", 5),
            ("blkio.bfq.io_queued_recursive", 2),
            ("blkio.bfq.time_recursive", 6),
            ("blkio.bfq.io_serviced_recursive", 1),
            ("blkio.bfq.io_service_bytes_recursive", 0),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", 1),
            ("blkio.bfq.io_service_bytes_recursive", 0),
        ],
        &[
            ("blkio.sectors_recursive", 7),
            ("blkio.io_service_time_recursive", 3),
            ("blkio.io_wait_time_recursive", 4),
            ("blkio.io_merged_recursive", 5),
            ("blkio.io_queued_recursive", 2),
            ("blkio.time_recursive", 6),
            ("blkio.io_serviced_recursive", 1),
            ("blkio.io_service_bytes_recursive", 0),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", 1),
            ("blkio.throttle.io_service_bytes_recursive", 0),
        ],
        &[
            ("blkio.throttle.io_serviced", 1),
            ("blkio.throttle.io_service_bytes", 0),
        ],
    ];
    for group in groups {
        let first = fs::read_opt(dir, group[0].0)?.map(|c| parse_blkio(&c));
        if first.as_ref().is_none_or(|e| e.is_empty()) {
            continue;
        }
        for (i, &(file, slot)) in group.iter().enumerate() {
            let entries = if i == 0 {
                first.clone().unwrap_or_default()
            } else {
                parse_blkio(&fs::read_opt(dir, file)?.unwrap_or_default())
            };
            let table = match slot {
                0 => &mut b.io_service_bytes_recursive,
                1 => &mut b.io_serviced_recursive,
                2 => &mut b.io_queued_recursive,
                3 => &mut b.io_service_time_recursive,
                4 => &mut b.io_wait_time_recursive,
                5 => &mut b.io_merged_recursive,
                6 => &mut b.io_time_recursive,
                _ => &mut b.sectors_recursive,
            };
            *table = entries;
        }
        return Ok(());
    }
    Ok(())
}

pub(super) fn hugetlb_v1(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugetlb::page_sizes() {
        let f = |n: &str| format!("hugetlb.{size}.{n}");
        let Some(usage) = fs::read_u64_opt(dir, &f("usage_in_bytes"))? else {
            continue;
        };
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: fs::read_u64(dir, &f("max_usage_in_bytes"))?,
                failcnt: fs::read_u64(dir, &f("failcnt"))?,
            },
        );
    }
    Ok(())
}

pub(super) fn hugetlb_v2(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugetlb::page_sizes() {
        let Some(usage) = fs::read_u64_opt(dir, &format!("hugetlb.{size}.current"))? else {
            continue;
        };
        let failcnt = fs::read_key(dir, &format!("hugetlb.{size}.events"), "max")?.unwrap_or(0);
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

pub(super) fn cpu_v2(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(c) = fs::read_opt(dir, "cpu.stat")? else {
        return Ok(());
    };
    for (k, v) in fs::parse_flat_keyed(&c) {
        match k {
            "usage_usec" => s.cpu.usage.total = v * 1000,
            "user_usec" => s.cpu.usage.user = v * 1000,
            "system_usec" => s.cpu.usage.kernel = v * 1000,
            "nr_periods" => s.cpu.throttling.periods = v,
            "nr_throttled" => s.cpu.throttling.throttled_periods = v,
            "throttled_usec" => s.cpu.throttling.throttled_time = v * 1000,
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn memory_v2(dir: &Path, s: &mut Stats) -> Result<()> {
    let Some(raw) = fs::read_opt(dir, "memory.stat")? else {
        return Ok(());
    };
    let m = &mut s.memory;
    m.raw = fs::parse_flat_keyed(&raw)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.usage = MemoryEntry {
        usage: fs::read_u64(dir, "memory.current")?,
        limit: fs::read_u64(dir, "memory.max")?,
        max: fs::read_u64_opt(dir, "memory.peak")?.unwrap_or(0),
        failcnt: 0,
    };
    if let Some(swap) = fs::read_u64_opt(dir, "memory.swap.current")? {
        // runc reports memory+swap, as v1's memsw.
        let limit = fs::read_u64(dir, "memory.swap.max")?;
        m.swap = MemoryEntry {
            usage: swap + m.usage.usage,
            limit: if limit == u64::MAX {
                limit
            } else {
                limit.saturating_add(m.usage.limit)
            },
            max: 0,
            failcnt: 0,
        };
    }
    Ok(())
}

pub(super) fn io_v2(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(c) = fs::read_opt(dir, "io.stat")? {
        let mut lines: Vec<&str> = c.lines().collect();
        lines.sort();
        parse_io_stat(&lines.join("\n"), &mut s.blkio);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_runc() {
        let mut s = Stats::default();
        s.pids.current = 1;
        s.memory.usage.limit = 5;
        let e = serde_json::to_value(Event::stats("c1", s)).unwrap();
        assert_eq!(e["type"], "stats");
        assert_eq!(e["id"], "c1");
        let d = &e["data"];
        assert_eq!(d["pids"], serde_json::json!({"current": 1}));
        assert_eq!(
            d["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert_eq!(d["cpu"]["throttling"], serde_json::json!({}));
        assert_eq!(
            d["memory"]["usage"],
            serde_json::json!({"limit": 5, "failcnt": 0})
        );
        assert_eq!(
            d["memory"]["kernelTCP"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(d["blkio"], serde_json::json!({}));
        assert_eq!(d["hugetlb"], serde_json::json!({}));
        assert_eq!(d["intel_rdt"], serde_json::json!({}));
        assert!(d["network_interfaces"].is_null());
        assert_eq!(d["cpuset"]["sched_relax_domain_level"], 0);
        let oom = serde_json::to_string(&Event::oom("c1")).unwrap();
        assert_eq!(oom, r#"{"type":"oom","id":"c1"}"#);
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_cpu_list("0-2,4\n"), Some(vec![0, 1, 2, 4]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("2-1"), None);
        let b = parse_blkio("8:0 Read 100\n8:0 Write 5\nTotal 105\n8:16 7\n");
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 100
            }
        );
        assert_eq!(b[2].op, "");
        let mut blkio = Blkio::default();
        parse_io_stat(
            "254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n",
            &mut blkio,
        );
        assert_eq!(blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(blkio.io_serviced_recursive[1].op, "Write");
        assert_eq!(blkio.io_serviced_recursive[1].value, 2);
    }
}
