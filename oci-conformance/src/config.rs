//! config.md (Linux parts): root, process, hostname, extensibility. Mounts are in mounts.rs,
//! hooks in hooks.rs.

use serde_json::{json, Value};

use crate::harness::{Bundle, Ctx};

const F: &str = "config.md";
pub const INVALID: &str =
    "Runtimes MUST generate an error when invalid or unsupported values are encountered";

pub fn cases(ctx: &mut Ctx) {
    root(ctx);
    crate::mounts::cases(ctx);
    process(ctx);
    capabilities(ctx);
    misc(ctx);
}

/// Runs a checker case if selected: `setup` shapes the bundle, `checks` are what the checker runs.
pub fn checker_case(
    ctx: &mut Ctx,
    case: &str,
    file: &str,
    clause: &str,
    checks: &[&str],
    setup: impl FnOnce(&mut Bundle),
) {
    if !ctx.wants(case) {
        return;
    }
    let mut b = ctx.bundle(case);
    b.checks(checks);
    setup(&mut b);
    ctx.run_checker(&b, file, clause);
}

/// A bundle the runtime must refuse at create.
pub fn refused_case(
    ctx: &mut Ctx,
    case: &str,
    file: &str,
    clause: &str,
    setup: impl FnOnce(&mut Bundle),
) {
    if !ctx.wants(case) {
        return;
    }
    let mut b = ctx.bundle(case);
    b.checks(&["args"]);
    setup(&mut b);
    ctx.expect_create_error(&b, file, clause);
}

fn root(ctx: &mut Ctx) {
    checker_case(
        ctx,
        "root-readonly",
        F,
        "root.readonly: If true then the root filesystem MUST be read-only inside the container",
        &["readonly-root"],
        |_| {},
    );
    checker_case(
        ctx,
        "root-absolute-path",
        F,
        "root.path is either an absolute path or a relative path to the bundle",
        &["args", "readonly-root"],
        |b| {
            b.config["root"]["path"] = json!(b.rootfs);
        },
    );
    refused_case(ctx, "root-missing", F, "root.path: A directory MUST exist at the path declared by the field (runtime.md: if the runtime is unable to create the environment it MUST generate an error)", |b| {
        b.config["root"]["path"] = json!("no-such-rootfs");
    });
}

/// Soft/hard pairs below the host's hard limits: raising a hard limit needs CAP_SYS_RESOURCE.
fn rlimits_below_host() -> Value {
    let mut out = Vec::new();
    for (name, res) in [
        ("RLIMIT_NOFILE", nix::sys::resource::Resource::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", nix::sys::resource::Resource::RLIMIT_NPROC),
        ("RLIMIT_CORE", nix::sys::resource::Resource::RLIMIT_CORE),
        (
            "RLIMIT_MSGQUEUE",
            nix::sys::resource::Resource::RLIMIT_MSGQUEUE,
        ),
    ] {
        let hard = nix::sys::resource::getrlimit(res)
            .map(|(_, h)| h)
            .unwrap_or(4096)
            .min(1 << 20)
            - 1;
        out.push(json!({"type": name, "hard": hard, "soft": hard / 2}));
    }
    json!(out)
}

fn process(ctx: &mut Ctx) {
    let s = "(runtime.md: start MUST run the user-specified program as specified by process)";
    checker_case(
        ctx,
        "process-args-path-lookup",
        F,
        "process.args: the first entry is used with the same semantics as execvp's file",
        &["args"],
        |b| {
            b.args(&["oci-checker", "args"]);
            b.process()["env"] = json!(["PATH=/bin:/conformance"]);
        },
    );
    checker_case(
        ctx,
        "process-env",
        F,
        &format!("process.env {s}"),
        &["env"],
        |b| {
            b.process()["env"].as_array_mut().expect("env").extend([
                json!("CONFORMANCE_A=1"),
                json!("CONFORMANCE_EMPTY="),
                json!("CONFORMANCE_SPACES=a b  c"),
            ]);
        },
    );
    checker_case(
        ctx,
        "process-cwd",
        F,
        &format!("process.cwd {s}"),
        &["cwd"],
        |b| {
            b.process()["cwd"] = json!("/conformance");
        },
    );
    checker_case(
        ctx,
        "process-user",
        F,
        &format!("process.user {s}"),
        &["user"],
        |b| {
            b.process()["user"] =
                json!({"uid": 1000, "gid": 1001, "umask": 23, "additionalGids": [5, 6, 1002]});
        },
    );
    checker_case(
        ctx,
        "process-user-no-additional-gids",
        F,
        &format!("process.user {s}"),
        &["user"],
        |b| {
            b.process()["user"] = json!({"uid": 0, "gid": 0, "umask": 0o77, "additionalGids": []});
        },
    );
    checker_case(
        ctx,
        "rlimits",
        F,
        "rlimits: rlim_cur and rlim_max MUST match the configured values",
        &["rlimits"],
        |b| {
            b.process()["rlimits"] = rlimits_below_host();
        },
    );
    refused_case(ctx, "rlimits-invalid-type", F, "rlimits: The runtime MUST generate an error for any values which cannot be mapped to a relevant kernel interface", |b| {
        b.process()["rlimits"] = json!([{"type": "RLIMIT_OCI_CONFORMANCE", "soft": 1, "hard": 1}]);
    });
    refused_case(ctx, "rlimits-duplicate", F, "rlimits: If rlimits contains duplicated entries with same type, the runtime MUST generate an error", |b| {
        b.process()["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}, {"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400}]);
    });
    checker_case(ctx, "no-new-privileges", F, "noNewPrivileges: setting it to true prevents the process from gaining additional privileges", &["nnp"], |b| {
        b.process()["noNewPrivileges"] = json!(true);
    });
    checker_case(
        ctx,
        "oom-score-adj-set",
        F,
        "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value",
        &["oom"],
        |b| {
            b.process()["oomScoreAdj"] = json!(321);
        },
    );
    checker_case(
        ctx,
        "oom-score-adj-unset",
        F,
        "If oomScoreAdj is not set, the runtime MUST NOT change the value of oom_score_adj",
        &["oom"],
        |b| {
            b.process()
                .as_object_mut()
                .expect("process")
                .remove("oomScoreAdj");
        },
    );
    checker_case(
        ctx,
        "scheduler",
        F,
        &format!("process.scheduler {s}"),
        &["scheduler"],
        |b| {
            b.process()["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        },
    );
    checker_case(
        ctx,
        "io-priority",
        F,
        &format!("process.ioPriority {s}"),
        &["ioprio"],
        |b| {
            b.process()["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 5});
        },
    );
    checker_case(
        ctx,
        "terminal",
        F,
        "terminal: if set to true on Linux a pseudoterminal pair is allocated for the process",
        &["tty"],
        |b| {
            b.process()["terminal"] = json!(true);
            b.process()["consoleSize"] = json!({"height": 33, "width": 101});
            b.console = Some(b.dir.join("console.sock"));
        },
    );
    checker_case(
        ctx,
        "console-size-without-terminal",
        F,
        "Runtimes MUST ignore consoleSize if terminal is false or unset",
        &["args"],
        |b| {
            b.process()["consoleSize"] = json!({"height": 33, "width": 101});
        },
    );
}

fn capabilities(ctx: &mut Ctx) {
    let c = "process.capabilities: the sets are kept for the process (runtime.md: start MUST run the program as specified by process)";
    let sets = |b: &mut Bundle, uid: u32, caps: &[&str], inheritable: &[&str], ambient: &[&str]| {
        b.process()["user"] = json!({"uid": uid, "gid": uid});
        b.process()["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": inheritable, "ambient": ambient
        });
    };
    checker_case(ctx, "capabilities-root", F, c, &["caps"], |b| {
        sets(
            b,
            0,
            &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            &[],
            &[],
        )
    });
    checker_case(ctx, "capabilities-inheritable", F, c, &["caps"], |b| {
        let caps = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"];
        sets(b, 0, &caps, &caps, &[]);
    });
    checker_case(
        ctx,
        "capabilities-ambient-non-root",
        F,
        c,
        &["caps", "user"],
        |b| {
            let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
            sets(b, 1000, &caps, &caps, &caps);
        },
    );
    checker_case(ctx, "capabilities-all", F, c, &["caps"], |b| {
        let all: Vec<&str> = ALL_CAPS.to_vec();
        sets(b, 0, &all, &[], &[]);
        // Everything but what this machine withholds from the runtime itself.
        let bounded: Vec<Value> = all
            .iter()
            .filter(|c| caps_in_bounding(c))
            .map(|c| json!(c))
            .collect();
        for set in ["bounding", "effective", "permitted"] {
            b.process()["capabilities"][set] = json!(bounded);
        }
    });
}

pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Whether the runtime (our child) can hold `cap` at all on this machine.
pub fn caps_in_bounding(cap: &str) -> bool {
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
    bounding.iter().any(|c| c.to_string() == cap)
}

fn misc(ctx: &mut Ctx) {
    checker_case(ctx, "hostname", F, "hostname/domainname: the container's hostname and domainname as seen by processes running inside the container", &["hostname"], |b| {
        b.config["hostname"] = json!("oci-conformance-host");
        b.config["domainname"] = json!("conformance.test");
    });
    checker_case(ctx, "unknown-properties", F, "Runtimes MAY log unknown properties but MUST otherwise ignore them (unknown annotation keys alike)", &["args", "hostname"], |b| {
        b.config["com.example.unknownTopLevel"] = json!({"nested": [1, 2, 3]});
        b.process()["com.example.unknownProcessField"] = json!(true);
        b.linux()["com.example.unknownLinuxField"] = json!("x");
        b.config["annotations"] = json!({"com.example.key": "value", "org.example.other": ""});
    });
}
