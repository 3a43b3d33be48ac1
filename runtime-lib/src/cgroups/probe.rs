//! What cgroup setup the host has: pure v1 (one hierarchy per controller), hybrid (v1 controllers
//! plus a cgroup2 mount, usually /sys/fs/cgroup/unified, possibly holding some controllers), or pure
//! v2. Read from /proc/self/mountinfo and /proc/self/cgroup, once per process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use procfs::process::Process;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    V1,
    Hybrid,
    V2,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// The cgroup the mount shows as its root (not "/" inside a cgroup namespace or a bind mount).
    pub root: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub mode: Mode,
    /// v1 controller (and named hierarchy, as `name=systemd`) → its mount.
    pub v1: BTreeMap<String, Hierarchy>,
    /// The cgroup2 mount: the whole tree on v2, the extra one on hybrid.
    pub unified: Option<Hierarchy>,
    /// Controllers the cgroup2 root offers (`cgroup.controllers`).
    pub unified_controllers: BTreeSet<String>,
    /// This process's cgroup per controller (/proc/self/cgroup); "" is the v2 entry.
    pub own: BTreeMap<String, PathBuf>,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// The host's cgroup setup, probed on first use.
pub fn host() -> Result<&'static Host> {
    if let Some(h) = HOST.get() {
        return Ok(h);
    }
    let h = probe()?;
    Ok(HOST.get_or_init(|| h))
}

fn proc_error(what: &'static str, e: procfs::ProcError) -> Error {
    Error::Io {
        step: "read",
        path: PathBuf::from(what),
        source: std::io::Error::other(e.to_string()),
    }
}

fn probe() -> Result<Host> {
    let me = Process::myself().map_err(|e| proc_error("/proc/self", e))?;
    let mounts = me
        .mountinfo()
        .map_err(|e| proc_error("/proc/self/mountinfo", e))?;
    let mut v1 = BTreeMap::new();
    let mut cgroup2: Vec<Hierarchy> = Vec::new();
    for m in mounts {
        let h = Hierarchy {
            mount_point: m.mount_point.clone(),
            root: PathBuf::from(&m.root),
        };
        match m.fs_type.as_str() {
            "cgroup" => {
                for (key, value) in &m.super_options {
                    // Named hierarchies are an option with a value: name=systemd.
                    let opt = match value {
                        Some(v) if key == "name" => format!("name={v}"),
                        _ => key.clone(),
                    };
                    if is_v1_controller(&opt) {
                        v1.entry(opt).or_insert_with(|| h.clone());
                    }
                }
            }
            "cgroup2" => cgroup2.push(h),
            _ => {}
        }
    }
    let own = own_cgroups(&me)?;
    let (mode, unified) = classify(&v1, cgroup2)?;
    let unified_controllers = match &unified {
        Some(u) => std::fs::read_to_string(u.mount_point.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        None => BTreeSet::new(),
    };
    Ok(Host {
        mode,
        v1,
        unified,
        unified_controllers,
        own,
    })
}

/// `me`'s cgroup per controller (/proc/<pid>/cgroup), keyed as [`Host::own`] is.
pub(crate) fn own_cgroups(me: &Process) -> Result<BTreeMap<String, PathBuf>> {
    let own = me
        .cgroups()
        .map_err(|e| proc_error("/proc/self/cgroup", e))?
        .into_iter()
        .flat_map(|cg| {
            let path = PathBuf::from(&cg.pathname);
            let names = if cg.controllers.is_empty() {
                vec![String::new()]
            } else {
                cg.controllers
            };
            names.into_iter().map(move |n| (n, path.clone()))
        })
        .collect();
    Ok(own)
}

/// Pure v2 when the cgroup2 mount is the tree at /sys/fs/cgroup (or there is nothing else);
/// hybrid when v1 hierarchies sit beside a cgroup2 mount.
fn classify(
    v1: &BTreeMap<String, Hierarchy>,
    mut cgroup2: Vec<Hierarchy>,
) -> Result<(Mode, Option<Hierarchy>)> {
    let at_root = cgroup2
        .iter()
        .position(|h| h.mount_point == Path::new("/sys/fs/cgroup"));
    if let Some(i) = at_root {
        return Ok((Mode::V2, Some(cgroup2.swap_remove(i))));
    }
    if v1.is_empty() {
        return match cgroup2.into_iter().next() {
            Some(h) => Ok((Mode::V2, Some(h))),
            None => Err(Error::Unsupported {
                feature: "a host without a mounted cgroup hierarchy".into(),
            }),
        };
    }
    // Prefer the conventional place, as runc (which only looks there) does.
    let hybrid = cgroup2
        .iter()
        .position(|h| h.mount_point == Path::new("/sys/fs/cgroup/unified"))
        .or(if cgroup2.is_empty() { None } else { Some(0) });
    match hybrid {
        Some(i) => Ok((Mode::Hybrid, Some(cgroup2.swap_remove(i)))),
        None => Ok((Mode::V1, None)),
    }
}

/// The v1 controllers runc manages, plus the systemd named hierarchy it joins.
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "misc",
    "name=systemd",
];

fn is_v1_controller(opt: &str) -> bool {
    V1_CONTROLLERS.contains(&opt)
}

impl Host {
    /// Where this process's own cgroup for `controller` is in the mounted tree.
    pub fn own_dir(&self, controller: &str, h: &Hierarchy) -> PathBuf {
        let own = self.own.get(controller).map_or(Path::new("/"), |p| p);
        h.dir_of(own)
    }

    /// The v1 hierarchies, one per mount (co-mounted controllers share one), each with one of
    /// its controllers.
    pub fn v1_mounts(&self) -> Vec<(&str, &Hierarchy)> {
        let mut out: Vec<(&str, &Hierarchy)> = Vec::new();
        for (controller, h) in &self.v1 {
            if !out
                .iter()
                .any(|(_, seen)| seen.mount_point == h.mount_point)
            {
                out.push((controller, h));
            }
        }
        out
    }
}

impl Hierarchy {
    /// Where the cgroup `path` (as /proc/<pid>/cgroup names it) is in this mounted tree.
    pub fn dir_of(&self, path: &Path) -> PathBuf {
        let rel = path
            .strip_prefix(&self.root)
            .unwrap_or_else(|_| path.strip_prefix("/").unwrap_or(path));
        self.mount_point.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(p: &str) -> Hierarchy {
        Hierarchy {
            mount_point: p.into(),
            root: "/".into(),
        }
    }

    #[test]
    fn host_kinds_are_told_apart() {
        let mut v1 = BTreeMap::new();
        assert_eq!(
            classify(&v1, vec![h("/sys/fs/cgroup")]).unwrap().0,
            Mode::V2
        );
        v1.insert("memory".to_string(), h("/sys/fs/cgroup/memory"));
        assert_eq!(classify(&v1, vec![]).unwrap().0, Mode::V1);
        let (mode, u) = classify(&v1, vec![h("/x"), h("/sys/fs/cgroup/unified")]).unwrap();
        assert_eq!(mode, Mode::Hybrid);
        assert_eq!(u.unwrap().mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert!(classify(&BTreeMap::new(), vec![]).is_err());
    }

    #[test]
    fn this_host_is_probed() {
        let host = host().unwrap();
        // The development machine is hybrid; a v2 guest is v2. Either way the probe is consistent.
        match host.mode {
            Mode::V2 => assert!(host.unified.is_some() && host.v1.is_empty()),
            Mode::Hybrid => assert!(host.unified.is_some() && !host.v1.is_empty()),
            Mode::V1 => assert!(host.unified.is_none()),
        }
        if host.mode != Mode::V2 {
            assert!(host.v1.contains_key("memory"), "{host:?}");
            assert!(host.v1.contains_key("devices"), "{host:?}");
            let systemd = std::fs::read_to_string("/proc/self/cgroup")
                .unwrap()
                .contains(":name=systemd:");
            assert_eq!(host.v1.contains_key("name=systemd"), systemd, "{host:?}");
        }
    }

    #[test]
    fn own_dir_is_taken_relative_to_the_mount_root() {
        let mut host = Host {
            mode: Mode::V1,
            v1: BTreeMap::new(),
            unified: None,
            unified_controllers: BTreeSet::new(),
            own: BTreeMap::new(),
        };
        host.own.insert("memory".into(), "/a/b".into());
        let m = h("/sys/fs/cgroup/memory");
        assert_eq!(
            host.own_dir("memory", &m),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        let nested = Hierarchy {
            mount_point: "/sys/fs/cgroup/memory".into(),
            root: "/a".into(),
        };
        assert_eq!(
            host.own_dir("memory", &nested),
            Path::new("/sys/fs/cgroup/memory/b")
        );
        assert_eq!(host.own_dir("cpu", &m), Path::new("/sys/fs/cgroup/memory"));
    }
}
