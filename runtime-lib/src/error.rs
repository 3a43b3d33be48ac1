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

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory operation failed on the host side.
    #[error("{step} {path:?}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call failed on the host side.
    #[error("{step}{}: {source}", fmt_path(.path))]
    Sys {
        step: &'static str,
        path: Option<PathBuf>,
        #[source]
        source: nix::Error,
    },

    /// config.json is not valid JSON, or does not match the runtime-spec schema. `field` is where
    /// in the document the bad value sits (`process.rlimits[0].hard`), empty where the text is not
    /// JSON at all.
    #[error("{path:?}: line {line} column {column}: {}{msg}", fmt_field(.field))]
    ConfigSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        msg: String,
    },

    /// config.json parsed, but a field breaks a rule of the spec (or one Hull must enforce).
    #[error("invalid config {field}: {problem}")]
    InvalidConfig { field: String, problem: String },

    /// A container id that runc would also refuse.
    #[error("invalid container id {id:?}: {problem}")]
    InvalidId { id: String, problem: &'static str },

    #[error("container with id {id:?} already exists")]
    ContainerExists { id: String },

    #[error("container {id:?} does not exist")]
    ContainerNotFound { id: String },

    /// The operation is not allowed in the container's current status (runc's words).
    #[error("{}", status_message(.id, .op, *.status))]
    InvalidStatus {
        id: String,
        op: &'static str,
        status: crate::Status,
    },

    #[error("invalid signal {signal:?}")]
    InvalidSignal { signal: String },

    /// A runc feature Hull does not implement (yet). Never silently ignored.
    #[error("{feature} is not supported by hull")]
    Unsupported { feature: String },

    /// A step inside the container's init failed; the init reported it over the channel.
    #[error("{0}")]
    Init(InitFailure),

    /// A hook failed (only those whose failure fails the operation: see `hooks`).
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookFailure),

    /// The running executable is not a sealed copy of itself (see [`crate::exe`]): a process in
    /// the container could reach it through /proc and overwrite the runtime's binary.
    #[error(
        "{detail}: the runtime's executable is not sealed (call hull::exe::ensure_sealed() \
         first in main)"
    )]
    ExeNotSealed { detail: String },

    /// systemd could not be asked (no bus), or refused (`--systemd-cgroup`): the unit and its
    /// error.
    #[error("systemd: {step} unit {unit:?}: {detail}")]
    Systemd {
        step: &'static str,
        unit: String,
        detail: String,
    },

    /// The init died or closed the channel without saying why.
    #[error("container init {step}: {detail}")]
    InitLost { step: &'static str, detail: String },

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InitStep {
    JoinNamespace,
    CreateNamespaces,
    /// Changing into the bundle directory, whose relative paths (root.path, bind sources) the
    /// rest of the setup uses.
    Bundle,
    IdMappings,
    RootfsPropagation,
    RootfsBind,
    Mount,
    Devices,
    Pivot,
    MaskedPaths,
    ReadonlyPaths,
    ReadonlyRoot,
    Hostname,
    Domainname,
    Sysctl,
    Console,
    Rlimits,
    User,
    Capabilities,
    NoNewPrivileges,
    Hooks,
    Scheduler,
    IoPriority,
    MemoryPolicy,
    CpuAffinity,
    Personality,
    NetDevices,
    Seccomp,
    SecurityLabels,
    Cwd,
    Executable,
    Exec,
    Sync,
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
        };
        f.write_str(s)
    }
}

/// An error raised inside the container's init, as it crosses the channel to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct InitFailure {
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
    pub fn new(step: InitStep) -> Self {
        InitFailure {
            step,
            subject: None,
            errno: None,
            detail: None,
        }
    }
    pub fn sys(step: InitStep, subject: impl std::fmt::Display, errno: nix::Error) -> Self {
        InitFailure {
            step,
            subject: Some(subject.to_string()),
            errno: Some(errno as i32),
            detail: None,
        }
    }
    pub fn subject(mut self, s: impl std::fmt::Display) -> Self {
        self.subject = Some(s.to_string());
        self
    }
    pub fn errno(mut self, e: nix::Error) -> Self {
        self.errno = Some(e as i32);
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
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
pub type InitResult<T = ()> = std::result::Result<T, InitFailure>;

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
