//! process.capabilities on the host: the capabilities the running kernel knows, a spec set as
//! the `caps` crate's, and runc's warnings about what the container will not get.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

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
pub fn supported() -> CapsHashSet {
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

pub fn sorted(set: &CapsHashSet) -> Vec<Cap> {
    let mut v: Vec<Cap> = set.iter().copied().collect();
    v.sort_by_key(|c| c.index());
    v
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
}
