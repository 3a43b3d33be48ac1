//! Execs into a running container: one process whose output is captured, one fed on its stdin,
//! and one on a pty whose master this program reads.
//!
//! ```sh
//! cargo run -p hull --example exec -- /path/to/rootfs   # as root; e.g. a busybox rootfs
//! ```
//!
//! The state root is `/run/hull` unless `HULL_EXAMPLE_STATE_ROOT` names another, the container's
//! id `exec-<pid>` unless `HULL_EXAMPLE_ID` names it.

use std::io::{Read, Write};

use hull::oci_spec::runtime::{Process, Spec};
use hull::{Container, Stdio};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    hull::exe::ensure_sealed()?;
    let rootfs = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HULL_EXAMPLE_ROOTFS").ok())
        .ok_or("usage: exec ROOTFS (an absolute path to a root filesystem, e.g. busybox)")?;
    let state_root = std::env::var("HULL_EXAMPLE_STATE_ROOT").unwrap_or("/run/hull".into());
    let id = std::env::var("HULL_EXAMPLE_ID").unwrap_or(format!("exec-{}", std::process::id()));

    let mut spec = Spec::default();
    spec.set_hostname(Some("execbox".into()));
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.into());
    spec.set_root(Some(root));
    let template = spec.process().clone().unwrap_or_default();
    let mut init = template.clone();
    init.set_args(Some(vec!["sleep".into(), "1000".into()]));
    spec.set_process(Some(init));
    let mut container = Container::builder(&id)
        .spec(spec)
        .root(state_root)
        .stdio(Stdio::Null)
        .create()?;
    container.start()?;

    let with_args = |args: &[&str]| -> Process {
        let mut p = template.clone();
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        p
    };

    // Output captured.
    let mut p = container
        .exec_builder(with_args(&["sh", "-c", "echo \"$(hostname): pid $$\""]))
        .stdout(Stdio::Piped)
        .spawn()?;
    let mut out = String::new();
    if let Some(fd) = p.take_io().stdout {
        std::fs::File::from(fd).read_to_string(&mut out)?;
    }
    println!("exec 1 ({}): {}", p.wait()?, out.trim());

    // Fed on stdin.
    let mut p = container
        .exec_builder(with_args(&["tr", "a-z", "A-Z"]))
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()?;
    let io = p.take_io();
    if let Some(fd) = io.stdin {
        std::fs::File::from(fd).write_all(b"shout this\n")?;
    }
    let mut out = String::new();
    if let Some(fd) = io.stdout {
        std::fs::File::from(fd).read_to_string(&mut out)?;
    }
    println!("exec 2 ({}): {}", p.wait()?, out.trim());

    // On a pty made in the container.
    let mut p = container
        .exec_builder(with_args(&[
            "sh",
            "-c",
            "tty; test -t 1 && echo a terminal",
        ]))
        .stdio(Stdio::Pty)
        .spawn()?;
    let master = p.take_io().pty_master.ok_or("no pty master")?;
    let code = p.wait()?;
    // The process is gone, its output waits in the pty: read until the pty reports its end.
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut master = std::fs::File::from(master);
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: no slave side open any more, everything has been read.
            Err(e) if e.raw_os_error() == Some(5) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let text = String::from_utf8_lossy(&out).replace("\r\n", " | ");
    println!("exec 3 ({code}): {}", text.trim_end_matches(" | "));

    container.kill(hull::container::parse_signal("KILL")?, false)?;
    container.wait()?;
    container.delete(false)?;
    Ok(())
}
