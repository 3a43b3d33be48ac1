//! The runtime under test, driven through its runc-compatible command line with a private `--root`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one runtime command may take before it counts as hung and is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// Set on every runtime invocation so that hooks can show whether they inherited it.
pub const LEAK_ENV: &str = "OCI_CONFORMANCE_RUNTIME_ENV";

pub struct Runtime {
    pub path: PathBuf,
    pub root: PathBuf,
    /// Where command output is captured (files, so a container holding the stream never blocks us).
    pub scratch: PathBuf,
    serial: std::cell::Cell<u64>,
}

/// What one runtime command did. `code` is None when it was killed or timed out.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A short description for failure details.
    pub fn describe(&self) -> String {
        let err = self.stderr.trim();
        let err = if err.len() > 300 {
            &err[err.len() - 300..]
        } else {
            err
        };
        match self.code {
            Some(code) => format!("exit {code}: {err}"),
            None => format!("killed or timed out: {err}"),
        }
    }
}

/// Stdio for a `create`: the container inherits these, so they go to files the case reads.
pub struct CreateIo {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub console_socket: Option<PathBuf>,
    /// A descriptor deliberately left open (without close-on-exec) across the exec of the runtime.
    pub leak_fd: Option<std::os::fd::OwnedFd>,
}

impl Runtime {
    pub fn new(path: PathBuf, root: PathBuf, scratch: PathBuf) -> Runtime {
        Runtime {
            path,
            root,
            scratch,
            serial: std::cell::Cell::new(0),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.env(LEAK_ENV, "1").stdin(Stdio::null());
        cmd
    }

    fn capture(&self) -> (PathBuf, PathBuf) {
        let n = self.serial.get() + 1;
        self.serial.set(n);
        (
            self.scratch.join(format!("{n}.out")),
            self.scratch.join(format!("{n}.err")),
        )
    }

    fn finish(mut child: std::process::Child, out: &Path, err: &Path) -> Output {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let code = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        Output {
            code,
            stdout: read(out),
            stderr: read(err),
        }
    }

    /// Runs `runtime --root ROOT ARGS...` with output captured.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(args, None)
    }

    pub fn run_in(&self, args: &[&str], cwd: Option<&Path>) -> Output {
        let (out, err) = self.capture();
        let mut cmd = self.command(args);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let spawned = File::create(&out).and_then(|o| {
            let e = File::create(&err)?;
            cmd.stdout(o).stderr(e).spawn()
        });
        match spawned {
            Ok(child) => Self::finish(child, &out, &err),
            Err(e) => Output {
                code: None,
                stdout: String::new(),
                stderr: format!("cannot run {}: {e}", self.path.display()),
            },
        }
    }

    pub fn create(&self, id: &str, bundle: &Path, io: CreateIo) -> Output {
        let bundle = bundle.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", bundle.as_str()];
        let socket;
        if let Some(path) = &io.console_socket {
            socket = path.to_string_lossy().into_owned();
            args.extend(["--console-socket", socket.as_str()]);
        }
        args.push(id);
        let mut cmd = self.command(&args);
        // The runtime's own messages and the container's output share these files.
        let append = |p: &Path| File::options().create(true).append(true).open(p);
        match (append(&io.stdout), append(&io.stderr)) {
            (Ok(o), Ok(e)) => cmd.stdout(o).stderr(e),
            _ => {
                return Output {
                    code: None,
                    stdout: String::new(),
                    stderr: "cannot open the capture files".into(),
                }
            }
        };
        if let Some(fd) = &io.leak_fd {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let raw = fd.as_raw_fd();
            // SAFETY: between fork and exec only async-signal-safe calls: dup2 onto descriptor 5
            // without close-on-exec, so the runtime starts with one descriptor it did not ask for.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(raw, 5) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn();
        drop(io.leak_fd);
        match child {
            Ok(child) => Self::finish(child, &io.stdout, &io.stderr),
            Err(e) => Output {
                code: None,
                stdout: String::new(),
                stderr: e.to_string(),
            },
        }
    }

    /// `state ID`, parsed; Err carries the failure description.
    pub fn state(&self, id: &str) -> Result<Value, String> {
        let out = self.run(&["state", id]);
        if !out.success() {
            return Err(out.describe());
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("state output is not JSON ({e}): {}", out.stdout.trim()))
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id)
            .ok()?
            .get("status")?
            .as_str()
            .map(str::to_owned)
    }

    pub fn start(&self, id: &str) -> Output {
        self.run(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.run(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.run(&["delete", id])
    }

    pub fn force_delete(&self, id: &str) -> Output {
        self.run(&["delete", "--force", id])
    }

    /// Polls `state` until the status is `want`; returns the last status seen.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(id);
            if status.as_deref() == Some(want) || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Problems with a state document per runtime.md "State" (required fields and their types).
pub fn state_problems(state: &Value, id: &str, bundle: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let version = state
        .get("ociVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if version.is_empty() {
        bad.push(format!("ociVersion {:?}", state.get("ociVersion")));
    }
    if state.get("id").and_then(Value::as_str) != Some(id) {
        bad.push(format!("id {:?}, want {id}", state.get("id")));
    }
    let status = state.get("status").and_then(Value::as_str);
    if status.is_none() {
        bad.push("status missing".into());
    }
    let pid = state.get("pid").and_then(Value::as_i64).unwrap_or(0);
    if matches!(status, Some("created" | "running")) && pid <= 0 {
        bad.push(format!("pid {:?} while {status:?}", state.get("pid")));
    }
    let want_bundle = bundle.to_string_lossy();
    if state.get("bundle").and_then(Value::as_str) != Some(&*want_bundle) {
        bad.push(format!(
            "bundle {:?}, want {want_bundle}",
            state.get("bundle")
        ));
    }
    if let Some(a) = state.get("annotations") {
        if !a
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string))
        {
            bad.push(format!("annotations {a}"));
        }
    }
    bad
}
