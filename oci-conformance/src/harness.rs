//! Bundles and the per-case lifecycle shared by all spec files' cases.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::console::Console;
use crate::runner::{CreateIo, Output, Runtime};
use crate::tap::Tap;

/// The `runc spec` default (terminal off): every case starts from it and changes one thing.
const BASE_CONFIG: &str = include_str!("base-config.json");

/// Where the checker and its inputs live inside each rootfs.
pub const CHECKER: &str = "/conformance/oci-checker";

pub struct Ctx {
    pub rt: Runtime,
    pub tap: Tap,
    /// This run's private directory; bundles, hook logs and fixtures live under it.
    pub run_dir: PathBuf,
    /// Cgroup parent every case's cgroupsPath goes under, unique to this run.
    pub cgroup_parent: String,
    template: PathBuf,
    applets: Vec<String>,
    host_ns: Value,
    pub oom_score_adj: i32,
    serial: usize,
    /// Only cases whose name contains this run.
    pub filter: Option<String>,
    /// Container processes seen: (pid, start time), checked for leftovers at the end.
    pub pids: Vec<(i32, u64)>,
    /// Cgroup directories seen in use by containers, checked for leftovers at the end.
    pub cgroups: Vec<PathBuf>,
    /// Where bundles go when the case is about where a bundle lives (see `host::Placement`):
    /// the run directory itself is a shared bind mount, the shape real engines rarely give.
    pub placements: Vec<(crate::host::Placement, PathBuf)>,
}

pub struct Bundle {
    pub case: String,
    pub id: String,
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub config: Value,
    /// Written to /conformance/host.json for the checker.
    pub host: Value,
    /// Set when the case wants a terminal; create then gets --console-socket.
    pub console: Option<PathBuf>,
}

/// What a checker case's run produced.
pub struct Run {
    pub lines: Vec<String>,
    pub finished: bool,
}

impl Bundle {
    /// Makes the container process the checker, running the named checks.
    pub fn checks(&mut self, checks: &[&str]) {
        let mut args = vec![CHECKER.to_owned()];
        args.extend(checks.iter().map(|c| c.to_string()));
        self.config["process"]["args"] = json!(args);
    }

    pub fn args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    pub fn sh(&mut self, script: &str) {
        self.args(&["/bin/sh", "-c", script]);
    }

    /// An expectation the checker's `expect` check verifies inside the container.
    pub fn expect(&mut self, file: &str, clause: &str, path: &str, what: Value) {
        let mut e = json!({"file": file, "clause": clause, "path": path});
        if let (Some(e), Some(what)) = (e.as_object_mut(), what.as_object()) {
            e.extend(what.clone());
        }
        self.host["expect"]
            .as_array_mut()
            .expect("expect is an array")
            .push(e);
    }

    /// A file in the rootfs, made before create (parents included).
    pub fn put(&self, path: &str, content: &str) {
        let p = self.rootfs.join(path.trim_start_matches('/'));
        let _ = std::fs::create_dir_all(p.parent().expect("absolute path"));
        std::fs::write(&p, content).expect("write rootfs fixture");
    }

    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }

    pub fn write(&self) {
        let pretty = |v: &Value| serde_json::to_vec_pretty(v).expect("serialize");
        std::fs::write(self.dir.join("config.json"), pretty(&self.config))
            .expect("write config.json");
        let conf = self.rootfs.join("conformance");
        std::fs::write(conf.join("config.json"), pretty(&self.config))
            .expect("write rootfs config");
        std::fs::write(conf.join("host.json"), pretty(&self.host)).expect("write host.json");
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("stdout")).unwrap_or_default())
            .into_owned()
    }
}

/// Start time of a process (field 22 of /proc/PID/stat), to tell it from a reused pid.
pub fn start_time(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid)
        .ok()?
        .stat()
        .ok()
        .map(|s| s.starttime)
}

impl Ctx {
    pub fn new(
        rt: Runtime,
        run_dir: PathBuf,
        template: PathBuf,
        applets: Vec<String>,
        verbose: bool,
        filter: Option<String>,
    ) -> Ctx {
        let mut host_ns = serde_json::Map::new();
        for name in ["pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time"] {
            if let Ok(m) = std::fs::metadata(format!("/proc/self/ns/{name}")) {
                host_ns.insert(name.to_owned(), json!(m.ino()));
            }
        }
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ctx {
            rt,
            tap: Tap::new(verbose),
            cgroup_parent: format!("/oci-conformance-{}", std::process::id()),
            run_dir,
            template,
            applets,
            host_ns: Value::Object(host_ns),
            oom_score_adj,
            serial: 0,
            filter,
            pids: Vec::new(),
            cgroups: Vec::new(),
            placements: Vec::new(),
        }
    }

    /// The host-side copy of busybox (for hooks, which run in the runtime namespace).
    pub fn busybox(&self) -> PathBuf {
        self.template.join("busybox")
    }

    /// Whether some case named `prefix`... may be selected by --filter (a filter naming one case
    /// of the group selects the group).
    pub fn wants_group(&self, prefix: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| prefix.contains(f) || f.starts_with(prefix))
    }

    /// Whether the case named `case` is selected by --filter.
    pub fn wants(&self, case: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| case.contains(f))
    }

    /// A fresh bundle: busybox rootfs with the checker, the base config, unique id.
    pub fn bundle(&mut self, case: &str) -> Bundle {
        let bundles = self.run_dir.join("bundles");
        self.bundle_in(case, &bundles)
    }

    /// A fresh bundle in `parent` (one of `placements`, or the run's bundle directory).
    pub fn bundle_in(&mut self, case: &str, parent: &Path) -> Bundle {
        self.serial += 1;
        let id = format!("oci-conf-{}-{}-{case}", std::process::id(), self.serial);
        let dir = parent.join(format!("{}-{case}", self.serial));
        let rootfs = dir.join("rootfs");
        for sub in [
            "bin",
            "conformance",
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc",
            "root",
        ] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("create rootfs");
        }
        for (from, to) in [
            ("busybox", "bin/busybox"),
            ("oci-checker", "conformance/oci-checker"),
        ] {
            let (from, to) = (self.template.join(from), rootfs.join(to));
            // Hard links keep a hundred bundles cheap; copies where links are refused.
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).expect("copy into rootfs");
            }
        }
        for applet in &self.applets {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
            .expect("passwd");
        let mut config: Value = serde_json::from_str(BASE_CONFIG).expect("base config is JSON");
        config["process"]["terminal"] = json!(false);
        // The base mounts are checked by the mounts-default case; other cases check what they add.
        let base_mounts = config["mounts"].as_array().map_or(0, Vec::len);
        let host = json!({"host_ns": self.host_ns, "joined_ns": {}, "oom_score_adj": self.oom_score_adj, "expect": [], "mounts_from": base_mounts});
        let mut b = Bundle {
            case: case.to_owned(),
            id,
            dir,
            rootfs,
            config,
            host,
            console: None,
        };
        b.checks(&[]);
        b
    }

    pub fn check(
        &mut self,
        file: &str,
        clause: &str,
        case: &str,
        ok: bool,
        detail: impl std::fmt::Display,
    ) {
        self.tap.check(file, clause, case, ok, detail);
    }

    /// `create` with the container's stdio going to files in the bundle.
    pub fn create(&mut self, b: &Bundle) -> Output {
        b.write();
        self.create_with(b, None)
    }

    pub fn create_with(&mut self, b: &Bundle, leak_fd: Option<std::os::fd::OwnedFd>) -> Output {
        let io = CreateIo {
            stdout: b.dir.join("stdout"),
            stderr: b.dir.join("stderr"),
            console_socket: b.console.clone(),
            leak_fd,
        };
        let out = self.rt.create(&b.id, &b.dir, io);
        if out.success() {
            self.note_container(&b.id);
        }
        out
    }

    /// Records the container's pid and cgroups so the end-of-run sweep can find leftovers.
    pub fn note_container(&mut self, id: &str) {
        let Some(pid) = self.rt.state(id).ok().and_then(|s| s.get("pid")?.as_i64()) else {
            return;
        };
        let pid = pid as i32;
        if let Some(t) = start_time(pid) {
            self.pids.push((pid, t));
        }
        self.cgroups.extend(cgroup_dirs(pid));
    }

    /// delete --force, ignoring the outcome: for cleaning up after a case, not for testing.
    pub fn discard(&mut self, id: &str) {
        if self.rt.state(id).is_ok() {
            let _ = self.rt.kill(id, "KILL");
            self.rt.force_delete(id);
        }
    }

    /// The whole lifecycle of a checker case: create, (inspect while created), start, wait for the
    /// checker to exit, delete; then the checker's assertions are reported under `b.case`.
    pub fn run_checker(&mut self, b: &Bundle, file: &str, clause: &str) -> Run {
        self.run_checker_with(b, file, clause, |_, _, _| {})
    }

    pub fn run_checker_with(
        &mut self,
        b: &Bundle,
        file: &str,
        clause: &str,
        created: impl FnOnce(&mut Ctx, &Bundle, i32),
    ) -> Run {
        let console = b.console.as_ref().map(|p| Console::listen(p));
        let run = self.lifecycle(b, created);
        let text = match console {
            Some(Ok(c)) => c.collect(),
            Some(Err(e)) => format!("console socket failed: {e}"),
            None => b.output(),
        };
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_owned())
            .collect();
        let finished = lines.iter().any(|l| l == "checker-done");
        if let Some(failure) = &run {
            self.check(file, clause, &b.case, false, failure);
        } else if !finished {
            let err =
                String::from_utf8_lossy(&std::fs::read(b.dir.join("stderr")).unwrap_or_default())
                    .into_owned();
            self.check(
                file,
                clause,
                &b.case,
                false,
                format!("checker did not finish; output {text:?} stderr {err:?}"),
            );
        }
        for line in &lines {
            let fields: Vec<&str> = line.splitn(4, '\t').collect();
            if let [verdict @ ("ok" | "not ok"), spec_file, clause, detail] = fields[..] {
                self.tap
                    .check(spec_file, clause, &b.case, verdict == "ok", detail);
            }
        }
        Run { lines, finished }
    }

    fn lifecycle(
        &mut self,
        b: &Bundle,
        created: impl FnOnce(&mut Ctx, &Bundle, i32),
    ) -> Option<String> {
        let out = self.create(b);
        if !out.success() {
            self.discard(&b.id);
            return Some(format!("create failed: {}", out.describe()));
        }
        let pid = self
            .rt
            .state(&b.id)
            .ok()
            .and_then(|s| s.get("pid")?.as_i64())
            .unwrap_or(0) as i32;
        created(self, b, pid);
        let out = self.rt.start(&b.id);
        if !out.success() {
            self.discard(&b.id);
            return Some(format!("start failed: {}", out.describe()));
        }
        let status = self.wait_stopped(&b.id, pid);
        let result = if status.as_deref() != Some("stopped") {
            Some(format!("container did not stop (status {status:?})"))
        } else {
            let out = self.rt.delete(&b.id);
            (!out.success()).then(|| format!("delete failed: {}", out.describe()))
        };
        self.discard(&b.id);
        result
    }

    /// Waits for `stopped`, but not long once the process is gone: a runtime that never reports
    /// the exit must not make the suite crawl.
    pub fn wait_stopped(&self, id: &str, pid: i32) -> Option<String> {
        let began = std::time::Instant::now();
        let mut gone_since = None;
        loop {
            let status = self.rt.status(id);
            let gone = start_time(pid).is_none() || crate::host::is_zombie(pid);
            if gone && gone_since.is_none() {
                gone_since = Some(std::time::Instant::now());
            }
            let waited_gone = gone_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
            if status.as_deref() == Some("stopped")
                || waited_gone
                || began.elapsed() > Duration::from_secs(15)
            {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A case whose config the runtime MUST refuse: create fails and leaves no container behind.
    pub fn expect_create_error(&mut self, b: &Bundle, file: &str, clause: &str) {
        let out = self.create(b);
        let state = self.rt.state(&b.id);
        let ok = !out.success() && state.is_err();
        let detail = if out.success() {
            "create succeeded".to_owned()
        } else {
            format!("state after failed create: {state:?}")
        };
        self.check(file, clause, &b.case, ok, detail);
        self.discard(&b.id);
    }
}

/// The host paths of the cgroups a process is in, one per mounted v1 hierarchy (and cgroup2).
pub fn cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mount = match controllers {
            "" => "unified".to_owned(),
            c => c
                .split(',')
                .find(|c| !c.starts_with("name="))
                .unwrap_or("systemd")
                .to_owned(),
        };
        let dir = Path::new("/sys/fs/cgroup")
            .join(mount)
            .join(path.trim_start_matches('/'));
        if path != "/" && dir.exists() {
            dirs.push(dir);
        }
    }
    dirs
}

/// The cgroup directory a process is in for one v1 controller (e.g. "memory").
pub fn cgroup_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut it = line.splitn(3, ':');
        let (_, controllers, path) = (it.next()?, it.next()?, it.next()?);
        controllers.split(',').any(|c| c == controller).then(|| {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
        })
    })
}
