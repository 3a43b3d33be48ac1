//! `hull`: runc's command line over the hull library. Global flags come before the verb, as with
//! runc; each verb lives in `commands/`.

// Every unsafe block says why it is sound (house rule); .ci/run's clippy enforces it.
#![deny(clippy::undocumented_unsafe_blocks)]

mod commands;
mod log;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use commands::{Ctx, Outcome};
use log::{Format, Logger};

/// Open Container Initiative runtime
#[derive(Debug, Parser)]
#[command(
    name = "hull",
    disable_version_flag = true,
    after_help = "Single-dash long flags (-root, -bundle) are accepted as runc accepts them."
)]
struct Cli {
    /// Enable debug logging
    #[arg(long)]
    debug: bool,
    /// Set the log file to write hull logs to (default is stderr)
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Set the log format
    #[arg(long, value_enum, default_value = "text")]
    log_format: Format,
    /// Root directory for storage of container state (this should be located in tmpfs)
    /// [default: /run/hull, or $XDG_RUNTIME_DIR/hull for a user that is not root]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Path to the criu binary (accepted for runc compatibility; hull has no checkpoint/restore)
    #[arg(long, value_name = "PATH")]
    criu: Option<String>,
    /// Enable systemd cgroup support: the container's cgroup is a systemd scope
    #[arg(long)]
    systemd_cgroup: bool,
    /// Ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(long, value_name = "VALUE")]
    rootless: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Create(commands::create::Create),
    Start(commands::start::Start),
    State(commands::state::State),
    Kill(commands::kill::Kill),
    Delete(commands::delete::Delete),
    Run(commands::run::Run),
    #[command(visible_alias = "ls")]
    List(commands::list::List),
    Spec(commands::spec::Spec),
    Pause(commands::pause::Pause),
    Resume(commands::resume::Resume),
    Ps(commands::ps::Ps),
    Exec(commands::exec::Exec),
    Events(commands::events::Events),
    Update(commands::update::Update),
    #[command(hide = true)]
    Checkpoint(commands::unsupported::Unsupported),
    #[command(hide = true)]
    Restore(commands::unsupported::Unsupported),
    Features(commands::features::Features),
}

fn main() {
    // Before anything else: the verbs that fork container-side processes re-execute hull from a
    // sealed copy of itself (see hull::exe), so no container process can reach the host's binary.
    let sealed = forks_container_processes(std::env::args_os()).then(hull::exe::ensure_sealed);
    let args = runc_style_args(std::env::args_os());
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => usage_error(&args, e),
    };
    let logger = Logger {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    };
    log::install(&logger);
    match sealed {
        Some(Err(e)) => {
            logger.error(&e.to_string());
            std::process::exit(1);
        }
        Some(Ok(seal)) => logger.debug(&format!("running from a sealed copy ({seal:?})")),
        None => {}
    }
    match dispatch(cli, logger.clone()) {
        Ok(code) => std::process::exit(code),
        Err(failure) => {
            logger.error(&failure.message());
            std::process::exit(1);
        }
    }
}

/// runc's default root: `$XDG_RUNTIME_DIR/hull` for a user that is not root (see
/// [`hull::rootless::default_root`]), made 0700 with the sticky bit as runc makes its own, so a
/// cleaner of the runtime directory (systemd's tmpfiles age rule) leaves it alone.
fn default_root() -> Result<PathBuf, log::Failure> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let root = hull::rootless::default_root();
    if root == std::path::Path::new(hull::state::DEFAULT_ROOT) {
        return Ok(root);
    }
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .and_then(|()| std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700)));
    made.map_err(|e| {
        log::Failure::msg(format!(
            "create state root {root:?}: {}",
            log::io_message(&e)
        ))
    })?;
    Ok(root)
}

/// The verb is `create`, `run` or `exec`: told from the raw arguments (the first word that is
/// not a global flag or its value), as this runs before the command line is parsed.
fn forks_container_processes(args: impl IntoIterator<Item = OsString>) -> bool {
    const WITH_VALUE: [&str; 5] = ["log", "log-format", "root", "criu", "rootless"];
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(s) = arg.to_str() else {
            return false;
        };
        match s.strip_prefix("--").or_else(|| s.strip_prefix('-')) {
            Some(flag) if WITH_VALUE.contains(&flag) => {
                args.next();
            }
            Some(_) => {}
            None => return matches!(s, "create" | "run" | "exec"),
        }
    }
    false
}

fn parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(args)
}

fn dispatch(cli: Cli, log: Logger) -> Outcome {
    if cli.version {
        print!("{}", version());
        return Ok(0);
    }
    let Some(command) = cli.command else {
        // runc with no verb prints its help and succeeds.
        let _ = Cli::command().print_help();
        return Ok(0);
    };
    let root = match &cli.root {
        Some(root) => root.clone(),
        None => default_root()?,
    };
    let ctx = Ctx {
        root: commands::absolute(&root)?,
        log,
        systemd_cgroup: cli.systemd_cgroup,
        rootless: cli.rootless,
    };
    match command {
        Command::Create(a) => commands::create::run(&ctx, a),
        Command::Start(a) => commands::start::run(&ctx, a),
        Command::State(a) => commands::state::run(&ctx, a),
        Command::Kill(a) => commands::kill::run(&ctx, a),
        Command::Delete(a) => commands::delete::run(&ctx, a),
        Command::Run(a) => commands::run::run(&ctx, a),
        Command::List(a) => commands::list::run(&ctx, a),
        Command::Spec(a) => commands::spec::run(a),
        Command::Exec(args) => commands::exec::run(&ctx, args),
        Command::Pause(a) => commands::pause::run(&ctx, a),
        Command::Resume(a) => commands::resume::run(&ctx, a),
        Command::Ps(a) => commands::ps::run(&ctx, a),
        Command::Events(a) => commands::events::run(&ctx, a),
        Command::Update(a) => commands::update::run(&ctx, a),
        Command::Checkpoint(_) => commands::unsupported::run("checkpoint"),
        Command::Restore(_) => commands::unsupported::run("restore"),
        Command::Features(a) => commands::features::run(a),
    }
}

/// `--version`, in runc's layout.
fn version() -> String {
    format!(
        "hull version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        hull::spec::SUPPORTED_VERSION
    )
}

/// A command line clap refused: help and version are printed as asked; anything else is shown
/// by clap on stderr and, as runc does, also written to `--log` so an engine reading that file
/// sees why. Exit status 1, or 3 for an unknown verb (urfave/cli's code).
fn usage_error(args: &[OsString], e: clap::Error) -> ! {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let _ = e.print();
    // Best effort: the flags before the error may still name a log file.
    let partial = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok();
    let log_path = partial
        .as_ref()
        .and_then(|m| m.get_one::<PathBuf>("log").cloned());
    if let Some(file) = log_path {
        let format = partial
            .as_ref()
            .and_then(|m| m.get_one::<Format>("log_format").copied())
            .unwrap_or(Format::Text);
        let logger = Logger {
            file: Some(file),
            format,
            debug: false,
        };
        // Only the file (clap has already told the terminal), on one line.
        logger.log_only(&one_line(&e.render().to_string()));
    }
    let code = if e.kind() == ErrorKind::InvalidSubcommand {
        3
    } else {
        1
    };
    std::process::exit(code)
}

/// clap's message up to its usage section, as one line without the "error: " tag.
fn one_line(rendered: &str) -> String {
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let words: Vec<&str> = first_paragraph.split_whitespace().collect();
    let text = words.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_string()
}

/// Rewrites runc's single-dash long flags (`-root x`, `-bundle=x`: Go's flag syntax, which
/// urfave/cli accepts) to clap's `--root`. Only exact long names of hull's flags are rewritten,
/// and nothing after `--`.
fn runc_style_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let longs = long_flag_names();
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        let rewritten = match arg.to_str() {
            Some("--") => {
                rest = true;
                None
            }
            Some(s) if !rest && s.starts_with('-') && !s.starts_with("--") => {
                let name = s[1..].split('=').next().unwrap_or_default();
                (name.len() > 1 && longs.iter().any(|l| l == name)).then(|| format!("-{s}"))
            }
            _ => None,
        };
        out.push(rewritten.map_or(arg, OsString::from));
    }
    out
}

/// Every long flag name (and alias) of every verb and of the global flags.
fn long_flag_names() -> Vec<String> {
    fn collect(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            out.extend(
                arg.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(String::from),
            );
        }
        for sub in cmd.get_subcommands() {
            collect(sub, out);
        }
    }
    let mut out = vec!["help".to_string(), "version".to_string()];
    collect(&Cli::command(), &mut out);
    out
}

#[cfg(test)]
mod tests;
