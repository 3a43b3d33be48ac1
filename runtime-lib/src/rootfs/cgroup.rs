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
use procfs::process::Process;

use super::mounts::{Ctx, Entry, Kind};
use super::options::MountOptions;
use super::resolve::{self, Create};
use crate::cgroups::probe::{self, Host, Mode};
use crate::error::InitResult;

pub(super) fn mount(e: &Entry, cx: &Ctx<'_>) -> InitResult<()> {
    // With no cgroup hierarchy on the host (the probe fails) the destination is a bare tmpfs.
    let host = probe::host().ok();
    if host.is_some_and(|h| h.mode == Mode::V2) {
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
    mount_v1(e, cx, host)
}

/// One v1 hierarchy as the host mounts it, and the init's cgroup in it.
struct Hierarchy {
    /// Base name of the host's mount point: the directory name under the destination.
    name: String,
    /// The init's own cgroup directory on the host.
    source: PathBuf,
}

fn mount_v1(e: &Entry, cx: &Ctx<'_>, host: Option<&Host>) -> InitResult<()> {
    let hierarchies = v1_hierarchies(host).map_err(e.fail("read cgroup mounts"))?;
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

/// The host's v1 hierarchies (as the runtime probed them, so none inside the rootfs) with the
/// init's own cgroup in each: the container's, which the runtime never was in.
fn v1_hierarchies(host: Option<&Host>) -> nix::Result<Vec<Hierarchy>> {
    let Some(host) = host else {
        return Ok(Vec::new());
    };
    let me = Process::myself().map_err(|_| Errno::EIO)?;
    let own = probe::own_cgroups(&me).map_err(|_| Errno::EIO)?;
    let mut out = Vec::new();
    for (controller, h) in host.v1_mounts() {
        let Some(cgroup) = own.get(controller) else {
            continue;
        };
        let name = h
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Hierarchy {
            name,
            source: h.dir_of(cgroup),
        });
    }
    Ok(out)
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
    let unified = probe::host().ok().and_then(|h| h.unified.as_ref());
    let Some(mut source) = unified.map(|u| u.mount_point.clone()) else {
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
