//! Hull: an OCI runtime-spec container runtime as a library.
//!
//! ```no_run
//! use hull::{Container, CreateOptions};
//! // First thing in main: re-execute from a sealed copy of this program (see `exe`).
//! hull::exe::ensure_sealed()?;
//! let opts = CreateOptions::new("/run/hull", "/path/to/bundle");
//! let mut c = Container::create("demo", &opts)?;
//! c.start()?;
//! let status = c.wait()?; // only the process that created the container can wait for it
//! c.delete(true)?;
//! # Ok::<(), hull::Error>(())
//! ```
//!
//! The process that calls [`Container::create`] must be single-threaded: the container's init is
//! forked from it (no re-exec of any binary), as in `hull create`. So the init, and a process
//! [`Container::exec`] starts, run the caller's executable until they exec the container's
//! program, and a process in the container may reach that file through /proc: the caller must
//! run from a sealed copy of itself, made by [`exe::ensure_sealed`] at the top of `main`.
//! `create` and `exec` refuse to run otherwise ([`Error::ExeNotSealed`]), unless told not to
//! check ([`CreateOptions::unsealed_exe`], [`ExecOptions::unsealed_exe`]).

pub mod bundle;
pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod exe;
pub mod features;
pub mod hooks;
#[cfg(feature = "image")]
pub mod image;
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

pub use container::{Container, CreateOptions, ExecOptions};
pub use error::{Error, InitFailure, InitStep, Result};
pub use state::{State, Status};
