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

use crate::clients;
use crate::runtime::runtime_binary;
use crate::tmp::{unique, TempDir};

/// The image every test runs, imported into each containerd.
pub const IMAGE: &str = "docker.io/hull-test/busybox:latest";

/// containerd's built-in CRI plugin: enabled only in the CRI test bed (`crate::cri`).
pub(crate) const CRI_PLUGIN: &str = "io.containerd.grpc.v1.cri";

/// Plugins that need what a test machine lacks (a CRI setup, other filesystems, tracing).
pub(crate) const DISABLED_PLUGINS: &[&str] = &[
    CRI_PLUGIN,
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

pub use crate::clients::ClientOutput as CtrOutput;

pub struct Containerd {
    dir: TempDir,
    child: Child,
    socket: PathBuf,
    /// Every task's cgroup is `<this>/<id>` (ctr's default, `/default/<id>`, would leave a
    /// `/default` on the host).
    cgroup_parent: String,
}

/// True when containerd, its runc shim and ctr are installed (see [`clients::available`]).
pub fn available() -> bool {
    clients::available(
        &["containerd", "ctr", "containerd-shim-runc-v2"],
        "containerd",
    )
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
        let child = spawn(dir.path(), "", Some(&bin));
        let c = Containerd {
            dir,
            child,
            socket,
            cgroup_parent: format!("/hull-it-containerd-{}-{}", std::process::id(), unique()),
        };
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
        let mut cmd = self.ctr_command(args);
        cmd.args(more);
        clients::run(cmd, Duration::from_secs(60))
    }

    /// `ctr --address <ours> <args>`, not started: for a command that runs alongside the test
    /// (`ctr events`).
    pub fn ctr_command<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket);
        if on_overlayfs(self.dir.path()) {
            cmd.env("CONTAINERD_SNAPSHOTTER", "native");
        }
        cmd.args(args);
        cmd
    }

    /// `ctr run --runc-binary <runtime> --runc-root <root> [flags] IMAGE <id> [command]`.
    pub fn run(&self, flags: &[&str], id: &str, command: &[&str]) -> CtrOutput {
        let mut args: Vec<String> = vec!["run".into(), "--runc-binary".into()];
        args.push(runtime_binary().display().to_string());
        args.push("--runc-root".into());
        args.push(self.runtime_root().display().to_string());
        args.push("--cgroup".into());
        args.push(self.cgroup_of(id));
        args.extend(flags.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(command.iter().map(|s| s.to_string()));
        self.ctr(args)
    }

    /// What `ctr` needs in its environment, as a shell prefix: overlay snapshots cannot live
    /// on an overlay (the v2 guest's root), so there they are copies (`native`).
    pub fn ctr_env(&self) -> &'static str {
        if on_overlayfs(self.dir.path()) {
            "CONTAINERD_SNAPSHOTTER=native "
        } else {
            ""
        }
    }

    /// `ctr run --cgroup` for task `id`.
    pub fn cgroup_of(&self, id: &str) -> String {
        format!("{}/{id}", self.cgroup_parent)
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
        clients::kill_processes_mentioning(&self.socket.to_string_lossy());
        // Snapshot mounts: TempDir leaves the directory in place while any remains.
        clients::unmount_under(self.dir.path());
        clients::remove_cgroup_tree(&self.cgroup_parent);
    }
}

pub(crate) fn on_overlayfs(dir: &Path) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type().0 == OVERLAYFS_SUPER_MAGIC)
        .unwrap_or(false)
}

/// An OCI image archive of the test bed's busybox root filesystem, built in `work`: one
/// uncompressed layer, a config with PATH and `sh`, named [`IMAGE`]. Returns the archive's path.
pub fn build_image(work: &Path) -> PathBuf {
    std::fs::create_dir_all(work).expect("create image work dir");
    let layer = crate::clients::busybox_layer(work, "layer.tar");
    oci_archive(
        work,
        &layer,
        IMAGE,
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        }),
    )
}

/// An OCI image archive `<work>/image-oci.tar` of one uncompressed layer (the tar `layer`), an
/// image config whose `config` is `config` (Env, Cmd, Entrypoint...), a manifest and an index
/// naming it `name` (containerd's `io.containerd.image.name` annotation). Returns its path.
pub fn oci_archive(work: &Path, layer: &Path, name: &str, config: serde_json::Value) -> PathBuf {
    let layout = work.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create image layout");

    let layer_desc = add_blob(&blobs, &std::fs::read(layer).expect("read layer"));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
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
                "io.containerd.image.name": name,
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
    let tar = work.join("image-oci.tar");
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

/// A containerd of a test bed's own: its root, state (`<prefix>root`, `<prefix>state`), sockets
/// (`containerd.sock`), config and log all in `dir`, without the plugins a test machine cannot
/// load, and with `bin` first in its PATH when given (the shim finds `runc` there). It dies with
/// the test process.
pub(crate) fn spawn(dir: &Path, prefix: &str, bin: Option<&Path>) -> Child {
    spawn_with(dir, prefix, bin, None)
}

/// [`spawn`], with the CRI plugin enabled and configured by `cri` (TOML appended to the
/// config: the `[plugins."io.containerd.grpc.v1.cri"]` tables) when given: the CRI test bed's.
pub(crate) fn spawn_with(dir: &Path, prefix: &str, bin: Option<&Path>, cri: Option<&str>) -> Child {
    let plugins: Vec<String> = DISABLED_PLUGINS
        .iter()
        .filter(|p| cri.is_none() || **p != CRI_PLUGIN)
        .map(|p| format!("{p:?}"))
        .collect();
    let mut config = format!(
        "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [{plugins}]\n\
         [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n\
         [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n",
        root = dir.join(format!("{prefix}root")),
        state = dir.join(format!("{prefix}state")),
        plugins = plugins.join(", "),
        sock = dir.join("containerd.sock"),
        ttrpc = dir.join("containerd.sock.ttrpc"),
        opt = dir.join("opt"),
    );
    config.push_str(cri.unwrap_or_default());
    let config_path = dir.join("containerd.toml");
    std::fs::write(&config_path, config).expect("write containerd config");
    let log = std::fs::File::create(dir.join("containerd.log")).expect("create log");
    let mut cmd = Command::new("containerd");
    cmd.arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    if let Some(bin) = bin {
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path);
    }
    // SAFETY: prctl is async-signal-safe. If the test process dies without running Drop,
    // containerd goes with it (shims are reaped by Drop or survive as orphans naming this
    // directory, which the next leak check reports).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("spawn containerd")
}
