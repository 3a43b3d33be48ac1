//! Placeholder: the helper for multi-threaded callers.

use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::create::Config;
use super::stdio::{Prepared, ProcessIo};
use super::{Container, CreateOptions, ExecOptions};
use crate::Result;

pub(crate) fn needed() -> Result<bool> {
    Ok(false)
}

pub(crate) fn create(
    id: &str,
    opts: &CreateOptions,
    config: Config,
    prepared: Prepared,
) -> Result<Container> {
    super::builder::local_create(id, opts, config, prepared)
}

pub(crate) fn exec(
    c: &Container,
    process: &Process,
    opts: &ExecOptions,
    prepared: Prepared,
) -> Result<(Pid, ProcessIo)> {
    super::builder::local_exec(c, process, opts, prepared)
}
