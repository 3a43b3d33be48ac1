//! linux.namespaces: which to create, which to join (by `path`), and the order that works.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;
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

    /// In the init: joins every `joins` entry.
    ///
    /// As runc: first every namespace but the user one (the host's privileges may be lost once in
    /// a user namespace), then the user namespace, then whatever was refused with EPERM before
    /// (those may need the privileges the user namespace gives).
    pub fn join(&self, sys: &dyn Syscall) -> InitResult<()> {
        let mut joined = vec![false; self.joins.len()];
        let mut try_join = |pick: &dyn Fn(LinuxNamespaceType) -> bool, last: bool| {
            for (i, (typ, fd)) in self.joins.iter().enumerate() {
                if joined[i] || !pick(*typ) {
                    continue;
                }
                match sys.setns(fd.as_fd(), clone_flag(*typ)) {
                    Ok(()) => joined[i] = true,
                    Err(Errno::EPERM) if !last => {}
                    Err(e) => {
                        return Err(InitFailure::sys(
                            InitStep::JoinNamespace,
                            type_name(*typ),
                            e,
                        ))
                    }
                }
            }
            Ok(())
        };
        try_join(&|t| t != LinuxNamespaceType::User, false)?;
        try_join(&|t| t == LinuxNamespaceType::User, true)?;
        try_join(&|_| true, true)
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

/// Forked-child test support, shared by this crate's modules whose tests change process state.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{Read, Write};

    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe, ForkResult};

    /// Runs `f` in a forked child; its `Err` text (or panic message) comes back as the `Err`.
    pub(crate) fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let (rx, tx) = pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: the child only runs `f` and then `_exit`s; the test harness's other threads
        // are not used by it (glibc keeps malloc usable after fork).
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(rx);
                let out =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
                        Err(p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".to_string()))
                    });
                let code = match out {
                    Ok(()) => 0,
                    Err(msg) => {
                        let _ = std::fs::File::from(tx).write_all(msg.as_bytes());
                        1
                    }
                };
                // SAFETY: ends the child without running the harness's exit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(tx);
                let mut msg = String::new();
                let _ = std::fs::File::from(rx).read_to_string(&mut msg);
                match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    WaitStatus::Exited(_, c) => Err(format!("child exited {c}: {msg}")),
                    other => Err(format!("child ended with {other:?}: {msg}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::in_child;
    use super::*;
    use crate::syscall::LinuxSyscall;
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
    fn join_enters_the_namespaces() {
        in_child(|| {
            // Make a second uts namespace with a known hostname, kept alive by an fd.
            nix::sched::unshare(CloneFlags::CLONE_NEWUTS).map_err(|e| e.to_string())?;
            nix::unistd::sethostname("hull-join-test").map_err(|e| e.to_string())?;
            let target = format!("/proc/{}/ns/uts", std::process::id());
            let plan = NamespacePlan {
                clone_flags: CloneFlags::empty(),
                joins: vec![(
                    Uts,
                    open_namespace(0, Uts, Path::new(&target)).map_err(|e| e.to_string())?,
                )],
                pid_path: None,
                time: false,
            };
            // Back into a fresh uts namespace, then join the first one by its fd.
            nix::sched::unshare(CloneFlags::CLONE_NEWUTS).map_err(|e| e.to_string())?;
            nix::unistd::sethostname("elsewhere").map_err(|e| e.to_string())?;
            plan.join(&LinuxSyscall).map_err(|e| e.to_string())?;
            let name = nix::unistd::gethostname().map_err(|e| e.to_string())?;
            match name.to_str() {
                Some("hull-join-test") => Ok(()),
                other => Err(format!("hostname after join: {other:?}")),
            }
        })
        .unwrap();
    }

    #[test]
    fn join_failure_names_the_type() {
        in_child(|| {
            // A user namespace cannot be joined by a process that shares its fs (CLONE_FS)... but
            // the simplest refusal is joining our own user namespace: EINVAL.
            let fd = open_namespace(0, User, Path::new("/proc/self/ns/user"))
                .map_err(|e| e.to_string())?;
            let plan = NamespacePlan {
                clone_flags: CloneFlags::empty(),
                joins: vec![(User, fd)],
                pid_path: None,
                time: false,
            };
            let err = plan
                .join(&LinuxSyscall)
                .expect_err("joining our own user namespace fails");
            if err.step != InitStep::JoinNamespace || err.subject.as_deref() != Some("user") {
                return Err(format!("unexpected failure {err:?}"));
            }
            Ok(())
        })
        .unwrap();
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

/// The join order through the `Syscall` seam: no privileges, no real namespaces entered.
#[cfg(test)]
mod seam_tests {
    use super::*;
    use crate::syscall::recorder::Recorder;
    use nix::errno::Errno;

    fn plan(types: &[LinuxNamespaceType]) -> NamespacePlan {
        let joins = types
            .iter()
            .map(|t| {
                let fd = nix::fcntl::open(
                    "/dev/null",
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .unwrap();
                (*t, fd)
            })
            .collect();
        NamespacePlan {
            clone_flags: CloneFlags::empty(),
            joins,
            pid_path: None,
            time: false,
        }
    }

    fn kinds(calls: &[String]) -> Vec<&str> {
        calls
            .iter()
            .map(|c| c.rsplit(' ').next().unwrap_or_default())
            .collect()
    }

    #[test]
    fn user_namespace_is_joined_after_the_others_and_eperm_retried_after_it() {
        use LinuxNamespaceType::*;
        let p = plan(&[User, Network, Mount]);
        // The mount namespace belongs to the container's user namespace: refused before it.
        let rec = Recorder::failing(vec![]);
        p.join(&rec).unwrap();
        assert_eq!(
            kinds(&rec.calls()),
            [
                "CloneFlags(CLONE_NEWNET)",
                "CloneFlags(CLONE_NEWNS)",
                "CloneFlags(CLONE_NEWUSER)"
            ]
        );
        let rec = Recorder::failing(vec![("setns", Errno::EPERM)]);
        let err = p.join(&rec).unwrap_err();
        // Every namespace was tried before the user one, then the user one failed for good.
        assert_eq!(
            kinds(&rec.calls()),
            [
                "CloneFlags(CLONE_NEWNET)",
                "CloneFlags(CLONE_NEWNS)",
                "CloneFlags(CLONE_NEWUSER)"
            ]
        );
        assert_eq!(err.step, InitStep::JoinNamespace);
        assert_eq!(err.subject.as_deref(), Some("user"));
    }
}
