//! `run` and `exec` in the foreground, as runc: the caller's signals are passed on to the
//! container's process, and with `process.terminal` and no `--console-socket` hull is its own
//! console socket, receives the pty master, and relays the caller's stdio to it (raw mode and the
//! window size taken from the caller's terminal, when it has one).

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Pid;

use crate::log::Failure;

/// A listening socket in a private temporary directory, the `--console-socket` given to create.
pub struct ConsoleSocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket, Failure> {
        let dir = std::env::temp_dir().join(format!("hull-console-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| Failure::msg(format!("create {dir:?}: {}", crate::log::io_message(&e))))?;
        let path = dir.join("console.sock");
        match UnixListener::bind(&path) {
            Ok(listener) => Ok(ConsoleSocket { dir, listener }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(Failure::msg(format!(
                    "listen on {path:?}: {}",
                    crate::log::io_message(&e)
                )))
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// The pty master the container's init sent during create.
    pub fn receive(&self) -> Result<OwnedFd, Failure> {
        let fail = |what: &str| Failure::msg(format!("receive the console master: {what}"));
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| fail(&crate::log::io_message(&e)))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| fail(&e.desc().to_lowercase()))?;
        for cmsg in msg.cmsgs().map_err(|e| fail(&e.desc().to_lowercase()))? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed `fd` in this process for us alone.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(fail("no file descriptor in the message"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Relays stdin to the master and the master to stdout until the container's side closes; the
/// caller's terminal settings come back when this is dropped.
pub struct Relay {
    saved: Option<Termios>,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    pub fn start(master: OwnedFd) -> Result<Relay, Failure> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
            copy_window_size(stdin.as_fd(), master.as_fd());
        }
        // From here an error drops it, which gives the caller's terminal its mode back.
        let mut relay = Relay {
            saved,
            output: None,
        };
        let mut to_master = std::fs::File::from(
            master
                .try_clone()
                .map_err(|e| Failure::msg(format!("dup console: {e}")))?,
        );
        let mut from_master = std::fs::File::from(master);
        // A thread that cannot be made (glibc refuses every thread when a host's profile answers
        // clone3 with EPERM) is an error to report, not a panic.
        let no_thread = |e: std::io::Error| Failure::msg(format!("relay the terminal: {e}"));
        std::thread::Builder::new()
            .spawn(move || {
                let mut buf = [0u8; 8192];
                let mut input = std::io::stdin().lock();
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            })
            .map_err(no_thread)?;
        let output = std::thread::Builder::new()
            .spawn(move || {
                let mut out = std::io::stdout();
                // EIO once every slave fd is closed: the container is done with its terminal.
                let _ = std::io::copy(&mut from_master, &mut out);
                let _ = out.flush();
            })
            .map_err(no_thread)?;
        relay.output = Some(output);
        Ok(relay)
    }

    /// After the container exited: everything it wrote has reached stdout.
    pub fn finish(mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

pub fn copy_window_size(from: std::os::fd::BorrowedFd<'_>, to: std::os::fd::BorrowedFd<'_>) {
    if let Some(ws) = window_size(from) {
        // SAFETY: TIOCSWINSZ reads exactly one winsize, which `ws` is.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// The size of the terminal `fd` is, if it is one.
fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<libc::winsize> {
    // SAFETY: winsize is plain data; TIOCGWINSZ writes exactly one.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

/// The caller's window size as a process.consoleSize, for a foreground `exec` that relays its own
/// terminal: its process runs as soon as its pty exists, before hull holds the master, so a size
/// copied afterwards would come too late for a first `stty size`. `None` when stdin is no
/// terminal or reports no size.
pub fn callers_console_size() -> Option<hull::oci_spec::runtime::Box> {
    let ws = window_size(std::io::stdin().as_fd()).filter(|ws| ws.ws_row != 0 && ws.ws_col != 0)?;
    hull::oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(ws.ws_row))
        .width(u64::from(ws.ws_col))
        .build()
        .ok()
}

/// What a foreground `run` or `exec` sets up before its process exists: runc's own terminal (a
/// console socket of hull's, so hull takes the pty master itself and relays its stdio) when the
/// process wants one and the caller passed no socket, and the signals to pass on, held from then
/// so that none comes too early (the library resets the mask right before the process' execve,
/// and every hook starts with an empty one). Detached, nothing.
pub fn prepare_foreground(
    detach: bool,
    terminal: bool,
    console_socket: &mut Option<PathBuf>,
) -> Result<(Option<ConsoleSocket>, Option<HeldSignals>), Failure> {
    if detach {
        return Ok((None, None));
    }
    let console = if console_socket.is_none() && terminal {
        let socket = ConsoleSocket::new()?;
        *console_socket = Some(socket.path());
        Some(socket)
    } else {
        None
    };
    let held = hold_signals(console.is_some())?;
    Ok((console, Some(held)))
}

/// What a foreground `run` or `exec` passes on to the container's process: as runc, every signal
/// a process can be sent but SIGCHLD (ours to wait for) and SIGWINCH (a resize, with a terminal).
/// Left out besides: SIGKILL and SIGSTOP (they cannot be caught), and the faults the kernel raises
/// in the thread that caused them (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT),
/// which must never be blocked; SIGPIPE is ignored by every Rust program, so it never arrives.
const FORWARDED: [Signal; 19] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGSTKFLT,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// The forwarded signals, blocked in the thread that made this (and the threads it starts later):
/// one that comes before [`Self::forward_to`] waits instead of ending the runtime.
pub struct HeldSignals(SigSet);

/// Blocks the forwarded signals (SIGWINCH too with a relayed terminal, `resize`). A signal mask
/// is inherited across fork and execve: only before library calls whose children clear it (the
/// init and exec'd processes do, right before their execve; `Command` does for hooks).
fn hold_signals(resize: bool) -> Result<HeldSignals, Failure> {
    let mut set: SigSet = FORWARDED.into_iter().collect();
    if resize {
        set.add(Signal::SIGWINCH);
    }
    set.thread_block()
        .map_err(|e| Failure::msg(format!("block signals: {}", e.desc().to_lowercase())))?;
    Ok(HeldSignals(set))
}

impl HeldSignals {
    /// Hands the held signals to a thread that sends each to `process` (the init of `run`, the
    /// process of `exec`). A blocked signal never interrupts the wait, and no handler code runs
    /// in signal context. With a relayed terminal (`resize`: the pty master), SIGWINCH copies the
    /// caller's new window size to it, as runc does; the kernel then signals the container's
    /// foreground process group.
    ///
    /// Without a thread (glibc's pthread_create falls back from clone3 to clone only on ENOSYS,
    /// so a host profile answering clone3 with EPERM refuses every thread) the signals are
    /// unblocked again and act on the runtime itself, with a warning, rather than failing.
    pub fn forward_to(self, process: Pid, resize: Option<OwnedFd>) -> Result<(), Failure> {
        let set = self.0;
        let spawned = std::thread::Builder::new()
            .name("signal-forwarder".into())
            .spawn(move || loop {
                match (set.wait(), &resize) {
                    (Ok(Signal::SIGWINCH), Some(master)) => {
                        copy_window_size(std::io::stdin().as_fd(), master.as_fd());
                    }
                    // The process may have exited already; the wait in the main thread sees that.
                    (Ok(signal), _) => {
                        let _ = kill(process, signal);
                    }
                    (Err(_), _) => {}
                }
            });
        if let Err(e) = spawned {
            log::warn!("no signal forwarder ({e}): signals act on the runtime, not the container");
            set.thread_unblock().map_err(|e| {
                Failure::msg(format!("unblock signals: {}", e.desc().to_lowercase()))
            })?;
        }
        Ok(())
    }
}
