//! `process.apparmorProfile` and `process.selinuxLabel` in the init (or an exec'd process): asks
//! the kernel to switch at the next execve, so the user's program, and none of hull's own code,
//! runs under the profile or label. Whether the host can apply them at all is checked before
//! anything is made (`crate::plan::lsm`).

use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::Process;

use crate::error::{InitResult, InitStep};
use crate::plan::lsm::non_empty;
use crate::proc_handle::ProcFs;
use crate::syscall::Syscall;

/// The module's own attribute (kernel 5.1+); older kernels only have the shared one below, which
/// belongs to whichever major LSM is active.
const APPARMOR_EXEC: &str = "/proc/self/attr/apparmor/exec";

const SHARED_EXEC: &str = "/proc/self/attr/exec";

const SELINUX_KEYCREATE: &str = "/proc/self/attr/keycreate";

/// Labels the keys the init creates (its session keyring) with the process' SELinux label, as
/// runc does, so the container can use its own keyring under that label.
pub fn set_key_label(process: &Process, sys: &dyn Syscall) -> InitResult<()> {
    match non_empty(process.selinux_label()) {
        Some(label) => write_attr(SELINUX_KEYCREATE, label, sys),
        None => Ok(()),
    }
}

/// Asks the kernel to confine this process from its next execve on. Called while hull still has
/// every privilege and before seccomp, so neither can stop the writes.
pub fn apply(process: &Process, sys: &dyn Syscall) -> InitResult<()> {
    if let Some(profile) = non_empty(process.apparmor_profile()) {
        let proc = ProcFs::open().map_err(|e| e.init(InitStep::SecurityLabels, "/proc"))?;
        let own = proc.open_file(Path::new(&APPARMOR_EXEC[6..]), OFlag::O_PATH, true);
        let attr = if own.is_ok() {
            APPARMOR_EXEC
        } else {
            SHARED_EXEC
        };
        write_attr(attr, &format!("exec {profile}"), sys)?;
    }
    if let Some(label) = non_empty(process.selinux_label()) {
        write_attr(SHARED_EXEC, label, sys)?;
    }
    Ok(())
}

/// One write(2) of the whole value: the kernel takes an attribute only as a single write.
/// Through a verified procfs: a label written anywhere else (a tmpfs over /proc/self, a symlink)
/// would be lost without a word and the process would run unconfined.
fn write_attr(path: &str, value: &str, sys: &dyn Syscall) -> InitResult<()> {
    sys.write_file(Path::new(path), value.as_bytes())
        .map_err(|e| e.init(InitStep::SecurityLabels, format!("{path} ({value})")))
}
