//! config.md "POSIX-platform Hooks" and runtime.md lifecycle steps 3-9 and 13: order, timing
//! relative to the operations, namespaces, state on stdin, failures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Bundle, Ctx};
use crate::runner::{state_problems, LEAK_ENV};
use crate::runtime::wait_for;

const F: &str = "config.md";
const R: &str = "runtime.md";
const NAMES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Saves stdin, its mount namespace, argv, environment and the process the state's pid runs, then
/// logs its name. `$1` is the hook's name, `$2` the log directory as the hook sees it.
const HOOK_SCRIPT: &str = r#"#!/bin/sh
name=$1; dir=$2
cat > "$dir/$name.json"
readlink /proc/self/ns/mnt > "$dir/$name.mnt"
echo "$0 $*" > "$dir/$name.argv"
env > "$dir/$name.env"
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$dir/$name.json")
[ -n "$pid" ] && tr '\0' ' ' < /proc/$pid/cmdline > "$dir/$name.cmdline"
echo "$name" >> "$dir/order"
"#;

pub fn cases(ctx: &mut Ctx) {
    if ctx.wants("hooks-lifecycle") {
        lifecycle(ctx);
    }
    for (i, name) in NAMES.iter().enumerate().take(5) {
        let case = format!("hooks-{name}-fails");
        if ctx.wants(&case) {
            failing(ctx, &case, i);
        }
    }
    if ctx.wants("hooks-poststop-fails") {
        poststop_fails(ctx);
    }
    if ctx.wants("hooks-timeout") {
        timeout(ctx);
    }
}

pub(crate) struct HookLog {
    host: PathBuf,
}

impl HookLog {
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.host.join(name)).unwrap_or_default()
    }

    pub(crate) fn order(&self) -> Vec<String> {
        self.read("order").lines().map(str::to_owned).collect()
    }

    fn mark(&self, event: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.host.join("order"))
            .expect("order log");
        let _ = writeln!(f, "{event}");
    }
}

/// Gives the bundle all six hooks. Runtime-namespace hooks and createContainer run a script that
/// exists only on the host; startContainer runs one that exists only in the rootfs, so that each
/// path has to resolve in the namespace the spec names.
pub(crate) fn with_hooks(b: &mut Bundle, busybox: &std::path::Path) -> HookLog {
    let host = b.dir.join("hooklog");
    std::fs::create_dir_all(&host).expect("hook log dir");
    let host_script = b.dir.join("hook.sh");
    std::fs::write(&host_script, HOOK_SCRIPT).expect("hook script");
    b.put("/conformance/hook.sh", HOOK_SCRIPT);
    use std::os::unix::fs::PermissionsExt;
    for script in [host_script.clone(), b.rootfs.join("conformance/hook.sh")] {
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod hook");
    }
    b.config["root"]["readonly"] = json!(false);
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/hooklog", "type": "none", "source": host, "options": ["bind"]
        }));
    let mut hooks = serde_json::Map::new();
    for name in NAMES {
        let (path, dir) = if name == "startContainer" {
            ("/conformance/hook.sh".to_owned(), "/hooklog".to_owned())
        } else {
            (
                host_script.to_string_lossy().into_owned(),
                host.to_string_lossy().into_owned(),
            )
        };
        let mut hook = json!({"path": path, "args": ["oci-hook", name, dir], "env": ["OCI_HOOK=conformance", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]});
        if name == "createRuntime" {
            // busybox picks its applet from argv[0]: this hook only runs if args[0] is passed as argv[0].
            hook["path"] = json!(busybox);
            hook["args"] = json!(["sh", path, name, dir]);
        }
        hooks.insert(name.to_owned(), json!([hook]));
    }
    b.config["hooks"] = Value::Object(hooks);
    HookLog { host }
}

fn position(order: &[String], event: &str) -> Option<usize> {
    order.iter().position(|e| e == event)
}

fn lifecycle(ctx: &mut Ctx) {
    let case = "hooks-lifecycle";
    let mut b = ctx.bundle(case);
    let log = with_hooks(&mut b, &ctx.busybox());
    b.sh("echo process >> /hooklog/order; touch /started; while true; do sleep 0.05; done");
    let out = ctx.create(&b);
    log.mark("create-returned");
    if !out.success() {
        ctx.check(
            F,
            "hooks: a bundle with all six hooks can be created",
            case,
            false,
            out.describe(),
        );
        return ctx.discard(&b.id);
    }
    let pid = ctx
        .rt
        .state(&b.id)
        .ok()
        .and_then(|s| s["pid"].as_i64())
        .unwrap_or(0);
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .map(|l| l.display().to_string())
        .unwrap_or_default();
    log.mark("start-invoked");
    let started = ctx.rt.start(&b.id);
    log.mark("start-returned");
    let ran = wait_for(&b.rootfs.join("started"), Duration::from_secs(10));
    let _ = ctx.rt.kill(&b.id, "KILL");
    let _ = ctx
        .rt
        .wait_status(&b.id, "stopped", Duration::from_secs(10));
    log.mark("delete-invoked");
    let deleted = ctx.rt.delete(&b.id);
    log.mark("delete-returned");
    ctx.discard(&b.id);
    let order = log.order();
    let detail = format!(
        "events {order:?}; start {}; delete {}; process ran: {ran}",
        started.describe(),
        deleted.describe()
    );

    let hooks: Vec<&String> = order
        .iter()
        .filter(|e| NAMES.contains(&e.as_str()))
        .collect();
    ctx.check(
        F,
        "Hooks MUST be called in the listed order",
        case,
        hooks == NAMES.to_vec().iter().collect::<Vec<_>>(),
        &detail,
    );
    let at = |e: &str| position(&order, e);
    let before = |a: &str, b: &str| matches!((at(a), at(b)), (Some(x), Some(y)) if x < y);
    let create_hooks = before("prestart", "create-returned")
        && before("createRuntime", "create-returned")
        && before("createContainer", "create-returned");
    ctx.check(F, "prestart, createRuntime and createContainer hooks MUST be called as part of the create operation", case, create_hooks, &detail);
    ctx.check(
        F,
        "The prestart hooks MUST be called before the createRuntime hooks",
        case,
        before("prestart", "createRuntime"),
        &detail,
    );
    ctx.check(
        F,
        "The createContainer hooks MUST be called after the createRuntime hooks",
        case,
        before("createRuntime", "createContainer"),
        &detail,
    );
    let ok = before("start-invoked", "startContainer") && before("startContainer", "process");
    ctx.check(F, "The startContainer hooks MUST be called before the user-specified process is executed as part of the start operation", case, ok, &detail);
    let ok = before("start-invoked", "poststart") && before("poststart", "start-returned");
    ctx.check(F, "The poststart hooks MUST be called after the user-specified process is executed but before the start operation returns", case, ok, &detail);
    let cmdline = log.read("poststart.cmdline");
    let clause = "poststart hooks run after the user-specified process is executed (the state's pid runs the user's program)";
    ctx.check(
        F,
        clause,
        case,
        cmdline.contains("sleep") || cmdline.contains("/bin/sh -c echo process"),
        format!("pid's cmdline at poststart: {cmdline:?}"),
    );
    let ok = before("delete-invoked", "poststop") && before("poststop", "delete-returned");
    ctx.check(F, "The poststop hooks MUST be called after the container is deleted but before the delete operation returns", case, ok, &detail);

    for name in NAMES {
        let state = serde_json::from_str::<Value>(&log.read(&format!("{name}.json")));
        let problems = state
            .as_ref()
            .map(|s| state_problems(s, &b.id, &b.dir))
            .map_err(|e| e.to_string());
        let clause =
            format!("The state of the container MUST be passed to hooks over stdin ({name})");
        ctx.check(
            F,
            &clause,
            case,
            problems.as_ref().is_ok_and(|p| p.is_empty()),
            format!("{problems:?}: {}", log.read(&format!("{name}.json"))),
        );
    }
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .map(|l| l.display().to_string())
        .unwrap_or_default();
    for name in NAMES {
        let got = log.read(&format!("{name}.mnt")).trim().to_owned();
        let in_container = matches!(name, "createContainer" | "startContainer");
        let (want, clause) = if in_container {
            (
                &container_mnt,
                format!("The {name} hooks MUST be executed in the container namespace"),
            )
        } else {
            (
                &host_mnt,
                format!("The {name} hooks MUST be executed in the runtime namespace"),
            )
        };
        ctx.check(
            F,
            &clause,
            case,
            !got.is_empty() && got == *want,
            format!("hook's mnt ns {got:?}, want {want:?}"),
        );
    }
    let clause = "hooks: path resolves in the namespace the spec names (createContainer: runtime namespace; startContainer: container namespace)";
    let ok =
        !log.read("createContainer.json").is_empty() && !log.read("startContainer.json").is_empty();
    ctx.check(
        F,
        clause,
        case,
        ok,
        "a hook whose path exists only where the spec says it resolves did not run",
    );
    let argv = log.read("createRuntime.argv");
    let want = format!(
        "{} createRuntime {}",
        b.dir.join("hook.sh").display(),
        log.host.display()
    );
    ctx.check(
        F,
        "hooks args: same semantics as execv's argv (argv[0] is args[0])",
        case,
        argv.trim() == want,
        format!("busybox sh ran with argv {argv:?}, want {want:?}"),
    );
    let env = log.read("createRuntime.env");
    let ok = env.lines().any(|l| l == "OCI_HOOK=conformance") && !env.contains(LEAK_ENV);
    ctx.check(
        F,
        "hooks env: same semantics as environ (the hook gets the configured environment)",
        case,
        ok,
        format!("env {env:?}"),
    );
}

/// One hook fails: the operation errors and the container does not stay around running.
fn failing(ctx: &mut Ctx, case: &str, index: usize) {
    let name = NAMES[index];
    let mut b = ctx.bundle(case);
    let _log = with_hooks(&mut b, &ctx.busybox());
    b.sh("touch /started; while true; do sleep 0.05; done");
    // /bin/false exists both on the host and in the busybox rootfs.
    b.config["hooks"][name] = json!([{"path": "/bin/false", "args": ["false"]}]);
    let created = ctx.create(&b);
    let op_failed = if index < 3 {
        !created.success()
    } else {
        created.success() && !ctx.rt.start(&b.id).success()
    };
    std::thread::sleep(Duration::from_millis(100));
    let status = ctx.rt.status(&b.id);
    let stopped = matches!(status.as_deref(), None | Some("stopped"));
    let clause = format!("If any {name} hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12");
    ctx.check(
        R,
        &clause,
        case,
        op_failed && stopped,
        format!(
            "create {}; operation failed: {op_failed}; status after: {status:?}",
            created.describe()
        ),
    );
    if index < 3 {
        let ran = b.rootfs.join("started").exists();
        ctx.check(
            R,
            "lifecycle: the user-specified program MUST NOT be run at create",
            case,
            !ran,
            "the program ran after a failed create hook",
        );
    }
    ctx.discard(&b.id);
}

fn poststop_fails(ctx: &mut Ctx) {
    let case = "hooks-poststop-fails";
    let mut b = ctx.bundle(case);
    let log = with_hooks(&mut b, &ctx.busybox());
    let good = b.config["hooks"]["poststop"][0].clone();
    b.config["hooks"]["poststop"] = json!([{"path": "/bin/false", "args": ["false"]}, good]);
    b.sh("true");
    let created = ctx.create(&b);
    let started = created.success() && ctx.rt.start(&b.id).success();
    let _ = ctx
        .rt
        .wait_status(&b.id, "stopped", Duration::from_secs(10));
    let deleted = ctx.rt.delete(&b.id);
    let gone = ctx.rt.state(&b.id).is_err();
    let second_ran = log.order().iter().any(|e| e == "poststop");
    let clause = "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue as if the hook had succeeded";
    let detail = format!(
        "started {started}; delete {}; gone {gone}; next hook ran {second_ran}",
        deleted.describe()
    );
    ctx.check(
        R,
        clause,
        case,
        started && deleted.success() && gone && second_ran,
        detail,
    );
    ctx.discard(&b.id);
}

fn timeout(ctx: &mut Ctx) {
    let case = "hooks-timeout";
    let mut b = ctx.bundle(case);
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]});
    let began = Instant::now();
    let out = ctx.create(&b);
    let took = began.elapsed();
    let clause = "hooks timeout: the number of seconds before aborting the hook (an aborted createRuntime hook fails create)";
    ctx.check(
        F,
        clause,
        case,
        !out.success() && took < Duration::from_secs(10),
        format!("create {} after {took:?}", out.describe()),
    );
    ctx.discard(&b.id);
}
