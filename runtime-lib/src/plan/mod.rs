//! The host side of each spec concept: the checks made before the fork, one file per concept.

pub(crate) mod hooks;
