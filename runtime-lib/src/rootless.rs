//! Rootless: hull run by a user without privileges on the host (runc's definition of it), or by
//! root of a user namespace that does not map the whole id range.
//!
//! What changes then, as in runc: the container's cgroup is placed only where the user may write
//! (a delegated cgroup2 subtree); a hierarchy that is not writable is skipped, but a resource
//! that needs it is an error naming the field; device rules are
//! not written (the user namespace already keeps device nodes out of reach); id maps with more
//! than the caller's own id go through the setuid `newuidmap`/`newgidmap` helpers.
//!
//! [`crate::CreateOptions::new`] resolves [`Rootless::Auto`] for the calling process; a program
//! that takes runc's `--rootless` flag sets [`crate::CreateOptions::rootless`] from
//! [`Rootless::parse`].
//!
//! ```no_run
//! use hull::rootless::{default_root, Rootless};
//!
//! let mut opts = hull::CreateOptions::new(default_root(), "/srv/bundle");
//! opts.rootless = Rootless::parse("auto").unwrap_or_default().resolve();
//! ```

use std::path::PathBuf;

use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};

/// `--rootless`: runc's `true`, `false` or `auto` (the default).
///
/// ```
/// use hull::rootless::Rootless;
///
/// assert_eq!(Rootless::parse("true"), Some(Rootless::Yes));
/// assert!(!Rootless::No.resolve());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rootless {
    /// Rootless when the caller is not root, or is root of a user namespace.
    #[default]
    Auto,
    /// Always rootless.
    Yes,
    /// Never rootless.
    No,
}

impl Rootless {
    /// runc's reading: "auto", or what Go's strconv.ParseBool takes; `None` for anything else.
    ///
    /// ```
    /// use hull::rootless::Rootless;
    ///
    /// assert_eq!(Rootless::parse("auto"), Some(Rootless::Auto));
    /// assert_eq!(Rootless::parse("F"), Some(Rootless::No));
    /// assert_eq!(Rootless::parse("maybe"), None);
    /// ```
    pub fn parse(value: &str) -> Option<Rootless> {
        match value {
            "auto" => Some(Rootless::Auto),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(Rootless::Yes),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(Rootless::No),
            _ => None,
        }
    }

    /// Whether this process is to be treated as rootless. `Auto`, as runc's cgroupfs driver
    /// decides it: not root, or root inside a user namespace (whose owner may not own the
    /// host's cgroups).
    ///
    /// ```
    /// use hull::rootless::Rootless;
    ///
    /// let not_root = !nix::unistd::Uid::effective().is_root();
    /// assert_eq!(Rootless::Auto.resolve(), not_root || hull::rootless::in_user_namespace());
    /// ```
    pub fn resolve(self) -> bool {
        match self {
            Rootless::Yes => true,
            Rootless::No => false,
            Rootless::Auto => !Uid::effective().is_root() || in_user_namespace(),
        }
    }
}

/// True unless this process's user namespace maps the whole id range onto itself (the initial
/// one), read as runc reads it from /proc/self/uid_map.
///
/// ```
/// if hull::rootless::in_user_namespace() {
///     println!("in a user namespace: cgroups may not be ours to write");
/// }
/// ```
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_identity_map(&map),
        // No user namespaces in this kernel: the initial namespace is the only one.
        Err(_) => false,
    }
}

fn is_identity_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(&lines[..], [only] if only[..] == ["0", "0", "4294967295"])
}

/// The state root when `--root` is not given, as runc chooses its own: `$XDG_RUNTIME_DIR/hull`
/// for a user that is not root (or root of a user namespace, unless `$USER` is `root`), else
/// `/run/hull`.
///
/// ```
/// let root = hull::rootless::default_root();
/// assert!(root.ends_with("hull"));
/// ```
pub fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    match xdg {
        Some(dir) if honor_xdg_runtime_dir() => PathBuf::from(dir).join("hull"),
        _ => PathBuf::from(crate::state::DEFAULT_ROOT),
    }
}

fn honor_xdg_runtime_dir() -> bool {
    if !Uid::effective().is_root() {
        return true;
    }
    if !in_user_namespace() {
        // Real root keeps /run/hull even with XDG_RUNTIME_DIR=/run/user/0, as runc does.
        return false;
    }
    std::env::var("USER").map_or(true, |u| u != "root")
}

/// A mapping the kernel lets an unprivileged writer make itself: exactly one range, of size 1,
/// onto the writer's own effective id. Anything else needs `newuidmap`/`newgidmap`.
pub(crate) fn own_id_only(maps: &[oci_spec::runtime::LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

/// The helper that writes `file` (`uid_map` or `gid_map`) for an unprivileged caller: its path,
/// found in `$PATH` as runc finds it.
pub(crate) fn map_helper(file: &str) -> Result<PathBuf> {
    let (name, field) = match file {
        "uid_map" => ("newuidmap", "linux.uidMappings"),
        _ => ("newgidmap", "linux.gidMappings"),
    };
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::InvalidConfig {
            field: field.into(),
            problem: format!(
                "mapping more than the caller's own id needs {name} (package uidmap) and a range \
                 in /etc/sub{}id, and {name} is not in $PATH",
                if file == "uid_map" { "u" } else { "g" }
            ),
        })
}

/// Checks made before anything exists, for a caller that is not root: what runc's rootless
/// validation refuses, and the id-map helpers a mapping needs.
pub(crate) fn check(spec: &oci_spec::runtime::Spec) -> Result<()> {
    if Uid::effective().is_root() {
        return Ok(());
    }
    let linux = spec.linux().as_ref();
    let new_user_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        });
    if !new_user_ns {
        return Err(Error::InvalidConfig {
            field: "linux.namespaces".into(),
            problem: "a rootless container needs a user namespace (hull spec --rootless has one)"
                .into(),
        });
    }
    let (uid_maps, gid_maps) = crate::plan::user::id_mappings(spec);
    if !uid_maps.is_empty() && !own_id_only(uid_maps, Uid::effective().as_raw()) {
        map_helper("uid_map")?;
    }
    if !gid_maps.is_empty() && !own_id_only(gid_maps, Gid::effective().as_raw()) {
        map_helper("gid_map")?;
    }
    check_mounts(spec)?;
    check_devices(spec)
}

/// Filesystems the kernel lets the root of a user namespace mount (FS_USERNS_MOUNT), with the
/// namespace each needs to own besides the mount namespace, if any.
const USERNS_MOUNTABLE: &[(&str, Option<oci_spec::runtime::LinuxNamespaceType>)] = {
    use oci_spec::runtime::LinuxNamespaceType as T;
    &[
        ("proc", Some(T::Pid)),
        ("sysfs", Some(T::Network)),
        ("mqueue", Some(T::Ipc)),
        ("tmpfs", None),
        ("ramfs", None),
        ("devpts", None),
        // Without a cgroup namespace these are binds of the host's hierarchies (see
        // rootfs::cgroup), which the user namespace may make.
        ("cgroup", None),
        ("cgroup2", None),
        ("overlay", None),
        ("fuse", None),
        ("binfmt_misc", None),
    ]
};

/// A mount the user namespace cannot make (a block-device filesystem, NFS...), or a pseudo
/// filesystem whose namespace the container does not own (sysfs without a network namespace),
/// fails with EPERM in the init; said here, before anything is made, naming the mount.
fn check_mounts(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let own: Vec<oci_spec::runtime::LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| {
            ns.iter()
                .filter(|n| n.path().is_none())
                .map(|n| n.typ())
                .collect()
        })
        .unwrap_or_default();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let bind = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
        let typ = m.typ().as_deref().unwrap_or("");
        if bind || typ.is_empty() || typ == "bind" || typ == "none" {
            continue;
        }
        let problem = match USERNS_MOUNTABLE.iter().find(|(t, _)| *t == typ) {
            None => format!(
                "rootless: a {typ:?} filesystem cannot be mounted without privileges on the host \
                 (only bind mounts and {})",
                USERNS_MOUNTABLE
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some((_, Some(ns))) if !own.contains(ns) => format!(
                "rootless: {typ} can be mounted only in a {} namespace of the container's own \
                 (bind-mount it instead, as `hull spec --rootless` does for /sys)",
                crate::plan::namespaces::type_name(*ns)
            ),
            Some(_) => continue,
        };
        return Err(Error::InvalidConfig {
            field: format!("mounts[{i}] ({})", m.destination().display()),
            problem,
        });
    }
    Ok(())
}

/// No mknod in a user namespace: each device the config lists is the host's node at the same
/// path, bind-mounted (as runc does). It must be there, and be the device the config names.
fn check_devices(spec: &oci_spec::runtime::Spec) -> Result<()> {
    use oci_spec::runtime::LinuxDeviceType as D;
    let devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    for (i, d) in devices.into_iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}] ({})", d.path().display());
        let host = match nix::sys::stat::stat(d.path()) {
            Ok(st) => st,
            Err(e) => {
                return Err(Error::InvalidConfig {
                    field,
                    problem: format!(
                        "rootless: a device node cannot be made without privileges, and the \
                 host's {} to bind-mount instead is not there ({})",
                        d.path().display(),
                        e.desc().to_lowercase()
                    ),
                })
            }
        };
        let kind = host.st_mode & libc::S_IFMT;
        let want = match d.typ() {
            D::C | D::U => libc::S_IFCHR,
            D::B => libc::S_IFBLK,
            D::P => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let rdev = nix::sys::stat::makedev(d.major() as u64, d.minor() as u64);
        if kind != want || (want != libc::S_IFIFO && host.st_rdev != rdev) {
            return Err(Error::InvalidConfig {
                field,
                problem: format!(
                    "rootless: a device node cannot be made without privileges, and the host's \
                     {} that would be bind-mounted instead is not device {}:{}",
                    d.path().display(),
                    d.major(),
                    d.minor()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_identity_map_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("0 1000 1\n"));
        assert!(!is_identity_map("0 0 4294967295\n1 1 1\n"));
        assert!(!is_identity_map("0 0 65536\n"));
    }

    #[test]
    fn rootless_values_are_runcs() {
        assert_eq!(Rootless::parse("auto"), Some(Rootless::Auto));
        assert_eq!(Rootless::parse("T"), Some(Rootless::Yes));
        assert_eq!(Rootless::parse("False"), Some(Rootless::No));
        for v in ["yes", "", "AUTO"] {
            assert_eq!(Rootless::parse(v), None, "{v}");
        }
    }
}
