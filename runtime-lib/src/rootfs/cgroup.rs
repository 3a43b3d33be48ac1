//! `"type": "cgroup"` mounts, laid out as runc lays them out.
//!
//! On a cgroup v1 (or hybrid) host: a tmpfs at the destination, and in it one directory per v1
//! hierarchy (named after the host's mount point: `cpu`, `memory`, `systemd`...) bind-mounting the
//! init's own cgroup of that hierarchy, read-only when the mount says `ro`; with a cgroup namespace
//! each hierarchy is mounted afresh instead. Co-mounted controllers (`cpu,cpuacct`) get a symlink
//! per controller. On a cgroup v2 host: cgroup2, or a bind of the host's when the kernel refuses.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::LinuxNamespaceType;
use procfs::process::{MountInfo, Process};

use super::mounts::{Ctx, Entry, Kind};
use super::options::MountOptions;
use super::resolve::{self, Create};
use crate::error::InitResult;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub(super) fn mount(e: &Entry, cx: &Ctx<'_>) -> InitResult<()> {
    let unified = nix::sys::statfs::statfs(CGROUP_ROOT)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if unified {
        let v2 = Entry {
            dest: e.dest.clone(),
            source: e.source.clone(),
            fstype: "cgroup2".into(),
            kind: Kind::Other,
            opts: e.opts.clone(),
            index: None,
        };
        return v2.mount(cx);
    }
    mount_v1(e, cx)
}

/// One v1 hierarchy as the host mounts it, and the init's cgroup in it.
struct Hierarchy {
    /// Base name of the host's mount point: the directory name under the destination.
    name: String,
    /// The init's own cgroup directory on the host.
    source: PathBuf,
}

fn mount_v1(e: &Entry, cx: &Ctx<'_>) -> InitResult<()> {
    let hierarchies = v1_hierarchies(cx.root.path()).map_err(e.fail("read cgroup mounts"))?;
    let tmpfs = Entry {
        dest: e.dest.clone(),
        source: Some("tmpfs".into()),
        fstype: "tmpfs".into(),
        kind: Kind::Tmpfs,
        opts: MountOptions {
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            propagation: e.opts.propagation.clone(),
            data: "mode=755".into(),
            ..MountOptions::default()
        },
        index: None,
    };
    tmpfs.mount(cx)?;
    let cgroupns = has_cgroupns(cx);
    for h in &hierarchies {
        let dest = e.dest.join(&h.name);
        let sub = if cgroupns {
            // In its own cgroup namespace the container sees its cgroup as the root.
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            flags |= e.opts.flags & MsFlags::MS_RDONLY;
            let (source, data) = match h.name.as_str() {
                "systemd" => ("systemd", "name=systemd".to_string()),
                _ => ("cgroup", h.name.clone()),
            };
            Entry {
                dest,
                source: Some(source.into()),
                fstype: "cgroup".into(),
                kind: Kind::Other,
                opts: MountOptions {
                    flags,
                    data,
                    ..MountOptions::default()
                },
                index: None,
            }
        } else {
            Entry {
                dest,
                source: Some(h.source.clone()),
                fstype: "bind".into(),
                kind: Kind::Bind,
                opts: MountOptions {
                    flags: MsFlags::MS_BIND | MsFlags::MS_REC | e.opts.flags,
                    propagation: e.opts.propagation.clone(),
                    ..MountOptions::default()
                },
                index: None,
            }
        };
        sub.mount(cx)?;
    }
    let dir = e.dest_fd(cx, Create::Nothing)?;
    for h in hierarchies.iter().filter(|h| h.name.contains(',')) {
        for controller in h.name.split(',') {
            let link = resolve::fd_path(&dir).join(controller);
            match cx.sys.symlink(Path::new(&h.name), &link) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(err) => return Err(e.fail(&format!("symlink {controller}"))(err)),
            }
        }
    }
    Ok(())
}

/// The host's v1 hierarchies (first mount of each, none inside the rootfs) with the init's cgroup.
fn v1_hierarchies(rootfs: &Path) -> nix::Result<Vec<Hierarchy>> {
    let me = Process::myself().map_err(|_| Errno::EIO)?;
    let mounts = me.mountinfo().map_err(|_| Errno::EIO)?;
    let cgroups = me.cgroups().map_err(|_| Errno::EIO)?;
    let mut out: Vec<Hierarchy> = Vec::new();
    let mut seen = Vec::new();
    for m in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        if m.mount_point.starts_with(rootfs) {
            continue;
        }
        let Some(cg) = cgroups
            .0
            .iter()
            .find(|cg| cg.hierarchy != 0 && serves(m, &cg.controllers))
        else {
            continue;
        };
        if seen.contains(&cg.hierarchy) {
            continue;
        }
        seen.push(cg.hierarchy);
        let rel = Path::new(&cg.pathname)
            .strip_prefix(&m.root)
            .unwrap_or(Path::new(&cg.pathname));
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let name = m
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Hierarchy {
            name,
            source: m.mount_point.join(rel),
        });
    }
    Ok(out)
}

/// Whether the v1 mount `m` is the hierarchy of `controllers` (a /proc/self/cgroup line).
fn serves(m: &MountInfo, controllers: &[String]) -> bool {
    !controllers.is_empty()
        && controllers.iter().all(|c| match c.strip_prefix("name=") {
            Some(name) => m
                .super_options
                .get("name")
                .is_some_and(|v| v.as_deref() == Some(name)),
            None => m.super_options.contains_key(c),
        })
}

fn has_cgroupns(cx: &Ctx<'_>) -> bool {
    cx.spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup))
}

/// When the kernel refuses a cgroup2 mount (a user namespace without its own cgroup namespace),
/// bind the host's cgroup2 instead: its root, or with a cgroup namespace the init's own cgroup.
pub(super) fn bind_host_cgroup2(e: &Entry, cx: &Ctx<'_>, err: Errno) -> InitResult<()> {
    let Some(mut source) = host_cgroup2(cx.root.path()) else {
        return Err(e.fail("mount")(err));
    };
    if has_cgroupns(cx) {
        let own = Process::myself()
            .and_then(|p| p.cgroups())
            .ok()
            .and_then(|c| c.0.into_iter().find(|c| c.hierarchy == 0));
        if let Some(own) = own {
            source.push(own.pathname.trim_start_matches('/'));
        }
    }
    let bind = Entry {
        dest: e.dest.clone(),
        source: Some(source),
        fstype: "bind".into(),
        kind: Kind::Bind,
        opts: MountOptions {
            flags: MsFlags::MS_BIND | e.opts.flags,
            propagation: Vec::new(), // the caller applies them
            ..MountOptions::default()
        },
        index: None,
    };
    bind.mount(cx)
}

fn host_cgroup2(rootfs: &Path) -> Option<PathBuf> {
    let mounts = Process::myself().and_then(|p| p.mountinfo()).ok()?;
    let m = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup2" && !m.mount_point.starts_with(rootfs))?;
    Some(m.mount_point.clone())
}
