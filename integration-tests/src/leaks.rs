//! "Nothing left behind": after a container is deleted, or after a create that failed, no mount,
//! process, state directory or cgroup may remain.
//!
//! What is looked for, for a set of container ids and the test's own directories (bundle, state
//! root):
//! - mounts: a host mount (this process's /proc/self/mountinfo) at or beneath a watched directory;
//! - processes: one whose argv holds the id as a whole argument, whose cwd or root lies inside a
//!   watched directory, or that lives in another mount namespace whose mount table was built from a
//!   watched directory (a container's init after pivot_root shows its rootfs as the root of `/`);
//! - state: `<root>/<id>` exists;
//! - cgroups: a directory named after the id (or containing it, as systemd's `<id>.scope` would)
//!   within three levels of any /sys/fs/cgroup hierarchy;
//! - in the systemd lane, units: any systemd unit whose name holds the id.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Processes die and cgroups are removed asynchronously for a moment after the runtime returns
/// (the kernel reaps a pid namespace after its init); a leak is what is still there after this.
const GRACE: Duration = Duration::from_secs(2);

/// Host mounts at or beneath `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let Ok(infos) = procfs::process::Process::myself().and_then(|p| p.mountinfo()) else {
        return vec!["cannot read /proc/self/mountinfo".into()];
    };
    infos
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .map(|m| {
            format!(
                "mount {} ({}) at {}",
                m.mount_source.as_deref().unwrap_or("?"),
                m.fs_type,
                m.mount_point.display()
            )
        })
        .collect()
}

fn processes(ids: &[&str], dirs: &[PathBuf]) -> Vec<String> {
    let me = std::process::id() as i32;
    let my_mnt = std::fs::read_link("/proc/self/ns/mnt").ok();
    let Ok(all) = procfs::process::all_processes() else {
        return vec!["cannot list /proc".into()];
    };
    let inside = |p: &Path| dirs.iter().any(|d| p.starts_with(d));
    let mut found = Vec::new();
    for proc in all.flatten() {
        if proc.pid == me {
            continue;
        }
        let cmdline = proc.cmdline().unwrap_or_default();
        let what = if cmdline.iter().any(|a| ids.contains(&a.as_str())) {
            Some("its arguments name the container".to_string())
        } else if proc.cwd().map(|p| inside(&p)).unwrap_or(false) {
            Some("its cwd is inside the test's directories".to_string())
        } else if proc.root().map(|p| inside(&p)).unwrap_or(false) {
            Some("its root is inside the test's directories".to_string())
        } else if std::fs::read_link(format!("/proc/{}/ns/mnt", proc.pid)).ok() != my_mnt {
            proc.mountinfo().ok().and_then(|infos| {
                infos
                    .iter()
                    .find(|m| dirs.iter().any(|d| Path::new(&m.root).starts_with(d)))
                    .map(|m| {
                        format!(
                            "its mount namespace holds {} at {}",
                            m.root,
                            m.mount_point.display()
                        )
                    })
            })
        } else {
            None
        };
        if let Some(what) = what {
            found.push(format!(
                "process {} {:?}: {what}",
                proc.pid,
                cmdline.join(" ")
            ));
        }
    }
    found
}

fn cgroups(ids: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, depth: u32, ids: &[&str], found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            if ids.iter().any(|id| name.contains(id)) {
                found.push(format!("cgroup {}", e.path().display()));
            } else if depth > 0 {
                walk(&e.path(), depth - 1, ids, found);
            }
        }
    }
    let mut found = Vec::new();
    // Each hierarchy root is /sys/fs/cgroup/<controller> on a hybrid host, /sys/fs/cgroup on v2.
    walk(Path::new("/sys/fs/cgroup"), 3, ids, &mut found);
    found
}

/// Everything left of containers `ids` run from state root `root` with test directories `dirs`.
pub fn leaks(root: &Path, ids: &[&str], dirs: &[&Path]) -> Vec<String> {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let mut found = Vec::new();
    for d in &dirs {
        found.extend(mounts_under(d));
    }
    found.extend(processes(ids, &dirs));
    for id in ids {
        let state = root.join(id);
        if state.exists() {
            found.push(format!("state directory {}", state.display()));
        }
    }
    found.extend(cgroups(ids));
    if crate::runtime::systemd_cgroup() {
        found.extend(units(ids));
    }
    found.extend(host_devices());
    found
}

/// systemd units (a container's scope, or a slice made for it) whose name holds one of `names`,
/// in any state: a scope that failed, or whose stop was never asked for, stays listed.
pub fn units(names: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return vec![format!(
                "systemctl list-units failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )]
        }
        Err(e) => return vec![format!("cannot run systemctl: {e}")],
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(n)))
        .map(|l| format!("systemd unit {}", l.trim()))
        .collect()
}

/// The host's own device nodes a container's /dev is made from (bind mounts in a user namespace)
/// must come out untouched. The host's /dev/null once turned 0755 during a test session, cause
/// not found: this names the test that does it next time.
fn host_devices() -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ]
    .into_iter()
    .filter_map(|d| {
        let mode = std::fs::metadata(d).ok()?.permissions().mode() & 0o7777;
        (mode != 0o666).then(|| format!("host {d} is now mode {mode:o}, not 666"))
    })
    .collect()
}

/// Panics listing every leak still present after a short grace period.
pub fn assert_no_leaks(root: &Path, ids: &[&str], dirs: &[&Path]) {
    let deadline = Instant::now() + GRACE;
    loop {
        let found = leaks(root, ids, dirs);
        if found.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("left behind by {ids:?}:\n  {}", found.join("\n  "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
