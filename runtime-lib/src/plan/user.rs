//! process.user on the host: ids the kernel would not take as given are refused before anything
//! is made.

use oci_spec::runtime::{LinuxIdMapping, Spec, User};

use crate::Result;

/// The largest id a process may be given: the kernel's ids are unsigned, but setresuid(2) and its
/// kin take -1 (4294967295) to mean "leave unchanged", so such an id would keep the process root.
/// runc refuses everything above `i32::MAX` for the same reason.
const MAX_ID: u32 = i32::MAX as u32;

/// Refuses ids the kernel would not take as given (see [`MAX_ID`]); `field` is where `user` sits in
/// the config (`process.user`).
pub fn validate(user: &User, field: &str) -> Result<()> {
    let ids = [("uid", user.uid()), ("gid", user.gid())]
        .into_iter()
        .map(|(name, id)| (name.to_string(), id))
        .chain(
            user.additional_gids()
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, id)| (format!("additionalGids[{i}]"), *id)),
        );
    for (name, id) in ids {
        if id > MAX_ID {
            return Err(crate::Error::InvalidConfig {
                field: format!("{field}.{name}"),
                problem: format!("{id} is out of range (at most {MAX_ID})"),
            });
        }
    }
    Ok(())
}

/// `linux.uidMappings` and `linux.gidMappings`, empty when absent.
pub(crate) fn id_mappings(spec: &Spec) -> (&[LinuxIdMapping], &[LinuxIdMapping]) {
    let linux = spec.linux().as_ref();
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or_default();
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or_default();
    (uid_maps, gid_maps)
}
