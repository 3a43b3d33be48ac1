//! Docker Engine as a client: a private `dockerd` (Debian's docker.io) per [`Docker`], with its
//! own data root, exec root, pidfile, socket and containerd (started here, with its own root,
//! state and address, so that a `dockerd` restart for `--live-restore` leaves it running), the
//! runtime under test registered as `hull` through daemon.json's `runtimes` (and, when asked,
//! its `default-runtime`), a busybox image made with `docker import` from the test bed's rootfs,
//! and networking that never touches the host's firewall: `--iptables=false --ip6tables=false
//! --ip-forward=false` and a bridge of its own, created here and passed with `--bridge`.
//!
//! Containers get cgroups below a parent of the test's own (`--cgroup-parent`). Dropping a
//! [`Docker`] removes every container and volume, stops dockerd and containerd, kills whatever
//! still names its directory, unmounts what is left below it, removes its cgroups and bridge.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clients;
use crate::runtime::runtime_binary;
use crate::tmp::{unique, TempDir};

pub use crate::clients::ClientOutput as DockerOutput;

/// The image every scenario runs, made with `docker import`.
pub const IMAGE: &str = "hull-test/busybox:latest";

/// The name the runtime under test is registered under (whatever `$HULL_TEST_RUNTIME` is).
pub const RUNTIME: &str = "hull";

/// True when dockerd, the docker CLI, containerd and its runc shim are installed (see
/// [`clients::available`]).
pub fn available() -> bool {
    clients::available(
        &[
            "dockerd",
            "docker",
            "containerd",
            "containerd-shim-runc-v2",
            "ip",
        ],
        "docker.io iproute2",
    )
}

/// The docker CLI of the docker.io package (the daemon's own version) when present, else the
/// first on PATH.
pub fn cli() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    clients::which("docker").unwrap_or_else(|| PathBuf::from("docker"))
}

/// How the daemon is set up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// daemon.json `"default-runtime": "hull"`: `docker run` without `--runtime`, and
    /// `docker build`'s RUN steps, use the runtime under test.
    pub default_runtime: bool,
    /// `--live-restore`: containers outlive a dockerd restart.
    pub live_restore: bool,
    /// `--userns-remap`.
    pub userns_remap: Option<String>,
    /// Register a wrapper that logs each call's arguments before it runs the runtime (see
    /// [`Docker::runtime_calls`]), to tell which containers Docker ran through it.
    pub log_runtime_calls: bool,
    /// Register the runtime with dockerd's `--add-runtime hull=<path>` instead of daemon.json.
    pub add_runtime_flag: bool,
}

pub struct Docker {
    /// What `hull` is registered as: the runtime under test, or a wrapper of it.
    runtime_path: PathBuf,
    dir: TempDir,
    /// dockerd's `--data-root`: in `dir`, but a directory of its own with `--userns-remap`,
    /// whose path the remapped root must be able to traverse.
    data: TempDir,
    opts: Options,
    containerd: Child,
    dockerd: Option<Child>,
    bridge: String,
    cgroup_parent: String,
    /// Each container's writable layer (see [`Docker::id`]).
    layers: std::sync::Mutex<Vec<(String, PathBuf)>>,
}

impl Docker {
    pub fn start(opts: Options) -> Docker {
        let dir = TempDir::new("docker");
        let n = unique();
        let pid = std::process::id();
        let bridge = format!("hdk{}x{n}", pid % 1_000_000);
        // Under the systemd driver the parent is a slice (one word: a dash would nest it).
        let cgroup_parent = if crate::runtime::systemd_cgroup() {
            format!("hullitdocker{pid}x{n}.slice")
        } else {
            format!("/hull-it-docker-{pid}-{n}")
        };
        let containerd = start_containerd(&dir);
        let path = if opts.log_runtime_calls {
            crate::clients::logging_runtime_wrapper(dir.path())
        } else {
            runtime_binary().to_path_buf()
        };
        let mut config = serde_json::json!({});
        if !opts.add_runtime_flag {
            config["runtimes"] = serde_json::json!({ RUNTIME: { "path": path } });
        }
        if opts.default_runtime {
            config["default-runtime"] = RUNTIME.into();
        }
        std::fs::write(dir.join("daemon.json"), config.to_string()).expect("write daemon.json");
        let data = if opts.userns_remap.is_some() {
            TempDir::new_top_level("hull-it-docker-data", 0o711)
        } else {
            TempDir::new("docker-data")
        };
        let mut d = Docker {
            runtime_path: path,
            dir,
            data,
            opts,
            containerd,
            dockerd: None,
            bridge,
            cgroup_parent,
            layers: Default::default(),
        };
        // Third octet from the bridge's name, so parallel test processes rarely share a subnet.
        let octet = (pid as usize * 7 + n) % 200 + 20;
        for args in [
            vec!["link", "add", "name", &d.bridge, "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("10.213.{octet}.1/24"),
                "dev",
                &d.bridge,
            ],
            vec!["link", "set", &d.bridge, "up"],
        ] {
            let mut cmd = Command::new("ip");
            cmd.args(&args);
            clients::run(cmd, Duration::from_secs(10)).ok();
        }
        d.start_dockerd();
        d.import_image();
        d
    }

    fn start_dockerd(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("open dockerd log");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--data-root")
            .arg(self.data.path())
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--containerd")
            .arg(self.dir.join("containerd.sock"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
            ])
            .args(["--ip-masq=false", "--bridge", &self.bridge])
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args([
                "--exec-opt",
                if crate::runtime::systemd_cgroup() {
                    "native.cgroupdriver=systemd"
                } else {
                    "native.cgroupdriver=cgroupfs"
                },
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if on_overlayfs(self.dir.path()) {
            // An overlay cannot have its layers on an overlay (the v2 guest's root).
            cmd.args(["--storage-driver", "vfs"]);
        }
        if self.opts.live_restore {
            cmd.arg("--live-restore");
        }
        if self.opts.add_runtime_flag {
            cmd.arg("--add-runtime")
                .arg(format!("{RUNTIME}={}", self.runtime_path.display()));
        }
        if let Some(remap) = &self.opts.userns_remap {
            cmd.arg("--userns-remap").arg(remap);
        }
        // SAFETY: prctl is async-signal-safe. If the test process dies without running Drop,
        // dockerd goes with it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.dockerd = Some(cmd.spawn().expect("spawn dockerd"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.docker(["version"]).code != 0 {
            if let Some(Some(status)) = self.dockerd.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!("dockerd exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops dockerd (SIGTERM, as systemd does) and waits for it; containerd, and with
    /// `--live-restore` the containers, keep running.
    pub fn stop_dockerd(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops dockerd and starts it again with the same configuration.
    pub fn restart_dockerd(&mut self) {
        self.stop_dockerd();
        self.start_dockerd();
    }

    fn import_image(&self) {
        let work = self.dir.join("image");
        let layer = crate::clients::busybox_layer(&work, "rootfs.tar");
        self.docker_args(
            [
                "import",
                "--change",
                r#"CMD ["sh"]"#,
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ],
            [layer.as_os_str(), OsStr::new(IMAGE)],
        )
        .ok();
    }

    /// The runtime's argument lists, one per call, in order (only with
    /// [`Options::log_runtime_calls`]).
    pub fn runtime_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("runtime-calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Container `id`'s cgroup, relative to a hierarchy's root: `<parent>/<id>`, or under the
    /// systemd driver the scope `docker-<id>.scope` in the parent slice.
    pub fn container_cgroup(&self, id: &str) -> String {
        if crate::runtime::systemd_cgroup() {
            // A one-word slice lies at the root of the tree.
            format!("{}/docker-{id}.scope", self.cgroup_parent)
        } else {
            format!("{}/{id}", self.cgroup_parent.trim_start_matches('/'))
        }
    }

    /// What dockerd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The docker CLI talking to this daemon, with a CLI config directory of its own.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(cli());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (
                "DOCKER_HOST",
                format!("unix://{}", self.socket().display()).into(),
            ),
            ("DOCKER_CONFIG", self.dir.join("cli").into_os_string()),
        ]
    }

    /// The same as a shell command line (for script(1)).
    pub fn shell_prefix(&self) -> String {
        let mut words: Vec<String> = self
            .env()
            .into_iter()
            .map(|(k, v)| format!("{k}='{}'", v.to_string_lossy()))
            .collect();
        words.push(cli().display().to_string());
        words.join(" ")
    }

    /// `docker <args>`, with a 120 s limit.
    pub fn docker<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> DockerOutput {
        self.docker_args(args, std::iter::empty::<&OsStr>())
    }

    fn docker_args<S: AsRef<OsStr>, T: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
        more: impl IntoIterator<Item = T>,
    ) -> DockerOutput {
        let mut cmd = self.command();
        cmd.args(args).args(more);
        clients::run(cmd, Duration::from_secs(120))
    }

    /// `docker cp <from> <to>` (either may be `<container>:<path>`).
    pub fn docker_cp(&self, from: &Path, to: &Path) {
        self.docker_args(["cp"], [from.as_os_str(), to.as_os_str()])
            .ok();
    }

    /// `docker inspect --format <format> <name>`, trimmed; panics if inspect fails.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.docker(["inspect", "--format", format, name]);
        out.ok();
        out.out().to_string()
    }

    /// The runtime's state root as Docker's runc shim passes it (`--root`): Docker 20.10 keeps
    /// every runtime's containers in `<exec-root>/runtime-runc/moby`.
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.join("exec/runtime-runc/moby")
    }

    /// The full id of container `name`, remembering where its writable layer is mounted for
    /// [`Docker::assert_clean`].
    pub fn id(&self, name: &str) -> String {
        let id = self.inspect(name, "{{.Id}}");
        let mount_id = self
            .data_root()
            .join("image")
            .join(self.storage_driver())
            .join("layerdb/mounts")
            .join(&id)
            .join("mount-id");
        if let Ok(layer) = std::fs::read_to_string(mount_id) {
            let dir = self
                .data_root()
                .join(self.storage_driver())
                .join(layer.trim());
            self.layers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id.clone(), dir));
        }
        id
    }

    fn storage_driver(&self) -> &'static str {
        if on_overlayfs(self.dir.path()) {
            "vfs"
        } else {
            "overlay2"
        }
    }

    /// Nothing of containers `ids` (full ids, from [`Docker::id`]) is left while others keep
    /// running: docker knows none of them, and there is no runtime state, process, cgroup, nor
    /// mount in their container directory, shim bundle or writable layer (the test bed's leak
    /// check).
    pub fn assert_clean(&self, ids: &[&str]) {
        let all = self.docker(["ps", "-aq", "--no-trunc"]);
        all.ok();
        for id in ids {
            assert!(
                !all.stdout.lines().any(|l| l == *id),
                "container {id} left in docker"
            );
        }
        let mut watched = Vec::new();
        let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            watched.push(self.data_root().join("containers").join(id));
            watched.push(self.bundle_dir().join(id));
            watched.extend(
                layers
                    .iter()
                    .filter(|(i, _)| i == id)
                    .map(|(_, l)| l.clone()),
            );
        }
        drop(layers);
        let watched: Vec<&Path> = watched.iter().map(PathBuf::as_path).collect();
        crate::leaks::assert_no_leaks(&self.runtime_root(), ids, &watched);
    }

    /// No container at all is left, nor anything of one: no runtime state, no process of a
    /// container or its shim, no mount of a container's (layers, shm, network namespaces).
    pub fn assert_no_containers(&self) {
        let all = self.docker(["ps", "-aq", "--no-trunc"]);
        all.ok();
        assert_eq!(all.out(), "", "containers left");
        let data = self.data_root();
        let watched = [
            data.join("containers"),
            data.join(self.storage_driver()),
            self.bundle_dir(),
            self.runtime_root(),
        ];
        let watched: Vec<&Path> = watched.iter().map(PathBuf::as_path).collect();
        crate::leaks::assert_no_leaks(&self.runtime_root(), &[], &watched);
        let netns = self.container_netns();
        assert!(netns.is_empty(), "network namespaces left: {netns:?}");
        let state: Vec<_> = std::fs::read_dir(self.runtime_root())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(state.is_empty(), "runtime state left: {state:?}");
    }

    /// Where containerd's runc shim keeps each container's bundle (`<dir>/<id>`).
    fn bundle_dir(&self) -> PathBuf {
        self.dir
            .join("containerd-state/io.containerd.runtime.v2.task/moby")
    }

    /// Where dockerd keeps images, containers and volumes (below a `<uid>.<gid>` directory with
    /// `--userns-remap`).
    pub fn data_root(&self) -> PathBuf {
        let data = self.data.path().to_path_buf();
        if self.opts.userns_remap.is_some() {
            if let Ok(entries) = std::fs::read_dir(&data) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.contains('.') && name.chars().next().is_some_and(|c| c.is_ascii_digit())
                    {
                        return e.path();
                    }
                }
            }
        }
        data
    }

    /// Network namespaces dockerd holds for containers (bind mounts in `<exec-root>/netns`,
    /// other than its own `default`).
    pub fn container_netns(&self) -> Vec<String> {
        crate::leaks::mounts_under(&self.dir.join("exec/netns"))
            .into_iter()
            .filter(|m| !m.ends_with("/netns/default"))
            .collect()
    }

    /// Stops everything (as Drop does) and asserts that nothing of it is left: no process
    /// naming its directory, no mount below it, no cgroup below its parent, no bridge.
    pub fn shut_down_and_assert_clean(mut self) {
        self.shut_down();
        let mut left = Vec::new();
        for dir in [self.dir.path(), self.data.path()] {
            left.extend(crate::leaks::mounts_under(dir));
            let needle = dir.to_string_lossy().into_owned();
            if let Ok(all) = procfs::process::all_processes() {
                for p in all.flatten() {
                    let cmd = p.cmdline().unwrap_or_default();
                    if cmd.iter().any(|a| a.contains(&needle)) {
                        left.push(format!("process {} {:?}", p.pid, cmd.join(" ")));
                    }
                }
            }
        }
        let rel = self.cgroup_parent.trim_start_matches('/').to_string();
        let root = Path::new("/sys/fs/cgroup");
        if root.join(&rel).exists() {
            left.push(format!("cgroup {}", root.join(&rel).display()));
        }
        if let Ok(hierarchies) = std::fs::read_dir(root) {
            for h in hierarchies.flatten() {
                if h.path().join(&rel).exists() {
                    left.push(format!("cgroup {}", h.path().join(&rel).display()));
                }
            }
        }
        if crate::runtime::systemd_cgroup() {
            left.extend(
                crate::leaks::units(&["docker-"])
                    .into_iter()
                    .map(|u| format!("unit {u}")),
            );
        }
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            left.push(format!("bridge {}", self.bridge));
        }
        assert!(
            left.is_empty(),
            "left behind by dockerd:\n  {}",
            left.join("\n  ")
        );
    }

    fn shut_down(&mut self) {
        if self.dockerd.is_some() {
            let all = self.docker(["ps", "-aq"]);
            let ids: Vec<&str> = all.stdout.lines().collect();
            if !ids.is_empty() {
                let _ = self.docker_args(["rm", "-f", "-v"], ids);
            }
            let _ = self.docker(["volume", "prune", "-f"]);
            self.stop_dockerd();
        }
        let _ = self.containerd.kill();
        let _ = self.containerd.wait();
        for dir in [self.dir.path(), self.data.path()] {
            clients::kill_processes_mentioning(&dir.to_string_lossy());
            clients::unmount_under(dir);
        }
        if crate::runtime::systemd_cgroup() {
            // The slice and whatever scope is still in it: systemd removes their cgroups.
            let _ = Command::new("systemctl")
                .args(["stop", &self.cgroup_parent])
                .status();
        } else {
            clients::remove_cgroup_tree(&self.cgroup_parent);
        }
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", &self.bridge])
                .status();
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A containerd of the daemon's own: its root, state, sockets and config in `dir`.
fn start_containerd(dir: &TempDir) -> Child {
    let child = crate::containerd::spawn(dir.path(), "containerd-", None);
    let socket = dir.join("containerd.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "containerd did not come up:\n{}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn on_overlayfs(dir: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type().0 == OVERLAYFS_SUPER_MAGIC)
        .unwrap_or(false)
}

/// A named check that [`run_scenarios`] runs.
pub type Scenario<'a> = (&'a str, Box<dyn Fn() + Send + Sync + 'a>);

/// Runs named scenarios on `threads` threads, each to completion even when another fails, and
/// panics at the end naming every one that failed (with its panic message). With
/// `$HULL_DOCKER_SCENARIOS` set, only those whose name contains one of its comma-separated words
/// run (to debug one).
pub fn run_scenarios<'a>(threads: usize, scenarios: Vec<Scenario<'a>>) {
    let only = std::env::var("HULL_DOCKER_SCENARIOS").unwrap_or_default();
    let scenarios: Vec<Scenario<'a>> = scenarios
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only.split(',').any(|w| name.contains(w)))
        .collect();
    let queue = std::sync::Mutex::new(
        scenarios
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    );
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((name, f)) = next else { break };
                let started = Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&f));
                eprintln!(
                    "scenario {name}: {:?} {}",
                    started.elapsed(),
                    if result.is_ok() { "ok" } else { "FAILED" }
                );
                if let Err(e) = result {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{name}: {msg}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
