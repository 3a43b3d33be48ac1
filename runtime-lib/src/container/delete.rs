use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag};

use super::Container;
use crate::error::{Error, SysContext};
use crate::hooks;
use crate::{cgroups, Result, Status};

/// How long delete waits for a SIGKILLed init to be gone (it only has to be scheduled once).
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Container {
    /// `delete`: removes a stopped or created (or, with `force`, any) container and everything made
    /// for it. A created container is killed first, as runc does.
    pub fn delete(self, force: bool) -> Result<()> {
        let lock = self.dir.lock()?;
        let record = self.dir.read()?;
        let status = self.dir.status(&record);
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_init(&record)?,
            _ if force => self.kill_init(&record)?,
            _ => {
                return Err(Error::InvalidStatus {
                    id: record.state.id.clone(),
                    op: "delete",
                    status,
                })
            }
        }
        if let Some(paths) = &record.cgroups {
            // Processes that outlived the init (a container sharing the host's pid namespace
            // keeps them) go too, or the cgroup could not be removed.
            let mut cgroup = cgroups::load(paths);
            cgroups::kill_all(&*cgroup, KILL_TIMEOUT)?;
            cgroup.destroy()?;
        }
        if let Some(pid) = self.child {
            // Our own child: reap it so no zombie outlives the container.
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        }
        self.dir.remove()?;
        drop(lock);
        hooks::poststop(record.hooks.as_ref(), &record.state);
        Ok(())
    }

    /// SIGKILL to the init (which takes its whole pid namespace with it) and wait until it is gone.
    fn kill_init(&self, record: &crate::state::Record) -> Result<()> {
        let init = match self.open_init(record, "delete") {
            Ok(init) => init,
            // It exited on its own meanwhile: nothing to kill.
            Err(Error::InvalidStatus { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let paused = self.dir.status(record) == Status::Paused;
        init.send_signal(Signal::SIGKILL)
            .sys("kill container init")?;
        if paused {
            self.thaw_for_kill(record);
        }
        if let Some(pid) = self.child {
            waitpid(pid, None).sys("wait for container init")?;
            return Ok(());
        }
        if !init
            .wait_exit(KILL_TIMEOUT)
            .sys("wait for container init")?
        {
            return Err(Error::InitLost {
                step: "delete",
                detail: format!(
                    "init {} still alive {KILL_TIMEOUT:?} after SIGKILL",
                    record.state.pid
                ),
            });
        }
        Ok(())
    }
}
