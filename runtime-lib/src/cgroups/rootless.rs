//! Placement of a rootless container's cgroup, as runc's cgroupfs drivers do it: every hierarchy
//! where the user cannot make the container's directory is left out (a debug log line says so),
//! unless `linux.cgroupsPath` asks for a place explicitly; a resource the config sets that needs
//! a hierarchy left out is an error naming the field, checked before anything is made. A
//! delegated cgroup2 subtree (systemd's user@.service, or one chowned to the user) is writable,
//! so there the container gets its cgroup and its limits as root's would.

use std::path::Path;

use nix::unistd::{access, AccessFlags};
use oci_spec::runtime::LinuxResources;

use super::{blkio, cpu, memory, network, pids, CgroupPaths, Dir, Mode};
use crate::error::{Error, Result};

/// Drops from `paths` every hierarchy this user cannot place the container in. `explicit`: the
/// config names `linux.cgroupsPath`, which is then an error instead (runc ignores permission
/// errors only for its default path).
pub fn prune(paths: &mut CgroupPaths, explicit: bool, resources: &LinuxResources) -> Result<()> {
    let mut dropped = Vec::new();
    for (controller, dir) in &paths.v1 {
        if !writable(dir) {
            dropped.push((controller.clone(), dir.path.clone()));
        }
    }
    let unified_dropped = paths.unified.as_ref().filter(|d| !writable(d)).cloned();
    if explicit {
        if let Some(path) = dropped
            .iter()
            .map(|(_, p)| p.clone())
            .chain(unified_dropped.as_ref().map(|d| d.path.clone()))
            .next()
        {
            return Err(Error::InvalidConfig {
                field: "linux.cgroupsPath".into(),
                problem: format!(
                    "rootless: cgroup {path:?} cannot be made or joined by this user (not \
                     delegated to it)"
                ),
            });
        }
    }
    for (controller, path) in &dropped {
        log::debug!("rootless: cgroup {path:?} is not writable, {controller} left out");
        paths.v1.remove(controller);
    }
    if let Some(d) = unified_dropped {
        log::debug!("rootless: cgroup {:?} is not writable, left out", d.path);
        paths.unified = None;
        paths.unified_controllers.clear();
    }
    if paths.mode == Mode::V2 && paths.unified.is_some() {
        return Ok(());
    }
    for (controller, field) in needed(resources) {
        let v2_name = if controller == "blkio" {
            "io"
        } else {
            controller
        };
        let served = paths.v1.contains_key(controller)
            || (paths.unified.is_some() && paths.unified_controllers.iter().any(|c| c == v2_name));
        if !served {
            return Err(Error::InvalidConfig {
                field: format!("linux.resources.{field}"),
                problem: format!(
                    "cannot set {controller} limit: rootless, and the container could not join or \
                     create a {controller} cgroup (no writable, delegated cgroup for this user)"
                ),
            });
        }
    }
    if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) && paths.unified.is_none() {
        return Err(Error::InvalidConfig {
            field: "linux.resources.unified".into(),
            problem: "rootless, and the container could not join or create a cgroup2 cgroup (no \
                      writable, delegated cgroup for this user)"
                .into(),
        });
    }
    Ok(())
}

/// The (controller, field) pairs `r` sets, as the managers' `set` reads them; device rules are
/// not among them (rootless containers get none written).
pub(super) fn needed(r: &LinuxResources) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if let Some(c) = r.cpu() {
        if cpu::needs_cpuset(c) {
            out.push(("cpuset", "cpu"));
        }
        if cpu::needs_cpu(c) {
            out.push(("cpu", "cpu"));
        }
    }
    if r.memory().as_ref().is_some_and(memory::needs) {
        out.push(("memory", "memory"));
    }
    if r.pids().as_ref().is_some_and(pids::needs) {
        out.push(("pids", "pids"));
    }
    if r.block_io().as_ref().is_some_and(blkio::needs) {
        out.push(("blkio", "blockIO"));
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push(("hugetlb", "hugepageLimits"));
    }
    if let Some(n) = r.network() {
        if network::needs_cls(n) {
            out.push(("net_cls", "network.classID"));
        }
        if network::needs_prio(n) {
            out.push(("net_prio", "network.priorities"));
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        out.push(("rdma", "rdma"));
    }
    out
}

/// The user can make `dir` (write and search its nearest existing ancestor inside the
/// hierarchy) and move processes into it (write its cgroup.procs, once it exists).
fn writable(dir: &Dir) -> bool {
    let mut cur: &Path = &dir.path;
    loop {
        if cur.exists() {
            if cur == dir.path {
                return access(&cur.join("cgroup.procs"), AccessFlags::W_OK).is_ok();
            }
            return access(cur, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
        }
        match cur.parent() {
            Some(p) if p.starts_with(&dir.mount) => cur = p,
            _ => return false,
        }
    }
}
