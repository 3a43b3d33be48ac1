//! The lifecycle verbs, one file each. A [`Container`] is a state directory plus what was read from
//! it; every verb takes the directory's lock for its own length and re-reads the state under it.

mod create;
mod delete;
mod exec;
mod kill;
mod list;
mod pause;
mod start;

use std::path::{Path, PathBuf};

use crate::state::{Record, StateDir};

pub use exec::{wait_pid, ExecOptions};
pub use kill::parse_signal;
pub use list::list;

/// How long delete waits for SIGKILLed processes to be gone (they only have to be scheduled once).
pub(crate) const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What `create` needs beyond the bundle: the runtime's own knobs (runc's flags of the same names).
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// State root (`--root`), default `/run/hull`.
    pub root: PathBuf,
    /// The bundle directory holding config.json.
    pub bundle: PathBuf,
    /// Written atomically with the init's host pid before `create` returns.
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the init (SCM_RIGHTS, data "standard").
    pub pidfd_socket: Option<PathBuf>,
    /// MS_MOVE + chroot instead of pivot_root (for ramfs roots).
    pub no_pivot: bool,
    /// Pass fds 3..3+N of the caller into the container (after the `listen_fds`).
    pub preserve_fds: u32,
    /// Socket activation: the caller's fds 3..3+N are the sockets systemd handed over
    /// ($LISTEN_FDS); they are passed first and the process gets LISTEN_FDS=N and LISTEN_PID=1.
    pub listen_fds: u32,
    /// Proxy sd_notify from the container ($NOTIFY_SOCKET, see [`crate::notify`]): the socket's
    /// directory is mounted in and the process gets NOTIFY_SOCKET; `start` then forwards READY.
    pub notify_socket: bool,
    /// Do not create a new session keyring for the container.
    pub no_new_keyring: bool,
    /// `--systemd-cgroup`: the cgroup is a systemd scope and cgroupsPath is systemd's
    /// `slice:prefix:name` (see [`crate::cgroups::systemd`]).
    pub systemd_cgroup: bool,
    /// Rootless (`--rootless`, see [`crate::rootless`]): the cgroup is placed only where this
    /// user may write, and no device rules are written. Defaults to runc's auto-detection.
    pub rootless: bool,
    /// Create even when the calling program is not a sealed copy of itself (see [`crate::exe`]).
    /// Only for callers whose containers are trusted not to attack the host's binary: the init
    /// runs the caller's executable until it execs, and a process in the container may reach
    /// that file through /proc and overwrite it.
    pub unsealed_exe: bool,
}

impl CreateOptions {
    pub fn new(root: impl Into<PathBuf>, bundle: impl Into<PathBuf>) -> Self {
        CreateOptions {
            root: root.into(),
            bundle: bundle.into(),
            pid_file: None,
            console_socket: None,
            pidfd_socket: None,
            no_pivot: false,
            preserve_fds: 0,
            listen_fds: 0,
            notify_socket: false,
            no_new_keyring: false,
            systemd_cgroup: false,
            rootless: crate::rootless::Rootless::Auto.resolve(),
            unsealed_exe: false,
        }
    }
}

/// A container known to the state root.
#[derive(Debug)]
pub struct Container {
    dir: StateDir,
    record: Record,
    /// Set only in the process that created the container: it is the init's parent and can wait.
    child: Option<nix::unistd::Pid>,
}

impl Container {
    /// Loads the container `id` from `root`, also one being created (or whose create died
    /// half-way: see [`crate::state`]). Takes no lock, so it does not wait for a create: each verb
    /// locks and reads the record again.
    pub fn load(root: &Path, id: &str) -> crate::Result<Container> {
        let dir = StateDir::open(root, id)?;
        let record = dir.read_or_placeholder()?;
        Ok(Container {
            dir,
            record,
            child: None,
        })
    }

    /// [`Container::load`] for an id `list` just found as a directory (see [`StateDir::listed`]).
    pub(crate) fn load_listed(root: &Path, id: &str) -> crate::Result<Container> {
        let dir = StateDir::listed(root, id)?;
        let record = dir.read_or_placeholder()?;
        Ok(Container {
            dir,
            record,
            child: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.record.state.id
    }

    /// The init's host pid (also after it exited).
    pub fn pid(&self) -> i32 {
        self.record.state.pid
    }

    /// The state as `hull state` prints it, with the status computed now.
    pub fn state(&self) -> crate::State {
        let mut s = self.record.state.clone();
        s.status = self.status();
        if s.status == crate::Status::Stopped {
            s.pid = 0;
        }
        s
    }

    pub fn status(&self) -> crate::Status {
        self.dir.status(&self.record)
    }
}

/// `create` and `exec` fork container-side processes from the caller: its executable must be a
/// sealed copy unless the caller opted out.
fn check_sealed(unsealed_exe: bool, op: &str) -> crate::Result<()> {
    if unsealed_exe || crate::exe::is_sealed() {
        return Ok(());
    }
    Err(crate::Error::ExeNotSealed {
        detail: format!("refusing to {op}"),
    })
}
