//! `peak_rss OUT PROGRAM [ARGS...]`: runs PROGRAM, writes its peak RSS in KiB to the file OUT
//! (wait4's ru_maxrss: the program and the descendants it waited for) and exits with its status.
//!
//! Why a program of its own: `execve` folds the replaced address space's high-water mark into
//! the process's ru_maxrss, and a child spawned by posix_spawn or vfork replaces its parent's
//! address space. Spawned straight from the benchmark, every runtime's "peak" was at least the
//! benchmark's own RSS (3.4 MiB, all runtimes alike but runc). Spawned from this small static
//! program, the floor is this program's size.

use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, program, rest @ ..] = &args[..] else {
        eprintln!("usage: peak_rss OUT PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    // Reaped by wait4 below, for its rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(program)
        .args(rest)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only through the two pointers, both to live locals; reaping the child
    // here (not through `child.wait()`) is what gives its rusage.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        pid,
        child.id() as i32,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    std::fs::write(out, usage.ru_maxrss.to_string()).unwrap_or_else(|e| panic!("{out}: {e}"));
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    });
}
