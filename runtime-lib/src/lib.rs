//! Hull: an OCI runtime-spec container runtime as a library.
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

pub mod bundle;
pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod exe;
pub mod features;
pub mod hooks;
pub mod lsm;
pub mod namespaces;
pub mod netdev;
pub mod notify;
pub mod proc_handle;
pub mod process;
pub mod process_attrs;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod syscall;
pub mod sysctl;
pub mod tty;
pub mod user;

/// The runtime-spec types hull reads, re-exported so that a program building a
/// [`oci_spec::runtime::Spec`] for hull uses exactly hull's version of them.
pub use oci_spec;

pub use container::{
    Container, ContainerBuilder, CreateOptions, ExecBuilder, ExecOptions, ExecProcess, ProcessIo,
    Stdio,
};
pub use error::{Error, InitFailure, InitStep, Result};
pub use state::{State, Status};
