//! Driving the runtime under test: one [`Runtime`] per test, with its own `--root`, unique ids,
//! output captured to files (a container that outlives the command keeps the runtime's stdio
//! open, so pipes would block the reader), a timeout on every command, and `delete --force` of
//! every container it named when dropped.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bundle::Bundle;
use crate::leaks;
use crate::tmp::{unique, TempDir};

/// How long any one runtime command may take before the test fails instead of hanging.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The runtime binary under test: `$HULL_TEST_RUNTIME`, else this workspace's `hull`, built (or
/// brought up to date) once per test process.
pub fn runtime_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("HULL_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => hull_binary().to_path_buf(),
    })
}

/// This workspace's `hull`, whatever `$HULL_TEST_RUNTIME` says (the benchmark and the demo).
pub fn hull_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_hull)
}

/// The lines of a JSON log ([`Runtime::json_log_cmd`]), each parsed; none if it was never written.
pub fn log_entries(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The messages of the log's lines of `level` (`warning`, `error`, `debug`...).
pub fn log_messages(log: &Path, level: &str) -> Vec<String> {
    log_entries(log)
        .into_iter()
        .filter(|e| e["level"] == level)
        .filter_map(|e| e["msg"].as_str().map(str::to_string))
        .collect()
}

/// Set (to `1`) only in the systemd guest's lane (tests/guest_lanes/systemd.rs): every runtime command
/// gets the global `--systemd-cgroup`, and bundles a systemd `slice:prefix:name` cgroupsPath
/// where they would have a cgroupfs one (see [`crate::bundle::systemd_cgroups_path`]).
pub const SYSTEMD_CGROUP_ENV: &str = "HULL_IT_SYSTEMD_CGROUP";

/// True in the systemd lane (see [`SYSTEMD_CGROUP_ENV`]).
pub fn systemd_cgroup() -> bool {
    std::env::var(SYSTEMD_CGROUP_ENV).is_ok_and(|v| v == "1")
}

/// Guard for assertions that hold only with the cgroupfs driver (a cgroup at the path the test
/// chose, the refusal of `--systemd-cgroup`): `if !cgroupfs_driver("why") { return; }`.
pub fn cgroupfs_driver(why: &str) -> bool {
    let systemd = systemd_cgroup();
    if systemd {
        eprintln!("skipped with --systemd-cgroup: {why}");
    }
    !systemd
}

/// True when the runtime under test is hull (the default).
pub fn is_hull() -> bool {
    runtime_binary().file_name() == Some(OsStr::new("hull"))
}

/// Guard for tests of behaviour where hull deliberately differs from runc (stricter validation,
/// features runc 1.1 lacks): `if !only_hull("why") { return; }`.
pub fn only_hull(why: &str) -> bool {
    if !is_hull() {
        eprintln!(
            "skipped with {}: hull-only ({why})",
            runtime_binary().display()
        );
    }
    is_hull()
}

/// Builds `hull` with the cargo that runs the tests, into the same target directory and profile
/// as the running executable (`<target>/<profile>/deps/<test>` or `<target>/<profile>/<bin>`),
/// and returns `<target>/<profile>/hull`. Cargo releases its build lock while tests run, so this
/// nested build works under `cargo test`, and it makes a changed CLI rebuild before it is tested.
pub const STATIC_FLAGS: [&str; 5] = [
    "--",
    "-C",
    "target-feature=+crt-static",
    "-C",
    "relocation-model=static",
];

fn build_hull() -> PathBuf {
    static_binary("hull-cli", "hull")
}

/// A static build of this crate's small in-container tools (src/bin), which must run in a busybox
/// root filesystem without a C library: the path of the `bin` built.
pub fn tool_binary(bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(b, _)| b == bin) {
        return p.clone();
    }
    let p = static_binary("integration-tests", bin);
    built.push((bin.to_string(), p.clone()));
    p
}

/// Builds example `name` of the library (runtime-lib/examples) with `features`, into the same
/// target directory and profile as the running test, and returns its path.
pub fn example_binary(name: &str, features: &[&str]) -> PathBuf {
    let (profile_dir, target_dir, profile) = profile_dirs();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "hull", "--example", name])
        .args(["--profile", &profile])
        .arg("--features")
        .arg(features.join(","))
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cargo:?}: {e}"));
    assert!(
        out.status.success(),
        "building example {name} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// The running executable's profile directory, target directory and cargo profile name.
fn profile_dirs() -> (PathBuf, PathBuf, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut profile_dir = exe.parent().expect("exe dir").to_path_buf();
    if matches!(
        profile_dir.file_name().and_then(OsStr::to_str),
        Some("deps" | "examples")
    ) {
        profile_dir.pop();
    }
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("cannot tell the cargo profile from {}", exe.display()),
    };
    (profile_dir, target_dir, profile)
}

/// Builds `bin` of `package` static and non-PIE, like `hull` (see [`STATIC_FLAGS`]).
fn static_binary(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut profile_dir = exe.parent().expect("exe dir").to_path_buf();
    if matches!(
        profile_dir.file_name().and_then(OsStr::to_str),
        Some("deps" | "examples")
    ) {
        profile_dir.pop();
    }
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("cannot tell the cargo profile from {}", exe.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(&cargo)
        .args([
            "rustc",
            "--quiet",
            "-p",
            package,
            "--bin",
            bin,
            "--profile",
            profile,
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        // Hull ships as one static, non-PIE executable: nothing to load or relocate at start-up
        // (lower start time and RSS), and no shared library for a container to meddle with.
        .args(STATIC_FLAGS)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cargo:?}: {e}"));
    assert!(
        out.status.success(),
        "building {bin} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// What a runtime command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code as a shell reports it: 128 + signal when killed.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the command and its stderr unless it succeeded.
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics unless it failed with an exit code, not a crash.
    pub fn failed(&self) -> &Self {
        assert!(
            !self.success() && self.status.code().is_some(),
            "expected a clean failure: {self}"
        );
        self
    }

    /// Panics unless stderr contains every piece, ignoring case (runc and hull agree on words,
    /// not on capitals: `Cwd must be` / `cwd "x" must be`, errno texts).
    pub fn stderr_has(&self, pieces: &[&str]) -> &Self {
        let err = self.stderr.to_lowercase();
        for p in pieces {
            assert!(
                err.contains(&p.to_lowercase()),
                "stderr lacks {p:?}: {self}"
            );
        }
        self
    }

    /// stdout with the trailing newline removed.
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// One runtime invocation being put together.
pub struct Cmd<'a> {
    rt: &'a Runtime,
    args: Vec<OsString>,
    /// Goes after every argument added later (the container id: callers put flags before it).
    tail: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    stdout: Option<OwnedFd>,
    fds: Vec<OwnedFd>,
    /// Socket activation: this many of `fds` are announced in LISTEN_FDS, with LISTEN_PID the
    /// runtime's own pid.
    listen_fds: Option<usize>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl<'a> Cmd<'a> {
    /// Hands the first `n` passed fds over as systemd's socket activation does: LISTEN_FDS=n and
    /// LISTEN_PID set to the runtime's pid (a shell sets it, then execs the runtime).
    /// Sets an environment variable of the runtime.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn listen_fds(mut self, n: usize) -> Self {
        self.listen_fds = Some(n);
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The final argument, after any added later (a container id).
    pub fn last(mut self, a: impl AsRef<OsStr>) -> Self {
        self.tail.push(a.as_ref().to_owned());
        self
    }

    /// Feeds these bytes through a pipe, then closes it (the container must see end-of-file).
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
    }

    /// The runtime's (and so the container's) stdout is `fd` (a pipe, a FIFO) instead of a file;
    /// [`Output::stdout`] is then empty.
    pub fn stdout(mut self, fd: OwnedFd) -> Self {
        self.stdout = Some(fd);
        self
    }

    /// Passes `fd` to the runtime as fd 3 + (number of fds passed before), for `--preserve-fds`.
    pub fn pass_fd(mut self, fd: OwnedFd) -> Self {
        self.fds.push(fd);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Starts the command without waiting.
    pub fn spawn(self) -> Running {
        let n = unique();
        let out_path = self.rt.dir.join(format!("cmd-{n}.out"));
        let err_path = self.rt.dir.join(format!("cmd-{n}.err"));
        let mut cmd = match self.listen_fds {
            None => Command::new(&self.rt.bin),
            Some(n) => {
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(format!(
                        "export LISTEN_PID=$$ LISTEN_FDS={n}; exec \"$0\" \"$@\""
                    ))
                    .arg(&self.rt.bin);
                sh
            }
        };
        cmd.arg("--root").arg(self.rt.root());
        if systemd_cgroup() {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(&self.args).args(&self.tail);
        match self.stdout {
            Some(fd) => cmd.stdout(fd),
            None => cmd.stdout(File::create(&out_path).expect("create stdout file")),
        };
        cmd.stderr(File::create(&err_path).expect("create stderr file"));
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        // runc counts $LISTEN_FDS among the preserved fds: only the tests that ask get them.
        cmd.env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let fds: Vec<i32> = self.fds.iter().map(|f| f.as_raw_fd()).collect();
        if !fds.is_empty() {
            // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. Every
            // fd is first moved above the target range so a later dup2 cannot clobber it.
            unsafe {
                cmd.pre_exec(move || {
                    let mut high = Vec::with_capacity(fds.len());
                    for &fd in &fds {
                        let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                        if h < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        high.push(h);
                    }
                    for (i, &h) in high.iter().enumerate() {
                        if libc::dup2(h, 3 + i as i32) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let args: Vec<String> = std::iter::once(self.rt.bin.display().to_string())
            .chain(
                self.args
                    .iter()
                    .chain(&self.tail)
                    .map(|a| a.to_string_lossy().into_owned()),
            )
            .collect();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.rt.bin.display()));
        drop(self.fds);
        if let Some(data) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            // A runtime that fails early closes its end; the error then shows in its output.
            let _ = pipe.write_all(&data);
        }
        Running {
            child,
            args,
            out_path,
            err_path,
            timeout: self.timeout,
        }
    }

    /// Runs the command to completion.
    pub fn output(self) -> Output {
        self.spawn().wait()
    }
}

/// A runtime command started with [`Cmd::spawn`].
pub struct Running {
    child: Child,
    args: Vec<String>,
    out_path: PathBuf,
    err_path: PathBuf,
    timeout: Duration,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the command; kills it and panics after its timeout.
    pub fn wait(self) -> Output {
        self.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the command; kills it after its timeout and says so.
    pub fn finish(mut self) -> Result<Output, String> {
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_micros(200);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for runtime") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "`{}` did not finish within {:?}; stderr so far:\n{}",
                    self.args.join(" "),
                    self.timeout,
                    std::fs::read_to_string(&self.err_path).unwrap_or_default()
                ));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        };
        let read = |p: &Path| {
            let s = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
            let _ = std::fs::remove_file(p);
            s
        };
        Ok(Output {
            args: self.args,
            status,
            stdout: read(&self.out_path),
            stderr: read(&self.err_path),
        })
    }
}

/// The runtime under test, with a private state root.
pub struct Runtime {
    bin: PathBuf,
    dir: TempDir,
    ids: Mutex<Vec<String>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime::with_binary(runtime_binary())
    }

    /// A driver for another runtime binary (runc, to compare with on the same input).
    pub fn with_binary(bin: &Path) -> Runtime {
        let dir = TempDir::new("rt");
        std::fs::create_dir(dir.join("root")).expect("create state root");
        Runtime {
            bin: bin.to_path_buf(),
            dir,
            ids: Mutex::new(Vec::new()),
        }
    }

    pub fn binary(&self) -> &Path {
        &self.bin
    }

    /// The `--root` every command gets.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// A scratch directory private to this runtime (sockets, pid files).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A container id unique on the host (cgroups are host-wide), deleted on drop.
    pub fn new_id(&self) -> String {
        let id = format!("hull-it-{}-{:04}", std::process::id(), unique());
        self.remember(&id);
        id
    }

    fn remember(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// `<runtime> --root <root> <args>`.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Cmd<'_> {
        Cmd {
            rt: self,
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            tail: Vec::new(),
            stdin: None,
            stdout: None,
            fds: Vec::new(),
            listen_fds: None,
            env: Vec::new(),
            timeout: COMMAND_TIMEOUT,
        }
    }

    pub fn exec<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Output {
        self.cmd(args).output()
    }

    /// `create --bundle <bundle> <id>`; the container's stdio goes to files like the runtime's.
    pub fn create(&self, b: &Bundle, id: &str) -> Output {
        self.create_cmd(b, id).output()
    }

    /// `create --bundle <bundle> [flags added to the Cmd] <id>`.
    pub fn create_cmd(&self, b: &Bundle, id: &str) -> Cmd<'_> {
        self.remember(id);
        self.cmd(["create", "--bundle"]).arg(b.path()).last(id)
    }

    /// `<runtime> --log <log> --log-format json`, a verb to follow: the runtime's log as
    /// containerd's shim and conmon have it written (read it back with [`log_entries`]).
    pub fn json_log_cmd(&self, log: &Path) -> Cmd<'_> {
        self.cmd(["--log"]).arg(log).args(["--log-format", "json"])
    }

    /// `run` of `b` under `id` with the runtime's log in JSON at `<scratch>/log.json` (see
    /// [`Runtime::json_log_cmd`]); returns the output and the log's path.
    pub fn run_json_logged(&self, b: &Bundle, id: &str) -> (Output, PathBuf) {
        self.remember(id);
        let log = self.scratch().join("log.json");
        let out = self
            .json_log_cmd(&log)
            .args(["run", "--bundle"])
            .arg(b.path())
            .last(id)
            .output();
        (out, log)
    }

    /// `create` then `start` of `b` under a fresh id, which it returns; panics if either fails.
    pub fn started(&self, b: &Bundle) -> String {
        let id = self.new_id();
        self.create(b, &id).ok();
        self.start(&id).ok();
        id
    }

    pub fn start(&self, id: &str) -> Output {
        self.exec(["start", id])
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.exec(["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.exec(["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.exec(["delete", "--force", id])
    }

    /// `state <id>` parsed; panics if the command fails.
    pub fn state(&self, id: &str) -> Value {
        let out = self.exec(["state", id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_string()
    }

    /// Polls `state` until the status is `want`; panics after 10 s.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.status(id);
            if now == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} stayed {now}, never {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `run --bundle <bundle> <fresh id>` to completion; then asserts nothing is left.
    pub fn run(&self, b: &Bundle) -> Output {
        self.run_cmd(b, |c| c)
    }

    /// [`Self::run`] with extra arguments or input: `rt.run_cmd(&b, |c| c.stdin(b"hi"))`.
    pub fn run_cmd(&self, b: &Bundle, f: impl FnOnce(Cmd<'_>) -> Cmd<'_>) -> Output {
        let id = self.new_id();
        let out = f(self.cmd(["run", "--bundle"]).arg(b.path()).last(&id)).output();
        self.assert_no_leaks(b, &[&id]);
        out
    }

    /// Creates a container that must fail, and checks it left nothing behind.
    pub fn create_fails(&self, b: &Bundle) -> Output {
        let id = self.new_id();
        let out = self.create(b, &id);
        assert!(!out.success(), "create was expected to fail: {out}");
        self.assert_no_leaks(b, &[&id]);
        out
    }

    /// Panics if anything of these containers is left (see [`leaks`]).
    pub fn assert_no_leaks(&self, b: &Bundle, ids: &[&str]) {
        leaks::assert_no_leaks(&self.root(), ids, &[b.path(), &self.root()]);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            if !id.is_empty() && self.root().join(&id).is_dir() {
                let _ = self.cmd(["delete", "--force", &id]).spawn().finish();
            }
        }
    }
}
