//! Checks of config-linux.md "Devices" and "Default Devices", and runtime-linux.md "Dev symbolic
//! links".

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nix::sys::stat::{major, minor};
use oci_spec::runtime::Spec;

use crate::process::spec_name;
use crate::Report;

fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_char_device() {
        "c"
    } else if t.is_block_device() {
        "b"
    } else if t.is_fifo() {
        "p"
    } else {
        "other"
    }
}

pub fn devices(spec: &Spec, r: &mut Report) {
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for dev in devices {
        let path = dev.path().display().to_string();
        let want_kind = match spec_name(&dev.typ()).as_str() {
            "u" => "c".to_owned(),
            other => other.to_owned(),
        };
        let mut bad = Vec::new();
        // Symlinks are one of the ways the spec allows devices to be supplied.
        match std::fs::metadata(&path) {
            Err(e) => bad.push(format!("stat: {e}")),
            Ok(meta) => {
                if kind(&meta) != want_kind {
                    bad.push(format!("type {}, config {want_kind}", kind(&meta)));
                }
                let rdev = meta.rdev();
                if want_kind != "p"
                    && (major(rdev) as i64, minor(rdev) as i64) != (dev.major(), dev.minor())
                {
                    bad.push(format!(
                        "{}:{}, config {}:{}",
                        major(rdev),
                        minor(rdev),
                        dev.major(),
                        dev.minor()
                    ));
                }
                if let Some(mode) = dev.file_mode() {
                    if meta.mode() & 0o7777 != mode & 0o7777 {
                        bad.push(format!(
                            "mode {:o}, config {:o}",
                            meta.mode() & 0o7777,
                            mode & 0o7777
                        ));
                    }
                }
                if dev.uid().is_some_and(|uid| uid != meta.uid()) {
                    bad.push(format!("uid {}, config {:?}", meta.uid(), dev.uid()));
                }
                if dev.gid().is_some_and(|gid| gid != meta.gid()) {
                    bad.push(format!("gid {}, config {:?}", meta.gid(), dev.gid()));
                }
            }
        }
        let clause = "devices lists devices that MUST be available in the container (type, major/minor, fileMode, uid, gid)";
        r.check(
            "config-linux.md",
            clause,
            bad.is_empty(),
            format!("{path}: {}", bad.join(", ")),
        );
    }
}

/// Exercises a default device the way programs use it.
fn behaves(path: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open: {e}"))?;
    match path {
        "/dev/null" => {
            f.write_all(b"x").map_err(|e| format!("write: {e}"))?;
            let n = f.read(&mut [0u8; 4]).map_err(|e| format!("read: {e}"))?;
            (n == 0).then_some(()).ok_or(format!("read {n} bytes"))
        }
        "/dev/zero" => {
            let mut buf = [1u8; 16];
            f.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
            buf.iter()
                .all(|b| *b == 0)
                .then_some(())
                .ok_or("non-zero bytes".to_owned())
        }
        "/dev/full" => match f.write(b"x") {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Ok(()),
            other => Err(format!("write gave {other:?}, want ENOSPC")),
        },
        "/dev/random" | "/dev/urandom" => f
            .read_exact(&mut [0u8; 16])
            .map_err(|e| format!("read: {e}")),
        _ => Ok(()),
    }
}

pub fn default_devices(r: &mut Report) {
    let defaults = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    for (path, want_major, want_minor) in defaults {
        let meta = std::fs::metadata(path);
        let mut bad = Vec::new();
        match &meta {
            Ok(m) if m.file_type().is_char_device() => {
                let rdev = m.rdev();
                if (major(rdev), minor(rdev)) != (want_major, want_minor) {
                    bad.push(format!(
                        "{}:{}, want {want_major}:{want_minor}",
                        major(rdev),
                        minor(rdev)
                    ));
                }
                // /dev/tty has no controlling terminal to open in a detached container.
                if path != "/dev/tty" {
                    if let Err(e) = behaves(path) {
                        bad.push(e);
                    }
                }
            }
            other => bad.push(format!(
                "not a char device: {:?}",
                other.as_ref().map(|m| m.file_type())
            )),
        }
        let clause = "In addition to any devices configured, the runtime MUST also supply the default devices";
        r.check(
            "config-linux.md",
            clause,
            bad.is_empty(),
            format!("{path}: {}", bad.join(", ")),
        );
    }
    // /dev/ptmx: a bind-mount or symlink of the container's /dev/pts/ptmx.
    let link = std::fs::read_link("/dev/ptmx").ok();
    let ptmx = std::fs::metadata("/dev/ptmx").map(|m| m.rdev());
    let pts_ptmx = std::fs::metadata("/dev/pts/ptmx").map(|m| (m.rdev(), m.dev()));
    let is_link = link
        .as_ref()
        .is_some_and(|l| l.as_os_str() == "pts/ptmx" || l.as_os_str() == "/dev/pts/ptmx");
    let bound = match (std::fs::symlink_metadata("/dev/ptmx"), &pts_ptmx) {
        (Ok(m), Ok((_, pts_dev))) => m.file_type().is_char_device() && m.dev() == *pts_dev,
        _ => false,
    };
    let clause = "the runtime MUST also supply /dev/ptmx, a bind-mount or symlink of the container's /dev/pts/ptmx";
    let detail = format!("/dev/ptmx link {link:?} rdev {ptmx:?}; /dev/pts/ptmx {pts_ptmx:?}");
    r.check("config-linux.md", clause, is_link || bound, detail);
}

pub fn dev_symlinks(r: &mut Report) {
    for (source, dest) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        let got = std::fs::read_link(dest);
        let ok = got.as_ref().is_ok_and(|l| l.as_os_str() == source);
        let clause = "runtimes MUST create the /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr symlinks if the source file exists after processing mounts";
        r.check(
            "runtime-linux.md",
            clause,
            ok,
            format!("{dest} -> {got:?}, want {source}"),
        );
    }
}
