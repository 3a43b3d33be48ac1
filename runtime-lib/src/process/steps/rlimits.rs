//! process.rlimits, set by the init (or an exec'd process) on itself.

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, Resource};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;

/// The kernel resource of a spec rlimit type.
pub fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// In the init: setrlimit(2) for each entry, in config order.
pub fn apply(rlimits: &[PosixRlimit], sys: &dyn Syscall) -> InitResult<()> {
    for r in rlimits {
        let res = resource(r.typ());
        if let Err(e) = sys.setrlimit(res, r.soft(), r.hard()) {
            let mut f = InitFailure::sys(InitStep::Rlimits, r.typ(), e);
            // Say why when the reason is one of the two the kernel has.
            if r.soft() > r.hard() {
                f = f.detail(format!(
                    "soft limit {} is above hard limit {}",
                    r.soft(),
                    r.hard()
                ));
            } else if e == Errno::EPERM {
                if let Ok((_, hard)) = getrlimit(res) {
                    if r.hard() > hard {
                        f = f.detail(format!(
                            "raising the hard limit from {hard} to {} needs CAP_SYS_RESOURCE",
                            r.hard()
                        ));
                    }
                }
            }
            return Err(f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::steps::testing::in_child;
    use crate::syscall::LinuxSyscall;
    use nix::sys::resource::setrlimit;
    use oci_spec::runtime::PosixRlimitBuilder;

    fn rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
        PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
            .unwrap()
    }

    #[test]
    fn names_match_the_spec() {
        assert_eq!(PosixRlimitType::RlimitNofile.to_string(), "RLIMIT_NOFILE");
        let r: PosixRlimit =
            serde_json::from_str(r#"{"type":"RLIMIT_MSGQUEUE","soft":1,"hard":2}"#).unwrap();
        assert_eq!(resource(r.typ()), Resource::RLIMIT_MSGQUEUE);
        let err = serde_json::from_str::<PosixRlimit>(r#"{"type":"RLIMIT_FOO","soft":1,"hard":2}"#)
            .unwrap_err();
        assert!(err.to_string().contains("RLIMIT_FOO"), "{err}");
    }

    #[test]
    fn lowering_limits_works() {
        in_child(|| {
            apply(
                &[
                    rlimit(PosixRlimitType::RlimitNofile, 100, 200),
                    rlimit(PosixRlimitType::RlimitCore, 0, 0),
                ],
                &LinuxSyscall,
            )
            .map_err(|e| e.to_string())?;
            let got = (
                getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?,
                getrlimit(Resource::RLIMIT_CORE).map_err(|e| e.to_string())?,
            );
            if got != ((100, 200), (0, 0)) {
                return Err(format!("limits are {got:?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn raising_the_hard_limit_without_cap_sys_resource_is_explained() {
        in_child(|| {
            // Drop CAP_SYS_RESOURCE (absent on this host's bounding set, but make sure).
            let _ = caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            );
            setrlimit(Resource::RLIMIT_NOFILE, 50, 60).map_err(|e| e.to_string())?;
            let err = apply(
                &[rlimit(PosixRlimitType::RlimitNofile, 50, 70)],
                &LinuxSyscall,
            )
            .expect_err("raising the hard limit must fail");
            let msg = err.to_string();
            let want = "set rlimit \"RLIMIT_NOFILE\": raising the hard limit from 60 to 70 needs \
                        CAP_SYS_RESOURCE: operation not permitted";
            if msg != want {
                return Err(format!("message {msg:?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn soft_above_hard_is_explained() {
        in_child(|| {
            let err = apply(
                &[rlimit(PosixRlimitType::RlimitNofile, 70, 60)],
                &LinuxSyscall,
            )
            .expect_err("soft above hard must fail");
            if err.errno != Some(libc::EINVAL)
                || err.detail.as_deref() != Some("soft limit 70 is above hard limit 60")
            {
                return Err(format!("unexpected failure {err:?}"));
            }
            Ok(())
        })
        .unwrap();
    }
}
