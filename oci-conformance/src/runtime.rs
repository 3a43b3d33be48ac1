//! runtime.md: state, lifecycle, operations and their errors.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{cgroup_dirs, start_time, Bundle, Ctx};
use crate::runner::state_problems;

const F: &str = "runtime.md";

/// Waits for a file the container writes into its (host-visible) rootfs.
pub fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    path.exists()
}

/// A container whose process marks that it ran, traps SIGUSR1 into a file, and then idles.
pub fn idle_bundle(ctx: &mut Ctx, case: &str) -> Bundle {
    let mut b = ctx.bundle(case);
    b.config["root"]["readonly"] = json!(false);
    b.sh("trap 'touch /got-usr1' USR1; touch /started; while true; do sleep 0.05; done");
    b
}

pub fn cases(ctx: &mut Ctx) {
    if ctx.wants("lifecycle") {
        lifecycle(ctx);
    }
    if ctx.wants("errors-unknown-id") {
        unknown_ids(ctx);
    }
    if ctx.wants("errors-missing-id") {
        missing_ids(ctx);
    }
    if ctx.wants("create-duplicate-id") {
        duplicate_id(ctx);
    }
    if ctx.wants("create-invalid-id") {
        invalid_id(ctx);
    }
    if ctx.wants("create-missing-bundle") {
        missing_bundle(ctx);
    }
    if ctx.wants("operations-wrong-status") {
        wrong_status(ctx);
    }
    if ctx.wants("kill-created") {
        kill_created(ctx);
    }
    if ctx.wants("start-without-process") {
        start_without_process(ctx);
    }
    if ctx.wants("config-changed-after-create") {
        config_changed_after_create(ctx);
    }
    if ctx.wants("create-error-leaves-nothing") {
        create_error_leaves_nothing(ctx);
    }
}

/// create → state → start → state → kill → state → delete, with every state checked.
fn lifecycle(ctx: &mut Ctx) {
    let case = "lifecycle";
    let b = idle_bundle(ctx, case);
    let out = ctx.create(&b);
    ctx.check(
        F,
        "create: This operation MUST create a new container",
        case,
        out.success(),
        out.describe(),
    );
    if !out.success() {
        return ctx.discard(&b.id);
    }
    let state = ctx.rt.state(&b.id);
    let problems = state.as_ref().map(|s| state_problems(s, &b.id, &b.dir));
    let clause = "query state: This operation MUST return the state of a container as specified in the State section (after create)";
    ctx.check(
        F,
        clause,
        case,
        problems.as_ref().is_ok_and(|p| p.is_empty()),
        format!("{problems:?} in {state:?}"),
    );
    let status = state
        .as_ref()
        .ok()
        .and_then(|s| s["status"].as_str().map(str::to_owned));
    let pid = state
        .as_ref()
        .ok()
        .and_then(|s| s["pid"].as_i64())
        .unwrap_or(0) as i32;
    let clause = "status created: the runtime has finished the create operation and the container process has neither exited nor executed the user-specified program";
    ctx.check(
        F,
        clause,
        case,
        status.as_deref() == Some("created"),
        format!("status {status:?}"),
    );
    let clause = "pid (REQUIRED when status is created or running on Linux) is the ID of the container process";
    ctx.check(
        F,
        clause,
        case,
        pid > 0 && start_time(pid).is_some(),
        format!("pid {pid}, alive: {}", start_time(pid).is_some()),
    );
    let cgroups = cgroup_dirs(pid);

    std::thread::sleep(Duration::from_millis(200));
    let ran = b.rootfs.join("started").exists();
    let clause = "create: process.args MUST NOT be applied until triggered by the start operation";
    ctx.check(
        F,
        clause,
        case,
        !ran,
        "the user-specified program ran before start",
    );

    let out = ctx.rt.start(&b.id);
    let ran = out.success() && wait_for(&b.rootfs.join("started"), Duration::from_secs(10));
    let clause =
        "start: This operation MUST run the user-specified program as specified by process";
    ctx.check(
        F,
        clause,
        case,
        ran,
        format!("start {}; program ran: {ran}", out.describe()),
    );

    let state = ctx.rt.state(&b.id);
    let problems = state.as_ref().map(|s| state_problems(s, &b.id, &b.dir));
    let clause = "query state: This operation MUST return the state of a container as specified in the State section (after start)";
    ctx.check(
        F,
        clause,
        case,
        problems.as_ref().is_ok_and(|p| p.is_empty()),
        format!("{problems:?} in {state:?}"),
    );
    let running = state
        .as_ref()
        .ok()
        .and_then(|s| Some((s["status"].as_str()?.to_owned(), s["pid"].as_i64()?)));
    let clause = "status running: the container process has executed the user-specified program but has not exited (same pid as when created)";
    ctx.check(
        F,
        clause,
        case,
        running == Some(("running".into(), i64::from(pid))),
        format!("(status, pid) {running:?}, created pid {pid}"),
    );

    let out = ctx.rt.kill(&b.id, "USR1");
    let got = out.success() && wait_for(&b.rootfs.join("got-usr1"), Duration::from_secs(10));
    let clause = "kill: This operation MUST send the specified signal to the container process";
    ctx.check(
        F,
        clause,
        case,
        got,
        format!("kill USR1 {}; trap ran: {got}", out.describe()),
    );

    let out = ctx.rt.kill(&b.id, "KILL");
    let status = ctx
        .rt
        .wait_status(&b.id, "stopped", Duration::from_secs(10));
    let clause = "status stopped: the container process has exited";
    ctx.check(
        F,
        clause,
        case,
        out.success() && status.as_deref() == Some("stopped"),
        format!("kill {}; status {status:?}", out.describe()),
    );
    let state = ctx.rt.state(&b.id);
    let problems = state.as_ref().map(|s| state_problems(s, &b.id, &b.dir));
    let clause = "query state: This operation MUST return the state of a container as specified in the State section (after the process exited)";
    ctx.check(
        F,
        clause,
        case,
        problems.as_ref().is_ok_and(|p| p.is_empty()),
        format!("{problems:?} in {state:?}"),
    );

    let out = ctx.rt.delete(&b.id);
    let gone = ctx.rt.state(&b.id).is_err();
    ctx.check(
        F,
        "delete: deleting a stopped container succeeds and the container no longer exists",
        case,
        out.success() && gone,
        format!("delete {}; state still answers: {}", out.describe(), !gone),
    );
    let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    let clause = "delete: Deleting a container MUST delete the resources that were created during the create step";
    ctx.check(
        F,
        clause,
        case,
        left.is_empty(),
        format!("cgroups left: {left:?}"),
    );
    ctx.discard(&b.id);
}

fn unknown_ids(ctx: &mut Ctx) {
    let case = "errors-unknown-id";
    let id = format!("oci-conf-{}-no-such-container", std::process::id());
    for (op, clause) in [
        ("state", "query state: Attempting to query a container that does not exist MUST generate an error"),
        ("start", "start: Attempting to start a container that is not created MUST generate an error (unknown id)"),
        ("kill", "kill: Attempting to send a signal to a container that is neither created nor running MUST generate an error (unknown id)"),
        ("delete", "delete: Attempting to delete a container that is not stopped MUST generate an error (unknown id)"),
    ] {
        let args: Vec<&str> = if op == "kill" { vec![op, &id, "KILL"] } else { vec![op, &id] };
        let out = ctx.rt.run(&args);
        ctx.check(F, clause, case, matches!(out.code, Some(c) if c != 0), format!("{op}: {}", out.describe()));
    }
}

fn missing_ids(ctx: &mut Ctx) {
    let case = "errors-missing-id";
    for (args, clause) in [
        (&["state"][..], "query state: This operation MUST generate an error if it is not provided the ID of a container"),
        (&["start"][..], "start: This operation MUST generate an error if it is not provided the container ID"),
        (&["kill"][..], "kill: This operation MUST generate an error if it is not provided the container ID"),
        (&["delete"][..], "delete: This operation MUST generate an error if it is not provided the container ID"),
    ] {
        let out = ctx.rt.run(args);
        ctx.check(F, clause, case, matches!(out.code, Some(c) if c != 0), format!("{args:?}: {}", out.describe()));
    }
    let b = ctx.bundle(case);
    b.write();
    let bundle = b.dir.to_string_lossy().into_owned();
    let out = ctx.rt.run(&["create", "--bundle", &bundle]);
    let clause = "create: This operation MUST generate an error if it is not provided a path to the bundle and the container ID";
    ctx.check(
        F,
        clause,
        case,
        matches!(out.code, Some(c) if c != 0),
        format!("create without id: {}", out.describe()),
    );
}

fn duplicate_id(ctx: &mut Ctx) {
    let case = "create-duplicate-id";
    let first = idle_bundle(ctx, case);
    if !ctx.create(&first).success() {
        ctx.check(
            F,
            "create: If the ID provided is not unique, the implementation MUST generate an error",
            case,
            false,
            "the first create failed",
        );
        return ctx.discard(&first.id);
    }
    let before = ctx.rt.state(&first.id).ok().and_then(|s| s["pid"].as_i64());
    let mut second = idle_bundle(ctx, case);
    second.id = first.id.clone();
    let out = ctx.create(&second);
    let after = ctx
        .rt
        .state(&first.id)
        .ok()
        .and_then(|s| Some((s["status"].as_str()?.to_owned(), s["pid"].as_i64()?)));
    let clause = "create: If the ID provided is not unique across all containers within the scope of the runtime, the implementation MUST generate an error and a new container MUST NOT be created";
    let ok = !out.success() && after == before.map(|p| ("created".to_owned(), p));
    ctx.check(
        F,
        clause,
        case,
        ok,
        format!(
            "second create {}; first container now {after:?}, was pid {before:?}",
            out.describe()
        ),
    );
    ctx.discard(&first.id);
}

fn invalid_id(ctx: &mut Ctx) {
    let case = "create-invalid-id";
    for bad in ["bad/id", "..", ""] {
        let mut b = idle_bundle(ctx, case);
        b.id = bad.to_owned();
        let out = ctx.create(&b);
        let clause = "create: If the ID provided is not valid in any other way, the implementation MUST generate an error and a new container MUST NOT be created";
        ctx.check(
            F,
            clause,
            case,
            !out.success(),
            format!("id {bad:?}: {}", out.describe()),
        );
        if out.success() {
            ctx.discard(bad);
        }
    }
}

fn missing_bundle(ctx: &mut Ctx) {
    let case = "create-missing-bundle";
    let id = format!("oci-conf-{}-no-bundle", std::process::id());
    let nowhere = ctx.run_dir.join("no-such-bundle");
    let out = ctx
        .rt
        .run(&["create", "--bundle", &nowhere.to_string_lossy(), &id]);
    let clause = "create: This operation MUST generate an error if it is not provided a path to the bundle (a path with no bundle)";
    let ok = !out.success() && ctx.rt.state(&id).is_err();
    ctx.check(
        F,
        clause,
        case,
        ok,
        format!("create --bundle {}: {}", nowhere.display(), out.describe()),
    );
    ctx.discard(&id);
    // Without --bundle, a runc-style CLI uses the working directory; an empty one holds no bundle.
    let empty = ctx.run_dir.join("empty-cwd");
    let _ = std::fs::create_dir_all(&empty);
    let out = ctx.rt.run_in(&["create", &id], Some(&empty));
    let ok = !out.success() && ctx.rt.state(&id).is_err();
    let clause = "create: This operation MUST generate an error if it is not provided a path to the bundle (no --bundle, no bundle in the working directory)";
    ctx.check(F, clause, case, ok, out.describe());
    ctx.discard(&id);
}

/// Operations on a container in a status that does not allow them: error, and no effect.
fn wrong_status(ctx: &mut Ctx) {
    let case = "operations-wrong-status";
    let b = idle_bundle(ctx, case);
    if !ctx.create(&b).success() {
        ctx.check(
            F,
            "create: This operation MUST create a new container",
            case,
            false,
            "create failed",
        );
        return ctx.discard(&b.id);
    }
    let snapshot = |ctx: &Ctx| {
        ctx.rt
            .state(&b.id)
            .ok()
            .and_then(|s| Some((s["status"].as_str()?.to_owned(), s["pid"].as_i64()?)))
    };

    let before = snapshot(ctx);
    let out = ctx.rt.delete(&b.id);
    let after = snapshot(ctx);
    let clause = "delete: Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (created)";
    ctx.check(
        F,
        clause,
        case,
        !out.success() && after == before && before.is_some(),
        format!("delete {}; {before:?} -> {after:?}", out.describe()),
    );
    if after.is_none() {
        return ctx.discard(&b.id);
    }

    let started = ctx.rt.start(&b.id).success()
        && wait_for(&b.rootfs.join("started"), Duration::from_secs(10));
    let before = snapshot(ctx);
    let out = ctx.rt.start(&b.id);
    let after = snapshot(ctx);
    let clause = "start: Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (running)";
    ctx.check(
        F,
        clause,
        case,
        started && !out.success() && after == before,
        format!("second start {}; {before:?} -> {after:?}", out.describe()),
    );

    let out = ctx.rt.delete(&b.id);
    let after = snapshot(ctx);
    let clause = "delete: Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error (running)";
    ctx.check(
        F,
        clause,
        case,
        !out.success() && after == before,
        format!("delete {}; {before:?} -> {after:?}", out.describe()),
    );

    let _ = ctx.rt.kill(&b.id, "KILL");
    let status = ctx
        .rt
        .wait_status(&b.id, "stopped", Duration::from_secs(10));
    if status.as_deref() != Some("stopped") {
        ctx.check(
            F,
            "status stopped: the container process has exited",
            case,
            false,
            format!("status {status:?}"),
        );
        return ctx.discard(&b.id);
    }
    let before = ctx.rt.state(&b.id).ok().map(|s| s["status"].clone());
    let out = ctx.rt.kill(&b.id, "KILL");
    let after = ctx.rt.state(&b.id).ok().map(|s| s["status"].clone());
    let clause = "kill: Attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error (stopped)";
    ctx.check(
        F,
        clause,
        case,
        !out.success() && after == before,
        format!("kill {}; {before:?} -> {after:?}", out.describe()),
    );

    let out = ctx.rt.start(&b.id);
    let after = ctx.rt.state(&b.id).ok().map(|s| s["status"].clone());
    let clause = "start: Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (stopped)";
    ctx.check(
        F,
        clause,
        case,
        !out.success() && after == before,
        format!("start {}; {before:?} -> {after:?}", out.describe()),
    );
    ctx.discard(&b.id);
}

fn kill_created(ctx: &mut Ctx) {
    let case = "kill-created";
    let b = idle_bundle(ctx, case);
    if !ctx.create(&b).success() {
        ctx.check(F, "kill: This operation MUST send the specified signal to the container process (created)", case, false, "create failed");
        return ctx.discard(&b.id);
    }
    let out = ctx.rt.kill(&b.id, "KILL");
    let status = ctx
        .rt
        .wait_status(&b.id, "stopped", Duration::from_secs(10));
    let clause = "kill: This operation MUST send the specified signal to the container process (created container, SIGKILL)";
    ctx.check(
        F,
        clause,
        case,
        out.success() && status.as_deref() == Some("stopped"),
        format!("kill {}; status {status:?}", out.describe()),
    );
    let ran = b.rootfs.join("started").exists();
    ctx.check(F, "create: process.args MUST NOT be applied until triggered by the start operation (killed before start)", case, !ran, "the program ran");
    let out = ctx.rt.delete(&b.id);
    ctx.check(
        F,
        "delete: a stopped container can be deleted",
        case,
        out.success(),
        out.describe(),
    );
    ctx.discard(&b.id);
}

fn start_without_process(ctx: &mut Ctx) {
    let case = "start-without-process";
    let mut b = ctx.bundle(case);
    b.config.as_object_mut().expect("object").remove("process");
    let created = ctx.create(&b);
    let clause = "start: This operation MUST generate an error if process was not set";
    if created.success() {
        let out = ctx.rt.start(&b.id);
        ctx.check(
            F,
            clause,
            case,
            !out.success(),
            format!("start {}", out.describe()),
        );
    } else {
        // Refusing the bundle at create is the stricter reading: there is nothing to start.
        ctx.check(
            F,
            clause,
            case,
            true,
            format!("create refused it: {}", created.describe()),
        );
    }
    ctx.discard(&b.id);
}

fn config_changed_after_create(ctx: &mut Ctx) {
    let case = "config-changed-after-create";
    let mut b = ctx.bundle(case);
    b.config["process"]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!("CONFORMANCE_MARK=original"));
    b.checks(&["env", "args"]);
    b.write();
    let run = ctx.run_checker_with(
        &b,
        F,
        "lifecycle: Any updates to config.json after create MUST NOT affect the container",
        |_, b, _| {
            let mut changed = b.config.clone();
            changed["process"]["args"] = json!(["/bin/false"]);
            changed["process"]["env"] = json!(["CONFORMANCE_MARK=changed"]);
            let _ = std::fs::write(b.dir.join("config.json"), changed.to_string());
        },
    );
    let clause =
        "lifecycle: Any updates to config.json after step 2 (create) MUST NOT affect the container";
    let env_ok = run
        .lines
        .iter()
        .any(|l| l.starts_with("ok\t") && l.contains("process.env"));
    ctx.check(
        F,
        clause,
        case,
        run.finished && env_ok,
        "the container did not run the original process/env",
    );
}

fn create_error_leaves_nothing(ctx: &mut Ctx) {
    let case = "create-error-leaves-nothing";
    let mut b = ctx.bundle(case);
    let path = format!("{}/{case}", ctx.cgroup_parent);
    b.linux()["cgroupsPath"] = json!(path);
    let missing = ctx.run_dir.join("no-such-mount-source");
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/broken", "type": "none", "source": missing, "options": ["bind"]
        }));
    let out = ctx.create(&b);
    let clause = "lifecycle: If the runtime is unable to create the environment specified in the config.json, it MUST generate an error";
    ctx.check(F, clause, case, !out.success(), out.describe());
    let state = ctx.rt.state(&b.id);
    let cgroups: Vec<_> = ["memory", "pids", "cpu", "devices"]
        .iter()
        .map(|c| {
            Path::new("/sys/fs/cgroup")
                .join(c)
                .join(path.trim_start_matches('/'))
        })
        .filter(|d| d.exists())
        .collect();
    let clause = "errors: generating an error MUST leave the state of the environment as if the operation were never attempted";
    ctx.check(
        F,
        clause,
        case,
        state.is_err() && cgroups.is_empty(),
        format!("state {state:?}; cgroups left {cgroups:?}"),
    );
    ctx.discard(&b.id);
}
