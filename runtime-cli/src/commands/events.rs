use std::time::Duration;

use clap::Args;
use hull::events::{Event, OomEvent};
use hull::Container;

use super::{print, Ctx, Outcome};
use crate::log::Failure;

/// Display container events such as OOM notifications and cpu, memory, and IO usage statistics
#[derive(Debug, Args)]
pub struct Events {
    /// Set the stats collection interval
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Events) -> Outcome {
    let c = Container::load(&ctx.root, &args.id)?;
    let line = |e: &Event| {
        serde_json::to_string(e)
            .map(|s| s + "\n")
            .map_err(|e| Failure::msg(e.to_string()))
    };
    if args.stats {
        print(&line(&c.stats()?)?)?;
        return Ok(0);
    }
    let mut watcher = c.oom_watcher()?;
    loop {
        match watcher.wait(args.interval)? {
            OomEvent::Oom => print(&line(&Event::oom(&args.id))?)?,
            OomEvent::Timeout => match c.stats() {
                Ok(stats) => print(&line(&stats)?)?,
                // The container stopped between two ticks: the stream ends, as runc's does.
                Err(_) => return Ok(0),
            },
            OomEvent::Gone => return Ok(0),
        }
    }
}
