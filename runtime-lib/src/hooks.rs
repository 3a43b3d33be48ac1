//! OCI hooks (config.md "POSIX-platform Hooks"): each hook is a program run with the container's
//! state on its stdin; a non-zero exit (or its timeout) fails the operation that ran it, except
//! poststart and poststop, which only warn.
//!
//! Where each kind runs (the spec's timing, and runc's):
//! - `prestart`, `createRuntime`: by the runtime during `create`, after the init has made its mounts
//!   but before pivot_root (the init asks for them over the channel);
//! - `createContainer`: by the init, in the container's namespaces, right after that, before pivot;
//! - `startContainer`: by the init, after `start` released it, just before the exec;
//! - `poststart`: by `start` once the init was released; `poststop`: by `delete` at its end.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Hook;

use crate::process::pidfd::PidFd;
use crate::State;

/// The hook kinds, with the spec's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        })
    }
}

/// One hook that failed: which one, and how (runc's wording: `error running <kind> hook #<n>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error running {kind} hook #{index} {path:?}: {detail}")]
pub struct HookFailure {
    pub kind: String,
    pub index: usize,
    pub path: String,
    pub detail: String,
}

/// Runs every hook even when some fail (poststop: the spec wants the rest run, the failures only
/// warned about); returns the failures.
pub fn run_all(kind: HookKind, hooks: &[Hook], state: &State) -> Vec<HookFailure> {
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

/// Runs `hooks` in order with `state` on each one's stdin; stops at the first failure.
pub fn run(kind: HookKind, hooks: &[Hook], state: &State) -> Result<(), HookFailure> {
    let input = serde_json::to_vec(state).expect("state serialises");
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, &input).map_err(|detail| HookFailure {
            kind: kind.to_string(),
            index,
            path: hook.path().display().to_string(),
            detail,
        })?;
    }
    Ok(())
}

fn run_one(hook: &Hook, input: &[u8]) -> Result<(), String> {
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
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let pidfd = PidFd::open(Pid::from_raw(child.id() as i32)).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(input);
    }
    if let Some(secs) = hook.timeout() {
        let limit = Duration::from_secs(secs.max(1) as u64);
        if !pidfd.wait_exit(limit).map_err(|e| e.to_string())? {
            let _ = pidfd.send_signal(Signal::SIGKILL);
            let _ = child.wait();
            return Err(format!("timeout after {secs} seconds"));
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    Err(format!(
        "{status}, stdout: {}, stderr: {}",
        out.trim(),
        err.trim()
    ))
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
        assert_eq!((err.kind.as_str(), err.index), ("prestart", 0));
        assert!(err.detail.contains("exit status: 3"), "{err}");
        assert!(err.detail.contains("stderr: oops"), "{err}");
    }

    #[test]
    fn hook_past_its_timeout_is_killed() {
        let started = std::time::Instant::now();
        let err = run(HookKind::Poststart, &[hook("sleep 30", Some(1))], &state()).unwrap_err();
        assert!(err.detail.contains("timeout"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
