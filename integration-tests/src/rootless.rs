//! Rootless test bed: a real unprivileged user made for one test (useradd, its own home and
//! `XDG_RUNTIME_DIR=/run/user/<uid>`, and a subordinate id range), commands run as that user, and
//! its bundles (busybox plus the config `<runtime> spec --rootless` prints as that user). Dropping
//! the [`TestUser`] kills whatever the user still runs (by pid), then removes the user, its home,
//! its runtime directory and its /etc/subuid and /etc/subgid lines, also after a failed test.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime::{runtime_binary, Output, COMMAND_TIMEOUT};
use crate::tmp::unique;

/// The subordinate ids each test user gets: its own range, so parallel tests do not share ids.
const SUB_SIZE: u32 = 65536;

#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub runtime_dir: PathBuf,
    /// First id of the user's /etc/subuid and /etc/subgid range ([`SUB_SIZE`] ids).
    pub sub_start: u32,
    /// A cgroup2 directory to start the user's commands in (see [`TestUser::delegate`]).
    cgroup: Option<PathBuf>,
}

fn run_root(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl TestUser {
    /// Makes a fresh user (`hullrl<pid>x<n>`) with a home, a runtime directory and a subordinate
    /// id range of its own.
    pub fn create() -> TestUser {
        let name = format!("hullrl{}x{}", std::process::id(), unique());
        run_root("useradd", &["--create-home", "--shell", "/bin/sh", &name]);
        let id = |flag: &str| -> u32 {
            let out = run_root("id", &[flag, &name]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let mut user = TestUser {
            home: PathBuf::from("/home").join(&name),
            runtime_dir: PathBuf::from(format!("/run/user/{uid}")),
            name,
            uid,
            gid,
            sub_start: 0,
            cgroup: None,
        };
        // From here on the drop removes whatever was made.
        std::fs::create_dir_all(&user.runtime_dir).expect("create runtime dir");
        std::os::unix::fs::chown(&user.runtime_dir, Some(uid), Some(gid)).expect("chown");
        std::fs::set_permissions(&user.runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        // useradd may already have given one (SUB_UID_COUNT in login.defs); ours is unique per
        // uid either way, far above what useradd hands out.
        user.sub_start = 200_000_000 + (uid % 10_000) * SUB_SIZE;
        let range = format!("{}-{}", user.sub_start, user.sub_start + SUB_SIZE - 1);
        run_root(
            "usermod",
            &["--add-subuids", &range, "--add-subgids", &range, &user.name],
        );
        user
    }

    /// A command run as this user, without supplementary groups, with a login-like environment
    /// (HOME, USER, XDG_RUNTIME_DIR, PATH) and nothing else of the test's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        let (uid, gid) = (self.uid, self.gid);
        let procs = self.cgroup.as_ref().map(|c| {
            std::ffi::CString::new(c.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .expect("no NUL in a cgroup path")
        });
        // SAFETY: only async-signal-safe calls (open, write, close, setgroups, setresgid,
        // setresuid) between fork and exec, on data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(procs) = &procs {
                    // As root still: moving into the delegated cgroup needs the host's rights
                    // over the test's own cgroup.
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs `program args` as this user to completion (stdio in files, so a container that keeps
    /// its stdio does not block the reader); kills it after [`COMMAND_TIMEOUT`].
    pub fn run(&self, program: &Path, args: &[&str]) -> Output {
        let n = unique();
        let out_path = std::env::temp_dir().join(format!("hull-rl-{}-{n}.out", std::process::id()));
        let err_path = out_path.with_extension("err");
        let mut child = self
            .command(program)
            .args(args)
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} {args:?} did not finish", program.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| {
            let s = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
            let _ = std::fs::remove_file(p);
            s
        };
        Output {
            args: std::iter::once(program.display().to_string())
                .chain(args.iter().map(|a| a.to_string()))
                .collect(),
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }

    /// The runtime under test, as this user, with its default `--root`.
    pub fn rt(&self, args: &[&str]) -> Output {
        self.run(runtime_binary(), args)
    }

    /// [`TestUser::rt`] with an explicit runtime binary (runc, to compare).
    pub fn rt_with(&self, bin: &Path, args: &[&str]) -> Output {
        self.run(bin, args)
    }

    /// The runtime's default state root for this user (`$XDG_RUNTIME_DIR/<name>`).
    pub fn default_root(&self, bin: &Path) -> PathBuf {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.runtime_dir.join(name)
    }

    /// A bundle in the user's home: busybox in rootfs/, config.json from `<bin> spec --rootless`
    /// run as the user, with `args` and no terminal.
    pub fn bundle(&self, bin: &Path, args: &[&str]) -> UserBundle {
        let dir = self.home.join(format!("bundle-{}", unique()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("create rootfs");
        crate::rootfs::build(&dir.join("rootfs"));
        run_root(
            "chown",
            &[
                "-R",
                &format!("{}:{}", self.uid, self.gid),
                &dir.to_string_lossy(),
            ],
        );
        let dir_s = dir.to_string_lossy().into_owned();
        self.rt_with(bin, &["spec", "--rootless", "--bundle", &dir_s])
            .ok();
        let mut b = UserBundle {
            dir,
            config: Value::Null,
        };
        b.config = serde_json::from_str(
            &std::fs::read_to_string(b.dir.join("config.json")).expect("read config.json"),
        )
        .expect("parse config.json");
        b.edit(|c| {
            c["process"]["terminal"] = Value::Bool(false);
            c["process"]["args"] = serde_json::json!(args);
        });
        b
    }

    /// Delegates a fresh cgroup2 directory to the user as systemd's user@.service does (the
    /// directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads chowned to the
    /// user, the root's controllers enabled below it), and starts the user's later commands in a
    /// `shell` cgroup below it, so a relative cgroup path lands in the delegated directory. Only
    /// on a pure cgroup v2 host; returns the delegated directory.
    pub fn delegate(&mut self) -> PathBuf {
        let root = Path::new("/sys/fs/cgroup");
        let dir = root.join(format!("{}.slice", self.name));
        std::fs::create_dir(&dir).expect("create delegated cgroup");
        let controllers = std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .expect("read root subtree_control");
        let enable: Vec<String> = controllers
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        std::fs::write(dir.join("cgroup.subtree_control"), enable.join(" "))
            .expect("enable controllers in the delegated cgroup");
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(dir.join(f), Some(self.uid), Some(self.gid))
                .expect("chown delegated cgroup");
        }
        let shell = dir.join("shell");
        std::fs::create_dir(&shell).expect("create shell cgroup");
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(shell.join(f), Some(self.uid), Some(self.gid))
                .expect("chown shell cgroup");
        }
        self.cgroup = Some(shell);
        dir
    }

    /// Pids of every process running as this user.
    pub fn processes(&self) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
                        == Some(self.uid.to_string())
                })
            })
            .collect()
    }

    /// What the user still has in its runtime directory under `root` (state directories).
    pub fn leftovers(&self, root: &Path) -> Vec<String> {
        std::fs::read_dir(root)
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for pid in self.processes() {
            // SAFETY: kill(2) has no memory effects; these are the test user's processes only.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(shell) = self.cgroup.take() {
            let _ = std::fs::remove_dir(&shell);
            if let Some(parent) = shell.parent() {
                if let Ok(entries) = std::fs::read_dir(parent) {
                    for e in entries.flatten().filter(|e| e.path().is_dir()) {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
                let _ = std::fs::remove_dir(parent);
            }
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .stderr(Stdio::null())
            .status();
        // userdel removes the subordinate ranges only where built to; make sure.
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(f) {
                let prefix = format!("{}:", self.name);
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect();
                if kept != text {
                    let _ = std::fs::write(f, kept);
                }
            }
        }
    }
}

/// A bundle in a test user's home (removed with the home).
#[derive(Debug)]
pub struct UserBundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl UserBundle {
    pub fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8 bundle path")
    }

    /// Changes the config and writes config.json at once (keeping the user's ownership).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        let path = self.dir.join("config.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&self.config).expect("serialise"),
        )
        .expect("write config.json");
        self
    }
}
