//! Forked-child test support, shared by this crate's modules whose tests change process state.

use std::io::{Read, Write};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};

/// Runs `f` in a forked child; its `Err` text (or panic message) comes back as the `Err`.
pub(crate) fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (rx, tx) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the child only runs `f` and then `_exit`s; the test harness's other threads
    // are not used by it (glibc keeps malloc usable after fork).
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(rx);
            let out =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".to_string()))
                });
            let code = match out {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = std::fs::File::from(tx).write_all(msg.as_bytes());
                    1
                }
            };
            // SAFETY: ends the child without running the harness's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut msg = String::new();
            let _ = std::fs::File::from(rx).read_to_string(&mut msg);
            match waitpid(child, None).map_err(|e| format!("waitpid: {e}"))? {
                WaitStatus::Exited(_, 0) => Ok(()),
                WaitStatus::Exited(_, c) => Err(format!("child exited {c}: {msg}")),
                other => Err(format!("child ended with {other:?}: {msg}")),
            }
        }
    }
}
