//! The init's steps, one file per spec concept: what the init (or an exec'd process) applies to
//! itself. The host side of the same concepts is in `crate::plan`.

pub(crate) mod capabilities;
pub(crate) mod lsm;
pub(crate) mod namespaces;
pub(crate) mod netdev;
pub(crate) mod process_attrs;
pub(crate) mod rlimits;
pub(crate) mod sysctl;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod tty;
pub(crate) mod user;
