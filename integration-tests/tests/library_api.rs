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

use hull::{Container, CreateOptions, Error, ExecOptions, Status, Stdio};
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

/// The spec of `case`'s bundle, in memory, with its root.path made absolute.
fn spec_of(case: &Case, args: &[&str]) -> oci_spec::runtime::Spec {
    let mut config = case.bundle.config().clone();
    config["root"]["path"] = json!(case.bundle.rootfs());
    config["process"]["args"] = json!(args);
    serde_json::from_value(config).unwrap()
}

fn read_all(fd: Option<std::os::fd::OwnedFd>) -> String {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::from(fd.expect("a piped stream"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// A container from a spec in memory (no config.json written by the caller: the bundle
/// directory's is removed), its stdin, stdout and stderr piped.
fn builder_from_spec_with_pipes() {
    let case = Case::new(&["true"]);
    let spec = spec_of(
        &case,
        &[
            "sh",
            "-c",
            "read line; echo \"got $line\"; echo oops >&2; exit 3",
        ],
    );
    std::fs::remove_file(case.bundle.config_path()).unwrap();
    let id = case.id();
    let mut c = Container::builder(&id)
        .spec(spec.clone())
        .root(case.root())
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .create()
        .expect("create from a spec");
    // What later verbs and hooks need is in the state directory: the config, as the bundle.
    let state_dir = case.root().join(&id);
    assert_eq!(c.state().bundle, state_dir);
    let kept: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(state_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(kept.process(), spec.process());
    let io = c.take_io();
    assert!(io.pty_master.is_none());
    c.start().expect("start");
    {
        use std::io::Write;
        let mut stdin = std::fs::File::from(io.stdin.expect("stdin pipe"));
        stdin.write_all(b"hello\n").unwrap();
    }
    assert_eq!(read_all(io.stdout), "got hello\n");
    assert_eq!(read_all(io.stderr), "oops\n");
    assert_eq!(c.wait().expect("wait"), 3);
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// A relative root.path needs a base directory, said in the error; with bundle_dir() it works.
/// A bundle given to the builder reads its config.json, as `create --bundle`.
fn builder_bases_and_bundles() {
    let case = Case::new(&["true"]);
    let mut spec = spec_of(&case, &["true"]);
    let mut root = spec.root().clone().unwrap();
    root.set_path("rootfs".into());
    spec.set_root(Some(root));
    let id = case.id();
    let refused = Container::builder(&id)
        .spec(spec.clone())
        .root(case.root())
        .create();
    match refused {
        Err(e @ Error::InvalidConfig { .. }) => {
            assert!(e.to_string().contains("root.path"), "{e}");
            assert!(e.to_string().contains("bundle_dir"), "{e}");
        }
        other => panic!("relative root.path without a base: {other:?}"),
    }
    case.assert_clean(&id);
    match Container::builder(&id).root(case.root()).create() {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "bundle"),
        other => panic!("neither spec nor bundle: {other:?}"),
    }
    let mut c = Container::builder(&id)
        .spec(spec)
        .bundle_dir(case.bundle.path())
        .root(case.root())
        .stdout(Stdio::Null)
        .create()
        .expect("create with a base directory");
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), 0);
    c.delete(false).expect("delete");
    case.assert_clean(&id);

    let id = case.id();
    let mut c = Container::builder(&id)
        .bundle(case.bundle.path())
        .root(case.root())
        .create()
        .expect("create from a bundle");
    assert_eq!(c.state().bundle, case.bundle.path());
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), 0);
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// Stdio::Null gives the process /dev/null; Stdio::Pty a terminal made in the container whose
/// master comes back; exec gets the same choices.
fn stdio_null_pty_and_exec() {
    let case = Case::new(&["true"]);
    let id = case.id();
    let mut c = Container::builder(&id)
        .spec(spec_of(
            &case,
            &[
                "sh",
                "-c",
                "test -t 0 && tty && cat /proc/self/fdinfo/0 >/dev/null && sleep 1000",
            ],
        ))
        .root(case.root())
        .stdio(Stdio::Pty)
        .create()
        .expect("create with a pty");
    let master = c.take_io().pty_master.expect("pty master");
    c.start().expect("start");
    let mut line = Vec::new();
    {
        use std::io::Read;
        let mut m = std::fs::File::from(master.try_clone().unwrap());
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            m.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
    }
    assert_eq!(String::from_utf8_lossy(&line).trim(), "/dev/pts/0");

    let process = |args: &[&str]| -> oci_spec::runtime::Process {
        let mut p = case.bundle.config()["process"].clone();
        p["args"] = json!(args);
        serde_json::from_value(p).unwrap()
    };
    let mut p = c
        .exec_builder(process(&["sh", "-c", "cat; wc -c < /dev/stdin; echo done"]))
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .expect("exec with null stdin");
    assert_eq!(read_all(p.take_io().stdout), "0\ndone\n");
    assert_eq!(p.wait().expect("wait exec"), 0);

    let mut p = c
        .exec_builder(process(&["tty"]))
        .stdio(Stdio::Pty)
        .spawn()
        .expect("exec with a pty");
    let master = p.take_io().pty_master.expect("exec pty master");
    assert_eq!(p.wait().expect("wait exec"), 0);
    let mut out = vec![0u8; 64];
    let n = nix::unistd::read(&master, &mut out).unwrap();
    assert!(
        String::from_utf8_lossy(&out[..n]).starts_with("/dev/pts/"),
        "{:?}",
        String::from_utf8_lossy(&out[..n])
    );
    match c.exec_builder(process(&["true"])).stdin(Stdio::Pty).spawn() {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "stdio"),
        other => panic!("a pty on one stream only: {other:?}"),
    }
    c.kill(Signal::SIGKILL, false).expect("kill");
    assert_eq!(c.wait().expect("wait"), 128 + 9);
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// Another handle (as another process would have) waits for the stop through the init's pidfd;
/// the exit status is there once the creator collected it, and said to be unknown before.
fn wait_from_another_handle() {
    let case = Case::new(&["true"]);
    let id = case.id();
    let mut c = Container::builder(&id)
        .spec(spec_of(&case, &["sh", "-c", "read x; exit 5"]))
        .root(case.root())
        .stdin(Stdio::Piped)
        .create()
        .expect("create");
    c.start().expect("start");
    let mut other = Container::load(&case.root(), &id).expect("load");
    assert_eq!(other.status(), Status::Running);
    drop(c.take_io().stdin);
    other.wait_stopped().expect("wait_stopped");
    assert_eq!(other.status(), Status::Stopped);
    match other.wait() {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("status before the creator collected it: {other:?}"),
    }
    assert_eq!(c.wait().expect("creator's wait"), 5);
    assert_eq!(other.wait().expect("other's wait"), 5);
    c.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// The creator collects its init's status after the container was deleted and its id taken by
/// a new container: the status is the old init's, and must not become the new container's.
fn exit_status_is_not_recorded_for_the_next_container_of_the_id() {
    let case = Case::new(&["true"]);
    let id = case.id();
    let build = |args: &[&str]| {
        Container::builder(&id)
            .spec(spec_of(&case, args))
            .root(case.root())
            .create()
            .expect("create")
    };
    let mut old = build(&["sh", "-c", "exit 7"]);
    old.start().expect("start");
    old.wait_stopped().expect("wait_stopped");
    Container::load(&case.root(), &id)
        .expect("load")
        .delete(false)
        .expect("delete the stopped container from another handle");
    let mut new = build(&["sleep", "1000"]);
    new.start().expect("start");
    assert_eq!(old.wait().expect("the old creator's wait"), 7);
    assert!(
        !case.root().join(&id).join("exit_status").exists(),
        "the old init's status was written into the new container's state"
    );
    new.kill(Signal::SIGKILL, false).expect("kill");
    let mut other = Container::load(&case.root(), &id).expect("load");
    other.wait_stopped().expect("wait_stopped");
    match other.wait() {
        Err(Error::Unsupported { .. }) => {}
        got => panic!("a status before the new creator collected it: {got:?}"),
    }
    assert_eq!(new.wait().expect("the new creator's wait"), 128 + 9);
    assert_eq!(other.wait().expect("other's wait"), 128 + 9);
    new.delete(false).expect("delete");
    case.assert_clean(&id);
}

/// A multi-threaded program whose main never called `hull::exe::ensure_sealed()` (this one, once
/// sealed, skips it) cannot have its helper started: refused, typed, before anything is made.
fn multi_threaded_without_ensure_sealed_is_refused() {
    let case = Case::new(&["true"]);
    let id = case.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    match Container::builder(&id)
        .bundle(case.bundle.path())
        .root(case.root())
        .create()
    {
        Err(e @ Error::Unsupported { .. }) => {
            assert!(e.to_string().contains("ensure_sealed"), "{e}")
        }
        other => panic!("create from a second thread's program: {other:?}"),
    }
    drop(tx);
    let _ = other.join();
    case.assert_clean(&id);
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
        ("builder_from_spec_with_pipes", builder_from_spec_with_pipes),
        ("builder_bases_and_bundles", builder_bases_and_bundles),
        ("stdio_null_pty_and_exec", stdio_null_pty_and_exec),
        ("wait_from_another_handle", wait_from_another_handle),
        (
            "exit_status_is_not_recorded_for_the_next_container_of_the_id",
            exit_status_is_not_recorded_for_the_next_container_of_the_id,
        ),
        (
            "multi_threaded_without_ensure_sealed_is_refused",
            multi_threaded_without_ensure_sealed_is_refused,
        ),
    ];
    let filter = integration_tests::plain_main::name_filter();
    let selected = integration_tests::plain_main::select(cases, filter.as_deref());
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
    let mut done = Vec::new();
    if run_unsealed_case {
        let outcome = std::env::var(UNSEALED_OUTCOME).unwrap_or_default();
        println!("test {unsealed_case} (before sealing) ... {outcome}");
        done.push((unsealed_case, outcome == "ok"));
    }
    integration_tests::plain_main::run(&selected, &done);
}
