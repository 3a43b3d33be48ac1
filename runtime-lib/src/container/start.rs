use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::Container;
use crate::error::{Error, SysContext};
use crate::hooks::HookKind;
use crate::process::hooks;
use crate::{Result, Status};
use std::os::fd::{AsFd, OwnedFd};

impl Container {
    /// Before `start`, when the runtime was given $NOTIFY_SOCKET (`host`): binds the container's
    /// notify socket (see [`crate::sd_notify`]). `None` if the container was created without one
    /// ([`crate::CreateOptions::notify_socket`]). What `hull start` does when $NOTIFY_SOCKET is
    /// set.
    ///
    /// ```no_run
    /// let mut c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let proxy = c.notify_proxy("/run/systemd/notify".as_ref())?;
    /// c.start()?;
    /// if let Some(p) = proxy {
    ///     p.forward_ready(c.pid(), c.pid())?;
    /// }
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn notify_proxy(
        &self,
        host: &std::path::Path,
    ) -> Result<Option<crate::sd_notify::NotifyProxy>> {
        crate::sd_notify::NotifyProxy::bind(self.dir.path(), host)
    }

    /// `start`: releases the init blocked on the exec fifo; it then execs the user's process
    /// (runc's `start`), and the poststart hooks run. Errors: [`crate::Error::InvalidStatus`]
    /// unless the container is created; [`crate::Error::Hook`] for a startContainer or
    /// poststart hook (the container is then killed); [`crate::Error::InitLost`] when the init
    /// died before its exec.
    ///
    /// ```no_run
    /// let mut c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// c.start()?;
    /// assert_eq!(c.status(), hull::Status::Running);
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn start(&mut self) -> Result<()> {
        let _lock = self.dir.lock()?;
        self.record = self.dir.read()?;
        let status = self.status();
        if status != Status::Created {
            return Err(Error::InvalidStatus {
                id: self.id().to_string(),
                op: "start",
                status,
            });
        }
        if self.record.no_process {
            // Before the fifo: the init stays as it is, and so does the container.
            return Err(Error::InvalidConfig {
                field: "process".into(),
                problem: "the config has none, and start requires it (config.md): such a \
                          container can be created, exec'd into and deleted, not started"
                    .into(),
            });
        }
        let fifo = self.dir.fifo_path();
        let done_path = self.dir.done_fifo_path();
        // Opened before releasing the init, so its "about to exec" byte cannot be missed.
        let done = open(
            &done_path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys_path("open exec done fifo", &done_path)?;
        // Non-blocking: if the init died after the status check there is no reader, and the open
        // fails with ENXIO instead of hanging.
        let fd = match open(
            &fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENXIO) => {
                return Err(Error::InvalidStatus {
                    id: self.id().to_string(),
                    op: "start",
                    status: Status::Stopped,
                })
            }
            Err(e) => return Err(e).sys_path("open exec fifo", &fifo),
        };
        nix::unistd::write(&fd, b"0").sys_path("write exec fifo", &fifo)?;
        drop(fd);
        let outcome = wait_for_exec(&done).sys_path("read exec done fifo", &done_path)?;
        // The fifo's absence is what makes the status `running` from now on.
        for path in [&fifo, &done_path] {
            std::fs::remove_file(path).map_err(|source| Error::Io {
                step: "remove fifo",
                path: path.to_path_buf(),
                source,
            })?;
        }
        if let Some(failure) = outcome.hook_failure {
            return Err(failure.into());
        }
        if !outcome.exec_reached {
            return Err(Error::InitLost {
                step: "start",
                detail: "the container's init exited before it could exec the process \
                         (see the container's stderr)"
                    .into(),
            });
        }
        self.poststart()
    }

    /// The spec: a failed poststart hook is an error, and the container is stopped.
    fn poststart(&self) -> Result<()> {
        let Some(hooks) = self.record.hooks.as_ref() else {
            return Ok(());
        };
        let poststart = hooks::of_kind(hooks, HookKind::Poststart);
        let mut state = self.record.state.clone();
        state.status = Status::Running;
        if let Err(e) = hooks::run(HookKind::Poststart, poststart, &state) {
            if let Ok(init) = self.open_init(&self.record, "start") {
                let _ = init.send_signal(nix::sys::signal::Signal::SIGKILL);
                let _ = init.wait_exit(std::time::Duration::from_secs(10));
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// What the init said on `exec.done` (see [`crate::state::EXEC_DONE_FIFO`]).
struct ExecOutcome {
    exec_reached: bool,
    hook_failure: Option<crate::hooks::HookFailure>,
}

/// Reads `exec.done` to end-of-file, or until the init said it is about to exec.
fn wait_for_exec(done: &OwnedFd) -> nix::Result<ExecOutcome> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(done.as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                said.extend_from_slice(&buf[..n]);
                if said == crate::state::EXEC_REACHED {
                    break;
                }
            }
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(done.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ExecOutcome {
        exec_reached: said == crate::state::EXEC_REACHED,
        hook_failure: serde_json::from_slice(&said).ok(),
    })
}
