use clap::Args;
use hull::Container;

use super::{Ctx, Outcome};
use crate::log::Failure;

/// Output the state of a container
#[derive(Debug, Args)]
pub struct State {
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: State) -> Outcome {
    let c = Container::load(&ctx.root, &args.id)?;
    // runc prints two-space-indented JSON with no final newline.
    let json = serde_json::to_string_pretty(&c.state())
        .map_err(|e| Failure::msg(format!("encode state: {e}")))?;
    super::print(&json)?;
    Ok(0)
}
