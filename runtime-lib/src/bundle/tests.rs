//! Bundle::load and validate against fixture bundles in private temp dirs.

use super::*;
use serde_json::{json, Value};

/// A bundle in a private temp dir: rootfs/ and config.json from `runc spec`'s essentials.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("hull-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        Fixture { dir }
    }

    fn base() -> Value {
        json!({
            "ociVersion": "1.0.2-dev",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hostname": "hull",
            "linux": {"namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ]}
        })
    }

    fn write(&self, config: &str) {
        std::fs::write(self.dir.join("config.json"), config).unwrap();
    }

    /// Loads the base config changed by `edit`.
    fn load_with(&self, edit: impl FnOnce(&mut Value)) -> Result<Bundle> {
        let mut v = Fixture::base();
        edit(&mut v);
        self.write(&serde_json::to_string_pretty(&v).unwrap());
        Bundle::load(&self.dir)
    }

    /// The InvalidConfig a change gives.
    fn invalid(&self, edit: impl FnOnce(&mut Value)) -> (String, String) {
        match self.load_with(edit) {
            Err(Error::InvalidConfig { field, problem }) => (field, problem),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    fn syntax(&self, config: &str) -> (usize, usize, String) {
        self.write(config);
        match Bundle::load(&self.dir) {
            Err(Error::ConfigSyntax {
                path,
                line,
                column,
                msg,
                ..
            }) => {
                assert_eq!(path, self.dir.join("config.json"));
                (line, column, msg)
            }
            other => panic!("expected ConfigSyntax, got {other:?}"),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn namespaces(v: &mut Value) -> &mut Vec<Value> {
    v["linux"]["namespaces"].as_array_mut().unwrap()
}

#[test]
fn a_good_bundle_loads_with_absolute_paths() {
    let f = Fixture::new("good");
    let b = f.load_with(|_| {}).unwrap();
    assert_eq!(b.path, f.dir);
    assert_eq!(
        b.rootfs,
        std::fs::canonicalize(f.dir.join("rootfs")).unwrap()
    );
    assert_eq!(b.spec.hostname().as_deref(), Some("hull"));

    // A relative bundle path becomes absolute.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&f.dir, &cwd);
    assert_eq!(
        Bundle::load(&rel).unwrap().path,
        std::path::absolute(&rel).unwrap()
    );
}

/// `target` written relative to `base` ("../../tmp/x" style).
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let mut p = PathBuf::new();
    for _ in base.components().skip(1) {
        p.push("..");
    }
    p.join(target.strip_prefix("/").unwrap())
}

#[test]
fn a_missing_bundle_or_config_names_the_path() {
    let f = Fixture::new("missing");
    let msg = Bundle::load(&f.dir.join("nope")).unwrap_err().to_string();
    assert!(
        msg.starts_with("open bundle") && msg.contains("nope\""),
        "{msg}"
    );
    assert!(
        msg.ends_with("No such file or directory (os error 2)"),
        "{msg}"
    );
    let msg = Bundle::load(&f.dir).unwrap_err().to_string();
    assert!(
        msg.starts_with("read") && msg.contains("config.json\""),
        "{msg}"
    );
}

#[test]
fn bad_json_gives_line_and_column() {
    let f = Fixture::new("json");
    let (line, column, msg) =
        f.syntax("{\n  \"ociVersion\": \"1.0.0\",\n  \"root\": {\"path\": }\n}");
    assert_eq!((line, column), (3, 20));
    assert_eq!(msg, "expected value");
    let err = Bundle::load(&f.dir).unwrap_err().to_string();
    assert!(
        err.ends_with("config.json\": line 3 column 20: root.path: expected value"),
        "{err}"
    );
}

#[test]
fn unknown_names_are_schema_errors_that_name_them() {
    let f = Fixture::new("schema");
    let mut v = Fixture::base();
    namespaces(&mut v).push(json!({"type": "foo"}));
    let (_, _, msg) = f.syntax(&serde_json::to_string(&v).unwrap());
    assert!(
        msg.starts_with("unknown variant `foo`, expected one of"),
        "{msg}"
    );

    let mut v = Fixture::base();
    v["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_FOO"]});
    let (_, _, msg) = f.syntax(&serde_json::to_string(&v).unwrap());
    assert!(msg.contains("CAP_FOO"), "{msg}");

    let mut v = Fixture::base();
    v["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]);
    let (_, _, msg) = f.syntax(&serde_json::to_string(&v).unwrap());
    assert!(msg.starts_with("unknown variant `RLIMIT_FOO`"), "{msg}");

    let mut v = Fixture::base();
    v["process"]["cwd"] = Value::Null;
    let (_, _, msg) = f.syntax(&serde_json::to_string(&v).unwrap());
    assert!(msg.contains("invalid type: null"), "{msg}");
}

/// A value of the wrong type names its field, not only where it sits in the text.
#[test]
fn type_errors_name_the_field() {
    let f = Fixture::new("field");
    for (edit, field) in [
        (
            Box::new(|v: &mut Value| v["process"]["user"]["uid"] = json!("root"))
                as Box<dyn Fn(&mut Value)>,
            "process.user.uid",
        ),
        (
            Box::new(|v: &mut Value| {
                v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": -1}])
            }),
            "process.rlimits[0].hard",
        ),
        (
            Box::new(|v: &mut Value| {
                v["linux"]["namespaces"][1]["path"] = json!(7);
            }),
            "linux.namespaces[1].path",
        ),
    ] {
        let mut v = Fixture::base();
        edit(&mut v);
        f.write(&serde_json::to_string_pretty(&v).unwrap());
        let err = Bundle::load(&f.dir).unwrap_err();
        match &err {
            Error::ConfigSyntax { field: got, .. } => assert_eq!(got, field, "{err}"),
            other => panic!("expected ConfigSyntax, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!(": {field}: ")), "{err}");
    }
}

#[test]
fn oci_version_major_must_be_1() {
    let f = Fixture::new("version");
    for bad in ["2.0.0", "", "abc", "0.6.0"] {
        let (field, problem) = f.invalid(|v| v["ociVersion"] = json!(bad));
        assert_eq!(field, "ociVersion");
        assert_eq!(
            problem,
            format!("unsupported version {bad:?}: hull supports 1.x")
        );
    }
    f.load_with(|v| v["ociVersion"] = json!("1.2.0")).unwrap();
}

#[test]
fn root_must_exist_and_be_a_directory() {
    let f = Fixture::new("root");
    assert_eq!(
        f.invalid(|v| v.as_object_mut().unwrap().remove("root").map(drop).unwrap()),
        ("root".into(), "root must be specified".into())
    );
    let (field, problem) = f.invalid(|v| v["root"]["path"] = json!("nope"));
    assert_eq!(field, "root.path");
    assert_eq!(
        problem,
        format!(
            "invalid rootfs {:?}: no such file or directory",
            f.dir.join("nope")
        )
    );
    std::fs::write(f.dir.join("file"), "").unwrap();
    let (_, problem) = f.invalid(|v| v["root"]["path"] = json!("file"));
    assert!(problem.ends_with("not a directory"), "{problem}");
    // An absolute root.path is used as it is.
    let abs = f.dir.join("rootfs");
    let b = f.load_with(|v| v["root"]["path"] = json!(abs)).unwrap();
    assert_eq!(b.rootfs, std::fs::canonicalize(abs).unwrap());
}

#[test]
fn process_needs_args_and_an_absolute_cwd() {
    let f = Fixture::new("process");
    assert_eq!(
        f.invalid(|v| v["process"]["args"] = json!([])),
        ("process.args".into(), "args must not be empty".into())
    );
    assert_eq!(
        f.invalid(|v| v["process"]["cwd"] = json!("tmp")),
        (
            "process.cwd".into(),
            "cwd \"tmp\" must be an absolute path".into()
        )
    );
}

#[test]
fn rlimit_types_must_not_repeat() {
    let f = Fixture::new("rlimits");
    let (field, problem) = f.invalid(|v| {
        v["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
            {"type": "RLIMIT_CORE", "soft": 1, "hard": 1},
            {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}
        ])
    });
    assert_eq!(field, "process.rlimits[2]");
    assert_eq!(
        problem,
        "duplicate rlimit type \"RLIMIT_NOFILE\" (also process.rlimits[0])"
    );
}

#[test]
fn namespace_rules_come_from_the_namespace_plan() {
    let f = Fixture::new("ns");
    let (field, problem) = f.invalid(|v| namespaces(v).push(json!({"type": "ipc"})));
    assert_eq!(field, "linux.namespaces[5]");
    assert!(
        problem.starts_with("duplicate namespace type \"ipc\""),
        "{problem}"
    );
    let (field, _) =
        f.invalid(|v| namespaces(v)[1] = json!({"type": "network", "path": "/proc/self/ns/uts"}));
    assert_eq!(field, "linux.namespaces[1].path");
    let (field, problem) = f.invalid(|v| {
        namespaces(v).retain(|n| n["type"] != "mount");
    });
    assert_eq!(
        (field.as_str(), problem.as_str()),
        (
            "linux.namespaces",
            crate::plan::namespaces::MOUNT_NAMESPACE_REQUIRED
        )
    );
}

#[test]
fn hostname_and_domainname_need_a_uts_namespace() {
    let f = Fixture::new("uts");
    let no_uts = |v: &mut Value| namespaces(v).retain(|n| n["type"] != "uts");
    assert_eq!(
        f.invalid(no_uts),
        (
            "hostname".into(),
            "unable to set hostname without a private UTS namespace".into()
        )
    );
    assert_eq!(
        f.invalid(|v| {
            no_uts(v);
            v.as_object_mut().unwrap().remove("hostname");
            v["domainname"] = json!("example.org");
        }),
        (
            "domainname".into(),
            "unable to set domainname without a private UTS namespace".into()
        )
    );
    // Joining the host's uts namespace by path also counts, as in runc.
    f.load_with(|v| namespaces(v)[3] = json!({"type": "uts", "path": "/proc/self/ns/uts"}))
        .unwrap();
}

#[test]
fn a_new_user_namespace_needs_mappings_of_root_and_the_user() {
    let f = Fixture::new("userns");
    let userns = |v: &mut Value| namespaces(v).push(json!({"type": "user"}));
    let map = |c: u32, h: u32, s: u32| json!([{"containerID": c, "hostID": h, "size": s}]);
    assert_eq!(
        f.invalid(userns),
        (
            "linux.uidMappings".into(),
            "user namespaces enabled, but no uid mappings found".into()
        )
    );
    assert_eq!(
        f.invalid(|v| {
            userns(v);
            v["linux"]["uidMappings"] = map(0, 100000, 65536);
        }),
        (
            "linux.gidMappings".into(),
            "user namespaces enabled, but no gid mappings found".into()
        )
    );
    assert_eq!(
        f.invalid(|v| {
            userns(v);
            v["linux"]["uidMappings"] = map(0, 100000, 1000);
            v["linux"]["gidMappings"] = map(0, 100000, 65536);
            v["process"]["user"]["uid"] = json!(1000);
        }),
        (
            "linux.uidMappings".into(),
            "uid 1000 is not mapped in the user namespace".into()
        )
    );
    assert_eq!(
        f.invalid(|v| {
            userns(v);
            v["linux"]["uidMappings"] = map(0, 100000, 65536);
            v["linux"]["gidMappings"] = map(1, 100000, 65536);
        }),
        (
            "linux.gidMappings".into(),
            "gid 0 is not mapped in the user namespace".into()
        )
    );
    f.load_with(|v| {
        userns(v);
        v["linux"]["uidMappings"] = map(0, 100000, 65536);
        v["linux"]["gidMappings"] = map(0, 100000, 65536);
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    })
    .unwrap();
    // Joining one by path needs no mappings.
    f.load_with(|v| namespaces(v).push(json!({"type": "user", "path": "/proc/self/ns/user"})))
        .unwrap();
    // Mappings without a user namespace are refused (as runc since 1.2).
    let (field, problem) = f.invalid(|v| v["linux"]["uidMappings"] = map(0, 1000, 1));
    assert_eq!(field, "linux.uidMappings");
    assert!(
        problem.contains("user namespace isn't enabled"),
        "{problem}"
    );
}

#[test]
fn time_offsets_need_a_new_time_namespace() {
    let f = Fixture::new("time");
    let offsets = json!({"monotonic": {"secs": 10}});
    let (field, problem) = f.invalid(|v| v["linux"]["timeOffsets"] = offsets.clone());
    assert_eq!(field, "linux.timeOffsets");
    assert!(
        problem.contains("time namespace isn't enabled"),
        "{problem}"
    );
    let (_, problem) = f.invalid(|v| {
        namespaces(v).push(json!({"type": "time", "path": "/proc/self/ns/time"}));
        v["linux"]["timeOffsets"] = offsets.clone();
    });
    assert!(
        problem.contains("both namespace path and time offsets"),
        "{problem}"
    );
    f.load_with(|v| {
        namespaces(v).push(json!({"type": "time"}));
        v["linux"]["timeOffsets"] = offsets.clone();
    })
    .unwrap();
}

#[test]
fn sysctls_must_belong_to_a_private_namespace() {
    let f = Fixture::new("sysctl");
    let with = |key: &str, drop_ns: Option<&str>, v: &mut Value| {
        v["linux"]["sysctl"] = json!({ key: "1" });
        if let Some(t) = drop_ns {
            namespaces(v).retain(|n| n["type"] != t);
        }
    };
    let problem = |key: &str, drop_ns: Option<&str>| {
        let (field, problem) = f.invalid(|v| with(key, drop_ns, v));
        assert_eq!(field, "linux.sysctl");
        problem
    };
    assert_eq!(
        problem("net.ipv4.ip_forward", Some("network")),
        "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"
    );
    assert_eq!(
        problem("kernel.shmmax", Some("ipc")),
        "sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace"
    );
    assert_eq!(
        problem("fs/mqueue/queues_max", Some("ipc")),
        "sysctl \"fs.mqueue.queues_max\" is not allowed in the hosts ipc namespace"
    );
    assert_eq!(
        problem("vm.swappiness", None),
        "sysctl \"vm.swappiness\" is not in a separate kernel namespace"
    );
    assert_eq!(
        problem("kernel.hostname", None),
        "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
    );
    assert_eq!(
        problem("user.max_user_namespaces", None),
        "setting ucounts without a user namespace not allowed: user.max_user_namespaces"
    );
    assert_eq!(
        problem("net/../../kernel/x", None),
        "invalid sysctl key \"net/../../kernel/x\""
    );
    // The runtime's own network namespace, joined by path, is the host's.
    let (_, p) = f.invalid(|v| {
        with("net.ipv4.ip_forward", Some("network"), v);
        namespaces(v).push(json!({"type": "network", "path": "/proc/self/ns/net"}));
    });
    assert!(p.contains("not allowed in host network namespace"), "{p}");
    for key in [
        "net.ipv4.ip_forward",
        "kernel.msgmax",
        "fs.mqueue.msg_max",
        "kernel.domainname",
    ] {
        f.load_with(|v| with(key, None, v)).unwrap();
    }
}

#[test]
fn relative_mount_destinations_are_only_warned_about() {
    let f = Fixture::new("warn");
    let b = f
        .load_with(|v| {
            v["mounts"] = json!([{"destination": "tmp", "type": "tmpfs", "source": "tmpfs"}])
        })
        .unwrap();
    let w = warnings(&b.spec);
    assert_eq!(
        w,
        vec!["mount destination \"tmp\" is not absolute: it is taken relative to the rootfs"]
    );
}

/// The scan that names a field from serde_json's error position, on the shapes errors take.
#[test]
fn field_at_names_where_an_error_sits() {
    let at = |text: &str, needle: &str| {
        // serde_json's column is the 1-based position of the error's last character.
        let i = text.find(needle).unwrap() + needle.len();
        let line = text[..i].matches('\n').count() + 1;
        let column = i - text[..i].rfind('\n').map_or(0, |n| n + 1);
        super::field_at(text.as_bytes(), line, column)
    };
    let doc = "{\"process\": {\"user\": {\"uid\": \"root\"},\n \"rlimits\": [{\"type\": \"x\"}, \
               {\"hard\": -1}]}, \"a\\\"b\": {\"c\": 1}}";
    assert_eq!(at(doc, "\"root\""), "process.user.uid");
    assert_eq!(at(doc, "-1"), "process.rlimits[1].hard");
    assert_eq!(at(doc, "\"c\": 1"), "a\"b.c");
    // A missing field: the error sits at the object's closing brace, and names the object.
    assert_eq!(
        at("{\"root\": {\"readonly\": true}", "true"),
        "root.readonly"
    );
    assert_eq!(at("{\"root\": {\"readonly\": true}", "true}"), "root");
    assert_eq!(at("{\"root\": {\"path\": }", "\"path\": }"), "root.path");
    assert_eq!(at("[1, 2", "2"), "[1]");
}
