//! Namespaces: new ones are new, joined ones are the very namespace named by `path`, the user
//! namespace maps ids as configured.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A process of our own in a new network namespace, to join by /proc/<pid>/ns/net. Killed and
/// reaped on drop.
struct NetnsHolder(Child);

impl NetnsHolder {
    fn new() -> NetnsHolder {
        let mut cmd = Command::new(integration_tests::rootfs::HOST_BUSYBOX);
        cmd.args(["sleep", "1000"]).stdin(Stdio::null());
        // SAFETY: unshare(2) is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        NetnsHolder(cmd.spawn().expect("spawn netns holder"))
    }

    fn ns_path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0.id()).into()
    }
}

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn new_namespaces_differ_from_the_hosts() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/linux/namespaces", json!({"type": "cgroup"})).sh(
        "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done",
    );
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    for line in lines {
        let (kind, ns) = line.split_once(' ').unwrap();
        if kind == "user" {
            assert_eq!(ns, host_ns(kind), "no user namespace was asked for");
        } else {
            assert_ne!(ns, host_ns(kind), "{kind} namespace must be new");
        }
    }
}

#[test]
fn leaving_out_a_namespace_shares_the_hosts() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.without_namespace("network")
        .without_namespace("ipc")
        .sh("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines, [host_ns("net"), host_ns("ipc")]);
}

#[test]
fn pid_namespace_sees_only_its_own_processes() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("ls -d /proc/[0-9]* | wc -l; echo $$");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().map(str::trim).collect();
    // sh, and `ls` (the pipe's other side is a subshell or wc): a handful, never the host's.
    let n: usize = lines[0].parse().unwrap();
    assert!(n <= 4, "{n} processes visible");
    assert_eq!(lines[1], "1");
}

#[test]
fn cgroup_namespace_roots_the_containers_cgroups() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/linux/namespaces", json!({"type": "cgroup"}))
        .args(&["cat", "/proc/self/cgroup"]);
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert!(lines.iter().any(|l| l.contains(":pids:")), "{out}");
    for line in lines {
        assert!(
            line.ends_with(":/"),
            "cgroup path is the namespace root: {line}"
        );
    }
}

#[test]
fn join_network_namespace_by_path() {
    let holder = NetnsHolder::new();
    // The holder's unshare happens before its exec; wait until its namespace is the new one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let target = loop {
        if let Ok(l) = std::fs::read_link(holder.ns_path()) {
            if l.to_string_lossy() != host_ns("net") {
                break l.to_string_lossy().into_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "holder never unshared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.join_namespace("network", &holder.ns_path())
        .args(&["readlink", "/proc/self/ns/net"]);
    assert_eq!(rt.run(&b).ok().out(), target);
}

#[test]
fn join_the_network_namespace_of_another_container() {
    let rt = Runtime::new();
    let mut first = Bundle::new();
    first.args(&["sleep", "1000"]);
    let a = rt.new_id();
    rt.create(&first, &a).ok();
    rt.start(&a).ok();
    let pid = rt.state(&a)["pid"].as_i64().unwrap();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();

    let mut second = Bundle::new();
    second
        .join_namespace(
            "network",
            std::path::Path::new(&format!("/proc/{pid}/ns/net")),
        )
        .args(&["readlink", "/proc/self/ns/net"]);
    assert_eq!(rt.run(&second).ok().out(), theirs.to_string_lossy());

    rt.delete_force(&a).ok();
    rt.assert_no_leaks(&first, &[&a]);
}

fn userns_bundle() -> Bundle {
    let mut b = Bundle::new();
    b.user_namespace();
    b
}

#[test]
fn user_namespace_maps_ids() {
    let rt = Runtime::new();
    let mut b = userns_bundle();
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
         stat -c '%u %g' /bin/busybox; echo x > /dev/null && echo devnull-ok");
    let out = rt.run(&b);
    let lines: Vec<Vec<&str>> = out
        .ok()
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "200000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
    // Host root's files are unmapped inside: the overflow ids.
    assert_eq!(lines[4], ["65534", "65534"]);
    assert_eq!(lines[5], ["devnull-ok"]);
}

#[test]
fn user_namespace_process_runs_as_the_mapped_host_ids() {
    let rt = Runtime::new();
    let mut b = userns_bundle();
    b.set("/process/user", json!({"uid": 5, "gid": 6}))
        .args(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), "100005");
    assert_eq!(field("Gid:"), "200006");
    let user_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(user_ns.to_string_lossy(), host_ns("user"));
    rt.delete_force(&id).ok();
    rt.assert_no_leaks(&b, &[&id]);
}

#[test]
fn uts_namespace_is_needed_for_a_hostname() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.without_namespace("uts").set("/hostname", json!("nope"));
    rt.create_fails(&b).stderr_has(&["hostname", "uts"]);
}

#[test]
fn time_namespace_offsets() {
    if !only_hull("runc 1.1.5 has no time namespace support") {
        return;
    }
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.push("/linux/namespaces", json!({"type": "time"}))
        .set(
            "/linux/timeOffsets",
            json!({"monotonic": {"secs": 864000, "nanosecs": 0}, "boottime": {"secs": 864000, "nanosecs": 0}}),
        )
        .args(&["cat", "/proc/uptime"]);
    let out = rt.run(&b);
    let inside: f64 = out
        .ok()
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        inside >= host_uptime + 864000.0 && inside < host_uptime + 864000.0 + 60.0,
        "uptime inside {inside}, host {host_uptime}"
    );
}

/// Docker with --userns-remap: the bundle sits in containerd's state directory, which is 0700 and
/// owned by the host's root, and the config always has oomScoreAdj. The mapped root can neither
/// traverse that directory nor write a /proc file of the host's root: whatever the init does as
/// the mapped root must not need to. Both, and oomScoreAdj alone.
#[test]
fn user_namespace_bundle_under_a_0700_directory_with_oom_score_adj() {
    use std::os::unix::fs::PermissionsExt;
    if !integration_tests::only_hull(
        "runc 1.1.5 binds root.path by its absolute path, which the mapped root cannot traverse",
    ) {
        return;
    }
    let rt = Runtime::new();
    for locked in [false, true] {
        let mut b = userns_bundle();
        // <bundle>/state (0700, root) / ctr (the bundle the engine hands over), and a volume
        // beside it (Docker's -v of a directory under a 0700 one, such as /root).
        let state = b.path().join("state");
        let bundle = state.join("ctr");
        let volume = state.join("volume");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::create_dir_all(&volume).unwrap();
        std::fs::write(volume.join("f"), "from the host\n").unwrap();
        b.set("/process/oomScoreAdj", json!(500))
            .mount(json!({"destination": "/tmp", "type": "bind",
                          "source": volume, "options": ["rbind", "ro"]}))
            .sh("cat /proc/self/oom_score_adj; id -u; ls /bin/busybox; cat /tmp/f");
        for f in ["config.json", "rootfs"] {
            std::fs::rename(b.path().join(f), bundle.join(f)).unwrap();
        }
        let mode = if locked { 0o700 } else { 0o755 };
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
        let id = rt.new_id();
        let out = rt.cmd(["run", "--bundle"]).arg(&bundle).last(&id).output();
        let lines: Vec<&str> = out.ok().stdout.lines().collect();
        assert_eq!(
            lines,
            ["500", "0", "/bin/busybox", "from the host"],
            "state dir {mode:o}: {out}"
        );
        rt.assert_no_leaks(&b, &[&id]);
    }
}
