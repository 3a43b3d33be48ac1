//! Rootless podman as a real client: podman run by an unprivileged test user (its own storage
//! and runroot, `--cgroup-manager cgroupfs`, `--network none`, a busybox `--rootfs`) with the
//! runtime under test as its only runtime. Podman runs the runtime as root of its own user
//! namespace (euid 0 there), so `--rootless auto` must see that, and its default root follows
//! `$XDG_RUNTIME_DIR`.

use std::path::PathBuf;

use integration_tests::podman;
use integration_tests::rootless::TestUser;
use integration_tests::runtime::{runtime_binary, Output};

struct RootlessPodman {
    user: TestUser,
    dir: PathBuf,
}

impl RootlessPodman {
    fn new() -> Option<RootlessPodman> {
        if !podman::available() {
            return None;
        }
        let user = TestUser::create();
        let dir = user.home.join("podman");
        std::fs::create_dir_all(dir.join("rootfs")).expect("create podman dir");
        integration_tests::rootfs::build(&dir.join("rootfs"));
        let runroot = user.runtime_dir.join("podman-run");
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             netns = \"none\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n\
             runtime = \"hull\"\nruntime_supports_json = [\"hull\"]\n\
             [engine.runtimes]\nhull = [{:?}]\n",
            runtime_binary().display().to_string()
        );
        std::fs::write(dir.join("containers.conf"), conf).expect("write containers.conf");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = {:?}\ngraphroot = {:?}\n",
            runroot,
            dir.join("root")
        );
        std::fs::write(dir.join("storage.conf"), storage).expect("write storage.conf");
        let wrapper = format!(
            "#!/bin/sh\nexport CONTAINERS_CONF={conf:?} CONTAINERS_STORAGE_CONF={storage:?}\n\
             exec podman --root {root:?} --runroot {runroot:?} --tmpdir {tmp:?} \
             --cgroup-manager cgroupfs --events-backend none \"$@\"\n",
            conf = dir.join("containers.conf"),
            storage = dir.join("storage.conf"),
            root = dir.join("root"),
            tmp = user.runtime_dir.join("podman-tmp"),
        );
        std::fs::write(dir.join("pm"), wrapper).expect("write podman wrapper");
        std::fs::set_permissions(
            dir.join("pm"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod wrapper");
        let owner = format!("{}:{}", user.uid, user.gid);
        let chown = std::process::Command::new("chown")
            .args(["-R", &owner])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chown.success());
        Some(RootlessPodman { user, dir })
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.user.run(&self.dir.join("pm"), args)
    }

    fn run(&self, flags: &[&str], command: &[&str]) -> Output {
        let rootfs = self.dir.join("rootfs");
        let mut args = vec!["run", "--network", "none"];
        args.extend(flags);
        args.extend(["--rootfs", rootfs.to_str().expect("utf-8")]);
        args.extend(command);
        self.podman(&args)
    }

    /// No container left in the runtime's state root (the user's `$XDG_RUNTIME_DIR/hull`), and
    /// only podman's own long-lived pause process running as the user: podman itself (`podman
    /// pause`), or `catatonit -P` where catatonit is installed (podman prefers it).
    fn assert_clean(&self) {
        let root = self.user.default_root(runtime_binary());
        let left = self.user.leftovers(&root);
        assert!(left.is_empty(), "left in {}: {left:?}", root.display());
        let ps = self.podman(&["ps", "--all", "--quiet"]);
        assert_eq!(ps.ok().out(), "", "podman still lists containers");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let others = || -> Vec<String> {
            self.user
                .processes()
                .into_iter()
                .filter(|p| !is_pause_process(*p))
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
                .collect()
        };
        while !others().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(others().is_empty(), "left running: {:?}", others());
    }
}

/// Rootless podman's pause process, which keeps its user namespace for the next command: a
/// podman process it names `podman pause`, or `catatonit -P` where catatonit is installed.
fn is_pause_process(pid: i32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|b| *b == 0);
    match comm.trim() {
        "podman pause" => true,
        "catatonit" => args.nth(1) == Some(b"-P".as_slice()),
        _ => false,
    }
}

macro_rules! podman_or_skip {
    () => {
        match RootlessPodman::new() {
            Some(p) => p,
            None => {
                eprintln!("skipped: podman or conmon missing");
                return;
            }
        }
    };
}

#[test]
fn echo_and_exit_code() {
    let p = podman_or_skip!();
    let out = p.run(&["--rm"], &["sh", "-c", "echo hello; exit 4"]);
    assert_eq!(out.code(), 4, "{out}");
    assert!(out.stdout.contains("hello"), "{out}");
    p.assert_clean();
}

#[test]
fn detached_exec_and_stop() {
    let p = podman_or_skip!();
    p.run(&["-d", "--name", "d1"], &["sleep", "1000"]).ok();
    let out = p.podman(&["exec", "d1", "sh", "-c", "echo inside; exit 5"]);
    assert_eq!(out.code(), 5, "{out}");
    assert!(out.stdout.contains("inside"), "{out}");
    p.podman(&["stop", "--time", "1", "d1"]).ok();
    p.podman(&["rm", "d1"]).ok();
    p.assert_clean();
}

#[test]
fn tty() {
    let p = podman_or_skip!();
    // podman -t needs a terminal on its own stdin: script(1) gives it one.
    let rootfs = p.dir.join("rootfs");
    let line = format!(
        "{} run --rm -t --network none --rootfs {} sh -c 'test -t 0 && tty'",
        p.dir.join("pm").display(),
        rootfs.display()
    );
    let out = p.user.run(
        std::path::Path::new("/usr/bin/script"),
        &["-qec", &line, "/dev/null"],
    );
    assert!(out.ok().stdout.contains("/dev/pts/0"), "{out}");
    p.assert_clean();
}

#[test]
fn userns_keep_id() {
    let p = podman_or_skip!();
    let out = p.run(&["--rm", "--userns", "keep-id"], &["id", "-u"]);
    assert_eq!(out.ok().out().trim(), p.user.uid.to_string());
    p.assert_clean();
}

#[test]
fn ten_in_a_row_leave_nothing() {
    let p = podman_or_skip!();
    for i in 0..10 {
        let out = p.run(&["--rm"], &["sh", "-c", &format!("echo run {i}")]);
        assert!(out.ok().stdout.contains(&format!("run {i}")), "{out}");
    }
    p.assert_clean();
}
