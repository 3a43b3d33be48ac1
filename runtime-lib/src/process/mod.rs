//! The only module that forks. `spawn` clones the init into its namespaces; `channel` is the one
//! message protocol between the runtime and the init; `init` is the init sequence and `steps` its
//! steps, one file per spec concept; `exec` joins a running container; `parent` is the runtime's
//! side of the protocol for both; `hooks` runs a hook.

pub mod channel;
pub mod exec;
pub(crate) mod fds;
pub(crate) mod hooks;
pub(crate) mod id_maps;
pub mod init;
pub(crate) mod parent;
pub mod pidfd;
#[cfg(test)]
mod seam_tests;
pub mod spawn;
pub(crate) mod steps;
