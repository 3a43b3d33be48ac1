use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::{Container, KILL_TIMEOUT};
use crate::error::{Error, SysContext};
use crate::process::hooks;
use crate::process::pidfd::PidFd;
use crate::state::{init_alive, Record, StateDir};
use crate::{cgroups, Result, Status};

impl Container {
    /// `delete`: removes a stopped or created (or, with `force`, any) container and everything made
    /// for it (its processes, cgroup, state directory), then runs the poststop hooks. A created
    /// container is killed first, as runc does. runc's `delete [--force]`. Errors:
    /// [`crate::Error::InvalidStatus`] for a running or paused container without `force`.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// c.kill(hull::Signal::SIGKILL, true)?;
    /// c.delete(true)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn delete(self, force: bool) -> Result<()> {
        delete(&self.dir, force, self.child)
    }

    /// `delete` of the container `id` in `root`, as the CLI's `delete`. Unlike
    /// [`Container::load`] + [`Container::delete`] it needs no finished record: a container being
    /// created is deleted once its create is over (delete waits for the create's lock; it never
    /// reports success while the create goes on), and what a create killed half-way left behind
    /// is removed from the record it wrote before making anything. Errors as
    /// [`Container::delete`], and [`crate::Error::ContainerNotFound`].
    ///
    /// ```no_run
    /// match hull::Container::delete_id("/run/hull".as_ref(), "web", true) {
    ///     Ok(()) | Err(hull::Error::ContainerNotFound { .. }) => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn delete_id(root: &Path, id: &str, force: bool) -> Result<()> {
        delete(&StateDir::open(root, id)?, force, None)
    }
}

fn delete(dir: &StateDir, force: bool, child: Option<Pid>) -> Result<()> {
    let lock = dir.lock_any()?;
    let Some(record) = dir.read_opt()? else {
        // A create that died before it wrote its first record had made nothing outside the
        // directory yet (and a delete that died after removing state.json had undone the rest).
        dir.remove()?;
        return Ok(());
    };
    // A `creating` record under our lock is a create that died half-way (its creator held the
    // lock for as long as it lived): `stopped`, with maybe its init still dying.
    let status = dir.status(&record);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        _ => {
            return Err(Error::InvalidStatus {
                id: record.state.id.clone(),
                op: "delete",
                status,
            })
        }
    }
    kill_init(&record, child)?;
    if let Some(paths) = &record.cgroups {
        // Processes that outlived the init (a container sharing the host's pid namespace
        // keeps them) go too, or the cgroup could not be removed; those that were in the cgroup
        // before the container are not its own and stay.
        let mut cgroup = cgroups::load(paths);
        cgroups::kill_all(&*cgroup, &record.foreign_processes, KILL_TIMEOUT)?;
        cgroup.destroy()?;
    }
    if let Some(pid) = child {
        // Our own child: reap it so no zombie outlives the container.
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
    dir.remove()?;
    drop(lock);
    hooks::poststop(record.hooks.as_ref(), &record.state);
    Ok(())
}

/// SIGKILL to the init, if it still lives (which takes its whole pid namespace with it), and
/// wait until it is gone.
fn kill_init(record: &Record, child: Option<Pid>) -> Result<()> {
    let pid = record.state.pid;
    if pid <= 0 {
        return Ok(());
    }
    let init = match PidFd::open(Pid::from_raw(pid)) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(e).sys("open container init"),
    };
    // Checked after the pidfd exists, so the pid cannot be recycled between check and signal.
    if !init_alive(pid, record.init_start_time) {
        return Ok(());
    }
    match init.send_signal(Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(e).sys("kill container init"),
    }
    if let Some(paths) = &record.cgroups {
        // On cgroup v1 a frozen process takes the signal only once thawed (a paused container,
        // or one whose delete was killed while it had the cgroup frozen), as runc does.
        let cgroup = cgroups::load(paths);
        if matches!(cgroup.freezer_state(), Ok(cgroups::FreezerState::Frozen)) {
            let _ = cgroups::resume(&*cgroup);
        }
    }
    if let Some(pid) = child {
        waitpid(pid, None).sys("wait for container init")?;
        return Ok(());
    }
    if !init
        .wait_exit(KILL_TIMEOUT)
        .sys("wait for container init")?
    {
        return Err(Error::InitLost {
            step: "delete",
            detail: format!("init {pid} still alive {KILL_TIMEOUT:?} after SIGKILL"),
        });
    }
    Ok(())
}
