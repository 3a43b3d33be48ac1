//! The state root: `<root>/<id>/` holds `state.json` (the container's record) and, while the
//! container is `created`, `exec.fifo` (the init blocks on it until `start`).
//!
//! Every operation on one id holds an exclusive `flock` on the id's directory for its whole length (and
//! no longer), so
//! two concurrent verbs on one container serialise instead of corrupting it. `create` holds it from
//! the moment the directory exists until the container is `created` (or gone), so a `delete` that
//! comes meanwhile waits for the create's outcome instead of finding nothing to delete. Readers
//! (`state`, `list`) take no lock: state.json is only ever replaced whole.
//!
//! `create` writes a first record, stored as `creating`, before it makes anything outside the
//! directory (the cgroup directories it is about to make are in it), so a create killed at any
//! moment leaves a record `delete` can undo. The status is never stored otherwise: it is computed
//! from the init process (matched by pid *and* start time, so a recycled pid is not mistaken for
//! the container) and from the fifo's presence; a `creating` record is `creating` while the
//! process that wrote it lives, `stopped` once it died.
//!
//! Public here: the [`State`] every verb reports (runtime.md's state, as `hull state` prints it),
//! its [`Status`], and the [`DEFAULT_ROOT`].
//!
//! ```no_run
//! let c = hull::Container::load(hull::state::DEFAULT_ROOT.as_ref(), "web")?;
//! let state: hull::State = c.state();
//! println!("{} {} pid {} bundle {:?}", state.id, state.status, state.pid, state.bundle);
//! # Ok::<(), hull::Error>(())
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result, SysContext};
// Where a process's identity (pid and start time) is read; state records it.
pub(crate) use crate::proc_handle::{init_alive, read_small, start_time, ProcessId};

/// The state root when none is given (`--root`), for a caller with root privileges; a rootless
/// caller's default is [`crate::rootless::default_root`].
///
/// ```
/// assert_eq!(hull::state::DEFAULT_ROOT, "/run/hull");
/// ```
pub const DEFAULT_ROOT: &str = "/run/hull";
pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";
/// What the init tells `start` here, once released: [`EXEC_REACHED`] right before its execve; a
/// failed startContainer hook as its JSON `HookFailure`, then end-of-file; end-of-file alone if it
/// died any other way.
pub(crate) const EXEC_DONE_FIFO: &str = "exec.done";
pub(crate) const EXEC_REACHED: &[u8] = b"1";
/// config.json's `process` as the container was created with it (before the runtime's own
/// additions, such as LISTEN_FDS): the template of `hull exec` without `--process`, so exec never
/// goes back to a bundle that may have changed or gone since. Beside state.json rather than in
/// it: only exec reads it, and `list` would otherwise parse every container's process (a
/// microsecond or more each, 5 for runc's default process).
pub(crate) const PROCESS_FILE: &str = "process.json";
/// linux.seccomp compiled at create ([`crate::seccomp::Filter::to_bytes`]), which `exec` loads
/// instead of compiling the profile again (a quarter of a millisecond for Docker's).
pub(crate) const SECCOMP_FILE: &str = "seccomp.bpf";

/// runtime.md's state, with runc's field set (what `hull state` prints; serde gives runc's JSON).
/// [`crate::Container::state`] and [`crate::container::list`] return it.
///
/// ```no_run
/// for s in hull::container::list("/run/hull".as_ref())? {
///     println!("{}\t{}\t{}", s.id, s.status, serde_json::to_string(&s).unwrap_or_default());
/// }
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The version of the runtime spec the container's config.json declares.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// The container's id, unique in its state root.
    pub id: String,
    /// The init's host pid; 0 once the container has stopped (as runc prints it).
    pub pid: i32,
    /// The status, computed when the state was read.
    pub status: Status,
    /// The bundle directory the container was created from (absolute).
    pub bundle: PathBuf,
    /// The root filesystem: `root.path`, resolved against the bundle when relative.
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// runc's `owner`: empty as hull stores it (hull list fills in the state directory's owner).
    pub owner: String,
    /// config.json's `annotations`.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl State {
    /// A container being created (`creating`), with the config's version and annotations: the
    /// runtime's state, and the one the init's own hooks get (with the pid the init sees).
    pub(crate) fn creating(
        spec: &oci_spec::runtime::Spec,
        id: &str,
        pid: i32,
        (bundle, rootfs): (&Path, &Path),
        created: String,
    ) -> State {
        State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            pid,
            status: Status::Creating,
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created,
            owner: String::new(),
            annotations: spec.annotations().clone().unwrap_or_default(),
        }
    }
}

/// A container's status (runtime.md's, plus runc's `paused`), computed from its init each time
/// it is read, never stored. Its `Display` and serde form are the lower-case names.
///
/// ```no_run
/// use hull::{Container, Status};
///
/// let c = Container::load("/run/hull".as_ref(), "web")?;
/// if c.status() == Status::Paused {
///     c.resume()?;
/// }
/// assert_eq!(Status::Running.to_string(), "running");
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is under way (or died half-way: then `delete` removes what it made).
    Creating,
    /// The init is waiting for `start`; the user's process has not run.
    Created,
    /// The user's process runs (as the container's init).
    Running,
    /// The container's processes are frozen (`pause`).
    Paused,
    /// The init has exited; `delete` removes what is left.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `state.json` holds: the public state plus what later verbs need to find the init again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    pub state: State,
    /// /proc/<pid>/stat field 22 of the init, to tell it from a later process with the same pid.
    pub init_start_time: u64,
    /// The spec's hooks, kept for the verbs that run after the bundle may have changed (poststop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Where the container's cgroups are, to find them again without the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<crate::cgroups::CgroupPaths>,
    /// The resources last applied (`update` merges into them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// linux.seccomp, which `exec`'d processes get too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// `create --no-new-keyring`: `exec`'d processes then keep their caller's session keyring, as
    /// the init did, instead of joining the container's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_keyring: bool,
    /// The config has no `process` (config.md: optional until `start`): `start` refuses, and the
    /// init, which has nothing to exec, stays blocked in `created` until killed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_process: bool,
    /// While the record is `creating`: the process running the create (the container is being
    /// created while it lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<ProcessId>,
    /// Processes that were already in the container's cgroup (a `cgroupsPath` naming a cgroup in
    /// use) before create put anything there: never the container's, so delete and `kill --all`
    /// leave them alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_processes: Vec<ProcessId>,
}

impl Record {
    /// True for the record `create` writes before it makes anything: the create has not finished
    /// (it is still running, or it died half-way).
    pub(crate) fn is_creating(&self) -> bool {
        self.state.status == Status::Creating
    }

    /// What a state directory without state.json stands for: a create that died (or is still
    /// running) between making the directory and writing its first record, so nothing was made
    /// outside the directory yet.
    fn placeholder(id: &str) -> Record {
        Record {
            state: State {
                oci_version: String::new(),
                id: id.to_string(),
                pid: 0,
                status: Status::Creating,
                bundle: PathBuf::new(),
                rootfs: PathBuf::new(),
                created: String::new(),
                owner: String::new(),
                annotations: HashMap::new(),
            },
            init_start_time: 0,
            hooks: None,
            cgroups: None,
            resources: None,
            seccomp: None,
            no_new_keyring: false,
            no_process: false,
            creator: None,
            foreign_processes: Vec::new(),
        }
    }
}

/// Validates an id with runc's rule: `^[\w+\-\.]+$`, and not `.` or `..`.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let problem = if id.is_empty() {
        Some("must not be empty")
    } else if id == "." || id == ".." {
        Some("must not be \".\" or \"..\"")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
    {
        Some("may contain only letters, digits, '_', '+', '-' and '.'")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidId {
            id: id.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

/// `<root>/<id>`. Holds no lock itself: each verb takes [`StateDir::lock`] for its own length, so a
/// long-lived holder (`hull run` waiting for its container) never blocks `state` or `kill`.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    path: PathBuf,
}

/// An exclusive lock on one container's state directory; released on drop.
#[derive(Debug)]
pub(crate) struct Lock(Flock<OwnedFd>);

impl Lock {
    /// The locked descriptor, which a forked child must close so it does not keep the lock alive.
    pub(crate) fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

impl StateDir {
    /// Makes a new state directory, locked; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<(StateDir, Lock)> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .io("create state root", root)?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::ContainerExists { id: id.to_string() })
            }
            Err(e) => return Err(e).io("create state directory", &path),
        }
        let dir = StateDir { path };
        let lock = match dir.lock_dir() {
            Ok(lock) => lock,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir.path);
                return Err(e);
            }
        };
        // A delete that came between our mkdir and our lock found no record and removed the
        // directory (what is there now, if anything, is another create's): this create lost.
        let held = nix::sys::stat::fstat(&*lock.0).sys_path("stat state directory", &dir.path)?;
        match nix::sys::stat::stat(&dir.path) {
            Ok(now) if now.st_ino == held.st_ino && now.st_dev == held.st_dev => Ok((dir, lock)),
            _ => Err(Error::Io {
                step: "lock new state directory (a concurrent delete removed it)",
                path: dir.path.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            }),
        }
    }

    /// The state directory of a container, or of a create that has not written its first record
    /// yet (not locked: see [`StateDir::lock`]).
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let dir = StateDir {
            path: root.join(id),
        };
        if !dir.path.is_dir() {
            return Err(dir.not_found());
        }
        Ok(dir)
    }

    /// [`StateDir::open`] for an entry `list` just read from the root as a directory: without the
    /// stat, which costs one system call per container; a directory removed since then reads as
    /// not found all the same (see [`StateDir::read_or_placeholder`]).
    pub(crate) fn listed(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        Ok(StateDir {
            path: root.join(id),
        })
    }

    /// Locks the directory (waiting for a create or another verb that holds it); fails with
    /// `ContainerNotFound` if a concurrent delete removed it or it holds no record.
    pub fn lock(&self) -> Result<Lock> {
        let lock = self.lock_any()?;
        self.check_exists()?;
        Ok(lock)
    }

    /// [`StateDir::lock`], also on a directory without state.json (a create that died before its
    /// first record: only `delete` takes it, to remove it).
    pub(crate) fn lock_any(&self) -> Result<Lock> {
        loop {
            let lock = self.lock_dir()?;
            // The directory we waited on may have been removed meanwhile (a delete), and another
            // create may have made a new one under the same name: a lock is only worth anything
            // on the directory the path names now.
            let held =
                nix::sys::stat::fstat(&*lock.0).sys_path("stat state directory", &self.path)?;
            match nix::sys::stat::stat(&self.path) {
                Ok(now) if now.st_ino == held.st_ino && now.st_dev == held.st_dev => {
                    return Ok(lock)
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::ENOENT) => return Err(self.not_found()),
                Err(e) => return Err(e).sys_path("stat state directory", &self.path),
            }
        }
    }

    // A create killed between mkdir and its first record leaves a directory without state.json:
    // no container to any verb but delete, which removes it.
    fn check_exists(&self) -> Result<()> {
        if self.path.join(STATE_FILE).exists() {
            Ok(())
        } else {
            Err(self.not_found())
        }
    }

    fn not_found(&self) -> Error {
        Error::ContainerNotFound {
            id: self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    fn lock_dir(&self) -> Result<Lock> {
        let fd: OwnedFd = match nix::fcntl::open(
            &self.path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Err(self.not_found()),
            Err(e) => return Err(e).sys_path("open state directory", &self.path),
        };
        let fd = match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Lock(lock)),
            Err((fd, nix::errno::Errno::EWOULDBLOCK)) => fd,
            Err((_, e)) => return Err(e).sys_path("lock state directory", &self.path),
        };
        // A create holds the lock until the container is created, a verb for its own length.
        log::debug!(
            "{} is locked (being created?): waiting",
            self.path.display()
        );
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .sys_path("lock state directory", &self.path)?;
        Ok(Lock(lock))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub(crate) fn done_fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_DONE_FIFO)
    }

    pub(crate) fn read(&self) -> Result<Record> {
        self.read_opt()?.ok_or_else(|| self.not_found())
    }

    /// The record; `None` when state.json is not there (see [`Record::placeholder`]).
    pub(crate) fn read_opt(&self) -> Result<Option<Record>> {
        let p = self.path.join(STATE_FILE);
        let data = match fs::File::open(&p).and_then(|mut f| read_small(&mut f)) {
            Ok(data) => data,
            // NotADirectory: the entry `list` saw as a directory was replaced by a file.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e).io("read state", &p),
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::ConfigSyntax {
                path: p,
                line: e.line(),
                column: e.column(),
                field: String::new(),
                msg: e.to_string(),
            })
    }

    /// The record, or a placeholder for a directory without one (see [`Record::placeholder`]).
    pub(crate) fn read_or_placeholder(&self) -> Result<Record> {
        let id = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.read_opt()? {
            Some(record) => Ok(record),
            // Removed by a delete since it was opened.
            None if !self.path.is_dir() => Err(self.not_found()),
            None => Ok(Record::placeholder(&id)),
        }
    }

    /// Writes state.json atomically (temp file + rename), so a reader never sees half of it.
    pub(crate) fn write(&self, record: &Record) -> Result<()> {
        write_json(&self.path.join(STATE_FILE), record)
    }

    /// Keeps `process` as the container's process template ([`PROCESS_FILE`]).
    pub(crate) fn write_template(&self, process: &oci_spec::runtime::Process) -> Result<()> {
        write_json(&self.path.join(PROCESS_FILE), process)
    }

    /// The container's process template; `None` when there is none (a config without a process,
    /// or a container created by a hull that kept none).
    pub(crate) fn read_template(&self) -> Result<Option<oci_spec::runtime::Process>> {
        let path = self.path.join(PROCESS_FILE);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).io("read process template", &path),
        };
        crate::bundle::parse_process(&data, &path).map(Some)
    }

    /// Removes the directory (call with the lock held; the lock goes when it is dropped).
    pub(crate) fn remove(&self) -> Result<()> {
        fs::remove_dir_all(&self.path).io("remove state directory", &self.path)
    }

    /// The status right now (see the module comment).
    pub(crate) fn status(&self, record: &Record) -> Status {
        if record.is_creating() {
            return if record.creator.is_some_and(|c| c.alive()) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !init_alive(record.state.pid, record.init_start_time) {
            return Status::Stopped;
        }
        let frozen = record.cgroups.as_ref().is_some_and(|paths| {
            matches!(
                crate::cgroups::load(paths).freezer_state(),
                Ok(crate::cgroups::FreezerState::Frozen)
            )
        });
        if frozen {
            Status::Paused
        } else if self.fifo_path().exists() {
            Status::Created
        } else {
            Status::Running
        }
    }
}

/// `value` as JSON in a file of the state directory (mode 0600), written atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let data = serde_json::to_vec(value).map_err(|e| Error::Io {
        step: "write",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    write_atomic(path, &data, 0o600)
}

/// Temp file in the same directory + rename: readers see the old content or the new, never a part.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.io("write", path)
}

/// RFC 3339 UTC with nanoseconds, as runc prints `created`.
pub(crate) fn now_rfc3339() -> String {
    trim_fraction(&humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string())
}

/// Go's RFC3339Nano (runc's `created`) drops trailing zeros of the fraction, and the dot with them.
fn trim_fraction(ts: &str) -> String {
    match ts.rsplit_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => ts.to_string(),
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn fraction_trimmed_as_go_does() {
        use super::trim_fraction as t;
        assert_eq!(
            t("2026-11-22T19:14:19.572211920Z"),
            "2026-11-22T19:14:19.57221192Z"
        );
        assert_eq!(t("2026-11-22T19:14:19.000000000Z"), "2026-11-22T19:14:19Z");
        assert_eq!(
            t("2026-11-22T19:14:19.100000000Z"),
            "2026-11-22T19:14:19.1Z"
        );
    }
}
