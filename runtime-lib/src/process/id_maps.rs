//! linux.uidMappings and gidMappings, written by the runtime for an init that has just entered its
//! new user namespace: directly, or through the setuid newuidmap/newgidmap (a process this room
//! spawns) when unprivileged.

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::proc_handle::ProcFs;
use crate::Result;

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// In the runtime: writes /proc/<pid>/uid_map and gid_map (and setgroups where needed) for an init
/// that has just entered a new user namespace.
pub fn write_id_mappings(pid: Pid, spec: &Spec) -> Result<()> {
    let (uid_maps, gid_maps) = crate::plan::user::id_mappings(spec);
    let dir = PathBuf::from(pid.to_string());
    let proc = ProcFs::open().map_err(|e| e.host("open", PathBuf::from("/proc")))?;
    let write = |file: &str, text: &str, step: &'static str| {
        let rel = dir.join(file);
        proc.write(&rel, text.as_bytes())
            .map_err(|e| e.host(step, Path::new("/proc").join(&rel)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::{unshare, CloneFlags};
    use nix::unistd::{fork, pipe, read, write, ForkResult};
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, SpecBuilder};

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
}
