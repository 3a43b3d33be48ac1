//! What the real-client test beds (containerd, podman) share: running a client command with a
//! time limit, finding installed clients, and unmounting what a client left under its directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a client command (`ctr`, `podman`) did.
#[derive(Debug)]
pub struct ClientOutput {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ClientOutput {
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

impl std::fmt::Display for ClientOutput {
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

/// Runs `cmd` without stdin to completion; panics after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> ClientOutput {
    let args: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let dir = crate::tmp::TempDir::new("client");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", args[0]));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the client") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {limit:?}: {}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    ClientOutput {
        code: status.code().unwrap_or(-1),
        stdout: read(&out_path),
        stderr: read(&err_path),
        args,
    }
}

/// True when every binary is installed; else says which are missing and which packages bring
/// them (and panics when `HULL_REQUIRE_CLIENTS=1`, as in CI, where .ci/run installs them).
pub fn available(bins: &[&str], packages: &str) -> bool {
    let missing: Vec<&&str> = bins.iter().filter(|b| which(b).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{missing:?} not installed (apt-get install {packages})");
    assert!(
        std::env::var("HULL_REQUIRE_CLIENTS").as_deref() != Ok("1"),
        "{why}"
    );
    eprintln!("skipped: {why}");
    false
}

/// `bin` on PATH, or where distributions keep helper binaries (conmon: /usr/libexec/podman).
pub fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/libexec/podman"])
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file());
    found
}

/// Kills every process whose arguments mention `needle` (a client's private directory or
/// socket): what a client left running after it was stopped.
pub fn kill_processes_mentioning(needle: &str) {
    let Ok(all) = procfs::process::all_processes() else {
        return;
    };
    for p in all.flatten() {
        let mentions = p
            .cmdline()
            .map(|c| c.iter().any(|a| a.contains(needle)))
            .unwrap_or(false);
        if mentions && p.pid != std::process::id() as i32 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first (a client's snapshots, shm, rootfs).
pub fn unmount_under(dir: &Path) {
    let mut mounts: Vec<PathBuf> = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| {
            m.into_iter()
                .map(|m| m.mount_point)
                .filter(|p| p.starts_with(dir))
                .collect()
        })
        .unwrap_or_default();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes `parent` (and what a client made below it) from every hierarchy, bottom up, retrying
/// while a dying process still holds a cgroup.
pub fn remove_cgroup_tree(parent: &str) {
    let rel = parent.trim_start_matches('/');
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    roots.extend(hierarchies.flatten().map(|h| h.path().join(rel)));
    for top in roots.into_iter().filter(|p| p.is_dir()) {
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in dirs {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(&d).is_err() && d.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// The test bed's busybox root filesystem as one image layer, `<work>/<name>` (a tar with root
/// ownership), for a client that imports images (containerd's OCI layout, `docker import`).
pub fn busybox_layer(work: &Path, name: &str) -> PathBuf {
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(&rootfs).expect("create image rootfs");
    crate::rootfs::build_unshared(&rootfs);
    let layer = work.join(name);
    let status = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the image layer failed");
    layer
}

/// `<dir>/runtime-wrapper`: runs the runtime under test after appending its arguments to
/// `<dir>/runtime-calls.log`, so a test can tell how a client called it.
pub fn logging_runtime_wrapper(dir: &Path) -> PathBuf {
    let wrapper = dir.join("runtime-wrapper");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {:?}\nexec {:?} \"$@\"\n",
        dir.join("runtime-calls.log"),
        crate::runtime::runtime_binary()
    );
    std::fs::write(&wrapper, script).expect("write runtime wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("make runtime wrapper executable");
    wrapper
}
