use nix::sys::signal::Signal;

use super::Container;
use crate::Result;

impl Container {
    /// `kill`: sends `signal` to the init, or with `all` to every process of the container.
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        let _ = (signal, all);
        todo!()
    }
}

/// Parses a signal as runc accepts it: `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let _ = s;
    todo!()
}
