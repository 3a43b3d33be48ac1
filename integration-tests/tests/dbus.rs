//! Hull's D-Bus client (the systemd cgroup driver's, reached through the hidden
//! `hull::test_seam::dbus`) against a real bus: a private dbus-daemon started here, so the wire
//! format, the authentication, error replies and signal delivery are checked by the reference
//! implementation of the protocol. What systemd itself answers is checked in the systemd guest
//! lane.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hull::test_seam::dbus::{Arg, Bus, BusError};
use integration_tests::tmp::TempDir;

const DBUS: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = TempDir::new("dbus");
        let socket = dir.join("bus");
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(socket: &Path) -> Bus {
    Bus::connect(socket, Duration::from_secs(10)).expect("connect and authenticate")
}

#[test]
fn calls_return_values_errors_and_signals() {
    let d = Daemon::start();
    let mut bus = connect(&d.socket);

    // A reply with a string body: the bus's id, 32 hex digits.
    let reply = bus
        .call(DBUS, DBUS_PATH, DBUS, "GetId", &[])
        .expect("GetId");
    let id = reply.body_strings().unwrap();
    assert_eq!(id.len(), 1);
    assert_eq!(id[0].len(), 32, "{id:?}");
    assert!(id[0].bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");

    // An error reply carries the error's name and message.
    match bus.call(DBUS, DBUS_PATH, DBUS, "NoSuchMethod", &[Arg::U32(1)]) {
        Err(BusError::Remote { name, message }) => {
            assert_eq!(name, "org.freedesktop.DBus.Error.UnknownMethod");
            assert!(message.contains("NoSuchMethod"), "{message}");
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    // A wrongly typed argument is refused by the daemon's own parser, not misread.
    match bus.call(DBUS, DBUS_PATH, DBUS, "GetNameOwner", &[Arg::U64(7)]) {
        Err(BusError::Remote { name, .. }) => {
            assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs")
        }
        other => panic!("expected InvalidArgs, got {other:?}"),
    }

    // A nested array of structs of variants (StartTransientUnit's shape) goes through a call
    // that echoes nothing but must parse it: AddMatch refuses a bad rule, takes a good one.
    bus.call(
        DBUS,
        DBUS_PATH,
        DBUS,
        "AddMatch",
        &[Arg::str(
            "type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged'",
        )],
    )
    .expect("AddMatch");

    // A signal routed by that rule: another connection appearing.
    let other = connect(&d.socket);
    let signal = bus
        .wait_signal(
            DBUS,
            "NameOwnerChanged",
            Instant::now() + Duration::from_secs(10),
            "NameOwnerChanged",
            |m| {
                m.body_strings()
                    .is_ok_and(|b| b.len() == 3 && b[1].is_empty())
            },
        )
        .expect("NameOwnerChanged for the second connection");
    let body = signal.body_strings().unwrap();
    assert!(body[0].starts_with(':'), "{body:?}");
    drop(other);

    // No signal: the wait ends at its deadline with a timeout, not a hang.
    let start = Instant::now();
    let r = bus.wait_signal(
        DBUS,
        "NameAcquired-never",
        Instant::now() + Duration::from_millis(300),
        "nothing",
        |_| true,
    );
    assert!(matches!(r, Err(BusError::Timeout(_))), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn variants_reach_the_daemon_intact() {
    // Properties.Set(ssv) of a read-only property: the daemon parses the variant before it
    // refuses the write, so a misencoded variant would come back as InvalidArgs instead.
    let d = Daemon::start();
    let mut bus = connect(&d.socket);
    let value = Arg::Variant(Box::new(Arg::Array(
        "(sv)",
        vec![Arg::property("Delegate", Arg::Bool(true))],
    )));
    let r = bus.call(
        DBUS,
        DBUS_PATH,
        "org.freedesktop.DBus.Properties",
        "Set",
        &[Arg::str(DBUS), Arg::str("Features"), value],
    );
    match r {
        Err(BusError::Remote { name, message }) => {
            assert!(name.ends_with("PropertyReadOnly"), "{name}: {message}")
        }
        other => panic!("expected the daemon to refuse the write, got {other:?}"),
    }
}

#[test]
fn no_bus_is_a_clear_error_naming_the_socket() {
    let dir = TempDir::new("dbus-none");
    let missing = dir.join("no-bus");
    match Bus::connect(&missing, Duration::from_secs(1)) {
        Err(e @ BusError::Connect { .. }) => {
            let text = e.to_string();
            assert!(text.contains("no-bus"), "{text}");
        }
        Err(e) => panic!("expected a connect error, got {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}
