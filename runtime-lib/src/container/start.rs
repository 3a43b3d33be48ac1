use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};

use super::Container;
use crate::error::{Error, SysContext};
use crate::hooks::{self, HookKind};
use crate::{Result, Status};

impl Container {
    /// `start`: releases the init blocked on the exec fifo; it then execs the user's process.
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
        let fifo = self.dir.fifo_path();
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
        // The fifo's absence is what makes the status `running` from now on.
        std::fs::remove_file(&fifo).map_err(|source| Error::Io {
            step: "remove exec fifo",
            path: fifo,
            source,
        })?;
        let poststart = self
            .record
            .hooks
            .as_ref()
            .and_then(|h| h.poststart().clone());
        if let Some(poststart) = poststart {
            let mut state = self.record.state.clone();
            state.status = Status::Running;
            // The spec: a failed poststart hook is a warning; the container runs on.
            if let Err(e) = hooks::run(HookKind::Poststart, &poststart, &state) {
                log::warn!("{e}");
            }
        }
        Ok(())
    }

    /// Waits for the init to exit and returns its exit code (128+signal when killed, as a shell
    /// reports it). Only the process that created the container can wait for it.
    pub fn wait(&mut self) -> Result<i32> {
        let Some(pid) = self.child else {
            return Err(Error::Unsupported {
                feature: "waiting for a container this process did not create".into(),
            });
        };
        loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.child = None;
                    return Ok(code);
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.child = None;
                    return Ok(128 + sig as i32);
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).sys("wait for container init"),
            }
        }
    }
}
