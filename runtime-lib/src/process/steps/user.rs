//! process.user in the init: its ids, groups and umask, and HOME's default.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{fstat, stat, Mode};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::User;

use crate::error::{InitFailure, InitResult, InitStep};
use crate::syscall::Syscall;

/// runc's umask when process.user.umask is not given.
pub const DEFAULT_UMASK: u32 = 0o022;

/// What [`set_user`] needs, found (and the part of the user that needs no id change done) by
/// [`prepare`] before the seccomp filter is loaded: the profile need not allow any of it.
#[derive(Debug)]
pub struct Prepared {
    setgroups_denied: bool,
}

/// Before the seccomp filter (when `noNewPrivileges` is false it precedes the id change): as runc,
/// stdio is handed to the new uid (so the process can use its terminal), the umask set, and
/// whether setgroups(2) is denied in this user namespace read.
pub fn prepare(user: &User, sys: &dyn Syscall) -> InitResult<Prepared> {
    fix_stdio_owner(user.uid(), sys)?;
    sys.umask(Mode::from_bits_truncate(
        user.umask().unwrap_or(DEFAULT_UMASK),
    ));
    let setgroups_denied =
        std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    Ok(Prepared { setgroups_denied })
}

/// In the init: additionalGids, gid, uid (in that order, so setgroups still has the privilege).
///
/// The supplementary groups are exactly `additionalGids` (an empty list clears them), unless
/// setgroups(2) is denied in this user namespace and none were asked for. Each failure names the
/// system call: with `noNewPrivileges` false these run under the seccomp filter, which must allow
/// them (config-linux.md: the filter comes before the capabilities are dropped).
pub fn set_user(user: &User, prepared: &Prepared, sys: &dyn Syscall) -> InitResult<()> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    let denied = prepared.setgroups_denied;
    if !(denied && gids.is_empty()) {
        sys.setgroups(&gids).map_err(|e| {
            let f = InitFailure::sys(InitStep::User, "additionalGids", e);
            if denied {
                f.detail("setgroups is denied in this user namespace")
            } else {
                f.detail("setgroups")
            }
        })?;
    }
    sys.setresgid(Gid::from_raw(user.gid())).map_err(|e| {
        unmapped(
            InitFailure::sys(InitStep::User, format!("gid {}", user.gid()), e),
            e,
            "gid",
            "setresgid",
        )
    })?;
    sys.setresuid(Uid::from_raw(user.uid())).map_err(|e| {
        unmapped(
            InitFailure::sys(InitStep::User, format!("uid {}", user.uid()), e),
            e,
            "uid",
            "setresuid",
        )
    })?;
    Ok(())
}

fn unmapped(f: InitFailure, e: Errno, kind: &str, syscall: &str) -> InitFailure {
    if e == Errno::EINVAL {
        f.detail(format!(
            "{syscall}: {kind} is not mapped in the container's user namespace"
        ))
    } else {
        f.detail(syscall.to_string())
    }
}

/// runc's fixStdioPermissions: stdio not owned by `uid` (and not /dev/null) is chowned to it, keeping
/// its group. Refusals that mean "not ours to change" (EINVAL, EPERM, EROFS) leave it as it is.
fn fix_stdio_owner(uid: u32, sys: &dyn Syscall) -> InitResult<()> {
    let null = stat("/dev/null").map_err(|e| InitFailure::sys(InitStep::User, "/dev/null", e))?;
    for (fd, name) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        // SAFETY: 0, 1 and 2 stay open for the whole init; the borrow ends with this iteration.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let st = match fstat(fd.as_fd()) {
            Ok(st) => st,
            Err(Errno::EBADF) => continue,
            Err(e) => return Err(InitFailure::sys(InitStep::User, name, e)),
        };
        if st.st_uid == uid || st.st_rdev == null.st_rdev {
            continue;
        }
        match sys.fchown(fd, Uid::from_raw(uid)) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => {
                return Err(
                    InitFailure::sys(InitStep::User, name, e).detail("chown to the process's uid")
                )
            }
        }
    }
    Ok(())
}

/// The home directory of `uid` in the container's /etc/passwd (read after pivot_root), or "/" as
/// runc when there is none. For HOME, when process.env does not set it.
pub fn default_home(uid: u32) -> String {
    home_from_passwd(Path::new("/etc/passwd"), uid)
}

/// `default_home` over a given passwd file. The container's file is parsed here, never through
/// NSS: that would load the container's libraries into the runtime.
pub fn home_from_passwd(passwd: &Path, uid: u32) -> String {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2].parse::<u32>() == Ok(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::steps::testing::in_child;
    use crate::syscall::LinuxSyscall;
    use nix::sched::{unshare, CloneFlags};
    use oci_spec::runtime::UserBuilder;
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hull-user-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// set_user chowns stdio: in a test child, point it at /dev/null (which it leaves alone).
    fn quiet_stdio() -> std::result::Result<(), String> {
        let null = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| e.to_string())?;
        nix::unistd::dup2_stdin(&null).map_err(|e| e.to_string())?;
        nix::unistd::dup2_stdout(&null).map_err(|e| e.to_string())?;
        nix::unistd::dup2_stderr(&null).map_err(|e| e.to_string())
    }

    #[test]
    fn set_user_sets_ids_groups_umask_and_stdout_owner() {
        let dir = temp_dir("set");
        let out = dir.join("stdout");
        let out2 = out.clone();
        in_child(move || {
            // A file of ours as stdout, so the chown never reaches the harness's own stdio.
            let file = std::fs::File::create(&out2).map_err(|e| e.to_string())?;
            let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
            nix::unistd::dup2_stdin(&null).map_err(|e| e.to_string())?;
            nix::unistd::dup2_stdout(&file).map_err(|e| e.to_string())?;
            nix::unistd::dup2_stderr(&null).map_err(|e| e.to_string())?;
            let user = UserBuilder::default()
                .uid(1000u32)
                .gid(1001u32)
                .additional_gids(vec![5u32, 6])
                .umask(0o077u32)
                .build()
                .unwrap();
            set_user(
                &user,
                &prepare(&user, &LinuxSyscall).map_err(|e| e.to_string())?,
                &LinuxSyscall,
            )
            .map_err(|e| e.to_string())?;
            let u = nix::unistd::getresuid().map_err(|e| e.to_string())?;
            let g = nix::unistd::getresgid().map_err(|e| e.to_string())?;
            let groups = nix::unistd::getgroups().map_err(|e| e.to_string())?;
            let umask = nix::sys::stat::umask(Mode::empty());
            let owner = fstat(file.as_fd()).map_err(|e| e.to_string())?.st_uid;
            let got = format!(
                "{} {} {} {} {} {} {groups:?} {:o} {owner}",
                u.real,
                u.effective,
                u.saved,
                g.real,
                g.effective,
                g.saved,
                umask.bits()
            );
            let want = "1000 1000 1000 1001 1001 1001 [Gid(5), Gid(6)] 77 1000";
            if got != want {
                return Err(format!("got {got}, want {want}"));
            }
            Ok(())
        })
        .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn set_user_without_gids_clears_groups_and_defaults_the_umask() {
        in_child(|| {
            quiet_stdio()?;
            nix::unistd::setgroups(&[Gid::from_raw(9)]).map_err(|e| e.to_string())?;
            nix::sys::stat::umask(Mode::from_bits_truncate(0o000));
            let user = UserBuilder::default().uid(0u32).gid(0u32).build().unwrap();
            set_user(
                &user,
                &prepare(&user, &LinuxSyscall).map_err(|e| e.to_string())?,
                &LinuxSyscall,
            )
            .map_err(|e| e.to_string())?;
            let groups = nix::unistd::getgroups().map_err(|e| e.to_string())?;
            let umask = nix::sys::stat::umask(Mode::empty()).bits();
            if !groups.is_empty() || umask != 0o022 {
                return Err(format!("groups {groups:?}, umask {umask:o}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn an_unmapped_uid_is_explained() {
        in_child(|| {
            quiet_stdio()?;
            unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| e.to_string())?;
            // Only root is mapped (a process may map its own ids, after denying setgroups).
            for (file, text) in [
                ("setgroups", "deny"),
                ("gid_map", "0 0 1"),
                ("uid_map", "0 0 1"),
            ] {
                std::fs::write(format!("/proc/self/{file}"), text)
                    .map_err(|e| format!("{file}: {e}"))?;
            }
            let user = UserBuilder::default()
                .uid(1000u32)
                .gid(1000u32)
                .build()
                .unwrap();
            let err = set_user(&user, &prepare(&user, &LinuxSyscall).map_err(|e| e.to_string())?, &LinuxSyscall).expect_err("unmapped ids must fail");
            let msg = err.to_string();
            let want =
                "set user \"gid 1000\": setresgid: gid is not mapped in the container's user namespace: \
                        invalid argument";
            if msg != want {
                return Err(format!("unexpected message {msg:?}"));
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn home_comes_from_passwd_or_defaults_to_root() {
        let dir = temp_dir("passwd");
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\n# comment\nweb:x:33:33::/var/www:/bin/false\nnohome:x:44:44:::/bin/sh\n",
        )
        .unwrap();
        assert_eq!(home_from_passwd(&passwd, 0), "/root");
        assert_eq!(home_from_passwd(&passwd, 33), "/var/www");
        assert_eq!(home_from_passwd(&passwd, 44), "/");
        assert_eq!(home_from_passwd(&passwd, 1000), "/");
        assert_eq!(home_from_passwd(&dir.join("missing"), 0), "/");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
