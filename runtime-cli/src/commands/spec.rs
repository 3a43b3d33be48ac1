use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::Outcome;
use crate::log::{io_message, Failure};

/// Create a new specification file (config.json) for a bundle
#[derive(Debug, Args)]
pub struct Spec {
    /// Path to the root of the bundle directory
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(args: Spec) -> Outcome {
    let path = args.bundle.unwrap_or_default().join("config.json");
    let json = hull::spec::to_json(&hull::spec::default_spec(args.rootless)?)
        .map_err(|e| Failure::msg(format!("encode spec: {e}")))?;
    // create_new: an existing config.json is never overwritten, even one made meanwhile.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure::msg("File config.json exists. Remove it first"))
        }
        Err(e) => return Err(Failure::msg(format!("create {path:?}: {}", io_message(&e)))),
    };
    file.write_all(json.as_bytes())
        .map_err(|e| Failure::msg(format!("write {path:?}: {}", io_message(&e))))?;
    Ok(0)
}
