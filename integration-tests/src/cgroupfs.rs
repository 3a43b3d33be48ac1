//! A container's cgroups as the kernel shows them: each hierarchy's directory found from
//! `/proc/<pid>/cgroup` and this process's mount table, so a cgroup nested under the test
//! runner's own (the runtime's default placement) is found as well as an absolute
//! `cgroupsPath`. Works on v1, hybrid and v2 hosts alike.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procfs::process::{MountInfo, Process};
use procfs::ProcessCGroup;

/// How long a cgroup directory may take to disappear after the runtime returns.
const GRACE: Duration = Duration::from_secs(2);

/// Every cgroup hierarchy `pid` belongs to: its controllers (`name=systemd` for a named v1
/// hierarchy, empty for the unified one) and the directory of its cgroup on this host.
pub fn dirs(pid: i32) -> Vec<(Vec<String>, PathBuf)> {
    let groups = Process::new(pid)
        .and_then(|p| p.cgroups())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let mounts = Process::myself()
        .and_then(|p| p.mountinfo())
        .expect("read /proc/self/mountinfo");
    groups
        .into_iter()
        .filter(outside_systemd)
        .filter_map(|g| {
            let dir = mounts.iter().find_map(|m| dir_in_mount(m, &g))?;
            Some((g.controllers.clone(), dir))
        })
        .collect()
}

/// `pid`'s entries of /proc/<pid>/cgroup whose hierarchy is mounted here: the kernel also lists a
/// v1 hierarchy that is unmounted but still alive (e.g. one a benchmark mounted and unmounted),
/// where no runtime can place a process.
pub fn mounted_groups(pid: i32) -> Vec<ProcessCGroup> {
    let mounts = Process::myself()
        .and_then(|p| p.mountinfo())
        .expect("read /proc/self/mountinfo");
    Process::new(pid)
        .and_then(|p| p.cgroups())
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"))
        .into_iter()
        .filter(outside_systemd)
        .filter(|g| mounts.iter().any(|m| dir_in_mount(m, g).is_some()))
        .collect()
}

/// False for a v1 hierarchy systemd does not manage (misc), where a container under the systemd
/// driver stays in the root (runc 1.1.5's scopes do): no cgroup of its own to check there.
fn outside_systemd(g: &ProcessCGroup) -> bool {
    !(crate::runtime::systemd_cgroup() && g.hierarchy != 0 && g.pathname == "/")
}

/// Where cgroup `g` lies if mount `m` is a mount of its hierarchy.
fn dir_in_mount(m: &MountInfo, g: &ProcessCGroup) -> Option<PathBuf> {
    let mounts_it = if g.hierarchy == 0 {
        m.fs_type == "cgroup2"
    } else {
        m.fs_type == "cgroup"
            && g.controllers.iter().all(|c| match c.strip_prefix("name=") {
                Some(name) => m.super_options.get("name") == Some(&Some(name.to_string())),
                None => m.super_options.contains_key(c),
            })
    };
    if !mounts_it {
        return None;
    }
    // The mount may show only a subtree of the hierarchy (a bind, a cgroup namespace).
    let rel = Path::new(&g.pathname).strip_prefix(&m.root).ok()?;
    Some(m.mount_point.join(rel))
}

/// True on a pure cgroup v2 host (cgroup2 mounted on /sys/fs/cgroup itself).
pub fn is_v2() -> bool {
    Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| {
            m.into_iter()
                .any(|m| m.fs_type == "cgroup2" && m.mount_point == Path::new("/sys/fs/cgroup"))
        })
        .unwrap_or(false)
}

/// Where a knob of `pid`'s cgroup lives on this host: `v1` is (controller, file) in that
/// controller's hierarchy, `v2` the file in the unified directory.
pub fn knob(pid: i32, v1: (&str, &str), v2: &str) -> PathBuf {
    if is_v2() {
        dir(pid, "").join(v2)
    } else {
        dir(pid, v1.0).join(v1.1)
    }
}

/// The directory of `pid`'s cgroup holding `controller`: that controller's hierarchy on v1, the
/// unified directory on v2.
pub fn controller_dir(pid: i32, controller: &str) -> PathBuf {
    if is_v2() {
        dir(pid, "")
    } else {
        dir(pid, controller)
    }
}

/// The same knob as the container sees it through its own /sys/fs/cgroup (a cgroup namespace
/// shows the container's cgroup there).
pub fn knob_inside(v1: (&str, &str), v2: &str) -> String {
    if is_v2() {
        format!("/sys/fs/cgroup/{v2}")
    } else {
        format!("/sys/fs/cgroup/{}/{}", v1.0, v1.1)
    }
}

/// The trimmed content of a knob file (see [`knob`]).
pub fn value(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The directory of `pid`'s cgroup in the v1 hierarchy of `controller` (`memory`, `cpu`, ...);
/// `""` is the unified (v2) hierarchy.
pub fn dir(pid: i32, controller: &str) -> PathBuf {
    dirs(pid)
        .into_iter()
        .find(|(ctrls, _)| {
            if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.iter().any(|c| c == controller)
            }
        })
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("process {pid} is in no {controller} cgroup that is mounted"))
}

/// The trimmed content of a cgroup file.
pub fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The processes in the cgroup at `dir`.
pub fn procs(dir: &Path) -> Vec<i32> {
    read(dir, "cgroup.procs")
        .lines()
        .map(|l| l.trim().parse().expect("cgroup.procs holds pids"))
        .collect()
}

/// Cgroup directories named `name` (in the systemd lane: whose name holds it) at any depth (up to
/// 8) of any hierarchy under /sys/fs/cgroup.
pub fn dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, name: &str, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let found_it = match e.file_name().to_str() {
                // In the systemd lane a cgroupsPath's name is a scope's: hull-it-<name>.scope.
                Some(n) if crate::runtime::systemd_cgroup() => n.contains(name),
                n => n == Some(name),
            };
            if found_it {
                found.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), depth - 1, name, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 8, name, &mut found);
    found
}

/// Panics unless every directory in `dirs`, and every cgroup named after one of `names` (and in
/// the systemd lane every unit), is gone
/// (after a short grace period: the kernel removes a cgroup once its last task is reaped).
pub fn assert_removed(dirs: &[PathBuf], names: &[&str]) {
    let deadline = Instant::now() + GRACE;
    loop {
        let mut left: Vec<PathBuf> = dirs.iter().filter(|d| d.exists()).cloned().collect();
        for n in names {
            left.extend(dirs_named(n));
        }
        if crate::runtime::systemd_cgroup() {
            left.extend(crate::leaks::units(names).into_iter().map(PathBuf::from));
        }
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "cgroups left behind: {left:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
