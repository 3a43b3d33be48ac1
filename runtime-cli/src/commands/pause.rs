use clap::Args;
use hull::Container;

use super::{Ctx, Outcome};

/// Suspend all processes inside the container
#[derive(Debug, Args)]
pub struct Pause {
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Pause) -> Outcome {
    Container::load(&ctx.root, &args.id)?.pause()?;
    ctx.log.debug(&format!("paused container {}", args.id));
    Ok(0)
}
