//! The only module that forks. `spawn` clones the init into its namespaces; `channel` is the one
//! message protocol between the runtime and the init; `init` is the init sequence (`exec` its
//! counterpart for a process added later); `parent` is the runtime's side of both.

pub mod channel;
pub mod exec;
pub(crate) mod fds;
pub mod init;
pub(crate) mod parent;
pub mod pidfd;
pub mod spawn;
