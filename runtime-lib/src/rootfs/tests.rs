//! Real-kernel tests of the rootfs sequence. Each runs in a forked child that unshares its mount
//! namespace (made private) and plays the init: prepare, pivot, finalize, then looks at the result
//! from inside. The parent checks the exit status and that nothing leaked into the host.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use oci_spec::runtime::Spec;
use procfs::process::{MountInfo, Process};
use serde_json::{json, Value};

use super::{finalize, pivot, prepare, BindSources};
use crate::error::{InitFailure, InitStep};
use crate::syscall::LinuxSyscall;

type Check = Result<(), String>;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = PathBuf::from(format!("/tmp/hull-rootfs-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("rootfs/bin")).unwrap();
        TempDir(p)
    }
    fn rootfs(&self) -> PathBuf {
        self.0.join("rootfs")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` in a child with a private mount namespace; asserts it exits 0 and leaks no mount.
fn in_child(f: impl FnOnce(&TempDir) -> Check) -> TempDir {
    let dir = TempDir::new();
    // SAFETY: the child only sets up its namespace, runs `f` and leaves with _exit, never returning
    // into the test harness; glibc's fork handlers keep malloc usable in the child.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            let r = private_mount_ns().and_then(|()| f(&dir));
            let code = match r {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "rootfs test child: {e}");
                    1
                }
            };
            // SAFETY: ends the child without running the parent's destructors or harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(
                status,
                WaitStatus::Exited(child, 0),
                "child failed, see stderr"
            );
            let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let name = dir.0.to_str().unwrap();
            assert!(
                !host.contains(name),
                "a mount leaked into the host:\n{host}"
            );
            dir
        }
    }
}

fn private_mount_ns() -> Check {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
    let flags = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("make / private: {e}"))
}

fn spec(mounts: Value, linux: Value, readonly: bool) -> Spec {
    serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": readonly},
        "mounts": mounts,
        "linux": linux,
    }))
    .unwrap()
}

fn ensure(cond: bool, what: impl std::fmt::Display) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn mount_at(point: &str) -> Result<MountInfo, String> {
    let mounts = Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| e.to_string())?;
    mounts
        .0
        .into_iter()
        .rev()
        .find(|m| m.mount_point == Path::new(point))
        .ok_or_else(|| format!("no mount at {point}"))
}

fn is_ro(m: &MountInfo) -> bool {
    m.mount_options.contains_key("ro")
}

fn run_all(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Check {
    let sys = LinuxSyscall;
    let prepared = prepare(spec, rootfs, &BindSources::default(), &sys)
        .map_err(|e| format!("prepare: {e}"))?;
    pivot(rootfs, no_pivot, &sys).map_err(|e| format!("pivot: {e}"))?;
    finalize(spec, &prepared, &sys).map_err(|e| format!("finalize: {e}"))
}

/// runc's default config, as `runc spec` writes it (less the network-less sysfs fallback).
fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": "/sys/fs/cgroup/unified", "type": "cgroup2", "source": "cgroup2",
         "options": ["nosuid", "noexec", "nodev"]},
    ])
}

#[test]
fn default_config_sequence() {
    in_child(|dir| {
        let linux = json!({
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/timer_list", "/proc/nonexistent"],
            "readonlyPaths": ["/proc/sys", "/proc/bus", "/proc/nonexistent"],
            "devices": [{"path": "/dev/sub/fuse", "type": "c", "major": 10, "minor": 229,
                         "fileMode": 0o600, "uid": 5, "gid": 6}],
        });
        run_all(&spec(default_mounts(), linux, true), &dir.rootfs(), false)?;

        ensure(is_ro(&mount_at("/")?), "/ is not read-only")?;
        ensure(std::fs::write("/newfile", b"x").is_err(), "/ is writable")?;
        let sys = mount_at("/sys")?;
        ensure(
            sys.fs_type == "sysfs" && is_ro(&sys),
            "/sys is not a read-only sysfs",
        )?;
        ensure(mount_at("/dev/pts")?.fs_type == "devpts", "no devpts")?;
        ensure(mount_at("/dev/mqueue")?.fs_type == "mqueue", "no mqueue")?;
        let shm = std::fs::metadata("/dev/shm").map_err(|e| e.to_string())?;
        ensure(shm.permissions().mode() & 0o7777 == 0o1777, "/dev/shm mode")?;

        // Devices: defaults with runc's numbers and mode, the configured one as configured.
        for (path, maj, min) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
        ]
        .into_iter()
        .chain([
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ]) {
            let m = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
            let rdev = nix::sys::stat::makedev(maj, min);
            ensure(m.file_type().is_char_device() && m.rdev() == rdev, path)?;
            ensure(
                m.permissions().mode() & 0o777 == 0o666,
                format!("{path} mode"),
            )?;
        }
        let fuse = std::fs::metadata("/dev/sub/fuse").map_err(|e| e.to_string())?;
        ensure(fuse.rdev() == nix::sys::stat::makedev(10, 229), "fuse rdev")?;
        ensure(fuse.permissions().mode() & 0o777 == 0o600, "fuse mode")?;
        ensure((fuse.uid(), fuse.gid()) == (5, 6), "fuse owner")?;
        let link = |p: &str| std::fs::read_link(p).unwrap_or_default();
        ensure(link("/dev/ptmx") == Path::new("pts/ptmx"), "/dev/ptmx")?;
        ensure(link("/dev/fd") == Path::new("/proc/self/fd"), "/dev/fd")?;
        ensure(
            link("/dev/stderr") == Path::new("/proc/self/fd/2"),
            "/dev/stderr",
        )?;
        std::fs::write("/dev/null", b"x").map_err(|e| format!("write /dev/null: {e}"))?;

        // Masked and read-only paths.
        let timer_list = std::fs::read("/proc/timer_list").map_err(|e| e.to_string())?;
        ensure(timer_list.is_empty(), "/proc/timer_list is not masked")?;
        if let Ok(mut entries) = std::fs::read_dir("/proc/acpi") {
            ensure(entries.next().is_none(), "/proc/acpi is not masked")?;
            ensure(
                is_ro(&mount_at("/proc/acpi")?),
                "/proc/acpi mask is writable",
            )?;
        }
        let err = std::fs::write("/proc/sys/kernel/hostname", b"x").unwrap_err();
        ensure(
            err.raw_os_error() == Some(libc::EROFS),
            "/proc/sys is writable",
        )?;
        ensure(is_ro(&mount_at("/proc/bus")?), "/proc/bus is writable")?;

        // cgroup v1: a tmpfs with the init's own cgroup of each hierarchy, read-only.
        ensure(
            mount_at("/sys/fs/cgroup")?.fs_type == "tmpfs",
            "no cgroup tmpfs",
        )?;
        let memory = mount_at("/sys/fs/cgroup/memory")?;
        ensure(
            memory.fs_type == "cgroup" && is_ro(&memory),
            "memory cgroup",
        )?;
        ensure(
            Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists(),
            "cgroup.procs",
        )?;
        ensure(
            mount_at("/sys/fs/cgroup/unified")?.fs_type == "cgroup2",
            "no cgroup2",
        )?;

        // The old root is gone: nothing of the host remains visible.
        let mounts = Process::myself().and_then(|p| p.mountinfo()).unwrap();
        for m in mounts.iter() {
            let p = &m.mount_point;
            let ours =
                p == Path::new("/") || ["/proc", "/dev", "/sys"].iter().any(|d| p.starts_with(d));
            ensure(ours, format!("{} still mounted", p.display()))?;
        }
        ensure(!Path::new("/usr").exists(), "host / visible")
    });
}

#[test]
fn symlinked_destinations_stay_inside_the_rootfs() {
    let escape = PathBuf::from(format!("/tmp/hull-rootfs-escape-{}", std::process::id()));
    let dir = in_child(|dir| {
        let rootfs = dir.rootfs();
        let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, rootfs.join(name));
        link("/etc", "evil").unwrap();
        link(&format!("../../../../../..{}", escape.display()), "evil2").unwrap();
        link("/nonexistent/deep", "dangling").unwrap();
        // The last component itself a dangling symlink: no shortcut may mount on the link.
        link("/made/here", "dangling_last").unwrap();
        std::fs::write(dir.0.join("file"), b"bound").unwrap();
        let mounts = json!([
            {"destination": "/evil", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/evil2/x", "type": "bind", "source": dir.0.join("file"),
             "options": ["ro"]},
            {"destination": "/dangling/y", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dangling_last", "type": "tmpfs", "source": "tmpfs"},
        ]);
        let spec = spec(mounts, json!({}), false);
        prepare(&spec, &rootfs, &BindSources::default(), &LinuxSyscall)
            .map_err(|e| e.to_string())?;
        // Seen from the host side of the (private) namespace, before the pivot.
        let etc = rootfs.join("etc");
        ensure(
            mount_at(etc.to_str().unwrap())?.fs_type == "tmpfs",
            "/evil not at rootfs/etc",
        )?;
        ensure(mount_at("/etc").is_err(), "the host's /etc was covered")?;
        let x = rootfs.join(escape.strip_prefix("/").unwrap()).join("x");
        ensure(
            std::fs::read(&x).ok().as_deref() == Some(b"bound"),
            "bind not inside",
        )?;
        ensure(is_ro(&mount_at(x.to_str().unwrap())?), "bind not read-only")?;
        ensure(!escape.exists(), "created on the host")?;
        let y = rootfs.join("nonexistent/deep/y");
        ensure(
            mount_at(y.to_str().unwrap()).is_ok(),
            "dangling symlink not followed inside",
        )?;
        let here = rootfs.join("made/here");
        ensure(
            mount_at(here.to_str().unwrap())?.fs_type == "tmpfs",
            "dangling last component not followed inside",
        )
    });
    assert!(!escape.exists(), "{} created on the host", escape.display());
    assert!(dir.rootfs().join("nonexistent/deep/y").is_dir());
}

#[test]
fn bind_options_propagation_and_recursive_attributes() {
    in_child(|dir| {
        let src = dir.0.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(dir.0.join("file"), b"hello").unwrap();
        // A submount, to tell rbind+rro (whole tree) from a plain ro remount (top only).
        nix::mount::mount(
            Some("tmpfs"),
            &src.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| e.to_string())?;
        let mounts = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "none", "source": src,
             "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rshared"]},
            {"destination": "/tree", "type": "bind", "source": src,
             "options": ["rbind", "rro", "rprivate"]},
            {"destination": "/etc/file", "source": dir.0.join("file"), "options": ["bind"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["ro", "mode=700"]},
        ]);
        run_all(&spec(mounts, json!({}), false), &dir.rootfs(), false)?;

        let data = mount_at("/data")?;
        ensure(is_ro(&data), "/data not ro")?;
        for o in ["nosuid", "nodev", "noexec"] {
            ensure(
                data.mount_options.contains_key(o),
                format!("/data lacks {o}"),
            )?;
        }
        let shared = |m: &MountInfo| {
            m.opt_fields
                .iter()
                .any(|f| matches!(f, procfs::process::MountOptFields::Shared(_)))
        };
        ensure(shared(&data), "/data not shared")?;
        ensure(!is_ro(&mount_at("/data/sub")?), "ro is not recursive")?;
        ensure(
            is_ro(&mount_at("/tree")?) && is_ro(&mount_at("/tree/sub")?),
            "rro",
        )?;
        ensure(!shared(&mount_at("/tree")?), "/tree not private")?;
        ensure(
            std::fs::read("/etc/file").unwrap_or_default() == b"hello",
            "file bind",
        )?;
        let scratch = mount_at("/scratch")?;
        ensure(
            scratch.fs_type == "tmpfs" && is_ro(&scratch),
            "/scratch not a ro tmpfs",
        )?;
        let mode = std::fs::metadata("/scratch")
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        ensure(mode & 0o777 == 0o700, "tmpfs data not passed")?;
        // No /dev mount: runc still makes the devices, on the rootfs itself.
        ensure(
            Path::new("/dev/null").exists() && Path::new("/dev/ptmx").is_symlink(),
            "/dev",
        )
    });
}

#[test]
fn no_pivot_moves_the_rootfs_onto_slash() {
    in_child(|dir| {
        std::fs::write(dir.rootfs().join("marker"), b"inside").unwrap();
        let mounts = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
        run_all(&spec(mounts, json!({}), true), &dir.rootfs(), true)?;
        ensure(
            std::fs::read("/marker").unwrap_or_default() == b"inside",
            "not in rootfs",
        )?;
        ensure(is_ro(&mount_at("/")?), "/ not read-only")?;
        ensure(std::fs::read_dir("/tmp").is_err(), "host /tmp visible")
    });
}

#[test]
fn tmpcopyup_keeps_the_covered_files() {
    let dir = in_child(|dir| {
        let etc = dir.rootfs().join("etc");
        std::fs::create_dir_all(etc.join("sub")).unwrap();
        std::fs::write(etc.join("hosts"), b"127.0.0.1 localhost\n").unwrap();
        std::fs::write(etc.join("sub/deep"), b"deep").unwrap();
        std::os::unix::fs::symlink("hosts", etc.join("link")).unwrap();
        let mounts = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
             "options": ["tmpcopyup", "nosuid"]},
        ]);
        run_all(&spec(mounts, json!({}), false), &dir.rootfs(), false)?;
        ensure(mount_at("/etc")?.fs_type == "tmpfs", "/etc not a tmpfs")?;
        ensure(
            std::fs::read("/etc/hosts").unwrap_or_default() == b"127.0.0.1 localhost\n",
            "hosts",
        )?;
        ensure(
            std::fs::read("/etc/sub/deep").unwrap_or_default() == b"deep",
            "deep",
        )?;
        ensure(
            std::fs::read_link("/etc/link").unwrap_or_default() == Path::new("hosts"),
            "link",
        )?;
        std::fs::write("/etc/new", b"x").map_err(|e| e.to_string())
    });
    assert!(
        !dir.rootfs().join("etc/new").exists(),
        "tmpfs write reached the rootfs"
    );
}

#[test]
fn bad_mounts_fail_clearly() {
    in_child(|dir| {
        let rootfs = dir.rootfs();
        std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).unwrap();
        let try_one = |mount: Value, linux: Value| -> Result<InitFailure, String> {
            match prepare(
                &spec(json!([mount]), linux, false),
                &rootfs,
                &BindSources::default(),
                &LinuxSyscall,
            ) {
                Ok(_) => Err(format!("accepted {mount}")),
                Err(f) => Ok(f),
            }
        };
        let f = try_one(
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            json!({}),
        )?;
        ensure(
            f.step == InitStep::Mount && f.subject.as_deref() == Some("/proc"),
            &f,
        )?;
        ensure(
            f.to_string()
                .contains("must be mounted on ordinary directory"),
            &f,
        )?;

        // Below /proc, only the files lxcfs emulates; `..` is resolved, not a way around.
        std::fs::remove_file(rootfs.join("proc")).unwrap();
        std::fs::create_dir(rootfs.join("proc")).unwrap();
        std::fs::create_dir(rootfs.join("sys")).unwrap();
        let f = try_one(
            json!({"destination": "/sys/../proc/foo", "type": "bind", "source": "/tmp",
                   "options": ["rbind"]}),
            json!({}),
        )?;
        ensure(
            f.to_string()
                .contains("cannot be mounted because it is inside /proc"),
            &f,
        )?;

        let f = try_one(
            json!({"destination": "/x", "source": "/tmp", "options": ["bind", "idmap"]}),
            json!({}),
        )?;
        ensure(
            f.to_string().contains("\"idmap\" is not supported by hull"),
            &f,
        )?;

        let f = try_one(
            json!({"destination": "/x", "source": "/nonexistent", "options": ["bind"]}),
            json!({}),
        )?;
        ensure(
            f.errno == Some(libc::ENOENT) && f.subject.as_deref() == Some("/x"),
            &f,
        )?;
        ensure(f.to_string().starts_with("mount \"/x\": stat source"), &f)?;

        let f = try_one(
            json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs"}),
            json!({"rootfsPropagation": "sideways"}),
        )?;
        ensure(f.step == InitStep::RootfsPropagation, &f)?;

        let f = try_one(
            json!({"destination": "/x", "type": "nosuchfs", "source": "x"}),
            json!({}),
        )?;
        ensure(
            f.errno == Some(libc::ENODEV) && f.step == InitStep::Mount,
            &f,
        )
    });
}

#[test]
fn user_namespace_binds_devices_and_keeps_locked_flags() {
    in_child(|dir| {
        // A user namespace of our own, root mapped to root: mknod is refused there and the
        // copied mounts' flags are locked.
        let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
        nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))?;
        for (file, map) in [
            ("setgroups", "deny"),
            ("uid_map", "0 0 1"),
            ("gid_map", "0 0 1"),
        ] {
            std::fs::write(format!("/proc/self/{file}"), map)
                .map_err(|e| format!("{file}: {e}"))?;
        }
        let mounts = json!([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "mode=755"]}]);
        run_all(&spec(mounts, json!({}), true), &dir.rootfs(), false)?;
        let null = std::fs::metadata("/dev/null").map_err(|e| e.to_string())?;
        ensure(
            null.file_type().is_char_device(),
            "/dev/null is not the host's device",
        )?;
        ensure(
            null.rdev() == nix::sys::stat::makedev(1, 3),
            "/dev/null rdev",
        )?;
        std::fs::write("/dev/null", b"x").map_err(|e| format!("write /dev/null: {e}"))?;
        let err = std::fs::write("/newfile", b"x").unwrap_err();
        ensure(
            err.raw_os_error() == Some(libc::EROFS),
            "/ is not read-only",
        )
    });
}
