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
    let notify = match std::env::var_os("NOTIFY_SOCKET") {
        Some(host) => c.notify_proxy(host.as_ref())?,
        None => None,
    };
    c.start()?;
    if let Some(proxy) = notify {
        proxy.forward_ready(c.pid(), c.pid())?;
    }
    ctx.log.debug(&format!("started container {}", args.id));
    Ok(0)
}
