//! runtime-linux.md: file descriptors and /dev symbolic links.

use crate::harness::Ctx;

const F: &str = "runtime-linux.md";

pub fn cases(ctx: &mut Ctx) {
    if ctx.wants("file-descriptors") {
        file_descriptors(ctx);
    }
    if ctx.wants("dev-symlinks") {
        let mut b = ctx.bundle("dev-symlinks");
        b.checks(&["dev-symlinks"]);
        ctx.run_checker(
            &b,
            F,
            "runtimes MUST create the /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr symlinks",
        );
    }
}

/// The caller leaks descriptor 5 into the runtime; the container must still see only 0, 1, 2.
fn file_descriptors(ctx: &mut Ctx) {
    let mut b = ctx.bundle("file-descriptors");
    b.checks(&["fds"]);
    b.write();
    let leak = std::fs::File::open("/proc/self/status").map(std::os::fd::OwnedFd::from);
    let clause = "By default, only the stdin, stdout and stderr file descriptors are kept open for the application by the runtime";
    let out = ctx.create_with(&b, leak.ok());
    if !out.success() {
        ctx.check(
            F,
            clause,
            &b.case,
            false,
            format!("create failed: {}", out.describe()),
        );
        return ctx.discard(&b.id);
    }
    let pid = ctx
        .rt
        .state(&b.id)
        .ok()
        .and_then(|s| s["pid"].as_i64())
        .unwrap_or(0) as i32;
    let started = ctx.rt.start(&b.id);
    let status = ctx.wait_stopped(&b.id, pid);
    let text = b.output();
    let line = text
        .lines()
        .find(|l| l.contains("file descriptors are kept open"));
    match line.map(|l| l.splitn(4, '\t').collect::<Vec<_>>()) {
        Some(f) if f.len() == 4 => ctx.check(F, clause, &b.case, f[0] == "ok", f[3]),
        _ => ctx.check(
            F,
            clause,
            &b.case,
            false,
            format!(
                "no checker verdict: start {}, status {status:?}, output {text:?}",
                started.describe()
            ),
        ),
    }
    ctx.rt.delete(&b.id);
    ctx.discard(&b.id);
}
