use clap::Args;
use hull::container::parse_signal;
use hull::Container;

use super::{Ctx, Outcome};

/// Send the specified signal (default: SIGTERM) to the container's init process
#[derive(Debug, Args)]
pub struct Kill {
    #[arg(value_name = "container-id")]
    pub id: String,
    /// A name (KILL, SIGKILL) or number (9)
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Send the specified signal to all processes inside the container
    #[arg(short, long)]
    pub all: bool,
}

pub fn run(ctx: &Ctx, args: Kill) -> Outcome {
    // runc reports an unknown container before a bad signal.
    let c = Container::load(&ctx.root, &args.id)?;
    let signal = parse_signal(&args.signal)?;
    c.kill(signal, args.all)?;
    ctx.log
        .debug(&format!("sent {signal} to container {}", args.id));
    Ok(0)
}
