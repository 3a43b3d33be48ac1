//! oci-conformance: holds an OCI runtime to the runtime-spec, clause by clause.
//!
//! `oci-conformance --runtime PATH` generates one bundle per case (busybox rootfs plus the static
//! checker), drives the runtime through create/state/start/kill/delete with a private `--root`,
//! and prints TAP ending in `N passed, N failed, N skipped`. Exit status 0 means no failure.

mod checker_bin;
mod config;
mod config_linux;
mod console;
mod features;
mod harness;
mod hooks;
mod host;
mod mounts;
mod resources;
mod runner;
mod runtime;
mod runtime_linux;
mod tap;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "OCI runtime-spec conformance suite for any runc-compatible runtime")]
struct Args {
    /// The runtime binary under test.
    #[arg(long, env = "OCI_RUNTIME")]
    runtime: PathBuf,
    /// A statically linked oci-checker (default: built with cargo on first use).
    #[arg(long, env = "OCI_CONFORMANCE_CHECKER")]
    checker: Option<PathBuf>,
    /// A statically linked busybox for the rootfs.
    #[arg(long, default_value = "/usr/bin/busybox")]
    busybox: PathBuf,
    /// Run only the cases whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Where the run's temporary directory is made.
    #[arg(long, default_value = "/tmp")]
    workdir: PathBuf,
    /// Keep the run directory (bundles, captured output) for inspection.
    #[arg(long)]
    keep: bool,
    /// Print the observed detail of passing assertions too.
    #[arg(long)]
    verbose: bool,
    /// `CASE/CLAUSE-TEXT=REASON`: a behaviour the runtime keeps on purpose against the spec. Its
    /// failures are printed as TAP TODO lines with the reason, and not counted as failed.
    #[arg(long, value_name = "CASE/TEXT=REASON")]
    deviation: Vec<String>,
}

fn main() {
    // The namespace holder re-executes this binary; it must not parse the suite's options.
    if std::env::args().nth(1).as_deref() == Some(host::HOLD_NS) {
        host::hold_namespaces();
    }
    let args = Args::parse();
    match run(args) {
        Ok(failed) => std::process::exit(i32::from(failed > 0)),
        Err(e) => {
            eprintln!("oci-conformance: {e}");
            println!("Bail out! {e}");
            std::process::exit(2);
        }
    }
}

fn run(args: Args) -> Result<usize, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("must run as root: it creates containers".into());
    }
    let runtime = std::fs::canonicalize(&args.runtime)
        .map_err(|e| format!("runtime {}: {e}", args.runtime.display()))?;
    let checker = checker_bin::locate(args.checker)?;
    if !checker_bin::is_static(&args.busybox) {
        return Err(format!(
            "{} is not a statically linked busybox",
            args.busybox.display()
        ));
    }
    let mut notes = Vec::new();
    if runtime
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("crun"))
    {
        notes.extend(host::mount_hugetlb_for_crun()?);
    }
    let workspace = host::Workspace::new(&args.workdir, &args.busybox, &checker)?;
    let mut ctx = workspace.context(runtime.clone(), args.verbose, args.filter);
    for d in &args.deviation {
        let parsed = d
            .split_once('=')
            .and_then(|(key, reason)| key.split_once('/').map(|(c, t)| (c, t, reason)));
        match parsed {
            Some((case, text, reason)) => ctx.tap.deviate(case, text, reason),
            None => {
                eprintln!("--deviation {d:?}: want CASE/CLAUSE-TEXT=REASON");
                std::process::exit(2);
            }
        }
    }
    ctx.tap
        .comment(format!("runtime under test: {}", runtime.display()));
    ctx.tap
        .comment(format!("runtime root: {}", ctx.rt.root.display()));
    for note in notes {
        ctx.tap.comment(note);
    }
    runtime::cases(&mut ctx);
    runtime_linux::cases(&mut ctx);
    config::cases(&mut ctx);
    hooks::cases(&mut ctx);
    config_linux::cases(&mut ctx);
    resources::cases(&mut ctx);
    features::cases(&mut ctx);
    host::sweep(&mut ctx);
    let counts = ctx.tap.finish();
    workspace.remove(args.keep, &ctx);
    Ok(counts.failed)
}
