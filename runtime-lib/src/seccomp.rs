//! linux.seccomp compiled to BPF with seccompiler (no libseccomp: the binary stays one static file).
//!
//! seccompiler builds filters with one match action each, so a profile becomes a small stack of
//! filters, and the kernel's rule for stacked filters (the most restrictive answer wins: KILL >
//! TRAP > ERRNO > TRACE > LOG > ALLOW) gives libseccomp's semantics:
//! - one filter per (action, errno) of the profile's rules: a matching syscall gets that action,
//!   anything else ALLOW;
//! - unless defaultAction is ALLOW, a last filter: every syscall a rule names (with its argument
//!   conditions) is ALLOWed, anything else gets defaultAction.
//!
//! Compiled on the runtime side before the init exists (so a bad profile fails `create` with nothing
//! made), installed by the init. The filters check the native architecture only: a syscall made
//! through another ABI (x86 or x32 on x86_64) is killed, whatever `architectures` lists.

use std::collections::BTreeMap;
use std::str::FromStr;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::{Error, InitFailure, InitResult, InitStep};
use crate::Result;

/// A compiled profile, ready for the init to install.
#[derive(Debug, Clone)]
pub struct Filter {
    programs: Vec<BpfProgram>,
    flags: libc::c_ulong,
}

/// One syscall's rules in one filter: `None` matches the syscall whatever its arguments.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut groups: Vec<(SeccompAction, Rules)> = Vec::new();
    let mut all: Rules = BTreeMap::new();
    for (i, entry) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(entry.action(), entry.errno_ret(), &field)?;
        let rule = match entry.args().as_deref() {
            None | Some([]) => None,
            Some(args) => Some(rule(args, &field)?),
        };
        for name in entry.names() {
            let Ok(nr) = syscalls::Sysno::from_str(name) else {
                // As runc: a name this kernel's table does not know is skipped.
                log::debug!("seccomp: unknown syscall {name:?} skipped");
                continue;
            };
            let nr = nr.id() as i64;
            add(&mut all, nr, rule.clone());
            let group = match groups.iter_mut().find(|(a, _)| *a == act) {
                Some((_, rules)) => rules,
                None => {
                    groups.push((act.clone(), BTreeMap::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            add(group, nr, rule.clone());
        }
    }

    let mut programs = Vec::new();
    for (act, rules) in groups {
        if act != SeccompAction::Allow {
            programs.push(program(rules, SeccompAction::Allow, act)?);
        }
    }
    if default != SeccompAction::Allow {
        programs.push(program(all, default, SeccompAction::Allow)?);
    }
    Ok(Filter {
        programs,
        flags: flags(seccomp.flags().as_deref().unwrap_or_default())?,
    })
}

/// Installs every filter; the init calls it as late as the spec allows (see `process::init`).
pub fn install(filter: &Filter) -> InitResult<()> {
    for program in &filter.programs {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `program`, alive for the call; the kernel copies the filter.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                filter.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        nix::errno::Errno::result(ret).map_err(|e| {
            InitFailure::sys(InitStep::Seccomp, "seccomp(SECCOMP_SET_MODE_FILTER)", e)
        })?;
    }
    Ok(())
}

fn add(rules: &mut Rules, nr: i64, rule: Option<SeccompRule>) {
    match (rules.get_mut(&nr), rule) {
        // Already unconditional: stays so.
        (Some(None), _) => {}
        (Some(slot), None) => *slot = None,
        (Some(Some(list)), Some(r)) => list.push(r),
        (None, r) => {
            rules.insert(nr, r.map(|r| vec![r]));
        }
    }
}

fn program(rules: Rules, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram> {
    let rules = rules
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    SeccompFilter::new(rules, mismatch, matched, native_arch())
        .and_then(BpfProgram::try_from)
        .map_err(|e| Error::InvalidConfig {
            field: "linux.seccomp".into(),
            problem: format!("cannot compile the profile: {e}"),
        })
}

fn native_arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
    #[cfg(target_arch = "riscv64")]
    return TargetArch::riscv64;
    #[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
    TargetArch::x86_64
}

fn action(a: Action, errno: Option<u32>, field: &str) -> Result<SeccompAction> {
    let invalid = |problem: String| Error::InvalidConfig {
        field: field.to_string(),
        problem,
    };
    if errno.is_some() && !matches!(a, Action::ScmpActErrno | Action::ScmpActTrace) {
        return Err(invalid(format!(
            "errnoRet is only allowed with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {a}"
        )));
    }
    Ok(match a {
        Action::ScmpActAllow => SeccompAction::Allow,
        Action::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        Action::ScmpActKill | Action::ScmpActKillThread => SeccompAction::KillThread,
        Action::ScmpActKillProcess => SeccompAction::KillProcess,
        Action::ScmpActTrap => SeccompAction::Trap,
        Action::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(libc::EPERM as u32)),
        Action::ScmpActLog => SeccompAction::Log,
        Action::ScmpActNotify => {
            return Err(Error::Unsupported {
                feature: format!("{field}: SCMP_ACT_NOTIFY"),
            })
        }
    })
}

/// The conditions of one entry, ANDed (libseccomp compares the full 64 bits).
fn rule(args: &[oci_spec::runtime::LinuxSeccompArg], field: &str) -> Result<SeccompRule> {
    let mut conditions = Vec::new();
    for (j, arg) in args.iter().enumerate() {
        let (op, value) = match arg.op() {
            Op::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
            Op::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
            Op::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
            Op::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
            Op::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
            Op::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
            // libseccomp: (arg & value) == valueTwo.
            Op::ScmpCmpMaskedEq => (
                SeccompCmpOp::MaskedEq(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        let index = u8::try_from(arg.index()).unwrap_or(u8::MAX);
        let c = SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|e| {
            Error::InvalidConfig {
                field: format!("{field}.args[{j}]"),
                problem: e.to_string(),
            }
        })?;
        conditions.push(c);
    }
    SeccompRule::new(conditions).map_err(|e| Error::InvalidConfig {
        field: format!("{field}.args"),
        problem: e.to_string(),
    })
}

fn flags(list: &[Flag]) -> Result<libc::c_ulong> {
    let mut bits = 0;
    for f in list {
        bits |= match f {
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => {
                return Err(Error::Unsupported {
                    feature: "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (it needs SCMP_ACT_NOTIFY)".into(),
                })
            }
        };
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    /// Installs `p` in a forked child, runs `f` there; the child's exit code is `f`'s result.
    fn in_child(p: &LinuxSeccomp, f: fn() -> i32) -> WaitStatus {
        let filter = compile(p).unwrap();
        // SAFETY: the child only makes system calls and exits with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = match nix::sys::prctl::set_no_new_privs()
                    .map_err(|_| ())
                    .and_then(|()| install(&filter).map_err(|_| ()))
                {
                    Ok(()) => f(),
                    Err(()) => 100,
                };
                // SAFETY: leaves the child without running the test harness's destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    }

    fn getpriority_errno(which: u32) -> i32 {
        nix::errno::Errno::clear();
        // SAFETY: getpriority takes two integers.
        let r = unsafe { libc::getpriority(which, 0) };
        if r == -1 {
            nix::errno::Errno::last_raw()
        } else {
            0
        }
    }

    #[test]
    fn errno_rules_with_arguments_and_default() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getpriority"],"action":"SCMP_ACT_ERRNO","errnoRet":42,
                 "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
                {"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        // PRIO_PGRP (1) is refused with 42, PRIO_PROCESS (0) allowed, getppid gets EPERM.
        let st = in_child(&p, || {
            let a = getpriority_errno(1);
            let b = getpriority_errno(0);
            // SAFETY: getppid has no preconditions.
            let c = if unsafe { libc::syscall(libc::SYS_getppid) } == -1 {
                nix::errno::Errno::last_raw()
            } else {
                0
            };
            if (a, b, c) == (42, 0, libc::EPERM) {
                0
            } else {
                1
            }
        });
        assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
    }

    #[test]
    fn default_errno_with_allow_list_and_kill() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[
                {"names":["exit_group","exit","write","getpid","rt_sigreturn"],"action":"SCMP_ACT_ALLOW"},
                {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        );
        let st = in_child(&p, || {
            // Not in the allow list: the default errno.
            if getpriority_errno(0) != 38 {
                return 1;
            }
            // SAFETY: getppid has no preconditions; the filter kills the process here.
            unsafe { libc::syscall(libc::SYS_getppid) };
            2
        });
        assert_eq!(
            st,
            WaitStatus::Signaled(st.pid().unwrap(), nix::sys::signal::SIGSYS, false)
        );
    }

    #[test]
    fn malformed_profiles_are_errors() {
        let errno_on_allow = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ALLOW","errnoRet":1}]}"#,
        );
        let e = compile(&errno_on_allow).unwrap_err().to_string();
        assert!(
            e.contains("linux.seccomp.syscalls[0]") && e.contains("errnoRet"),
            "{e}"
        );
        let notify = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(matches!(compile(&notify), Err(Error::Unsupported { .. })));
        let bad_arg = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let e = compile(&bad_arg).unwrap_err().to_string();
        assert!(e.contains("args[0]"), "{e}");
        // Unknown action names are refused when config.json is parsed.
        assert!(
            serde_json::from_str::<LinuxSeccomp>(r#"{"defaultAction":"SCMP_ACT_FOO"}"#).is_err()
        );
    }
}
