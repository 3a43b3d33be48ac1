//! Hull's test bed: everything the tests in `tests/` need to run real containers through a
//! runc-compatible binary and check that nothing is left behind.
//!
//! - [`Bundle`]: a busybox root filesystem plus the `runc spec` default config (`terminal: false`),
//!   changed per test through JSON pointers or a closure;
//! - [`Runtime`]: drives the runtime under test with a private `--root`, unique container ids and
//!   captured output; deletes what it created on drop;
//! - [`leaks`]: asserts that no mount, process, state directory or cgroup of a container is left;
//! - [`console`]: the receiving end of `--console-socket`.
//!
//! The runtime under test is `$HULL_TEST_RUNTIME` when set (e.g. `/usr/sbin/runc`, to check the
//! tests themselves), else the `hull` binary of this workspace, built on first use.

pub mod bundle;
pub mod cgroupfs;
pub mod clients;
pub mod console;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod guest;
pub mod image;
pub mod leaks;
pub mod plain_main;
pub mod podman;
pub mod procfs;
pub mod profiles;
pub mod rootfs;
pub mod rootless;
pub mod runtime;
pub mod tmp;

pub use bundle::Bundle;
pub use console::ConsoleSocket;
pub use runtime::{only_hull, Output, Runtime};
pub use tmp::TempDir;
