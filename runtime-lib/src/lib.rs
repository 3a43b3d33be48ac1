//! Hull: an OCI runtime-spec container runtime as a library.
//!
//! The same lifecycle as the `hull` binary (runc's verbs), for a Rust program without a daemon:
//! [`Container`] and its verbs, the options of [`CreateOptions`] and [`ExecOptions`], the
//! [`State`] they report, one [`Error`] type. The specs are [`oci_spec`]'s types, re-exported so
//! that a program uses exactly hull's version of them.
//!
//! ```no_run
//! use hull::{Container, Stdio};
//! // First thing in main: re-execute from a sealed copy of this program (see `exe`); it is also
//! // where hull's helper processes start (see below).
//! hull::exe::ensure_sealed()?;
//! # let spec = hull::oci_spec::runtime::Spec::default();
//! let mut c = Container::builder("demo")
//!     .spec(spec) // or .bundle("/path/to/bundle"), a directory with config.json
//!     .root("/run/hull")
//!     .stdout(Stdio::Piped)
//!     .create()?;
//! let stdout = c.take_io().stdout; // an OwnedFd: read the container's output from it
//! c.start()?;
//! let status = c.wait()?; // this process is the init's parent
//! c.delete(false)?;
//! # Ok::<(), hull::Error>(())
//! ```
//!
//! The container's init, and a process [`Container::exec`] starts, run the caller's executable
//! until they exec the container's program, and a process in the container may reach that file
//! through /proc: the caller must run from a sealed copy of itself, made by
//! [`exe::ensure_sealed`] at the top of `main`. `create` and `exec` refuse to run otherwise
//! ([`Error::ExeNotSealed`]), unless told not to check ([`CreateOptions::unsealed_exe`],
//! [`ExecOptions::unsealed_exe`]).
//!
//! The caller may have any number of threads (a tokio program, say). A single-threaded caller
//! (the CLI) clones the init itself; a multi-threaded one has `create` and `exec` run by a fresh,
//! single-threaded helper (a new start of the program, which [`exe::ensure_sealed`] turns into the
//! helper), which clones the init so that the caller is still its parent: see
//! `container::helper`. With the `tokio` feature, `Container::wait_async` and
//! `ExecProcess::wait_async` await an exit on a pidfd.
//!
//! The modules:
//! - [`container`]: [`Container`], its options, and the verbs that take no container
//!   ([`container::list`], [`container::wait_pid`], [`container::parse_signal`]);
//! - [`bundle`] and [`spec`]: reading a bundle's config.json, the default one (`hull spec`);
//! - [`state`]: the [`State`] and [`Status`] a container reports, the default state root;
//! - [`events`]: resource usage and OOM events (`hull events`);
//! - [`exe`]: running from a sealed copy of the program;
//! - [`features`]: what this build implements (`hull features`);
//! - [`rootless`]: running without privileges;
//! - [`hooks`] and [`sd_notify`]: the types of a hook's failure, the `$NOTIFY_SOCKET` proxy.
//!
//! Every call returns [`Result`]: an [`Error`] says which step failed and on what, and a failure
//! inside the container's init comes back as [`Error::Init`] with its [`InitStep`].

#![deny(missing_docs)]
// Every unsafe block says why it is sound (house rule); .ci/run's clippy enforces it.
#![deny(clippy::undocumented_unsafe_blocks)]

// The facade: the modules an embedder uses, each holding only public items.
pub mod bundle;
pub mod container;
pub mod events;
pub mod exe;
pub mod features;
pub mod hooks;
#[cfg(feature = "image")]
pub mod image;
pub mod rootless;
pub mod sd_notify;
pub mod state;

// The machinery behind the verbs: not part of the API. `plan` is the host side of each spec
// concept (checks before the fork), `process` the only room that forks (its `steps` are the
// init's side of the same concepts).
pub(crate) mod cgroups;
pub(crate) mod error;
pub(crate) mod plan;
pub(crate) mod proc_handle;
pub(crate) mod process;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod syscall;

/// The machinery is not API: naming any of its modules from outside is E0603 (private module),
/// so a change that makes one public again fails these doc tests.
///
/// ```compile_fail,E0603
/// use hull::cgroups;
/// ```
///
/// ```compile_fail,E0603
/// use hull::error;
/// ```
///
/// ```compile_fail,E0603
/// use hull::plan;
/// ```
///
/// ```compile_fail,E0603
/// use hull::plan;
/// ```
///
/// ```compile_fail,E0603
/// use hull::proc_handle;
/// ```
///
/// ```compile_fail,E0603
/// use hull::process;
/// ```
///
/// ```compile_fail,E0603
/// use hull::rootfs;
/// ```
///
/// ```compile_fail,E0603
/// use hull::seccomp;
/// ```
///
/// ```compile_fail,E0603
/// use hull::syscall;
/// ```
#[cfg(doctest)]
pub struct MachineryIsPrivate;

/// Not part of the API: hull's D-Bus client, reachable only so that
/// integration-tests/tests/dbus.rs can drive it against a real dbus-daemon (a unit test cannot
/// start one in the test bed's way).
#[doc(hidden)]
pub mod test_seam {
    /// The systemd cgroup driver's D-Bus client.
    pub mod dbus {
        pub use crate::cgroups::systemd::dbus::{Arg, Bus, BusError, Message};
    }
}

/// The runtime-spec types hull reads, re-exported so that a program building a
/// [`oci_spec::runtime::Spec`] for hull uses exactly hull's version of them.
pub use oci_spec;

/// `hull spec`'s default config.json; its file is the verb's, in `container/`.
pub use container::spec;

pub use container::{
    Container, ContainerBuilder, CreateOptions, ExecBuilder, ExecOptions, ExecProcess, ProcessIo,
    Stdio,
};
pub use error::{Error, InitFailure, InitStep, Result};
pub use state::{State, Status};

/// The signal [`Container::kill`] sends ([`container::parse_signal`] reads one as runc does),
/// re-exported from nix so that a program needs no nix of its own.
///
/// ```no_run
/// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
/// c.kill(hull::Signal::SIGTERM, false)?;
/// # Ok::<(), hull::Error>(())
/// ```
pub use nix::sys::signal::Signal;

/// A host process id, as [`Container::exec`] returns it, re-exported from nix.
///
/// ```
/// let pid = hull::Pid::from_raw(1);
/// assert_eq!(pid.as_raw(), 1);
/// ```
pub use nix::unistd::Pid;
