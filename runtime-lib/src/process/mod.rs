//! The only module that forks. `spawn` clones the init into its namespaces; `channel` is the one
//! message protocol between the runtime and the init; `init` is the init sequence.

pub mod channel;
pub mod exec;
pub(crate) mod fds;
pub mod init;
pub mod pidfd;
#[cfg(test)]
mod seam_tests;
pub mod spawn;
