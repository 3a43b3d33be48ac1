//! config-linux.md "Control groups": cgroupsPath and `resources`, read from the host side while
//! the container is `created` (create MUST already have applied them).

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{cgroup_dir, Bundle, Ctx};

const F: &str = "config-linux.md";
const CREATE: &str = "(runtime.md: create: all of the properties configured in config.json except for process MUST be applied)";

/// One cgroup v1 file a resource field must have set: (field, controller, file, expected content).
type Want = (&'static str, &'static str, &'static str, String);

pub fn cases(ctx: &mut Ctx) {
    cgroups_path(ctx);
    let mib = |n: u64| n << 20;
    resource_case(
        ctx,
        "resources-memory",
        json!({"memory": {
            "limit": mib(64), "reservation": mib(32), "swap": mib(128), "swappiness": 17, "disableOOMKiller": true
        }}),
        vec![
            (
                "memory.limit",
                "memory",
                "memory.limit_in_bytes",
                mib(64).to_string(),
            ),
            (
                "memory.reservation",
                "memory",
                "memory.soft_limit_in_bytes",
                mib(32).to_string(),
            ),
            (
                "memory.swap",
                "memory",
                "memory.memsw.limit_in_bytes",
                mib(128).to_string(),
            ),
            (
                "memory.swappiness",
                "memory",
                "memory.swappiness",
                "17".into(),
            ),
            (
                "memory.disableOOMKiller",
                "memory",
                "memory.oom_control",
                "oom_kill_disable 1".into(),
            ),
        ],
    );
    resource_case(
        ctx,
        "resources-cpu",
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "idle": 0}}),
        vec![
            ("cpu.shares", "cpu", "cpu.shares", "512".into()),
            ("cpu.quota", "cpu", "cpu.cfs_quota_us", "50000".into()),
            ("cpu.period", "cpu", "cpu.cfs_period_us", "100000".into()),
            ("cpu.burst", "cpu", "cpu.cfs_burst_us", "10000".into()),
        ],
    );
    resource_case(
        ctx,
        "resources-cpuset",
        json!({"cpu": {"cpus": "0", "mems": "0"}}),
        vec![
            ("cpu.cpus", "cpuset", "cpuset.cpus", "0".into()),
            ("cpu.mems", "cpuset", "cpuset.mems", "0".into()),
        ],
    );
    resource_case(
        ctx,
        "resources-pids",
        json!({"pids": {"limit": 77}}),
        vec![("pids.limit", "pids", "pids.max", "77".into())],
    );
    if let Some((major, minor)) = a_block_device() {
        let dev = |rate: u64| json!([{"major": major, "minor": minor, "rate": rate}]);
        resource_case(
            ctx,
            "resources-blkio-throttle",
            json!({"blockIO": {
                "throttleReadBpsDevice": dev(1 << 20), "throttleWriteBpsDevice": dev(2 << 20),
                "throttleReadIOPSDevice": dev(300), "throttleWriteIOPSDevice": dev(400)
            }}),
            vec![
                (
                    "blockIO.throttleReadBpsDevice",
                    "blkio",
                    "blkio.throttle.read_bps_device",
                    format!("{major}:{minor} {}", 1 << 20),
                ),
                (
                    "blockIO.throttleWriteBpsDevice",
                    "blkio",
                    "blkio.throttle.write_bps_device",
                    format!("{major}:{minor} {}", 2 << 20),
                ),
                (
                    "blockIO.throttleReadIOPSDevice",
                    "blkio",
                    "blkio.throttle.read_iops_device",
                    format!("{major}:{minor} 300"),
                ),
                (
                    "blockIO.throttleWriteIOPSDevice",
                    "blkio",
                    "blkio.throttle.write_iops_device",
                    format!("{major}:{minor} 400"),
                ),
            ],
        );
    }
    resource_case(
        ctx,
        "resources-blkio-weight",
        json!({"blockIO": {"weight": 300}}),
        vec![("blockIO.weight", "blkio", "blkio.weight", "300".into())],
    );
    resource_case(
        ctx,
        "resources-hugetlb",
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": mib(4)}]}),
        vec![(
            "hugepageLimits",
            "hugetlb",
            "hugetlb.2MB.limit_in_bytes",
            mib(4).to_string(),
        )],
    );
    resource_case(
        ctx,
        "resources-network",
        json!({"network": {"classID": 1048577}}),
        vec![(
            "network.classID",
            "net_cls",
            "net_cls.classid",
            "1048577".into(),
        )],
    );
    resource_case(
        ctx,
        "resources-rdma",
        json!({"rdma": {"mlx5_1": {"hcaHandles": 3}}}),
        vec![("rdma", "rdma", "rdma.max", "mlx5_1 hca_handle=3".into())],
    );
    unified_missing_controller(ctx);
}

/// A whole-disk block device of this machine, for the throttle settings.
fn a_block_device() -> Option<(u32, u32)> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    entries.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("zram") || name.starts_with("ram") {
            return None;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

fn with_cgroup(ctx: &Ctx, b: &mut Bundle) -> String {
    let path = format!("{}/{}", ctx.cgroup_parent, b.case);
    b.linux()["cgroupsPath"] = json!(path);
    path
}

fn cgroups_path(ctx: &mut Ctx) {
    let clause = "cgroupsPath: in the case of an absolute path, the runtime MUST take the path to be relative to the cgroups mount point";
    for (case, cgroupns) in [("cgroups-path", false), ("cgroups-path-cgroupns", true)] {
        if !ctx.wants(case) {
            continue;
        }
        let mut b = ctx.bundle(case);
        let path = with_cgroup(ctx, &mut b);
        b.checks(&["cgroup"]);
        if cgroupns {
            b.linux()["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .push(json!({"type": "cgroup"}));
        }
        ctx.run_checker_with(&b, F, clause, |ctx, b, pid| {
            let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let ok = procs.lines().any(|p| p.trim() == pid.to_string());
            ctx.check(
                F,
                clause,
                &b.case,
                ok,
                format!("{}/cgroup.procs {procs:?} lacks pid {pid}", dir.display()),
            );
        });
    }
}

fn resource_case(ctx: &mut Ctx, case: &str, resources: Value, wants: Vec<Want>) {
    if !ctx.wants(case) {
        return;
    }
    // What this kernel has no file for cannot be observed: skipped. The root cgroup shows every
    // file a child has, except the limits that only exist below the root.
    const BELOW_ROOT_ONLY: [&str; 1] = ["pids.max"];
    let root = |c: &str| Path::new("/sys/fs/cgroup").join(c);
    let (present, absent): (Vec<Want>, Vec<Want>) = wants.into_iter().partition(|(_, c, f, _)| {
        root(c).join(f).exists()
            || (BELOW_ROOT_ONLY.contains(f) && root(c).join("cgroup.procs").exists())
    });
    for (field, controller, file, _) in &absent {
        let clause = format!("resources.{field} {CREATE}");
        ctx.tap.skip(
            F,
            &clause,
            case,
            &format!("this host has no cgroup v1 {controller}/{file}"),
        );
    }
    if present.is_empty() {
        return;
    }
    let mut b = ctx.bundle(case);
    with_cgroup(ctx, &mut b);
    b.linux()["resources"] = resources;
    b.checks(&["cgroup"]);
    ctx.run_checker_with(
        &b,
        F,
        &format!("resources are applied {CREATE}"),
        |ctx, b, pid| {
            for (field, controller, file, want) in &present {
                let clause = format!("resources.{field} {CREATE}");
                let dir = cgroup_dir(pid, controller);
                if let Some(d) = dir
                    .as_ref()
                    .filter(|d| d.exists() && !d.join(file).exists())
                {
                    let reason = format!("this kernel has no {file} (looked in {})", d.display());
                    ctx.tap.skip(F, &clause, &b.case, &reason);
                    continue;
                }
                let got = dir.map(|d| std::fs::read_to_string(d.join(file)).unwrap_or_default());
                let ok = got
                    .as_ref()
                    .is_some_and(|g| g.lines().any(|l| l.trim() == want) || g.trim() == want);
                ctx.check(
                    F,
                    &clause,
                    &b.case,
                    ok,
                    format!("{controller}/{file} = {got:?}, want {want:?}"),
                );
            }
        },
    );
}

fn unified_missing_controller(ctx: &mut Ctx) {
    let case = "resources-unified-missing-controller";
    if !ctx.wants(case) {
        return;
    }
    let clause = "unified: The runtime MUST generate an error when the configuration refers to a cgroup controller that is not present or that cannot be enabled";
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers"))
        .unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "pids") {
        return ctx.tap.skip(
            F,
            clause,
            case,
            "the pids controller is available on cgroup v2 here",
        );
    }
    let mut b = ctx.bundle(case);
    with_cgroup(ctx, &mut b);
    b.linux()["resources"]["unified"] = json!({"pids.max": "10"});
    ctx.expect_create_error(&b, F, clause);
}
