//! The qemu guest lanes: a pure cgroup-v2 host ([`cgroup_v2`]) and systemd as PID 1 on its
//! unified and legacy hierarchies ([`systemd`]). One test binary, so that libtest runs the two
//! lanes side by side: each guest keeps about 1.2 of this machine's two cores busy under TCG, so
//! together they take little more than the longer one alone instead of the sum of both.

mod cgroup_v2;
mod systemd;

use std::path::Path;

/// True in the guest of a lane (its `guest_env` is set there); elsewhere says why the test does
/// nothing (`cargo test -- --ignored` on the host must not fail for want of that guest).
fn in_guest(guest_env: &str, lane: &str, test: &str) -> bool {
    let yes = std::env::var_os(guest_env).is_some();
    if !yes {
        eprintln!("skipped {test}: runs inside the {lane} guest only (see {lane}_guest)");
    }
    yes
}

/// The file at `path`, trailing whitespace removed; panics naming it when it cannot be read.
fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim_end()
        .to_string()
}
