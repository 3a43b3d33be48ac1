//! `pause`: the pod sandbox's process for the CRI test bed (`src/cri.rs`), what Kubernetes' pause
//! image runs. It holds the pod's namespaces open, reaps any orphan re-parented to it (it is the
//! pod's PID 1 when the pod shares one PID namespace), and exits 0 on SIGINT or SIGTERM. Built
//! static and packed into the bed's sandbox image.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

fn main() {
    if std::process::id() != 1 {
        eprintln!("pause: warning: not PID 1");
    }
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        set.add(s);
    }
    // Blocked and taken with sigwait: no handler runs asynchronously, so no unsafe is needed.
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("pause: sigprocmask: {e}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => std::process::exit(0),
            Err(e) => {
                eprintln!("pause: sigwait: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Waits for every child that has exited, without blocking.
fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
