//! config-linux.md: namespaces, id mappings, time offsets, devices, sysctl, seccomp, rootfs
//! propagation, masked and readonly paths, personality, memory policy, netDevices, intelRdt, LSMs.
//! Cgroup resources are in resources.rs.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::{caps_in_bounding, checker_case, refused_case, ALL_CAPS};
use crate::harness::{Bundle, Ctx};
use crate::host::NsHolder;

const F: &str = "config-linux.md";
const INVALID: &str = "(config.md: Runtimes MUST generate an error when invalid or unsupported values are encountered)";
const NEW_NS: &str = "namespaces: If path is not specified, the runtime MUST create a new container namespace of type type";

pub fn cases(ctx: &mut Ctx) {
    namespaces(ctx);
    devices(ctx);
    security(ctx);
    filesystem(ctx);
    misc(ctx);
}

fn add_ns(b: &mut Bundle, ns: Value) {
    b.linux()["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(ns);
}

fn user_ns(b: &mut Bundle) {
    add_ns(b, json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.linux()["uidMappings"] = map.clone();
    b.linux()["gidMappings"] = map;
}

fn namespaces(ctx: &mut Ctx) {
    checker_case(
        ctx,
        "namespaces-default",
        F,
        NEW_NS,
        &["namespaces"],
        |_| {},
    );
    checker_case(
        ctx,
        "namespaces-user",
        F,
        NEW_NS,
        &["namespaces", "idmap", "user"],
        user_ns,
    );
    checker_case(ctx, "namespaces-cgroup", F, NEW_NS, &["namespaces"], |b| {
        add_ns(b, json!({"type": "cgroup"}))
    });
    checker_case(
        ctx,
        "namespaces-time",
        F,
        NEW_NS,
        &["namespaces", "timens"],
        |b| {
            add_ns(b, json!({"type": "time"}));
            b.linux()["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 3600, "nanosecs": 500}});
        },
    );
    checker_case(ctx, "namespaces-none-but-mount", F, "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime namespace of that type", &["namespaces"], |b| {
        b.linux()["namespaces"] = json!([{"type": "mount"}]);
        // In the runtime's own UTS namespace a hostname would rename the host.
        b.config.as_object_mut().expect("config").remove("hostname");
        // Without a network namespace sysfs can only be bind mounted; without a pid namespace
        // /proc shows the host's processes, which is what the config asks for.
        let mounts = b.config["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
    });
    if ctx.wants("namespaces-join-path") {
        match NsHolder::spawn("net,uts,ipc,pid") {
            Err(e) => ctx.tap.skip(
                F,
                "namespaces[].path: the runtime MUST place the container process in that namespace",
                "namespaces-join-path",
                &e,
            ),
            Ok(holder) => {
                let mut b = ctx.bundle("namespaces-join-path");
                b.checks(&["namespaces"]);
                let mut list = vec![json!({"type": "mount"})];
                for (spec_type, proc_name) in [
                    ("network", "net"),
                    ("uts", "uts"),
                    ("ipc", "ipc"),
                    ("pid", "pid"),
                ] {
                    let path = holder.path(proc_name);
                    let ino = std::fs::metadata(&path)
                        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                        .unwrap_or(0);
                    b.host["joined_ns"][spec_type] = json!(ino);
                    list.push(json!({"type": spec_type, "path": path}));
                }
                b.linux()["namespaces"] = json!(list);
                ctx.run_checker(&b, F, "namespaces[].path: The runtime MUST place the container process in the namespace associated with that path");
                drop(holder);
            }
        }
    }
    if ctx.wants("namespaces-path-wrong-type") {
        if let Ok(holder) = NsHolder::spawn("uts") {
            let path = holder.path("uts");
            refused_case(ctx, "namespaces-path-wrong-type", F, "The runtime MUST generate an error if path is not associated with a namespace of type type", |b| {
                let list = b.linux()["namespaces"].as_array_mut().expect("namespaces");
                list.retain(|ns| ns["type"] != "network");
                list.push(json!({"type": "network", "path": path}));
            });
        }
    }
    refused_case(ctx, "namespaces-duplicate", F, "If a namespaces field contains duplicated namespaces with same type, the runtime MUST generate an error", |b| {
        add_ns(b, json!({"type": "pid"}));
    });
    refused_case(
        ctx,
        "namespaces-invalid-type",
        F,
        &format!("namespaces[].type {INVALID}"),
        |b| {
            add_ns(b, json!({"type": "oci-conformance-no-such-namespace"}));
        },
    );
}

fn devices(ctx: &mut Ctx) {
    checker_case(
        ctx,
        "default-devices",
        F,
        "the runtime MUST also supply the default devices",
        &["default-devices"],
        |_| {},
    );
    checker_case(
        ctx,
        "devices",
        F,
        "devices lists devices that MUST be available in the container",
        &["devices"],
        |b| {
            b.config["root"]["readonly"] = json!(false);
            b.linux()["devices"] = json!([
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"path": "/dev/conf-block", "type": "b", "major": 7, "minor": 200, "fileMode": 416, "uid": 1, "gid": 2},
                {"path": "/dev/conf-unbuffered", "type": "u", "major": 1, "minor": 11, "fileMode": 384},
                {"path": "/dev/conf-fifo", "type": "p", "fileMode": 420, "uid": 3, "gid": 4},
                {"path": "/outside-dev/conf-char", "type": "c", "major": 240, "minor": 1, "fileMode": 432}
            ]);
        },
    );
    refused_case(ctx, "devices-conflicting-file", F, "devices: If a file already exists at path that does not match the requested device, the runtime MUST generate an error", |b| {
        b.config["root"]["readonly"] = json!(false);
        b.put("/conflict/node", "a regular file");
        b.linux()["devices"] = json!([{"path": "/conflict/node", "type": "c", "major": 240, "minor": 2}]);
    });
    // Major 240 has no driver: an allowed open fails with ENXIO, a denied one with EPERM.
    let device_list = |b: &mut Bundle, rules: Value| {
        b.linux()["devices"] = json!([{"path": "/dev/conf-unregistered", "type": "c", "major": 240, "minor": 0, "fileMode": 438}]);
        b.linux()["resources"]["devices"] = rules;
    };
    let clause = "resources.devices: The runtime MUST apply entries in the listed order";
    checker_case(ctx, "device-cgroup-allow", F, clause, &["expect"], |b| {
        device_list(
            b,
            json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 240, "minor": 0, "access": "rw"}]),
        );
        b.expect(F, "resources.devices: an allowed device can be opened (entries applied in the listed order)", "/dev/conf-unregistered", json!({"open_errno": libc::ENXIO}));
    });
    checker_case(
        ctx,
        "device-cgroup-deny-last",
        F,
        clause,
        &["expect"],
        |b| {
            device_list(
                b,
                json!([
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 240, "minor": 0, "access": "rw"},
                    {"allow": false, "type": "c", "major": 240, "minor": 0, "access": "rw"}
                ]),
            );
            b.expect(F, "resources.devices: a later deny entry overrides an earlier allow (entries applied in the listed order)", "/dev/conf-unregistered", json!({"open_errno": libc::EPERM}));
        },
    );
}

/// Every capability this machine lets the runtime hold, so that only masking can stop a read.
fn all_caps(b: &mut Bundle) {
    let caps: Vec<&str> = ALL_CAPS
        .iter()
        .copied()
        .filter(|c| caps_in_bounding(c))
        .collect();
    b.process()["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
}

fn security(ctx: &mut Ctx) {
    let rule = |names: &[&str], action: &str, args: Value, errno: Option<u32>| {
        let mut r = json!({"names": names, "action": action, "args": args});
        if let Some(e) = errno {
            r["errnoRet"] = json!(e);
        }
        r
    };
    let eq = |v: u64| json!([{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]);
    checker_case(
        ctx,
        "seccomp-errno",
        F,
        "seccomp: the filter is installed",
        &["seccomp"],
        |b| {
            b.linux()["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [rule(&["getpriority"], "SCMP_ACT_ERRNO", eq(1), Some(libc::ENOMSG as u32)),
                             rule(&["getpriority"], "SCMP_ACT_ERRNO", eq(2), None),
                             rule(&["getppid"], "SCMP_ACT_ERRNO", json!([]), Some(libc::EXDEV as u32))]
            });
        },
    );
    checker_case(
        ctx,
        "seccomp-kill",
        F,
        "seccomp: the filter is installed",
        &["seccomp"],
        |b| {
            b.linux()["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [rule(&["getpriority"], "SCMP_ACT_KILL_PROCESS", eq(2), None),
                             rule(&["getpriority"], "SCMP_ACT_TRAP", eq(1), None)]
            });
        },
    );
    refused_case(ctx, "seccomp-errno-on-allow", F, "seccomp errnoRet: When the action doesn't support an errno, the runtime MUST print and error and fail", |b| {
        b.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(&["getppid"], "SCMP_ACT_ALLOW", json!([]), Some(1))]});
    });
    checker_case(
        ctx,
        "sysctl",
        F,
        "sysctl: kernel parameters are modified for the container",
        &["sysctl"],
        |b| {
            b.linux()["sysctl"] = json!({"net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 1000", "kernel.msgmax": "4096", "kernel.shmmni": "1000"});
        },
    );
    let lsm = [
        (
            "selinux-label",
            "/sys/fs/selinux",
            "process.selinuxLabel and linux.mountLabel are applied",
            "SELinux is not enabled on this host",
        ),
        (
            "apparmor-profile",
            "/sys/kernel/security/apparmor",
            "process.apparmorProfile is applied",
            "AppArmor is not enabled on this host",
        ),
    ];
    for (case, path, clause, reason) in lsm {
        if ctx.wants(case) && !Path::new(path).exists() {
            ctx.tap.skip(F, clause, case, reason);
        }
    }
}

fn filesystem(ctx: &mut Ctx) {
    for p in ["shared", "slave", "private", "unbindable"] {
        let case = format!("rootfs-propagation-{p}");
        checker_case(
            ctx,
            &case,
            F,
            "rootfsPropagation sets the rootfs's mount propagation",
            &["propagation"],
            |b| {
                b.linux()["rootfsPropagation"] = json!(p);
            },
        );
    }
    // The same where engines put bundles: rootfsPropagation must not depend on root.path being
    // a mount point already (the run directory is one).
    for (placement, parent) in ctx.placements.clone() {
        for p in ["shared", "slave", "private", "unbindable"] {
            let case = format!("rootfs-propagation-{p}-{}", placement.name());
            if !ctx.wants(&case) {
                continue;
            }
            let mut b = ctx.bundle_in(&case, &parent);
            b.checks(&["propagation"]);
            b.linux()["rootfsPropagation"] = json!(p);
            b.host["rootfs_source_shared"] = json!(crate::host::has_peer_group(&parent));
            ctx.run_checker(
                &b,
                F,
                "rootfsPropagation sets the rootfs's mount propagation",
            );
        }
    }
    checker_case(ctx, "masked-paths", F, "maskedPaths will mask over the provided paths inside the container so that they cannot be read", &["masked"], |b| {
        b.put("/masked-file", "secret");
        b.put("/masked-dir/file", "secret");
        b.linux()["maskedPaths"].as_array_mut().expect("maskedPaths").extend([json!("/masked-file"), json!("/masked-dir")]);
        all_caps(b);
    });
    checker_case(
        ctx,
        "readonly-paths",
        F,
        "readonlyPaths will set the provided paths as readonly inside the container",
        &["readonly-paths", "expect"],
        |b| {
            b.config["root"]["readonly"] = json!(false);
            b.put("/ro-dir/file", "content");
            b.linux()["readonlyPaths"]
                .as_array_mut()
                .expect("readonlyPaths")
                .push(json!("/ro-dir"));
            b.expect(
                F,
                "readonlyPaths: files under a readonly path cannot be opened for writing",
                "/ro-dir/file",
                json!({"open_errno": libc::EROFS}),
            );
            all_caps(b);
        },
    );
}

fn misc(ctx: &mut Ctx) {
    checker_case(
        ctx,
        "personality",
        F,
        "personality sets the Linux execution personality",
        &["personality"],
        |b| {
            b.linux()["personality"] = json!({"domain": "LINUX32"});
        },
    );
    checker_case(
        ctx,
        "memory-policy",
        F,
        "memoryPolicy sets the NUMA memory policy for the container",
        &["mempolicy"],
        |b| {
            b.linux()["memoryPolicy"] =
                json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]});
        },
    );
    let rdt = "If intelRdt is set and no mounted resctrl pseudo-filesystem is available in the runtime mount namespace, the runtime MUST generate an error";
    if Path::new("/sys/fs/resctrl/schemata").exists() {
        if ctx.wants("intel-rdt-without-resctrl") {
            ctx.tap.skip(
                F,
                rdt,
                "intel-rdt-without-resctrl",
                "resctrl is mounted on this host",
            );
        }
    } else {
        refused_case(ctx, "intel-rdt-without-resctrl", F, rdt, |b| {
            b.linux()["intelRdt"] = json!({"closID": "oci-conformance"});
        });
    }
    if ctx.wants("net-devices") {
        net_devices(ctx);
    }
}

/// Moves a virtual interface made for the case into the container's network namespace; it dies
/// with that namespace.
fn net_devices(ctx: &mut Ctx) {
    let case = "net-devices";
    let clause = "netDevices: a set of network devices that MUST be made available in the container; the runtime MUST set the device state to up";
    let host_name = format!("ocic{}", std::process::id() % 100_000);
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // Whichever virtual link type this kernel has.
    if !["dummy", "ifb"]
        .iter()
        .any(|kind| ip(&["link", "add", &host_name, "type", kind]))
    {
        return ctx.tap.skip(
            F,
            clause,
            case,
            "cannot create a dummy or ifb interface with ip link add",
        );
    }
    let mut b = ctx.bundle(case);
    b.checks(&["netdev"]);
    b.linux()["netDevices"] = json!({host_name.clone(): {"name": "conf0"}});
    let run = ctx.run_checker(&b, F, clause);
    // Only meaningful once the device did reach the container.
    if run
        .lines
        .iter()
        .any(|l| l.starts_with("ok\t") && l.contains("netDevices"))
    {
        let back = Path::new("/sys/class/net").join(&host_name).exists()
            || Path::new("/sys/class/net/conf0").exists();
        let clause = "netDevices: The runtime MUST NOT attempt to move the interface out of the namespace before deletion";
        ctx.check(
            F,
            clause,
            case,
            !back,
            "the interface is back in the runtime's network namespace after delete",
        );
    }
    ip(&["link", "del", &host_name]);
}
