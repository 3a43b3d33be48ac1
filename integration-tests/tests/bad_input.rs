//! Bad input: each case fails with a message naming what is wrong, and leaves no mount, process,
//! cgroup or state directory behind (every `create_fails` runs the leak check).
//!
//! The key words checked are those runc 1.1.5 and hull share; where hull is deliberately stricter
//! or more precise than runc, the extra check is guarded by `is_hull()` / `only_hull()`.

use integration_tests::runtime::{is_hull, log_messages};
use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

#[test]
fn missing_bundle() {
    let rt = Runtime::new();
    let b = Bundle::new();
    let missing = rt.scratch().join("no-such-bundle");
    let id = rt.new_id();
    let out = rt
        .cmd(["create", "--bundle"])
        .arg(&missing)
        .arg(&id)
        .output();
    out.failed()
        .stderr_has(&[missing.to_str().unwrap(), "no such file or directory"]);
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn missing_config_json() {
    let rt = Runtime::new();
    let b = Bundle::new();
    std::fs::remove_file(b.config_path()).unwrap();
    rt.create_fails(&b).stderr_has(&["config.json"]);
}

#[test]
fn malformed_config_json() {
    let rt = Runtime::new();
    let b = Bundle::new();
    b.write_raw_config("{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\n");
    let out = rt.create_fails(&b);
    // runc says only "unexpected EOF"; hull names the file and the place.
    if is_hull() {
        out.stderr_has(&["config.json", "line 4", "column"]);
    }
}

#[test]
fn config_field_of_the_wrong_type() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/args", json!("sh"));
    let out = rt.create_fails(&b);
    if is_hull() {
        out.stderr_has(&["config.json", "line"]);
    }
}

#[test]
fn unsupported_oci_version() {
    if !only_hull("runc 1.1.5 accepts any ociVersion") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/ociVersion", json!("2.0.0"));
    rt.create_fails(&b).stderr_has(&["ociVersion", "2.0.0"]);
}

#[test]
fn nonexistent_root_path() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/root/path", json!("no-such-rootfs"));
    rt.create_fails(&b).stderr_has(&[
        "invalid rootfs",
        "no-such-rootfs",
        "no such file or directory",
    ]);
}

#[test]
fn missing_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.remove("/root");
    rt.create_fails(&b).stderr_has(&["root must be specified"]);
}

#[test]
fn empty_args() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&[]);
    rt.create_fails(&b).stderr_has(&["args must not be empty"]);
}

#[test]
fn relative_cwd() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/cwd", json!("tmp"));
    rt.create_fails(&b)
        .stderr_has(&["cwd", "must be an absolute path"]);
}

#[test]
fn invalid_ids() {
    let rt = Runtime::new();
    let b = Bundle::new();
    for id in ["", ".", "..", "a/b", "../escape", "a b", "x\ny"] {
        let out = rt.create(&b, id);
        out.failed();
        // runc: "container id cannot be empty" / "invalid container ID format".
        let msg = if id.is_empty() {
            "empty"
        } else {
            "invalid container id"
        };
        out.stderr_has(&["container id", msg]);
        // Nothing was made under the root, and nothing next to it.
        assert_eq!(std::fs::read_dir(rt.root()).unwrap().count(), 0, "{id:?}");
        rt.assert_no_leaks(&b, &[]);
    }
    assert!(!rt.scratch().join("escape").exists());
}

#[test]
fn duplicate_id() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.create(&b, &id).failed().stderr_has(&["exists"]);
    assert_eq!(rt.status(&id), "created");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn unknown_namespace_type() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/linux/namespaces", json!({"type": "foo"}));
    rt.create_fails(&b).stderr_has(&["foo"]);
}

#[test]
fn duplicate_namespace() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/linux/namespaces", json!({"type": "pid"}));
    rt.create_fails(&b).stderr_has(&["duplicate", "pid"]);
}

#[test]
fn namespace_path_that_is_not_a_namespace() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let file = rt.scratch().join("not-a-namespace");
    std::fs::write(&file, "plain file").unwrap();
    b.join_namespace("network", &file);
    let out = rt.create_fails(&b);
    // runc: "failed to setns into net namespace: Invalid argument"; hull checks before it forks
    // and names the file.
    out.stderr_has(&["net"]);
    if is_hull() {
        out.stderr_has(&[file.to_str().unwrap()]);
    }
}

#[test]
fn namespace_path_of_the_wrong_type() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.join_namespace("network", std::path::Path::new("/proc/self/ns/uts"));
    let out = rt.create_fails(&b);
    out.stderr_has(&["net"]);
}

#[test]
fn namespace_path_that_does_not_exist() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let missing = rt.scratch().join("no-such-ns");
    b.join_namespace("network", &missing);
    rt.create_fails(&b)
        .stderr_has(&[missing.to_str().unwrap(), "no such file or directory"]);
}

#[test]
fn unknown_capability() {
    if !only_hull("runc 1.1.5 ignores unknown capabilities with a warning") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/process/capabilities/bounding", json!("CAP_FOO"));
    rt.create_fails(&b).stderr_has(&["CAP_FOO"]);
}

#[test]
fn unknown_rlimit() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push(
        "/process/rlimits",
        json!({"type": "RLIMIT_FOO", "hard": 1, "soft": 1}),
    );
    rt.create_fails(&b).stderr_has(&["RLIMIT_FOO"]);
}

#[test]
fn executable_not_found() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["no-such-program"]);
    rt.create_fails(&b)
        .stderr_has(&["no-such-program", "executable file not found in $PATH"]);
    // Absolute paths are not searched, and say so as runc does.
    b.args(&["/bin/no-such-program"]);
    rt.create_fails(&b)
        .stderr_has(&["/bin/no-such-program", "no such file or directory"]);
}

#[test]
fn exec_permission_denied() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["/etc/passwd"]);
    rt.create_fails(&b)
        .stderr_has(&["/etc/passwd", "permission denied"]);
    b.args(&["/etc"]);
    rt.create_fails(&b)
        .stderr_has(&["/etc", "permission denied"]);
}

#[test]
fn terminal_without_console_socket() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/terminal", json!(true));
    rt.create_fails(&b).stderr_has(&["console"]);
}

#[test]
fn console_socket_that_does_not_exist() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/process/terminal", json!(true));
    let sock = rt.scratch().join("no-such-socket");
    let id = rt.new_id();
    rt.create_cmd(&b, &id)
        .arg("--console-socket")
        .arg(&sock)
        .output()
        .failed()
        .stderr_has(&[sock.to_str().unwrap()]);
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn start_of_unknown_container() {
    let rt = Runtime::new();
    rt.start("no-such-container")
        .failed()
        .stderr_has(&["does not exist"]);
}

#[test]
fn start_of_running_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.start(&id)
        .failed()
        .stderr_has(&["cannot start an already running container"]);
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn kill_with_unknown_signal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    for sig in ["FOO", "SIGFOO", "999", "-1"] {
        rt.kill(&id, sig).failed().stderr_has(&["signal"]);
    }
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn kill_of_unknown_container() {
    let rt = Runtime::new();
    rt.kill("no-such-container", "KILL")
        .failed()
        .stderr_has(&["does not exist"]);
}

#[test]
fn delete_of_running_container_without_force() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.delete(&id).failed().stderr_has(&[
        "cannot delete container",
        "that is not stopped",
        "running",
    ]);
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// A mount destination that is a symlink leading out of the rootfs must never touch the host:
/// the runtime either refuses it (naming the destination) or resolves it inside the rootfs, as
/// runc's securejoin does.
#[test]
fn mount_destination_symlink_pointing_outside_the_rootfs() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let outside = rt.scratch().join("outside");
    let source = rt.scratch().join("source");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("marker"), "from-source").unwrap();
    // Enough `..` to climb out of any rootfs depth, then the host path of `outside`.
    let target = format!(
        "{}{}",
        "../".repeat(32),
        outside.to_str().unwrap().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&target, b.rootfs().join("escape")).unwrap();
    let abs_target = outside.to_str().unwrap().to_string();
    std::os::unix::fs::symlink(&abs_target, b.rootfs().join("escape-abs")).unwrap();

    for dest in ["/escape/sub", "/escape-abs/sub"] {
        b.set(
            "/mounts",
            json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": dest, "type": "bind", "source": source.to_str().unwrap(), "options": ["rbind", "ro"]},
            ]),
        )
        .args(&["cat", &format!("{dest}/marker")]);
        let out = rt.run(&b);
        if out.success() {
            // Confined: the mount landed inside the rootfs, where the container sees it.
            assert_eq!(out.out(), "from-source", "{out}");
        } else {
            out.stderr_has(&[dest]);
        }
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{dest}: the runtime created something on the host through the symlink"
        );
    }
}

/// True when this host's kernel runs `module` (the security-module tests below are about a host
/// that lacks it, as this machine kind does).
fn lsm_enabled(module: &str) -> bool {
    let on = match module {
        "AppArmor" => std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with(b"Y")),
        _ => std::path::Path::new("/sys/fs/selinux/enforce").exists(),
    };
    if on {
        eprintln!("skipped: {module} is enabled on this host, so the profile would apply");
    }
    on
}

/// A container that asked to be confined must not run unconfined: runc and crun fail too (runc in
/// its init, at the write to /proc/self/attr/exec; hull before anything is made). `words`: what
/// runc's and hull's messages share; hull's also names the field and its value.
fn refused_without(module: &str, field: &str, value: &str, words: &str) {
    if lsm_enabled(module) {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(&format!("/process/{field}"), json!(value));
    let out = rt.create_fails(&b);
    out.stderr_has(&[words]);
    if is_hull() {
        out.stderr_has(&[&format!("process.{field}"), value, "not enabled"]);
    }
}

#[test]
fn apparmor_profile_without_apparmor() {
    refused_without(
        "AppArmor",
        "apparmorProfile",
        "hull-test-profile",
        "apparmor",
    );
}

#[test]
fn selinux_label_without_selinux() {
    refused_without(
        "SELinux",
        "selinuxLabel",
        "system_u:system_r:container_t:s0",
        "selinux",
    );
}

/// The same rule for a process added by exec: the running container stays as it was.
#[test]
fn exec_with_an_apparmor_profile_without_apparmor() {
    if lsm_enabled("AppArmor") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = rt.started(&b);
    let process = json!({
        "args": ["sh", "-c", "echo confined"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "apparmorProfile": "hull-test-profile"
    });
    let path = rt.scratch().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let by_file = rt.cmd(["exec", "--process"]).arg(&path).arg(&id).output();
    let by_flag = rt
        .cmd(["exec", "--apparmor", "hull-test-profile"])
        .arg(&id)
        .args(["sh", "-c", "echo confined"])
        .output();
    for out in [by_file, by_flag] {
        out.failed().stderr_has(&["apparmor"]);
        assert!(!out.stdout.contains("confined"), "{out}");
    }
    assert_eq!(rt.status(&id), "running");
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// runc ignores linux.mountLabel without SELinux; hull runs the container too, but says so.
#[test]
fn mount_label_without_selinux_is_a_warning() {
    if lsm_enabled("SELinux") || !only_hull("runc 1.1.5 ignores mountLabel without a word") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/linux/mountLabel",
        json!("system_u:object_r:container_file_t:s0"),
    )
    .args(&["echo", "ran"]);
    let id = rt.new_id();
    let (out, log) = rt.run_json_logged(&b, &id);
    assert_eq!(out.ok().stdout.trim(), "ran");
    let warnings = log_messages(&log, "warning");
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("mountLabel") && m.contains("container_file_t")),
        "{warnings:?}"
    );
    rt.assert_no_leaks(&b, &[&id]);
}

/// setresuid(2) reads 4294967295 as "leave unchanged": such an id would keep the process root.
/// runc refuses ids above 2147483647; so must we, for each id field, naming it.
#[test]
fn user_ids_above_int_max_are_refused() {
    let rt = Runtime::new();
    for (pointer, value, field) in [
        (
            "/process/user/uid",
            json!(4294967295u32),
            "process.user.uid",
        ),
        (
            "/process/user/gid",
            json!(4294967295u32),
            "process.user.gid",
        ),
        (
            "/process/user/uid",
            json!(2147483648u32),
            "process.user.uid",
        ),
        (
            "/process/user/additionalGids",
            json!([10, 4294967295u32]),
            "process.user.additionalGids[1]",
        ),
    ] {
        let mut b = Bundle::new();
        b.set(pointer, value).sh("id -u; id -G");
        let out = rt.create_fails(&b);
        if is_hull() {
            out.stderr_has(&[field, "out of range"]);
        }
    }
}

/// The same ids through `exec --user`, into a running container: no process may start.
#[test]
fn exec_user_ids_above_int_max_are_refused() {
    let rt = Runtime::new();
    let b = Bundle::sleeping();
    let id = rt.started(&b);
    for user in ["4294967295", "0:4294967295", "4294967295:4294967295"] {
        let out = rt.exec([
            "exec",
            "--user",
            user,
            id.as_str(),
            "sh",
            "-c",
            "id -u; id -g",
        ]);
        // Before the fix the process ran, as root.
        assert!(!out.success(), "exec --user {user} ran: {out}");
        if is_hull() {
            out.stderr_has(&["process.user", "out of range"]);
        }
    }
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

/// An option the filesystem refuses: the error names the mount's destination and the option,
/// not only "invalid argument".
#[test]
fn mount_option_the_kernel_rejects_is_named() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(json!({
        "destination": "/scratch",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "size=lots"]
    }));
    let out = rt.create_fails(&b);
    out.stderr_has(&["invalid argument"]);
    if is_hull() {
        out.stderr_has(&["/scratch", "size=lots"]);
    }
}

/// A value of the wrong type deep in the config names its field (runc names none).
#[test]
fn config_type_error_names_the_field() {
    if !only_hull("runc 1.1.5 names no field in a JSON type error") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": "many"}]),
    );
    rt.create_fails(&b)
        .stderr_has(&["config.json", "process.rlimits[0].hard", "invalid type"]);
}

/// config-linux.md lets a container share the runtime's mount namespace; hull refuses (README,
/// "Deviations"): runc and crun then make the rootfs, /proc, /dev, /sys and cgroup mounts in the
/// host's namespace and leave them there after delete, and chroot instead of pivoting.
#[test]
fn no_mount_namespace_is_refused_with_the_reason() {
    if !only_hull("runc 1.1.5 and crun run it, leaving their mounts in the host's namespace") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.without_namespace("mount")
        .remove("/linux/maskedPaths")
        .remove("/linux/readonlyPaths");
    rt.create_fails(&b).stderr_has(&[
        "linux.namespaces",
        "mount namespace is required",
        "outlive the container",
    ]);
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = b.rootfs();
    assert!(
        !mounts_after.contains(rootfs.to_str().unwrap()),
        "nothing mounted on the rootfs in the host's namespace:\n{mounts_after}"
    );
}
