//! The driver against a fake child: a thread on the other end of a real socketpair, sending what
//! an init (or exec'd process) would, in-process and unprivileged.

use std::os::fd::OwnedFd;
use std::thread::JoinHandle;

use nix::unistd::Pid;

use super::*;
use crate::error::{InitFailure, InitStep};
use crate::process::channel::{pair, Channel, Message};

/// What the runtime's side was asked to do, in order.
#[derive(Default)]
struct Recorder(Vec<&'static str>);

impl InitSteps for Recorder {
    fn place(&mut self, _: Pid) -> Result<()> {
        self.0.push("place");
        Ok(())
    }
    fn placed(&mut self, _: Pid) -> Result<()> {
        self.0.push("placed");
        Ok(())
    }
    fn write_id_maps(&mut self, _: Pid) -> Result<()> {
        self.0.push("id maps");
        Ok(())
    }
    fn create_runtime(&mut self) -> Result<String> {
        self.0.push("hooks");
        Ok("2026-01-01T00:00:00Z".into())
    }
    fn send_listener(&mut self, _: OwnedFd) -> Result<()> {
        self.0.push("listener");
        Ok(())
    }
    fn ready(&mut self) -> Result<()> {
        self.0.push("ready");
        Ok(())
    }
}

impl ExecSteps for Recorder {
    fn place(&mut self, _: Pid) -> Result<()> {
        self.0.push("place");
        Ok(())
    }
    fn send_listener(&mut self, _: OwnedFd) -> Result<()> {
        self.0.push("listener");
        Ok(())
    }
}

/// One thing the fake child does.
#[derive(Clone)]
enum Act {
    Send(Message),
    /// Sends SeccompListener with a descriptor (any will do: the driver passes it on).
    SendListener,
    /// Reads one message and checks it is this one.
    Expect(Message),
}

use Act::{Expect, Send};

/// Plays `acts` on the child's end, then closes it. Returns what went wrong on its side.
fn fake_child(end: Channel, acts: Vec<Act>) -> JoinHandle<std::result::Result<(), String>> {
    std::thread::spawn(move || {
        for act in acts {
            match act {
                Send(m) => end.send(&m).map_err(|e| format!("send {m:?}: {e}"))?,
                Act::SendListener => end
                    .send_with_fd(&Message::SeccompListener, end.as_fd())
                    .map_err(|e| format!("send listener: {e}"))?,
                Expect(m) => match end.recv() {
                    Ok(got) if got == m => {}
                    other => return Err(format!("child wanted {m:?}, got {other:?}")),
                },
            }
        }
        Ok(())
    })
}

/// The whole create exchange with every optional step; `calls` says which the config wants.
fn full_init() -> Vec<Act> {
    vec![
        Expect(Message::CgroupsApplied),
        Send(Message::IdMapRequest),
        Expect(Message::IdMapsWritten),
        Send(Message::CreateRuntime),
        Expect(Message::HooksDone {
            created: "2026-01-01T00:00:00Z".into(),
        }),
        Act::SendListener,
        Expect(Message::ListenerSent),
        Send(Message::Ready),
        Expect(Message::Proceed),
    ]
}

const ALL: InitCalls = InitCalls {
    id_maps: true,
    hooks: true,
    listener: true,
};

fn me() -> Pid {
    Pid::from_raw(std::process::id() as i32)
}

fn run_init(calls: InitCalls, acts: Vec<Act>) -> (Result<()>, Vec<&'static str>) {
    let (runtime, child) = pair().unwrap();
    let fake = fake_child(child, acts);
    let mut rec = Recorder::default();
    let r = drive_init(&runtime, me(), calls, &mut rec);
    drop(runtime);
    let _ = fake.join().unwrap();
    (r, rec.0)
}

fn lost_detail(r: Result<()>) -> String {
    match r {
        Err(Error::InitLost { detail, .. }) => detail,
        other => panic!("expected InitLost, got {other:?}"),
    }
}

#[test]
fn the_documented_order_passes_with_every_step() {
    let (runtime, child) = pair().unwrap();
    let fake = fake_child(child, full_init());
    let mut rec = Recorder::default();
    drive_init(&runtime, me(), ALL, &mut rec).unwrap();
    assert_eq!(fake.join().unwrap(), Ok(()));
    assert_eq!(
        rec.0,
        ["place", "placed", "id maps", "hooks", "listener", "ready"]
    );
}

#[test]
fn the_documented_order_passes_with_no_optional_step() {
    let acts = vec![
        Expect(Message::CgroupsApplied),
        Send(Message::Ready),
        Expect(Message::Proceed),
    ];
    let (r, steps) = run_init(InitCalls::default(), acts);
    r.unwrap();
    assert_eq!(steps, ["place", "placed", "ready"]);
}

#[test]
fn an_uncalled_for_message_fails_naming_both() {
    // Each optional message, sent when the config does not call for it: the driver waits for
    // the next step the config does call for.
    let cases = [
        (
            InitCalls::default(),
            Send(Message::IdMapRequest),
            "unexpected message IdMapRequest while waiting for Ready",
        ),
        (
            InitCalls::default(),
            Send(Message::CreateRuntime),
            "unexpected message CreateRuntime while waiting for Ready",
        ),
        (
            InitCalls {
                hooks: true,
                ..InitCalls::default()
            },
            Act::SendListener,
            "unexpected message SeccompListener while waiting for CreateRuntime",
        ),
    ];
    for (calls, act, want) in cases {
        let (r, steps) = run_init(calls, vec![Expect(Message::CgroupsApplied), act]);
        assert_eq!(lost_detail(r), want);
        assert_eq!(steps, ["place", "placed"], "{want}");
    }
}

#[test]
fn an_out_of_order_message_fails_naming_both() {
    // The init's steps in the wrong order: hooks before the id maps, Ready before the listener.
    let cases = [
        (
            vec![Send(Message::CreateRuntime)],
            "unexpected message CreateRuntime while waiting for IdMapRequest",
        ),
        (
            vec![
                Send(Message::IdMapRequest),
                Expect(Message::IdMapsWritten),
                Send(Message::CreateRuntime),
                Expect(Message::HooksDone {
                    created: "2026-01-01T00:00:00Z".into(),
                }),
                Send(Message::Ready),
            ],
            "unexpected message Ready while waiting for SeccompListener",
        ),
        (
            // A message only the runtime sends.
            vec![Send(Message::Proceed)],
            "unexpected message Proceed while waiting for IdMapRequest",
        ),
    ];
    for (mut acts, want) in cases {
        acts.insert(0, Expect(Message::CgroupsApplied));
        let (r, _) = run_init(ALL, acts);
        assert_eq!(lost_detail(r), want);
    }
}

#[test]
fn a_message_after_proceed_fails() {
    let mut acts = full_init();
    acts.push(Send(Message::Ready));
    let (r, _) = run_init(ALL, acts);
    assert_eq!(
        lost_detail(r),
        "unexpected message Ready while waiting for the end of the channel"
    );
}

#[test]
fn a_listener_without_its_descriptor_fails() {
    let acts = vec![
        Expect(Message::CgroupsApplied),
        Send(Message::SeccompListener),
    ];
    let calls = InitCalls {
        listener: true,
        ..InitCalls::default()
    };
    let (r, steps) = run_init(calls, acts);
    assert!(lost_detail(r).contains("without its descriptor"));
    assert_eq!(steps, ["place", "placed"]);
}

#[test]
fn a_failure_is_the_init_s_own_error() {
    let failure = InitFailure::new(InitStep::Cwd).subject("/nope");
    let acts = vec![
        Expect(Message::CgroupsApplied),
        Send(Message::Failed(failure.clone())),
    ];
    let (r, _) = run_init(ALL, acts);
    match r {
        Err(Error::Init(f)) => assert_eq!(f, failure),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failure_before_cgroups_applied_is_reported_over_the_broken_send() {
    // The child failed (its fd sanitising, say) and exited before reading CgroupsApplied.
    let failure = InitFailure::new(InitStep::Sync).subject("fds");
    let (r, _) = run_init(ALL, vec![Send(Message::Failed(failure.clone()))]);
    match r {
        Err(Error::Init(f)) => assert_eq!(f, failure),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_closed_channel_says_how_the_child_ended() {
    // A real child that exits with 3, and a fake one on the channel that just hangs up.
    let mut real = std::process::Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(real.id() as i32);
    let (runtime, child) = pair().unwrap();
    let fake = fake_child(child, vec![Expect(Message::CgroupsApplied)]);
    let mut rec = Recorder::default();
    let r = drive_init(&runtime, pid, ALL, &mut rec);
    fake.join().unwrap().unwrap();
    assert_eq!(
        lost_detail(r),
        "exited with status 3 while waiting for IdMapRequest"
    );
    // Not reaped by the driver: the caller does that (and the pid stays this child's till then).
    assert_eq!(real.wait().unwrap().code(), Some(3));
}

#[test]
fn exec_passes_in_order_and_refuses_what_it_does_not_call_for() {
    let (runtime, child) = pair().unwrap();
    let fake = fake_child(
        child,
        vec![
            Expect(Message::CgroupsApplied),
            Act::SendListener,
            Expect(Message::ListenerSent),
        ],
    );
    let mut rec = Recorder::default();
    drive_exec(&runtime, me(), true, &mut rec).unwrap();
    fake.join().unwrap().unwrap();
    assert_eq!(rec.0, ["place", "listener"]);

    for (listener, act, want) in [
        (
            false,
            Act::SendListener,
            "unexpected message SeccompListener while waiting for the end of the channel",
        ),
        (
            true,
            Send(Message::Ready),
            "unexpected message Ready while waiting for SeccompListener",
        ),
    ] {
        let (runtime, child) = pair().unwrap();
        let fake = fake_child(child, vec![Expect(Message::CgroupsApplied), act]);
        let mut rec = Recorder::default();
        let r = drive_exec(&runtime, me(), listener, &mut rec);
        drop(runtime);
        let _ = fake.join().unwrap();
        assert_eq!(lost_detail(r), want);
    }
}
