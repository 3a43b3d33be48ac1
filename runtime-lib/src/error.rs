//! Hull's one error convention.
//!
//! Every failure is an [`Error`] variant that says *which step* failed and *what* it concerned (a path,
//! an id, a config field). Errors raised inside the container's init cross the process boundary as an
//! [`InitFailure`] (a typed, serialisable record, see `process::channel`) and come back as
//! [`Error::Init`], so a caller sees the same shape whichever process failed.
//!
//! Messages are written for the person reading containerd's or conmon's log: lower case, no trailing
//! period, the failing thing named in quotes, mirroring runc's wording where runc has one.

use std::path::PathBuf;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// A step or verb name, a literal of hull's. An alias because serde would read a written
/// `&'static str` as borrowed from its input, which no error crossing from the helper process is
/// (`container::wire` interns it instead).
type Name = &'static str;

/// The result of every hull call: `Err` is an [`Error`].
///
/// ```
/// fn status(root: &std::path::Path, id: &str) -> hull::Result<hull::Status> {
///     Ok(hull::Container::load(root, id)?.status())
/// }
/// # let _ = status;
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a hull call failed: the failing step and the path, id or config field it concerned. Its
/// `Display` is the message for logs that engines and users read, in runc's words where runc has
/// a message for the same failure.
///
/// Match on the variants that call for a different action (an id that is taken, a container that
/// is gone, a verb the container's status does not allow); the rest are for the log.
///
/// ```no_run
/// use hull::{Container, Error};
///
/// match Container::load("/run/hull".as_ref(), "web") {
///     Ok(c) => println!("{} is {}", c.id(), c.status()),
///     Err(Error::ContainerNotFound { id }) => println!("no container {id}"),
///     Err(e) => eprintln!("hull: {e}"),
/// }
/// ```
// Serialisable so that it crosses from the helper process as it is (`container::wire`).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory operation failed on the host side.
    #[error("{step} {path:?}: {source}")]
    Io {
        /// What hull was doing (`"open"`, `"read state root"`...).
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        step: Name,
        /// The file or directory it concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        #[serde(with = "crate::container::wire::io_error")]
        source: std::io::Error,
    },

    /// A system call failed on the host side.
    #[error("{step}{}: {source}", fmt_path(.path))]
    Sys {
        /// What hull was doing (`"lock state directory"`, `"open namespace"`...).
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        step: Name,
        /// The file it concerned, when there is one.
        path: Option<PathBuf>,
        /// The errno.
        #[source]
        #[serde(with = "crate::container::wire::errno")]
        source: nix::Error,
    },

    /// config.json is not valid JSON, or does not match the runtime-spec schema. `field` is where
    /// in the document the bad value sits (`process.rlimits[0].hard`), empty where the text is not
    /// JSON at all.
    #[error("{path:?}: line {line} column {column}: {}{msg}", fmt_field(.field))]
    ConfigSyntax {
        /// The file (config.json, or an `exec --process` file).
        path: PathBuf,
        /// Where the bad value is, from 1 (serde_json's count).
        line: usize,
        /// Where the bad value is, from 1.
        column: usize,
        /// The value's place in the document, as the spec names it.
        field: String,
        /// The parser's complaint.
        msg: String,
    },

    /// config.json parsed, but a field breaks a rule of the spec (or one Hull must enforce).
    #[error("invalid config {field}: {problem}")]
    InvalidConfig {
        /// The field, as the spec names it (`linux.seccomp.syscalls[3].errnoRet`).
        field: String,
        /// The rule it breaks.
        problem: String,
    },

    /// A container id that runc would also refuse.
    #[error("invalid container id {id:?}: {problem}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it is refused.
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        problem: Name,
    },

    /// `create` of an id the state root already holds.
    #[error("container with id {id:?} already exists")]
    ContainerExists {
        /// The id given.
        id: String,
    },

    /// No container of that id in the state root (never created, or deleted).
    #[error("container {id:?} does not exist")]
    ContainerNotFound {
        /// The id given.
        id: String,
    },

    /// The operation is not allowed in the container's current status (runc's words).
    #[error("{}", status_message(.id, .op, *.status))]
    InvalidStatus {
        /// The container's id.
        id: String,
        /// The verb refused (`"start"`, `"delete"`, `"exec"`...).
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        op: Name,
        /// The status it found the container in.
        status: crate::Status,
    },

    /// A signal name or number [`crate::container::parse_signal`] does not know.
    #[error("invalid signal {signal:?}")]
    InvalidSignal {
        /// The text given.
        signal: String,
    },

    /// A runc feature Hull does not implement (yet). Never silently ignored.
    #[error("{feature} is not supported by hull")]
    Unsupported {
        /// What was asked for.
        feature: String,
    },

    /// A step inside the container's init failed; the init reported it over the channel.
    #[error("{0}")]
    Init(InitFailure),

    /// A hook failed (only those whose failure fails the operation: see [`crate::hooks`]).
    #[error(transparent)]
    Hook(#[from] HookFailure),

    /// The running executable is not a sealed copy of itself (see [`crate::exe`]): a process in
    /// the container could reach it through /proc and overwrite the runtime's binary.
    #[error(
        "{detail}: the runtime's executable is not sealed (call hull::exe::ensure_sealed() \
         first in main)"
    )]
    ExeNotSealed {
        /// What was refused, or why sealing failed.
        detail: String,
    },

    /// systemd could not be asked (no bus), or refused (`--systemd-cgroup`): the unit and its
    /// error.
    #[error("systemd: {step} unit {unit:?}: {detail}")]
    Systemd {
        /// What hull asked of systemd (`"start"`, `"stop"`...).
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        step: Name,
        /// The scope unit.
        unit: String,
        /// systemd's error name and message, or why the bus could not be reached.
        detail: String,
    },

    /// The init died or closed the channel without saying why.
    #[error("container init {step}: {detail}")]
    InitLost {
        /// Where hull was in the exchange with the init.
        #[serde(deserialize_with = "crate::container::wire::static_str")]
        step: Name,
        /// What it saw (an exit status, a signal, an early end of the channel).
        detail: String,
    },

    /// An OCI image layout, or one of its blobs, is not what the image spec says (see
    /// `hull::image`): the file concerned and what is wrong with it.
    #[error("image {path:?}: {problem}")]
    Image {
        /// The layout's file (index.json, a blob) or the store's directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A layer entry that was refused, nothing of it written: it would leave the layer's root
    /// (`..`, an absolute path, a link or a path through a symlink), or is a device node where
    /// none are allowed. `layer` is the layer's digest, `entry` the path as the tar names it.
    #[error("layer {layer}: entry {entry:?} refused: {problem}")]
    LayerEntry {
        /// The layer's blob digest.
        layer: String,
        /// The entry's path as the layer's tar names it.
        entry: PathBuf,
        /// Why it was refused.
        problem: String,
    },
}

fn status_message(id: &str, op: &str, status: crate::Status) -> String {
    use crate::Status::*;
    match (op, status) {
        ("start", Running) => "cannot start an already running container".into(),
        ("start", Stopped) => "cannot start a container that has stopped".into(),
        ("start", s) => format!("cannot start a container in the {s} state"),
        ("delete", s) => format!("cannot delete container {id} that is not stopped: {s}"),
        ("kill", Stopped) => "container not running".into(),
        ("exec", Paused) => {
            "cannot exec in a paused container (use --ignore-paused to override)".into()
        }
        ("exec", Stopped) => "cannot exec in a stopped container".into(),
        ("pause", _) => "container not running".into(),
        ("resume", _) => "container not paused".into(),
        (_, Stopped) => format!("container with id {id} is not running"),
        (op, s) => format!("cannot {op} container {id}: container is {s}"),
    }
}

fn fmt_field(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!("{field}: ")
    }
}

fn fmt_path(p: &Option<PathBuf>) -> String {
    match p {
        Some(p) => format!(" {p:?}"),
        None => String::new(),
    }
}

/// The init sequence's steps, in the order the init runs them. Named after the spec field or
/// operation they apply, so an error reads as the spec does.
///
/// ```no_run
/// use hull::{Container, CreateOptions, Error, InitStep};
///
/// match Container::create("web", &CreateOptions::new("/run/hull", "/srv/bundle")) {
///     Err(Error::Init(f)) if f.step == InitStep::Mount => {
///         eprintln!("mount {:?} failed", f.subject)
///     }
///     other => drop(other),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InitStep {
    /// Joining a namespace of `linux.namespaces` that has a `path`.
    JoinNamespace,
    /// Unsharing the namespaces of `linux.namespaces` that have no `path`.
    CreateNamespaces,
    /// Changing into the bundle directory, whose relative paths (root.path, bind sources) the
    /// rest of the setup uses.
    Bundle,
    /// Writing `linux.uidMappings` and `linux.gidMappings`.
    IdMappings,
    /// Setting `linux.rootfsPropagation` (and making the mount tree private first).
    RootfsPropagation,
    /// Bind-mounting `root.path` onto itself, so it is a mount point for pivot_root.
    RootfsBind,
    /// One of `mounts`; the subject is its destination.
    Mount,
    /// Creating a node of `linux.devices` (or a default device).
    Devices,
    /// pivot_root into the root filesystem (or MS_MOVE and chroot with no_pivot).
    Pivot,
    /// Masking a path of `linux.maskedPaths`.
    MaskedPaths,
    /// Remounting a path of `linux.readonlyPaths` read-only.
    ReadonlyPaths,
    /// Remounting the root read-only (`root.readonly`).
    ReadonlyRoot,
    /// Setting `hostname`.
    Hostname,
    /// Setting `domainname`.
    Domainname,
    /// Writing a key of `linux.sysctl`.
    Sysctl,
    /// Setting up the pty of `process.terminal` and sending its master to the console socket.
    Console,
    /// Setting one of `process.rlimits`.
    Rlimits,
    /// Switching to `process.user` (uid, gid, additional gids, umask).
    User,
    /// Setting `process.capabilities`.
    Capabilities,
    /// Setting `process.noNewPrivileges`.
    NoNewPrivileges,
    /// Running the `createContainer` or `startContainer` hooks, or asking the runtime to run
    /// `prestart` and `createRuntime`.
    Hooks,
    /// Setting `process.scheduler`.
    Scheduler,
    /// Setting `process.ioPriority`.
    IoPriority,
    /// Setting `linux.memoryPolicy`.
    MemoryPolicy,
    /// Setting `process.execCPUAffinity`.
    CpuAffinity,
    /// Setting `linux.personality`.
    Personality,
    /// Moving a device of `linux.netDevices` into the network namespace.
    NetDevices,
    /// Loading `linux.seccomp`, or handing its notify listener to `listenerPath`.
    Seccomp,
    /// Applying `process.apparmorProfile` or `process.selinuxLabel`.
    SecurityLabels,
    /// Changing into `process.cwd`.
    Cwd,
    /// Finding `process.args[0]` (in `$PATH` when it has no slash); the subject is the name.
    Executable,
    /// The `execve` of the user's program itself.
    Exec,
    /// The exchange with the runtime (the channel, `start`'s exec fifo) and the init's own
    /// preparation around it.
    Sync,
    /// Joining the container's v1 cgroups (the init or exec'd process writes itself to their
    /// `tasks` files); the subject is the file.
    Cgroups,
}

impl std::fmt::Display for InitStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            InitStep::JoinNamespace => "join namespace",
            InitStep::CreateNamespaces => "create namespaces",
            InitStep::Bundle => "enter bundle directory",
            InitStep::IdMappings => "apply uid/gid mappings",
            InitStep::RootfsPropagation => "set rootfsPropagation",
            InitStep::RootfsBind => "bind mount root.path",
            InitStep::Mount => "mount",
            InitStep::Devices => "create device",
            InitStep::Pivot => "pivot_root",
            InitStep::MaskedPaths => "mask path",
            InitStep::ReadonlyPaths => "make path read-only",
            InitStep::ReadonlyRoot => "make root read-only",
            InitStep::Hostname => "set hostname",
            InitStep::Domainname => "set domainname",
            InitStep::Sysctl => "set sysctl",
            InitStep::Console => "set up console",
            InitStep::Rlimits => "set rlimit",
            InitStep::User => "set user",
            InitStep::Capabilities => "set capabilities",
            InitStep::NoNewPrivileges => "set noNewPrivileges",
            InitStep::Hooks => "hooks",
            InitStep::Seccomp => "load seccomp filter",
            InitStep::SecurityLabels => "set apparmorProfile/selinuxLabel",
            InitStep::NetDevices => "set up network device",
            InitStep::Scheduler => "set scheduler",
            InitStep::IoPriority => "set ioPriority",
            InitStep::MemoryPolicy => "set memoryPolicy",
            InitStep::CpuAffinity => "set execCPUAffinity",
            InitStep::Personality => "set personality",
            InitStep::Cwd => "chdir to cwd",
            InitStep::Executable => "exec",
            InitStep::Exec => "exec",
            InitStep::Sync => "sync with runtime",
            InitStep::Cgroups => "join cgroup",
        };
        f.write_str(s)
    }
}

/// An error raised inside the container's init (or a process `exec` started, before its
/// `execve`), as it crosses the channel to the runtime; it reaches the caller as [`Error::Init`].
///
/// ```no_run
/// use hull::{Container, CreateOptions, Error, InitStep};
///
/// let opts = CreateOptions::new("/run/hull", "/srv/bundle");
/// if let Err(Error::Init(f)) = Container::create("web", &opts) {
///     if f.step == InitStep::Executable {
///         eprintln!("no program {:?} in the container", f.subject.unwrap_or_default());
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct InitFailure {
    /// The step that failed.
    pub step: InitStep,
    /// What the step concerned: a path (mount destination, device, cwd), a sysctl key, an rlimit...
    pub subject: Option<String>,
    /// The errno of the failing system call, when one failed.
    pub errno: Option<i32>,
    /// Extra words when errno alone would not explain it (e.g. "executable file not found in $PATH").
    pub detail: Option<String>,
}

impl std::fmt::Display for InitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if matches!(self.step, InitStep::Executable | InitStep::Exec) {
            // runc's wording, which engines and users grep for.
            write!(f, "exec: {:?}", self.subject.as_deref().unwrap_or(""))?;
        } else {
            write!(f, "{}", self.step)?;
            if let Some(s) = &self.subject {
                write!(f, " {s:?}")?;
            }
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(e) = self.errno {
            write!(
                f,
                ": {}",
                nix::errno::Errno::from_raw(e).desc().to_lowercase()
            )?;
        }
        Ok(())
    }
}

impl InitFailure {
    pub(crate) fn new(step: InitStep) -> Self {
        InitFailure {
            step,
            subject: None,
            errno: None,
            detail: None,
        }
    }
    pub(crate) fn sys(step: InitStep, subject: impl std::fmt::Display, errno: nix::Error) -> Self {
        InitFailure {
            step,
            subject: Some(subject.to_string()),
            errno: Some(errno as i32),
            detail: None,
        }
    }
    pub(crate) fn subject(mut self, s: impl std::fmt::Display) -> Self {
        self.subject = Some(s.to_string());
        self
    }
    pub(crate) fn errno(mut self, e: nix::Error) -> Self {
        self.errno = Some(e as i32);
        self
    }
    pub(crate) fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

impl From<InitFailure> for Error {
    fn from(f: InitFailure) -> Self {
        Error::Init(f)
    }
}

/// Result type of the code that runs inside the container's init.
pub(crate) type InitResult<T = ()> = std::result::Result<T, InitFailure>;

/// Shorthands so call sites stay one line.
pub(crate) trait Context<T> {
    fn io(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn io(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            step,
            path: path.into(),
            source,
        })
    }
}

pub(crate) trait SysContext<T> {
    fn sys(self, step: &'static str) -> Result<T>;
    fn sys_path(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T>;
    /// Inside the init: tag a failed syscall with its step and subject.
    fn init(self, step: InitStep, subject: impl std::fmt::Display) -> InitResult<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Sys {
            step,
            path: None,
            source,
        })
    }
    fn sys_path(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Sys {
            step,
            path: Some(path.into()),
            source,
        })
    }
    fn init(self, step: InitStep, subject: impl std::fmt::Display) -> InitResult<T> {
        self.map_err(|e| InitFailure::sys(step, subject, e))
    }
}

/// The hook kinds, with the spec's names (their `Display`).
///
/// ```
/// use hull::hooks::HookKind;
///
/// assert_eq!(HookKind::CreateRuntime.to_string(), "createRuntime");
/// assert_eq!(HookKind::ALL.last(), Some(&HookKind::Poststop));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookKind {
    /// `hooks.prestart` (deprecated by the spec, still run): by the runtime during `create`, in
    /// the runtime's namespaces.
    Prestart,
    /// `hooks.createRuntime`: by the runtime during `create`, once the namespaces exist.
    CreateRuntime,
    /// `hooks.createContainer`: by the init in the container's namespaces, before pivot_root.
    CreateContainer,
    /// `hooks.startContainer`: by the init at `start`, just before the user's program.
    StartContainer,
    /// `hooks.poststart`: by `start` once the user's program runs; a failure fails `start`
    /// and kills the container.
    Poststart,
    /// `hooks.poststop`: by `delete`; a failure only warns.
    Poststop,
}

impl HookKind {
    /// Every kind, in the order the lifecycle runs them.
    pub const ALL: [HookKind; 6] = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ];
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        })
    }
}

/// One hook that failed: which one, and how (runc's wording: `error running <kind> hook #<n>`).
/// Serialisable: a startContainer hook fails in the init, which hands this to `start`.
///
/// ```
/// use hull::hooks::{HookError, HookFailure, HookKind};
///
/// let f = HookFailure {
///     kind: HookKind::Prestart,
///     index: 0,
///     path: "/usr/bin/net-setup".into(),
///     error: Box::new(HookError::Timeout { secs: 5 }),
/// };
/// assert_eq!(
///     f.to_string(),
///     "error running prestart hook #0 \"/usr/bin/net-setup\": \
///      ran past its timeout of 5s and was killed"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("error running {kind} hook #{index} {path:?}: {error}")]
pub struct HookFailure {
    /// The kind of the hook.
    pub kind: HookKind,
    /// Its place in the spec's list of that kind, from 0.
    pub index: usize,
    /// The hook's `path`.
    pub path: String,
    /// Boxed: the output a failed hook left would make every `Result` carrying this large.
    pub error: Box<HookError>,
}

/// How a hook failed.
///
/// ```
/// use hull::hooks::HookError;
///
/// let e = HookError::Spawn { errno: libc::ENOENT };
/// assert_eq!(e.to_string(), "cannot run it: no such file or directory");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HookError {
    /// The fork or the exec of `path` failed.
    #[error("cannot run it: {}", desc(*errno))]
    Spawn {
        /// The errno of the fork or the exec.
        errno: i32,
    },
    /// Still running `secs` seconds after it was spawned: it was killed.
    #[error("ran past its timeout of {secs}s and was killed")]
    Timeout {
        /// The hook's `timeout`.
        secs: i64,
    },
    /// It exited non-zero or died of a signal; the end of what it wrote (runc shows its output too).
    #[error("{status}, stdout: {stdout}, stderr: {stderr}")]
    Failed {
        /// How it ended, as Rust prints an exit status (`exit status: 1`).
        status: String,
        /// The last 16 KiB of its standard output.
        stdout: String,
        /// The last 16 KiB of its standard error.
        stderr: String,
    },
    /// Feeding it its state or watching it failed.
    #[error("{step}: {}", desc(*errno))]
    Io {
        /// What hull was doing.
        step: String,
        /// The errno.
        errno: i32,
    },
}

fn desc(errno: i32) -> String {
    Errno::from_raw(errno).desc().to_lowercase()
}
