//! linux.namespaces: which to create, which to join (by `path`), and the order that works.

use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::InitResult;
use crate::syscall::Syscall;
use crate::Result;

/// The namespaces of one container, resolved in the runtime before the init exists.
#[derive(Debug)]
pub struct NamespacePlan {
    /// Namespaces to create, as clone(2) flags (CLONE_NEWTIME never appears here: see `time`).
    pub clone_flags: CloneFlags,
    /// Namespaces to join by path, already opened and checked to be of the right type, user first.
    /// The pid namespace is not here: see `pid_path`.
    pub joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// A pid namespace to join: the runtime enters it for its children before cloning the init.
    pub pid_path: Option<OwnedFd>,
    /// A new time namespace is requested (offsets from linux.timeOffsets).
    pub time: bool,
}

impl NamespacePlan {
    pub fn from_spec(spec: &Spec) -> Result<NamespacePlan> {
        let _ = spec;
        todo!("helper E")
    }

    /// In the init: joins every `joins` entry in order.
    pub fn join(&self, sys: &dyn Syscall) -> InitResult<()> {
        let _ = sys;
        todo!("helper E")
    }
}
