//! The cgroup v1 manager (one hierarchy per controller), also used on hybrid hosts.
//!
//! As runc on a hybrid host, the container's path is also made and joined in the cgroup2
//! hierarchy. Beyond runc, a controller that only the cgroup2 hierarchy offers (hugetlb on this
//! machine) is served from there, so its resources are honoured instead of refused.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::probe::{Host, Mode, V1_CONTROLLERS};
use super::{
    blkio, cpu, devices, freezer, fs, hugetlb, memory, network, pids, rdma, stats, unified,
};
use super::{CgroupPaths, Dir, FreezerState, Manager, OomWatcher, SelfJoin, Stats};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct V1 {
    paths: CgroupPaths,
}

/// Where one controller's files are for this container.
enum Target<'a> {
    V1(&'a Path),
    /// Served from the cgroup2 hierarchy (hybrid host).
    V2(&'a Path),
}

/// cgroup2 controllers a hybrid host may offer in place of a missing v1 one.
const UNIFIED_STANDINS: &[&str] = &["hugetlb", "pids", "rdma", "misc"];

fn relative(inner: &Path) -> &Path {
    inner.strip_prefix("/").unwrap_or(inner)
}

impl V1 {
    pub(super) fn new(host: &Host, inner: &Path) -> Result<V1> {
        let mut v1 = std::collections::BTreeMap::new();
        for &c in V1_CONTROLLERS {
            let Some(h) = host.v1.get(c) else { continue };
            let path = if inner.is_absolute() {
                h.mount_point.join(relative(inner))
            } else {
                host.own_dir(c, h).join(inner)
            };
            v1.insert(
                c.to_string(),
                Dir {
                    path,
                    mount: h.mount_point.clone(),
                },
            );
        }
        if !v1.contains_key("devices") {
            // Without it nothing restricts device access: runc refuses to run, so does Hull.
            return Err(Error::Unsupported {
                feature: "a cgroup v1 host without the devices controller mounted".into(),
            });
        }
        // runc joins the same path under the cgroup2 mount, from its root either way.
        let unified = match (host.mode, &host.unified) {
            (Mode::Hybrid, Some(h)) => Some(Dir {
                path: h.mount_point.join(relative(inner)),
                mount: h.mount_point.clone(),
            }),
            _ => None,
        };
        let unified_controllers = match unified {
            Some(_) => host
                .unified_controllers
                .iter()
                .filter(|c| UNIFIED_STANDINS.contains(&c.as_str()) && !v1.contains_key(*c))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Ok(V1 {
            paths: CgroupPaths {
                mode: host.mode,
                v1,
                unified,
                unified_controllers,
                created: Vec::new(),
                systemd: None,
            },
        })
    }

    pub(super) fn load(paths: CgroupPaths) -> V1 {
        V1 { paths }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.paths.v1.get(controller).map(|d| d.path.as_path())
    }

    /// Where `controller` lives, or runc's refusal when no hierarchy has it.
    fn target(&self, controller: &str, field: &str) -> Result<Target<'_>> {
        if let Some(d) = self.dir(controller) {
            return Ok(Target::V1(d));
        }
        let v2_name = if controller == "blkio" {
            "io"
        } else {
            controller
        };
        if let Some(u) = &self.paths.unified {
            if self.paths.unified_controllers.iter().any(|c| c == v2_name) {
                self.enable_unified(v2_name)?;
                return Ok(Target::V2(&u.path));
            }
        }
        Err(Error::InvalidConfig {
            field: format!("linux.resources.{field}"),
            problem: format!(
                "cannot set {controller} limit: no {controller} cgroup controller on this host"
            ),
        })
    }

    /// The cgroup2 controllers of `unified`'s keys, refused unless the hybrid host's cgroup2
    /// hierarchy has each (checked before any file is written).
    fn unified_controllers_of<'r>(&self, r: &'r LinuxResources) -> Result<Vec<&'r str>> {
        let mut controllers = Vec::new();
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            for k in u.keys() {
                let c = unified::controller_of(k)?;
                if !self.paths.unified_controllers.iter().any(|x| x == c) {
                    return Err(unified::refuse_v1());
                }
                controllers.push(c);
            }
        }
        Ok(controllers)
    }

    /// `unified`'s keys, written in the cgroup2 hierarchy after its `controllers` are enabled.
    fn set_unified(&self, r: &LinuxResources, controllers: Vec<&str>) -> Result<()> {
        if let (Some(u), Some(dir)) = (r.unified(), &self.paths.unified) {
            for c in controllers {
                self.enable_unified(c)?;
            }
            let available = fs::read(&dir.path, "cgroup.controllers")?
                .split_whitespace()
                .map(String::from)
                .collect();
            unified::set(&dir.path, u, &available)?;
        }
        Ok(())
    }

    /// Enables a cgroup2 controller for the container's unified directory: in the
    /// subtree_control of every ancestor from the mount down.
    ///
    /// Only for a resource the container asks for (hugepageLimits, a unified key) that no v1
    /// hierarchy serves. On the pre-existing ancestors, the cgroup2 root included, it stays
    /// enabled after delete: that is a host-wide change (every cgroup2 child gets the
    /// controller's files, and the controller cannot be mounted as a v1 hierarchy while any
    /// child has it: EBUSY). Turning it off again is not safe: writing `-hugetlb` to a parent
    /// silently drops the limits of every other container below it that still relies on it,
    /// and nothing tells which ones do. runc 1.1.5 never writes subtree_control on a hybrid
    /// host; it refuses such resources instead ("cannot set hugetlb limit"), which hull does
    /// too when the cgroup2 hierarchy lacks the controller.
    fn enable_unified(&self, controller: &str) -> Result<()> {
        let Some(u) = &self.paths.unified else {
            return Ok(());
        };
        let Some(parent) = u.path.parent() else {
            return Ok(());
        };
        let Ok(rel) = parent.strip_prefix(&u.mount) else {
            return Ok(());
        };
        let mut cur = u.mount.clone();
        let mut chain = vec![cur.clone()];
        for c in rel.components() {
            cur.push(c);
            chain.push(cur.clone());
        }
        for dir in chain {
            let enabled = fs::read(&dir, "cgroup.subtree_control")?;
            if !enabled.split_whitespace().any(|c| c == controller) {
                fs::write(&dir, "cgroup.subtree_control", &format!("+{controller}"))?;
            }
        }
        Ok(())
    }

    fn ordered(&self) -> impl Iterator<Item = (&'static str, &Dir)> {
        V1_CONTROLLERS
            .iter()
            .filter_map(|&c| self.paths.v1.get(c).map(|d| (c, d)))
    }

    fn create_inner(&mut self, r: Option<&LinuxResources>) -> Result<()> {
        let cpu = r.and_then(|r| r.cpu().as_ref());
        let dirs: Vec<(&'static str, Dir)> = self.ordered().map(|(c, d)| (c, d.clone())).collect();
        for (c, d) in dirs {
            let made = fs::mkdir_all(&d.mount, &d.path, &mut self.paths.created);
            if c == "name=systemd" {
                // Joined only so systemd tools see the container; runc ignores failures here.
                continue;
            }
            made?;
            match c {
                "cpuset" => {
                    // Every level, top down, not only those made here: a parent made a moment
                    // ago by a concurrent create (kubelet's pods share theirs) may still be empty.
                    let levels: Vec<&Path> =
                        d.path.ancestors().take_while(|p| *p != d.mount).collect();
                    for dir in levels.into_iter().rev() {
                        cpu::cpuset_copy_from_parent(dir)?;
                    }
                    if let Some(cpu) = cpu {
                        cpu::set_cpuset(&d.path, cpu)?;
                    }
                    cpu::cpuset_copy_from_parent(&d.path)?;
                }
                "cpu" => {
                    if let Some(cpu) = cpu {
                        cpu::set_rt_v1(&d.path, cpu)?;
                    }
                }
                _ => {}
            }
        }
        if let Some(u) = self.paths.unified.clone() {
            fs::mkdir_all(&u.mount, &u.path, &mut self.paths.created)?;
        }
        Ok(())
    }
}

impl Manager for V1 {
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()> {
        let r = self.create_inner(resources);
        if r.is_err() {
            let _ = self.destroy();
        }
        r
    }

    fn join(&self, pid: Pid) -> Result<()> {
        self.join_rest(pid, false, false)
    }

    fn self_join(&self) -> Result<SelfJoin> {
        let mut join = SelfJoin::default();
        for (c, d) in self.ordered() {
            let path = d.path.join("tasks");
            let optional = c == "name=systemd";
            match fs::open_for_write(&path) {
                Ok(fd) => join.push(path, fd, optional),
                Err(_) if optional => {}
                // The runtime moves the child instead, and reports what fails then.
                Err(_) => return Ok(SelfJoin::default()),
            }
        }
        Ok(join)
    }

    fn join_rest(&self, pid: Pid, born_in_unified: bool, joins_v1_itself: bool) -> Result<()> {
        if !joins_v1_itself {
            for (c, d) in self.ordered() {
                let r = fs::write_procs(&d.path, pid.as_raw());
                if c != "name=systemd" {
                    r?;
                }
            }
        }
        if let Some(u) = self.paths.unified.as_ref().filter(|_| !born_in_unified) {
            fs::write_procs(&u.path, pid.as_raw())?;
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let unified_keys = self.unified_controllers_of(r)?;
        if let Some(c) = r.cpu() {
            if cpu::needs_cpuset(c) {
                match self.target("cpuset", "cpu")? {
                    Target::V1(d) | Target::V2(d) => cpu::set_cpuset(d, c)?,
                }
            }
        }
        // Without a devices hierarchy (rootless, where it is not writable) create wrote none.
        if let (Some(rules), Some(d)) = (r.devices(), self.dir("devices")) {
            devices::set_v1(d, rules)?;
        }
        if let Some(m) = r.memory().as_ref().filter(|m| memory::needs(m)) {
            match self.target("memory", "memory")? {
                Target::V1(d) => memory::set_v1(d, m)?,
                Target::V2(d) => memory::set_v2(d, m)?,
            }
        }
        if let Some(c) = r.cpu().as_ref().filter(|c| cpu::needs_cpu(c)) {
            match self.target("cpu", "cpu")? {
                Target::V1(d) => cpu::set_v1(d, c)?,
                Target::V2(d) => cpu::set_v2(d, c)?,
            }
        }
        if let Some(p) = r.pids().as_ref().filter(|p| pids::needs(p)) {
            match self.target("pids", "pids")? {
                Target::V1(d) => pids::set(d, p, false)?,
                Target::V2(d) => pids::set(d, p, true)?,
            }
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| blkio::needs(b)) {
            match self.target("blkio", "blockIO")? {
                Target::V1(d) => blkio::set_v1(d, b)?,
                Target::V2(d) => blkio::set_v2(d, b)?,
            }
        }
        if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            match self.target("hugetlb", "hugepageLimits")? {
                Target::V1(d) => hugetlb::set_v1(d, h)?,
                Target::V2(d) => hugetlb::set_v2(d, h)?,
            }
        }
        if let Some(n) = r.network() {
            if network::needs_cls(n) {
                match self.target("net_cls", "network.classID")? {
                    Target::V1(d) | Target::V2(d) => network::set_cls(d, n)?,
                }
            }
            if network::needs_prio(n) {
                match self.target("net_prio", "network.priorities")? {
                    Target::V1(d) | Target::V2(d) => network::set_prio(d, n)?,
                }
            }
        }
        if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            match self.target("rdma", "rdma")? {
                Target::V1(d) | Target::V2(d) => rdma::set(d, rd)?,
            }
        }
        self.set_unified(r, unified_keys)
    }

    fn freeze(&self) -> Result<()> {
        match (self.dir("freezer"), &self.paths.unified) {
            (Some(d), _) => freezer::freeze_v1(d),
            (None, Some(u)) => freezer::freeze_v2(&u.path),
            (None, None) => Err(no_freezer()),
        }
    }

    fn thaw(&self) -> Result<()> {
        match (self.dir("freezer"), &self.paths.unified) {
            (Some(d), _) => freezer::thaw_v1(d),
            (None, Some(u)) => freezer::thaw_v2(&u.path),
            (None, None) => Err(no_freezer()),
        }
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        match (self.dir("freezer"), &self.paths.unified) {
            (Some(d), _) => freezer::state_v1(d),
            (None, Some(u)) => freezer::state_v2(&u.path),
            (None, None) => Ok(FreezerState::Undefined),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // A rootless container may lack some hierarchies (see super::rootless): any one joined
        // holds all of its processes.
        let dir = self
            .dir("devices")
            .or_else(|| self.paths.v1.values().next().map(|d| d.path.as_path()))
            .or_else(|| self.paths.unified.as_ref().map(|d| d.path.as_path()));
        match dir {
            Some(dir) => fs::all_pids(dir),
            None => Ok(Vec::new()),
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        stats::cpu_v1(self.dir("cpu"), self.dir("cpuacct"), &mut s)?;
        if let Some(d) = self.dir("cpuset") {
            stats::cpuset_v1(d, &mut s)?;
        }
        if let Some(d) = self.dir("memory") {
            stats::memory_v1(d, &mut s)?;
        }
        if let Some(d) = self.dir("pids") {
            stats::pids(d, &mut s)?;
        }
        if let Some(d) = self.dir("blkio") {
            stats::blkio_v1(d, &mut s)?;
        }
        match (self.dir("hugetlb"), &self.paths.unified) {
            (Some(d), _) => stats::hugetlb_v1(d, &mut s)?,
            (None, Some(u)) => stats::hugetlb_v2(&u.path, &mut s)?,
            (None, None) => {}
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let d = self.dir("memory").ok_or_else(no_memory)?;
        Ok(fs::read_key(d, "memory.oom_control", "oom_kill")?.unwrap_or(0))
    }

    fn oom_watcher(&self) -> Result<OomWatcher> {
        OomWatcher::v1(self.dir("memory").ok_or_else(no_memory)?)
    }

    fn destroy(&mut self) -> Result<()> {
        let mut leaves: Vec<PathBuf> = self.paths.v1.values().map(|d| d.path.clone()).collect();
        leaves.extend(self.paths.unified.iter().map(|d| d.path.clone()));
        leaves.sort();
        leaves.dedup();
        let mut first_err = None;
        for leaf in &leaves {
            if let Err(e) = fs::remove_leaf(leaf, &self.paths.created) {
                first_err.get_or_insert(e);
            }
        }
        for dir in self.paths.created.iter().rev() {
            if !leaves.contains(dir) {
                fs::remove_parent_if_empty(dir);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.paths.created.clear();
                Ok(())
            }
        }
    }

    fn paths(&self) -> &CgroupPaths {
        &self.paths
    }
}

fn no_freezer() -> Error {
    Error::Unsupported {
        feature: "pause without a freezer cgroup controller".into(),
    }
}

fn no_memory() -> Error {
    Error::Unsupported {
        feature: "memory events without a memory cgroup controller".into(),
    }
}
