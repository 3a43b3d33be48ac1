use clap::Args;
use hull::{Container, Status};

use super::{Ctx, Outcome};
use crate::log::{io_message, Failure};

/// Display the processes running inside a container
#[derive(Debug, Args)]
pub struct Ps {
    /// Select one of: table or json
    #[arg(short, long, default_value = "table")]
    pub format: String,
    #[arg(value_name = "container-id")]
    pub id: String,
    /// Arguments for ps(1) in table format (default -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ps options"
    )]
    pub ps_args: Vec<String>,
}

pub fn run(ctx: &Ctx, args: Ps) -> Outcome {
    let c = Container::load(&ctx.root, &args.id)?;
    let pids = match c.pids() {
        Ok(pids) => pids,
        // runc lists a stopped container's (no) processes rather than failing.
        Err(hull::Error::InvalidStatus {
            status: Status::Stopped,
            ..
        }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let out = match args.format.as_str() {
        // Go's encoder writes a nil slice as `null`.
        "json" if pids.is_empty() => "null\n".to_string(),
        "json" => format!("{}\n", serde_json::Value::from(pids)),
        "table" => table(&pids, &args.ps_args)?,
        _ => return Err(Failure::msg("invalid format option")),
    };
    super::print(&out)?;
    Ok(0)
}

/// As runc: ps(1)'s header, then its lines whose PID column is one of the container's pids.
fn table(pids: &[i32], ps_args: &[String]) -> Result<String, Failure> {
    let ps_args = if ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_args.to_vec()
    };
    let output = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| Failure::msg(format!("exec ps: {}", io_message(&e))))?;
    if !output.status.success() {
        return Err(Failure::msg(format!(
            "ps: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )));
    }
    filter(&String::from_utf8_lossy(&output.stdout), pids)
}

fn filter(ps_output: &str, pids: &[i32]) -> Result<String, Failure> {
    let mut lines = ps_output.lines();
    let header = lines.next().unwrap_or_default();
    let pid_column = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Failure::msg("couldn't find PID field in ps output"))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_the_header_and_the_containers_lines() {
        let ps = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 19:00 ?        00:00:01 /sbin/init
root       24400       1  0 19:38 ?        00:00:00 sleep 100
root       24401   24400  0 19:38 ?        00:00:00 sh
";
        assert_eq!(
            filter(ps, &[24400, 24401]).unwrap(),
            "\
UID          PID    PPID  C STIME TTY          TIME CMD
root       24400       1  0 19:38 ?        00:00:00 sleep 100
root       24401   24400  0 19:38 ?        00:00:00 sh
"
        );
        assert_eq!(
            filter("  PID COMMAND\n24400 sleep\n", &[24400]).unwrap(),
            "  PID COMMAND\n24400 sleep\n"
        );
        assert!(filter("COMMAND\nsleep\n", &[1]).is_err());
    }
}
