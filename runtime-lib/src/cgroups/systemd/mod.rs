//! The systemd cgroup driver (`--systemd-cgroup`): on a host where systemd owns the cgroup tree,
//! the container's cgroup is a transient scope unit that systemd makes, asked over D-Bus, as runc,
//! crun and youki do.
//!
//! `linux.cgroupsPath` is `slice:prefix:name`; the unit is `<prefix>-<name>.scope` in `slice`
//! (`system.slice` when empty), `Delegate=yes`, with the resources systemd has properties for
//! ([`properties`]). Its cgroup is where systemd puts it: the slice expanded into its parents
//! (`a-b.slice` is `a.slice/a-b.slice`), then the scope. From there on the cgroup is an ordinary
//! one: hull writes what systemd has no property for, joins `exec`'d processes, freezes, reads
//! stats and kills through the files, with the cgroupfs managers ([`super::v1`], [`super::v2`]);
//! on a v1 (legacy or hybrid) host the hierarchies systemd does not manage (cpuset, freezer,
//! net_cls, perf_event, hugetlb...) get their directories from hull, as with cgroupfs.
//!
//! Steps: `apply(pid)` starts the unit with the init's pid in it and waits for systemd's job to
//! finish; `set` (update) sends SetUnitProperties, then writes the files; `destroy` stops the unit
//! (systemd removes its cgroup) and removes the directories hull made.

// Reachable from outside only through lib.rs's hidden test seam, which is not documented API.
#[allow(missing_docs)]
pub mod dbus;
pub mod properties;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use self::dbus::{Arg, Bus, BusError};
use super::probe::{self, Mode};
use super::{CgroupPaths, FreezerState, Manager, OomWatcher, Stats, SystemdPath};
use crate::error::{Error, Result};

const DESTINATION: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// How long systemd may take to start or stop the unit: runc's bound.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The v1 hierarchies systemd makes the scope's directory in (its legacy and hybrid modes; with
/// `Delegate=yes` it realizes every controller it supports). The cgroup2 one of a hybrid host is
/// systemd's too.
const SYSTEMD_V1: &[&str] = &[
    "name=systemd",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "pids",
];

/// The unit a container's cgroup is, kept in state.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `<prefix>-<name>.scope`.
    pub name: String,
    /// The slice it is in.
    pub slice: String,
}

/// Whether systemd, not hull, makes (and removes) the directory of hierarchy `controller`
/// ("" for the cgroup2 one).
pub fn manages(controller: &str) -> bool {
    controller.is_empty() || SYSTEMD_V1.contains(&controller)
}

/// The manager for `--systemd-cgroup` and `linux.cgroupsPath` (absent or empty: runc's default,
/// `:runc:<id>`). Checks the path and asks nothing of systemd yet.
pub fn new(linux_cgroups_path: Option<&Path>, id: &str) -> Result<Box<dyn Manager>> {
    let path = match linux_cgroups_path.filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => super::parse_systemd_path(&p.to_string_lossy())?,
        None => SystemdPath {
            slice: String::new(),
            prefix: "runc".into(),
            name: id.into(),
        },
    };
    if path.name.ends_with(".slice") {
        return Err(Error::InvalidConfig {
            field: "linux.cgroupsPath".into(),
            problem: format!(
                "{:?} names a slice: a container's processes need a scope (slice:prefix:name \
                 with a name that is not a .slice)",
                path.name
            ),
        });
    }
    // The unit's name becomes a directory name under the slice: a `/` would walk the cgroupfs
    // paths hull reads and removes out of the slice (systemd refuses such a name, but only
    // after hull has planned its directories).
    for (part, value) in [("prefix", &path.prefix), ("name", &path.name)] {
        if value.contains('/') || value.contains('\0') || value == "." || value == ".." {
            return Err(Error::InvalidConfig {
                field: "linux.cgroupsPath".into(),
                problem: format!(
                    "the {part} part {value:?} of slice:prefix:name is not a unit name"
                ),
            });
        }
    }
    if path.name.is_empty() {
        return Err(Error::InvalidConfig {
            field: "linux.cgroupsPath".into(),
            problem: "the name part of slice:prefix:name is empty".into(),
        });
    }
    let unit = Unit {
        name: path.unit_name(),
        slice: path.slice_or_default().to_string(),
    };
    let mut dir = expand_slice(&unit.slice)?;
    dir.push(&unit.name);
    let host = probe::host()?;
    let inner: Box<dyn Manager> = match host.mode {
        Mode::V2 => Box::new(super::v2::V2::new(host, &dir)?),
        Mode::V1 | Mode::Hybrid => Box::new(super::v1::V1::new(host, &dir)?),
    };
    let mut paths = inner.paths().clone();
    paths.systemd = Some(unit);
    Ok(load(paths))
}

/// Rebuilds the manager from state.json.
pub fn load(paths: CgroupPaths) -> Box<dyn Manager> {
    let unit = paths.systemd.clone().unwrap_or_else(|| Unit {
        name: String::new(),
        slice: String::new(),
    });
    let inner = match paths.mode {
        Mode::V2 => Box::new(super::v2::V2::load(paths)) as Box<dyn Manager>,
        Mode::V1 | Mode::Hybrid => Box::new(super::v1::V1::load(paths)),
    };
    Box::new(Systemd {
        inner,
        unit,
        started_with_resources: Cell::new(false),
        not_ours: false,
    })
}

/// systemd's slice naming: `a-b-c.slice` lies in `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is
/// the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let invalid = |problem: String| Error::InvalidConfig {
        field: "linux.cgroupsPath".into(),
        problem,
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(invalid(format!("{slice:?} is not a slice name")));
    };
    let mut path = PathBuf::from("/");
    if stem == "-" {
        return Ok(path);
    }
    if stem.is_empty() || stem.contains('/') || stem.split('-').any(str::is_empty) {
        return Err(invalid(format!(
            "invalid slice name {slice:?}: dash-separated parts must be non-empty"
        )));
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

#[derive(Debug)]
pub struct Systemd {
    inner: Box<dyn Manager>,
    unit: Unit,
    /// The unit was just started with the resources as properties: create's `set` need not send
    /// them again.
    started_with_resources: Cell<bool>,
    /// StartTransientUnit failed: the unit of that name, if any, is someone else's (a scope
    /// already active), and destroy must not stop it.
    not_ours: bool,
}

impl Systemd {
    fn v2(&self) -> bool {
        self.inner.paths().mode == Mode::V2
    }

    fn error(&self, step: &'static str, e: BusError) -> Error {
        Error::Systemd {
            step,
            unit: self.unit.name.clone(),
            detail: e.to_string(),
        }
    }

    /// Connects and subscribes to the manager's job signals, so the end of a job started on this
    /// connection cannot be missed.
    fn connect(&self, step: &'static str) -> Result<Bus> {
        let mut bus = Bus::system(JOB_TIMEOUT).map_err(|e| self.error(step, e))?;
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Arg::str(format!(
                "type='signal',sender='{DESTINATION}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
            ))],
        )
        .and_then(|_| bus.call(DESTINATION, PATH, MANAGER, "Subscribe", &[]))
        .map_err(|e| self.error(step, e))?;
        Ok(bus)
    }

    /// Waits for the job `reply` names to end; anything but "done" is the unit's failure.
    fn wait_job(&self, bus: &mut Bus, reply: &dbus::Message, step: &'static str) -> Result<()> {
        let job = reply
            .body_strings()
            .ok()
            .and_then(|b| b.into_iter().next())
            .ok_or_else(|| {
                self.error(step, BusError::Protocol("no job in systemd's reply".into()))
            })?;
        let signal = bus
            .wait_signal(
                MANAGER,
                "JobRemoved",
                Instant::now() + JOB_TIMEOUT,
                "systemd's job to finish",
                |m| m.body_strings().is_ok_and(|b| b.get(1) == Some(&job)),
            )
            .map_err(|e| self.error(step, e))?;
        let body = signal.body_strings().unwrap_or_default();
        match body.get(3).map(String::as_str) {
            Some("done") => Ok(()),
            other => Err(self.error(
                step,
                BusError::Protocol(format!(
                    "job {job} ended {:?} (journalctl -u {} says why)",
                    other.unwrap_or("without a result"),
                    self.unit.name
                )),
            )),
        }
    }

    fn start_properties(&self, pid: Pid, resources: Option<&LinuxResources>) -> Result<Vec<Arg>> {
        let v2 = self.v2();
        let mut props = vec![
            Arg::property(
                "Description",
                Arg::str(format!("hull container {}", self.unit.name)),
            ),
            Arg::property("Slice", Arg::str(self.unit.slice.clone())),
            Arg::property("Delegate", Arg::Bool(true)),
            Arg::property("PIDs", Arg::Array("u", vec![Arg::U32(pid.as_raw() as u32)])),
            Arg::property("DefaultDependencies", Arg::Bool(false)),
            Arg::property("MemoryAccounting", Arg::Bool(true)),
            Arg::property("CPUAccounting", Arg::Bool(true)),
            Arg::property(
                if v2 {
                    "IOAccounting"
                } else {
                    "BlockIOAccounting"
                },
                Arg::Bool(true),
            ),
            Arg::property("TasksAccounting", Arg::Bool(true)),
        ];
        if let Some(r) = resources {
            props.extend(properties::resources(r, v2)?);
            if let Some(rules) = r.devices() {
                let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
                props.extend(properties::devices(
                    rules,
                    &proc_devices,
                    |kind, major, minor| {
                        Path::new(&format!("/sys/dev/{kind}/{major}:{minor}")).exists()
                    },
                ));
            }
        }
        Ok(props)
    }

    /// StartTransientUnit, retried once without the properties an older systemd does not know.
    fn start(&self, pid: Pid, resources: Option<&LinuxResources>) -> Result<()> {
        const STEP: &str = "start";
        let mut props = self.start_properties(pid, resources)?;
        let mut bus = self.connect(STEP)?;
        let mut retried = false;
        loop {
            let args = [
                Arg::str(self.unit.name.clone()),
                Arg::str("replace"),
                Arg::Array("(sv)", props.clone()),
                Arg::Array("(sa(sv))", vec![]),
            ];
            match bus.call(DESTINATION, PATH, MANAGER, "StartTransientUnit", &args) {
                Ok(reply) => return self.wait_job(&mut bus, &reply, STEP),
                Err(BusError::Remote { name, message })
                    if !retried && name.ends_with("InvalidArgs") =>
                {
                    let before = props.len();
                    props.retain(|p| !is_version_gated(p));
                    if props.len() == before {
                        return Err(self.error(STEP, BusError::Remote { name, message }));
                    }
                    log::warn!(
                        "systemd refused a property of unit {:?} ({message}): started without \
                         {:?}, whose values go to the cgroup files only",
                        self.unit.name,
                        properties::VERSION_GATED
                    );
                    retried = true;
                }
                Err(e) => return Err(self.error(STEP, e)),
            }
        }
    }

    fn set_properties(&self, r: &LinuxResources) -> Result<()> {
        const STEP: &str = "set properties of";
        let props = properties::resources(r, self.v2())?;
        if props.is_empty() {
            return Ok(());
        }
        let mut bus = Bus::system(JOB_TIMEOUT).map_err(|e| self.error(STEP, e))?;
        let args = [
            Arg::str(self.unit.name.clone()),
            Arg::Bool(true),
            Arg::Array("(sv)", props),
        ];
        bus.call(DESTINATION, PATH, MANAGER, "SetUnitProperties", &args)
            .map_err(|e| self.error(STEP, e))?;
        Ok(())
    }

    /// StopUnit and its job; a unit already gone (systemd collects a scope once its last process
    /// exits) is no error.
    fn stop(&self) -> Result<()> {
        const STEP: &str = "stop";
        let mut bus = self.connect(STEP)?;
        let args = [Arg::str(self.unit.name.clone()), Arg::str("replace")];
        match bus.call(DESTINATION, PATH, MANAGER, "StopUnit", &args) {
            Ok(reply) => self.wait_job(&mut bus, &reply, STEP)?,
            Err(BusError::Remote { name, .. }) if name.ends_with("NoSuchUnit") => {}
            Err(e) => return Err(self.error(STEP, e)),
        }
        // A scope that failed (stop timeout, OOM) stays listed until reset.
        let _ = bus.call(
            DESTINATION,
            PATH,
            MANAGER,
            "ResetFailedUnit",
            &[Arg::str(self.unit.name.clone())],
        );
        Ok(())
    }
}

fn is_version_gated(p: &Arg) -> bool {
    match p {
        Arg::Struct(f) => {
            matches!(f.first(), Some(Arg::Str(n)) if properties::VERSION_GATED.contains(&n.as_str()))
        }
        _ => false,
    }
}

impl Manager for Systemd {
    /// Nothing: systemd makes a scope only with a process in it (see [`Manager::apply`]).
    fn create(&mut self, _resources: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }

    fn apply(&mut self, pid: Pid, resources: Option<&LinuxResources>) -> Result<()> {
        if let Err(e) = self.start(pid, resources) {
            self.not_ours = true;
            return Err(e);
        }
        self.started_with_resources.set(resources.is_some());
        if !self.v2() {
            // The hierarchies systemd leaves alone; in its own ones the directories exist now
            // and the pid is there, so these writes change nothing.
            self.inner.create(resources)?;
            self.inner.join(pid)?;
        }
        Ok(())
    }

    fn join(&self, pid: Pid) -> Result<()> {
        self.inner.join(pid)
    }

    /// For `exec`: the scope's directories exist.
    fn self_join(&self) -> Result<super::SelfJoin> {
        self.inner.self_join()
    }

    fn join_rest(&self, pid: Pid, born_in_unified: bool, joins_v1_itself: bool) -> Result<()> {
        self.inner.join_rest(pid, born_in_unified, joins_v1_itself)
    }

    fn set(&self, resources: &LinuxResources) -> Result<()> {
        if !self.started_with_resources.replace(false) {
            self.set_properties(resources)?;
        }
        self.inner.set(resources)
    }

    fn freeze(&self) -> Result<()> {
        self.inner.freeze()
    }

    fn thaw(&self) -> Result<()> {
        self.inner.thaw()
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        self.inner.freezer_state()
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.inner.pids()
    }

    fn stats(&self) -> Result<Stats> {
        self.inner.stats()
    }

    fn oom_kill_count(&self) -> Result<u64> {
        self.inner.oom_kill_count()
    }

    fn oom_watcher(&self) -> Result<OomWatcher> {
        self.inner.oom_watcher()
    }

    fn destroy(&mut self) -> Result<()> {
        if self.not_ours {
            // Only the directories hull made in the hierarchies systemd leaves alone.
            return self.inner.destroy();
        }
        self.stop()?;
        self.inner.destroy()
    }

    fn paths(&self) -> &CgroupPaths {
        self.inner.paths()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_into_their_parents() {
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            Path::new("/system.slice")
        );
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            Path::new("/a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), Path::new("/"));
        for bad in ["a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "a.scope"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_that_would_leave_the_slice_are_refused() {
        for bad in [":p:../../x", ":p:a/b", ":../..:x", "system.slice:p:.."] {
            let e = new(Some(Path::new(bad)), "id").unwrap_err().to_string();
            assert!(e.contains("is not a unit name"), "{bad}: {e}");
        }
    }

    #[test]
    fn systemd_manages_its_own_hierarchies_only() {
        assert!(manages("") && manages("memory") && manages("name=systemd"));
        assert!(!manages("cpuset") && !manages("freezer") && !manages("hugetlb"));
    }
}
