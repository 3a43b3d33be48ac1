//! Control groups: the container's cgroup on cgroup v1, hybrid and v2 hosts, its resources, and
//! the library halves of `pause`, `resume`, `update`, `events`, `ps` and `kill --all`.
//!
//! One [`Manager`] per container, chosen by probing the host ([`probe`]): [`v1::V1`] on v1 and
//! hybrid hosts (v1 controllers; on hybrid the same path is also made in the cgroup2 hierarchy,
//! as runc does, and controllers only that hierarchy offers — hugetlb here — are served from it),
//! [`v2::V2`] on pure v2 hosts. Its [`CgroupPaths`] go into state.json so later verbs rebuild it
//! with [`load`].
//!
//! With `--systemd-cgroup` the cgroup is a systemd scope ([`systemd::Systemd`]), which wraps the
//! manager of the host's kind for everything but making and removing it.
//!
//! Lifecycle: `create()` before the init is cloned (into the v2 or unified directory where the
//! kernel can, its v1 `tasks` files open for it to join itself: see [`SelfJoin`]), or `apply(pid)`
//! right after (systemd, whose scope is started with the pid), then `set(resources)` before the
//! init runs a step, so its own setup and every hook run under the limits; the device rules alone are
//! set later, once the init's mounts are made and before the prestart hooks, as runc sets them
//! (see `process::channel`); `destroy()` in delete after the processes are gone.

mod blkio;
mod cpu;
mod devices;
mod devices_v2;
mod freezer;
pub(crate) mod fs;
mod hugetlb;
mod memory;
mod network;
mod oom;
mod pids;
pub(crate) mod probe;
mod rdma;
mod resources;
pub(crate) mod rootless;
mod self_join;
pub(crate) mod stats;
pub(crate) mod systemd;
mod unified;
mod unplaced;
pub(crate) mod v1;
pub(crate) mod v2;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proc_handle::ProcessId;
pub use devices::container_resources;
pub use oom::{OomEvent, OomWatcher};
pub use probe::Mode;
pub use resources::{merge_update, warnings};
pub use self_join::SelfJoin;
pub use stats::{Event, Stats};

/// What a container's cgroup can do. Small on purpose: each verb needs one or two of these.
pub trait Manager: std::fmt::Debug {
    /// Makes the container's cgroup directories (those missing; remembered for `destroy`) and sets
    /// what must be in place before a process may join: cpuset.cpus/mems and the realtime budget.
    /// Idempotent. On v2 the directory can then be handed to clone3(CLONE_INTO_CGROUP).
    fn create(&mut self, resources: Option<&LinuxResources>) -> Result<()>;

    /// [`Manager::create`], then moves `pid` (the freshly cloned init) into every hierarchy.
    fn apply(&mut self, pid: Pid, resources: Option<&LinuxResources>) -> Result<()> {
        self.create(resources)?;
        self.join(pid)
    }

    /// Moves `pid` into the container's existing cgroups (a process `exec`'d into the container).
    fn join(&self, pid: Pid) -> Result<()>;

    /// The container's v1 `tasks` files, open, for a single-threaded child to join itself (see
    /// [`SelfJoin`]); the directories must exist ([`Manager::create`]). Empty where a child cannot
    /// join that way (v2, or a file that cannot be opened: the runtime then moves it).
    fn self_join(&self) -> Result<SelfJoin> {
        Ok(SelfJoin::default())
    }

    /// [`Manager::join`] of what `pid` has not joined yet: nothing of the v2 (or hybrid's unified)
    /// directory when it was cloned into it (`born_in_unified`), nothing of the v1 hierarchies
    /// when it joins them itself (`joins_v1_itself`, from a non-empty [`Manager::self_join`]).
    fn join_rest(&self, pid: Pid, born_in_unified: bool, _joins_v1_itself: bool) -> Result<()> {
        if born_in_unified && self.paths().mode == Mode::V2 {
            return Ok(());
        }
        self.join(pid)
    }

    /// Writes every field of `resources` that is set. Device rules are written only when
    /// `resources.devices` is present, exactly as given (see [`container_resources`]).
    fn set(&self, resources: &LinuxResources) -> Result<()>;

    /// Freezes every process and waits until the kernel reports the cgroup frozen.
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn freezer_state(&self) -> Result<FreezerState>;

    /// Host pids of every process in the container's cgroup and its sub-cgroups.
    fn pids(&self) -> Result<Vec<i32>>;

    /// Usage counters in runc's shape (`events --stats`).
    fn stats(&self) -> Result<Stats>;

    /// How many processes the kernel's OOM killer has killed in the container.
    fn oom_kill_count(&self) -> Result<u64>;

    /// Watches for OOM kills (`events` without `--stats`).
    fn oom_watcher(&self) -> Result<OomWatcher>;

    /// Removes every directory `create` made, in every hierarchy, retrying while the kernel still
    /// counts a dying process. The processes must be gone: delete kills them first.
    fn destroy(&mut self) -> Result<()>;

    /// The description to store in state.json.
    fn paths(&self) -> &CgroupPaths;
}

/// The freezer's view, as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    /// No freezer available for this container.
    Undefined,
    Thawed,
    Frozen,
}

/// One cgroup directory and the mount of the hierarchy it lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    pub mount: PathBuf,
}

/// Everything needed to rebuild a container's [`Manager`] in a later process: kept in state.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    pub mode: Mode,
    /// v1 controller (or `name=systemd`) → the container's directory in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, Dir>,
    /// The v2 directory; on hybrid, the same path in the cgroup2 hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<Dir>,
    /// Hybrid: controllers the v1 hierarchies lack but the cgroup2 one has (hugetlb here), so
    /// their resources are set in `unified`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unified_controllers: Vec<String>,
    /// Directories made by `create`, top down; `destroy` removes them bottom up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<PathBuf>,
    /// `--systemd-cgroup`: the scope unit systemd made the cgroup for; the directories in the
    /// hierarchies it manages are its own (see [`systemd`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
}

/// The manager for a container's `linux.cgroupsPath` (runc's rules, see [`inner_path`]) on this
/// host. Makes nothing yet: see [`Manager::create`].
pub fn new(linux_cgroups_path: Option<&Path>, id: &str) -> Result<Box<dyn Manager>> {
    let host = probe::host()?;
    let inner = inner_path(linux_cgroups_path, id)?;
    Ok(match host.mode {
        Mode::V2 => Box::new(v2::V2::new(host, &inner)?),
        Mode::V1 | Mode::Hybrid => Box::new(v1::V1::new(host, &inner)?),
    })
}

/// `--systemd-cgroup`: the container's cgroup is a systemd scope (see [`systemd`]). A rootless
/// one would need the user's own systemd over the session bus, which hull does not speak yet.
pub fn new_systemd(
    linux_cgroups_path: Option<&Path>,
    id: &str,
    rootless: bool,
) -> Result<Box<dyn Manager>> {
    if rootless {
        return Err(Error::Unsupported {
            feature: "--systemd-cgroup with --rootless (the user's systemd, over the session bus)"
                .into(),
        });
    }
    systemd::new(linux_cgroups_path, id)
}

/// A systemd cgroupsPath, `slice:prefix:name` (e.g. `system.slice:docker:1234`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// The parent slice; empty means systemd's default for a system manager, `system.slice`.
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl SystemdPath {
    /// The unit systemd would be asked for, as runc names it: `<prefix>-<name>.scope`, or
    /// `name` itself when that is a slice.
    pub fn unit_name(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }

    pub fn slice_or_default(&self) -> &str {
        if self.slice.is_empty() {
            "system.slice"
        } else {
            &self.slice
        }
    }
}

/// runc's reading of a systemd cgroupsPath: exactly three `:`-separated parts (not cleaned as a
/// path), the first empty or a slice name (`*.slice`, no `/`).
pub fn parse_systemd_path(s: &str) -> Result<SystemdPath> {
    let invalid = |problem: String| Error::InvalidConfig {
        field: "linux.cgroupsPath".into(),
        problem,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(format!(
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {s:?} instead"
        )));
    };
    if !slice.is_empty() && (!slice.ends_with(".slice") || slice.contains('/')) {
        return Err(invalid(format!(
            "invalid slice name {slice:?} in {s:?}: a systemd slice ends in \".slice\" and has no \"/\""
        )));
    }
    Ok(SystemdPath {
        slice: slice.into(),
        prefix: prefix.into(),
        name: name.into(),
    })
}

/// The manager for a rootless container (see [`rootless`]): [`new`]'s, without the hierarchies
/// this user cannot write; with none left, one that places the container nowhere.
pub fn new_rootless(
    linux_cgroups_path: Option<&Path>,
    id: &str,
    resources: &LinuxResources,
) -> Result<Box<dyn Manager>> {
    let full = new(linux_cgroups_path, id)?;
    let mut paths = full.paths().clone();
    let explicit = linux_cgroups_path.is_some_and(|p| !p.as_os_str().is_empty());
    rootless::prune(&mut paths, explicit, resources)?;
    Ok(load(&paths))
}

/// Rebuilds the manager a container was created with.
pub fn load(paths: &CgroupPaths) -> Box<dyn Manager> {
    if paths.systemd.is_some() {
        return systemd::load(paths.clone());
    }
    if paths.v1.is_empty() && paths.unified.is_none() {
        return Box::new(unplaced::Unplaced::load(paths.clone()));
    }
    match paths.mode {
        Mode::V2 => Box::new(v2::V2::load(paths.clone())),
        Mode::V1 | Mode::Hybrid => Box::new(v1::V1::load(paths.clone())),
    }
}

/// runc's rule for the cgroup path: `cgroupsPath` cleaned lexically (a relative path cannot climb
/// out with `..`); absent or empty → the container id. An absolute path is taken from each
/// hierarchy's root, a relative one from the runtime's own cgroup (v1) or its parent (v2).
pub fn inner_path(linux_cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let given = linux_cgroups_path.filter(|p| !p.as_os_str().is_empty());
    let Some(p) = given else {
        return Ok(clean_path(Path::new(id)));
    };
    let cleaned = clean_path(p);
    if cleaned.as_os_str().is_empty() || cleaned == Path::new("/") {
        // runc would put the container in the hierarchy's root (or our own cgroup) and later
        // try to remove that.
        return Err(Error::InvalidConfig {
            field: "linux.cgroupsPath".into(),
            problem: format!("{p:?} does not name a cgroup of its own"),
        });
    }
    Ok(cleaned)
}

/// Lexical cleaning as runc's `CleanPath`: `.` and `..` resolved, and a relative path cannot
/// climb above its start.
pub fn clean_path(p: &Path) -> PathBuf {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut r = if p.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    r.extend(out);
    r
}

/// `pause`: the library half. The caller checks the status first (runc: running or created).
pub fn pause(m: &dyn Manager) -> Result<()> {
    m.freeze()
}

/// `resume`: the library half. The caller checks the container is paused.
pub fn resume(m: &dyn Manager) -> Result<()> {
    m.thaw()
}

/// `kill --all`: as runc, freezes the cgroup so nothing forks meanwhile, signals every process,
/// thaws. A process that exits meanwhile is no error. `foreign` processes (in the cgroup before
/// the container, see [`foreign_processes`]) are not the container's and are left alone.
pub fn signal_all(m: &dyn Manager, signal: Signal, foreign: &[ProcessId]) -> Result<()> {
    let frozen = m.freeze().is_ok();
    let pids = m.pids();
    if let Ok(pids) = &pids {
        for &pid in pids.iter().filter(|&&p| !is_foreign(p, foreign)) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
    if frozen {
        m.thaw()?;
    }
    pids.map(|_| ())
}

/// `delete` (and `delete --force`) of a container that does not own its pid namespace, as runc:
/// SIGKILL to every process of the container in the cgroup, then wait until none is left so
/// `destroy` can remove it. `foreign` processes stay (see [`signal_all`]).
pub fn kill_all(
    m: &dyn Manager,
    foreign: &[ProcessId],
    timeout: std::time::Duration,
) -> Result<()> {
    let start = std::time::Instant::now();
    if m.pids()?.iter().all(|&p| is_foreign(p, foreign)) {
        return Ok(());
    }
    signal_all(m, Signal::SIGKILL, foreign)?;
    loop {
        let left: Vec<i32> = m
            .pids()?
            .into_iter()
            .filter(|&p| !is_foreign(p, foreign))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::InitLost {
                step: "kill container processes",
                detail: format!("{left:?} still alive {timeout:?} after SIGKILL"),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// True if `pid` is one of the processes that were in the cgroup before the container (the same
/// process: a later one with a recycled pid is the container's).
fn is_foreign(pid: i32, foreign: &[ProcessId]) -> bool {
    !foreign.is_empty() && ProcessId::of(pid).is_some_and(|now| foreign.contains(&now))
}

/// The processes already in the cgroups `paths` names, before create makes or joins anything: a
/// `cgroupsPath` naming a cgroup in use. Returns the directories that hold any, and the processes.
pub fn foreign_processes(paths: &CgroupPaths) -> Result<(Vec<PathBuf>, Vec<ProcessId>)> {
    let mut dirs = Vec::new();
    let mut found: Vec<ProcessId> = Vec::new();
    for dir in paths.v1.values().chain(&paths.unified) {
        if !dir.path.is_dir() {
            continue;
        }
        let pids = fs::all_pids(&dir.path)?;
        if pids.is_empty() {
            continue;
        }
        dirs.push(dir.path.clone());
        for p in pids.into_iter().filter_map(ProcessId::of) {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    Ok((dirs, found))
}

/// `paths` with `created` listing every directory [`Manager::create`] will make (those missing
/// now, top down in each hierarchy): what create records before making them, so a create killed
/// half-way leaves a record whose [`Manager::destroy`] removes them all.
pub fn planned(paths: &CgroupPaths) -> CgroupPaths {
    let mut planned = paths.clone();
    let ours = |controller: &str| paths.systemd.is_none() || !systemd::manages(controller);
    let v1 = paths.v1.iter().filter(|(c, _)| ours(c)).map(|(_, d)| d);
    for dir in v1.chain(paths.unified.iter().filter(|_| ours(""))) {
        let Ok(rel) = dir.path.strip_prefix(&dir.mount) else {
            continue;
        };
        let mut cur = dir.mount.clone();
        for c in rel.components() {
            cur.push(c);
            if !planned.created.contains(&cur) && !cur.exists() {
                planned.created.push(cur.clone());
            }
        }
    }
    planned
}

/// `update`: applies `changes` (built from runc's flags or its `-r` JSON) over the `current`
/// resources as runc does, writes them, and returns the new current set to store. Device rules
/// are never touched by update (runc's SkipDevices).
pub fn update(
    m: &dyn Manager,
    current: &LinuxResources,
    changes: &LinuxResources,
) -> Result<LinuxResources> {
    let merged = merge_update(current, changes);
    let mut to_write = merged.clone();
    to_write.set_devices(None);
    m.set(&to_write)?;
    Ok(merged)
}

/// `events --stats`: one stats event for `id`.
pub fn stats_event(m: &dyn Manager, id: &str) -> Result<Event> {
    Ok(Event::stats(id, m.stats()?))
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn cgroups_path_follows_runc_rules() {
        assert_eq!(inner_path(None, "abc").unwrap(), Path::new("abc"));
        assert_eq!(
            inner_path(Some(Path::new("")), "abc").unwrap(),
            Path::new("abc")
        );
        assert_eq!(
            inner_path(Some(Path::new("/a/../b//c/")), "x").unwrap(),
            Path::new("/b/c")
        );
        assert_eq!(
            inner_path(Some(Path::new("../../a/./b")), "x").unwrap(),
            Path::new("a/b")
        );
        assert_eq!(
            inner_path(Some(Path::new("/../..")), "x")
                .unwrap_err()
                .to_string(),
            "invalid config linux.cgroupsPath: \"/../..\" does not name a cgroup of its own"
        );
        assert!(inner_path(Some(Path::new("..")), "x").is_err());
    }

    #[test]
    fn systemd_paths_are_parsed_as_runc_parses_them() {
        assert_eq!(
            parse_systemd_path("system.slice:docker:1234").unwrap(),
            SystemdPath {
                slice: "system.slice".into(),
                prefix: "docker".into(),
                name: "1234".into()
            }
        );
        let e = parse_systemd_path("/a/b").unwrap_err().to_string();
        assert!(e.contains("\"slice:prefix:name\""), "{e}");
        let e = parse_systemd_path("machine/x.slice:p:n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid slice name \"machine/x.slice\""), "{e}");
        let e = new_systemd(Some(Path::new("a:b")), "x", false).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
        let e = new_systemd(Some(Path::new(":p:x.slice")), "x", false).unwrap_err();
        assert!(e.to_string().contains("names a slice"), "{e}");
        let e = new_systemd(None, "x", true).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }

    #[test]
    fn paths_round_trip_through_json() {
        let mut v1 = BTreeMap::new();
        v1.insert(
            "memory".to_string(),
            Dir {
                path: "/sys/fs/cgroup/memory/x".into(),
                mount: "/sys/fs/cgroup/memory".into(),
            },
        );
        let p = CgroupPaths {
            mode: Mode::Hybrid,
            v1,
            unified: Some(Dir {
                path: "/sys/fs/cgroup/unified/x".into(),
                mount: "/sys/fs/cgroup/unified".into(),
            }),
            unified_controllers: vec!["hugetlb".into()],
            created: vec!["/sys/fs/cgroup/memory/x".into()],
            systemd: None,
        };
        let s = serde_json::to_string(&p).unwrap();
        assert!(s.contains("\"mode\":\"hybrid\""), "{s}");
        assert_eq!(serde_json::from_str::<CgroupPaths>(&s).unwrap(), p);
    }
}
