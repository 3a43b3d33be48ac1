//! Running hooks (see [`crate::hooks`] for when each kind runs and what it gets): each hook a
//! child process whose stdin, stdout and stderr one poll loop serves, killed at its timeout.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks};

use super::pidfd::{PidFd, EXIT_POLL};
pub(crate) use crate::hooks::of_kind;
use crate::hooks::{HookError, HookFailure, HookKind};
use crate::{State, Status};

/// How much of a failing hook's stdout and of its stderr the error keeps: the end, which usually
/// says why. The rest is read and dropped, so a chatty hook never stalls on a full pipe.
const OUTPUT_KEPT: usize = 16 * 1024;

/// Runs every hook even when some fail (poststop: the spec wants the rest run, the failures only
/// warned about); returns the failures.
pub(crate) fn run_all(kind: HookKind, hooks: &[Hook], state: &State) -> Vec<HookFailure> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            run(kind, std::slice::from_ref(h), state)
                .err()
                .map(|f| HookFailure { index: i, ..f })
        })
        .collect()
}

/// runtime.md's last lifecycle step, after `delete` or a failed `create` removed the container:
/// the poststop hooks with the `stopped` state, each failure a warning.
pub(crate) fn poststop(hooks: Option<&Hooks>, state: &State) {
    let Some(poststop) = hooks.map(|h| of_kind(h, HookKind::Poststop)) else {
        return;
    };
    let mut state = state.clone();
    state.status = Status::Stopped;
    // No process is left to name (runc leaves the pid out).
    state.pid = 0;
    for failure in run_all(HookKind::Poststop, poststop, &state) {
        log::warn!("{failure}");
    }
}

/// Runs `hooks` in order with `state` on each one's stdin; stops at the first failure.
pub(crate) fn run(kind: HookKind, hooks: &[Hook], state: &State) -> Result<(), HookFailure> {
    let input = serde_json::to_vec(state).expect("state serialises");
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, &input).map_err(|error| HookFailure {
            kind,
            index,
            path: hook.path().display().to_string(),
            error: Box::new(error),
        })?;
    }
    Ok(())
}

fn run_one(hook: &Hook, input: &[u8]) -> Result<(), HookError> {
    let mut cmd = Command::new(hook.path());
    // The spec's `args` include argv[0], as execv's do.
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timed-out hook goes with whatever it started.
        .process_group(0);
    let mut child = match cmd.spawn() {
        // glibc's posix_spawn (which std uses) tries clone3 and falls back to clone only on
        // ENOSYS; a host whose seccomp profile answers clone3 with EPERM (profiles older than
        // Linux 5.3 did) fails it. A `pre_exec` makes std fork(2) instead, which uses clone.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            // SAFETY: the closure does nothing, so it is async-signal-safe in the forked child.
            unsafe { cmd.pre_exec(|| Ok(())) }.spawn()
        }
        r => r,
    }
    .map_err(|e| HookError::Spawn {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })?;
    let deadline = hook
        .timeout()
        .map(|secs| Instant::now() + Duration::from_secs(secs.max(0) as u64));
    let pipes = Pipes {
        stdin: child.stdin.take().map(OwnedFd::from),
        outputs: [
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ],
    };
    let watched = PidFd::open(Pid::from_raw(child.id() as i32))
        .map_err(|e| HookError::Io {
            step: "pidfd_open".into(),
            errno: e as i32,
        })
        .and_then(|pidfd| pipes.serve(&pidfd, input, deadline));
    let output = match watched {
        Ok(Some(output)) => output,
        other => {
            // Timed out, or we cannot watch it any more: neither it nor what it started may
            // outlive the operation.
            if killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL).is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
            return match other {
                Err(e) => Err(e),
                _ => Err(HookError::Timeout {
                    secs: hook.timeout().unwrap_or_default(),
                }),
            };
        }
    };
    let status = child.wait().map_err(|e| HookError::Io {
        step: "wait for hook".into(),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })?;
    if status.success() {
        return Ok(());
    }
    let [stdout, stderr] = output.map(|t| t.text());
    Err(HookError::Failed {
        status: status.to_string(),
        stdout,
        stderr,
    })
}

/// Our ends of a hook's stdin, stdout and stderr.
struct Pipes {
    stdin: Option<OwnedFd>,
    outputs: [Option<OwnedFd>; 2],
}

impl Pipes {
    /// Writes `input` to the hook's stdin and drains its stdout and stderr, whichever is ready,
    /// until it exits (`Some(the end of its stdout and stderr)`) or `deadline` passes (`None`).
    fn serve(
        mut self,
        pidfd: &PidFd,
        input: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Option<[Tail; 2]>, HookError> {
        for fd in self.stdin.iter().chain(self.outputs.iter().flatten()) {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| HookError::Io {
                step: "make hook pipe non-blocking".into(),
                errno: e as i32,
            })?;
        }
        let _sigpipe = SigpipeBlocked::new();
        let mut kept = [Tail::default(), Tail::default()];
        let mut written = 0;
        loop {
            if written == input.len() {
                // End-of-file: a hook reading its state to the end may go on.
                self.stdin = None;
            }
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Rounded up, so the poll never wakes a hair early and spins.
                    let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128);
                    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
                }
            };
            let ready = self.poll(pidfd, timeout)?;
            if let (Some(fd), true) = (&self.stdin, ready[1]) {
                match nix::unistd::write(fd, &input[written..]) {
                    Ok(n) => written += n,
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    // It closed its stdin unread: its business, not a failure.
                    Err(Errno::EPIPE) => written = input.len(),
                    Err(e) => {
                        return Err(HookError::Io {
                            step: "write state to hook's stdin".into(),
                            errno: e as i32,
                        })
                    }
                }
            }
            for (i, tail) in kept.iter_mut().enumerate() {
                if ready[2 + i] {
                    drain(&mut self.outputs[i], tail)?;
                }
            }
            if ready[0] {
                // It exited: what it wrote is in the pipes. A process it left behind may hold
                // them open for ever, so take only what is there now.
                for (slot, tail) in self.outputs.iter_mut().zip(kept.iter_mut()) {
                    drain(slot, tail)?;
                }
                return Ok(Some(kept));
            }
        }
    }

    /// Which of the pidfd, stdin, stdout, stderr is ready (a closed pipe never is). Without a
    /// pidfd (before Linux 5.3) the poll wakes every [`EXIT_POLL`] to look for the exit.
    fn poll(&self, pidfd: &PidFd, timeout: PollTimeout) -> Result<[bool; 4], HookError> {
        let timeout = match pidfd.poll_fd() {
            Some(_) => timeout,
            None => {
                let cap = EXIT_POLL.as_millis() as i32;
                if (0..cap).contains(&i32::from(timeout)) {
                    timeout
                } else {
                    PollTimeout::try_from(cap).unwrap_or(PollTimeout::ZERO)
                }
            }
        };
        let watched = [
            pidfd.poll_fd().map(|fd| (fd, PollFlags::POLLIN)),
            self.stdin.as_ref().map(|f| (f.as_fd(), PollFlags::POLLOUT)),
            self.outputs[0]
                .as_ref()
                .map(|f| (f.as_fd(), PollFlags::POLLIN)),
            self.outputs[1]
                .as_ref()
                .map(|f| (f.as_fd(), PollFlags::POLLIN)),
        ];
        let mut fds: Vec<PollFd<'_>> = watched
            .iter()
            .flatten()
            .map(|(fd, events)| PollFd::new(*fd, *events))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(HookError::Io {
                    step: "poll hook's pipes".into(),
                    errno: e as i32,
                })
            }
        }
        let mut revents = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()));
        let mut ready = watched.map(|w| w.is_some() && revents.next().unwrap_or(false));
        if pidfd.poll_fd().is_none() {
            ready[0] = pidfd.exited();
        }
        Ok(ready)
    }
}

/// Reads what `slot` holds now into `tail`; closes it at end-of-file.
fn drain(slot: &mut Option<OwnedFd>, tail: &mut Tail) -> Result<(), HookError> {
    let mut buf = [0u8; 16 * 1024];
    while let Some(fd) = slot {
        match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(0) => *slot = None,
            Ok(n) => tail.push(&buf[..n]),
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(HookError::Io {
                    step: "read hook's output".into(),
                    errno: e as i32,
                })
            }
        }
    }
    Ok(())
}

/// The last [`OUTPUT_KEPT`] bytes of one of a hook's outputs, and how many came before.
#[derive(Default)]
struct Tail {
    kept: Vec<u8>,
    dropped: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        if self.kept.len() > OUTPUT_KEPT {
            let cut = self.kept.len() - OUTPUT_KEPT;
            self.kept.drain(..cut);
            self.dropped += cut;
        }
    }

    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.kept);
        match self.dropped {
            0 => text.trim().to_owned(),
            n => format!("[{n} bytes before] {}", text.trim()),
        }
    }
}

/// While alive, writing to a pipe the hook has closed is an EPIPE we handle, never a SIGPIPE that
/// kills us (a library caller need not ignore it as Rust programs do): SIGPIPE is blocked on this
/// thread, and one our write raised is taken back before the old mask returns.
struct SigpipeBlocked {
    old: Option<SigSet>,
    was_pending: bool,
}

impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        let was_pending = sigpipe_pending();
        let old = SigSet::from(Signal::SIGPIPE)
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .ok();
        SigpipeBlocked { old, was_pending }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        let Some(old) = self.old else { return };
        if !self.was_pending && sigpipe_pending() {
            // Pending, so this returns at once.
            let _ = SigSet::from(Signal::SIGPIPE).wait();
        }
        let _ = old.thread_set_mask();
    }
}

fn sigpipe_pending() -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; sigismember reads it only once it was filled.
    unsafe {
        libc::sigpending(set.as_mut_ptr()) == 0
            && libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn state() -> State {
        State {
            oci_version: "1.0.2".into(),
            id: "hook-test".into(),
            pid: 42,
            status: Status::Creating,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path("/bin/sh".into());
        h.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
        h.set_env(Some(vec!["HOOK_VAR=v".into()]));
        h.set_timeout(timeout);
        h
    }

    #[test]
    fn hooks_get_state_on_stdin_args_and_env_in_order() {
        let dir = std::env::temp_dir().join(format!("hull-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let hooks = [
            hook(
                &format!("cat > {0}; echo \" $HOOK_VAR $0\" >> {0}", out.display()),
                None,
            ),
            hook(&format!("echo second >> {}", out.display()), Some(5)),
        ];
        run(HookKind::CreateRuntime, &hooks, &state()).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (json, rest) = text
            .split_once(" v sh\n")
            .expect("env and argv0 reach the hook");
        let got: State = serde_json::from_str(json).unwrap();
        assert_eq!(got, state());
        assert_eq!(rest, "second\n");
    }

    #[test]
    fn failing_hook_stops_the_sequence_and_says_which() {
        let hooks = [hook("echo oops >&2; exit 3", None), hook("exit 0", None)];
        let err = run(HookKind::Prestart, &hooks, &state()).unwrap_err();
        assert_eq!((err.kind, err.index), (HookKind::Prestart, 0));
        let HookError::Failed { status, stderr, .. } = &*err.error else {
            panic!("{err}");
        };
        assert_eq!(
            (status.as_str(), stderr.as_str()),
            ("exit status: 3", "oops")
        );
    }

    #[test]
    fn hook_past_its_timeout_is_killed() {
        let started = std::time::Instant::now();
        let err = run(HookKind::Poststart, &[hook("sleep 30", Some(1))], &state()).unwrap_err();
        assert_eq!(*err.error, HookError::Timeout { secs: 1 }, "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn output_beyond_a_pipe_buffer_neither_blocks_nor_is_kept_whole() {
        let script = "head -c 1048576 /dev/zero | tr '\\0' o; head -c 1048576 /dev/zero >&2; \
                      echo; echo last words >&2; exit 1";
        let started = std::time::Instant::now();
        let err = run(HookKind::CreateRuntime, &[hook(script, Some(20))], &state()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        let HookError::Failed { stdout, stderr, .. } = &*err.error else {
            panic!("{err}");
        };
        assert!(
            stderr.ends_with("last words"),
            "{}",
            &stderr[stderr.len() - 40..]
        );
        assert!(
            stdout.starts_with("[1032193 bytes before] ooo"),
            "{}",
            &stdout[..40]
        );
        assert!(stderr.len() < 2 * OUTPUT_KEPT);
    }

    #[test]
    fn a_hook_that_never_reads_a_big_state_is_timed_from_its_spawn() {
        let mut big = state();
        big.annotations.insert("big".into(), "x".repeat(256 * 1024));
        // Neither reads nor exits: the write of the state must not stall past the timeout.
        let started = std::time::Instant::now();
        let err = run(HookKind::CreateRuntime, &[hook("sleep 30", Some(1))], &big).unwrap_err();
        assert_eq!(*err.error, HookError::Timeout { secs: 1 });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// Exits at once without reading a state bigger than a pipe buffer: the write gets EPIPE,
    /// which is no failure, and no SIGPIPE kills us even when its action is the default. Run in a
    /// child test process, as the default action would end this whole test binary.
    #[test]
    fn a_hook_that_exits_unread_raises_no_sigpipe() {
        const CHILD: &str = "HULL_HOOKS_SIGPIPE_CHILD";
        let name = "process::hooks::tests::a_hook_that_exits_unread_raises_no_sigpipe";
        if std::env::var_os(CHILD).is_none() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--test-threads=1"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("1 passed"), "{out:?}");
            return;
        }
        let mut big = state();
        big.annotations.insert("big".into(), "x".repeat(256 * 1024));
        // SAFETY: SIG_DFL installs no handler code; this process runs only this test.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        for _ in 0..20 {
            run(HookKind::CreateRuntime, &[hook("exit 0", None)], &big).unwrap();
        }
    }
}
