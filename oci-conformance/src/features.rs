//! features.md and features-linux.md: what `features` reports holds when a config uses it.
//!
//! Each list the runtime prints is a promise ("MUST recognize", "MUST support"): every element is
//! put into a config and the container must run. Only what the host kernel cannot do is skipped,
//! and the skip names it.

use serde_json::{json, Value};

use crate::harness::{Bundle, Ctx};

const F: &str = "features.md";
const FL: &str = "features-linux.md";

/// The top-level properties features.md defines; nothing else may appear.
const DEFINED: [&str; 7] = [
    "ociVersionMin",
    "ociVersionMax",
    "hooks",
    "mountOptions",
    "linux",
    "annotations",
    "potentiallyUnsafeConfigAnnotations",
];

pub fn cases(ctx: &mut Ctx) {
    if !ctx.wants_group("features") {
        return;
    }
    let out = ctx.rt.run(&["features"]);
    let parsed: Option<Value> = serde_json::from_str(&out.stdout).ok();
    let Some(features) = parsed.filter(|_| out.success()) else {
        ctx.check(
            F,
            "features: the runtime prints the Features structure as JSON",
            "features-output",
            false,
            out.describe(),
        );
        return;
    };
    structure(ctx, &features);
    if ctx.wants_group("features-oci-version") {
        versions(ctx, &features);
    }
    if ctx.wants_group("features-hooks") {
        hooks(ctx, &features);
    }
    if ctx.wants_group("features-mount-options") {
        mount_options(ctx, &features);
    }
    if ctx.wants_group("features-namespaces") {
        namespaces(ctx, &features);
    }
    if ctx.wants_group("features-capabilities") {
        capabilities(ctx, &features);
    }
    if ctx.wants_group("features-seccomp") {
        seccomp(ctx, &features);
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// "1.2.3-rc.1" as (1, 2, 3); the pre-release part does not order releases of this spec.
fn version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut n = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((n.next()??, n.next()??, n.next()??))
}

fn structure(ctx: &mut Ctx, f: &Value) {
    let case = "features-output";
    let extra: Vec<&String> = f
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !DEFINED.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    ctx.check(
        F,
        "The Features structure MUST NOT contain properties that are not defined in this version of the Open Container Initiative Runtime Specification",
        case,
        extra.is_empty(),
        format!("undefined properties {extra:?}"),
    );
    let (min, max) = (
        f["ociVersionMin"].as_str().and_then(version),
        f["ociVersionMax"].as_str().and_then(version),
    );
    ctx.check(
        F,
        "ociVersionMax: The value MUST NOT be less than the value of the ociVersionMin property",
        case,
        matches!((min, max), (Some(a), Some(b)) if b >= a),
        format!("min {} max {}", f["ociVersionMin"], f["ociVersionMax"]),
    );
    let annotations_ok = match &f["annotations"] {
        Value::Null => true,
        Value::Object(o) => o.values().all(Value::is_string) && !o.contains_key(""),
        _ => false,
    };
    ctx.check(
        F,
        "annotations: Annotations MUST be a key-value map that follows the same convention as the Key and Values of the annotations property of config.json",
        case,
        annotations_ok,
        format!("annotations {}", f["annotations"]),
    );
    let unsafe_ok = match &f["potentiallyUnsafeConfigAnnotations"] {
        Value::Null => true,
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    };
    ctx.check(
        F,
        "potentiallyUnsafeConfigAnnotations (array of strings, OPTIONAL)",
        case,
        unsafe_ok,
        format!("{}", f["potentiallyUnsafeConfigAnnotations"]),
    );
}

/// A bundle whose process is the checker with no checks: it only has to run.
fn runs(ctx: &mut Ctx, b: &Bundle, file: &str, clause: &str) {
    let run = ctx.run_checker(b, file, clause);
    if run.finished {
        ctx.check(file, clause, &b.case, true, "the container ran");
    }
}

fn versions(ctx: &mut Ctx, f: &Value) {
    for (key, case) in [
        ("ociVersionMin", "features-oci-version-min"),
        ("ociVersionMax", "features-oci-version-max"),
    ] {
        let Some(v) = f[key].as_str().filter(|_| ctx.wants(case)) else {
            continue;
        };
        let mut b = ctx.bundle(case);
        b.config["ociVersion"] = json!(v);
        runs(
            ctx,
            &b,
            F,
            &format!("{key}: The runtime MUST accept this value as the ociVersion property of config.json"),
        );
    }
}

fn hooks(ctx: &mut Ctx, f: &Value) {
    let case = "features-hooks";
    let listed = strings(&f["hooks"]);
    let mut b = ctx.bundle(case);
    let log = crate::hooks::with_hooks(&mut b, &ctx.busybox());
    if let Some(h) = b.config["hooks"].as_object_mut() {
        h.retain(|name, _| listed.contains(name));
    }
    let clause = "hooks: The runtime MUST support the elements in this array as the hooks property of config.json";
    let run = ctx.run_checker(&b, F, clause);
    if !run.finished {
        return;
    }
    // poststop runs at delete, which the lifecycle has done by now.
    let ran = log.order();
    let missing: Vec<&String> = listed.iter().filter(|h| !ran.contains(h)).collect();
    ctx.check(
        F,
        clause,
        case,
        missing.is_empty(),
        format!("listed {listed:?}, these did not run: {missing:?}"),
    );
}

/// The mounts that use `option`. Those that say how a mount is made rather than what it is need
/// a bind source (bind, rbind) or a mount already there (remount: a second entry changes the
/// first, read-only).
fn mounts_for(option: &str, source: &str) -> Vec<Value> {
    let tmpfs = |options: Value| json!({"destination": "/features-opt", "type": "tmpfs", "source": "tmpfs", "options": options});
    match option {
        "bind" | "rbind" => {
            vec![
                json!({"destination": "/features-opt", "type": "bind", "source": source, "options": [option]}),
            ]
        }
        "remount" => vec![tmpfs(json!([])), tmpfs(json!(["remount", "ro"]))],
        _ => vec![tmpfs(json!([option]))],
    }
}

fn mount_options(ctx: &mut Ctx, f: &Value) {
    let clause = "mountOptions: The runtime MUST recognize the elements in this array as the options of mounts objects in config.json";
    for option in strings(&f["mountOptions"]) {
        let case = format!("features-mount-options-{option}");
        if !ctx.wants(&case) {
            continue;
        }
        let mut b = ctx.bundle(&case);
        let source = b.dir.join("opt-source");
        let _ = std::fs::create_dir_all(&source);
        b.config["mounts"]
            .as_array_mut()
            .expect("mounts")
            .extend(mounts_for(&option, &source.to_string_lossy()));
        runs(ctx, &b, F, clause);
    }
}

fn namespaces(ctx: &mut Ctx, f: &Value) {
    let clause = "namespaces: The runtime MUST recognize the elements in this array as the type of linux.namespaces objects in config.json";
    for ns in strings(&f["linux"]["namespaces"]) {
        let case = format!("features-namespaces-{ns}");
        if !ctx.wants(&case) {
            continue;
        }
        if ns == "time" && !std::path::Path::new("/proc/self/ns/time").exists() {
            ctx.tap
                .skip(FL, clause, &case, "this kernel has no time namespaces");
            continue;
        }
        let mut b = ctx.bundle(&case);
        b.checks(&["namespaces"]);
        let list = b.linux()["namespaces"].as_array_mut().expect("namespaces");
        if !list.iter().any(|n| n["type"] == ns.as_str()) {
            list.push(json!({"type": ns}));
        }
        if ns == "user" {
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            b.linux()["uidMappings"] = map.clone();
            b.linux()["gidMappings"] = map;
        }
        ctx.run_checker(&b, FL, clause);
    }
}

fn capabilities(ctx: &mut Ctx, f: &Value) {
    let case = "features-capabilities";
    let listed = strings(&f["linux"]["capabilities"]);
    // A runtime cannot grant what it does not hold: the ones outside the suite's own bounding
    // set (the host's limit, which the runtime inherits) go into the bounding list only, where
    // the spec wants a warning, not a failure.
    let granted: Vec<&String> = listed
        .iter()
        .filter(|c| crate::config::caps_in_bounding(c))
        .collect();
    let mut b = ctx.bundle(case);
    b.process()["capabilities"]["bounding"] = json!(listed);
    for set in ["effective", "permitted"] {
        b.process()["capabilities"][set] = json!(granted);
    }
    runs(
        ctx,
        &b,
        FL,
        "capabilities: The runtime MUST recognize the elements in this array in the process.capabilities object of config.json",
    );
}

/// A profile that allows everything but `acct` (which no container process here calls), shaped
/// by `edit`.
fn seccomp_case(ctx: &mut Ctx, case: &str, clause: &str, edit: impl FnOnce(&mut Value)) {
    if !ctx.wants(case) {
        return;
    }
    let mut b = ctx.bundle(case);
    let mut profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    edit(&mut profile);
    b.linux()["seccomp"] = profile;
    runs(ctx, &b, FL, clause);
}

fn seccomp(ctx: &mut Ctx, f: &Value) {
    let s = &f["linux"]["seccomp"];
    if s["enabled"] != json!(true) {
        return;
    }
    for action in strings(&s["actions"]) {
        let clause = "seccomp.actions: The runtime MUST recognize the elements in this array in the syscalls[].action property of the linux.seccomp object in config.json";
        if action == "SCMP_ACT_NOTIFY" {
            // Needs a listenerPath agent: the seccomp-notify cases cover it.
            continue;
        }
        seccomp_case(
            ctx,
            &format!("features-seccomp-action-{action}"),
            clause,
            |p| {
                p["syscalls"][0]["action"] = json!(action);
                if !matches!(action.as_str(), "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") {
                    if let Some(r) = p["syscalls"][0].as_object_mut() {
                        r.remove("errnoRet");
                    }
                }
            },
        );
    }
    for op in strings(&s["operators"]) {
        let clause = "seccomp.operators: The runtime MUST recognize the elements in this array in the syscalls[].args[].op property of the linux.seccomp object in config.json";
        seccomp_case(
            ctx,
            &format!("features-seccomp-operator-{op}"),
            clause,
            |p| {
                let mut arg = json!({"index": 0, "value": 1, "op": op});
                if op == "SCMP_CMP_MASKED_EQ" {
                    arg["valueTwo"] = json!(1);
                }
                p["syscalls"][0]["args"] = json!([arg]);
            },
        );
    }
    let archs = strings(&s["archs"]);
    seccomp_case(
        ctx,
        "features-seccomp-archs",
        "seccomp.archs: The runtime MUST recognize the elements in this array in the architectures property of the linux.seccomp object in config.json",
        |p| p["architectures"] = json!(archs),
    );
    for flag in strings(&s["supportedFlags"]) {
        let clause = "seccomp.supportedFlags: The runtime MUST recognize and support the elements in this array in the flags property of the linux.seccomp object in config.json";
        seccomp_case(ctx, &format!("features-seccomp-flag-{flag}"), clause, |p| {
            p["flags"] = json!([flag]);
        });
    }
}
