//! The library's examples (runtime-lib/examples), run as a user runs them: built by cargo, given
//! the test bed's busybox rootfs, their output checked line by line, and nothing left behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::leaks::assert_no_leaks;
use integration_tests::runtime::example_binary;
use integration_tests::{Bundle, TempDir};

/// A hung example fails its test instead of hanging the suite (a deadlock, never a measure of
/// speed: an example takes seconds).
const WATCHDOG: Duration = Duration::from_secs(10 * 60);

fn run(name: &str, features: &[&str], args: &[&str], root: &Path, id: &str) -> Output {
    let bin = example_binary(name, features);
    let mut child = Command::new(&bin)
        .args(args)
        .env("HULL_EXAMPLE_STATE_ROOT", root)
        .env("HULL_EXAMPLE_ID", id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "example {name} hung; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "example {name} failed ({}); stdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Bed {
    dir: TempDir,
    bundle: Bundle,
}

impl Bed {
    fn new() -> Bed {
        let dir = TempDir::new("examples");
        std::fs::create_dir(dir.join("root")).unwrap();
        Bed {
            dir,
            bundle: Bundle::new(),
        }
    }

    fn id(&self, what: &str) -> String {
        format!(
            "hull-ex-{what}-{}-{:04}",
            std::process::id(),
            integration_tests::tmp::unique()
        )
    }

    fn run(&self, name: &str, features: &[&str], extra: &[&str], id: &str) -> String {
        let rootfs = self.bundle.rootfs();
        let mut args = vec![rootfs.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = run(name, features, &args, &self.dir.join("root"), id);
        String::from_utf8(out.stdout).unwrap()
    }

    fn assert_clean(&self, ids: &[&str]) {
        assert_no_leaks(
            &self.dir.join("root"),
            ids,
            &[self.bundle.path(), self.dir.path()],
        );
    }
}

#[test]
fn run_capture_prints_what_the_container_wrote() {
    let bed = Bed::new();
    let id = bed.id("capture");
    let out = bed.run("run_capture", &[], &[], &id);
    assert_eq!(
        out,
        "stdout: hello from capture\nstderr: a warning\nexit code: 3\n"
    );
    bed.assert_clean(&[&id]);
}

#[test]
fn limits_reads_back_what_it_set_and_updated() {
    let bed = Bed::new();
    let id = bed.id("limits");
    let out = bed.run("limits", &[], &[], &id);
    assert_eq!(
        out,
        "memory limit: 67108864\npids limit: 32\nmemory limit after update: 134217728\n\
         pids limit after update: 32\nexit code: 137\n"
    );
    bed.assert_clean(&[&id]);
}

#[test]
fn exec_runs_processes_in_the_container() {
    let bed = Bed::new();
    let id = bed.id("exec");
    let out = bed.run("exec", &[], &[], &id);
    assert_eq!(
        out,
        "exec 1 (0): execbox: pid 2\nexec 2 (0): SHOUT THIS\n\
         exec 3 (0): /dev/pts/0 | a terminal\n"
    );
    bed.assert_clean(&[&id]);
}

#[test]
fn many_tokio_runs_containers_concurrently() {
    let bed = Bed::new();
    let id = bed.id("many");
    let out = bed.run("many_tokio", &["tokio"], &["20", "2"], &id);
    assert!(out.ends_with("all 40 containers ok\n"), "{out}");
    let ids: Vec<String> = (0..2)
        .flat_map(|r| (0..20).map(move |n| (r, n)))
        .map(|(r, n)| format!("{id}-{r}-{n}"))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    bed.assert_clean(&ids);
}
