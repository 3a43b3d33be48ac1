use std::path::PathBuf;

use clap::Args;
use hull::{Container, CreateOptions};

use super::{absolute, Ctx, Outcome};
use crate::log::Failure;

/// Create a container
#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub opts: CreateArgs,
    #[arg(value_name = "container-id")]
    pub id: String,
}

/// The flags `create` and `run` share.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end
    /// of the console's pseudoterminal
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the init process
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    /// Do not use pivot root to jail process inside rootfs (for a rootfs on a ramdisk)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + N in total)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
}

impl CreateArgs {
    /// The library's options, after the checks runc makes on the global flags.
    pub fn options(&self, ctx: &Ctx) -> Result<CreateOptions, Failure> {
        let rootless = match &ctx.rootless {
            Some(v) => check_rootless(v)?,
            None => hull::rootless::Rootless::Auto,
        };
        let mut opts = CreateOptions::new(&ctx.root, absolute(&self.bundle)?);
        opts.rootless = rootless.resolve();
        opts.pid_file = self.pid_file.as_deref().map(absolute).transpose()?;
        opts.console_socket = self.console_socket.as_deref().map(absolute).transpose()?;
        opts.no_pivot = self.no_pivot;
        opts.no_new_keyring = self.no_new_keyring;
        opts.systemd_cgroup = ctx.systemd_cgroup;
        opts.preserve_fds = self.preserve_fds;
        opts.notify_socket = std::env::var_os("NOTIFY_SOCKET").is_some();
        opts.pidfd_socket = self.pidfd_socket.as_deref().map(absolute).transpose()?;
        opts.listen_fds = listen_fds(
            std::env::var("LISTEN_PID").ok().as_deref(),
            std::env::var("LISTEN_FDS").ok().as_deref(),
        );
        Ok(opts)
    }
}

/// Socket activation as runc (go-systemd's activation.Files) reads it: the fds are ours only when
/// LISTEN_PID names this very process; anything malformed means none.
fn listen_fds(listen_pid: Option<&str>, listen_fds: Option<&str>) -> u32 {
    let ours = listen_pid
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    match listen_fds.and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if ours => n,
        _ => 0,
    }
}

/// runc reads `--rootless` only when it creates a container: "auto" or a Go boolean.
fn check_rootless(value: &str) -> Result<hull::rootless::Rootless, Failure> {
    hull::rootless::Rootless::parse(value).ok_or_else(|| {
        Failure::msg(format!(
            "invalid --rootless value {value:?}: want true, false or auto"
        ))
    })
}

pub fn run(ctx: &Ctx, args: Create) -> Outcome {
    let created = args
        .opts
        .options(ctx)
        .and_then(|opts| Ok(Container::create(&args.id, &opts)?));
    let c = created.map_err(|f| f.during("create"))?;
    ctx.log.debug(&format!(
        "created container {} with init pid {}",
        args.id,
        c.pid()
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_are_taken_only_for_this_process() {
        let me = std::process::id().to_string();
        assert_eq!(listen_fds(Some(&me), Some("2")), 2);
        assert_eq!(listen_fds(Some("1"), Some("2")), 0);
        assert_eq!(listen_fds(None, Some("2")), 0);
        assert_eq!(listen_fds(Some(&me), Some("x")), 0);
        assert_eq!(listen_fds(Some(&me), None), 0);
    }

    #[test]
    fn rootless_accepts_what_runc_accepts() {
        for v in ["auto", "true", "false", "1", "0", "T", "False"] {
            assert!(check_rootless(v).is_ok(), "{v}");
        }
        for v in ["foo", "yes", "", "AUTO"] {
            assert!(check_rootless(v).is_err(), "{v}");
        }
    }
}
