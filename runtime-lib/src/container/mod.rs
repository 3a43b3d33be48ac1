//! The lifecycle verbs, one file each. A [`Container`] is a state directory plus what was read from
//! it; every verb takes the directory's lock for its own length and re-reads the state under it.
//!
//! Each verb is runc's of the same name, with its rules (which status allows it, what it leaves
//! behind); a container created by the `hull` binary can be handled here and the other way round,
//! given the same state root.
//!
//! ```no_run
//! use hull::container::{list, parse_signal};
//! use hull::Container;
//!
//! // `hull kill --all web TERM` for every running container, then `hull delete --force`.
//! let root = std::path::Path::new("/run/hull");
//! for state in list(root)? {
//!     if state.status == hull::Status::Running {
//!         Container::load(root, &state.id)?.kill(parse_signal("TERM")?, true)?;
//!     }
//!     Container::delete_id(root, &state.id, true)?;
//! }
//! # Ok::<(), hull::Error>(())
//! ```

mod builder;
mod create;
mod delete;
mod events;
mod exec;
mod helper;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
pub mod spec;
mod start;
mod stdio;
mod update;
mod wait;
pub(crate) mod wire;

use std::path::{Path, PathBuf};

use crate::state::{Record, StateDir};

pub use builder::{ContainerBuilder, ExecBuilder, ExecProcess};
pub use exec::{wait_pid, ExecOptions};
pub use stdio::{ProcessIo, Stdio};

pub(crate) use helper::{main_calls_hull, serve_and_exit, HELPER_ENV};
// For exec: whether this process clones for its parent (a helper's caller).
use crate::process::spawn::clone_parent;
pub(crate) use create::Config;
pub use kill::parse_signal;
pub use list::list;

/// How long delete waits for SIGKILLed processes to be gone (they only have to be scheduled once).
pub(crate) const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What `create` needs beyond the bundle: the runtime's own knobs (runc's flags of the same names).
///
/// ```no_run
/// let mut opts = hull::CreateOptions::new("/run/hull", "/srv/bundle");
/// opts.pid_file = Some("/run/web.pid".into());
/// opts.console_socket = Some("/run/web-console.sock".into());
/// let c = hull::Container::create("web", &opts)?;
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// Proxy sd_notify from the container ($NOTIFY_SOCKET, see [`crate::sd_notify`]): the socket's
    /// directory is mounted in and the process gets NOTIFY_SOCKET; `start` then forwards READY.
    pub notify_socket: bool,
    /// Do not create a new session keyring for the container.
    pub no_new_keyring: bool,
    /// `--systemd-cgroup`: the cgroup is a systemd scope and cgroupsPath is systemd's
    /// `slice:prefix:name` (see the README's "The systemd cgroup driver").
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
    /// The options of `hull --root <root> create --bundle <bundle>` with no other flag: every
    /// `Option` unset, every count 0, every switch off except [`CreateOptions::rootless`], which
    /// is detected as runc detects it ([`crate::rootless::Rootless::Auto`]).
    ///
    /// ```
    /// let opts = hull::CreateOptions::new("/run/hull", "/srv/bundle");
    /// assert_eq!(opts.bundle, std::path::Path::new("/srv/bundle"));
    /// assert!(opts.pid_file.is_none() && !opts.no_pivot && !opts.unsealed_exe);
    /// ```
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

/// A container known to the state root: the handle every verb goes through.
/// [`Container::create`] makes one, [`Container::load`] finds one made before (by this program,
/// another one or the `hull` binary).
///
/// ```no_run
/// use hull::{Container, CreateOptions};
///
/// hull::exe::ensure_sealed()?;
/// let mut c = Container::create("web", &CreateOptions::new("/run/hull", "/srv/bundle"))?;
/// c.start()?;
/// println!("{} runs as pid {}", c.id(), c.pid());
/// let code = c.wait()?;
/// c.delete(false)?;
/// println!("exited with {code}");
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
pub struct Container {
    dir: StateDir,
    record: Record,
    /// Set only in the process that created the container: it is the init's parent and can wait.
    child: Option<nix::unistd::Pid>,
    /// The caller's ends of the init's piped streams and pty (see [`Stdio`]).
    io: ProcessIo,
}

impl Container {
    /// Loads the container `id` from `root`, also one being created (or whose create died
    /// half-way: see [`crate::state`]). Takes no lock, so it does not wait for a create: each verb
    /// locks and reads the record again. Errors: [`crate::Error::ContainerNotFound`], or
    /// [`crate::Error::Io`] on an unreadable state.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// println!("{}", c.status());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn load(root: &Path, id: &str) -> crate::Result<Container> {
        Container::from_dir(StateDir::open(root, id)?)
    }

    /// [`Container::load`] for an id `list` just found as a directory (see [`StateDir::listed`]).
    pub(crate) fn load_listed(root: &Path, id: &str) -> crate::Result<Container> {
        Container::from_dir(StateDir::listed(root, id)?)
    }

    fn from_dir(dir: StateDir) -> crate::Result<Container> {
        let record = dir.read_or_placeholder()?;
        Ok(Container {
            dir,
            record,
            child: None,
            io: ProcessIo::default(),
        })
    }

    /// The container's id.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// assert_eq!(c.id(), "web");
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.record.state.id
    }

    /// The init's host pid (also after it exited).
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// println!("the init is {}", c.pid());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn pid(&self) -> i32 {
        self.record.state.pid
    }

    /// `state`: the state as `hull state` prints it, with the status computed now.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// println!("{}", serde_json::to_string_pretty(&c.state()).unwrap_or_default());
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn state(&self) -> crate::State {
        let mut s = self.record.state.clone();
        s.status = self.status();
        if s.status == crate::Status::Stopped {
            s.pid = 0;
        }
        s
    }

    /// The status, computed now from the init (matched by pid and start time) and the state
    /// directory.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// if c.status() == hull::Status::Stopped {
    ///     c.delete(false)?;
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn status(&self) -> crate::Status {
        self.dir.status(&self.record)
    }

    /// Takes the caller's ends of the init's piped streams and its pty master, as asked of
    /// [`ContainerBuilder`] (empty afterwards, and in a process that loaded the container).
    ///
    /// ```no_run
    /// # fn c() -> hull::Container { unimplemented!() }
    /// let mut c = c();
    /// let io = c.take_io();
    /// assert!(io.stdin.is_none() || io.pty_master.is_none());
    /// ```
    pub fn take_io(&mut self) -> ProcessIo {
        std::mem::take(&mut self.io)
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
