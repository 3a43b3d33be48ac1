//! OCI bundles: a busybox rootfs and a config.json that starts as `runc spec`'s default.
//!
//! The config is kept as a `serde_json::Value`, not a typed spec, so a test can also write what
//! no typed spec can hold (unknown namespace types, bad versions) and check the runtime rejects it.
//! Every change is written to config.json at once.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::tmp::TempDir;

/// `runc spec` of runc 1.1.5, verbatim (hull's `hull spec` prints the same document).
pub const RUNC_SPEC: &str = include_str!("runc-spec.json");

#[derive(Debug)]
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Default for Bundle {
    fn default() -> Self {
        Bundle::new()
    }
}

impl Bundle {
    /// A bundle in a fresh temp dir: busybox in `rootfs/`, the default config with
    /// `process.terminal` false and args `["true"]`.
    pub fn new() -> Bundle {
        let dir = TempDir::new("bundle");
        std::fs::create_dir(dir.join("rootfs")).expect("create rootfs");
        crate::rootfs::build(&dir.join("rootfs"));
        let mut config: Value = serde_json::from_str(RUNC_SPEC).expect("parse runc spec");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["true"]);
        let b = Bundle { dir, config };
        b.save();
        b
    }

    /// [`Bundle::new`] whose process is `sleep 1000`: a container to exec into, signal, inspect.
    pub fn sleeping() -> Bundle {
        let mut b = Bundle::new();
        b.args(&["sleep", "1000"]);
        b
    }

    /// The bundle directory (absolute).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Copies one of this crate's static tools (src/bin) into the rootfs as `/bin/<bin>`.
    pub fn install_tool(&mut self, bin: &str) -> &mut Self {
        let src = crate::runtime::tool_binary(bin);
        let dst = self.rootfs().join("bin").join(bin);
        std::fs::copy(&src, &dst)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// `process.args` = `sh -c <script>`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Sets the value at a JSON pointer (`/process/cwd`), creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut cur = &mut self.config;
        let keys: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|k| k.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = keys.split_last().expect("pointer must not be empty");
        for k in parents {
            cur = match cur {
                Value::Array(a) => &mut a[k.parse::<usize>().expect("array index")],
                other => {
                    if other.is_null() {
                        *other = json!({});
                    }
                    other
                        .as_object_mut()
                        .expect("pointer goes through an object")
                        .entry(k.clone())
                        .or_insert(Value::Null)
                }
            };
        }
        match cur {
            Value::Array(a) => a[last.parse::<usize>().expect("array index")] = value,
            other => {
                if other.is_null() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .expect("pointer ends in an object")
                    .insert(last.clone(), value);
            }
        }
        self.save();
        self
    }

    /// Removes the member at a JSON pointer, if present.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, last) = pointer.rsplit_once('/').expect("pointer");
        match self.config.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(last);
            }
            Some(Value::Array(a)) => {
                a.remove(last.parse::<usize>().expect("array index"));
            }
            _ => {}
        }
        self.save();
        self
    }

    /// Any change through a closure over the whole config.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    /// Pushes onto the array at a JSON pointer (created if missing).
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        if self.config.pointer(pointer).is_none() {
            self.set(pointer, json!([]));
        }
        self.config
            .pointer_mut(pointer)
            .and_then(Value::as_array_mut)
            .expect("pointer names an array")
            .push(value);
        self.save();
        self
    }

    /// Drops the namespace of this type from `linux.namespaces` (the container shares the host's).
    pub fn without_namespace(&mut self, ns: &str) -> &mut Self {
        self.edit(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .retain(|n| n["type"] != ns)
        })
    }

    /// Sets (or adds) the namespace of this type with a `path` to join.
    pub fn join_namespace(&mut self, ns: &str, path: &Path) -> &mut Self {
        self.without_namespace(ns);
        self.push(
            "/linux/namespaces",
            json!({"type": ns, "path": path.to_str().expect("utf-8 path")}),
        )
    }

    /// Adds a user namespace that maps the container's ids 0..65536 to the host's uids from
    /// 100000 and gids from 200000.
    pub fn user_namespace(&mut self) -> &mut Self {
        self.push("/linux/namespaces", json!({"type": "user"}))
            .set(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            )
            .set(
                "/linux/gidMappings",
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
            )
    }

    /// Appends a mount.
    pub fn mount(&mut self, mount: Value) -> &mut Self {
        self.push("/mounts", mount)
    }

    /// Replaces config.json with this text as is (for malformed documents); later changes through
    /// the other methods overwrite it again.
    pub fn write_raw_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config.json");
    }

    fn save(&self) {
        let mut config = self.config.clone();
        if crate::runtime::systemd_cgroup() {
            if let Some(Value::String(path)) = config.pointer_mut("/linux/cgroupsPath") {
                *path = systemd_cgroups_path(path);
            }
        }
        let text = serde_json::to_string_pretty(&config).expect("serialize config");
        std::fs::write(self.config_path(), text).expect("write config.json");
    }
}

/// The prefix of the scopes the systemd lane's bundles ask for.
pub const SYSTEMD_PREFIX: &str = "hull-it";

/// What a bundle's cgroupsPath becomes in the systemd lane ([`crate::runtime::systemd_cgroup`]):
/// a cgroupfs path `/a/b/name` (absolute or relative) is `system.slice:hull-it:name`, the scope
/// `hull-it-name.scope` in system.slice, so the leak checks still find it by `name`; a path
/// already in the systemd form (or empty) is kept as the test wrote it.
pub fn systemd_cgroups_path(path: &str) -> String {
    if path.is_empty() || path.contains(':') {
        return path.to_string();
    }
    let name = path.rsplit('/').find(|c| !c.is_empty()).unwrap_or("root");
    format!("system.slice:{SYSTEMD_PREFIX}:{name}")
}
