use clap::Args;

use super::{print, Outcome};
use crate::log::Failure;

/// Show the enabled features (runtime-spec features.md)
#[derive(Debug, Args)]
pub struct Features {}

pub fn run(_: Features) -> Outcome {
    let json = serde_json::to_string_pretty(&hull::features::features())
        .map_err(|e| Failure::msg(format!("encode features: {e}")))?;
    print(&(json + "\n"))?;
    Ok(0)
}
