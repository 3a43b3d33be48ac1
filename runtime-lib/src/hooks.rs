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

use oci_spec::runtime::{Hook, Hooks};

// Defined with the error convention, which carries them in `Error::Hook`; public here.
pub use crate::error::{HookError, HookFailure, HookKind};

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
