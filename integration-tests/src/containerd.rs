//! A private containerd for client tests: its own root, state, sockets and config under a test
//! directory (never the machine's /run/containerd or /var/lib/containerd), a busybox OCI image
//! built here and imported (no registry is reachable), and `ctr` driving the runtime under test
//! through containerd's runc shim (`ctr run --runc-binary`).
//!
//! Dropping a [`Containerd`] kills every task it still has, stops containerd and its shims,
//! and removes its directory, so a failing test leaves nothing behind either.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtime::runtime_binary;
use crate::tmp::TempDir;

/// The image every test runs, imported into each containerd.
pub const IMAGE: &str = "docker.io/hull-test/busybox:latest";

/// Plugins that need what a test machine lacks (a CRI setup, other filesystems, tracing).
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// What a `ctr` command did.
#[derive(Debug)]
pub struct CtrOutput {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtrOutput {
    /// Panics unless the command succeeded.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self}");
        self
    }

    /// Trimmed stdout.
    pub fn out(&self) -> &str {
        self.stdout.trim_end()
    }
}

impl std::fmt::Display for CtrOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> exit {}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

pub struct Containerd {
    dir: TempDir,
    child: Child,
    socket: PathBuf,
}

/// True when containerd, its runc shim and ctr are installed; else says why on stderr (and
/// panics when `HULL_REQUIRE_CLIENTS=1`, as in CI, where .ci/run installs them).
pub fn available() -> bool {
    let missing: Vec<&str> = ["containerd", "ctr", "containerd-shim-runc-v2"]
        .into_iter()
        .filter(|b| which(b).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{missing:?} not installed (apt-get install containerd)");
    assert!(
        std::env::var("HULL_REQUIRE_CLIENTS").as_deref() != Ok("1"),
        "{why}"
    );
    eprintln!("skipped: {why}");
    false
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

impl Containerd {
    /// Starts a private containerd and imports the busybox image into it.
    pub fn start() -> Containerd {
        let dir = TempDir::new("containerd");
        let socket = dir.join("containerd.sock");
        // `ctr run --no-pivot` drops --runc-binary and the shim runs `runc` from PATH: ours
        // comes first and is the runtime under test.
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).expect("create bin dir");
        // A wrapper that logs its arguments, so a test can tell how it was called.
        let wrapper = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            dir.join("runc-path.log").display(),
            runtime_binary().display()
        );
        std::fs::write(bin.join("runc"), wrapper).expect("write runc wrapper");
        std::fs::set_permissions(
            bin.join("runc"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod runc wrapper");
        let plugins: Vec<String> = DISABLED_PLUGINS.iter().map(|p| format!("{p:?}")).collect();
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [{plugins}]\n\
             [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n",
            root = dir.join("root"),
            state = dir.join("state"),
            plugins = plugins.join(", "),
            sock = socket,
            ttrpc = dir.join("containerd.sock.ttrpc"),
            opt = dir.join("opt"),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("write containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("create log");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe. If the test process dies without running Drop,
        // containerd goes with it (shims are reaped by Drop or survive as orphans naming this
        // directory, which the next leak check reports).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn containerd");
        let c = Containerd { dir, child, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.ctr(["version"]).code != 0 {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up:\n{}",
                std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let image = build_image(&c.dir.join("image"));
        let out = c.ctr_args(["images", "import"], [&image]);
        out.ok();
        c
    }

    /// The runtime's state root the shim passes as `--root` (containerd adds the namespace).
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.join("runtime-root")
    }

    /// `ctr --address <ours> <args>`, with a 60 s limit.
    pub fn ctr<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> CtrOutput {
        self.ctr_args(args, std::iter::empty::<&OsStr>())
    }

    fn ctr_args<S: AsRef<OsStr>, T: AsRef<OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
        more: impl IntoIterator<Item = T>,
    ) -> CtrOutput {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket);
        for a in args {
            cmd.arg(a);
        }
        for a in more {
            cmd.arg(a);
        }
        let text: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        run_with_timeout(cmd, text)
    }

    /// `ctr run --runc-binary <runtime> --runc-root <root> [flags] IMAGE <id> [command]`.
    pub fn run(&self, flags: &[&str], id: &str, command: &[&str]) -> CtrOutput {
        let mut args: Vec<String> = vec!["run".into(), "--runc-binary".into()];
        args.push(runtime_binary().display().to_string());
        args.push("--runc-root".into());
        args.push(self.runtime_root().display().to_string());
        args.extend(flags.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(command.iter().map(|s| s.to_string()));
        self.ctr(args)
    }

    /// The runtime's state directory of task `id` (in containerd's `default` namespace).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.runtime_root().join("default").join(id)
    }

    /// The argument lists the `runc` on containerd's PATH was called with, one per line.
    pub fn path_runc_calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("runc-path.log")).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Nothing of `ids` is left: no task or container in containerd, no runtime state, and
    /// no process, mount or cgroup (the test bed's leak check).
    pub fn assert_clean(&self, ids: &[&str]) {
        let tasks = self.ctr(["task", "ls", "-q"]);
        let containers = self.ctr(["container", "ls", "-q"]);
        for id in ids {
            assert!(!tasks.stdout.lines().any(|l| l == *id), "task {id} left");
            assert!(
                !containers.stdout.lines().any(|l| l == *id),
                "container {id} left"
            );
        }
        let root = self.runtime_root().join("default");
        crate::leaks::assert_no_leaks(&root, ids, &[self.dir.join("state").as_path()]);
    }

    /// Host processes started by this containerd's shims (`-address <our socket>`).
    fn shims(&self) -> Vec<i32> {
        let sock = self.socket.to_string_lossy().into_owned();
        procfs::process::all_processes()
            .map(|all| {
                all.flatten()
                    .filter(|p| {
                        p.cmdline()
                            .map(|c| c.contains(&sock))
                            .unwrap_or(false)
                    })
                    .map(|p| p.pid)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first (the shims delete them through the runtime), then containerd, then any
        // shim that outlived it.
        for id in self.ctr(["task", "ls", "-q"]).stdout.lines() {
            let _ = self.ctr(["task", "kill", "-a", "-s", "SIGKILL", id]);
            for _ in 0..50 {
                if self.ctr(["task", "delete", id]).code == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for id in self.ctr(["container", "ls", "-q"]).stdout.lines() {
            let _ = self.ctr(["container", "delete", id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Snapshot mounts, deepest first: TempDir leaves the directory in place otherwise.
        let mut mounts: Vec<PathBuf> = procfs::process::Process::myself()
            .and_then(|p| p.mountinfo())
            .map(|m| {
                m.into_iter()
                    .map(|m| m.mount_point)
                    .filter(|p| p.starts_with(self.dir.path()))
                    .collect()
            })
            .unwrap_or_default();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn run_with_timeout(mut cmd: Command, args: Vec<String>) -> CtrOutput {
    let dir = crate::tmp::base_dir();
    let n = crate::tmp::unique();
    let out_path = dir.join(format!("ctr-{}-{n}.out", std::process::id()));
    let err_path = dir.join(format!("ctr-{}-{n}.err", std::process::id()));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create ctr stdout"))
        .stderr(std::fs::File::create(&err_path).expect("create ctr stderr"));
    let mut child = cmd.spawn().expect("spawn ctr");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for ctr") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out: {}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        s
    };
    CtrOutput {
        args,
        code: status.code().unwrap_or(-1),
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// An OCI image archive of the test bed's busybox root filesystem, built in `work`: one
/// uncompressed layer, a config with PATH and `sh`, a manifest and an index naming it [`IMAGE`]
/// (containerd's `io.containerd.image.name` annotation). Returns the archive's path.
pub fn build_image(work: &Path) -> PathBuf {
    {
        std::fs::create_dir_all(work).expect("create image work dir");
        let layout = work.join("layout");
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("create image layout");
        let rootfs = work.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("create image rootfs");
        crate::rootfs::build(&rootfs);

        let layer = work.join("layer.tar");
        let status = Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the image layer failed");
        let layer_desc = add_blob(&blobs, &std::fs::read(&layer).expect("read layer"));
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"]
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_desc.0.clone()]}
        });
        let config_desc = add_blob(&blobs, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_desc.0, "size": config_desc.1
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_desc.0, "size": layer_desc.1
            }]
        });
        let manifest_desc = add_blob(&blobs, manifest.to_string().as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_desc.0, "size": manifest_desc.1,
                "annotations": {
                    "io.containerd.image.name": IMAGE,
                    "org.opencontainers.image.ref.name": "latest"
                }
            }]
        });
        std::fs::write(layout.join("index.json"), index.to_string()).expect("write index");
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("write oci-layout");
        let tar = work.join("busybox-oci.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the image archive failed");
        tar
    }
}

/// Writes `data` as a blob; returns its descriptor's digest and size.
fn add_blob(blobs: &Path, data: &[u8]) -> (String, usize) {
    let tmp = blobs.join(".incoming");
    std::fs::write(&tmp, data).expect("write blob");
    let out = Command::new("sha256sum")
        .arg(&tmp)
        .output()
        .expect("run sha256sum");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string();
    std::fs::rename(&tmp, blobs.join(&hex)).expect("name blob");
    (format!("sha256:{hex}"), data.len())
}
