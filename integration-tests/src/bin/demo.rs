//! `cargo run -p integration-tests --bin demo`: builds hull, makes a busybox bundle in a temp dir
//! and runs a container from it, first with `hull run`, then verb by verb as containerd would.
//! `$HULL_TEST_RUNTIME` replaces hull as in the tests (`HULL_TEST_RUNTIME=/usr/sbin/runc`).

use std::path::Path;
use std::process::{Command, Stdio};

use integration_tests::rootfs::HOST_BUSYBOX;
use integration_tests::runtime::runtime_binary;
use integration_tests::{Bundle, TempDir};
use serde_json::json;

const SCRIPT: &str = "echo \"hello from $(hostname), pid $$, uid $(id -u)\"; \
    echo \"root: $(ls / | tr '\\n' ' ')\"; \
    echo \"mounts: $(wc -l < /proc/self/mountinfo), processes: $(ls -d /proc/[0-9]* | wc -l)\"";

fn hull(root: &Path, args: &[&str]) -> std::process::ExitStatus {
    let bin = runtime_binary();
    let name = bin.file_name().unwrap_or_default().to_string_lossy();
    println!("\n$ {name} --root {} {}", root.display(), args.join(" "));
    Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("run hull")
}

fn ensure_busybox() {
    if Path::new(HOST_BUSYBOX).exists() {
        return;
    }
    println!("{HOST_BUSYBOX} is missing: installing busybox-static");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "busybox-static"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("could not install busybox-static; run `apt-get install busybox-static` as root");
        std::process::exit(1);
    }
}

fn main() {
    // Exit only after demo() returned: its temp dirs are removed when they drop.
    std::process::exit(demo());
}

fn demo() -> i32 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the demo creates namespaces and mounts: run it as root");
        std::process::exit(1);
    }
    ensure_busybox();
    // $HULL_TEST_RUNTIME (e.g. /usr/sbin/runc) replaces hull here too, as in the tests.
    println!("building hull...");
    let bin = runtime_binary();
    println!("runtime: {}", bin.display());

    let state = TempDir::new("demo-root");
    let mut bundle = Bundle::new();
    bundle.set("/hostname", json!("hull-demo")).sh(SCRIPT);
    let bundle_path = bundle.path().to_str().expect("utf-8 temp dir");
    println!("bundle: {bundle_path} (busybox rootfs + `runc spec` config)");

    let id = format!("demo-{}", std::process::id());
    let run = hull(state.path(), &["run", "--bundle", bundle_path, &id]);
    println!("exit code: {}", run.code().unwrap_or(-1));

    let id = format!("demo-{}-2", std::process::id());
    let steps: [&[&str]; 4] = [
        &["create", "--bundle", bundle_path, &id],
        &["state", &id],
        &["start", &id],
        &["list"],
    ];
    for args in steps {
        if !hull(state.path(), args).success() {
            let _ = hull(state.path(), &["delete", "--force", &id]);
            return 1;
        }
    }
    // The container exits on its own; delete refuses a running one, so give it a moment.
    for _ in 0..100 {
        let out = Command::new(bin)
            .arg("--root")
            .arg(state.path())
            .args(["state", &id])
            .output()
            .expect("run hull state");
        if String::from_utf8_lossy(&out.stdout).contains("\"stopped\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let deleted = hull(state.path(), &["delete", &id]);
    if run.success() && deleted.success() {
        0
    } else {
        1
    }
}
