//! `linux.seccomp` → one BPF program, with runc's (libseccomp's) semantics.
//!
//! Layout of the program:
//! ```text
//!   load arch; for each ABI section: if arch == its AUDIT_ARCH goto section
//!   return bad-arch action (KILL_THREAD, libseccomp's default)
//! section (x86_64 also dispatches x32 on bit 30 of the number, and lets nr -1 through):
//!   load nr
//!   [ENOSYS stub: if nr > highest number the profile names, return ERRNO(ENOSYS)]
//!   unconditional rules: runs of `if nr == N goto ret_k`, then `ret_k: return action`
//!   per syscall with argument rules: if nr == N { rule blocks in profile order; return default }
//!   return defaultAction
//! ```
//! Rule semantics follow runc on libseccomp: a rule whose action is the default one is dropped;
//! conditions of one entry are ANDed, unless two name the same argument (then each is its own
//! rule, as runc does); several rules of one syscall are ORed; an unconditional rule wins over
//! conditional ones; among conditional ones the first listed wins. 64-bit ABIs compare all 64 bits
//! of an argument, 32-bit ones (x86, x32, arm) the low 32.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::arch::{Abi, X32_SYSCALL_BIT};
use super::bpf::{self, Asm, Target, BPF_JEQ, BPF_JGE, BPF_JGT};
use super::Filter;
use crate::error::Error;
use crate::Result;

/// Syscalls Hull's init makes to hand the listener to the runtime right after loading the filter:
/// notifying them would wait for an agent that cannot have the listener yet (runc refuses `write`
/// for the same reason).
const NOT_NOTIFIABLE: &[&str] = &["write", "sendmsg"];

/// What a syscall of an architecture the filter does not cover gets: libseccomp's default.
const BAD_ARCH: u32 = libc::SECCOMP_RET_KILL_THREAD;

/// One argument condition as the profile gives it.
#[derive(Debug, Clone)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

/// What the profile says about one syscall number of one ABI.
#[derive(Debug, Default)]
struct Syscall {
    /// The first unconditional rule's return value: it overrides every conditional rule.
    unconditional: Option<u32>,
    /// (return value, conditions ANDed), in profile order.
    conditional: Vec<(u32, Vec<Cond>)>,
}

struct Section {
    abi: Abi,
    syscalls: BTreeMap<u32, Syscall>,
    /// The highest number any entry names (whatever its action), for the ENOSYS stub.
    highest: Option<u32>,
}

pub(super) fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let default = default_ret(seccomp)?;
    let mut sections = sections(seccomp);
    if sections.is_empty() {
        return Err(Error::Unsupported {
            feature: format!("seccomp on {}", std::env::consts::ARCH),
        });
    }
    let mut listener = false;
    for (i, entry) in seccomp.syscalls().iter().flatten().enumerate() {
        listener |= add_entry(&mut sections, i, entry, default)?;
    }
    if listener && seccomp.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "listenerPath is not set but SCMP_ACT_NOTIFY is used",
        ));
    }

    // runc's rule: no stub when the default already lets syscalls through (a tracer handles
    // ENOSYS itself), nor when it already answers ENOSYS.
    let enosys = !matches!(
        seccomp.default_action(),
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace
    ) && default != libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let program = program(&sections, default, enosys)?;
    if program.len() > bpf::MAX_INSNS {
        return Err(invalid(
            "linux.seccomp.syscalls",
            format!(
                "the profile compiles to {} BPF instructions, more than the kernel's {}",
                program.len(),
                bpf::MAX_INSNS
            ),
        ));
    }
    Ok(Filter {
        program,
        flags: flags(seccomp.flags().as_deref().unwrap_or_default(), listener),
        listener,
    })
}

/// `defaultAction` as a return value, with the checks of the fields beside it.
fn default_ret(seccomp: &LinuxSeccomp) -> Result<u32> {
    let default = ret_value(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    if seccomp.default_action() == Action::ScmpActNotify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerMetadata",
            "must not be set without listenerPath",
        ));
    }
    Ok(default)
}

/// `syscalls[i]` added to every section whose ABI knows its names; whether it notifies.
fn add_entry(
    sections: &mut [Section],
    i: usize,
    entry: &oci_spec::runtime::LinuxSyscall,
    default: u32,
) -> Result<bool> {
    let field = format!("linux.seccomp.syscalls[{i}]");
    if entry.names().is_empty() {
        return Err(invalid(
            format!("{field}.names"),
            "must contain at least one entry",
        ));
    }
    let ret = ret_value(
        entry.action(),
        entry.errno_ret(),
        &format!("{field}.errnoRet"),
    )?;
    let notify = entry.action() == Action::ScmpActNotify;
    if notify {
        if let Some(name) = entry
            .names()
            .iter()
            .find(|n| NOT_NOTIFIABLE.contains(&n.as_str()))
        {
            return Err(invalid(
                format!("{field}.names"),
                format!("SCMP_ACT_NOTIFY cannot be used for the {name} syscall"),
            ));
        }
    }
    let rules = rules(entry.args().as_deref().unwrap_or_default(), &field)?;
    // As runc: a rule that does what the default does is left out (it still counts below).
    let ret = (ret != default).then_some(ret);
    for name in entry.names() {
        let mut known = false;
        for section in sections.iter_mut() {
            if let Some(nr) = section.abi.resolve(name) {
                known = true;
                section.add(nr, ret, &rules);
            }
        }
        if !known {
            log::debug!("seccomp: unknown syscall {name:?} skipped");
        }
    }
    Ok(notify)
}

impl Section {
    /// The rules of one entry for syscall `nr`; `ret` None when the entry does what the default
    /// does (left out, but counted for the ENOSYS stub).
    fn add(&mut self, nr: u32, ret: Option<u32>, rules: &[Vec<Cond>]) {
        self.highest = self.highest.max(Some(nr));
        let Some(ret) = ret else {
            return;
        };
        let syscall = self.syscalls.entry(nr).or_default();
        for conds in rules {
            if conds.is_empty() {
                syscall.unconditional.get_or_insert(ret);
            } else {
                syscall.conditional.push((ret, conds.clone()));
            }
        }
    }
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The host ABIs the filter covers: the native one always (libseccomp's filters start with it),
/// and those `architectures` lists. Architectures this kernel never runs are accepted and skipped.
fn sections(seccomp: &LinuxSeccomp) -> Vec<Section> {
    let mut abis: Vec<Abi> = Abi::host().first().copied().into_iter().collect();
    for arch in seccomp.architectures().iter().flatten() {
        match Abi::of(*arch) {
            Some(abi) if !abis.contains(&abi) => abis.push(abi),
            Some(_) => {}
            None => log::debug!("seccomp: architecture {arch} never runs on this host, skipped"),
        }
    }
    abis.sort();
    abis.into_iter()
        .map(|abi| Section {
            abi,
            syscalls: BTreeMap::new(),
            highest: None,
        })
        .collect()
}

/// The value the filter returns for an action (`SECCOMP_RET_*` with its data).
fn ret_value(action: Action, errno: Option<u32>, errno_field: &str) -> Result<u32> {
    if errno.is_some() && !matches!(action, Action::ScmpActErrno | Action::ScmpActTrace) {
        return Err(invalid(
            errno_field,
            format!("errno return code is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {action}"),
        ));
    }
    // libseccomp keeps the low 16 bits (SECCOMP_RET_DATA), as runc's int16 conversion does.
    let data = errno.unwrap_or(libc::EPERM as u32) & libc::SECCOMP_RET_DATA;
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        Action::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        Action::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data,
        Action::ScmpActTrace => libc::SECCOMP_RET_TRACE | data,
        Action::ScmpActLog => libc::SECCOMP_RET_LOG,
        Action::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        Action::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
    })
}

/// The rules of one entry: `[[]]` for an unconditional one, else lists of ANDed conditions.
fn rules(args: &[LinuxSeccompArg], field: &str) -> Result<Vec<Vec<Cond>>> {
    let mut conds = Vec::with_capacity(args.len());
    for (j, arg) in args.iter().enumerate() {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| *i <= 5)
            .ok_or_else(|| {
                invalid(
                    format!("{field}.args[{j}].index"),
                    format!("a syscall argument index is 0 to 5, not {}", arg.index()),
                )
            })?;
        conds.push(Cond {
            index,
            op: arg.op(),
            value: arg.value(),
            value_two: arg.value_two().unwrap_or(0),
        });
    }
    // runc: when two conditions test the same argument, each becomes a rule of its own (ORed).
    let repeated = conds
        .iter()
        .enumerate()
        .any(|(j, c)| conds[..j].iter().any(|d| d.index == c.index));
    Ok(if repeated {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

fn flags(list: &[Flag], listener: bool) -> libc::c_ulong {
    let mut bits = 0;
    let mut wait_killable = false;
    for flag in list {
        match flag {
            Flag::SeccompFilterFlagTsync => bits |= libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => bits |= libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => bits |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => wait_killable = true,
        }
    }
    if listener {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // As libseccomp: the kernel takes TSYNC with a listener only with TSYNC_ESRCH, and
        // WAIT_KILLABLE_RECV only with a listener.
        if bits & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
        if wait_killable {
            bits |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
    } else if wait_killable {
        log::debug!(
            "seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY ignored"
        );
    }
    bits
}

fn program(sections: &[Section], default: u32, enosys: bool) -> Result<BpfProgram> {
    let internal = |e: String| invalid("linux.seccomp", format!("cannot compile the profile: {e}"));
    let mut asm = Asm::default();
    let entries: Vec<_> = sections.iter().map(|_| asm.label()).collect();

    asm.load_arch();
    for (section, entry) in sections.iter().zip(&entries) {
        if section.abi == Abi::X32 {
            // Shares x86_64's audit arch: reached from the x86_64 section.
            continue;
        }
        let next = asm.label();
        asm.jump_if(
            BPF_JEQ,
            section.abi.audit_arch(),
            Target::Next,
            Target::To(next),
        );
        asm.ja(*entry);
        asm.mark(next);
    }
    asm.ret(BAD_ARCH);

    for (section, entry) in sections.iter().zip(&entries) {
        asm.mark(*entry);
        let rules = asm.label();
        match section.abi {
            Abi::X86_64 => {
                let x32 = sections.iter().position(|s| s.abi == Abi::X32);
                let native = asm.label();
                asm.load_nr();
                asm.jump_if(BPF_JGE, X32_SYSCALL_BIT, Target::Next, Target::To(native));
                // -1 is how a tracer skips a syscall: libseccomp lets it reach the rules.
                asm.jump_if(BPF_JEQ, u32::MAX, Target::To(rules), Target::Next);
                match x32 {
                    Some(i) => asm.ja(entries[i]),
                    // An x32 syscall when x32 is not listed: a bad architecture.
                    None => asm.ret(BAD_ARCH),
                }
                asm.mark(native);
            }
            // Entered from the x86_64 section with the number loaded and bit 30 set.
            Abi::X32 => {}
            _ => asm.load_nr(),
        }
        if let (true, Some(highest)) = (enosys, section.highest) {
            let known = asm.label();
            asm.jump_if(BPF_JGT, highest, Target::Next, Target::To(known));
            asm.ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
            asm.mark(known);
        }
        asm.mark(rules);
        body(&mut asm, section, default).map_err(internal)?;
        asm.ret(default);
    }
    asm.finish().map_err(internal)
}

/// Most BPF conditional jumps reach 255 instructions: runs of number checks sharing one return.
const RUN: usize = 255;

fn body(asm: &mut Asm, section: &Section, default: u32) -> Result<(), String> {
    let mut runs: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (nr, syscall) in &section.syscalls {
        if let Some(ret) = syscall.unconditional {
            runs.entry(ret).or_default().push(*nr);
        }
    }
    // The biggest group (ALLOW in an allow-list profile) first: it serves the most calls.
    let mut runs: Vec<_> = runs.into_iter().collect();
    runs.sort_by_key(|(ret, nrs)| (std::cmp::Reverse(nrs.len()), *ret));
    for (ret, nrs) in runs {
        for chunk in nrs.chunks(RUN) {
            let hit = asm.label();
            let after = asm.label();
            for nr in chunk {
                asm.jump_if(BPF_JEQ, *nr, Target::To(hit), Target::Next);
            }
            asm.ja(after);
            asm.mark(hit);
            asm.ret(ret);
            asm.mark(after);
        }
    }

    let wide = section.abi.wide_args();
    for (nr, syscall) in &section.syscalls {
        if syscall.unconditional.is_some() || syscall.conditional.is_empty() {
            continue;
        }
        let (enter, skip) = (asm.label(), asm.label());
        asm.jump_if(BPF_JEQ, *nr, Target::To(enter), Target::Next);
        asm.ja(skip);
        asm.mark(enter);
        // Consecutive rules with one action make one block; blocks keep the profile's order.
        let mut rest = syscall.conditional.as_slice();
        while let Some((ret, _)) = rest.first() {
            let n = rest.iter().take_while(|(r, _)| r == ret).count();
            let rules = rest[..n]
                .iter()
                .map(|(_, conds)| seccomp_rule(conds, wide))
                .collect::<Result<Vec<_>, _>>()?;
            asm.extend(bpf::rules_block(*nr, rules, *ret)?);
            rest = &rest[n..];
        }
        asm.ret(default);
        asm.mark(skip);
    }
    Ok(())
}

fn seccomp_rule(conds: &[Cond], wide: bool) -> Result<SeccompRule, String> {
    let len = if wide {
        SeccompCmpArgLen::Qword
    } else {
        SeccompCmpArgLen::Dword
    };
    let conditions = conds
        .iter()
        .map(|c| {
            let (op, value) = match c.op {
                Op::ScmpCmpNe => (SeccompCmpOp::Ne, c.value),
                Op::ScmpCmpLt => (SeccompCmpOp::Lt, c.value),
                Op::ScmpCmpLe => (SeccompCmpOp::Le, c.value),
                Op::ScmpCmpEq => (SeccompCmpOp::Eq, c.value),
                Op::ScmpCmpGe => (SeccompCmpOp::Ge, c.value),
                Op::ScmpCmpGt => (SeccompCmpOp::Gt, c.value),
                // libseccomp: (arg & value) == (valueTwo & value).
                Op::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(c.value), c.value_two),
            };
            SeccompCondition::new(c.index, len.clone(), op, value).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}
