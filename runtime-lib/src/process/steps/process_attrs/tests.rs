//! Each attribute applied in a forked child that reads it back from the kernel.

use super::*;
use crate::plan::process_attrs::*;
use crate::process::steps::testing::in_child;
use crate::syscall::LinuxSyscall;
use oci_spec::runtime::Spec;

fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn get_sched_attr() -> std::result::Result<SchedAttr, String> {
    let mut attr = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: the kernel writes at most `size` bytes into `attr`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            size,
            0,
        )
    };
    Errno::result(r).map_err(|e| format!("sched_getattr: {e}"))?;
    Ok(attr)
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn apply_in_child(json: &str, check: impl FnOnce(SchedAttr) -> Result<(), String>) {
    let s: Scheduler = from_json(json);
    in_child(|| {
        apply_scheduler(Some(&s), &LinuxSyscall).map_err(|e| e.to_string())?;
        check(get_sched_attr()?)
    })
    .unwrap();
}

#[test]
fn scheduler_batch_with_nice() {
    apply_in_child(r#"{"policy":"SCHED_BATCH","nice":7}"#, |a| {
        expect("policy", a.sched_policy, libc::SCHED_BATCH as u32)?;
        expect("nice", a.sched_nice, 7)?;
        // getpriority sees the same nice value.
        // SAFETY: getpriority takes integers.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        expect("getpriority", nice, 7)
    });
}

#[test]
fn scheduler_fifo_with_priority_and_reset_on_fork() {
    apply_in_child(
        r#"{"policy":"SCHED_FIFO","priority":10,"flags":["SCHED_RESET_ON_FORK"]}"#,
        |a| {
            expect("policy", a.sched_policy, libc::SCHED_FIFO as u32)?;
            expect("priority", a.sched_priority, 10)?;
            expect(
                "reset on fork",
                a.sched_flags & libc::SCHED_FLAG_RESET_ON_FORK as u64,
                libc::SCHED_FLAG_RESET_ON_FORK as u64,
            )
        },
    );
}

#[test]
fn scheduler_deadline() {
    apply_in_child(
        r#"{"policy":"SCHED_DEADLINE","runtime":1000000,"deadline":10000000,"period":20000000}"#,
        |a| {
            expect("policy", a.sched_policy, libc::SCHED_DEADLINE as u32)?;
            expect(
                "runtime/deadline/period",
                (a.sched_runtime, a.sched_deadline, a.sched_period),
                (1_000_000, 10_000_000, 20_000_000),
            )
        },
    );
}

#[test]
fn scheduler_values_out_of_range_are_refused() {
    for (json, field, words) in [
        (
            r#"{"policy":"SCHED_OTHER","nice":20}"#,
            "process.scheduler.nice",
            "nice 20",
        ),
        (
            r#"{"policy":"SCHED_OTHER","nice":-21}"#,
            "process.scheduler.nice",
            "-21",
        ),
        (
            r#"{"policy":"SCHED_FIFO"}"#,
            "process.scheduler.priority",
            "1..99",
        ),
        (
            r#"{"policy":"SCHED_RR","priority":100}"#,
            "process.scheduler.priority",
            "100",
        ),
        (
            r#"{"policy":"SCHED_OTHER","priority":5}"#,
            "process.scheduler.priority",
            "SCHED_FIFO",
        ),
        (
            r#"{"policy":"SCHED_BATCH","runtime":5}"#,
            "process.scheduler",
            "SCHED_DEADLINE",
        ),
        (
            r#"{"policy":"SCHED_DEADLINE","runtime":5,"deadline":4}"#,
            "process.scheduler",
            "runtime <= deadline",
        ),
    ] {
        let (f, problem) = check_scheduler(&from_json(json)).expect_err(json);
        assert_eq!(f, field, "{json}");
        assert!(problem.contains(words), "{json}: {problem}");
        // The init refuses it too, before any system call.
        let err = apply_scheduler(Some(&from_json(json)), &LinuxSyscall).expect_err(json);
        assert_eq!(err.errno, None, "{json}");
    }
    let spec: Spec = from_json(
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","user":{"uid":0,"gid":0},
            "args":["sh"],"scheduler":{"policy":"SCHED_OTHER","nice":99}}}"#,
    );
    let msg = validate(&spec).unwrap_err().to_string();
    assert_eq!(
        msg,
        "invalid config process.scheduler.nice: nice 99 is out of range -20..19"
    );
}

#[test]
fn scheduler_flags_in_the_spec_spelling_parse_after_normalizing() {
    let text = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
        "args":["echo","SCHED_FLAG_RESET_ON_FORK"],"scheduler":{"policy":"SCHED_OTHER",
        "flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN","SCHED_FLAG_RECLAIM"]}}}"#;
    assert!(
        serde_json::from_str::<Spec>(text).is_err(),
        "oci-spec was fixed"
    );
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    assert!(normalize_scheduler_flags(&mut v, false));
    let spec: Spec = serde_json::from_value(v).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.scheduler().as_ref().unwrap().flags().as_deref(),
        Some(
            &[
                LinuxSchedulerFlag::SchedResetOnFork,
                LinuxSchedulerFlag::SchedFlagDLOverrun,
                LinuxSchedulerFlag::SchedFlagReclaim
            ][..]
        )
    );
    // Only the flags are touched.
    assert_eq!(p.args().as_ref().unwrap()[1], "SCHED_FLAG_RESET_ON_FORK");

    let mut process: serde_json::Value = serde_json::from_str(
        r#"{"scheduler":{"policy":"SCHED_OTHER","flags":["SCHED_FLAG_RESET_ON_FORK"]}}"#,
    )
    .unwrap();
    assert!(normalize_scheduler_flags(&mut process, true));
    assert!(!normalize_scheduler_flags(&mut process, true));
}

#[test]
fn io_priority_applied() {
    for (json, want) in [
        (r#"{"class":"IOPRIO_CLASS_IDLE","priority":0}"#, 3 << 13),
        (r#"{"class":"IOPRIO_CLASS_BE","priority":6}"#, 2 << 13 | 6),
        (r#"{"class":"IOPRIO_CLASS_RT","priority":1}"#, 1 << 13 | 1),
    ] {
        let p: LinuxIOPriority = from_json(json);
        in_child(|| {
            apply_io_priority(Some(&p), &LinuxSyscall).map_err(|e| e.to_string())?;
            // 1: IOPRIO_WHO_PROCESS.
            // SAFETY: ioprio_get takes integers.
            let got = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
            expect(json, got, want)
        })
        .unwrap();
    }
}

#[test]
fn io_priority_out_of_range_is_refused() {
    let p: LinuxIOPriority = from_json(r#"{"class":"IOPRIO_CLASS_BE","priority":8}"#);
    let err = apply_io_priority(Some(&p), &LinuxSyscall).unwrap_err();
    assert!(
        err.to_string().contains("priority 8 is out of range 0..7"),
        "{err}"
    );
    assert_eq!(
        check_io_priority(&p).unwrap_err().0,
        "process.ioPriority.priority"
    );
}

#[test]
fn personality_linux32_shows_i686() {
    let p: LinuxPersonality = from_json(r#"{"domain":"LINUX32","flags":[]}"#);
    in_child(|| {
        apply_personality(Some(&p), &LinuxSyscall).map_err(|e| e.to_string())?;
        // SAFETY: 0xffffffff only queries the current persona.
        let now = unsafe { libc::personality(0xffff_ffff) };
        expect("persona", now as libc::c_ulong & 0xff, PER_LINUX32)?;
        let machine = nix::sys::utsname::uname().map_err(|e| e.to_string())?;
        expect("uname -m", machine.machine().to_str(), Some("i686"))?;
        // And back.
        apply_personality(Some(&from_json(r#"{"domain":"LINUX"}"#)), &LinuxSyscall)
            .map_err(|e| e.to_string())?;
        let machine = nix::sys::utsname::uname().map_err(|e| e.to_string())?;
        expect("uname -m", machine.machine().to_str(), Some("x86_64"))
    })
    .unwrap();
}

fn get_mempolicy() -> Result<(libc::c_int, libc::c_ulong), String> {
    let mut mode: libc::c_int = -1;
    let mut mask: libc::c_ulong = 0;
    // SAFETY: the kernel writes one int to `mode` and maxnode - 1 = 64 bits to `mask`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            &mut mask as *mut libc::c_ulong,
            (WORD_BITS + 1) as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(r).map_err(|e| format!("get_mempolicy: {e}"))?;
    Ok((mode, mask))
}

#[test]
fn memory_policy_applied() {
    // This machine may have one NUMA node: node 0 is always there.
    for (json, want) in [
        (r#"{"mode":"MPOL_BIND","nodes":"0"}"#, (libc::MPOL_BIND, 1)),
        (
            r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#,
            (libc::MPOL_INTERLEAVE | libc::MPOL_F_STATIC_NODES, 1),
        ),
        (
            r#"{"mode":"MPOL_PREFERRED","nodes":"0"}"#,
            (libc::MPOL_PREFERRED, 1),
        ),
        (r#"{"mode":"MPOL_LOCAL"}"#, (libc::MPOL_LOCAL, 0)),
        (
            r#"{"mode":"MPOL_DEFAULT","nodes":""}"#,
            (libc::MPOL_DEFAULT, 0),
        ),
    ] {
        let p: LinuxMemoryPolicy = from_json(json);
        in_child(|| {
            apply_memory_policy(Some(&p), &LinuxSyscall).map_err(|e| e.to_string())?;
            expect(json, get_mempolicy()?, want)
        })
        .unwrap();
    }
}

#[test]
fn memory_policy_errors() {
    for (json, words) in [
        (
            r#"{"mode":"MPOL_BIND"}"#,
            "MPOL_BIND needs at least one node",
        ),
        (
            r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#,
            "MPOL_LOCAL takes no nodes",
        ),
        (
            r#"{"mode":"MPOL_BIND","nodes":"3-1"}"#,
            "range \"3-1\" is backwards",
        ),
        (
            r#"{"mode":"MPOL_BIND","nodes":"0,x"}"#,
            "\"x\" is not a node number",
        ),
        (
            r#"{"mode":"MPOL_BIND","nodes":"99999"}"#,
            "node 99999 is above",
        ),
        (
            r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
            "mutually exclusive",
        ),
    ] {
        let err = apply_memory_policy(Some(&from_json(json)), &LinuxSyscall).expect_err(json);
        assert!(err.to_string().contains(words), "{json}: {err}");
        assert_eq!(err.errno, None, "{json}");
    }
    // A node this machine does not have: the kernel's EINVAL, with the nodes named.
    let p: LinuxMemoryPolicy = from_json(r#"{"mode":"MPOL_BIND","nodes":"1000"}"#);
    let err = in_child(|| match apply_memory_policy(Some(&p), &LinuxSyscall) {
        Ok(()) => Ok(()),
        Err(e) => Err(e.to_string()),
    })
    .unwrap_err();
    assert!(
        err.contains("nodes \"1000\" with mode MPOL_BIND: invalid argument"),
        "{err}"
    );
}

#[test]
fn node_lists() {
    assert_eq!(parse_nodes("").unwrap(), Vec::<libc::c_ulong>::new());
    assert_eq!(parse_nodes("0-3,7").unwrap(), vec![0b1000_1111]);
    assert_eq!(parse_nodes(" 1 , 64-65").unwrap(), vec![0b10, 0b11]);
}

fn spec_with_linux(linux: &str) -> Spec {
    from_json(&format!(
        r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"args":["sh"]}},
            "linux":{linux}}}"#
    ))
}

#[test]
fn unsupported_features_are_refused() {
    check_unsupported(&spec_with_linux(r#"{"netDevices":{}}"#)).unwrap();
    check_unsupported(&spec_with_linux("{}")).unwrap();

    let err = check_unsupported(&spec_with_linux(r#"{"intelRdt":{"closID":"x"}}"#))
        .unwrap_err()
        .to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(2) == Some("resctrl"))
    {
        assert_eq!(err, "linux.intelRdt is not supported by hull");
    } else {
        assert_eq!(
            err,
            "invalid config linux.intelRdt: intelRdt requires a mounted resctrl filesystem"
        );
    }
}
