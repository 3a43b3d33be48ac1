//! A minimal root filesystem: busybox-static with every applet linked where busybox installs it,
//! and a two-line /etc/passwd and /etc/group.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where busybox-static is installed by Debian's `busybox-static` package.
pub const HOST_BUSYBOX: &str = "/usr/bin/busybox";

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";
const DIRS: &[&str] = &[
    "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "run", "var", "tmp",
];

/// What is built once per process: the list of busybox's applets and a copy of busybox that every
/// rootfs hard-links, so a rootfs costs directories and symlinks only. The copy is shared by all
/// test processes and named after the host binary's size and mtime, so it follows upgrades.
struct Template {
    busybox: PathBuf,
    applets: Vec<String>,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let host = Path::new(HOST_BUSYBOX);
        assert!(
            host.exists(),
            "{HOST_BUSYBOX} is missing: install busybox-static (apt-get install busybox-static)"
        );
        // A copy, not a link to the host's binary: a container that can write its /bin must
        // never be able to change the host's busybox.
        let dir = crate::tmp::base_dir();
        std::fs::create_dir_all(&dir).expect("create the test bed's base directory");
        let meta = host.metadata().expect("stat busybox");
        let busybox = dir.join(format!("busybox-{}-{}", meta.len(), meta.mtime()));
        if !busybox.exists() {
            let tmp = dir.join(format!(".busybox-{}", std::process::id()));
            std::fs::copy(host, &tmp).expect("copy busybox");
            std::fs::rename(&tmp, &busybox).expect("rename busybox copy");
        }
        let out = Command::new(host)
            .arg("--list-full")
            .output()
            .expect("run busybox --list-full");
        let applets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('/') && !l.contains(".."))
            .map(str::to_string)
            .collect();
        Template { busybox, applets }
    })
}

/// Fills the empty directory `rootfs` with the busybox root filesystem.
pub fn build(rootfs: &Path) {
    let t = template();
    for d in DIRS {
        std::fs::create_dir_all(rootfs.join(d)).expect("create rootfs directory");
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod rootfs /tmp");
    let bin = rootfs.join("bin/busybox");
    if std::fs::hard_link(&t.busybox, &bin).is_err() {
        std::fs::copy(&t.busybox, &bin).expect("copy busybox into rootfs");
    }
    for applet in &t.applets {
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        let link = rootfs.join(applet);
        if applet != "bin/busybox" && !link.exists() {
            symlink(target, &link).expect("link busybox applet");
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), PASSWD).expect("write /etc/passwd");
    std::fs::write(rootfs.join("etc/group"), GROUP).expect("write /etc/group");
}

/// [`build`], but with a busybox of the rootfs' own instead of a hard link to the shared copy:
/// for a rootfs that is archived. Every other test links and unlinks the shared copy, which
/// changes its ctime, and tar fails ("file changed as we read it") when that happens while it
/// reads the file.
pub fn build_unshared(rootfs: &Path) {
    build(rootfs);
    let bin = rootfs.join("bin/busybox");
    let own = rootfs.join("bin/.busybox-own");
    std::fs::copy(&bin, &own).expect("copy busybox into rootfs");
    std::fs::rename(&own, &bin).expect("replace the rootfs' busybox link with its copy");
}
