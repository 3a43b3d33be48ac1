//! process.scheduler, process.ioPriority, process.execCPUAffinity, linux.personality and
//! linux.memoryPolicy, applied by the container's init (or an exec'd process) to itself.
//!
//! Each `apply_*` runs the value check of `crate::plan::process_attrs` again, so an exec'd process
//! (or a caller that skipped `validate`) still gets a message naming the field rather than a bare
//! EINVAL.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType,
    Scheduler,
};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::plan::process_attrs::{
    check_io_priority, check_memory_policy, check_scheduler, cpu_set, AffinityStage,
};
use crate::syscall::Syscall;

// Placeholders until InitStep has Scheduler / IoPriority / Personality / MemoryPolicy.
const STEP_SCHEDULER: InitStep = InitStep::Scheduler;
const STEP_IO_PRIORITY: InitStep = InitStep::IoPriority;
const STEP_PERSONALITY: InitStep = InitStep::Personality;
const STEP_MEMORY_POLICY: InitStep = InitStep::MemoryPolicy;
const STEP_CPU_AFFINITY: InitStep = InitStep::CpuAffinity;

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

// ---- process.execCPUAffinity ----

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
