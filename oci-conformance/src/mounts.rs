//! config.md "Mounts": order, destinations, the Linux option strings, bind and propagation.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::{json, Value};

use crate::config::{checker_case, refused_case, INVALID};
use crate::harness::{Bundle, Ctx};

const F: &str = "config.md";
const EROFS: i32 = libc::EROFS;

pub fn cases(ctx: &mut Ctx) {
    mounts(ctx);
    bind_mounts(ctx);
}

fn push_mount(b: &mut Bundle, mount: Value) {
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(mount);
}

fn tmpfs(dest: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options})
}

fn mounts(ctx: &mut Ctx) {
    let opts = "Runtimes MUST (or SHOULD, per the table) implement the Linux mount option strings";
    checker_case(
        ctx,
        "mounts-default",
        F,
        "mounts: the runtime MUST mount entries in the listed order",
        &["mounts"],
        |b| {
            b.host["mounts_from"] = json!(0);
        },
    );
    checker_case(
        ctx,
        "mounts-order",
        F,
        "mounts: The runtime MUST mount entries in the listed order",
        &["mounts"],
        |b| {
            for dir in ["order", "nest"] {
                let _ = std::fs::create_dir_all(b.rootfs.join(dir));
            }
            push_mount(b, tmpfs("/order", &["size=1m"]));
            push_mount(b, tmpfs("/order", &["size=2m"]));
            push_mount(b, tmpfs("/nest", &[]));
            push_mount(b, tmpfs("/nest/inner", &[]));
        },
    );
    checker_case(
        ctx,
        "mounts-relative-destination",
        F,
        "mounts.destination: a relative path MUST be interpreted as relative to \"/\"",
        &["mounts"],
        |b| {
            push_mount(b, tmpfs("reltmp", &["size=1m"]));
        },
    );
    checker_case(ctx, "mount-options-set", F, opts, &["mounts"], |b| {
        push_mount(
            b,
            tmpfs(
                "/opt-set",
                &[
                    "nosuid",
                    "nodev",
                    "noexec",
                    "ro",
                    "noatime",
                    "nodiratime",
                    "sync",
                    "dirsync",
                    "lazytime",
                ],
            ),
        );
    });
    checker_case(ctx, "mount-options-cleared", F, opts, &["mounts"], |b| {
        let o = [
            "ro",
            "rw",
            "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "noatime",
            "atime",
            "nodiratime",
            "diratime",
            "sync",
            "async",
            "lazytime",
            "nolazytime",
        ];
        push_mount(b, tmpfs("/opt-clear", &o));
    });
    checker_case(ctx, "mount-options-atime", F, opts, &["mounts"], |b| {
        push_mount(b, tmpfs("/opt-strict", &["strictatime"]));
        push_mount(b, tmpfs("/opt-relatime", &["noatime", "atime", "relatime"]));
        push_mount(b, tmpfs("/opt-norelatime", &["norelatime"]));
        push_mount(b, tmpfs("/opt-nostrict", &["strictatime", "nostrictatime"]));
    });
    checker_case(ctx, "mount-option-defaults", F, opts, &["mounts"], |b| {
        push_mount(b, tmpfs("/opt-defaults", &["defaults"]));
    });
    checker_case(
        ctx,
        "mount-options-loud-silent-iversion",
        F,
        opts,
        &["mounts"],
        |b| {
            push_mount(
                b,
                tmpfs("/opt-quiet", &["loud", "silent", "iversion", "noiversion"]),
            );
        },
    );
    checker_case(ctx, "mount-option-remount", F, opts, &["mounts"], |b| {
        push_mount(b, tmpfs("/opt-remount", &[]));
        push_mount(b, tmpfs("/opt-remount", &["remount", "ro"]));
    });
    checker_case(
        ctx,
        "mount-option-nosymfollow",
        F,
        "nosymfollow: Runtimes SHOULD implement this option string",
        &["mounts"],
        |b| {
            push_mount(b, tmpfs("/opt-nosymfollow", &["nosymfollow"]));
        },
    );
    checker_case(ctx, "mount-filesystem-data", F, "Runtimes SHOULD treat unknown options as filesystem-specific ones and pass them as data to mount(2)", &["mounts"], |b| {
        push_mount(b, tmpfs("/opt-data", &["size=3m", "mode=700", "uid=1", "gid=2", "nr_inodes=100"]));
    });
    refused_case(ctx, "mount-type-unsupported", F, INVALID, |b| {
        push_mount(
            b,
            json!({"destination": "/bogus", "type": "oci-conformance-no-such-fs", "source": "none"}),
        );
    });
}

/// A host directory with a marker file and a tmpfs submount holding another marker; unmount the
/// returned submount after the case.
fn fixture(ctx: &Ctx, name: &str) -> (PathBuf, PathBuf) {
    let src = ctx.run_dir.join("fixtures").join(name);
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).expect("fixture dir");
    std::fs::write(src.join("marker"), "top").expect("fixture marker");
    if mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .is_ok()
    {
        std::fs::write(sub.join("submarker"), "sub").expect("fixture submarker");
    }
    (src, sub)
}

fn drop_fixture(sub: &Path) {
    let _ = umount2(sub, MntFlags::MNT_DETACH);
}

fn bind_mounts(ctx: &mut Ctx) {
    let bind = |src: &Path, dest: &str, options: &[&str]| json!({"destination": dest, "type": "none", "source": src, "options": options});
    if ctx.wants("mount-bind-rbind") {
        let (src, sub) = fixture(ctx, "bind");
        let mut b = ctx.bundle("mount-bind-rbind");
        b.checks(&["mounts", "expect"]);
        push_mount(&mut b, bind(&src, "/bind", &["bind"]));
        push_mount(&mut b, bind(&src, "/rbind", &["rbind"]));
        b.expect(
            F,
            "bind: Bind mount (MUST): the source is visible at the destination",
            "/bind/marker",
            json!({"content": "top"}),
        );
        b.expect(
            F,
            "bind: Bind mount (MUST) is not recursive: submounts of the source are not carried",
            "/bind/sub/submarker",
            json!({"exists": false}),
        );
        b.expect(
            F,
            "rbind: Recursive bind mount (MUST): submounts of the source are carried",
            "/rbind/sub/submarker",
            json!({"content": "sub"}),
        );
        ctx.run_checker(
            &b,
            F,
            "bind and rbind: Runtimes MUST implement these option strings",
        );
        drop_fixture(&sub);
    }
    if ctx.wants("mount-propagation") {
        let (src, sub) = fixture(ctx, "propagation");
        let mut b = ctx.bundle("mount-propagation");
        b.checks(&["mounts"]);
        for p in [
            "shared",
            "rshared",
            "slave",
            "rslave",
            "private",
            "rprivate",
            "unbindable",
            "runbindable",
        ] {
            push_mount(&mut b, bind(&src, &format!("/p-{p}"), &["rbind", p]));
        }
        ctx.run_checker(&b, F, "Bind mount propagation options: Runtimes MUST implement shared, rshared, slave, rslave, private, rprivate, unbindable, runbindable");
        drop_fixture(&sub);
    }
    if ctx.wants("mount-option-rro") {
        let (src, sub) = fixture(ctx, "rro");
        let mut b = ctx.bundle("mount-option-rro");
        b.checks(&["expect"]);
        push_mount(&mut b, bind(&src, "/rro", &["rbind", "rro"]));
        b.expect(
            F,
            "rro: Recursive ro (SHOULD): the mount is read-only",
            "/rro/marker",
            json!({"open_errno": EROFS}),
        );
        b.expect(
            F,
            "rro: Recursive ro (SHOULD): submounts are read-only too",
            "/rro/sub/submarker",
            json!({"open_errno": EROFS}),
        );
        ctx.run_checker(&b, F, "rro: Runtimes SHOULD implement this option string");
        drop_fixture(&sub);
    }
    refused_case(ctx, "mount-idmap-without-userns", F, "idmap: If there are no uidMappings and gidMappings specified and the container isn't using user namespaces, an error MUST be returned", |b| {
        let src = b.rootfs.join("conformance");
        push_mount(b, json!({"destination": "/idmapped", "type": "none", "source": src, "options": ["bind", "idmap"]}));
    });
}
