//! Waiting for a container to stop, from the process that created it (its init's parent, which
//! alone can collect the exit status) or from any other (a pidfd, which says when the init exited
//! but not how).
//!
//! Where the exit status can be known: the creating process gets it from waitpid; hull then
//! writes it to the state directory (`exit_status`), so another process that waits for the same
//! container gets it too once the creator's [`Container::wait`] has returned. A container created
//! by `hull create` (whose creator exits at once, leaving the init to the caller's subreaper or
//! to PID 1) or one whose creator never waits has no status anyone in hull can know: waiting for
//! it from elsewhere ends with [`Error::Unsupported`] once it has stopped (use
//! [`Container::wait_stopped`] to wait without asking for the status).

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::Container;
use crate::error::{Error, SysContext};
use crate::process::pidfd::PidFd;
use crate::state::{self, init_alive};
use crate::Result;

/// The creator's record of the init's exit code, in the state directory.
const EXIT_STATUS_FILE: &str = "exit_status";

/// One poll of a pidfd's readiness at a time: the wait itself has no deadline.
const POLL_SLICE: Duration = Duration::from_secs(3600);

impl Container {
    /// Waits for the init to exit and returns its exit code (128+signal when killed, as a shell
    /// reports it). In the process that created the container this collects the status (waitpid)
    /// and records it in the state directory; in any other process (see [`Container::load`]) it
    /// waits for the container to stop through a pidfd and returns the status the creator
    /// recorded, or [`Error::Unsupported`] when none was (see the `wait` module's notes).
    ///
    /// ```no_run
    /// let mut c = hull::Container::load("/run/hull".as_ref(), "demo")?;
    /// match c.wait() {
    ///     Ok(code) => println!("exited with {code}"),
    ///     Err(hull::Error::Unsupported { .. }) => println!("stopped, status unknown"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<i32> {
        if let Some(pid) = self.child {
            let code = reap(pid, "wait for container init")?;
            self.child = None;
            self.record_exit(code);
            return Ok(code);
        }
        self.wait_stopped()?;
        self.recorded_exit()
    }

    /// Waits until the container has stopped (its init exited), from any process: a pidfd of
    /// the init, polled (Linux 5.3+); on older kernels, or where seccomp refuses pidfd_open, the
    /// init's /proc entry is looked at every 20 ms instead. Returns at once for a stopped
    /// container. In the creating process the init stays a zombie until [`Container::wait`] or
    /// [`Container::delete`] collects it.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "demo")?;
    /// c.wait_stopped()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn wait_stopped(&self) -> Result<()> {
        let Some(init) = self.init_handle()? else {
            return Ok(());
        };
        while !init.wait_exit(POLL_SLICE).sys("wait for container init")? {}
        Ok(())
    }

    /// [`Container::wait`] for async programs (cargo feature `tokio`): the init's pidfd is
    /// registered with tokio's reactor ([`tokio::io::unix::AsyncFd`]) and the task sleeps until
    /// it becomes readable, which the kernel does when the init exits; no polling loop. Without a
    /// pidfd (see [`Container::wait_stopped`]) the wait runs on tokio's blocking pool.
    ///
    /// ```no_run
    /// # async fn f() -> hull::Result<()> {
    /// let mut c = hull::Container::load("/run/hull".as_ref(), "demo")?;
    /// let code = c.wait_async().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&mut self) -> Result<i32> {
        let pid = self.child.unwrap_or(Pid::from_raw(self.record.state.pid));
        let init = match self.child {
            // Our child: exited or not, it is there to wait for (a zombie until reaped).
            Some(pid) => Some(PidFd::open(pid).sys("open container init")?),
            None => self.init_handle()?,
        };
        if let Some(init) = init {
            readable(&init, pid).await?;
        }
        if let Some(pid) = self.child {
            let code = reap(pid, "wait for container init")?;
            self.child = None;
            self.record_exit(code);
            return Ok(code);
        }
        self.recorded_exit()
    }

    /// The init's handle, or `None` once it has stopped.
    fn init_handle(&self) -> Result<Option<PidFd>> {
        let (pid, start) = (self.record.state.pid, self.record.init_start_time);
        if !init_alive(pid, start) {
            return Ok(None);
        }
        let init = match PidFd::open(Pid::from_raw(pid)) {
            Ok(fd) => fd,
            Err(Errno::ESRCH) => return Ok(None),
            Err(e) => return Err(e).sys("open container init"),
        };
        // Checked again once the handle exists: the pid cannot be recycled under it now.
        Ok(init_alive(pid, start).then_some(init))
    }

    /// Best effort: the container may already be deleted (or its root read-only to us). Under
    /// the id's lock, and only while the state is still this init's: by the time the init is
    /// reaped the container may have been deleted and the id taken by another container, whose
    /// waiters must not read this status as theirs.
    fn record_exit(&self, code: i32) {
        let recorded = (|| {
            let _lock = self.dir.lock()?;
            let now = self.dir.read()?;
            if init_of(&now) != init_of(&self.record) {
                log::debug!(
                    "exit status not recorded: {:?} is another container now",
                    self.id()
                );
                return Ok(());
            }
            let (pid, start) = init_of(&self.record);
            let path = self.dir.path().join(EXIT_STATUS_FILE);
            state::write_atomic(&path, format!("{code} {pid} {start}").as_bytes(), 0o644)
        })();
        if let Err(e) = recorded {
            log::debug!("exit status not recorded: {e}");
        }
    }

    /// The status the creator recorded for this container's init (pid and start time match).
    fn recorded_exit(&self) -> Result<i32> {
        let path = self.dir.path().join(EXIT_STATUS_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let (code, pid, start) = (fields.next(), fields.next(), fields.next());
        let ours = (pid, start) == {
            let (pid, start) = init_of(&self.record);
            (Some(Ok(pid as u64)), Some(Ok(start)))
        };
        match code {
            Some(Ok(code)) if ours => Ok(code as i32),
            _ => Err(Error::Unsupported {
                feature: format!(
                    "the exit status of container {:?}, which the process that created it has \
                     not collected (it has stopped)",
                    self.id()
                ),
            }),
        }
    }
}

/// Which init a record is of: its pid and start time.
fn init_of(record: &state::Record) -> (i32, u64) {
    (record.state.pid, record.init_start_time)
}

/// Blocks until `pid`, a child of ours, has exited: its exit code, 128+signal if it was killed.
pub(crate) fn reap(pid: Pid, step: &'static str) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).sys(step),
        }
    }
}

/// Sleeps until `init` has exited: pidfd readiness through tokio's reactor, or a blocking-pool
/// wait where there is no pidfd.
#[cfg(feature = "tokio")]
pub(crate) async fn readable(init: &PidFd, pid: Pid) -> Result<()> {
    use std::os::fd::OwnedFd;
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    let Some(fd) = init.poll_fd() else {
        return tokio::task::spawn_blocking(move || {
            let init = PidFd::open(pid).sys("open container init")?;
            while !init.wait_exit(POLL_SLICE).sys("wait for container init")? {}
            Ok(())
        })
        .await
        .map_err(|e| Error::InitLost {
            step: "wait for container init",
            detail: e.to_string(),
        })?;
    };
    let owned: OwnedFd = fd.try_clone_to_owned().map_err(|source| Error::Io {
        step: "duplicate pidfd of",
        path: format!("/proc/{pid}").into(),
        source,
    })?;
    // SAFETY: the AsyncFd owns `owned`, an OwnedFd: the descriptor stays open and the same for
    // as long as the AsyncFd lives, and nothing else closes it.
    let registered = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
        .map_err(|e| Error::Io {
            step: "register pidfd of",
            path: format!("/proc/{pid}").into(),
            source: e.into(),
        })?;
    // A pidfd stays readable once the process has exited: one readiness is the answer.
    let _ready = registered.readable().await.map_err(|source| Error::Io {
        step: "wait for pidfd of",
        path: format!("/proc/{pid}").into(),
        source,
    })?;
    Ok(())
}
