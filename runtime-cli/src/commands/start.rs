use clap::Args;
use hull::Container;

use super::{Ctx, Outcome};

/// Executes the user defined process in a created container
#[derive(Debug, Args)]
pub struct Start {
    /// The container's id
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Start) -> Outcome {
    let mut c = Container::load(&ctx.root, &args.id)?;
    c.start()?;
    ctx.log.debug(&format!("started container {}", args.id));
    Ok(0)
}
