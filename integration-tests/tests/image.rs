//! `hull::image`: OCI image layouts run as real containers on overlayfs roots whose writable
//! layer outlives a run and goes with the container, and layers that try to write outside the
//! store refused.
//!
//! `harness = false`, as tests/library_api.rs and for the same reason: the library forks the
//! container's init from this process, which must be single-threaded (and sealed). An argument
//! filters cases by substring.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use hull::image::{apply_image_config, ContainerRoot, Image, ImageLayout, LayerStore};
use hull::oci_spec::runtime::Spec;
use hull::{Container, Error};
use integration_tests::image::{
    blob_path, busybox_layer, busybox_layers, default_config, write_layout, Compression, Layer,
    Tar, Written,
};
use integration_tests::leaks::{assert_no_leaks, mounts_under};
use integration_tests::TempDir;
use serde_json::{json, Value};

/// A test's directory: `layout/` (the image), `store/` (the layer store), `state/` (hull's
/// state root) and `outside/` (a host directory no layer may write to, holding `target`).
struct Case {
    dir: TempDir,
    written: Written,
}

impl Case {
    fn new(layers: &[Layer], config: Value) -> Case {
        let dir = TempDir::new("image");
        for d in ["layout", "store", "state", "outside"] {
            std::fs::create_dir(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("outside/target"), "host secret\n").unwrap();
        let written = write_layout(&dir.join("layout"), layers, config);
        Case { dir, written }
    }

    fn busybox(config: Value) -> Case {
        Case::new(&busybox_layers(), config)
    }

    fn layout(&self) -> ImageLayout {
        ImageLayout::open(self.dir.join("layout")).expect("open layout")
    }

    fn image(&self) -> Image {
        self.layout().image(Some("latest")).expect("read image")
    }

    fn store(&self) -> LayerStore {
        LayerStore::open(self.dir.join("store")).expect("open store")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn id(&self) -> String {
        format!(
            "hull-img-{}-{:04}",
            std::process::id(),
            integration_tests::tmp::unique()
        )
    }

    /// The container root of a new container `id` of this case's image.
    fn root(&self, id: &str) -> ContainerRoot {
        let store = self.store();
        let layers = store.unpack(&self.layout(), &self.image()).expect("unpack");
        ContainerRoot::create(&store, id, &layers).expect("create container root")
    }

    /// The image's process (with `args` instead of its Cmd when given) for the container `root`.
    fn spec(&self, root: &ContainerRoot, args: Option<&[&str]>) -> Spec {
        let mut spec = Spec::default();
        let args: Option<Vec<String>> = args.map(|a| a.iter().map(|s| s.to_string()).collect());
        apply_image_config(
            &mut spec,
            self.image().config(),
            &root.rootfs(),
            args.as_deref(),
        )
        .expect("apply image config");
        spec
    }

    /// `outside/` must still hold only `target`, unchanged and not linked from anywhere.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["target"], "a layer wrote outside the store");
        let target = self.dir.join("outside/target");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "host secret\n");
        assert_eq!(
            std::fs::metadata(&target).unwrap().nlink(),
            1,
            "a layer hard-linked the host's file"
        );
    }

    fn assert_clean(&self, ids: &[&str]) {
        assert_no_leaks(&self.state(), ids, &[self.dir.path()]);
    }
}

/// A case that failed half-way leaves its container roots mounted; they are unmounted here so
/// that the directory goes too (the failure is already reported).
impl Drop for Case {
    fn drop(&mut self) {
        let Ok(mounts) = procfs::process::Process::myself().and_then(|p| p.mountinfo()) else {
            return;
        };
        for m in mounts.iter().rev() {
            if m.mount_point.starts_with(self.dir.path()) {
                let _ = nix::mount::umount2(&m.mount_point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Runs one container on `root` with `spec` to its end and deletes it, returning its exit
/// code. The one place that turns a spec into a container: from memory, through the builder.
fn run(root: &ContainerRoot, spec: &Spec, state: &Path, id: &str) -> i32 {
    let mut c = Container::builder(id)
        .spec(root.spec(spec).expect("the container root's spec"))
        .root(state)
        .create()
        .expect("create");
    c.start().expect("start");
    let code = c.wait().expect("wait");
    c.delete(false).expect("delete");
    code
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn entries(dir: impl AsRef<Path>) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn image_config_reaches_the_process() {
    let mut config = default_config();
    config["User"] = json!("nobody");
    let case = Case::busybox(config);
    let id = case.id();
    let root = case.root(&id);
    let spec = case.spec(&root, None);
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);
    // Cmd ran (after the Entrypoint), with the image's Env, in its WorkingDir, as its User
    // (nobody's uid and group from the image's own /etc/passwd).
    assert_eq!(
        read(root.upper().join("tmp/out")),
        "from-image:/srv/app:65534:65534\n"
    );
    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string()));
    assert!(
        env.contains(&"TERM=xterm".to_string()),
        "the spec's own env stays"
    );
    root.remove().expect("remove");
    case.assert_clean(&[&id]);
}

fn layer_unpacked_once_for_two_containers() {
    let case = Case::busybox(default_config());
    let store = case.store();
    let first = store.unpack(&case.layout(), &case.image()).unwrap();
    let base_ino = std::fs::metadata(&first[0]).unwrap().ino();
    let (a, b) = (case.id(), case.id());
    let root_a = ContainerRoot::create(&store, &a, &first).unwrap();
    let second = store.unpack(&case.layout(), &case.image()).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        std::fs::metadata(&second[0]).unwrap().ino(),
        base_ino,
        "the layer was unpacked again"
    );
    let root_b = ContainerRoot::create(&store, &b, &second).unwrap();
    assert_eq!(entries(store.path().join("layers/sha256")), 2);
    assert_eq!(entries(store.path().join("tmp")), 0);

    // Both containers see the store's one copy of busybox.
    let busybox_ino = std::fs::metadata(first[0].join("bin/busybox"))
        .unwrap()
        .ino();
    for (root, id) in [(&root_a, &a), (&root_b, &b)] {
        let spec = case.spec(root, Some(&["stat -c %i /bin/busybox > /tmp/ino"]));
        assert_eq!(run(root, &spec, &case.state(), id), 0);
        assert_eq!(
            read(root.upper().join("tmp/ino")).trim(),
            busybox_ino.to_string()
        );
    }
    root_a.remove().unwrap();
    root_b.remove().unwrap();
    assert!(first.iter().all(|l| l.is_dir()), "layers stay in the store");
    case.assert_clean(&[&a, &b]);
}

fn writable_layer_survives_stop_and_start() {
    let case = Case::busybox(default_config());
    let id = case.id();
    let root = case.root(&id);
    let spec = case.spec(
        &root,
        Some(&["echo run1 > /note && echo changed > /keep && rm /etc/layer2"]),
    );
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);

    // Stopped: unmounted, as after a reboot; opened again, it is mounted from layers.json.
    root.unmount().unwrap();
    assert!(!root.is_mounted());
    drop(root);
    let root = ContainerRoot::open(&case.store(), &id).expect("open again");
    assert!(root.is_mounted());
    let spec = case.spec(
        &root,
        Some(&[
            "{ cat /note /keep; test -e /etc/layer2 && echo present || echo gone; } > /tmp/seen",
        ]),
    );
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);
    assert_eq!(read(root.upper().join("tmp/seen")), "run1\nchanged\ngone\n");
    root.remove().unwrap();
    case.assert_clean(&[&id]);
}

fn remove_takes_the_upper_layer_and_the_mount() {
    let case = Case::busybox(default_config());
    let id = case.id();
    let root = case.root(&id);
    let spec = case.spec(&root, Some(&["echo data > /written"]));
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);
    let dir = root.path().to_path_buf();
    assert!(root.upper().join("written").exists());
    assert!(!mounts_under(&dir).is_empty());
    let layers = root.layers().to_vec();
    root.remove().expect("remove");
    assert!(
        !dir.exists(),
        "the container's directory (upper, work) stays"
    );
    assert_eq!(mounts_under(case.dir.path()), Vec::<String>::new());
    assert!(layers.iter().all(|l| l.is_dir()));
    assert!(matches!(
        ContainerRoot::open(&case.store(), &id),
        Err(Error::ContainerNotFound { .. })
    ));
    case.assert_clean(&[&id]);
}

/// A container root is not removed from under a container that still runs on it: the writable
/// layer would vanish under the container's processes. Checked while the host still has the
/// root mounted, and after the host unmounted it (the container keeps its own copy).
fn remove_refused_while_a_container_runs_on_the_root() {
    let case = Case::busybox(default_config());
    let id = case.id();
    let root = case.root(&id);
    let spec = case.spec(&root, Some(&["sleep 60"]));
    let mut c = Container::builder(&id)
        .spec(root.spec(&spec).expect("the container root's spec"))
        .root(case.state())
        .create()
        .expect("create");
    c.start().expect("start");
    std::fs::write(root.upper().join("work-in-progress"), b"x").unwrap();
    let err = root
        .remove()
        .expect_err("removed under a running container");
    assert!(
        err.to_string().contains(&format!("/proc/{}/root", c.pid())),
        "{err}"
    );
    let store = case.store();
    let root = ContainerRoot::open(&store, &id).expect("the root is still there");
    root.unmount().expect("unmount on the host");
    let err = root
        .remove()
        .expect_err("removed under a running container");
    assert!(err.to_string().contains("still runs"), "{err}");
    let root = ContainerRoot::open(&store, &id).expect("the root is still there");
    assert!(root.upper().join("work-in-progress").exists());
    c.kill(hull::Signal::SIGKILL, false).expect("kill");
    c.wait().expect("wait");
    c.delete(false).expect("delete");
    root.remove().expect("remove once the container is gone");
    case.assert_clean(&[&id]);
}

fn whiteouts_hide_lower_files() {
    let case = Case::busybox(default_config());
    let id = case.id();
    let root = case.root(&id);
    let spec = case.spec(
        &root,
        Some(&["{ ls /opq; test -e /etc/motd-lower && echo visible || echo hidden; cat /keep /etc/layer2; } > /tmp/seen"]),
    );
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);
    assert_eq!(
        read(root.upper().join("tmp/seen")),
        "b\nhidden\nkept\nfrom layer 2\n"
    );
    // In the store: a 0:0 character device for the whiteout, the attribute for the opaque dir.
    let top = &root.layers()[1];
    let wh = std::fs::symlink_metadata(top.join("etc/motd-lower")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(!top.join("etc/.wh.motd-lower").exists());
    assert!(!top.join("opq/.wh..wh..opq").exists());
    assert_eq!(
        xattr(&top.join("opq"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    root.remove().unwrap();
    case.assert_clean(&[&id]);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and live for the call; the kernel writes at most
    // `buf.len()` bytes into `buf`.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// Each hostile layer (on top of the busybox one) must be refused naming its entry, leave
/// nothing in the store but the good layer, and write nothing outside.
fn hostile_layers_are_refused() {
    type Build = fn(&str) -> (Vec<u8>, String);
    let hostile: &[(&str, Build)] = &[
        ("dot-dot", |_| {
            let e = "../../../outside/dotdot";
            (Tar::new().file(e, b"x").finish(), e.into())
        }),
        ("absolute path", |out| {
            let e = format!("{out}/abs");
            (Tar::new().file(&e, b"x").finish(), e)
        }),
        ("file through a symlink", |out| {
            let t = Tar::new()
                .symlink("evil", out)
                .file("evil/through", b"x")
                .finish();
            (t, "evil/through".into())
        }),
        ("file through a relative symlink", |_| {
            let t = Tar::new()
                .symlink("up", "../../../outside")
                .file("up/through", b"x")
                .finish();
            (t, "up/through".into())
        }),
        ("hard link out with ..", |_| {
            let t = Tar::new()
                .hardlink("hl", "../../../outside/target")
                .finish();
            (t, "hl".into())
        }),
        ("hard link to an absolute path", |out| {
            let t = Tar::new().hardlink("hl", &format!("{out}/target")).finish();
            (t, "hl".into())
        }),
        ("hard link through a symlink", |out| {
            let t = Tar::new()
                .symlink("s", out)
                .hardlink("hl", "s/target")
                .finish();
            (t, "hl".into())
        }),
        ("device node", |_| {
            (Tar::new().char_device("mem", 1, 1).finish(), "mem".into())
        }),
    ];
    let base = busybox_layer();
    let mut failed = Vec::new();
    for (what, build) in hostile {
        let attempt = || {
            // The layout is written once the case's directory exists, so names can point at it.
            let case = Case::new(&[], json!({}));
            let out = case.dir.join("outside");
            let (tar, entry) = build(out.to_str().unwrap());
            let layers = [
                Layer {
                    tar: base.clone(),
                    compression: Compression::Gzip,
                },
                Layer {
                    tar,
                    compression: Compression::None,
                },
            ];
            let written = write_layout(&case.dir.join("layout"), &layers, default_config());
            let store = case.store();
            let result = store.unpack(&case.layout(), &case.image());
            case.assert_outside_untouched();
            let err = result.expect_err("the layer was accepted");
            match &err {
                Error::LayerEntry {
                    entry: e, layer, ..
                } => {
                    assert_eq!(e, Path::new(&entry), "{err}");
                    assert_eq!(layer, &written.layers[1], "{err}");
                }
                other => panic!("not a refused entry: {other}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&format!("{entry:?}")), "{msg}");
            eprintln!("  {what}: {msg}");
            // The good layer stays, the refused one left nothing behind.
            assert_eq!(entries(store.path().join("layers/sha256")), 1);
            assert_eq!(entries(store.path().join("tmp")), 0);
            case.assert_clean(&[]);
        };
        if std::panic::catch_unwind(attempt).is_err() {
            eprintln!("  {what}: FAILED");
            failed.push(*what);
        }
    }
    assert!(failed.is_empty(), "hostile layers not refused: {failed:?}");
}

/// A symlink to the host in one layer and a file "through" it in the next: each layer is
/// unpacked into its own directory, so the next layer makes a real directory of its own, and
/// overlayfs shows that directory over the symlink. Nothing reaches the host.
fn symlink_in_one_layer_file_in_the_next_stays_inside() {
    let case = Case::new(&[], json!({}));
    let out = case.dir.join("outside");
    let mut base = busybox_layer();
    // Replace the base's end-of-archive blocks (tar::Builder writes two) with the symlink
    // entry and new ones.
    base.truncate(base.len() - 1024);
    base.extend(Tar::new().symlink("evil", out.to_str().unwrap()).finish());
    let layers = [
        Layer {
            tar: base,
            compression: Compression::Gzip,
        },
        Layer {
            tar: Tar::new().file("evil/x", b"layer 2\n").finish(),
            compression: Compression::Zstd,
        },
    ];
    write_layout(&case.dir.join("layout"), &layers, default_config());
    let id = case.id();
    let root = case.root(&id);
    case.assert_outside_untouched();
    let spec = case.spec(
        &root,
        Some(&["{ test -d /evil && ! test -L /evil && cat /evil/x; } > /tmp/seen"]),
    );
    assert_eq!(run(&root, &spec, &case.state(), &id), 0);
    assert_eq!(read(root.upper().join("tmp/seen")), "layer 2\n");
    case.assert_outside_untouched();
    root.remove().unwrap();
    case.assert_clean(&[&id]);
}

fn devices_only_when_allowed() {
    let layers = [Layer {
        tar: Tar::new().char_device("null", 1, 3).finish(),
        compression: Compression::None,
    }];
    let case = Case::new(&layers, default_config());
    let opts = hull::image::UnpackOptions {
        allow_devices: true,
        ..Default::default()
    };
    let store = case.store().with_options(opts);
    let dirs = store.unpack(&case.layout(), &case.image()).expect("unpack");
    let dev = std::fs::symlink_metadata(dirs[0].join("null")).unwrap();
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), libc::makedev(1, 3));
    case.assert_clean(&[]);
}

/// What a layer makes the unpacker hold or write is bounded: a PAX header the tar reader would
/// read whole into memory (a few KiB of gzip can stand for gigabytes), and, when the store asks,
/// the decompressed size and the number of entries. Each is refused naming the entry, and
/// leaves nothing in the store.
fn oversized_layers_are_refused() {
    let attempt = |tar: Vec<u8>, opts: hull::image::UnpackOptions, entry: &str, problem: &str| {
        let layers = [Layer {
            tar,
            compression: Compression::Gzip,
        }];
        let case = Case::new(&layers, default_config());
        let store = case.store().with_options(opts);
        let err = store
            .unpack(&case.layout(), &case.image())
            .expect_err("the layer was accepted");
        match &err {
            Error::LayerEntry { entry: e, .. } => assert_eq!(e, Path::new(entry), "{err}"),
            other => panic!("not a refused entry: {other}"),
        }
        assert!(err.to_string().contains(problem), "{err}");
        eprintln!("  {err}");
        assert_eq!(entries(store.path().join("tmp")), 0);
        case.assert_clean(&[]);
    };
    let pax = Tar::new()
        .file("before", b"x")
        .pax_header(8 << 20)
        .file("after", b"y")
        .finish();
    attempt(pax, Default::default(), "before", "PAX");
    let big = Tar::new()
        .file("small", b"x")
        .file("big", &vec![0u8; 2 << 20])
        .finish();
    let opts = hull::image::UnpackOptions {
        max_bytes: Some(1 << 20),
        ..Default::default()
    };
    attempt(big, opts, "big", "max_bytes");
    let mut many = Tar::new();
    for i in 0..10 {
        many.file(&format!("f{i}"), b"x");
    }
    let opts = hull::image::UnpackOptions {
        max_entries: Some(5),
        ..Default::default()
    };
    attempt(many.finish(), opts, "f4", "max_entries");
}

/// Opening a store removes what dead unpackers left in tmp/, and only that, judged by the
/// unpacker's lock and not its pid: a live unpacker in another pid namespace has a pid that is
/// nobody (or somebody else) here, and a dead one's pid may be reused.
fn tmp_sweep_goes_by_lock_not_by_pid() {
    use nix::fcntl::{Flock, FlockArg};
    let case = Case::new(&[], json!({}));
    let store = case.store();
    let tmp = store.path().join("tmp");
    let claim = |name: &str| {
        let dir = tmp.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("half-written"), b"x").unwrap();
        let lock = std::fs::File::create(tmp.join(format!("{name}.lock"))).unwrap();
        (dir, lock)
    };
    // Alive, in a pid namespace where it is 4000000: no such pid here.
    let (live, lock) = claim("4000000-0-aaaa");
    let held = Flock::lock(lock, FlockArg::LockExclusive).unwrap();
    // Dead, with the pid of a process that is alive here (this one).
    let (dead, _unheld) = claim(&format!("{}-0-bbbb", std::process::id()));
    LayerStore::open(store.path()).expect("open the store again");
    assert!(
        live.join("half-written").exists(),
        "a live unpacker's work was swept"
    );
    assert!(!dead.exists(), "a dead unpacker's directory was left");
    drop(held);
    LayerStore::open(store.path()).expect("open the store again");
    assert!(!live.exists(), "a dead unpacker's directory was left");
    assert_eq!(entries(&tmp), 0);
    case.assert_clean(&[]);
}

fn tampered_blob_is_refused() {
    let case = Case::busybox(default_config());
    let top = blob_path(&case.dir.join("layout"), &case.written.layers[1]);
    let mut data = std::fs::read(&top).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&top, data).unwrap();
    let store = case.store();
    let err = store
        .unpack(&case.layout(), &case.image())
        .expect_err("a blob that does not match its digest was accepted");
    assert!(matches!(err, Error::Image { .. }), "{err}");
    assert!(err.to_string().contains("digest"), "{err}");
    assert_eq!(entries(store.path().join("layers/sha256")), 1);
    assert_eq!(entries(store.path().join("tmp")), 0);
    case.assert_clean(&[]);
}

/// Two processes unpacking the same image into one store at once: one copy of each layer,
/// complete, and nothing left in tmp/.
fn concurrent_unpacks_share_one_copy() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let case = Case::busybox(default_config());
    for _ in 0..3 {
        let store_dir = case.dir.join("store");
        std::fs::remove_dir_all(&store_dir).unwrap();
        let mut children = Vec::new();
        for _ in 0..2 {
            // SAFETY: this test program is single-threaded (harness = false), so the child may
            // run ordinary Rust code until it exits.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => {
                    let ok = LayerStore::open(&store_dir)
                        .and_then(|s| s.unpack(&case.layout(), &case.image()))
                        .is_ok();
                    std::process::exit(if ok { 0 } else { 1 });
                }
                ForkResult::Parent { child } => children.push(child),
            }
        }
        for child in children {
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
        }
        let store = case.store();
        assert_eq!(entries(store.path().join("layers/sha256")), 2);
        assert_eq!(entries(store.path().join("tmp")), 0);
        let dirs = store.unpack(&case.layout(), &case.image()).unwrap();
        assert_eq!(read(dirs[1].join("etc/layer2")), "from layer 2\n");
        assert!(dirs[0].join("bin/busybox").is_file());
    }
    case.assert_clean(&[]);
}

/// runtime-lib/examples/image.rs, built and run as a user would: twice on one container (the
/// writable layer keeps the first run's file), then removed.
fn example_runs_an_image_with_a_persistent_layer() {
    let mut config = default_config();
    config["Entrypoint"] = Value::Null;
    config["Cmd"] = json!(["sh", "-c", "echo run >> /runs; wc -l < /runs"]);
    let case = Case::busybox(config);
    let exe = build_example("image");
    let name = case.id();
    let layout = case.dir.join("layout");
    let store = case.dir.join("store");
    for expected in ["1", "2"] {
        let out = std::process::Command::new(&exe)
            .arg(&layout)
            .arg(&store)
            .arg(&name)
            .env("HULL_STATE", case.state())
            .output()
            .expect("run the example");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "example failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), expected, "the container's count of its runs");
    }
    let out = std::process::Command::new(&exe)
        .arg("--remove")
        .arg(&store)
        .arg(&name)
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!store.join("containers").join(&name).exists());
    case.assert_clean(&[&name]);
}

/// Builds an example of the hull crate with the `image` feature, in this test's profile and
/// target directory.
fn build_example(name: &str) -> PathBuf {
    // Not from current_exe: this program runs from its sealed copy.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target directory");
    let (profile, dir) = if cfg!(debug_assertions) {
        ("dev", "debug")
    } else {
        ("release", "release")
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "hull", "--features", "image"])
        .args(["--example", name, "--profile", profile])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example {name} failed");
    target.join(dir).join("examples").join(name)
}

fn main() {
    let cases: &[(&str, fn())] = &[
        (
            "image_config_reaches_the_process",
            image_config_reaches_the_process,
        ),
        (
            "layer_unpacked_once_for_two_containers",
            layer_unpacked_once_for_two_containers,
        ),
        (
            "writable_layer_survives_stop_and_start",
            writable_layer_survives_stop_and_start,
        ),
        (
            "remove_takes_the_upper_layer_and_the_mount",
            remove_takes_the_upper_layer_and_the_mount,
        ),
        (
            "remove_refused_while_a_container_runs_on_the_root",
            remove_refused_while_a_container_runs_on_the_root,
        ),
        ("whiteouts_hide_lower_files", whiteouts_hide_lower_files),
        ("hostile_layers_are_refused", hostile_layers_are_refused),
        (
            "symlink_in_one_layer_file_in_the_next_stays_inside",
            symlink_in_one_layer_file_in_the_next_stays_inside,
        ),
        ("devices_only_when_allowed", devices_only_when_allowed),
        ("oversized_layers_are_refused", oversized_layers_are_refused),
        ("tampered_blob_is_refused", tampered_blob_is_refused),
        (
            "tmp_sweep_goes_by_lock_not_by_pid",
            tmp_sweep_goes_by_lock_not_by_pid,
        ),
        (
            "concurrent_unpacks_share_one_copy",
            concurrent_unpacks_share_one_copy,
        ),
        (
            "example_runs_an_image_with_a_persistent_layer",
            example_runs_an_image_with_a_persistent_layer,
        ),
    ];
    let filter = integration_tests::plain_main::name_filter();
    if let Err(e) = hull::exe::ensure_sealed() {
        panic!("cannot re-execute from a sealed copy: {e}");
    }
    let selected = integration_tests::plain_main::select(cases, filter.as_deref());
    println!("\nrunning {} tests", selected.len());
    integration_tests::plain_main::run(&selected, &[]);
}
