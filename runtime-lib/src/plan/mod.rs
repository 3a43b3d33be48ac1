//! The host side of each spec concept: checks made before the fork, one file per concept.

pub(crate) mod capabilities;
pub(crate) mod hooks;
pub(crate) mod lsm;
pub(crate) mod namespaces;
pub(crate) mod netdev;
pub(crate) mod process_attrs;
pub(crate) mod sysctl;
pub(crate) mod tty;
pub(crate) mod user;
