use std::str::FromStr;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Container;
use crate::error::{Error, SysContext};
use crate::process::pidfd::PidFd;
use crate::state::{init_alive, Record};
use crate::{cgroups, Result, Status};

impl Container {
    /// `kill`: sends `signal` to the init, or with `all` to every process of the container
    /// (runc's `kill [--all]`). Errors: [`crate::Error::InvalidStatus`] when the container has
    /// stopped.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// c.kill(hull::container::parse_signal("TERM")?, false)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn kill(&self, signal: Signal, all: bool) -> Result<()> {
        let _lock = self.dir.lock()?;
        let record = self.dir.read()?;
        if let (true, Some(paths)) = (all, &record.cgroups) {
            if paths.v1.is_empty() && paths.unified.is_none() {
                // A rootless container without a cgroup (see cgroups::rootless): its processes
                // are those of its pid namespace, while its init lives.
                if self.dir.status(&record) == Status::Stopped {
                    return Ok(());
                }
                for pid in super::ps::pid_namespace_members(record.state.pid)? {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                }
                return Ok(());
            }
            // As runc: every process of the cgroup, the init among them, and nothing more (a
            // SIGKILL has taken the init by now, signalling it again would fail). A stopped
            // container's cgroup may still hold processes (one without its own pid namespace:
            // containerd's shim sends `kill --all <id> 9` when its init exited); a cgroup
            // already gone holds none.
            return cgroups::signal_all(&*cgroups::load(paths), signal, &record.foreign_processes);
        }
        let paused = self.dir.status(&record) == Status::Paused;
        let init = self.open_init(&record, "kill")?;
        init.send_signal(signal).sys("signal container init")?;
        if paused && signal == Signal::SIGKILL {
            self.thaw_for_kill(&record);
        }
        Ok(())
    }

    /// Thaws a paused container just sent SIGKILL, as runc does: on cgroup v1 a frozen process
    /// takes the signal only once thawed, so the kill (and a `delete --force` waiting for it)
    /// would hang otherwise.
    pub(super) fn thaw_for_kill(&self, record: &Record) {
        if let Some(paths) = &record.cgroups {
            let _ = cgroups::resume(&*cgroups::load(paths));
        }
    }

    /// A pidfd on the init, checked to be the init and not a later process with its pid.
    pub(super) fn open_init(&self, record: &Record, op: &'static str) -> Result<PidFd> {
        let stopped = || Error::InvalidStatus {
            id: record.state.id.clone(),
            op,
            status: Status::Stopped,
        };
        if self.dir.status(record) == Status::Stopped {
            return Err(stopped());
        }
        let pidfd = match PidFd::open(Pid::from_raw(record.state.pid)) {
            Ok(fd) => fd,
            Err(Errno::ESRCH) => return Err(stopped()),
            Err(e) => return Err(e).sys("open container init"),
        };
        // Checked after the pidfd exists, so the pid cannot be recycled between check and signal.
        if !init_alive(record.state.pid, record.init_start_time) {
            return Err(stopped());
        }
        Ok(pidfd)
    }
}

/// Parses a signal as runc accepts it: `KILL`, `SIGKILL`, `kill` or `9`. Errors:
/// [`Error::InvalidSignal`].
///
/// ```
/// use hull::container::parse_signal;
///
/// assert_eq!(parse_signal("kill")?, hull::Signal::SIGKILL);
/// assert_eq!(parse_signal("15")?, hull::Signal::SIGTERM);
/// assert!(parse_signal("SIGFOO").is_err());
/// # Ok::<(), hull::Error>(())
/// ```
pub fn parse_signal(s: &str) -> Result<Signal> {
    let invalid = || Error::InvalidSignal {
        signal: s.to_string(),
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| invalid());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_runc_forms() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        for bad in ["FOO", "SIGFOO", "0x9", "", "999"] {
            assert!(
                matches!(parse_signal(bad), Err(Error::InvalidSignal { .. })),
                "{bad}"
            );
        }
    }
}
