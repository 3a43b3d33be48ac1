//! Cloning the init: the only place Hull creates a process.
//!
//! The init is a fork of the calling process (no re-exec of any binary, so nothing in the container
//! can ever see the runtime's executable as its own `/proc/self/exe` once it has exec'd), made with
//! the raw `clone` system call so the namespace flags apply to the child from its first instruction.
//!
//! Two namespaces cannot be entered by the child itself, because the kernel only moves *future
//! children* into them: a pid namespace given by path, and a new time namespace. For those the
//! runtime switches its own `pid_for_children` / `time_for_children` just around the clone and
//! switches back at once.

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxTimeOffset;

use crate::error::{Context, SysContext};
use crate::namespaces::NamespacePlan;
use crate::Result;

/// nix names every namespace flag but this one.
const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// Forks the init with `flags` (the plan's, or fewer when the init unshares the rest itself);
/// `child` runs in it and never returns. Returns the init's pid in the runtime.
///
/// The caller must be single-threaded: after a raw clone only the calling thread exists in the
/// child, and a lock held by another thread (the allocator's) would stay held forever.
pub fn spawn(
    plan: &NamespacePlan,
    flags: CloneFlags,
    time_offsets: Option<&HashMap<String, LinuxTimeOffset>>,
    child: impl FnOnce() -> i32,
) -> Result<Pid> {
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

    let pid = clone(flags);
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
    Ok(pid.sys("clone init")?.expect("the child never gets here"))
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
        if let Err(e) = fs::write("/proc/self/timens_offsets", text)
            .io("write linux.timeOffsets to", "/proc/self/timens_offsets")
        {
            restore(Some(own), CLONE_NEWTIME);
            return Err(e);
        }
    }
    Ok(own)
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
