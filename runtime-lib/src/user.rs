//! process.user and linux.uidMappings/gidMappings.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{fstat, stat, Mode};
use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::{LinuxIdMapping, Spec, User};

use crate::error::{InitFailure, InitResult, InitStep};
use crate::proc_handle::{ProcError, ProcFs};
use crate::syscall::Syscall;
use crate::Result;

/// runc's umask when process.user.umask is not given.
pub const DEFAULT_UMASK: u32 = 0o022;

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

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
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

/// In the runtime: writes /proc/<pid>/uid_map and gid_map (and setgroups where needed) for an init
/// that has just entered a new user namespace.
pub fn write_id_mappings(pid: Pid, spec: &Spec) -> Result<()> {
    let (uid_maps, gid_maps) = id_mappings(spec);
    let dir = PathBuf::from(pid.to_string());
    let proc = ProcFs::open().map_err(|e| proc_error("open", PathBuf::from("/proc"), e))?;
    let write = |file: &str, text: &str, step: &'static str| {
        let rel = dir.join(file);
        proc.write(&rel, text.as_bytes())
            .map_err(|e| proc_error(step, Path::new("/proc").join(&rel), e))
    };
    let root = Uid::effective().is_root();
    let own = [
        ("uid_map", Uid::effective().as_raw()),
        ("gid_map", Gid::effective().as_raw()),
    ];
    // Without privileges the kernel takes one mapping of the writer's own id, and the gid one
    // only after setgroups(2) is given up; anything wider goes through the setuid helpers, which
    // check /etc/subuid and /etc/subgid (and leave setgroups allowed, as runc does).
    let helper = |file: &str, maps: &[LinuxIdMapping]| {
        let own_id = own
            .iter()
            .find(|(f, _)| *f == file)
            .map_or(0, |(_, id)| *id);
        !root && !crate::rootless::own_id_only(maps, own_id)
    };
    if !gid_maps.is_empty() && !root && !helper("gid_map", gid_maps) {
        write("setgroups", "deny", "write")?;
    }
    for (file, maps) in [("uid_map", uid_maps), ("gid_map", gid_maps)] {
        if maps.is_empty() {
            continue;
        }
        if helper(file, maps) {
            run_map_helper(file, pid, maps)?;
        } else {
            // Each map must be written whole in one write(2) (ProcFs::write makes exactly one).
            write(file, &map_text(maps), "write id mappings to")?;
        }
    }
    Ok(())
}

/// `newuidmap <pid> <container> <host> <size>...` (or newgidmap): the kernel accepts what the
/// setuid helper writes if /etc/subuid (subgid) gives the caller those host ids.
fn run_map_helper(file: &str, pid: Pid, maps: &[LinuxIdMapping]) -> Result<()> {
    let helper = crate::rootless::map_helper(file)?;
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = std::process::Command::new(&helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| crate::Error::Io {
            step: "run id-map helper",
            path: helper.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(crate::Error::InvalidConfig {
        field: if file == "uid_map" {
            "linux.uidMappings".into()
        } else {
            "linux.gidMappings".into()
        },
        problem: format!(
            "{} {} failed ({}): {}",
            helper.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

pub(crate) fn proc_error(step: &'static str, path: PathBuf, e: ProcError) -> crate::Error {
    match e {
        ProcError::Sys(source) => crate::Error::Sys {
            step,
            path: Some(path),
            source,
        },
        other => crate::Error::Io {
            step,
            path,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

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
    use crate::namespaces::testing::in_child;
    use crate::syscall::LinuxSyscall;
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{fork, pipe, read, write, ForkResult};
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, SpecBuilder, UserBuilder};

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

    fn mapping(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    fn spec_with_maps(uid: Vec<LinuxIdMapping>, gid: Vec<LinuxIdMapping>) -> Spec {
        SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .uid_mappings(uid)
                    .gid_mappings(gid)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn map_lines_are_container_host_size() {
        assert_eq!(
            map_text(&[mapping(0, 1000, 1), mapping(1, 100000, 65536)]),
            "0 1000 1\n1 100000 65536\n"
        );
    }

    #[test]
    fn write_id_mappings_maps_a_new_user_namespace() {
        // The child enters a new user namespace; we (its parent, as the runtime) write its maps.
        let (ready_rx, ready_tx) = pipe().unwrap();
        let (go_rx, go_tx) = pipe().unwrap();
        let (res_rx, res_tx) = pipe().unwrap();
        // SAFETY: the child only makes system calls and `_exit`s.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = unshare(CloneFlags::CLONE_NEWUSER).is_ok()
                    && write(&ready_tx, b"r").is_ok()
                    && read(&go_rx, &mut [0u8; 1]).is_ok();
                let ids = (Uid::current().as_raw(), Gid::current().as_raw());
                let out = format!("{ok} {} {}", ids.0, ids.1);
                let _ = write(&res_tx, out.as_bytes());
                // SAFETY: ends the child without the harness's exit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                read(&ready_rx, &mut [0u8; 1]).unwrap();
                let spec = spec_with_maps(vec![mapping(5, 0, 1)], vec![mapping(7, 0, 1)]);
                let written = write_id_mappings(child, &spec);
                // A map can be written only once: the second attempt fails and names the file.
                let again = write_id_mappings(child, &spec);
                write(&go_tx, b"g").unwrap();
                drop(res_tx);
                let mut buf = [0u8; 64];
                let n = read(&res_rx, &mut buf).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                written.unwrap();
                assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "true 5 7");
                let msg = again.unwrap_err().to_string();
                assert!(msg.contains(&format!("/proc/{child}/uid_map")), "{msg}");
            }
        }
    }

    #[test]
    fn write_id_mappings_names_the_file_of_a_missing_process() {
        let spec = spec_with_maps(vec![mapping(0, 0, 1)], vec![mapping(0, 0, 1)]);
        let msg = write_id_mappings(Pid::from_raw(i32::MAX), &spec)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("write id mappings to \"/proc/2147483647/uid_map\""),
            "{msg}"
        );
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
