//! OCI hooks (config.md "POSIX-platform Hooks"): each hook is a program run with the container's
//! state on its stdin; a non-zero exit (or its timeout) fails the operation that ran it, except
//! poststop, which only warns.
//!
//! Where each kind runs (the spec's timing, and runc's), and the state it gets:
//! - `prestart`, `createRuntime`: by the runtime during `create`, after the init has made its mounts
//!   but before pivot_root (the init asks for them over the channel); `creating`, the host pid;
//! - `createContainer`: by the init, in the container's namespaces, right after that, before pivot;
//!   `creating`, the init's pid as the container sees it;
//! - `startContainer`: by the init, after `start` released it, just before the exec; `created`
//!   (the user's program has not run yet), the pid as the container sees it;
//! - `poststart`: by `start` once the init has exec'd; `running`, the host pid;
//! - `poststop`: by `delete` at its end, and by a failed `create` once it has removed what it made
//!   (runtime.md: the lifecycle continues at the delete step); `stopped`, no pid (0).
//!
//! A hook's stdin, stdout and stderr are pipes served together by one poll loop: the state is fed
//! as the hook reads it and its output drained as it writes, so neither side waits on a full pipe,
//! and `timeout` counts from the spawn, covering the write of the state too.
//!
//! Public here: the types of a hook's failure, which reach the caller as
//! [`crate::Error::Hook`].
//!
//! ```no_run
//! use hull::hooks::{HookError, HookKind};
//!
//! match hull::Container::create("web", &hull::CreateOptions::new("/run/hull", "/srv/bundle")) {
//!     Err(hull::Error::Hook(f)) if f.kind == HookKind::CreateRuntime => {
//!         if let HookError::Failed { stderr, .. } = *f.error {
//!             eprintln!("hook {} said: {stderr}", f.path);
//!         }
//!     }
//!     other => drop(other),
//! }
//! ```

use nix::errno::Errno;
use oci_spec::runtime::{Hook, Hooks};
use serde::{Deserialize, Serialize};

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

/// The hooks of one kind in `hooks`.
pub(crate) fn of_kind(hooks: &Hooks, kind: HookKind) -> &[Hook] {
    #[allow(deprecated)]
    let list = match kind {
        HookKind::Prestart => hooks.prestart(),
        HookKind::CreateRuntime => hooks.create_runtime(),
        HookKind::CreateContainer => hooks.create_container(),
        HookKind::StartContainer => hooks.start_container(),
        HookKind::Poststart => hooks.poststart(),
        HookKind::Poststop => hooks.poststop(),
    };
    list.as_deref().unwrap_or_default()
}
