//! linux.namespaces on the host: which to create, which to join (by `path`, opened and checked
//! before the init exists).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::Context;
use crate::{Error, Result};
/// Why hull refuses what config-linux.md allows: a container without its own mount namespace.
pub const MOUNT_NAMESPACE_REQUIRED: &str = "a mount namespace is required: without one, the \
    container's mounts would be made in the runtime's mount namespace and outlive the container, \
    and its root would be a chroot, which CAP_SYS_CHROOT can leave (a deliberate deviation from \
    the spec, listed in hull's README)";

/// The namespaces of one container, resolved in the runtime before the init exists.
#[derive(Debug)]
pub struct NamespacePlan {
    /// Namespaces to create, as clone(2) flags (CLONE_NEWTIME never appears here: see `time`).
    pub clone_flags: CloneFlags,
    /// Namespaces to join by path, already opened and checked to be of the right type, user first.
    /// The pid namespace is not here: see `pid_path`.
    pub joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// A pid namespace to join: the runtime enters it for its children before cloning the init.
    pub pid_path: Option<OwnedFd>,
    /// A new time namespace is requested (offsets from linux.timeOffsets).
    pub time: bool,
}

// NS_GET_NSTYPE from <linux/nsfs.h>: _IO(0xb7, 0x3); returns the namespace's CLONE_NEW* flag.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// The spec's name of a namespace type (`network`, `mount`: oci-spec's Display says `net`, `mnt`).
pub fn type_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The setns(2)/clone(2) flag of a namespace type (nix has no CLONE_NEWTIME constant).
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

fn type_of_flag(flag: i32) -> Option<LinuxNamespaceType> {
    use LinuxNamespaceType::*;
    [Mount, Cgroup, Uts, Ipc, User, Pid, Network, Time]
        .into_iter()
        .find(|t| clone_flag(*t).bits() == flag)
}

/// Opens `linux.namespaces[index].path` and checks it is a namespace of type `typ`.
pub fn open_namespace(index: usize, typ: LinuxNamespaceType, path: &Path) -> Result<OwnedFd> {
    let invalid = |problem: String| Error::InvalidConfig {
        field: format!("linux.namespaces[{index}].path"),
        problem,
    };
    let name = type_name(typ);
    if !path.is_absolute() {
        return Err(invalid(format!("{path:?} is not an absolute path")));
    }
    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| invalid(format!("open {path:?}: {}", e.desc().to_lowercase())))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the namespace `fd` refers to; the fd
    // is valid for the duration of the call.
    match unsafe { ns_get_nstype(fd.as_raw_fd()) } {
        Ok(flag) if flag == clone_flag(typ).bits() => Ok(fd),
        Ok(flag) => Err(invalid(format!(
            "{path:?} is not a {name} namespace (it is a{} namespace)",
            type_of_flag(flag)
                .map(|t| format!(" {}", type_name(t)))
                .unwrap_or_else(|| "n unknown".to_string())
        ))),
        Err(_) => Err(invalid(format!(
            "{path:?} is not a {name} namespace (not a namespace file)"
        ))),
    }
}

impl NamespacePlan {
    /// Every check of linux.namespaces that needs no side effect: no duplicate type, a mount
    /// namespace present, and every `path` absolute and a namespace of its entry's type.
    pub fn from_spec(spec: &Spec) -> Result<NamespacePlan> {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default();
        let mut plan = NamespacePlan {
            clone_flags: CloneFlags::empty(),
            joins: Vec::new(),
            pid_path: None,
            time: false,
        };
        let mut seen: Vec<LinuxNamespaceType> = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            let typ = ns.typ();
            if let Some(first) = seen.iter().position(|t| *t == typ) {
                return Err(Error::InvalidConfig {
                    field: format!("linux.namespaces[{i}]"),
                    problem: format!(
                        "duplicate namespace type {:?} (also linux.namespaces[{first}])",
                        type_name(typ)
                    ),
                });
            }
            seen.push(typ);
            match (ns.path(), typ) {
                (None, LinuxNamespaceType::Time) => plan.time = true,
                (None, _) => plan.clone_flags |= clone_flag(typ),
                (Some(path), LinuxNamespaceType::Pid) => {
                    plan.pid_path = Some(open_namespace(i, typ, path)?)
                }
                (Some(path), _) => plan.joins.push((typ, open_namespace(i, typ, path)?)),
            }
        }
        if !seen.contains(&LinuxNamespaceType::Mount) {
            // A deliberate deviation from config-linux.md (README, "Deviations"): runc and crun
            // run such a config by making every mount in the runtime's own namespace, where they
            // stay after delete, and by chroot instead of pivot_root, which a process holding
            // CAP_SYS_CHROOT (in Docker's default set) can leave.
            return Err(Error::InvalidConfig {
                field: "linux.namespaces".to_string(),
                problem: MOUNT_NAMESPACE_REQUIRED.to_string(),
            });
        }
        // A stable sort: the user namespace first, the rest in config order.
        plan.joins
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        Ok(plan)
    }
}

/// The inode of a process's pid namespace (`/proc/<pid>/ns/pid`), to tell which processes share
/// a container's pid namespace.
pub fn pid_namespace_inode(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/pid");
    std::fs::metadata(&path)
        .io("read pid namespace of", path)
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, SpecBuilder};

    fn spec(namespaces: &[(LinuxNamespaceType, Option<&str>)]) -> Spec {
        let ns = namespaces
            .iter()
            .map(|(t, p)| {
                let b = LinuxNamespaceBuilder::default().typ(*t);
                match p {
                    Some(p) => b.path(*p).build().unwrap(),
                    None => b.build().unwrap(),
                }
            })
            .collect::<Vec<_>>();
        SpecBuilder::default()
            .linux(LinuxBuilder::default().namespaces(ns).build().unwrap())
            .build()
            .unwrap()
    }

    fn invalid(err: Error) -> (String, String) {
        match err {
            Error::InvalidConfig { field, problem } => (field, problem),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    use LinuxNamespaceType::*;

    #[test]
    fn new_namespaces_become_clone_flags() {
        let plan = NamespacePlan::from_spec(&spec(&[
            (Pid, None),
            (Network, None),
            (Mount, None),
            (Ipc, None),
            (Uts, None),
            (User, None),
            (Cgroup, None),
            (Time, None),
        ]))
        .unwrap();
        assert_eq!(
            plan.clone_flags,
            CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWUSER
                | CloneFlags::CLONE_NEWCGROUP
        );
        assert!(plan.time);
        assert!(plan.joins.is_empty() && plan.pid_path.is_none());
    }

    #[test]
    fn paths_are_opened_checked_and_ordered_user_first() {
        let plan = NamespacePlan::from_spec(&spec(&[
            (Mount, None),
            (Network, Some("/proc/self/ns/net")),
            (Pid, Some("/proc/self/ns/pid")),
            (User, Some("/proc/self/ns/user")),
            (Ipc, Some("/proc/self/ns/ipc")),
        ]))
        .unwrap();
        assert_eq!(plan.clone_flags, CloneFlags::CLONE_NEWNS);
        let order: Vec<_> = plan.joins.iter().map(|(t, _)| *t).collect();
        assert_eq!(order, vec![User, Network, Ipc]);
        let pid_fd = plan.pid_path.as_ref().expect("pid path is kept apart");
        // SAFETY: NS_GET_NSTYPE only reads the namespace the valid fd refers to.
        let t = unsafe { ns_get_nstype(pid_fd.as_raw_fd()) }.unwrap();
        assert_eq!(t, libc::CLONE_NEWPID);
    }

    #[test]
    fn a_path_of_another_type_is_refused() {
        let err = NamespacePlan::from_spec(&spec(&[
            (Mount, None),
            (Network, Some("/proc/self/ns/uts")),
        ]))
        .unwrap_err();
        let (field, problem) = invalid(err);
        assert_eq!(field, "linux.namespaces[1].path");
        assert_eq!(
            problem,
            "\"/proc/self/ns/uts\" is not a network namespace (it is a uts namespace)"
        );
    }

    #[test]
    fn a_file_that_is_no_namespace_is_refused() {
        let (field, problem) = invalid(
            NamespacePlan::from_spec(&spec(&[(Mount, None), (Ipc, Some("/proc/self/status"))]))
                .unwrap_err(),
        );
        assert_eq!(field, "linux.namespaces[1].path");
        assert!(
            problem.contains("is not a ipc namespace (not a namespace file)"),
            "{problem}"
        );
    }

    #[test]
    fn a_missing_or_relative_path_is_refused() {
        let (field, problem) = invalid(
            NamespacePlan::from_spec(&spec(&[(Mount, None), (Uts, Some("/nonexistent/hull-ns"))]))
                .unwrap_err(),
        );
        assert_eq!(field, "linux.namespaces[1].path");
        assert_eq!(
            problem,
            "open \"/nonexistent/hull-ns\": no such file or directory"
        );

        let (field, problem) = invalid(
            NamespacePlan::from_spec(&spec(&[(Mount, None), (Uts, Some("proc/self/ns/uts"))]))
                .unwrap_err(),
        );
        assert_eq!(field, "linux.namespaces[1].path");
        assert!(problem.contains("not an absolute path"), "{problem}");
    }

    #[test]
    fn duplicates_and_a_missing_mount_namespace_are_refused() {
        let (field, problem) = invalid(
            NamespacePlan::from_spec(&spec(&[(Mount, None), (Ipc, None), (Ipc, None)]))
                .unwrap_err(),
        );
        assert_eq!(field, "linux.namespaces[2]");
        assert_eq!(
            problem,
            "duplicate namespace type \"ipc\" (also linux.namespaces[1])"
        );

        let (field, problem) =
            invalid(NamespacePlan::from_spec(&spec(&[(Pid, None)])).unwrap_err());
        assert_eq!(field, "linux.namespaces");
        assert_eq!(problem, MOUNT_NAMESPACE_REQUIRED);
    }

    #[test]
    fn pid_namespace_inode_matches_proc() {
        let me = pid_namespace_inode(nix::unistd::Pid::this()).unwrap();
        let meta = std::fs::metadata("/proc/self/ns/pid").unwrap();
        assert_eq!(me, meta.ino());
        let err = pid_namespace_inode(nix::unistd::Pid::from_raw(i32::MAX)).unwrap_err();
        assert!(err.to_string().contains("/proc/2147483647/ns/pid"), "{err}");
    }
}
