//! Runs a command in a container and captures its output: a spec built in memory (no
//! config.json), stdout and stderr piped back to this program.
//!
//! ```sh
//! cargo run -p hull --example run_capture -- /path/to/rootfs   # as root; e.g. a busybox rootfs
//! ```
//!
//! The state root is `/run/hull` unless `HULL_EXAMPLE_STATE_ROOT` names another, the container's
//! id `capture-<pid>` unless `HULL_EXAMPLE_ID` names it.

use std::io::Read;

use hull::oci_spec::runtime::Spec;
use hull::{Container, Stdio};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First thing: re-execute from a sealed copy of this program (see hull::exe).
    hull::exe::ensure_sealed()?;
    let rootfs = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HULL_EXAMPLE_ROOTFS").ok())
        .ok_or("usage: run_capture ROOTFS (an absolute path to a root filesystem, e.g. busybox)")?;
    let state_root = std::env::var("HULL_EXAMPLE_STATE_ROOT").unwrap_or("/run/hull".into());
    let id = std::env::var("HULL_EXAMPLE_ID").unwrap_or(format!("capture-{}", std::process::id()));

    // oci-spec's default is a runc-like config: namespaces, mounts, capabilities.
    let mut spec = Spec::default();
    spec.set_hostname(Some("capture".into()));
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.into());
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo hello from $(hostname); echo a warning >&2; exit 3".into(),
    ]));
    spec.set_process(Some(process));

    let mut container = Container::builder(&id)
        .spec(spec)
        .root(state_root)
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .create()?;
    let io = container.take_io();
    container.start()?;
    // Small outputs: read one stream after the other (a program whose output may fill a pipe
    // reads both at once).
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(fd) = io.stdout {
        std::fs::File::from(fd).read_to_string(&mut stdout)?;
    }
    if let Some(fd) = io.stderr {
        std::fs::File::from(fd).read_to_string(&mut stderr)?;
    }
    let code = container.wait()?;
    container.delete(false)?;
    print!("stdout: {stdout}");
    print!("stderr: {stderr}");
    println!("exit code: {code}");
    Ok(())
}
