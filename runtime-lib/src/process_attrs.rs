//! process.scheduler, process.ioPriority, linux.personality and linux.memoryPolicy, applied by
//! the container's init; linux.intelRdt, refused on the host side (netDevices: see `netdev`).
//!
//! Value checks live in one place ([`validate`], host side, before anything is made) and the
//! `apply_*` functions run them again, so an exec'd process (or a caller that skipped
//! `validate`) still gets a message naming the field rather than a bare EINVAL.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType,
    Scheduler, Spec,
};

use crate::error::{Error, InitFailure, InitResult, InitStep, Result};
use crate::syscall::Syscall;

// Placeholders until InitStep has Scheduler / IoPriority / Personality / MemoryPolicy.
const STEP_SCHEDULER: InitStep = InitStep::Scheduler;
const STEP_IO_PRIORITY: InitStep = InitStep::IoPriority;
const STEP_PERSONALITY: InitStep = InitStep::Personality;
const STEP_MEMORY_POLICY: InitStep = InitStep::MemoryPolicy;
const STEP_CPU_AFFINITY: InitStep = InitStep::CpuAffinity;

/// process.oomScoreAdj of the container's process `pid`, written by the runtime while that process
/// waits for its cgroups (before it runs a step of its own), as runc writes it before it enters a
/// user namespace. Setting a score below the one the process inherited from its caller needs
/// CAP_SYS_RESOURCE in the host's user namespace, which a process in the container's user
/// namespace never has: containerd's shim raises its own score to containerd's + 1, so with
/// Docker's `--userns-remap` the process could not set the 0 Docker asks for.
pub fn set_oom_score_adj(pid: nix::unistd::Pid, adj: Option<i32>) -> Result<()> {
    let Some(adj) = adj else {
        return Ok(());
    };
    let rel = std::path::PathBuf::from(pid.to_string()).join("oom_score_adj");
    let path = std::path::Path::new("/proc").join(&rel);
    let step = "write process.oomScoreAdj to";
    let proc = crate::proc_handle::ProcFs::open()
        .map_err(|e| crate::user::proc_error(step, path.clone(), e))?;
    proc.write(&rel, adj.to_string().as_bytes())
        .map_err(|e| crate::user::proc_error(step, path, e))
}

/// Host side, before anything is made: the value ranges the kernel would refuse with a bare
/// EINVAL, checked here so the message names the field.
pub fn validate(spec: &Spec) -> Result<()> {
    let invalid = |(field, problem): (&str, String)| Error::InvalidConfig {
        field: field.to_string(),
        problem,
    };
    if let Some(p) = spec.process() {
        if let Some(s) = p.scheduler() {
            check_scheduler(s).map_err(invalid)?;
        }
        if let Some(io) = p.io_priority() {
            check_io_priority(io).map_err(invalid)?;
        }
        // Not for the init (config.md), but `exec` takes the config's process as its default.
        if let Some(a) = p.exec_cpu_affinity() {
            for (stage, list) in [
                (AffinityStage::Initial, a.initial()),
                (AffinityStage::Final, a.cpu_affinity_final()),
            ] {
                if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                    cpu_set(list, stage.field()).map_err(invalid)?;
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        if let Some(m) = linux.memory_policy() {
            check_memory_policy(m).map_err(invalid)?;
        }
        if let Some(flags) = linux
            .personality()
            .as_ref()
            .and_then(|p| p.flags().as_ref())
        {
            if !flags.is_empty() {
                // runc's behaviour: the spec defines no flag values, so they are dropped, loudly.
                log::warn!("ignoring unsupported linux.personality.flags {flags:?}");
            }
        }
    }
    Ok(())
}

/// Host side, in create before anything is made: the Linux features Hull does not implement.
pub fn check_unsupported(spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if linux.intel_rdt().is_some() {
        // The spec's own error comes first: without resctrl no runtime could honour it.
        if !resctrl_mounted()? {
            return Err(Error::InvalidConfig {
                field: "linux.intelRdt".into(),
                problem: "intelRdt requires a mounted resctrl filesystem".into(),
            });
        }
        return Err(Error::Unsupported {
            feature: "linux.intelRdt".into(),
        });
    }
    Ok(())
}

fn resctrl_mounted() -> Result<bool> {
    let mounts = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| Error::Io {
            step: "read",
            path: "/proc/self/mountinfo".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(mounts.into_iter().any(|m| m.fs_type == "resctrl"))
}

// ---- process.scheduler ----

/// struct sched_attr as of SCHED_ATTR_SIZE_VER1: with the utilization clamps, so the
/// SCHED_FLAG_UTIL_CLAMP_* flags the spec lists are accepted (libc's struct stops at VER0).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SchedAttr {
    pub(crate) size: u32,
    pub(crate) sched_policy: u32,
    pub(crate) sched_flags: u64,
    pub(crate) sched_nice: i32,
    pub(crate) sched_priority: u32,
    pub(crate) sched_runtime: u64,
    pub(crate) sched_deadline: u64,
    pub(crate) sched_period: u64,
    pub(crate) sched_util_min: u32,
    pub(crate) sched_util_max: u32,
}

/// SCHED_ISO was never merged upstream; the number is the one the spec's users (-ck) gave it.
const SCHED_ISO: u32 = 4;

fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    let n = match p {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIso => return SCHED_ISO,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => libc::SCHED_DEADLINE,
    };
    n as u32
}

fn flag_number(f: LinuxSchedulerFlag) -> u64 {
    let n = match f {
        LinuxSchedulerFlag::SchedResetOnFork => libc::SCHED_FLAG_RESET_ON_FORK,
        LinuxSchedulerFlag::SchedFlagReclaim => libc::SCHED_FLAG_RECLAIM,
        LinuxSchedulerFlag::SchedFlagDLOverrun => libc::SCHED_FLAG_DL_OVERRUN,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => libc::SCHED_FLAG_KEEP_POLICY,
        LinuxSchedulerFlag::SchedFlagKeepParams => libc::SCHED_FLAG_KEEP_PARAMS,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => libc::SCHED_FLAG_UTIL_CLAMP_MIN,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => libc::SCHED_FLAG_UTIL_CLAMP_MAX,
    };
    n as u64
}

type Problem = (&'static str, String);

fn check_scheduler(s: &Scheduler) -> std::result::Result<(), Problem> {
    use LinuxSchedulerPolicy::*;
    let policy = *s.policy();
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err((
            "process.scheduler.nice",
            format!("nice {nice} is out of range -20..19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(policy, SchedFifo | SchedRr);
    if realtime && !(1..=99).contains(&priority) {
        return Err((
            "process.scheduler.priority",
            format!("priority {priority} is out of range 1..99 for {policy}"),
        ));
    }
    if !realtime && priority != 0 {
        return Err((
            "process.scheduler.priority",
            format!("priority can only be set for SCHED_FIFO or SCHED_RR, not {policy}"),
        ));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != SchedDeadline {
        if runtime != 0 || deadline != 0 || period != 0 {
            return Err((
                "process.scheduler",
                format!(
                    "runtime, deadline and period can only be set for SCHED_DEADLINE, not {policy}"
                ),
            ));
        }
    } else if runtime == 0 || runtime > deadline || (period != 0 && deadline > period) {
        // The kernel's rule (period 0 means period = deadline).
        return Err((
            "process.scheduler",
            format!(
                "SCHED_DEADLINE needs 0 < runtime <= deadline <= period, got runtime {runtime} \
                 deadline {deadline} period {period}"
            ),
        ));
    }
    Ok(())
}

/// In the init, before the user and capabilities change (SCHED_FIFO/RR/DEADLINE need
/// CAP_SYS_NICE): sched_setattr(2) on the init itself, inherited across execve.
pub fn apply_scheduler(s: Option<&Scheduler>, sys: &dyn Syscall) -> InitResult<()> {
    let Some(s) = s else { return Ok(()) };
    let fail = || InitFailure::new(STEP_SCHEDULER).subject("process.scheduler");
    check_scheduler(s).map_err(|(_, problem)| fail().detail(problem))?;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy_number(*s.policy()),
        sched_flags: s
            .flags()
            .iter()
            .flatten()
            .fold(0, |m, f| m | flag_number(*f)),
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..SchedAttr::default()
    };
    sys.sched_setattr(&attr).map_err(|e| {
        let f = fail().errno(e);
        match (e, *s.policy()) {
            (Errno::EINVAL, LinuxSchedulerPolicy::SchedIso) => {
                f.detail("SCHED_ISO is not supported by this kernel")
            }
            (Errno::EPERM, LinuxSchedulerPolicy::SchedDeadline) => {
                f.detail("SCHED_DEADLINE needs the whole root domain's CPUs (no cpuset limit)")
            }
            _ => f,
        }
    })?;
    Ok(())
}

/// oci-spec 0.10 derives two flag names from its Rust names instead of the spec's
/// (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN` for the spec's `SCHED_FLAG_RESET_ON_FORK`,
/// `SCHED_FLAG_DL_OVERRUN`), so a config using the spec's spelling fails to parse. This rewrites
/// them in `process.scheduler.flags` of a config (or process.json, `process_json` true) parsed as
/// a JSON value; returns whether it changed anything, i.e. whether a retry can succeed.
pub fn normalize_scheduler_flags(config: &mut serde_json::Value, process_json: bool) -> bool {
    let process = if process_json {
        Some(config)
    } else {
        config.get_mut("process")
    };
    let Some(flags) = process
        .and_then(|p| p.get_mut("scheduler"))
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return false;
    };
    let mut changed = false;
    for f in flags {
        let ours = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = ours.into();
        changed = true;
    }
    changed
}

// ---- process.execCPUAffinity ----

/// The two moments config.md gives execCPUAffinity: `initial` before the process joins the
/// container's cgroup, `final` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityStage {
    Initial,
    Final,
}

impl AffinityStage {
    fn field(self) -> &'static str {
        match self {
            AffinityStage::Initial => "process.execCPUAffinity.initial",
            AffinityStage::Final => "process.execCPUAffinity.final",
        }
    }
}

/// A CPU list as config.md writes it (`0-3,7`).
fn cpu_set(list: &str, field: &'static str) -> std::result::Result<nix::sched::CpuSet, Problem> {
    let bad = || (field, format!("{list:?} is not a CPU list such as 0-3,7"));
    let mut set = nix::sched::CpuSet::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = match (lo.parse::<usize>(), hi.parse::<usize>()) {
            (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
            _ => return Err(bad()),
        };
        for cpu in lo..=hi {
            set.set(cpu).map_err(|_| {
                (
                    field,
                    format!(
                        "CPU {cpu} is beyond the {} a CPU set can name",
                        nix::sched::CpuSet::count()
                    ),
                )
            })?;
        }
    }
    Ok(set)
}

/// In an `exec`'d process: its execCPUAffinity list for `stage`, if it has one. The init has
/// none to apply (config.md: not applicable to the container's init process).
pub fn apply_exec_cpu_affinity(
    a: Option<&oci_spec::runtime::ExecCPUAffinity>,
    stage: AffinityStage,
    sys: &dyn Syscall,
) -> InitResult<()> {
    let list = a.and_then(|a| match stage {
        AffinityStage::Initial => a.initial().as_deref(),
        AffinityStage::Final => a.cpu_affinity_final().as_deref(),
    });
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let set = cpu_set(list, stage.field()).map_err(|(field, problem)| {
        InitFailure::new(STEP_CPU_AFFINITY)
            .subject(field)
            .detail(problem)
    })?;
    sys.sched_setaffinity(&set)
        .map_err(|e| InitFailure::sys(STEP_CPU_AFFINITY, stage.field(), e))
}

// ---- process.ioPriority ----

const IOPRIO_CLASS_SHIFT: u32 = 13;

fn check_io_priority(p: &LinuxIOPriority) -> std::result::Result<(), Problem> {
    if !(0..=7).contains(&p.priority()) {
        return Err((
            "process.ioPriority.priority",
            format!("priority {} is out of range 0..7", p.priority()),
        ));
    }
    Ok(())
}

fn io_priority_value(p: &LinuxIOPriority) -> libc::c_int {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    (class << IOPRIO_CLASS_SHIFT | p.priority() as u32) as libc::c_int
}

/// In the init, before the user and capabilities change (IOPRIO_CLASS_RT needs
/// CAP_SYS_ADMIN or CAP_SYS_NICE): ioprio_set(2) on the init, inherited across fork and execve.
pub fn apply_io_priority(p: Option<&LinuxIOPriority>, sys: &dyn Syscall) -> InitResult<()> {
    let Some(p) = p else { return Ok(()) };
    let fail = || InitFailure::new(STEP_IO_PRIORITY).subject("process.ioPriority");
    check_io_priority(p).map_err(|(_, problem)| fail().detail(problem))?;
    sys.ioprio_set(io_priority_value(p))
        .map_err(|e| fail().errno(e))?;
    Ok(())
}

// ---- linux.personality ----

const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// In the init, last before Ready (runc's place): personality(2) with the domain alone; the
/// spec defines no flags (see [`validate`]). Survives execve.
pub fn apply_personality(p: Option<&LinuxPersonality>, sys: &dyn Syscall) -> InitResult<()> {
    let Some(p) = p else { return Ok(()) };
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    sys.personality(persona).map_err(|e| {
        InitFailure::new(STEP_PERSONALITY)
            .subject(format!("linux.personality {}", p.domain()))
            .errno(e)
    })?;
    Ok(())
}

// ---- linux.memoryPolicy ----

const MPOL_PREFERRED_MANY: libc::c_int = 5;
const MPOL_WEIGHTED_INTERLEAVE: libc::c_int = 6;
/// set_mempolicy refuses a maxnode above one page of bits.
const MAX_NODES: usize = 4096 * 8 - 1;
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// A node list in the spec's format ("0-3,7"; empty means none) as a set_mempolicy nodemask.
fn parse_nodes(list: &str) -> std::result::Result<Vec<libc::c_ulong>, String> {
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    let bad = |why: &str| format!("node list {list:?}: {why}");
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> std::result::Result<usize, String> {
            let n = s
                .trim()
                .parse::<usize>()
                .map_err(|_| bad(&format!("{s:?} is not a node number")))?;
            if n >= MAX_NODES {
                return Err(bad(&format!("node {n} is above {}", MAX_NODES - 1)));
            }
            Ok(n)
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if first > last {
            return Err(bad(&format!("range {part:?} is backwards")));
        }
        if mask.len() <= last / WORD_BITS {
            mask.resize(last / WORD_BITS + 1, 0);
        }
        for n in first..=last {
            mask[n / WORD_BITS] |= 1 << (n % WORD_BITS);
        }
    }
    Ok(mask)
}

fn mode_number(m: MemoryPolicyModeType) -> libc::c_int {
    match m {
        MemoryPolicyModeType::MpolDefault => libc::MPOL_DEFAULT,
        MemoryPolicyModeType::MpolBind => libc::MPOL_BIND,
        MemoryPolicyModeType::MpolInterleave => libc::MPOL_INTERLEAVE,
        MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
        MemoryPolicyModeType::MpolPreferred => libc::MPOL_PREFERRED,
        MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
        MemoryPolicyModeType::MpolLocal => libc::MPOL_LOCAL,
    }
}

fn mode_flag_number(f: MemoryPolicyFlagType) -> libc::c_int {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => libc::MPOL_F_NUMA_BALANCING,
        MemoryPolicyFlagType::MpolFRelativeNodes => libc::MPOL_F_RELATIVE_NODES,
        MemoryPolicyFlagType::MpolFStaticNodes => libc::MPOL_F_STATIC_NODES,
    }
}

/// The nodemask, checked against what the mode needs (set_mempolicy(2)).
fn check_memory_policy(p: &LinuxMemoryPolicy) -> std::result::Result<Vec<libc::c_ulong>, Problem> {
    use MemoryPolicyModeType::*;
    let mask = parse_nodes(p.nodes().as_deref().unwrap_or(""))
        .map_err(|e| ("linux.memoryPolicy.nodes", e))?;
    let empty = mask.iter().all(|w| *w == 0);
    let mode = p.mode();
    match mode {
        MpolDefault | MpolLocal if !empty => {
            return Err(("linux.memoryPolicy.nodes", format!("{mode} takes no nodes")))
        }
        MpolBind | MpolInterleave | MpolWeightedInterleave | MpolPreferredMany if empty => {
            return Err((
                "linux.memoryPolicy.nodes",
                format!("{mode} needs at least one node"),
            ))
        }
        _ => {}
    }
    let flags = p.flags().as_deref().unwrap_or_default();
    if flags.contains(&MemoryPolicyFlagType::MpolFStaticNodes)
        && flags.contains(&MemoryPolicyFlagType::MpolFRelativeNodes)
    {
        return Err((
            "linux.memoryPolicy.flags",
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES are mutually exclusive".into(),
        ));
    }
    Ok(mask)
}

/// In the init, with the scheduler (runc sets it there too): set_mempolicy(2) for the init,
/// inherited across fork and execve.
pub fn apply_memory_policy(p: Option<&LinuxMemoryPolicy>, sys: &dyn Syscall) -> InitResult<()> {
    let Some(p) = p else { return Ok(()) };
    let fail = || InitFailure::new(STEP_MEMORY_POLICY).subject("linux.memoryPolicy");
    let mask = check_memory_policy(p).map_err(|(_, problem)| fail().detail(problem))?;
    let mode = p
        .flags()
        .iter()
        .flatten()
        .fold(mode_number(p.mode()), |m, f| m | mode_flag_number(*f));
    sys.set_mempolicy(mode, &mask).map_err(|e| {
        let f = fail().errno(e);
        if e == Errno::EINVAL && !mask.is_empty() {
            f.detail(format!(
                "nodes {:?} with mode {}",
                p.nodes().as_deref().unwrap_or(""),
                p.mode()
            ))
        } else {
            f
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
