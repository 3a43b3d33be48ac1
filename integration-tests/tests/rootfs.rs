//! The root filesystem as the container sees it: mounts, devices, pivot_root / --no-pivot,
//! read-only root, masked and read-only paths.

use integration_tests::{only_hull, Bundle, Runtime};
use serde_json::json;

/// One /proc/self/mountinfo line, split.
struct Mnt {
    root: String,
    point: String,
    opts: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    source: String,
    super_opts: Vec<String>,
}

fn mountinfo(text: &str) -> Vec<Mnt> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            Some(Mnt {
                root: f[3].into(),
                point: f[4].into(),
                opts: f[5].split(',').map(String::from).collect(),
                optional: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: p[0].into(),
                source: p[1].into(),
                super_opts: p
                    .get(2)
                    .unwrap_or(&"")
                    .split(',')
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

fn find<'a>(mounts: &'a [Mnt], point: &str) -> &'a Mnt {
    // The last mount at a point is the visible one.
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("nothing mounted at {point}"))
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|o| o == item)
}

#[test]
fn default_mounts_of_runc_spec() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = rt.run(&b);
    let m = mountinfo(&out.ok().stdout);
    let root = find(&m, "/");
    assert!(has(&root.opts, "ro"), "readonly root");
    assert!(
        root.root.ends_with("/rootfs") && root.root.contains("hull-it"),
        "/ is the bundle's rootfs: {}",
        root.root
    );
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(find(&m, point).fstype, fstype, "{point}");
    }
    let pts = find(&m, "/dev/pts");
    assert!(has(&pts.super_opts, "ptmxmode=666"), "{:?}", pts.super_opts);
    assert!(has(&pts.super_opts, "mode=620"), "{:?}", pts.super_opts);
    assert!(has(&pts.super_opts, "gid=5"), "{:?}", pts.super_opts);
    let sys = find(&m, "/sys");
    assert!(has(&sys.opts, "ro") && has(&sys.opts, "nosuid") && has(&sys.opts, "noexec"));
    find(&m, "/sys/fs/cgroup");
    let shm = find(&m, "/dev/shm");
    assert!(has(&shm.super_opts, "size=65536k"), "{:?}", shm.super_opts);
}

#[test]
fn old_root_is_gone_after_pivot_root() {
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_root = mountinfo(&host)
        .into_iter()
        .rev()
        .find(|m| m.point == "/")
        .expect("host root");
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["cat", "/proc/self/mountinfo"]);
    for no_pivot in [false, true] {
        let out = rt.run_cmd(&b, |c| if no_pivot { c.arg("--no-pivot") } else { c });
        let m = mountinfo(&out.ok().stdout);
        // The host's root would show as a mount of its source with fs root "/".
        assert!(
            !m.iter()
                .any(|x| x.source == host_root.source && x.root == host_root.root),
            "no_pivot={no_pivot}: the host's root is visible:\n{}",
            out.stdout
        );
        assert!(find(&m, "/").root.ends_with("/rootfs"));
    }
}

#[test]
fn no_pivot_runs_in_the_rootfs() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("ls / | tr '\\n' ' '; test -e /work && echo host-visible || echo confined");
    let out = rt.run_cmd(&b, |c| c.arg("--no-pivot"));
    let text = out.ok().out();
    assert!(text.contains("bin") && text.contains("etc"), "{text}");
    assert!(text.ends_with("confined"), "{text}");
}

#[test]
fn readonly_root() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("touch /written 2>&1; echo rc=$?");
    let out = rt.run(&b);
    assert!(out.ok().stdout.contains("Read-only file system"), "{out}");
    assert!(!b.rootfs().join("written").exists());

    b.set("/root/readonly", json!(false));
    assert_eq!(rt.run(&b).ok().out(), "rc=0");
    assert!(b.rootfs().join("written").exists());
}

#[test]
fn tmpfs_with_options_and_missing_destination() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(json!({
        "destination": "/new/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=1m", "mode=700", "nosuid", "noexec", "nodev", "noatime"]
    }))
    .args(&["cat", "/proc/self/mountinfo"]);
    let out = rt.run(&b);
    let m = mountinfo(&out.ok().stdout);
    let data = find(&m, "/new/data");
    assert_eq!(data.fstype, "tmpfs");
    for o in ["rw", "nosuid", "noexec", "nodev", "noatime"] {
        assert!(has(&data.opts, o), "{o} in {:?}", data.opts);
    }
    assert!(has(&data.super_opts, "size=1024k"), "{:?}", data.super_opts);
    assert!(has(&data.super_opts, "mode=700"), "{:?}", data.super_opts);
}

#[test]
fn bind_mounts_ro_and_rw() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let ro = rt.scratch().join("ro-src");
    let rw = rt.scratch().join("rw-src");
    std::fs::create_dir(&ro).unwrap();
    std::fs::create_dir(&rw).unwrap();
    std::fs::write(ro.join("marker"), "ro-marker").unwrap();
    b.mount(json!({"destination": "/ro", "type": "bind", "source": ro, "options": ["bind", "ro"]}))
        .mount(
            json!({"destination": "/rw", "type": "none", "source": rw, "options": ["rbind", "rw"]}),
        )
        .sh("cat /ro/marker; echo; touch /ro/x 2>&1; echo from-container > /rw/out && echo wrote");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines[0], "ro-marker");
    assert!(lines[1].contains("Read-only file system"), "{out}");
    assert_eq!(lines[2], "wrote");
    assert_eq!(
        std::fs::read_to_string(rw.join("out")).unwrap(),
        "from-container\n"
    );
    assert!(!ro.join("x").exists());
}

#[test]
fn bind_mount_of_a_file_creates_a_file_destination() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let src = rt.scratch().join("extra.conf");
    std::fs::write(&src, "setting=1\n").unwrap();
    b.mount(json!({"destination": "/etc/extra.conf", "type": "bind", "source": src, "options": ["bind", "ro"]}))
        .sh("test -f /etc/extra.conf && cat /etc/extra.conf");
    assert_eq!(rt.run(&b).ok().out(), "setting=1");
    assert!(b.rootfs().join("etc/extra.conf").is_file());
}

#[test]
fn rbind_is_recursive_and_bind_is_not() {
    // /sys/fs/cgroup is a tmpfs with a cgroup hierarchy mounted at each controller's directory.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(json!({"destination": "/rec", "type": "bind", "source": "/sys/fs/cgroup", "options": ["rbind", "ro"]}))
        .mount(json!({"destination": "/flat", "type": "bind", "source": "/sys/fs/cgroup", "options": ["bind", "ro"]}))
        .sh("ls /rec/pids | grep -c cgroup.procs; ls /flat/pids | wc -l");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines, ["1", "0"], "{out}");
}

#[test]
fn mount_propagation_options() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(json!({"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]}))
        .mount(json!({"destination": "/private", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}))
        .mount(json!({"destination": "/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]}))
        .args(&["cat", "/proc/self/mountinfo"]);
    let out = rt.run(&b);
    let m = mountinfo(&out.ok().stdout);
    assert!(
        find(&m, "/shared")
            .optional
            .iter()
            .any(|o| o.starts_with("shared:")),
        "{}",
        out.stdout
    );
    assert!(find(&m, "/private").optional.is_empty(), "{}", out.stdout);
    assert!(
        has(&find(&m, "/unbindable").optional, "unbindable"),
        "{}",
        out.stdout
    );
}

#[test]
fn default_devices() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t %T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done",
    );
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "/dev/null character special file 1 3 666",
            "/dev/zero character special file 1 5 666",
            "/dev/full character special file 1 7 666",
            "/dev/random character special file 1 8 666",
            "/dev/urandom character special file 1 9 666",
            "/dev/tty character special file 5 0 666",
            "/dev/fd /proc/self/fd",
            "/dev/stdin /proc/self/fd/0",
            "/dev/stdout /proc/self/fd/1",
            "/dev/stderr /proc/self/fd/2",
            "/dev/ptmx pts/ptmx",
        ]
    );
}

#[test]
fn devices_work() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo gone > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c");
    assert_eq!(
        rt.run(&b)
            .ok()
            .stdout
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["4", "4"]
    );
}

#[test]
fn config_devices() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001}]),
    )
    .args(&["stat", "-c", "%F %t %T %a %u %g", "/dev/mynull"]);
    assert_eq!(
        rt.run(&b).ok().out(),
        "character special file 1 3 600 1000 1001"
    );
}

#[test]
fn default_masked_and_readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(
        "stat -c '%t %T' /proc/keys /proc/timer_list; ls -A /proc/acpi | wc -l; \
         grep -E ' /proc/sys | /proc/bus | /proc/fs | /proc/irq | /sys/firmware ' /proc/self/mountinfo | cut -d' ' -f5,6",
    );
    let out = rt.run(&b);
    let text = out.ok().stdout.as_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1 3", "/proc/keys is /dev/null");
    assert_eq!(lines[1], "1 3", "/proc/timer_list is /dev/null");
    assert_eq!(lines[2], "0", "/proc/acpi is empty");
    for p in [
        "/proc/sys",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/sys/firmware",
    ] {
        let line = lines
            .iter()
            .find(|l| l.split(' ').next() == Some(p))
            .unwrap_or_else(|| panic!("{p} not mounted: {text}"));
        assert!(
            line.split(' ')
                .nth(1)
                .unwrap()
                .split(',')
                .any(|o| o == "ro"),
            "{line}"
        );
    }
}

#[test]
fn custom_masked_and_readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    std::fs::create_dir_all(b.rootfs().join("secret")).unwrap();
    std::fs::write(b.rootfs().join("secret/key"), "hidden").unwrap();
    std::fs::write(b.rootfs().join("etc/token"), "hidden").unwrap();
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    b.set("/root/readonly", json!(false))
        .set("/linux/maskedPaths", json!(["/secret", "/etc/token", "/does/not/exist"]))
        .set("/linux/readonlyPaths", json!(["/data", "/does/not/exist/either"]))
        .sh("ls -A /secret | wc -l; cat /etc/token | wc -c; touch /data/x 2>&1; touch /ok && echo root-writable");
    let out = rt.run(&b);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines[0].trim(), "0");
    assert_eq!(lines[1].trim(), "0");
    assert!(lines[2].contains("Read-only file system"), "{out}");
    assert_eq!(lines[3], "root-writable");
}

#[test]
fn hostname() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/hostname", json!("boxname")).args(&["hostname"]);
    assert_eq!(rt.run(&b).ok().out(), "boxname");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "boxname");
}

#[test]
fn domainname() {
    if !only_hull("runc 1.1.5 ignores domainname (runc 1.2 sets it)") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set("/domainname", json!("example.test"))
        .args(&["cat", "/proc/sys/kernel/domainname"]);
    assert_eq!(rt.run(&b).ok().out(), "example.test");
    let host = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    assert_ne!(host.trim(), "example.test");
}

#[test]
fn sysctl_is_applied_inside_only() {
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_rmid = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let flip = |v: &str| if v.trim() == "1" { "0" } else { "1" };
    let (fwd, rmid) = (flip(&host_forward), flip(&host_rmid));
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": fwd, "kernel.shm_rmid_forced": rmid}),
    )
    .sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced");
    assert_eq!(rt.run(&b).ok().stdout, format!("{fwd}\n{rmid}\n"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_rmid
    );
}

#[test]
fn recursive_read_only_reaches_submounts() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(json!({"destination": "/top-ro", "type": "bind", "source": "/sys/fs/cgroup", "options": ["rbind", "ro"]}))
        .mount(json!({"destination": "/all-ro", "type": "bind", "source": "/sys/fs/cgroup", "options": ["rbind", "rro"]}))
        .args(&["cat", "/proc/self/mountinfo"]);
    let out = rt.run(&b);
    let m = mountinfo(&out.ok().stdout);
    assert!(has(&find(&m, "/top-ro").opts, "ro"));
    // `ro` on an rbind makes only the top mount read-only, `rro` every submount too.
    assert!(has(&find(&m, "/top-ro/pids").opts, "rw"), "{}", out.stdout);
    assert!(has(&find(&m, "/all-ro").opts, "ro"));
    assert!(has(&find(&m, "/all-ro/pids").opts, "ro"), "{}", out.stdout);
}

#[test]
fn atime_options() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    for (dest, opt) in [
        ("/a", "noatime"),
        ("/b", "strictatime"),
        ("/c", "relatime"),
        ("/d", "nodiratime"),
    ] {
        b.mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": [opt]}));
    }
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = rt.run(&b);
    let m = mountinfo(&out.ok().stdout);
    assert!(has(&find(&m, "/a").opts, "noatime"));
    let b_opts = &find(&m, "/b").opts;
    assert!(
        !has(b_opts, "relatime") && !has(b_opts, "noatime"),
        "{b_opts:?}"
    );
    assert!(has(&find(&m, "/c").opts, "relatime"));
    assert!(has(&find(&m, "/d").opts, "nodiratime"));
}

/// Unmounts a test's own bind of a bundle onto itself when the test ends, however it ends.
struct SelfBind(std::path::PathBuf);

impl SelfBind {
    /// `dir` bound onto itself, its propagation set to `flag` (the parent mount of a bundle as an
    /// engine's state directory may be: shared on systemd hosts, private elsewhere).
    fn new(dir: &std::path::Path, flag: nix::mount::MsFlags) -> SelfBind {
        use nix::mount::{mount, MsFlags};
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let guard = SelfBind(dir.to_path_buf());
        mount(None::<&str>, dir, None::<&str>, flag, None::<&str>).unwrap();
        guard
    }
}

impl Drop for SelfBind {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// linux.rootfsPropagation, every value, with the bundle on a plain directory of the host's root
/// mount (where "unbindable" applied to "/" before the bind of root.path once failed every
/// create), under a private parent mount and under a shared one. Inside, "/" has the propagation
/// asked for; nothing the container mounted shows on the host.
#[test]
fn rootfs_propagation_wherever_the_bundle_is() {
    use nix::mount::MsFlags;
    let rt = Runtime::new();
    for parent in [None, Some(MsFlags::MS_PRIVATE), Some(MsFlags::MS_SHARED)] {
        // The host's own "/" is shared on systemd hosts, private on this test bed's.
        let host_root_shared = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/") && l.contains(" shared:"));
        let shared_parent = parent.map_or(host_root_shared, |p| p == MsFlags::MS_SHARED);
        for (propagation, expect) in [
            ("private", None),
            ("rprivate", None),
            // A slave of a private mount has no master to show.
            ("slave", shared_parent.then_some("master:")),
            ("rslave", shared_parent.then_some("master:")),
            ("shared", Some("shared:")),
            ("rshared", Some("shared:")),
            ("unbindable", Some("unbindable")),
            ("runbindable", Some("unbindable")),
        ] {
            if propagation.ends_with("unbindable") && !integration_tests::runtime::is_hull() {
                // runc 1.1.5 applies it to "/" before binding root.path, and fails there.
                continue;
            }
            let mut b = Bundle::new();
            b.set("/linux/rootfsPropagation", json!(propagation))
                .args(&["cat", "/proc/self/mountinfo"]);
            let bind = parent.map(|flag| SelfBind::new(b.path(), flag));
            let id = rt.new_id();
            let out = rt.cmd(["run", "--bundle"]).arg(b.path()).last(&id).output();
            let what = format!("rootfsPropagation {propagation}, parent {parent:?}");
            assert!(out.success(), "{what}: {out}");
            let root = find(&mountinfo(&out.stdout), "/").optional.clone();
            match expect {
                None => assert!(
                    !root
                        .iter()
                        .any(|o| o.starts_with("shared:") || o == "unbindable"),
                    "{what}: / has {root:?}"
                ),
                Some(tag) => assert!(
                    root.iter().any(|o| o.starts_with(tag)),
                    "{what}: / has {root:?}, wanted {tag}"
                ),
            }
            let under = integration_tests::leaks::mounts_under(b.path());
            let own = usize::from(bind.is_some());
            assert_eq!(under.len(), own, "{what}: host sees {under:?}");
            drop(bind);
            rt.assert_no_leaks(&b, &[&id]);
        }
    }
}
