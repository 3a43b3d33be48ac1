//! Podman, through conmon (the monitor CRI-O uses too), as a client: a private podman whose
//! root, runroot, tmpdir, containers.conf and storage.conf live under a test directory, with the
//! runtime under test as its only runtime, a busybox `--rootfs`, the cgroupfs manager under a
//! cgroup parent of the test's own (in the systemd lane: the systemd manager under a slice of the
//! test's own), and no network.
//!
//! Podman calls the runtime without `--root`, so the runtime's default state root serves it;
//! containers get podman's 64-hex ids, which cannot collide between tests. Dropping a [`Podman`]
//! removes every container it still has (conmon and all), its cgroup parent and its directory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::clients;
use crate::runtime::{runtime_binary, systemd_cgroup};
use crate::tmp::{unique, TempDir};

pub use crate::clients::ClientOutput as PodmanOutput;

/// True when podman and conmon are installed (see [`clients::available`]).
pub fn available() -> bool {
    clients::available(&["podman", "conmon"], "podman conmon")
}

pub struct Podman {
    dir: TempDir,
    /// Under every cgroup hierarchy; podman puts conmon and each container below it.
    cgroup_parent: String,
}

impl Podman {
    pub fn new() -> Podman {
        Podman::with_engine("")
    }

    /// A podman whose containers.conf `[engine]` has these lines too (`no_pivot_root = true`),
    /// and whose runtime is a wrapper that logs each call's arguments first (see
    /// [`Podman::runtime_calls`]), to check what conmon passes on.
    pub fn with_engine(lines: &str) -> Podman {
        let dir = TempDir::new("podman");
        let runtime = if lines.is_empty() {
            runtime_binary().to_path_buf()
        } else {
            crate::clients::logging_runtime_wrapper(dir.path())
        };
        let rootfs = dir.join("rootfs");
        std::fs::create_dir(&rootfs).expect("create rootfs");
        crate::rootfs::build(&rootfs);
        // The machine lacks CAP_SYS_RESOURCE: podman's default nofile/nproc limits, above the
        // hard limits here, could not be set.
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             netns = \"none\"\n\
             [engine]\ncgroup_manager = \"{}\"\nevents_logger = \"none\"\n\
             runtime = \"hull\"\nruntime_supports_json = [\"hull\"]\n{lines}\n\
             [engine.runtimes]\nhull = [{:?}]\n",
            cgroup_manager(),
            runtime.display().to_string()
        );
        std::fs::write(dir.join("containers.conf"), conf).expect("write containers.conf");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = {:?}\ngraphroot = {:?}\n",
            dir.join("runroot"),
            dir.join("root")
        );
        std::fs::write(dir.join("storage.conf"), storage).expect("write storage.conf");
        // systemd's manager takes a slice as the parent (a '-' in its name would nest it).
        let cgroup_parent = if systemd_cgroup() {
            format!("hull_it_podman_{}_{}.slice", std::process::id(), unique())
        } else {
            format!("/hull-it-podman-{}-{}", std::process::id(), unique())
        };
        Podman { dir, cgroup_parent }
    }

    /// The runtime's argument lists, one per call, in order (only with [`Podman::with_engine`]).
    pub fn runtime_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("runtime-calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `--cgroup-parent`: every container must get it, or podman makes `/libpod_parent` on the
    /// host, outside the test's own cgroup.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The podman command line with every private location set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--cgroup-manager",
                cgroup_manager(),
                "--events-backend",
                "none",
            ]);
        cmd
    }

    /// The same as a shell command line (for script(1)).
    pub fn shell_prefix(&self) -> String {
        let cmd = self.command();
        let mut words: Vec<String> = cmd
            .get_envs()
            .map(|(k, v)| {
                format!(
                    "{}='{}'",
                    k.to_string_lossy(),
                    v.unwrap_or_default().to_string_lossy()
                )
            })
            .collect();
        words.push("podman".into());
        words.extend(cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())));
        words.join(" ")
    }

    pub fn podman<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> PodmanOutput {
        let mut cmd = self.command();
        cmd.args(args);
        clients::run(cmd, Duration::from_secs(90))
    }

    /// `podman run --network none --cgroup-parent <ours> [flags] --rootfs <busybox> <command>`.
    pub fn run(&self, flags: &[&str], command: &[&str]) -> PodmanOutput {
        let mut cmd = self.command();
        cmd.args(["run", "--network", "none", "--cgroup-parent"])
            .arg(&self.cgroup_parent)
            .args(flags)
            .arg("--rootfs")
            .arg(self.rootfs())
            .args(command);
        clients::run(cmd, Duration::from_secs(90))
    }

    /// The full id of container `name`.
    pub fn full_id(&self, name: &str) -> String {
        let out = self.podman(["inspect", "--format", "{{.Id}}", name]);
        out.ok();
        out.out().to_string()
    }

    /// Nothing of these containers (full ids) is left: no runtime state in its default root, no
    /// process, mount or cgroup.
    pub fn assert_clean(&self, ids: &[&str]) {
        let root = Path::new(hull_default_root());
        crate::leaks::assert_no_leaks(root, ids, &[self.dir.path()]);
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

/// podman's `--cgroup-manager`: `systemd` in the systemd lane (it then passes the runtime
/// `--systemd-cgroup` and a `<slice>:libpod:<id>` cgroupsPath), else `cgroupfs`.
fn cgroup_manager() -> &'static str {
    if systemd_cgroup() {
        "systemd"
    } else {
        "cgroupfs"
    }
}

/// The state root the runtime uses when called without `--root`, as podman calls it.
pub fn hull_default_root() -> &'static str {
    "/run/hull"
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(["rm", "--all", "--force", "--time", "0"]);
        // Conmon and anything else of this podman, by the directory in their arguments.
        clients::kill_processes_mentioning(&self.dir.path().to_string_lossy());
        if systemd_cgroup() {
            let _ = Command::new("systemctl")
                .args(["stop", &self.cgroup_parent])
                .stdin(std::process::Stdio::null())
                .output();
        } else {
            clients::remove_cgroup_tree(&self.cgroup_parent);
        }
        clients::unmount_under(self.dir.path());
    }
}
