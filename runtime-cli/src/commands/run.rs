use clap::Args;
use hull::Container;
use nix::unistd::Pid;

use std::os::fd::AsFd;

use super::console::{copy_window_size, prepare_foreground, ConsoleSocket, Relay};
use super::create::CreateArgs;
use super::{Ctx, Outcome};
use crate::log::Failure;

/// Create and run a container
#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub opts: CreateArgs,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility: hull never becomes a subreaper
    #[arg(long)]
    pub no_subreaper: bool,
    #[arg(value_name = "container-id")]
    pub id: String,
}

pub fn run(ctx: &Ctx, args: Run) -> Outcome {
    let in_run = |f: Failure| f.during("run");
    let mut opts = args.opts.options(ctx).map_err(in_run)?;
    // Held from before the init exists, as runc's signal handler: one that comes during create
    // waits for the forwarder instead of ending hull and orphaning a half-made container.
    let terminal = wants_terminal(&opts.bundle);
    let (console, held) =
        prepare_foreground(args.detach, terminal, &mut opts.console_socket).map_err(in_run)?;
    let mut c = Container::create(&args.id, &opts).map_err(|e| in_run(e.into()))?;
    let master = match console.as_ref().map(ConsoleSocket::receive).transpose() {
        Ok(master) => master,
        Err(e) => {
            let _ = c.delete(true);
            return Err(in_run(e));
        }
    };
    drop(console);
    // Before start: the container's first `stty size` must already see the caller's size.
    if let Some(master) = &master {
        copy_window_size(std::io::stdin().as_fd(), master.as_fd());
    }
    ctx.log.debug(&format!(
        "created container {} with init pid {}",
        args.id,
        c.pid()
    ));
    if let Some(held) = held {
        let resize = master.as_ref().and_then(|m| m.try_clone().ok());
        held.forward_to(Pid::from_raw(c.pid()), resize)
            .map_err(in_run)?;
    }
    let notify = match std::env::var_os("NOTIFY_SOCKET") {
        Some(host) => match c.notify_proxy(host.as_ref()) {
            Ok(proxy) => proxy,
            Err(e) => {
                let _ = c.delete(true);
                return Err(in_run(e.into()));
            }
        },
        None => None,
    };
    if let Err(e) = c.start() {
        // Nothing of a container that never ran is kept, as runc destroys it.
        let _ = c.delete(true);
        return Err(in_run(e.into()));
    }
    if args.detach {
        if let Some(proxy) = notify {
            proxy
                .forward_ready(c.pid(), c.pid())
                .map_err(|e| in_run(e.into()))?;
        }
        return Ok(0);
    }
    if let Some(proxy) = notify {
        forward_ready_while_running(ctx, proxy, c.pid());
    }
    let relay = master.map(Relay::start).transpose().map_err(in_run)?;
    let status = c.wait().map_err(|e| in_run(e.into()));
    if let Some(relay) = relay {
        relay.finish();
    }
    let status = status?;
    ctx.log.debug(&format!(
        "container {} exited with status {status}",
        args.id
    ));
    if !args.keep {
        c.delete(true).map_err(|e| in_run(e.into()))?;
    }
    Ok(status)
}

/// In the foreground this process is the service's main process, as with runc; READY is passed
/// on whenever it comes, while the container runs.
fn forward_ready_while_running(ctx: &Ctx, proxy: hull::sd_notify::NotifyProxy, init: i32) {
    let log = ctx.log.clone();
    let _ = std::thread::Builder::new()
        .name("notify-proxy".into())
        .spawn(move || {
            if let Err(e) = proxy.forward_ready(init, std::process::id() as i32) {
                log.error(&format!("NOTIFY_SOCKET: {e}"));
            }
        });
}

/// process.terminal from the bundle's config.json (create validates the rest).
fn wants_terminal(bundle: &std::path::Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|data| serde_json::from_slice::<serde_json::Value>(&data).ok())
        .and_then(|config| config.pointer("/process/terminal")?.as_bool())
        .unwrap_or(false)
}
