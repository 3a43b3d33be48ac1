use clap::Args;
use hull::Container;

use super::{Ctx, Outcome};

/// Resume all processes that have been previously paused
#[derive(Debug, Args)]
pub struct Resume {
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Resume) -> Outcome {
    Container::load(&ctx.root, &args.id)?.resume()?;
    ctx.log.debug(&format!("resumed container {}", args.id));
    Ok(0)
}
