//! sd_notify through the container boundary ($NOTIFY_SOCKET), as runc does it.
//!
//! When the runtime itself runs under systemd with `Type=notify`, the service is ready when the
//! *container's* process says so. At create the runtime makes `<state dir>/notify` and bind-mounts
//! it read-only at `/run/notify` in the container, whose process gets
//! `NOTIFY_SOCKET=/run/notify/notify.sock`. At start the runtime binds that datagram socket before
//! the process runs, waits for a `READY=` message (or for the init to exit), and passes it on to
//! the caller's socket followed by `MAINPID=<init's host pid>` (the process systemd must now
//! watch) and a `BARRIER=1` handshake, so systemd has taken both in before the runtime exits.
//!
//! ```no_run
//! // create with CreateOptions::notify_socket, then, in the process systemd watches:
//! let mut c = hull::Container::load("/run/hull".as_ref(), "web")?;
//! let proxy = c.notify_proxy("/run/systemd/notify".as_ref())?;
//! c.start()?;
//! if let Some(p) = proxy {
//!     p.forward_ready(c.pid(), c.pid())?;
//! }
//! # Ok::<(), hull::Error>(())
//! ```

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{MountBuilder, Spec};

use crate::error::{Context, Error, SysContext};
use crate::process::pidfd::{PidFd, EXIT_POLL};
use crate::Result;

/// Where the container finds the socket.
pub(crate) const CONTAINER_DIR: &str = "/run/notify";
const SOCKET_NAME: &str = "notify.sock";

/// How long systemd may take to acknowledge the barrier before the runtime gives up waiting
/// (systemd versions without barrier support never do).
const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);

/// `<state dir>/notify`: made by create, bind-mounted into the container.
pub(crate) fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("notify")
}

/// At create: the directory the socket will be bound in, its mount and the process's
/// NOTIFY_SOCKET. The mount goes last, over whatever the config mounts at /run.
pub(crate) fn prepare(spec: &mut Spec, state_dir: &Path) -> Result<()> {
    let dir = dir(state_dir);
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .io("create notify socket directory", &dir)?;
    let mount = MountBuilder::default()
        .destination(CONTAINER_DIR)
        .typ("bind")
        .source(&dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| Error::InvalidConfig {
            field: "mounts".into(),
            problem: e.to_string(),
        })?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={CONTAINER_DIR}/{SOCKET_NAME}"));
        process.set_env(Some(env));
    }
    Ok(())
}

/// The container's end, bound at start before its process runs: from
/// [`crate::Container::notify_proxy`], before [`crate::Container::start`]; then
/// [`NotifyProxy::forward_ready`].
///
/// ```no_run
/// // In a service of Type=notify: systemd set $NOTIFY_SOCKET for this program.
/// let host = std::env::var_os("NOTIFY_SOCKET").expect("run by systemd");
/// let mut c = hull::Container::load("/run/hull".as_ref(), "web")?;
/// let proxy = c.notify_proxy(host.as_ref())?;
/// c.start()?;
/// if let Some(proxy) = proxy {
///     proxy.forward_ready(c.pid(), c.pid())?;
/// }
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
pub struct NotifyProxy {
    socket: UnixDatagram,
    host: PathBuf,
}

impl NotifyProxy {
    /// Binds the container's socket in `state_dir` (made at create), to be forwarded to `host`.
    /// `None` when the container was created without NOTIFY_SOCKET.
    pub(crate) fn bind(state_dir: &Path, host: &Path) -> Result<Option<NotifyProxy>> {
        let dir = dir(state_dir);
        if !dir.is_dir() {
            log::warn!(
                "NOTIFY_SOCKET is set but the container was created without it: not proxied"
            );
            return Ok(None);
        }
        let path = dir.join(SOCKET_NAME);
        // A start that failed earlier may have left it.
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).io("bind notify socket", &path)?;
        // Any user of the container may notify.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .io("chmod notify socket", &path)?;
        Ok(Some(NotifyProxy {
            socket,
            host: host.to_path_buf(),
        }))
    }

    /// Waits for the container's `READY=` message and passes it on with `MAINPID=<main_pid>`
    /// (the init when the runtime detaches, the runtime itself when it stays in the foreground);
    /// returns without a word if the init (`init_pid`) exits first. Errors are
    /// [`Error::Io`] or [`Error::Sys`] naming the socket or the step that failed.
    ///
    /// ```no_run
    /// # fn f(c: &hull::Container) -> hull::Result<()> {
    /// if let Some(proxy) = c.notify_proxy("/run/systemd/notify".as_ref())? {
    ///     // `hull run` stays in the foreground: systemd should watch this process.
    ///     proxy.forward_ready(c.pid(), std::process::id() as i32)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward_ready(self, init_pid: i32, main_pid: i32) -> Result<()> {
        let process =
            PidFd::open(nix::unistd::Pid::from_raw(init_pid)).sys("pidfd_open of the init")?;
        let Some(ready) = self.wait_ready(&process)? else {
            return Ok(());
        };
        let client = UnixDatagram::unbound().io("create notify client socket", &self.host)?;
        client
            .connect(&self.host)
            .io("connect to NOTIFY_SOCKET", &self.host)?;
        client
            .send(format!("{ready}\n").as_bytes())
            .io("send READY to NOTIFY_SOCKET", &self.host)?;
        client
            .send(format!("MAINPID={main_pid}\n").as_bytes())
            .io("send MAINPID to NOTIFY_SOCKET", &self.host)?;
        barrier(&client, &self.host)
    }

    /// The first `READY=` line the container sends, or `None` once `process` has exited.
    fn wait_ready(&self, process: &PidFd) -> Result<Option<String>> {
        let mut buf = vec![0u8; 4096];
        loop {
            // Without a pidfd (before Linux 5.3) the exit is looked for every EXIT_POLL.
            let (exit_fd, timeout) = match process.poll_fd() {
                Some(fd) => (Some(PollFd::new(fd, PollFlags::POLLIN)), PollTimeout::NONE),
                None => (
                    None,
                    PollTimeout::try_from(EXIT_POLL.as_millis() as i32)
                        .unwrap_or(PollTimeout::ZERO),
                ),
            };
            let mut fds: Vec<PollFd<'_>> =
                std::iter::once(PollFd::new(self.socket.as_fd(), PollFlags::POLLIN))
                    .chain(exit_fd)
                    .collect();
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).sys("wait for the container's READY"),
            }
            let readable = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let exited = match fds.get(1) {
                Some(fd) => readable(fd),
                None => process.exited(),
            };
            if readable(&fds[0]) {
                let n = self
                    .socket
                    .recv(&mut buf)
                    .io("read notify socket", notify_path(&self.socket))?;
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(line) = text.lines().find(|l| l.starts_with("READY=")) {
                    return Ok(Some(line.to_string()));
                }
            } else if exited {
                return Ok(None);
            }
        }
    }
}

fn notify_path(socket: &UnixDatagram) -> PathBuf {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// sd_notify_barrier: send `BARRIER=1` with the write end of a pipe, which systemd closes once it
/// has processed everything sent before; wait for that end-of-file.
fn barrier(client: &UnixDatagram, host: &Path) -> Result<()> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).sys("create barrier pipe")?;
    let fds = [write.as_raw_fd()];
    sendmsg::<UnixAddr>(
        client.as_raw_fd(),
        &[IoSlice::new(b"BARRIER=1")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .sys_path("send BARRIER to NOTIFY_SOCKET", host)?;
    drop(write);
    let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(BARRIER_TIMEOUT.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(0) => {
            log::warn!("no barrier acknowledgement from NOTIFY_SOCKET after 30s; ignored");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e).sys("wait for the barrier acknowledgement"),
    }
}
