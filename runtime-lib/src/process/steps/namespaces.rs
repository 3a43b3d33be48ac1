//! linux.namespaces in the init: joining those given by `path`, in the order that works (the plan
//! of what to create and join is made on the host: `crate::plan::namespaces`).

use std::os::fd::AsFd;

use nix::errno::Errno;
use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{InitFailure, InitResult, InitStep};
use crate::plan::namespaces::{clone_flag, type_name, NamespacePlan};
use crate::syscall::Syscall;

impl NamespacePlan {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nix::sched::CloneFlags;
    use oci_spec::runtime::LinuxNamespaceType::{User, Uts};

    use super::*;
    use crate::plan::namespaces::open_namespace;
    use crate::process::steps::testing::in_child;
    use crate::syscall::LinuxSyscall;

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
}

/// The join order through the `Syscall` seam: no privileges, no real namespaces entered.
#[cfg(test)]
mod seam_tests {
    use super::*;
    use crate::plan::namespaces::NamespacePlan;
    use crate::syscall::recorder::Recorder;
    use nix::errno::Errno;
    use nix::sched::CloneFlags;

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
