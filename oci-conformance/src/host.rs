//! The run's footprint on the host: its private directory, namespace holders for the `path` cases,
//! and the end-of-run sweep that proves nothing was left behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::harness::{start_time, Ctx};
use crate::runner::Runtime;

/// Hidden first argument that turns this binary into a namespace holder.
pub const HOLD_NS: &str = "__hold-ns";

/// Runs as `oci-conformance __hold-ns net,uts,ipc[,pid]`: unshares those namespaces, prints the pid
/// whose /proc/PID/ns/* are the new namespaces, and holds them until stdin closes.
pub fn hold_namespaces() -> ! {
    let types = std::env::args().nth(2).unwrap_or_default();
    let mut flags = CloneFlags::empty();
    for t in types.split(',') {
        flags |= match t {
            "net" => CloneFlags::CLONE_NEWNET,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "pid" => CloneFlags::CLONE_NEWPID,
            _ => CloneFlags::empty(),
        };
    }
    if nix::sched::unshare(flags).is_err() {
        std::process::exit(1);
    }
    let wait_for_eof = || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    };
    if !flags.contains(CloneFlags::CLONE_NEWPID) {
        println!("{}", std::process::id());
        wait_for_eof();
        std::process::exit(0);
    }
    // A new pid namespace only exists once a process is in it: the child is its pid 1.
    // SAFETY: this process is single-threaded (nothing but main has run).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            wait_for_eof();
            std::process::exit(0);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            println!("{child}");
            let _ = nix::sys::wait::waitpid(child, None);
            std::process::exit(0);
        }
        Err(_) => std::process::exit(1),
    }
}

/// A process holding fresh namespaces, so that configs can join them by path.
pub struct NsHolder {
    child: Child,
    pub pid: i32,
}

impl NsHolder {
    pub fn spawn(types: &str) -> Result<NsHolder, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([HOLD_NS, types])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("namespace holder: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("holder stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("namespace holder said {line:?}"))?;
        Ok(NsHolder { child, pid })
    }

    pub fn path(&self, name: &str) -> String {
        format!("/proc/{}/ns/{name}", self.pid)
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| {
            m.0.into_iter()
                .map(|i| i.mount_point)
                .filter(|p| p.starts_with(dir) && p != dir)
                .collect()
        })
        .unwrap_or_default()
}

/// crun 1.8 refuses to start on a hybrid host whose hugetlb controller is only on cgroup2.
pub fn mount_hugetlb_for_crun() -> Result<Vec<String>, String> {
    let dir = Path::new("/sys/fs/cgroup/hugetlb");
    let mounted = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| m.0.iter().any(|i| i.mount_point == dir))
        .unwrap_or(false);
    if mounted || !Path::new("/sys/fs/cgroup/memory").exists() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    mount(
        Some("cgroup"),
        dir,
        Some("cgroup"),
        MsFlags::empty(),
        Some("hugetlb"),
    )
    .map_err(|e| format!("mount hugetlb cgroup at {}: {e}", dir.display()))?;
    Ok(vec![format!(
        "mounted the v1 hugetlb controller at {} (crun needs it on this hybrid-cgroup host)",
        dir.display()
    )])
}

/// Where a bundle can live besides the run directory, which is a shared bind mount of itself:
/// engines put bundles on plain directories (containerd: /run/containerd/..., on whatever mount
/// holds it), and a runtime that only ever saw the shared bind misses what breaks there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Placement {
    /// A plain directory of the mount that holds --workdir (the root mount, usually): not a
    /// mount point.
    Plain,
    /// A private bind mount of itself.
    PrivateMount,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::Plain => "plain-dir",
            Placement::PrivateMount => "private-mount",
        }
    }
}

/// Whether the mount that holds `path` is in a peer group (mountinfo's `shared:N`).
pub fn has_peer_group(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The longest mount point that is a prefix of `path` holds it.
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = Path::new(*f.get(4)?);
            path.starts_with(point)
                .then(|| (point.as_os_str().len(), l.contains(" shared:")))
        })
        .max_by_key(|(len, _)| *len)
        .is_some_and(|(_, shared)| shared)
}

/// The run's private directory: a shared bind mount of itself, so that propagation can be seen.
pub struct Workspace {
    /// `<workdir>/oci-conformance-<pid>-elsewhere`: the `Placement` directories.
    elsewhere: PathBuf,
    run_dir: PathBuf,
    template: PathBuf,
    applets: Vec<String>,
}

/// Removes what runs killed before their cleanup left: their directory (with its mounts) and
/// their cgroup parents. A run is stale when the pid in its name is gone.
fn remove_stale_runs(workdir: &Path) {
    let Ok(entries) = std::fs::read_dir(workdir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("oci-conformance-")
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        for m in mounts_under(&dir).iter().rev() {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        let _ = umount2(&dir, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&dir);
        remove_cgroup_parents(&format!("/oci-conformance-{pid}"));
    }
}

impl Workspace {
    pub fn new(workdir: &Path, busybox: &Path, checker: &Path) -> Result<Workspace, String> {
        remove_stale_runs(workdir);
        let run_dir = workdir.join(format!("oci-conformance-{}", std::process::id()));
        let template = run_dir.join("template");
        for d in [
            &template,
            &run_dir.join("root"),
            &run_dir.join("scratch"),
            &run_dir.join("bundles"),
        ] {
            std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        mount(
            Some(&run_dir),
            &run_dir,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind {}: {e}", run_dir.display()))?;
        mount(
            None::<&str>,
            &run_dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .map_err(|e| format!("make-shared {}: {e}", run_dir.display()))?;
        let elsewhere = workdir.join(format!("oci-conformance-{}-elsewhere", std::process::id()));
        for p in [Placement::Plain, Placement::PrivateMount] {
            let d = elsewhere.join(p.name());
            std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        let private = elsewhere.join(Placement::PrivateMount.name());
        mount(
            Some(&private),
            &private,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .and_then(|()| {
            mount(
                None::<&str>,
                &private,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
        })
        .map_err(|e| format!("private bind {}: {e}", private.display()))?;
        let copy = |from: &Path, name: &str| {
            std::fs::copy(from, template.join(name))
                .map_err(|e| format!("copy {}: {e}", from.display()))
        };
        copy(busybox, "busybox")?;
        copy(checker, "oci-checker")?;
        let list = Command::new(busybox)
            .arg("--list")
            .output()
            .map_err(|e| format!("busybox --list: {e}"))?;
        let applets = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|a| !a.is_empty() && *a != "busybox")
            .map(str::to_owned)
            .collect();
        Ok(Workspace {
            elsewhere,
            run_dir,
            template,
            applets,
        })
    }

    pub fn context(&self, runtime: PathBuf, verbose: bool, filter: Option<String>) -> Ctx {
        let rt = Runtime::new(
            runtime,
            self.run_dir.join("root"),
            self.run_dir.join("scratch"),
        );
        let mut ctx = Ctx::new(
            rt,
            self.run_dir.clone(),
            self.template.clone(),
            self.applets.clone(),
            verbose,
            filter,
        );
        ctx.placements = [Placement::Plain, Placement::PrivateMount]
            .map(|p| (p, self.elsewhere.join(p.name())))
            .to_vec();
        ctx
    }

    pub fn remove(self, keep: bool, ctx: &Ctx) {
        for dir in [&self.run_dir, &self.elsewhere] {
            for m in mounts_under(dir).iter().rev() {
                let _ = umount2(m, MntFlags::MNT_DETACH);
            }
        }
        let _ = umount2(&self.run_dir, MntFlags::MNT_DETACH);
        for dir in ctx.cgroups.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        remove_cgroup_parents(&ctx.cgroup_parent);
        if keep {
            let _ = writeln!(std::io::stdout(), "# kept {}", self.run_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.run_dir);
            let _ = std::fs::remove_dir_all(&self.elsewhere);
        }
    }
}

/// Removes this run's cgroupsPath parents from every hierarchy (deepest first).
fn remove_cgroup_parents(parent: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let base = h.path().join(parent.trim_start_matches('/'));
        if let Ok(children) = std::fs::read_dir(&base) {
            for c in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(c.path());
            }
        }
        let _ = std::fs::remove_dir(&base);
    }
}

pub fn is_zombie(pid: i32) -> bool {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state == 'Z')
}

/// Proves the run left no container processes, mounts or cgroups behind, then removes any it did.
pub fn sweep(ctx: &mut Ctx) {
    let clause =
        "Deleting a container MUST delete the resources that were created during the create step";
    let alive: Vec<i32> = ctx
        .pids
        .iter()
        .filter(|(pid, t)| start_time(*pid) == Some(*t) && !is_zombie(*pid))
        .map(|(pid, _)| *pid)
        .collect();
    ctx.check(
        "runtime.md",
        clause,
        "sweep-processes",
        alive.is_empty(),
        format!("container processes alive: {alive:?}"),
    );
    for pid in &alive {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mounts = mounts_under(&ctx.run_dir);
    ctx.check(
        "runtime.md",
        clause,
        "sweep-mounts",
        mounts.is_empty(),
        format!("mounts left under the run dir: {mounts:?}"),
    );
    let cgroups: Vec<&PathBuf> = ctx.cgroups.iter().filter(|d| d.exists()).collect();
    let detail = format!("cgroups left: {cgroups:?}");
    let ok = cgroups.is_empty();
    ctx.check("runtime.md", clause, "sweep-cgroups", ok, detail);
}
