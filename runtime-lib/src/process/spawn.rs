//! Cloning the init: the only place Hull creates a process.
//!
//! The init is a fork of the calling process (no re-exec of any binary), made with the raw `clone`
//! system call so the namespace flags apply to the child from its first instruction. Until it execs
//! the container's program the child's `/proc/self/exe` is the caller's executable, and a process
//! in the container can reach that file (`/proc/<pid>/exe`, or a `#!/proc/self/exe` script the
//! child is made to exec): the caller must run from a sealed copy of itself, which
//! `crate::exe::ensure_sealed` makes and `Container::create`/`exec` check.
//!
//! Two namespaces cannot be entered by the child itself, because the kernel only moves *future
//! children* into them: a pid namespace given by path, and a new time namespace. For those the
//! runtime switches its own `pid_for_children` / `time_for_children` just around the clone and
//! switches back at once.
//!
//! On a cgroup v2 host the init is cloned straight into its cgroup with clone3(CLONE_INTO_CGROUP)
//! (Linux 5.7+), so not even its first page fault is charged elsewhere and no migration (which
//! the kernel may refuse, and which costs a write per hierarchy) is needed; with an older kernel,
//! or a cgroup the kernel will not clone into, the runtime falls back to clone and moves the init
//! before the init runs a step.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxTimeOffset;

use crate::error::{Error, SysContext};
use crate::plan::namespaces::NamespacePlan;
use crate::proc_handle::ProcFs;
use crate::Result;

/// nix names every namespace flag but this one.
const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// The cloned init, as the runtime sees it.
#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    pub pid: Pid,
    /// The init was born in the cgroup given to [`spawn`]: it need not be moved there.
    pub in_cgroup: bool,
}

/// Forks the init with `flags` (the plan's, or fewer when the init unshares the rest itself);
/// `child` runs in it and never returns. `cgroup`, an open cgroup v2 directory, is where the init
/// is born when the kernel allows it (see [`Spawned::in_cgroup`]).
///
/// The caller must be single-threaded: after a raw clone only the calling thread exists in the
/// child, and a lock held by another thread (the allocator's) would stay held forever.
pub fn spawn(
    plan: &NamespacePlan,
    flags: CloneFlags,
    time_offsets: Option<&HashMap<String, LinuxTimeOffset>>,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> i32,
) -> Result<Spawned> {
    // In the helper of a multi-threaded caller, the caller is the child's parent: it waits for it.
    let flags = if clone_parent() {
        flags | CloneFlags::CLONE_PARENT
    } else {
        flags
    };
    let restore_pid = match &plan.pid_path {
        Some(target) => {
            let own = open_ns("pid")?;
            setns(target.as_fd(), CloneFlags::CLONE_NEWPID).sys("join pid namespace")?;
            Some(own)
        }
        None => None,
    };
    let restore_time = if plan.time {
        match enter_new_time_ns(time_offsets) {
            Ok(own) => Some(own),
            Err(e) => {
                restore(restore_pid, CloneFlags::CLONE_NEWPID);
                return Err(e);
            }
        }
    } else {
        None
    };

    let mut in_cgroup = false;
    let mut pid = Err(nix::errno::Errno::ENOSYS);
    if let Some(dir) = cgroup {
        pid = clone3_into_cgroup(flags, dir);
        match pid {
            Ok(_) => in_cgroup = true,
            Err(e) => {
                log::debug!("clone3(CLONE_INTO_CGROUP) failed ({e}); cloning, then moving the init")
            }
        }
    }
    if pid.is_err() {
        pid = clone(flags);
    }
    if let Ok(None) = pid {
        // Drop (close) our copies of the runtime's namespace fds without switching back: the
        // switch back would move this child out of its new time namespace.
        drop((restore_pid, restore_time));
        let code = child();
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers or
        // flushing buffers it shares with the parent.
        unsafe { libc::_exit(code) }
    }
    restore(restore_pid, CloneFlags::CLONE_NEWPID);
    restore(restore_time, CLONE_NEWTIME);
    let pid = pid.sys("clone init")?.expect("the child never gets here");
    note_spawned(pid);
    if in_cgroup {
        log::debug!("init {pid} cloned into its cgroup (clone3 CLONE_INTO_CGROUP)");
    }
    Ok(Spawned { pid, in_cgroup })
}

fn open_ns(kind: &str) -> Result<OwnedFd> {
    let path = format!("/proc/self/ns/{kind}");
    open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys_path("open namespace", path)
}

/// Best effort: failing to switch back leaves only this (short-lived) runtime process elsewhere.
fn restore(own: Option<OwnedFd>, kind: CloneFlags) {
    if let Some(fd) = own {
        let _ = setns(fd.as_fd(), kind);
    }
}

/// Makes a new time namespace for our future children with linux.timeOffsets applied; returns our
/// own time namespace to switch back to.
fn enter_new_time_ns(offsets: Option<&HashMap<String, LinuxTimeOffset>>) -> Result<OwnedFd> {
    let own = open_ns("time")?;
    unshare(CLONE_NEWTIME).sys("create time namespace")?;
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        // The offsets can be written only while no process lives in the new namespace yet.
        let written = ProcFs::open()
            .and_then(|proc| proc.write(Path::new("self/timens_offsets"), text.as_bytes()))
            .map_err(|e| Error::Sys {
                step: "write linux.timeOffsets to",
                path: Some("/proc/self/timens_offsets".into()),
                source: e.errno(),
            });
        if let Err(e) = written {
            restore(Some(own), CLONE_NEWTIME);
            return Err(e);
        }
    }
    Ok(own)
}

/// `struct clone_args` of clone3(2) up to `cgroup` (CLONE_ARGS_SIZE_VER2); libc defines it for
/// few targets.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// libc's constant is an overflowing `c_int` on glibc targets.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone`], born in the cgroup `dir`. Fails with ENOSYS or E2BIG on kernels before 5.7, and
/// with the cgroup's own error (EBUSY, EOPNOTSUPP, ...) when it cannot take the init; no process
/// exists then.
fn clone3_into_cgroup(flags: CloneFlags, dir: BorrowedFd<'_>) -> nix::Result<Option<Pid>> {
    let mut args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        // With CLONE_PARENT the child signals our parent as we do, and clone3 refuses any other.
        exit_signal: if flags.contains(CloneFlags::CLONE_PARENT) {
            0
        } else {
            libc::SIGCHLD as u64
        },
        cgroup: dir.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive for the call; with a zero
    // stack and stack_size the child runs on a copy of the parent's stack, as after fork(2), and
    // no flag makes the kernel write through a pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// fork(2) with namespace flags: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
fn clone(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    // SAFETY: with a NULL stack the child runs on a copy of the parent's stack, as after fork(2);
    // no pointer arguments are passed (parent_tid, child_tid, tls are unused without their flags).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// This process is a helper of a multi-threaded caller (`container::helper`): clones take
/// CLONE_PARENT, and their pids are noted in [`SPAWNED`].
static IN_HELPER: AtomicBool = AtomicBool::new(false);
/// The processes this helper cloned for the caller: on failure the caller reaps them (they are
/// its children, not ours).
static SPAWNED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// From now on this process clones for its parent (the helper's caller).
pub(crate) fn clone_for_parent() {
    IN_HELPER.store(true, Ordering::Relaxed);
}

/// In a helper: the clone flag that makes the caller the child's parent.
pub(crate) fn clone_parent() -> bool {
    IN_HELPER.load(Ordering::Relaxed)
}

/// In a helper: `pid` was cloned for the caller.
fn note_spawned(pid: Pid) {
    if clone_parent() {
        let mut spawned = SPAWNED.lock().unwrap_or_else(|e| e.into_inner());
        spawned.push(pid.as_raw());
    }
}

/// The pids cloned for the caller so far, handed over once.
pub(crate) fn take_spawned() -> Vec<i32> {
    std::mem::take(&mut *SPAWNED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs `spawn` in a short-lived fork that first joins `user_ns` (the owner of a user namespace
/// may always join it), asking for CLONE_PARENT so the process is still this runtime's child, to
/// wait for. The runtime itself stays out: it could never come back to the host's user and pid
/// namespaces, and no thread could be started with another pid_for_children.
pub(crate) fn spawn_from_user_namespace(
    user_ns: OwnedFd,
    spawn: impl FnOnce(CloneFlags) -> Result<Spawned>,
) -> Result<Spawned> {
    use std::io::{Read, Write};
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).sys("create user namespace pipe")?;
    // SAFETY: the library's callers are single-threaded (see `spawn::spawn`), so the child is a
    // whole copy of the process; it leaves through `_exit`.
    match unsafe { nix::unistd::fork() }.sys("fork to join the user namespace")? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let outcome = nix::sched::setns(user_ns.as_fd(), CloneFlags::CLONE_NEWUSER)
                .sys("join the container's user namespace")
                .and_then(|()| spawn(CloneFlags::CLONE_PARENT));
            let report = match outcome {
                Ok(s) => format!("ok {} {}", s.pid, u8::from(s.in_cgroup)),
                Err(e) => format!("err {e}"),
            };
            let mut w = std::fs::File::from(write_end);
            let code = i32::from(w.write_all(report.as_bytes()).is_err());
            // SAFETY: ends the fork without running the runtime's exit handlers or flushing
            // buffers it shares with the runtime.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            // The fork's report is in the pipe once it has exited (one small write); the process
            // it cloned holds the write end too, so reading until end-of-file would wait for it.
            let _ = nix::sys::wait::waitpid(child, None);
            let lost = |detail: String| Error::InitLost {
                step: "spawn from the container's user namespace",
                detail,
            };
            nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .sys("set user namespace pipe non-blocking")?;
            let mut buf = [0u8; 4096];
            let n = std::fs::File::from(read_end)
                .read(&mut buf)
                .map_err(|e| lost(e.to_string()))?;
            let report = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut words = report.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("ok"), Some(pid), Some(in_cgroup)) => Ok(Spawned {
                    pid: Pid::from_raw(pid.parse().map_err(|_| lost(report.clone()))?),
                    in_cgroup: in_cgroup == "1",
                }),
                (Some("err"), ..) => Err(lost(report["err ".len()..].to_string())),
                _ => Err(lost(format!("no word from the fork ({report:?})"))),
            }
        }
    }
}
