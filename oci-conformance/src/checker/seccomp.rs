//! Checks of config-linux.md "Seccomp": the filter mode, and the action the filter takes on a few
//! harmless probe syscalls, each made in a forked child so that a kill or trap is observable.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{LinuxSeccompArg, Spec};

use crate::process::spec_name;
use crate::Report;

/// Syscalls the checker knows how to make with controlled arguments and no side effects.
const PROBES: [(&str, libc::c_long); 2] = [
    ("getpriority", libc::SYS_getpriority),
    ("getppid", libc::SYS_getppid),
];

#[derive(Debug, PartialEq, Clone, Copy)]
enum Outcome {
    Allowed,
    Errno(i32),
    Killed,
}

fn arg_matches(cond: &LinuxSeccompArg, args: &[u64; 6]) -> bool {
    let Some(v) = args.get(cond.index()).copied() else {
        return false;
    };
    let want = cond.value();
    match spec_name(&cond.op()).as_str() {
        "SCMP_CMP_NE" => v != want,
        "SCMP_CMP_LT" => v < want,
        "SCMP_CMP_LE" => v <= want,
        "SCMP_CMP_EQ" => v == want,
        "SCMP_CMP_GE" => v >= want,
        "SCMP_CMP_GT" => v > want,
        "SCMP_CMP_MASKED_EQ" => v & want == cond.value_two().unwrap_or(0),
        _ => false,
    }
}

fn outcome_of(action: &str, errno: Option<u32>) -> Outcome {
    match action {
        "SCMP_ACT_ERRNO" => Outcome::Errno(errno.map_or(libc::EPERM, |e| e as i32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_PROCESS" | "SCMP_ACT_KILL_THREAD" | "SCMP_ACT_TRAP" => {
            Outcome::Killed
        }
        _ => Outcome::Allowed,
    }
}

fn probe(nr: libc::c_long, args: &[u64; 6]) -> Outcome {
    // SAFETY: the checker is single-threaded; the child only makes one syscall and exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: the probes take integer arguments only and have no side effects.
            let rc =
                unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
            let code = if rc < 0 {
                nix::errno::Errno::last_raw()
            } else {
                0
            };
            // SAFETY: _exit skips the parent's atexit handlers and buffered output.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Outcome::Allowed,
            Ok(WaitStatus::Exited(_, code)) => Outcome::Errno(code),
            _ => Outcome::Killed,
        },
        Err(_) => Outcome::Killed,
    }
}

pub fn seccomp(spec: &Spec, r: &mut Report) {
    let Some(config) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) else {
        return;
    };
    let mode = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.seccomp);
    let ok = mode.as_ref().is_ok_and(|m| *m == Some(2));
    let clause = "seccomp: the runtime installs the configured filter (process in SECCOMP_MODE_FILTER) (runtime.md: create MUST apply all properties)";
    r.check(
        "config-linux.md",
        clause,
        ok,
        format!("Seccomp mode {mode:?}"),
    );

    let rules = config.syscalls().clone().unwrap_or_default();
    let default = outcome_of(
        &spec_name(&config.default_action()),
        config.default_errno_ret(),
    );
    for (name, nr) in PROBES {
        let named: Vec<_> = rules
            .iter()
            .filter(|rule| rule.names().iter().any(|n| n == name))
            .collect();
        if named.is_empty() {
            continue;
        }
        // getpriority's first argument takes the three PRIO_* values; each is a valid call.
        for which in 0..3u64 {
            let args = [which, 0, 0, 0, 0, 0];
            let want = named
                .iter()
                .find(|rule| {
                    rule.args()
                        .iter()
                        .flatten()
                        .all(|cond| arg_matches(cond, &args))
                })
                .map(|rule| outcome_of(&spec_name(&rule.action()), rule.errno_ret()))
                .unwrap_or(default);
            let got = probe(nr, &args);
            let clause = "seccomp: syscalls matching a rule (names, args) get the rule's action and errnoRet (default EPERM)";
            r.check(
                "config-linux.md",
                clause,
                got == want,
                format!("{name}({which}, 0): {got:?}, want {want:?}"),
            );
            if name == "getppid" {
                break;
            }
        }
    }
}
