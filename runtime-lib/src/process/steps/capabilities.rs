//! process.capabilities in the init: the five sets, applied with the `caps` crate.
//!
//! As runc: no `capabilities` object means every set empty; a capability the running kernel does
//! not know is left out (runc warns "ignoring unknown or unavailable capabilities", see
//! [`crate::plan::capabilities::warnings`]); an ambient capability that is not both permitted and
//! inheritable is not raised (the kernel refuses it, runc ignores the refusal, and `runc spec`'s
//! default config asks for three such); any other set that cannot be had is an error naming the
//! set and capability.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{InitFailure, InitResult, InitStep};
use crate::plan::capabilities::{set_of, sorted, supported};

/// The five sets of a `process.capabilities`, each reduced to what the kernel knows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Sets {
    pub fn new(caps: Option<&LinuxCapabilities>, supported: &CapsHashSet) -> Sets {
        let Some(c) = caps else {
            return Sets::default();
        };
        Sets {
            bounding: set_of(c.bounding().as_ref(), supported),
            effective: set_of(c.effective().as_ref(), supported),
            permitted: set_of(c.permitted().as_ref(), supported),
            inheritable: set_of(c.inheritable().as_ref(), supported),
            ambient: set_of(c.ambient().as_ref(), supported),
        }
    }
}

/// A failure of one set and capability; `caps` errors carry the errno only in their text.
/// `call` names the system call: with `noNewPrivileges` false a seccomp profile must allow those
/// after the user change, and its refusal should say which one.
fn failure(set: &str, cap: Option<Cap>, call: &str, err: caps::errors::CapsError) -> InitFailure {
    let text = err.to_string();
    let errno = text
        .rsplit_once("(os error ")
        .and_then(|(_, n)| n.trim_end_matches(')').parse::<i32>().ok());
    let f = InitFailure::new(InitStep::Capabilities).subject(match cap {
        Some(c) => format!("{set} {c}"),
        None => set.to_string(),
    });
    match errno {
        Some(n) => f.detail(call).errno(nix::errno::Errno::from_raw(n)),
        None => f.detail(format!("{call}: {text}")),
    }
}

fn refused(set: &str, cap: Cap, why: &str) -> InitFailure {
    InitFailure::new(InitStep::Capabilities)
        .subject(format!("{set} {cap}"))
        .detail(why)
        .errno(nix::errno::Errno::EPERM)
}

/// What [`apply`] needs from the kernel, read by [`prepare`]: with `noNewPrivileges` false the
/// seccomp filter is loaded between the two, and the profile need not allow these reads.
#[derive(Debug)]
pub struct Prepared {
    sets: Sets,
    bounding: CapsHashSet,
}

#[cfg(test)]
impl Prepared {
    /// What a recorded `drop_bounding_set` hands on: the sets asked for, a full bounding set.
    pub(crate) fn recorded(caps: Option<&LinuxCapabilities>) -> Prepared {
        let supported = supported();
        Prepared {
            sets: Sets::new(caps, &supported),
            bounding: supported,
        }
    }
}

/// Before changing uid: keep the permitted set across setuid, and shrink the bounding set (which needs
/// CAP_SETPCAP, so it must happen while the init is still root). Runs before the seccomp filter, so
/// the profile need not allow it (the filter only needs CAP_SYS_ADMIN in the effective set, which
/// the bounding set does not touch).
pub fn prepare(caps: Option<&LinuxCapabilities>) -> InitResult<Prepared> {
    let supported = supported();
    let sets = Sets::new(caps, &supported);
    for cap in sorted(&supported) {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| failure("bounding", Some(cap), "prctl(PR_CAPBSET_DROP)", e))?;
        }
    }
    caps::securebits::set_keepcaps(true)
        .map_err(|e| failure("keepcaps", None, "prctl(PR_SET_KEEPCAPS)", e))?;
    let bounding = caps::read(None, CapSet::Bounding)
        .map_err(|e| failure("bounding", None, "prctl(PR_CAPBSET_READ)", e))?;
    Ok(Prepared { sets, bounding })
}

/// After changing uid: set effective, permitted, inheritable, then ambient.
pub fn apply(prepared: &Prepared) -> InitResult<()> {
    let Prepared { sets, bounding } = prepared;
    caps::securebits::set_keepcaps(false)
        .map_err(|e| failure("keepcaps", None, "prctl(PR_SET_KEEPCAPS)", e))?;

    // The kernel refuses the whole capset(2) without saying which capability; name it first.
    let read =
        |set: CapSet, name| caps::read(None, set).map_err(|e| failure(name, None, "capget", e));
    let held = read(CapSet::Permitted, "permitted")?;
    let inherited = read(CapSet::Inheritable, "inheritable")?;
    for cap in sorted(&sets.permitted) {
        if !held.contains(&cap) {
            return Err(refused("permitted", cap, "not held by the runtime"));
        }
    }
    for cap in sorted(&sets.effective) {
        if !sets.permitted.contains(&cap) {
            return Err(refused("effective", cap, "not in the permitted set"));
        }
    }
    for cap in sorted(&sets.inheritable) {
        if !bounding.contains(&cap) && !inherited.contains(&cap) {
            return Err(refused("inheritable", cap, "not in the bounding set"));
        }
    }

    // Each call changes one set; this order keeps every intermediate state valid (effective is
    // always within permitted, inheritable is set while permitted is still full).
    caps::set(None, CapSet::Inheritable, &sets.inheritable)
        .map_err(|e| failure("inheritable", None, "capset", e))?;
    caps::set(None, CapSet::Effective, &sets.effective)
        .map_err(|e| failure("effective", None, "capset", e))?;
    caps::set(None, CapSet::Permitted, &sets.permitted)
        .map_err(|e| failure("permitted", None, "capset", e))?;

    if let Err(e) = caps::clear(None, CapSet::Ambient) {
        // A kernel without ambient capabilities (before 4.3) is fine when none are asked for.
        if !sets.ambient.is_empty() {
            return Err(failure("ambient", None, "prctl(PR_CAP_AMBIENT)", e));
        }
    }
    for cap in sorted(&sets.ambient) {
        if sets.permitted.contains(&cap) && sets.inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| failure("ambient", Some(cap), "prctl(PR_CAP_AMBIENT)", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::steps::testing::in_child;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};

    fn caps_json(json: &str) -> LinuxCapabilities {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sets_keep_only_supported_capabilities() {
        let c = caps_json(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"ambient":["CAP_BPF"]}"#,
        );
        let supported: CapsHashSet = [Cap::CAP_CHOWN, Cap::CAP_KILL].into_iter().collect();
        let sets = Sets::new(Some(&c), &supported);
        assert_eq!(sets.bounding, supported);
        assert_eq!(sets.effective, [Cap::CAP_KILL].into_iter().collect());
        assert!(sets.permitted.is_empty() && sets.inheritable.is_empty());
        assert!(
            sets.ambient.is_empty(),
            "CAP_BPF is unknown to this 'kernel'"
        );
        assert_eq!(Sets::new(None, &supported), Sets::default());
    }

    fn status() -> Result<procfs::process::Status, String> {
        procfs::process::Process::myself()
            .and_then(|p| p.status())
            .map_err(|e| e.to_string())
    }

    fn mask(caps: &[Cap]) -> u64 {
        caps.iter().map(|c| c.bitmask()).sum()
    }

    #[test]
    fn prepare_setuid_apply_gives_exactly_the_sets() {
        use Cap::*;
        in_child(|| {
            let c = LinuxCapabilitiesBuilder::default()
                .bounding([
                    Capability::Chown,
                    Capability::Kill,
                    Capability::NetBindService,
                ])
                .effective([Capability::Kill, Capability::NetBindService])
                .permitted([
                    Capability::Chown,
                    Capability::Kill,
                    Capability::NetBindService,
                ])
                .inheritable([Capability::NetBindService])
                .ambient([Capability::NetBindService])
                .build()
                .unwrap();
            let prepared = prepare(Some(&c)).map_err(|e| e.to_string())?;
            // What user::set_user does in between: without keepcaps this would empty permitted.
            let id = nix::unistd::Uid::from_raw(1000);
            nix::unistd::setresgid(1000.into(), 1000.into(), 1000.into())
                .map_err(|e| e.to_string())?;
            nix::unistd::setresuid(id, id, id).map_err(|e| e.to_string())?;
            apply(&prepared).map_err(|e| e.to_string())?;
            let s = status()?;
            let want = [
                (
                    "bounding",
                    s.capbnd.unwrap_or(0),
                    mask(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE]),
                ),
                (
                    "effective",
                    s.capeff,
                    mask(&[CAP_KILL, CAP_NET_BIND_SERVICE]),
                ),
                (
                    "permitted",
                    s.capprm,
                    mask(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE]),
                ),
                ("inheritable", s.capinh, mask(&[CAP_NET_BIND_SERVICE])),
                (
                    "ambient",
                    s.capamb.unwrap_or(0),
                    mask(&[CAP_NET_BIND_SERVICE]),
                ),
            ];
            for (name, got, want) in want {
                if got != want {
                    return Err(format!("{name}: {got:#x}, want {want:#x}"));
                }
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn no_capabilities_object_empties_every_set() {
        in_child(|| {
            let prepared = prepare(None).map_err(|e| e.to_string())?;
            apply(&prepared).map_err(|e| e.to_string())?;
            let s = status()?;
            let all = [
                s.capbnd.unwrap_or(1),
                s.capeff,
                s.capprm,
                s.capinh,
                s.capamb.unwrap_or(1),
            ];
            if all != [0; 5] {
                return Err(format!("sets not empty: {all:x?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_permitted_capability_not_held_is_named() {
        in_child(|| {
            // Give CAP_SYS_BOOT up first, so asking for it back must fail.
            caps::drop(None, CapSet::Effective, Cap::CAP_SYS_BOOT).map_err(|e| e.to_string())?;
            caps::drop(None, CapSet::Permitted, Cap::CAP_SYS_BOOT).map_err(|e| e.to_string())?;
            let c = LinuxCapabilitiesBuilder::default()
                .bounding([Capability::SysBoot, Capability::Kill])
                .permitted([Capability::SysBoot, Capability::Kill])
                .build()
                .unwrap();
            let prepared = prepare(Some(&c)).map_err(|e| e.to_string())?;
            let err = apply(&prepared).expect_err("CAP_SYS_BOOT is not held");
            let msg = err.to_string();
            if msg != "set capabilities \"permitted CAP_SYS_BOOT\": not held by the runtime: operation not permitted" {
                return Err(format!("unexpected message {msg:?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn effective_outside_permitted_is_named() {
        in_child(|| {
            let c = caps_json(r#"{"effective":["CAP_KILL"],"permitted":["CAP_CHOWN"]}"#);
            let prepared = Prepared {
                sets: Sets::new(Some(&c), &supported()),
                bounding: supported(),
            };
            let err = apply(&prepared).expect_err("effective must be within permitted");
            if err.subject.as_deref() != Some("effective CAP_KILL")
                || err.errno != Some(libc::EPERM)
            {
                return Err(format!("unexpected failure {err:?}"));
            }
            Ok(())
        })
        .unwrap();
    }
}
