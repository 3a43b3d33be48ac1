//! The library from a multi-threaded program: a tokio multi-thread runtime creating, starting,
//! exec'ing into and waiting for real containers concurrently (see hull's `container::helper`:
//! with more than one thread, `create` and `exec` run in a fresh single-threaded helper process).
//!
//! `harness = false`: a program that embeds hull calls `hull::exe::ensure_sealed()` first thing in
//! its `main`, which is also where hull's helper processes (new starts of this same executable)
//! turn into the helper; libtest's generated main would not. The cases run one after another,
//! each inside its own tokio runtime; a watchdog thread fails the whole program if it has not
//! finished in [`WATCHDOG`] (a deadlock, never a measure of speed). An argument filters cases.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use hull::oci_spec::runtime::{Process, Spec};
use hull::{Container, Error, Stdio};
use integration_tests::leaks::assert_no_leaks;
use integration_tests::{Bundle, TempDir};
use serde_json::json;

/// How long the whole program may take before it is declared deadlocked.
const WATCHDOG: Duration = Duration::from_secs(15 * 60);
const COUNT: usize = 20;
const ROUNDS: usize = 5;

struct Case {
    dir: TempDir,
    bundle: Bundle,
}

impl Case {
    fn new() -> Case {
        let dir = TempDir::new("threads");
        std::fs::create_dir(dir.join("root")).unwrap();
        Case {
            dir,
            bundle: Bundle::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn prefix(&self) -> String {
        format!(
            "hull-mt-{}-{:04}",
            std::process::id(),
            integration_tests::tmp::unique()
        )
    }

    /// The bundle's config as a spec in memory, root.path absolute, running `args`.
    fn spec(&self, args: &[&str]) -> Spec {
        let mut config = self.bundle.config().clone();
        config["root"]["path"] = json!(self.bundle.rootfs());
        config["process"]["args"] = json!(args);
        serde_json::from_value(config).unwrap()
    }

    fn process(&self, args: &[&str]) -> Process {
        let mut p = self.bundle.config()["process"].clone();
        p["args"] = json!(args);
        serde_json::from_value(p).unwrap()
    }

    fn assert_clean(&self, ids: &[String]) {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_no_leaks(&self.root(), &ids, &[self.bundle.path(), self.dir.path()]);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_io()
        .build()
        .unwrap()
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn read_all(fd: Option<OwnedFd>) -> String {
    let mut text = String::new();
    std::fs::File::from(fd.expect("a piped stream"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

/// 20 containers at a time, 5 rounds: each created (from a spec, stdout piped), started, its
/// output read and checked, waited for (`wait_async`, its pidfd) and deleted, all concurrently,
/// while other threads keep the allocator busy. This program is every init's parent.
fn twenty_at_a_time() {
    let case = Case::new();
    let prefix = case.prefix();
    let rt = runtime();
    let mut ids = Vec::new();
    let failures = rt.block_on(async {
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let churn: Vec<_> = (0..4)
            .map(|_| {
                let busy = busy.clone();
                tokio::task::spawn_blocking(move || {
                    let mut keep: Vec<Vec<u8>> = Vec::new();
                    while busy.load(std::sync::atomic::Ordering::Relaxed) {
                        keep.push(vec![1u8; 4096]);
                        if keep.len() > 256 {
                            keep.clear();
                        }
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        for round in 0..ROUNDS {
            let tasks: Vec<_> = (0..COUNT)
                .map(|n| {
                    let id = format!("{prefix}-{round}-{n}");
                    ids.push(id.clone());
                    let spec = case.spec(&["sh", "-c", &format!("echo I am {id}; exit {n}")]);
                    let root = case.root();
                    tokio::spawn(async move {
                        let (mut c, stdout) = tokio::task::spawn_blocking({
                            let id = id.clone();
                            move || {
                                assert!(threads() > 1, "the test must be multi-threaded");
                                let mut c = Container::builder(&id)
                                    .spec(spec)
                                    .root(root)
                                    .stdin(Stdio::Null)
                                    .stdout(Stdio::Piped)
                                    .create()?;
                                // The helper cloned the init with CLONE_PARENT: ours.
                                assert_eq!(parent_of(c.pid()), std::process::id() as i32);
                                let stdout = c.take_io().stdout;
                                c.start()?;
                                Ok::<_, Error>((c, stdout))
                            }
                        })
                        .await
                        .unwrap()?;
                        let out = tokio::task::spawn_blocking(move || read_all(stdout));
                        let code = c.wait_async().await?;
                        let out = out.await.unwrap();
                        tokio::task::spawn_blocking(move || c.delete(false))
                            .await
                            .unwrap()?;
                        Ok::<_, Error>((id, code, out, n))
                    })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(Ok((id, code, out, n))) => {
                        if code != n as i32 || out != format!("I am {id}\n") {
                            failures.push(format!("{id}: exit {code}, output {out:?}"));
                        }
                    }
                    Ok(Err(e)) => failures.push(format!("{e}")),
                    Err(e) => failures.push(format!("task: {e}")),
                }
            }
        }
        busy.store(false, std::sync::atomic::Ordering::Relaxed);
        for c in churn {
            c.await.unwrap();
        }
        failures
    });
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(ids.len(), COUNT * ROUNDS);
    case.assert_clean(&ids);
}

/// Errors cross the helper typed: an init failure, an id in use, a bad config; nothing is left
/// and no helper or init is left unreaped.
fn errors_stay_typed() {
    let case = Case::new();
    let id = case.prefix();
    let rt = runtime();
    rt.block_on(async {
        let (spec, root) = (case.spec(&["no-such-program"]), case.root());
        let id2 = id.clone();
        let made = tokio::task::spawn_blocking(move || {
            assert!(threads() > 1);
            Container::builder(&id2).spec(spec).root(root).create()
        })
        .await
        .unwrap();
        match made {
            Err(Error::Init(f)) => {
                assert_eq!(
                    f.detail.as_deref(),
                    Some("executable file not found in $PATH")
                );
                assert_eq!(f.subject.as_deref(), Some("no-such-program"));
            }
            other => panic!("create of a missing program: {other:?}"),
        }

        let (spec, root) = (case.spec(&["sleep", "1000"]), case.root());
        let id2 = id.clone();
        let c = tokio::task::spawn_blocking(move || {
            Container::builder(&id2)
                .spec(spec)
                .root(root)
                .stdio(Stdio::Null)
                .create()
        })
        .await
        .unwrap()
        .expect("create");
        let (spec, root) = (case.spec(&["sleep", "1000"]), case.root());
        let id2 = id.clone();
        let again = tokio::task::spawn_blocking(move || {
            Container::builder(&id2).spec(spec).root(root).create()
        })
        .await
        .unwrap();
        match again {
            Err(Error::ContainerExists { id: taken }) => assert_eq!(taken, id),
            other => panic!("second create: {other:?}"),
        }
        let mut bad = case.spec(&["true"]);
        bad.set_version("2.0.0".into());
        let root = case.root();
        let refused = tokio::task::spawn_blocking(move || {
            Container::builder("hull-mt-bad")
                .spec(bad)
                .root(root)
                .create()
        })
        .await
        .unwrap();
        match refused {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "ociVersion"),
            other => panic!("a bad version: {other:?}"),
        }
        tokio::task::spawn_blocking(move || c.delete(true))
            .await
            .unwrap()
            .expect("delete");
    });
    case.assert_clean(&[id, "hull-mt-bad".into()]);
    // Every helper and failed init was reaped: no zombie child of ours.
    let zombies: Vec<_> = procfs::process::all_processes()
        .unwrap()
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.ppid == std::process::id() as i32 && s.state == 'Z')
        .map(|s| s.pid)
        .collect();
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
}

/// exec from many threads at once into one container (piped, and one on a pty), and a wait from
/// another handle: it sees the stop through the init's pidfd, and the exit status once the
/// creator collected it.
fn exec_and_wait_from_threads() {
    let case = Case::new();
    let id = case.prefix();
    let rt = runtime();
    rt.block_on(async {
        let (spec, root) = (case.spec(&["sh", "-c", "read x; exit 4"]), case.root());
        let id2 = id.clone();
        let mut c = tokio::task::spawn_blocking(move || {
            let mut c = Container::builder(&id2)
                .spec(spec)
                .root(root)
                .stdin(Stdio::Piped)
                .create()?;
            c.start()?;
            Ok::<_, Error>(c)
        })
        .await
        .unwrap()
        .expect("create and start");
        let stdin = c.take_io().stdin;
        let c = std::sync::Arc::new(c);
        let tasks: Vec<_> = (0..10)
            .map(|n| {
                let c = c.clone();
                let process = case.process(&["sh", "-c", &format!("echo exec {n}; exit {n}")]);
                tokio::spawn(async move {
                    let mut p = tokio::task::spawn_blocking(move || {
                        c.exec_builder(process).stdout(Stdio::Piped).spawn()
                    })
                    .await
                    .unwrap()?;
                    assert_eq!(parent_of(p.pid()), std::process::id() as i32);
                    let out = p.take_io().stdout;
                    let out = tokio::task::spawn_blocking(move || read_all(out));
                    let code = p.wait_async().await?;
                    Ok::<_, Error>((n, code, out.await.unwrap()))
                })
            })
            .collect();
        for task in tasks {
            let (n, code, out) = task.await.unwrap().expect("exec");
            assert_eq!((code, out), (n, format!("exec {n}\n")));
        }
        let process = case.process(&["tty"]);
        let c2 = c.clone();
        let mut p =
            tokio::task::spawn_blocking(move || c2.exec_builder(process).stdio(Stdio::Pty).spawn())
                .await
                .unwrap()
                .expect("exec on a pty");
        let master = p.take_io().pty_master.expect("pty master");
        assert_eq!(p.wait_async().await.expect("wait"), 0);
        let mut buf = [0u8; 64];
        let n = nix::unistd::read(&master, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"/dev/pts/"), "{:?}", &buf[..n]);

        // Another handle: the stop through the pidfd; no status until the creator collects it.
        let mut other = Container::load(&case.root(), &id).expect("load");
        let waiting = tokio::spawn(async move {
            let r = other.wait_async().await;
            (other, r)
        });
        drop(stdin);
        let (mut other, r) = waiting.await.unwrap();
        assert_eq!(other.status(), hull::Status::Stopped);
        match r {
            Err(Error::Unsupported { .. }) => {}
            other => panic!("status before the creator collected it: {other:?}"),
        }
        let mut c = std::sync::Arc::try_unwrap(c).expect("the only handle left");
        assert_eq!(c.wait_async().await.expect("creator's wait"), 4);
        assert_eq!(other.wait_async().await.expect("other's wait"), 4);
        tokio::task::spawn_blocking(move || c.delete(false))
            .await
            .unwrap()
            .expect("delete");
    });
    case.assert_clean(&[id]);
}

/// The short forms, `Container::create` from a bundle and `Container::exec`, take the same route
/// from a multi-threaded program: this program is the parent of both, and waits for them.
fn short_forms_from_threads() {
    let mut case = Case::new();
    // Who ran the create: a createRuntime hook runs as a child of the runtime's process.
    let runner = case.dir.join("runner");
    case.bundle.args(&["sleep", "1000"]).set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $PPID > {}", runner.display())]}]}),
    );
    let id = case.prefix();
    let rt = runtime();
    rt.block_on(async {
        let opts = hull::CreateOptions::new(case.root(), case.bundle.path());
        let (id2, process) = (id.clone(), case.process(&["true"]));
        let mut c = tokio::task::spawn_blocking(move || {
            assert!(threads() > 1);
            let mut c = Container::create(&id2, &opts)?;
            assert_eq!(parent_of(c.pid()), std::process::id() as i32);
            c.start()?;
            let pid = c.exec(&process, &hull::ExecOptions::default())?;
            assert_eq!(parent_of(pid.as_raw()), std::process::id() as i32);
            assert_eq!(hull::container::wait_pid(pid)?, 0);
            c.kill(nix::sys::signal::Signal::SIGKILL, false)?;
            Ok::<_, Error>(c)
        })
        .await
        .unwrap()
        .expect("create, start, exec");
        assert_eq!(c.wait_async().await.expect("wait"), 128 + 9);
        let ran_by: i32 = std::fs::read_to_string(&runner)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_ne!(
            ran_by,
            std::process::id() as i32,
            "create ran in this threaded process"
        );
        tokio::task::spawn_blocking(move || c.delete(false))
            .await
            .unwrap()
            .expect("delete");
    });
    case.assert_clean(&[id]);
}

fn main() {
    // As every program that embeds hull: first thing. Also where hull's helpers start.
    if let Err(e) = hull::exe::ensure_sealed() {
        panic!("cannot re-execute from a sealed copy: {e}");
    }
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("deadlock: the test did not finish in {WATCHDOG:?}");
        std::process::exit(2);
    });
    let cases: &[(&str, fn())] = &[
        ("twenty_at_a_time", twenty_at_a_time),
        ("errors_stay_typed", errors_stay_typed),
        ("exec_and_wait_from_threads", exec_and_wait_from_threads),
        ("short_forms_from_threads", short_forms_from_threads),
    ];
    let filter = integration_tests::plain_main::name_filter();
    let selected = integration_tests::plain_main::select(cases, filter.as_deref());
    println!("\nrunning {} tests", selected.len());
    integration_tests::plain_main::run(&selected, &[]);
}
