//! linux.sysctl in the init, written through the container's /proc/sys after pivot_root (a key's
//! file is found as `crate::plan::sysctl` reads keys).

use std::collections::HashMap;

use crate::error::{InitFailure, InitResult, InitStep};
use crate::plan::sysctl::proc_path;
use crate::syscall::Syscall;

/// In the init, after pivot_root: writes every key (in key order, so a failure is reproducible).
pub fn apply(sysctl: &HashMap<String, String>, sys: &dyn Syscall) -> InitResult<()> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let path = proc_path(key).ok_or_else(|| {
            InitFailure::new(InitStep::Sysctl)
                .subject(key)
                .detail("invalid key: it must name a file under /proc/sys")
        })?;
        sys.write_file(&path, sysctl[key].as_bytes())
            .map_err(|e| e.init(InitStep::Sysctl, key))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::steps::testing::in_child;
    use crate::syscall::LinuxSyscall;
    use nix::sched::{unshare, CloneFlags};

    #[test]
    fn apply_writes_namespaced_sysctls() {
        // A private net and ipc namespace, so the host's values are never touched.
        in_child(|| {
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC)
                .map_err(|e| format!("unshare: {e}"))?;
            let sysctl = HashMap::from([
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                ("net/ipv4/tcp_syncookies".to_string(), "0".to_string()),
                ("kernel.shmmni".to_string(), "1234".to_string()),
            ]);
            apply(&sysctl, &LinuxSyscall).map_err(|e| e.to_string())?;
            for (file, want) in [
                ("/proc/sys/net/ipv4/ip_forward", "1"),
                ("/proc/sys/net/ipv4/tcp_syncookies", "0"),
                ("/proc/sys/kernel/shmmni", "1234"),
            ] {
                let got = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
                if got.trim() != want {
                    return Err(format!("{file} is {got:?}, want {want}"));
                }
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn apply_names_the_failing_key() {
        in_child(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
            let sysctl = HashMap::from([("net.ipv4.no_such_key".to_string(), "1".to_string())]);
            let err = apply(&sysctl, &LinuxSyscall).expect_err("a missing key must fail");
            if err.step != InitStep::Sysctl
                || err.subject.as_deref() != Some("net.ipv4.no_such_key")
                || err.errno != Some(libc::ENOENT)
            {
                return Err(format!("unexpected failure {err:?}"));
            }
            let msg = err.to_string();
            if msg != "set sysctl \"net.ipv4.no_such_key\": no such file or directory" {
                return Err(format!("unexpected message {msg:?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn apply_refuses_traversal_without_writing() {
        // Refused before any write, so this needs no namespace.
        let sysctl = HashMap::from([("net/../../kernel/x".to_string(), "1".to_string())]);
        let err = apply(&sysctl, &LinuxSyscall).unwrap_err();
        assert_eq!(err.subject.as_deref(), Some("net/../../kernel/x"));
        assert!(err.to_string().contains("invalid key"), "{err}");
    }
}

#[cfg(test)]
mod seam_tests {
    use super::*;
    use crate::syscall::recorder::Recorder;
    use nix::errno::Errno;

    #[test]
    fn keys_written_in_order_and_the_failing_one_named() {
        let sysctl: HashMap<String, String> = [
            ("net.ipv4.ip_forward", "1"),
            ("kernel.shmmax", "4096"),
            ("net/core/somaxconn", "512"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rec = Recorder::default();
        apply(&sysctl, &rec).unwrap();
        assert_eq!(
            rec.calls(),
            [
                "write /proc/sys/kernel/shmmax 4096",
                "write /proc/sys/net/ipv4/ip_forward 1",
                "write /proc/sys/net/core/somaxconn 512",
            ]
        );
        let rec = Recorder::failing(vec![("write /proc/sys/net/ipv4", Errno::EROFS)]);
        let err = apply(&sysctl, &rec).unwrap_err();
        assert_eq!(rec.calls().len(), 2, "stops at the failing key");
        assert_eq!(err.subject.as_deref(), Some("net.ipv4.ip_forward"));
        assert_eq!(err.errno, Some(Errno::EROFS as i32));
    }
}
