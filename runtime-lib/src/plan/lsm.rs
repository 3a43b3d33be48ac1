//! Linux security modules on the host: `process.apparmorProfile` and `process.selinuxLabel`
//! (config.md "Process"), and `linux.mountLabel` (config-linux.md).
//!
//! A profile or label the host cannot apply is refused before anything is made, as runc and crun
//! refuse it (they only find out in the init): a container that asked to be confined must never
//! run unconfined because the host lacks the module. The init applies them:
//! `crate::process::steps::lsm`.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};

/// Where the AppArmor module says whether it is on, and its securityfs directory (runc needs both).
const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
const APPARMOR_FS: &str = "/sys/kernel/security/apparmor";
/// selinuxfs is mounted wherever SELinux is enabled.
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

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

pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
