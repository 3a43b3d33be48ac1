//! process.capabilities: the five sets, applied with the `caps` crate.
//!
//! As runc: no `capabilities` object means every set empty; a capability the running kernel does
//! not know is left out (runc warns "ignoring unknown or unavailable capabilities", see
//! [`warnings`]); an ambient capability that is not both permitted and inheritable is not raised
//! (the kernel refuses it, runc ignores the refusal, and `runc spec`'s default config asks for three
//! such); any other set that cannot be had is an error naming the set and capability.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{InitFailure, InitResult, InitStep};

/// The kernel capability of a spec capability (both enums name the same capabilities(7) list).
pub fn to_kernel(cap: Capability) -> Option<Cap> {
    format!("CAP_{cap}").parse().ok()
}

/// The capabilities of one spec set that are in `supported`, as a `caps` set.
pub fn set_of(list: Option<&Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
    list.into_iter()
        .flatten()
        .filter_map(|c| to_kernel(*c))
        .filter(|c| supported.contains(c))
        .collect()
}

/// The capabilities the running kernel knows (PR_CAPBSET_READ: needs no /proc).
///
/// The kernel knows every capability up to its last one: a binary search for that finds it in
/// six reads, where asking about each (the caps crate's `thread_all_supported`) took 41, and the
/// runtime and the init each ask several times per container.
fn supported() -> CapsHashSet {
    let mut all: Vec<Cap> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    let known = |c: &Cap| caps::has_cap(None, CapSet::Bounding, *c).is_ok();
    // The first index the kernel does not know, between lo (known) and hi (unknown).
    let (mut lo, mut hi) = (0usize, all.len());
    if all.first().is_none_or(|c| !known(c)) {
        return CapsHashSet::new();
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if known(&all[mid]) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    all.into_iter().take(hi).collect()
}

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

fn sorted(set: &CapsHashSet) -> Vec<Cap> {
    let mut v: Vec<Cap> = set.iter().copied().collect();
    v.sort_by_key(|c| c.index());
    v
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

/// What the runtime should log before creating the container, in runc's words: capabilities the
/// running kernel does not know (they are left out). Ambient capabilities that are not both permitted
/// and inheritable are not reported: runc's own default spec asks for such, and runc says nothing.
///
/// Also the bounding capabilities the runtime itself does not have (a host or an engine that
/// keeps some out of its own bounding set): the container cannot get them, and config.md says the
/// runtime must log that rather than fail.
pub fn warnings(caps: Option<&LinuxCapabilities>) -> Vec<String> {
    if caps.is_none() {
        return Vec::new();
    }
    let supported = supported();
    let mut out = warnings_for(caps, &supported);
    if let Ok(own) = caps::read(None, CapSet::Bounding) {
        out.extend(missing_from_bounding(caps, &supported, &own));
    }
    out
}

/// config bounding capabilities the kernel knows but `own` (the runtime's bounding set) lacks.
fn missing_from_bounding(
    caps: Option<&LinuxCapabilities>,
    supported: &CapsHashSet,
    own: &CapsHashSet,
) -> Option<String> {
    let wanted = set_of(caps.and_then(|c| c.bounding().as_ref()), supported);
    let missing: Vec<String> = sorted(&wanted)
        .into_iter()
        .filter(|c| !own.contains(c))
        .map(|c| c.to_string())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "process.capabilities.bounding: the runtime's own bounding set lacks [{}]: the \
             container will not have them",
            missing.join(" ")
        )
    })
}

/// `warnings` against a given set of kernel-supported capabilities.
pub fn warnings_for(caps: Option<&LinuxCapabilities>, supported: &CapsHashSet) -> Vec<String> {
    let Some(c) = caps else {
        return Vec::new();
    };
    let mut unknown: Vec<String> = [
        c.bounding(),
        c.effective(),
        c.permitted(),
        c.inheritable(),
        c.ambient(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter(|cap| !to_kernel(**cap).is_some_and(|k| supported.contains(&k)))
    .map(|cap| format!("CAP_{cap}"))
    .collect();
    unknown.sort();
    unknown.dedup();
    if unknown.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "ignoring unknown or unavailable capabilities: [{}]",
        unknown.join(" ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespaces::testing::in_child;
    use oci_spec::runtime::LinuxCapabilitiesBuilder;

    #[test]
    fn supported_is_what_the_kernel_knows() {
        assert_eq!(super::supported(), caps::runtime::thread_all_supported());
    }

    fn caps_json(json: &str) -> LinuxCapabilities {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_kernel_capability_maps_both_ways() {
        for k in caps::all() {
            let spec: Capability = serde_json::from_str(&format!("\"{k}\"")).unwrap();
            assert_eq!(to_kernel(spec), Some(k), "{k}");
        }
        assert_eq!(to_kernel(Capability::SysAdmin), Some(Cap::CAP_SYS_ADMIN));
    }

    #[test]
    fn an_unknown_name_fails_to_parse_and_names_it() {
        let err =
            serde_json::from_str::<LinuxCapabilities>(r#"{"bounding":["CAP_CHOWN","CAP_FOO"]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("CAP_FOO"), "{err}");
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

    #[test]
    fn bounding_capabilities_the_runtime_lacks_are_named() {
        let caps = caps_json(r#"{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_KILL"]}"#);
        let supported: CapsHashSet = [Cap::CAP_CHOWN, Cap::CAP_SYS_RESOURCE, Cap::CAP_KILL]
            .into_iter()
            .collect();
        let own: CapsHashSet = [Cap::CAP_CHOWN, Cap::CAP_KILL].into_iter().collect();
        let w = missing_from_bounding(Some(&caps), &supported, &own).unwrap();
        assert!(w.contains("[CAP_SYS_RESOURCE]"), "{w}");
        assert_eq!(
            missing_from_bounding(Some(&caps), &supported, &supported),
            None
        );
    }

    #[test]
    fn warnings_name_capabilities_the_kernel_lacks_in_runc_words() {
        let c = caps_json(
            r#"{"bounding":["CAP_CHOWN","CAP_BPF"],"ambient":["CAP_KILL","CAP_BPF"],"permitted":["CAP_KILL"]}"#,
        );
        let supported: CapsHashSet = [Cap::CAP_CHOWN, Cap::CAP_KILL].into_iter().collect();
        assert_eq!(
            warnings_for(Some(&c), &supported),
            vec!["ignoring unknown or unavailable capabilities: [CAP_BPF]"]
        );
        // Ambient capabilities that cannot be raised are not reported, as runc.
        assert!(warnings_for(Some(&c), &caps::all()).is_empty());
        assert!(warnings(None).is_empty());
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
