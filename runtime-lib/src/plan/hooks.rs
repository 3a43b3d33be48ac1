//! `hooks`: what config.md asks of each hook, checked before anything is made.

use oci_spec::runtime::Hooks;

use crate::hooks::{of_kind, HookKind};

/// config.md: `path` MUST be absolute, and a `timeout`, if set, greater than zero. Checked before
/// anything is made, rather than found out (or, for a timeout, quietly rounded) halfway through.
pub(crate) fn validate(hooks: &Hooks) -> crate::Result<()> {
    for kind in HookKind::ALL {
        for (i, hook) in of_kind(hooks, kind).iter().enumerate() {
            let invalid = |field: &str, problem: String| crate::Error::InvalidConfig {
                field: format!("hooks.{kind}[{i}].{field}"),
                problem,
            };
            if !hook.path().is_absolute() {
                return Err(invalid(
                    "path",
                    format!("{:?} is not an absolute path", hook.path()),
                ));
            }
            if let Some(secs) = hook.timeout().filter(|&s| s <= 0) {
                return Err(invalid(
                    "timeout",
                    format!("{secs} is not greater than zero"),
                ));
            }
        }
    }
    Ok(())
}
