//! Sets resource limits on a container and reads them back from its cgroup, then changes one
//! while it runs (`update`) and reads it again.
//!
//! ```sh
//! cargo run -p hull --example limits -- /path/to/rootfs   # as root; e.g. a busybox rootfs
//! ```
//!
//! The state root is `/run/hull` unless `HULL_EXAMPLE_STATE_ROOT` names another, the container's
//! id `limits-<pid>` unless `HULL_EXAMPLE_ID` names it.

use hull::oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, Spec};
use hull::{Container, Stdio};

const MIB: i64 = 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    hull::exe::ensure_sealed()?;
    let rootfs = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HULL_EXAMPLE_ROOTFS").ok())
        .ok_or("usage: limits ROOTFS (an absolute path to a root filesystem, e.g. busybox)")?;
    let state_root = std::env::var("HULL_EXAMPLE_STATE_ROOT").unwrap_or("/run/hull".into());
    let id = std::env::var("HULL_EXAMPLE_ID").unwrap_or(format!("limits-{}", std::process::id()));

    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.into());
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(vec!["sleep".into(), "1000".into()]));
    spec.set_process(Some(process));
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(64 * MIB).build()?)
        .pids(LinuxPidsBuilder::default().limit(32).build()?)
        .build()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));

    let mut container = Container::builder(&id)
        .spec(spec)
        .root(state_root)
        .stdio(Stdio::Null)
        .create()?;
    container.start()?;
    let stats = container.stats()?.data.unwrap_or_default();
    println!("memory limit: {}", stats.memory.usage.limit);
    println!("pids limit: {}", stats.pids.limit);

    let more = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(128 * MIB).build()?)
        .build()?;
    container.update(&more)?;
    let stats = container.stats()?.data.unwrap_or_default();
    println!("memory limit after update: {}", stats.memory.usage.limit);
    println!("pids limit after update: {}", stats.pids.limit);

    container.kill(hull::container::parse_signal("KILL")?, false)?;
    let code = container.wait()?;
    container.delete(false)?;
    println!("exit code: {code}");
    Ok(())
}
