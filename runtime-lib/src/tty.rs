//! process.terminal with a console socket: the pty is made inside the container, its master sent to
//! the caller's socket with SCM_RIGHTS (as runc: the pty's name as the message's data).

use std::os::fd::OwnedFd;
use std::path::Path;

use crate::error::InitResult;
use crate::Result;

/// In the runtime, before the init exists: connect to `--console-socket`.
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    let _ = path;
    todo!("helper E")
}

/// In the init, after pivot_root: open /dev/ptmx, send the master over `socket`, make the slave the
/// controlling terminal and stdin/stdout/stderr.
pub fn setup_console(socket: OwnedFd) -> InitResult<()> {
    let _ = socket;
    todo!("helper E")
}
