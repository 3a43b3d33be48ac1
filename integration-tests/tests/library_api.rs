//! The library API, used as a Rust program would: `hull::Container::create/start/wait/kill/delete`.
//!
//! `harness = false`: the library forks the container's init from the calling process, which must
//! be single-threaded, so this is a plain main that runs the cases one after another (no libtest
//! threads) and exits non-zero if any failed. An argument filters cases by substring.
//!
//! Like any program that creates containers it re-executes itself from a sealed copy first
//! (`hull::exe::ensure_sealed`); one case runs before that, to check the library refuses to work
//! from an executable that is not sealed.

use std::path::PathBuf;

use hull::{Container, CreateOptions, Error, ExecOptions, Status};
use integration_tests::leaks::assert_no_leaks;
use integration_tests::{Bundle, TempDir};
use nix::sys::signal::Signal;
use serde_json::json;

struct Case {
    dir: TempDir,
    bundle: Bundle,
}

impl Case {
    fn new(args: &[&str]) -> Case {
        let dir = TempDir::new("lib");
        std::fs::create_dir(dir.join("root")).unwrap();
        let mut bundle = Bundle::new();
        bundle.args(args);
        Case { dir, bundle }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn opts(&self) -> CreateOptions {
        CreateOptions::new(self.root(), self.bundle.path())
    }

    fn id(&self) -> String {
        format!(
            "hull-lib-{}-{:04}",
            std::process::id(),
            integration_tests::tmp::unique()
        )
    }

    fn assert_clean(&self, id: &str) {
        assert_no_leaks(&self.root(), &[id], &[self.bundle.path(), self.dir.path()]);
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

fn create_start_kill_wait_delete() {
    let case = Case::new(&["sleep", "1000"]);
    let id = case.id();
    let pid_file = case.dir.join("init.pid");
    let mut opts = case.opts();
    opts.pid_file = Some(pid_file.clone());

    let mut c = Container::create(&id, &opts).expect("create");
    assert_eq!(c.id(), id);
    assert_eq!(c.status(), Status::Created);
    let pid = c.pid();
    assert!(alive(pid));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    let state = c.state();
    assert_eq!(state.bundle, case.bundle.path());
    assert_eq!(state.status, Status::Created);

    c.start().expect("start");
    assert_eq!(c.status(), Status::Running);
    c.kill(Signal::SIGKILL, false).expect("kill");
    assert_eq!(c.wait().expect("wait"), 128 + 9);
    assert_eq!(c.status(), Status::Stopped);
    c.delete(false).expect("delete");
    assert!(!case.root().join(&id).exists());
    case.assert_clean(&id);
}

fn exit_code_and_effect_inside() {
    let mut case = Case::new(&[]);
    case.bundle
        .set("/root/readonly", json!(false))
        .sh("echo $$ > /pid-inside; hostname > /host-inside; exit 7")
        .set("/hostname", json!("libbox"));
    let id = case.id();
    let mut c = Container::create(&id, &case.opts()).expect("create");
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), 7);
    let rootfs = case.bundle.rootfs();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("pid-inside")).unwrap(),
        "1\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("host-inside")).unwrap(),
        "libbox\n"
    );
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

fn load_list_and_delete_from_another_handle() {
    let case = Case::new(&["sleep", "1000"]);
    let id = case.id();
    let mut created = Container::create(&id, &case.opts()).expect("create");

    let loaded = Container::load(&case.root(), &id).expect("load");
    assert_eq!(loaded.status(), Status::Created);
    assert_eq!(loaded.pid(), created.pid());
    let listed = hull::container::list(&case.root()).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);

    created.start().expect("start");
    let loaded = Container::load(&case.root(), &id).expect("load");
    assert_eq!(loaded.status(), Status::Running);
    match loaded.delete(false) {
        Err(Error::InvalidStatus { .. }) => {}
        other => panic!("delete of a running container without force: {other:?}"),
    }
    let loaded = Container::load(&case.root(), &id).expect("load");
    loaded.delete(true).expect("delete --force");
    // The creator reaps its child.
    assert_eq!(created.wait().expect("wait"), 128 + 9);
    case.assert_clean(&id);
}

fn errors_are_typed_and_leave_nothing() {
    let case = Case::new(&["no-such-program"]);
    let id = case.id();
    match Container::create(&id, &case.opts()) {
        Err(e @ Error::Init(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("executable file not found in $PATH"), "{msg}");
        }
        other => panic!("create of a missing program: {other:?}"),
    }
    case.assert_clean(&id);

    match Container::create("../escape", &case.opts()) {
        Err(Error::InvalidId { .. }) => {}
        other => panic!("invalid id: {other:?}"),
    }
    match Container::load(&case.root(), "no-such-container") {
        Err(Error::ContainerNotFound { .. }) => {}
        other => panic!("load unknown: {other:?}"),
    }

    let mut ok = Case::new(&["sleep", "1000"]);
    let id = ok.id();
    let mut c = Container::create(&id, &ok.opts()).expect("create");
    match Container::create(&id, &ok.opts()) {
        Err(Error::ContainerExists { .. }) => {}
        other => panic!("second create: {other:?}"),
    }
    c.start().expect("start");
    match c.start() {
        Err(Error::InvalidStatus { .. }) => {}
        other => panic!("second start: {other:?}"),
    }
    Container::load(&ok.root(), &id)
        .expect("load")
        .delete(true)
        .expect("delete");
    let _ = c.wait();
    ok.assert_clean(&id);

    ok.bundle.set("/process/cwd", json!("relative"));
    match Container::create(&ok.id(), &ok.opts()) {
        Err(e @ Error::InvalidConfig { .. }) => {
            assert!(e.to_string().contains("cwd"), "{e}");
        }
        other => panic!("relative cwd: {other:?}"),
    }
}

/// The library refuses to create or exec from an executable that is not a sealed copy (see
/// `hull::exe`) unless told not to: run before this program seals itself.
fn refuses_unsealed_unless_told_not_to() {
    assert!(!hull::exe::is_sealed());
    let case = Case::new(&["sleep", "1000"]);
    let id = case.id();
    match Container::create(&id, &case.opts()) {
        Err(e @ Error::ExeNotSealed { .. }) => {
            assert!(e.to_string().contains("ensure_sealed"), "{e}");
        }
        other => panic!("create from an unsealed executable: {other:?}"),
    }
    case.assert_clean(&id);

    let mut opts = case.opts();
    opts.unsealed_exe = true;
    let mut c = Container::create(&id, &opts).expect("create, told not to check");
    c.start().expect("start");
    let mut process = case.bundle.config()["process"].clone();
    process["args"] = json!(["true"]);
    let process: oci_spec::runtime::Process = serde_json::from_value(process).unwrap();
    match c.exec(&process, &ExecOptions::default()) {
        Err(Error::ExeNotSealed { .. }) => {}
        other => panic!("exec from an unsealed executable: {other:?}"),
    }
    let exec_opts = ExecOptions {
        unsealed_exe: true,
        ..ExecOptions::default()
    };
    let pid = c
        .exec(&process, &exec_opts)
        .expect("exec, told not to check");
    assert_eq!(hull::container::wait_pid(pid).expect("wait exec"), 0);
    c.kill(Signal::SIGKILL, false).expect("kill");
    assert_eq!(c.wait().expect("wait"), 128 + 9);
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// Carries the outcome of the case run before the re-exec into the sealed program.
const UNSEALED_OUTCOME: &str = "LIBRARY_API_UNSEALED_CASE";

fn main() {
    let cases: &[(&str, fn())] = &[
        (
            "create_start_kill_wait_delete",
            create_start_kill_wait_delete,
        ),
        ("exit_code_and_effect_inside", exit_code_and_effect_inside),
        (
            "load_list_and_delete_from_another_handle",
            load_list_and_delete_from_another_handle,
        ),
        (
            "errors_are_typed_and_leave_nothing",
            errors_are_typed_and_leave_nothing,
        ),
    ];
    // libtest's own flags are accepted and ignored; the first free word is a name filter.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let takes_value = [
        "--test-threads",
        "--skip",
        "--logfile",
        "--format",
        "--color",
        "-Z",
    ];
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-') && (*i == 0 || !takes_value.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone());
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    let unsealed_case = "refuses_unsealed_unless_told_not_to";
    let run_unsealed_case = filter.as_deref().is_none_or(|f| unsealed_case.contains(f));
    if !hull::exe::is_sealed() {
        if run_unsealed_case {
            let ok = std::panic::catch_unwind(refuses_unsealed_unless_told_not_to).is_ok();
            std::env::set_var(UNSEALED_OUTCOME, if ok { "ok" } else { "FAILED" });
        }
        // As the library's documentation asks of every program that creates containers.
        let e = hull::exe::ensure_sealed().expect_err("ensure_sealed returns only on failure");
        panic!("cannot re-execute from a sealed copy: {e}");
    }
    let total = selected.len() + usize::from(run_unsealed_case);
    println!("\nrunning {total} tests");
    let mut failed = Vec::new();
    if run_unsealed_case {
        let outcome = std::env::var(UNSEALED_OUTCOME).unwrap_or_default();
        println!("test {unsealed_case} (before sealing) ... {outcome}");
        if outcome != "ok" {
            failed.push(unsealed_case);
        }
    }
    for (name, case) in selected.iter().copied() {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok. {total} passed");
    } else {
        println!("\ntest result: FAILED. {} failed: {failed:?}", failed.len());
        std::process::exit(1);
    }
}
