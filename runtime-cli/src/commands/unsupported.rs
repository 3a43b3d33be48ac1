use clap::Args;

use super::Outcome;
use crate::log::Failure;

/// A runc verb hull does not have yet: every argument is accepted so the message is always this
/// one, whatever flags an engine passes.
#[derive(Debug, Args)]
pub struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

pub fn run(verb: &str) -> Outcome {
    Err(Failure::msg(format!(
        "{verb:?} is not supported by hull yet"
    )))
}
