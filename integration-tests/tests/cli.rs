//! The command line as real callers use it: the exact argv shapes containerd's runc shim and
//! conmon pass (../shared/compat/callers.txt), the log file they read errors from, `spec` and
//! `--version`.

use std::path::Path;

use integration_tests::bundle::RUNC_SPEC;
use integration_tests::{Bundle, Output, Runtime};
use serde_json::{json, Value};

const RUNC_SPEC_ROOTLESS: &str = include_str!("../src/runc-spec-rootless.json");

/// The last line of a `--log-format json` log: exactly runc's three fields.
fn last_json_line(text: &str) -> serde_json::Map<String, Value> {
    let line = text.lines().last().unwrap_or_else(|| panic!("empty log"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let obj = v.as_object().expect("log line is an object").clone();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["level", "msg", "time"], "{line}");
    let time = obj["time"].as_str().unwrap();
    assert!(time.len() >= 20 && time.as_bytes()[10] == b'T', "{time}");
    obj
}

fn spec_in(rt: &Runtime, dir: &Path, extra: &[&str]) -> Value {
    std::fs::create_dir(dir).unwrap();
    rt.cmd(["spec", "--bundle"])
        .arg(dir)
        .args(extra)
        .output()
        .ok();
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn containerd_shim_argv() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    let log = rt.scratch().join("log.json");
    let pid_file = rt.scratch().join("init.pid");
    let with_log = |args: &[&str]| -> Output { rt.json_log_cmd(&log).args(args).output() };
    with_log(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ])
    .ok();
    assert!(pid_file.exists());
    with_log(&["start", &id]).ok();
    assert_eq!(rt.status(&id), "running");
    with_log(&["kill", &id, "15"]).ok();
    with_log(&["kill", "--all", &id, "9"]).ok();
    rt.wait_status(&id, "stopped");
    with_log(&["delete", &id]).ok();
    with_log(&["delete", "--force", &id]).ok();
    rt.assert_no_leaks(&b, &[&id]);

    // The shim shows users the last error line of the log.
    let out = with_log(&["start", &id]);
    out.failed();
    let entry = last_json_line(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"].as_str().unwrap().contains("does not exist"),
        "{entry:?}"
    );
    // With a log file, stderr still gets the message in plain text.
    out.stderr_has(&["does not exist"]);
}

#[test]
fn conmon_argv() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo via-preserved-fd >&3; sleep 1000");
    let id = rt.new_id();
    let log = rt.scratch().join("oci-log");
    let pid_file = rt.scratch().join("pidfile");
    let (r, w) = nix::unistd::pipe().unwrap();
    rt.cmd(["--log-format=json", "--log"])
        .arg(&log)
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("--pid-file")
        .arg(&pid_file)
        .args(["--preserve-fds", "1", "--no-pivot"])
        .arg(&id)
        .pass_fd(w)
        .output()
        .ok();
    rt.start(&id).ok();
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&r, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"via-preserved-fd\n");
    rt.kill(&id, "9").ok();
    rt.wait_status(&id, "stopped");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn log_format_json_without_log_file_goes_to_stderr() {
    let rt = Runtime::new();
    for form in [&["--log-format", "json"][..], &["--log-format=json"][..]] {
        let out = rt.cmd(form).args(["start", "no-such-container"]).output();
        out.failed();
        let entry = last_json_line(&out.stderr);
        assert_eq!(entry["level"], "error");
        assert!(entry["msg"].as_str().unwrap().contains("does not exist"));
    }
}

#[test]
fn version() {
    let rt = Runtime::new();
    let out = rt.exec(["--version"]);
    let text = out.ok().stdout.as_str();
    assert!(text.contains("version"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("spec: 1.")),
        "names the runtime-spec version as runc does: {text}"
    );
}

#[test]
fn spec_is_runcs_default() {
    let rt = Runtime::new();
    let got = spec_in(&rt, &rt.scratch().join("spec"), &[]);
    let want: Value = serde_json::from_str(RUNC_SPEC).unwrap();
    assert_eq!(got, want);
}

#[test]
fn spec_rootless_is_runcs_rootless_default() {
    let rt = Runtime::new();
    let got = spec_in(&rt, &rt.scratch().join("spec"), &["--rootless"]);
    let mut want: Value = serde_json::from_str(RUNC_SPEC_ROOTLESS).unwrap();
    // The id maps name the caller's own uid and gid.
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    want["linux"]["uidMappings"][0]["hostID"] = uid.into();
    want["linux"]["gidMappings"][0]["hostID"] = gid.into();
    assert_eq!(got, want);
}

#[test]
fn spec_refuses_to_overwrite() {
    let rt = Runtime::new();
    let dir = rt.scratch().join("spec");
    spec_in(&rt, &dir, &[]);
    rt.cmd(["spec", "--bundle"])
        .arg(&dir)
        .output()
        .failed()
        .stderr_has(&["config.json", "exists"]);
}

/// `features` (runtime-spec features.md) as JSON an engine can probe.
#[test]
fn features_lists_what_hull_implements() {
    if !integration_tests::only_hull("runc 1.1's features output differs (and is experimental)") {
        return;
    }
    let rt = integration_tests::Runtime::new();
    let out = rt.cmd(["features"]).output();
    let f: serde_json::Value = serde_json::from_str(out.ok().out()).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    let hooks = f["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 6, "{f}");
    let seccomp = &f["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    assert!(seccomp["archs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "SCMP_ARCH_X86_64"));
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    // Nothing is left null ("unknown") that hull knows: its own metadata, no config annotation
    // that changes what it does, idmapped mounts refused.
    assert_eq!(
        f["annotations"]["dev.hull.checkpoint.enabled"], "false",
        "{f}"
    );
    assert_eq!(f["potentiallyUnsafeConfigAnnotations"], json!([]), "{f}");
    assert_eq!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"], false,
        "{f}"
    );

    // What it says holds: a config of ociVersionMax (1.3: memoryPolicy is 1.3's) runs, and an
    // idmapped mount is refused by name, not silently made without its mapping.
    let max = f["ociVersionMax"].as_str().unwrap();
    assert_eq!(max, "1.3.0");
    let mut b = Bundle::new();
    b.set("/ociVersion", json!(max))
        .set("/linux/memoryPolicy", json!({"mode": "MPOL_LOCAL"}))
        .args(&["true"]);
    let id = rt.new_id();
    rt.cmd(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .output()
        .ok();
    b.mount(json!({
        "destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["bind"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
    }));
    rt.create_fails(&b)
        .stderr_has(&["/mnt", "idmapped mount", "not supported"]);
    rt.assert_no_leaks(&b, &[&id]);
}

/// What does not fail an operation still reaches the log, as runc's warnings do: a kernel memory
/// limit (the kernel dropped it) is a `warning` line, and debug lines appear only with --debug.
#[test]
fn warnings_and_debug_lines_reach_the_log() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/linux/resources/memory",
        serde_json::json!({"limit": 64 << 20, "kernel": 32 << 20}),
    )
    .args(&["true"]);
    for debug in [false, true] {
        let id = rt.new_id();
        let log = rt.scratch().join(format!("log-{id}.json"));
        let mut cmd = rt.json_log_cmd(&log);
        if debug {
            cmd = cmd.arg("--debug");
        }
        cmd.arg("run")
            .arg("--bundle")
            .arg(b.path())
            .arg(&id)
            .output()
            .ok();
        let entries = integration_tests::runtime::log_entries(&log);
        let warning = entries
            .iter()
            .find(|e| e["level"] == "warning")
            .unwrap_or_else(|| panic!("no warning line in {entries:?}"));
        assert!(
            warning["msg"].as_str().unwrap().contains("Kernel memory"),
            "{warning}"
        );
        let has_debug = entries.iter().any(|e| e["level"] == "debug");
        assert_eq!(
            has_debug, debug,
            "debug lines with --debug={debug}: {entries:?}"
        );
        rt.assert_no_leaks(&b, &[&id]);
    }
}

/// The functions runtime-cli/hot-symbols.txt lists are laid out together at the start of the
/// binary's code (runtime-cli/build.rs): the kernel maps code 64 KiB around each page a process
/// touches, so a spread-out hot path makes every command map most of the binary. This build's
/// profile is not the release one the list was made from, so only the symbols both share are
/// checked (the standard library's and the C library's, at least): all but a few of them must
/// sit in a span at the start of the code not much larger than their own size, where without
/// the order they spread over all of it.
#[test]
fn hot_functions_come_first_in_the_binary() {
    let list = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime-cli/hot-symbols.txt"
    );
    let listed: Vec<String> = std::fs::read_to_string(list)
        .unwrap_or_else(|e| panic!("{list}: {e}"))
        .lines()
        .map(str::to_string)
        .collect();
    let bin = integration_tests::runtime::hull_binary();
    let nm = std::process::Command::new("nm")
        .args(["--defined-only", "-S"])
        .arg(bin)
        .output()
        .expect("run nm");
    assert!(nm.status.success(), "nm {}", bin.display());
    // name -> (address, size) of every function.
    let mut functions = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [addr, size, kind, name] = f[..] {
            if matches!(kind, "t" | "T" | "W" | "i") {
                let addr = u64::from_str_radix(addr, 16).unwrap();
                let size = u64::from_str_radix(size, 16).unwrap();
                functions.insert(name.to_string(), (addr, size));
            }
        }
    }
    let text_start = functions.values().map(|f| f.0).min().unwrap();
    let text_end = functions.values().map(|f| f.0 + f.1).max().unwrap();
    let found: Vec<(u64, u64)> = listed
        .iter()
        .filter_map(|n| functions.get(n))
        .copied()
        .collect();
    assert!(
        found.len() >= 300,
        "only {} of the {} listed functions are in {}",
        found.len(),
        listed.len(),
        bin.display()
    );
    let size: u64 = found.iter().map(|f| f.1).sum();
    let span = text_start + 2 * size + (64 << 10);
    let outside = found.iter().filter(|f| f.0 >= span).count();
    assert!(
        outside * 20 <= found.len(),
        "{outside} of the {} listed functions found lie beyond the first {} KiB of the code \
         ({} KiB in all): the order was not applied",
        found.len(),
        (span - text_start) >> 10,
        (text_end - text_start) >> 10
    );
}
