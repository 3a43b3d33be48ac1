//! The host's runtime binary cannot be overwritten from inside a container (the CVE-2019-5736
//! class): every attack runs against a copy of the runtime in a temp dir (never the binary the
//! other tests use), is performed for real by `exe_attack` (src/bin) inside the container, and
//! must end with the copy's bytes unchanged and the attacker's write refused.
//!
//! Hull forks its container-side processes from the calling `hull` (no re-exec for the init), so
//! until their execve their `/proc/self/exe` is the runtime's executable: the defence is that
//! `create`, `run` and `exec` run from a sealed copy (a read-only overlayfs, or a sealed memfd:
//! `hull::exe`), and these tests hold whichever the host allows; the memfd path is also forced
//! (`HULL_EXE_SEAL=memfd`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration_tests::runtime::{runtime_binary, Cmd};
use integration_tests::{only_hull, Bundle, Runtime, TempDir};
use nix::sys::stat::Mode;
use serde_json::json;

/// A copy of the runtime under test, and its bytes as they were.
struct Victim {
    _dir: TempDir,
    bin: PathBuf,
    original: Vec<u8>,
}

impl Victim {
    fn new() -> Victim {
        let dir = TempDir::new("victim");
        let src = runtime_binary();
        let bin = dir.join(src.file_name().expect("runtime binary has a name"));
        fs::copy(src, &bin).expect("copy the runtime binary");
        let original = fs::read(&bin).expect("read the copy");
        Victim {
            _dir: dir,
            bin,
            original,
        }
    }

    fn runtime(&self) -> Runtime {
        Runtime::with_binary(&self.bin)
    }

    /// True when the copy is as it was; if not, puts it back (so the cleanup after the attack
    /// can still run it) and returns false.
    fn intact(&self) -> bool {
        let now = fs::read(&self.bin).expect("read the copy again");
        if now == self.original {
            return true;
        }
        fs::write(&self.bin, &self.original).expect("restore the copy");
        false
    }
}

fn assert_intact(intact: bool, report: &str) {
    assert!(
        intact,
        "the host's runtime binary was modified from inside the container; attacker:\n{report}"
    );
}

/// The attack's outcome, as the attacker reported it.
fn assert_refused(report: &str) {
    assert!(
        report.contains("held /proc/"),
        "the attacker never got hold of the target's exe (the test proves nothing):\n{report}"
    );
    assert!(
        !report.contains("write ok"),
        "the attacker wrote to the binary:\n{report}"
    );
    assert!(
        report.contains("failed"),
        "no refused write in the report:\n{report}"
    );
}

/// A bundle with the attacker installed, a writable root (for the go and report files), and a
/// `#!/proc/self/exe --log=<fifo>` script at /bin/evil: run as its interpreter, the runtime
/// fails on the script's path as a verb and blocks writing that to the fifo until the attacker
/// reads it. The fifo's name is unique on the host (a container in the host's pid namespace sees
/// every container's processes). Returns the fifo's path in the container.
fn attack_bundle(b: &mut Bundle) -> String {
    b.install_tool("exe_attack")
        .set("/root/readonly", json!(false));
    let fifo = format!(
        "/evil-{}-{}.fifo",
        std::process::id(),
        integration_tests::tmp::unique()
    );
    nix::unistd::mkfifo(
        &b.rootfs().join(&fifo[1..]),
        Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let script = b.rootfs().join("bin/evil");
    fs::write(&script, format!("#!/proc/self/exe --log={fifo}\n")).expect("write /bin/evil");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod /bin/evil");
    fifo
}

fn add_caps(b: &mut Bundle, caps: &[&str]) {
    for cap in caps {
        for set in ["bounding", "effective", "permitted"] {
            b.push(&format!("/process/capabilities/{set}"), json!(cap));
        }
    }
}

/// The variable that forces the memfd path, for the commands that seal.
fn with_env<'a>(cmd: Cmd<'a>, env: Option<(&str, &str)>) -> Cmd<'a> {
    match env {
        Some((k, v)) => cmd.env(k, v),
        None => cmd,
    }
}

const MEMFD: Option<(&str, &str)> = Some(("HULL_EXE_SEAL", "memfd"));

/// Polls the attacker's report until it holds `line`; panics after a minute (a hung attack).
fn wait_report(b: &Bundle, line: &str) -> String {
    let path = b.rootfs().join("report");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = fs::read_to_string(&path).unwrap_or_default();
        if report.lines().any(|l| l.starts_with(line)) || report.contains("done\n") {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the attacker never reported {line:?}:\n{report}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tells the attacker that no runtime process runs the binary any more.
fn go(b: &Bundle) {
    fs::write(b.rootfs().join("go"), "").expect("write go file");
}

/// `exec` of a `#!/proc/self/exe` script while the container's init (the attacker) holds the
/// interpreted runtime's `/proc/<pid>/exe` and writes to it once `exec` has returned.
fn exec_script_attack(caps: &[&str], env: Option<(&str, &str)>) -> Option<String> {
    if !only_hull(SCRIPT_HOLD) {
        return None;
    }
    let victim = Victim::new();
    let rt = victim.runtime();
    let mut b = Bundle::new();
    let fifo = attack_bundle(&mut b);
    b.args(&["exe_attack", "find", &fifo, "/go", "/report"]);
    add_caps(&mut b, caps);
    let id = rt.new_id();
    with_env(rt.create_cmd(&b, &id), env).output().ok();
    rt.start(&id).ok();
    let out = with_env(rt.cmd(["exec"]).arg(&id).arg("/bin/evil"), env).output();
    let report = wait_report(&b, "drained");
    assert!(
        report.contains("drained"),
        "the runtime never ran as the script's interpreter ({out}):\n{report}"
    );
    go(&b);
    let report = wait_report(&b, "done");
    let intact = victim.intact();
    eprintln!("attacker's report:\n{report}");
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    assert_intact(intact, &report);
    assert_refused(&report);
    Some(report)
}

/// Why the script attacks are hull's only: they hold the interpreted runtime by its usage error
/// blocking on a `--log` fifo, and runc 1.1.5 run as the interpreter in the container was never
/// seen blocked there (the attacker found no such process), so they prove nothing against it.
const SCRIPT_HOLD: &str = "the runtime as interpreter must block on its --log fifo";

#[test]
fn exec_of_proc_self_exe_script_cannot_overwrite_the_runtime() {
    exec_script_attack(&[], None);
}

#[test]
fn exec_of_proc_self_exe_script_cannot_overwrite_the_runtime_with_cap_sys_ptrace() {
    exec_script_attack(&["CAP_SYS_PTRACE"], None);
}

/// The capabilities that could get around a read-only mount: the attacker also clones the
/// file's mount and clears its read-only flag (overlayfs without an upper layer stays read-only
/// in its superblock).
#[test]
fn exec_of_proc_self_exe_script_cannot_overwrite_the_runtime_with_cap_sys_admin() {
    if let Some(report) = exec_script_attack(&["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"], None) {
        assert!(report.contains("cloned mount"), "{report}");
    }
}

/// The created container's init (a fork of `create`, waiting for `start`) held through
/// `/proc/1/exe` by an exec'd process with CAP_SYS_PTRACE, written after `start`.
fn created_init_attack(env: Option<(&str, &str)>) -> String {
    let victim = Victim::new();
    let rt = victim.runtime();
    let mut b = Bundle::sleeping();
    attack_bundle(&mut b);
    let id = rt.new_id();
    with_env(rt.create_cmd(&b, &id), env).output().ok();
    let attacker = ["exe_attack", "pid", "1", "/go", "/report"];
    let exec = rt
        .cmd(["exec", "-d", "--cap", "CAP_SYS_PTRACE"])
        .arg(&id)
        .args(attacker);
    with_env(exec, env).output().ok();
    let report = wait_report(&b, "held");
    assert!(
        report.contains("held"),
        "the attacker could not open the created init's exe:\n{report}"
    );
    rt.start(&id).ok();
    go(&b);
    let report = wait_report(&b, "done");
    let intact = victim.intact();
    eprintln!("attacker's report:\n{report}");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    assert_intact(intact, &report);
    assert_refused(&report);
    report
}

#[test]
fn created_init_exe_cannot_be_overwritten_after_start() {
    created_init_attack(None);
}

/// `run` of a container whose process is the `#!/proc/self/exe` script: the init itself becomes
/// the runtime's binary. The container shares the host's pid namespace, so the attacker (exec'd
/// into it) outlives the init and writes once it is gone.
#[test]
fn run_of_proc_self_exe_script_cannot_overwrite_the_runtime() {
    if !only_hull(SCRIPT_HOLD) {
        return;
    }
    let victim = Victim::new();
    let rt = victim.runtime();
    let mut b = Bundle::new();
    let fifo = attack_bundle(&mut b);
    b.without_namespace("pid").args(&["/bin/evil"]);
    let id = rt.new_id();
    rt.cmd(["run", "-d", "--bundle"])
        .arg(b.path())
        .last(&id)
        .output()
        .ok();
    rt.exec([
        "exec",
        "-d",
        &id,
        "exe_attack",
        "find",
        &fifo,
        "/go",
        "/report",
    ])
    .ok();
    let report = wait_report(&b, "drained");
    assert!(
        report.contains("drained"),
        "the runtime never ran as the init's interpreter:\n{report}"
    );
    rt.wait_status(&id, "stopped");
    go(&b);
    let report = wait_report(&b, "done");
    let intact = victim.intact();
    eprintln!("attacker's report:\n{report}");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
    assert_intact(intact, &report);
    assert_refused(&report);
}

#[test]
fn memfd_fallback_defeats_the_exec_script_attack() {
    if !only_hull("HULL_EXE_SEAL is hull's") {
        return;
    }
    let report = exec_script_attack(&["CAP_SYS_PTRACE"], MEMFD).unwrap_or_default();
    assert!(
        report.contains("memfd:hull"),
        "the interpreted runtime did not run from the memfd copy:\n{report}"
    );
}

#[test]
fn memfd_fallback_defeats_the_created_init_attack() {
    if !only_hull("HULL_EXE_SEAL is hull's") {
        return;
    }
    let report = created_init_attack(MEMFD);
    assert!(
        report.contains("memfd:hull"),
        "the init did not run from the memfd copy:\n{report}"
    );
}

/// The re-exec's marker variable does not stand for the seal: set by hand on an unsealed hull, it
/// makes `create` refuse (the re-exec happens at most once) instead of running unsealed.
#[test]
fn a_spoofed_marker_does_not_switch_the_defence_off() {
    if !only_hull("the marker is hull's") {
        return;
    }
    let victim = Victim::new();
    let rt = victim.runtime();
    let b = Bundle::new();
    let id = rt.new_id();
    let out = rt
        .create_cmd(&b, &id)
        .env("_HULL_EXE_SEALED", "memfd")
        .output();
    out.failed().stderr_has(&["not sealed"]);
    rt.assert_no_leaks(&b, &[&id]);
    // A marker naming the overlay only skips the overlay.
    rt.run_cmd(&b, |c| c.env("_HULL_EXE_SEALED", "overlay"))
        .ok();
}

/// Verbs that start no container-side process do not pay for the re-exec.
#[test]
fn state_and_kill_do_not_reexecute() {
    if !only_hull("the re-exec is hull's") {
        return;
    }
    let rt = Runtime::new();
    let out = rt
        .cmd(["state", "nonexistent"])
        .env("_HULL_EXE_SEALED", "memfd")
        .output();
    // A re-exec would have refused with "not sealed"; `state` goes on to its own error.
    out.failed().stderr_has(&["does not exist"]);
}

/// Where the overlay cannot be made (here: fsopen refused for want of CAP_SYS_ADMIN, as for a
/// rootless runtime), hull falls back to the sealed memfd copy instead of failing; the memfd
/// tests above show that copy defeats the attacks.
#[test]
fn refused_fsopen_falls_back_to_the_memfd_copy() {
    if !only_hull("the sealing is hull's") {
        return;
    }
    let rt = Runtime::new();
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin"])
        .arg(rt.binary())
        .args(["--debug", "--root"])
        .arg(rt.root())
        .args(["exec", "no-such-container", "true"])
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("running from a sealed copy (Memfd)"),
        "no memfd fallback: {stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
}

/// The helper of a multi-threaded embedder (`hull::container`'s helper, started with the marker
/// `_HULL_HELPER`) serves only the program that started it. The attack: a process that controls
/// a privileged hull program's environment and stdin sets the marker and hands it a socket of its
/// own with a request. Here `sh` starts `hull exec` (so the requester is not hull's parent); the
/// request is an exec into an id that does not exist, which a served request answers with
/// ContainerNotFound (as `hull` did before the check, exiting 0).
#[test]
fn a_helper_request_from_a_process_other_than_the_parent_is_refused() {
    use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    if !only_hull("hull's helper for multi-threaded embedders") {
        return;
    }
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let request = json!({"Exec": {
        "root": "/nonexistent-hull-state-root",
        "id": "victim",
        "process": serde_json::to_value(hull::oci_spec::runtime::Process::default()).expect("process"),
        "opts": serde_json::to_value(hull::ExecOptions::default()).expect("options"),
        "stdio": [false, false, false],
        "pty": false,
    }});
    let bytes = serde_json::to_vec(&request).expect("request");
    send(ours.as_raw_fd(), &bytes, MsgFlags::empty()).expect("send the request");
    let out = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" exec victim true; echo rc=$?")
        .arg(runtime_binary())
        .env("_HULL_HELPER", "1")
        .stdin(Stdio::from(theirs))
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut reply = vec![0u8; 64 * 1024];
    let answered = match recv(ours.as_raw_fd(), &mut reply, MsgFlags::MSG_DONTWAIT) {
        Ok(n) => String::from_utf8_lossy(&reply[..n]).into_owned(),
        Err(_) => String::new(),
    };
    assert!(
        !answered.contains("ContainerNotFound") && answered.is_empty(),
        "hull served a helper request from a process that is not its parent: {answered}"
    );
    assert!(
        stdout.contains("rc=") && !stdout.contains("rc=0"),
        "hull as a helper for a stranger should fail: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
