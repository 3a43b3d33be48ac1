//! A property test over whole containers: configs made by mutating a valid one (fields removed,
//! set to values of the wrong type, out of range, hostile paths) are created, started when create
//! succeeds, and force-deleted. Whatever hull decides about each one, it must not crash and must
//! leave nothing behind: no state directory, cgroup, process or mount.
//!
//! `PROPTEST_CASES` sets how many configs are tried (default 40, the same ones each run);
//! `HULL_PROPTEST_RANDOM=1` draws new ones. A failure prints the shrunk list of mutations that
//! still breaks the property, which can be kept as a regression case.
//!
//! The mutations never touch what could reach the host from a correct runtime's hands as much as a
//! broken one's (root.path, rootfsPropagation, hooks, cgroupsPath outside the test's own names):
//! the test looks for leaks and crashes, not for ways to hurt the machine it runs on.

use std::os::unix::process::ExitStatusExt;

use integration_tests::{Bundle, Runtime};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

/// Where a mutation lands: fields every engine's config has, in shapes hull must judge.
const POINTERS: &[&str] = &[
    "/process/args",
    "/process/cwd",
    "/process/env",
    "/process/user/uid",
    "/process/user/additionalGids",
    "/process/capabilities/bounding",
    "/process/capabilities/effective",
    "/process/rlimits",
    "/process/rlimits/0/hard",
    "/process/noNewPrivileges",
    "/process/oomScoreAdj",
    "/hostname",
    "/mounts/0/destination",
    "/mounts/1/type",
    "/mounts/2/options",
    "/mounts/3/source",
    "/linux/namespaces",
    "/linux/namespaces/0/type",
    "/linux/maskedPaths",
    "/linux/readonlyPaths/0",
    "/linux/resources/pids",
    "/linux/resources/memory",
    "/linux/sysctl",
    "/linux/uidMappings",
    "/linux/cgroupsPath",
    "/annotations",
];

/// What a mutation puts there (`None`: removes the member). `{id}` becomes the container's id, so
/// a cgroup path is the test's own and the leak check finds it.
fn values() -> Vec<Option<Value>> {
    vec![
        None,
        Some(Value::Null),
        Some(json!("")),
        Some(json!("/")),
        Some(json!("../../../..")),
        Some(json!("/proc/self/fd/3")),
        Some(json!("/proc/self/exe")),
        Some(json!(-1)),
        Some(json!(0)),
        Some(json!(4294967295u32)),
        Some(json!(true)),
        Some(json!([])),
        Some(json!({})),
        Some(json!(["sh", "-c", "exit 3"])),
        Some(json!(["/proc", "/sys", "/dev/null", "/nonexistent/x"])),
        Some(json!(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"])),
        Some(json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}])),
        Some(json!({"limit": 1})),
        Some(json!({"limit": 1048576})),
        Some(json!({"kernel.domainname": "x"})),
        Some(json!([{"containerID": 0, "hostID": 100000, "size": 65536}])),
        Some(json!([{"type": "mount"}, {"type": "pid"}, {"type": "user"}])),
        Some(json!("/hull-prop-{id}")),
        Some(json!("nested/{id}/deeper")),
        Some(json!("x".repeat(300))),
    ]
}

fn apply(b: &mut Bundle, id: &str, pointer: &str, value: &Option<Value>) {
    let value = value.as_ref().map(|v| match v {
        Value::String(s) => Value::String(s.replace("{id}", id)),
        v => v.clone(),
    });
    if !reachable(b.config(), pointer) {
        return;
    }
    match value {
        None => {
            b.remove(pointer);
        }
        Some(v) => {
            b.set(pointer, v);
        }
    }
}

/// Whether `pointer` can be set: every ancestor that exists is an object (or null, which becomes
/// one), or an array the next key indexes. A mutation whose place an earlier one took away (a
/// list emptied, an object made a string) is skipped.
fn reachable(config: &Value, pointer: &str) -> bool {
    let keys: Vec<&str> = pointer.split('/').skip(1).collect();
    let mut cur = Some(config);
    for (i, key) in keys.iter().enumerate() {
        let last = i + 1 == keys.len();
        cur = match cur {
            None | Some(Value::Null) => return true,
            Some(Value::Object(o)) => o.get(*key),
            Some(Value::Array(a)) => match key.parse::<usize>() {
                Ok(n) if n < a.len() => a.get(n),
                _ => return false,
            },
            Some(_) => return false,
        };
        if last {
            return true;
        }
    }
    true
}

#[test]
fn mutated_configs_never_crash_hull_or_leak() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let rt = Runtime::new();
    let values = values();
    let mutation = (0..POINTERS.len(), 0..values.len());
    let config = Config {
        cases,
        // Each case runs a real container: shrinking stays short.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    // The same configs on every run, so CI is repeatable; HULL_PROPTEST_RANDOM=1 explores anew.
    let mut runner = if std::env::var_os("HULL_PROPTEST_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let result = runner.run(&proptest::collection::vec(mutation, 1..4), |mutations| {
        let mut b = Bundle::new();
        let id = rt.new_id();
        for &(p, v) in &mutations {
            apply(&mut b, &id, POINTERS[p], &values[v]);
        }
        let described: Vec<String> = mutations
            .iter()
            .map(|&(p, v)| format!("{} = {:?}", POINTERS[p], values[v]))
            .collect();
        let created = rt.create(&b, &id);
        prop_assert!(
            !created.stderr.contains("panicked") && created.status.signal().is_none(),
            "hull crashed on {described:?}: {created}"
        );
        if created.success() {
            rt.start(&id);
            let deleted = rt.delete_force(&id);
            prop_assert!(
                deleted.success(),
                "delete --force failed after {described:?}: {deleted}"
            );
        }
        let left = integration_tests::leaks::leaks(&rt.root(), &[&id], &[b.path(), &rt.root()]);
        prop_assert!(left.is_empty(), "{described:?} left {left:?}");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
