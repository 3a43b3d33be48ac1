use std::path::{Path, PathBuf};

use clap::Args;
use hull::container::{wait_pid, ExecOptions};
use hull::oci_spec::runtime::{Capability, Process};
use hull::Container;
use nix::sys::signal::{kill, Signal};

use super::console::{callers_console_size, prepare_foreground, ConsoleSocket, Relay};
use super::{absolute, Ctx, Outcome};
use crate::log::Failure;

/// Execute new process inside the container
#[derive(Debug, Args)]
pub struct Exec {
    /// Path to an AF_UNIX socket which will receive the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the exec'd process
    #[arg(long)]
    pub pidfd_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set environment variables (KEY=value, repeatable)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids (repeatable)
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to the process.json
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Specify the file to write the process id to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Set the asm process label for the process commonly used with selinux
    #[arg(long)]
    pub process_label: Option<String>,
    /// Set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set the no new privileges value for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to the bounding set for the process (repeatable)
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Run the process in a sub-cgroup of the container's (not supported by hull: refused)
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    #[arg(value_name = "container-id")]
    pub id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(ctx: &Ctx, args: Exec) -> Outcome {
    if let Some(sub) = &args.cgroup {
        // Joining the container's own cgroup instead would put the process somewhere else than
        // the caller asked, silently.
        return Err(hull::Error::Unsupported {
            feature: format!("exec --cgroup {sub:?} (a sub-cgroup of the container's)"),
        }
        .into());
    }
    let container = Container::load(&ctx.root, &args.id)?;
    let mut process = process(&container, &args)?;
    let mut opts = ExecOptions {
        pid_file: args.pid_file.as_deref().map(absolute).transpose()?,
        console_socket: args.console_socket.as_deref().map(absolute).transpose()?,
        pidfd_socket: args.pidfd_socket.as_deref().map(absolute).transpose()?,
        preserve_fds: args.preserve_fds,
        ignore_paused: args.ignore_paused,
        // main re-executed hull from a sealed copy (or failed): the library checks it again.
        unsealed_exe: false,
    };
    let (console, held) = prepare_foreground(
        args.detach,
        process.terminal().unwrap_or(false),
        &mut opts.console_socket,
    )
    .map_err(|e| e.during("exec"))?;
    if console.is_some() && process.console_size().is_none() {
        process.set_console_size(callers_console_size());
    }
    let pid = container
        .exec(&process, &opts)
        .map_err(|e| Failure::from(e).during("exec"))?;
    let Some(held) = held else {
        return Ok(0);
    };
    let master = match console.as_ref().map(ConsoleSocket::receive).transpose() {
        Ok(master) => master,
        Err(e) => {
            // Nobody would relay its terminal nor wait for it.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = wait_pid(pid);
            return Err(e.during("exec"));
        }
    };
    drop(console);
    let resize = master.as_ref().and_then(|m| m.try_clone().ok());
    held.forward_to(pid, resize).map_err(|e| e.during("exec"))?;
    let relay = master
        .map(Relay::start)
        .transpose()
        .map_err(|e| e.during("exec"))?;
    let status = wait_pid(pid);
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(status?)
}

/// `--process` as given, or runc's: the container's process template (config.json's process as
/// the container was created with it) with the command line's changes over it.
fn process(container: &Container, args: &Exec) -> Result<Process, Failure> {
    if let Some(path) = &args.process {
        return process_file(path, args);
    }
    if args.command.is_empty() {
        return Err(Failure::msg("exec: missing command (or --process)"));
    }
    let mut p = container.process_template()?;
    p.set_args(Some(args.command.clone()));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    p.set_env(Some(env));
    p.set_terminal(Some(args.tty));
    set_user(&mut p, args)?;
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &args.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !args.cap.is_empty() {
        add_capabilities(&mut p, &args.cap)?;
    }
    Ok(p)
}

/// `--process`: the process file, which nothing on the command line may change.
fn process_file(path: &Path, args: &Exec) -> Result<Process, Failure> {
    // runc drops them without a word there; a profile asked for must never be lost.
    if args.process_label.is_some() || args.apparmor.is_some() {
        return Err(Failure::msg(
            "--apparmor and --process-label do not go with --process: set apparmorProfile \
             or selinuxLabel in the process file",
        ));
    }
    let text = std::fs::read(path)
        .map_err(|e| Failure::msg(format!("read {path:?}: {}", crate::log::io_message(&e))))?;
    Ok(hull::bundle::parse_process(&text, path)?)
}

/// `--user uid[:gid]` and `--additional-gids`.
fn set_user(p: &mut Process, args: &Exec) -> Result<(), Failure> {
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Failure::msg(format!("invalid --user {user:?}: want uid[:gid]")))
        };
        p.user_mut().set_uid(num(uid)?);
        if let Some(g) = gid {
            p.user_mut().set_gid(num(g)?);
        }
    }
    if !args.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    Ok(())
}

/// `--cap`, as runc 1.1 adds them.
fn add_capabilities(p: &mut Process, names: &[String]) -> Result<(), Failure> {
    let mut caps = p.capabilities().clone().unwrap_or_default();
    for name in names {
        let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|_| Failure::msg(format!("unknown capability {name:?}")))?;
        let add = |set: &Option<hull::oci_spec::runtime::Capabilities>| {
            let mut set = set.clone().unwrap_or_default();
            set.insert(cap);
            Some(set)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        // runc 1.1 adds it to ambient too, where the kernel keeps it only if it is also
        // inheritable (which --cap does not add): then a non-root user keeps it across the
        // execve. Left out otherwise, so that hull warns of no ambient capability it drops.
        if caps
            .inheritable()
            .as_ref()
            .is_some_and(|i| i.contains(&cap))
        {
            caps.set_ambient(add(caps.ambient()));
        }
    }
    p.set_capabilities(Some(caps));
    Ok(())
}
