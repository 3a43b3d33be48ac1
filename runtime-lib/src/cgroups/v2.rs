//! The cgroup v2 manager: one directory in the unified hierarchy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::probe::{Hierarchy, Host, Mode};
use super::{
    blkio, cpu, devices_v2, freezer, fs, hugetlb, memory, network, pids, rdma, stats, unified,
};
use super::{CgroupPaths, Dir, FreezerState, Manager, OomWatcher, Stats};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct V2 {
    paths: CgroupPaths,
}

impl V2 {
    pub(super) fn new(host: &Host, inner: &Path) -> Result<V2> {
        let h = host.unified.as_ref().ok_or_else(|| Error::Unsupported {
            feature: "cgroup v2 without a cgroup2 mount".into(),
        })?;
        Ok(V2::at(h, &host.own_dir("", h), inner))
    }

    /// The manager for `inner` in the cgroup2 hierarchy `h`. A relative path is taken from the
    /// parent of `own` (the runtime's cgroup), as runc does: the runtime's own cgroup has processes,
    /// so no controller could be enabled below it.
    pub fn at(h: &Hierarchy, own: &Path, inner: &Path) -> V2 {
        let path = if inner.is_absolute() {
            h.mount_point.join(inner.strip_prefix("/").unwrap_or(inner))
        } else {
            let base = if own == h.mount_point {
                own
            } else {
                own.parent().unwrap_or(own)
            };
            base.join(inner)
        };
        V2 {
            paths: CgroupPaths {
                mode: Mode::V2,
                v1: Default::default(),
                unified: Some(Dir {
                    path,
                    mount: h.mount_point.clone(),
                }),
                unified_controllers: Vec::new(),
                created: Vec::new(),
                systemd: None,
            },
        }
    }

    pub(super) fn load(paths: CgroupPaths) -> V2 {
        V2 { paths }
    }

    fn dir(&self) -> &Dir {
        self.paths
            .unified
            .as_ref()
            .expect("a v2 manager has its directory")
    }

    fn path(&self) -> &Path {
        &self.dir().path
    }

    fn create_inner(&mut self, r: Option<&LinuxResources>) -> Result<()> {
        let Dir { path, mount } = self.dir().clone();
        let available = fs::read(&mount, "cgroup.controllers")?;
        let enable: Vec<String> = available
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        let rel = path
            .strip_prefix(&mount)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut chain = vec![mount.clone()];
        let mut cur = mount.clone();
        for c in rel.components() {
            cur.push(c);
            chain.push(cur.clone());
        }
        let domain = r.is_some_and(needs_domain_controllers);
        for (i, dir) in chain.iter().enumerate() {
            if i > 0 {
                fs::mkdir_all(&mount, dir, &mut self.paths.created)?;
                check_type(dir, domain)?;
            }
            if i + 1 < chain.len() && !enable.is_empty() {
                // All at once, or one by one when some cannot be enabled here (runc does the same
                // and leaves the rest to fail clearly when a resource needs them).
                if fs::write(dir, "cgroup.subtree_control", &enable.join(" ")).is_err() {
                    for c in &enable {
                        let _ = fs::write(dir, "cgroup.subtree_control", c);
                    }
                }
            }
        }
        Ok(())
    }

    fn available(&self) -> Result<BTreeSet<String>> {
        Ok(fs::read(self.path(), "cgroup.controllers")?
            .split_whitespace()
            .map(String::from)
            .collect())
    }
}

fn needs_domain_controllers(r: &LinuxResources) -> bool {
    r.memory().as_ref().is_some_and(memory::needs)
        || r.block_io().as_ref().is_some_and(blkio::needs)
        || r.cpu().as_ref().is_some_and(cpu::needs_cpu)
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
}

/// runc's check: a threaded or invalid cgroup cannot take domain controllers.
fn check_type(dir: &Path, domain: bool) -> Result<()> {
    let Some(t) = fs::read_opt(dir, "cgroup.type")? else {
        return Ok(());
    };
    let t = t.trim();
    match t {
        "domain invalid" | "domain threaded" | "threaded" if domain => Err(Error::InvalidConfig {
            field: "linux.cgroupsPath".into(),
            problem: format!(
                "cannot enter cgroupv2 {dir:?} with domain controllers -- it is in {t} mode"
            ),
        }),
        "domain invalid" => fs::write(dir, "cgroup.type", "threaded"),
        _ => Ok(()),
    }
}

impl Manager for V2 {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let r = self.create_inner(resources);
        if r.is_err() {
            let _ = self.destroy();
        }
        r
    }

    fn join(&self, pid: Pid) -> Result<()> {
        fs::write_procs(self.path(), pid.as_raw())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let dir = self.path();
        if let Some(p) = r.pids().as_ref().filter(|p| pids::needs(p)) {
            pids::set(dir, p, true)?;
        }
        if let Some(m) = r.memory() {
            memory::set_v2(dir, m)?;
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| blkio::needs(b)) {
            blkio::set_v2(dir, b)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::needs_cpu(c) {
                cpu::set_v2(dir, c)?;
            }
        }
        if let Some(rules) = r.devices() {
            devices_v2::set(dir, rules)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::needs_cpuset(c) {
                cpu::set_cpuset(dir, c)?;
            }
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            hugetlb::set_v2(dir, h)?;
        }
        if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            rdma::set(dir, rd)?;
        }
        if let Some(n) = r.network() {
            network::refuse_v2(n)?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            unified::set(dir, u, &self.available()?)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        freezer::freeze_v2(self.path())
    }

    fn thaw(&self) -> Result<()> {
        freezer::thaw_v2(self.path())
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        freezer::state_v2(self.path())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        fs::all_pids(self.path())
    }

    fn stats(&self) -> Result<Stats> {
        let dir = self.path();
        let mut s = Stats::default();
        stats::pids(dir, &mut s)?;
        stats::memory_v2(dir, &mut s)?;
        stats::io_v2(dir, &mut s)?;
        stats::cpu_v2(dir, &mut s)?;
        stats::hugetlb_v2(dir, &mut s)?;
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        Ok(fs::read_key(self.path(), "memory.events", "oom_kill")?.unwrap_or(0))
    }

    fn oom_watcher(&self) -> Result<OomWatcher> {
        OomWatcher::v2(self.path())
    }

    fn destroy(&mut self) -> Result<()> {
        let leaf: PathBuf = self.path().to_path_buf();
        fs::remove_leaf(&leaf, &self.paths.created)?;
        for dir in self.paths.created.iter().rev() {
            if *dir != leaf {
                fs::remove_parent_if_empty(dir);
            }
        }
        self.paths.created.clear();
        Ok(())
    }

    fn paths(&self) -> &CgroupPaths {
        &self.paths
    }
}
