//! Linux security modules: `process.apparmorProfile` and `process.selinuxLabel` (config.md
//! "Process"), and `linux.mountLabel` (config-linux.md).
//!
//! A profile or label the host cannot apply is refused before anything is made, as runc and crun
//! refuse it (they only find out in the init): a container that asked to be confined must never
//! run unconfined because the host lacks the module. Where the module is there, the init (and every
//! exec'd process) asks the kernel to switch at its execve, so the user's program, and none of
//! hull's own code, runs under the profile or label.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use nix::fcntl::OFlag;

use crate::error::{Error, InitResult, InitStep, Result};
use crate::proc_handle::ProcFs;
use crate::syscall::Syscall;

/// Where the AppArmor module says whether it is on, and its securityfs directory (runc needs both).
const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
const APPARMOR_FS: &str = "/sys/kernel/security/apparmor";
/// The module's own attribute (kernel 5.1+); older kernels only have the shared one below, which
/// belongs to whichever major LSM is active.
const APPARMOR_EXEC: &str = "/proc/self/attr/apparmor/exec";
const SHARED_EXEC: &str = "/proc/self/attr/exec";
/// SELinux's labels go through the shared attributes; selinuxfs is mounted wherever it is enabled.
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";
const SELINUX_KEYCREATE: &str = "/proc/self/attr/keycreate";

/// True when the host's kernel runs AppArmor (and so can confine a process to a profile).
pub fn apparmor_enabled() -> bool {
    Path::new(APPARMOR_FS).exists()
        && std::fs::read(APPARMOR_ENABLED).is_ok_and(|v| v.starts_with(b"Y"))
}

/// True when the host's kernel runs SELinux.
pub fn selinux_enabled() -> bool {
    Path::new(SELINUX_ENFORCE).exists()
}

/// Refuses a profile or label this host cannot apply (config.json's process or an exec'd one).
pub fn validate(process: &Process) -> Result<()> {
    let refuse = |field: &str, module: &str, value: &str| Error::InvalidConfig {
        field: format!("process.{field}"),
        problem: format!("{value:?} is set, but {module} is not enabled on this host"),
    };
    if let Some(profile) = non_empty(process.apparmor_profile()) {
        if !apparmor_enabled() {
            return Err(refuse("apparmorProfile", "AppArmor", profile));
        }
    }
    if let Some(label) = non_empty(process.selinux_label()) {
        if !selinux_enabled() {
            return Err(refuse("selinuxLabel", "SELinux", label));
        }
    }
    Ok(())
}

/// `linux.mountLabel` needs SELinux to mean anything: runc ignores it without, and so does hull,
/// but says so. With SELinux, hull cannot yet label the container's mounts: refused, not ignored.
pub fn check_mount_label(spec: &Spec) -> Result<Option<String>> {
    let Some(label) = spec
        .linux()
        .as_ref()
        .and_then(|l| non_empty(l.mount_label()))
    else {
        return Ok(None);
    };
    if selinux_enabled() {
        return Err(Error::Unsupported {
            feature: format!("linux.mountLabel {label:?} (SELinux mount labels)"),
        });
    }
    Ok(Some(format!(
        "linux.mountLabel {label:?} ignored: SELinux is not enabled on this host"
    )))
}

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

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// One write(2) of the whole value: the kernel takes an attribute only as a single write.
/// Through a verified procfs: a label written anywhere else (a tmpfs over /proc/self, a symlink)
/// would be lost without a word and the process would run unconfined.
fn write_attr(path: &str, value: &str, sys: &dyn Syscall) -> InitResult<()> {
    sys.write_file(Path::new(path), value.as_bytes())
        .map_err(|e| e.init(InitStep::SecurityLabels, format!("{path} ({value})")))
}
