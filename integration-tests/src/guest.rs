//! What the qemu guest lanes (tests/guest_lanes/cgroup_v2.rs, tests/guest_lanes/systemd.rs)
//! share: where the guest kernel is cached, the host's test binaries the guest runs, the script
//! that runs them there, and booting a guest again when its kernel locked up.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `$HULL_VM_CACHE`, else `<target>/hull-vm`, from the running test's
/// `<target>/<profile>/deps/<test>`.
pub fn vm_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("HULL_VM_CACHE").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.pop();
    }
    dir.parent().expect("target dir").join("hull-vm")
}

/// Whether the guest of `script` (a run-in-*-guest.sh) can boot here: its `--prepare` installs
/// qemu and fetches the kernel. When it cannot, the lane (`lane`, for the message) fails if
/// `required`, and otherwise says on stderr why it does nothing.
pub fn prepared(script: &Path, lane: &str, required: bool) -> bool {
    let prep = Command::new(script)
        .arg("--prepare")
        .env("HULL_VM_CACHE", vm_cache())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} --prepare: {e}", script.display()));
    if prep.status.success() {
        return true;
    }
    let why = String::from_utf8_lossy(&prep.stderr);
    assert!(!required, "the {lane} guest cannot be prepared:\n{why}");
    eprintln!("SKIPPED the {lane} guest: qemu or the guest kernel cannot be installed:\n{why}");
    false
}

/// The integration test suites `names`, built by the cargo running this test, in its profile and
/// target directory: (name, executable).
pub fn build_suites(names: &[&str]) -> Vec<(String, PathBuf)> {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("cannot tell the cargo profile from {}", exe.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json",
        "-p",
        "integration-tests",
    ])
    .args(["--profile", &profile])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
    .arg("--target-dir")
    .arg(profile_dir.parent().expect("target dir"));
    for suite in names {
        cmd.args(["--test", suite]);
    }
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .expect("run cargo test --no-run");
    assert!(out.status.success(), "cargo test --no-run failed");
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        if let (Some(path), true) = (
            msg["executable"].as_str(),
            names.contains(&name) && msg["target"]["kind"] == serde_json::json!(["test"]),
        ) {
            found.push((name.to_string(), PathBuf::from(path)));
        }
    }
    assert_eq!(found.len(), names.len(), "suites built: {found:?}");
    found
}

/// Runs a guest (`command` is a run-in-*-guest.sh invocation) and returns its output, how long
/// the last boot took, and whether that was a second boot.
///
/// A guest whose kernel locked up (a soft lockup under TCG, in a lookup through the overlay to
/// the host's 9p root: seen a few times in some dozens of boots, in both lanes) panics at once
/// (the scripts boot with softlockup_panic) and ends without a status (125): it is booted again,
/// once. A failing test never looks like that: it ends with a status and its FAILED lines.
pub fn run_booting_again_on_lockup(
    mut command: impl FnMut() -> Command,
) -> (Output, Duration, bool) {
    let mut again = false;
    loop {
        let started = Instant::now();
        let out = command()
            .stdin(Stdio::null())
            .output()
            .expect("run the guest script");
        let locked_up = out.status.code() == Some(125)
            && String::from_utf8_lossy(&out.stdout).contains("soft lockup");
        if !locked_up || again {
            return (out, started.elapsed(), again);
        }
        eprintln!(
            "the guest kernel locked up after {:.1?}; booting it again:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stdout)
        );
        again = true;
    }
}

/// The name libtest gives test `test` of the module `module_path` (its `module_path!()`): the
/// path without the crate's name, as `--exact` and the `test NAME ... ok` lines have it.
pub fn test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    }
}

/// The start of every [`suites_script`]: the shell function that reports,
/// when a suite ran out of time, what every process was doing (a hang in the guest otherwise
/// shows only the test that never printed `ok`).
pub const SCRIPT_PRELUDE: &str = r#"hung_report() {
    echo "=== suite $1 timed out; the guest's processes (but the kernel's threads):"
    ps -eo pid,ppid,stat,etimes,wchan:32,args | awk '$1 != 2 && $2 != 2' | cut -c1-200
    for d in /proc/[0-9]*; do
        if grep -q '^State:.D' "$d/status" 2>/dev/null; then
            echo "--- kernel stack of $(basename "$d") ($(cat "$d/comm" 2>/dev/null)), in D state:"
            cat "$d/stack" 2>/dev/null
        fi
    done
}
"#;

/// A guest script running `suites` (name, environment, executable, arguments) one after
/// another, each framed and timed as `suite_line` has it, after [`SCRIPT_PRELUDE`].
pub fn suites_script<'a>(
    suites: impl IntoIterator<Item = (&'a str, &'a str, &'a Path, &'a [String])>,
    budget: Duration,
) -> String {
    let mut script = SCRIPT_PRELUDE.to_string();
    for (name, env, path, args) in suites {
        script.push_str(&suite_line(name, env, path, args, budget));
    }
    script
}

/// One line of a guest script: the test suite `path` (one test at a time, `args` after the
/// harness's own) with `env` before it, killed after `budget` so that one hung test costs its
/// suite's time, not the whole boot's, and the suites after it still run. Its output is framed
/// by `=== suite NAME` and `=== suite NAME exit STATUS in SECS s`; a timeout (status 124) is
/// followed by [`SCRIPT_PRELUDE`]'s report.
fn suite_line(name: &str, env: &str, path: &Path, args: &[String], budget: Duration) -> String {
    format!(
        "echo '=== suite {name}'; t=$SECONDS; {env} timeout -k 10 {secs} '{}' --test-threads 1 --color never {} 2>&1; rc=$?; echo \"=== suite {name} exit $rc in $((SECONDS - t)) s\"; [ $rc -ne 124 ] || hung_report {name}\n",
        path.display(),
        args.join(" "),
        secs = budget.as_secs(),
    )
}

/// If suite `name` ran out of its budget in the guest whose output is `text`: the test it was
/// running and what the guest's processes were doing then ([`SCRIPT_PRELUDE`]'s report).
pub fn timed_out(text: &str, name: &str) -> Option<String> {
    let report = text.split(&format!("=== suite {name} timed out")).nth(1)?;
    let section = text
        .split(&format!("=== suite {name}\n"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("=== suite {name} exit ")).next())
        .unwrap_or_default();
    let running = section
        .lines()
        .rfind(|l| l.starts_with("test "))
        .unwrap_or("(no test had started)");
    let report: String = report
        .lines()
        .take_while(|l| !l.starts_with("=== "))
        .collect::<Vec<_>>()
        .join("\n");
    Some(format!(
        "suite {name} ran out of its time in the guest at `{running}`{report}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_out_suite_names_its_running_test_and_the_report() {
        let text = "=== suite a\ntest one ... ok\n=== suite a exit 0 in 3 s\n\
                    === suite b\ntest two ... ok\ntest three ... \n=== suite b exit 124 in 420 s\n\
                    === suite b timed out; the guest's processes (but the kernel's threads):\n\
                    7 1 D 400 p9_client_rpc hull create\n=== suite c\n";
        assert_eq!(timed_out(text, "a"), None);
        let hung = timed_out(text, "b").expect("b timed out");
        assert!(hung.contains("`test three ... `"), "{hung}");
        assert!(hung.contains("p9_client_rpc hull create"), "{hung}");
        assert!(!hung.contains("suite c"), "{hung}");
    }
}
