use clap::Args;
use hull::Container;

use super::{Ctx, Outcome};

/// Delete any resources held by the container
#[derive(Debug, Args)]
pub struct Delete {
    #[arg(value_name = "container-id")]
    pub id: String,
    /// Forcibly delete the container if it is still running (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, args: Delete) -> Outcome {
    match Container::delete_id(&ctx.root, &args.id, args.force) {
        Ok(()) => {}
        // Engines force-delete whatever they may have half-created; runc calls that success.
        Err(hull::Error::ContainerNotFound { .. }) if args.force => return Ok(0),
        Err(e) => return Err(e.into()),
    }
    ctx.log.debug(&format!("deleted container {}", args.id));
    Ok(0)
}
