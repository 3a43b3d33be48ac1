//! One file per verb: parse → one library call → print, or a [`Failure`] for `main` to log.

pub mod console;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod unsupported;
pub mod update;

use std::path::{Path, PathBuf};

use crate::log::{Failure, Logger};

/// What every verb may need from the global flags.
pub struct Ctx {
    /// `--root`, made absolute.
    pub root: PathBuf,
    pub log: Logger,
    /// `--systemd-cgroup`: refused where a container would be created.
    pub systemd_cgroup: bool,
    /// `--rootless` as given; validated where runc reads it (when a container is created).
    pub rootless: Option<String>,
}

/// The exit status of a verb that succeeded (the container's own status for `run`).
pub type Outcome = Result<i32, Failure>;

/// A path as given on the command line, made absolute against the working directory (runc does
/// the same to --bundle, --pid-file and --console-socket, so they survive its chdir).
pub fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(path).map_err(|e| {
        Failure::msg(format!(
            "make {path:?} absolute: {}",
            crate::log::io_message(&e)
        ))
    })
}

/// Writes a verb's output to stdout, flushed: the process exits right after, without unwinding.
pub fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::msg(format!("write stdout: {}", crate::log::io_message(&e))))
}
