//! Checks of the filesystem view: config.md "Root" and "Mounts", config-linux.md "Rootfs Mount
//! Propagation", "Masked Paths", "Readonly Paths", plus the case-specific file expectations.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use procfs::process::{MountInfo, MountOptFields};

use crate::{Host, Report};

fn mountinfo() -> Vec<MountInfo> {
    procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| m.0)
        .unwrap_or_default()
}

/// A destination as the kernel shows it: absolute ("relative to /" for relative ones), no "." or "//".
fn normalize(dest: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in dest.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn dev_of(majmin: &str) -> Option<u64> {
    let (major, minor) = majmin.split_once(':')?;
    Some(nix::sys::stat::makedev(
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

/// The mount visible at `dest`: listed there and holding the device that stat(dest) sees.
fn visible<'a>(infos: &'a [MountInfo], dest: &Path) -> Option<&'a MountInfo> {
    let dev = std::fs::symlink_metadata(dest).ok()?.dev();
    infos
        .iter()
        .rfind(|m| m.mount_point == dest && dev_of(&m.majmin) == Some(dev))
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Propagation {
    Private,
    Shared,
    Slave,
    Unbindable,
}

/// What the mount's options ask for, as far as /proc/self/mountinfo can show it.
#[derive(Default, Debug)]
struct Wanted {
    per_mount: HashMap<&'static str, bool>,
    per_sb: HashMap<&'static str, bool>,
    noatime: Option<bool>,
    strictatime: Option<bool>,
    atime_asked: bool,
    propagation: Option<Propagation>,
    data: Vec<(String, String)>,
}

fn wanted(options: &[String]) -> Wanted {
    let mut w = Wanted::default();
    for opt in options {
        let mut per_mount = |flag: &'static str, on: bool| w.per_mount.insert(flag, on);
        match opt.as_str() {
            "ro" => per_mount("ro", true),
            "rw" => per_mount("ro", false),
            "nosuid" => per_mount("nosuid", true),
            "suid" => per_mount("nosuid", false),
            "nodev" => per_mount("nodev", true),
            "dev" => per_mount("nodev", false),
            "noexec" => per_mount("noexec", true),
            "exec" => per_mount("noexec", false),
            "nodiratime" => per_mount("nodiratime", true),
            "diratime" => per_mount("nodiratime", false),
            "nosymfollow" => per_mount("nosymfollow", true),
            "symfollow" => per_mount("nosymfollow", false),
            // mount(8) treats "defaults" as a no-op: it only fills an empty options field.
            "sync" => w.per_sb.insert("sync", true),
            "async" => w.per_sb.insert("sync", false),
            "dirsync" => w.per_sb.insert("dirsync", true),
            "lazytime" => w.per_sb.insert("lazytime", true),
            "nolazytime" => w.per_sb.insert("lazytime", false),
            _ => None,
        };
        match opt.as_str() {
            "noatime" => w.noatime = Some(true),
            "atime" => w.noatime = Some(false),
            "strictatime" => w.strictatime = Some(true),
            "nostrictatime" => w.strictatime = Some(false),
            "private" | "rprivate" => w.propagation = Some(Propagation::Private),
            "shared" | "rshared" => w.propagation = Some(Propagation::Shared),
            "slave" | "rslave" => w.propagation = Some(Propagation::Slave),
            "unbindable" | "runbindable" => w.propagation = Some(Propagation::Unbindable),
            _ => {}
        }
        w.atime_asked |= [
            "noatime",
            "atime",
            "strictatime",
            "nostrictatime",
            "relatime",
            "norelatime",
        ]
        .contains(&opt.as_str());
        if let Some((key, value)) = opt.split_once('=') {
            w.data.push((key.to_owned(), value.to_owned()));
        }
    }
    w
}

/// Whether a mount's optional fields show the propagation asked for. A mount can be shared and a
/// slave at once (a shared mount made in a namespace that is a slave of the host).
fn propagation_ok(info: &MountInfo, want: Propagation) -> bool {
    let f = &info.opt_fields;
    let shared = f.iter().any(|o| matches!(o, MountOptFields::Shared(_)));
    let slave = f.iter().any(|o| matches!(o, MountOptFields::Master(_)));
    let unbindable = f.iter().any(|o| matches!(o, MountOptFields::Unbindable));
    match want {
        Propagation::Shared => shared,
        Propagation::Slave => slave && !shared,
        Propagation::Private => !shared && !slave && !unbindable,
        Propagation::Unbindable => unbindable,
    }
}

/// Compares the flags the options ask for with the mount; returns the mismatches.
fn flag_mismatches(w: &Wanted, info: &MountInfo) -> Vec<String> {
    let mut bad = Vec::new();
    for (flag, on) in &w.per_mount {
        if info.mount_options.contains_key(*flag) != *on {
            bad.push(format!("{flag} {}", if *on { "missing" } else { "set" }));
        }
    }
    for (flag, on) in &w.per_sb {
        if info.super_options.contains_key(*flag) != *on {
            bad.push(format!(
                "superblock {flag} {}",
                if *on { "missing" } else { "set" }
            ));
        }
    }
    if w.atime_asked {
        // The kernel's rule: strictatime wins, then noatime, else relatime.
        let want = if w.strictatime == Some(true) {
            "strictatime"
        } else if w.noatime == Some(true) {
            "noatime"
        } else {
            "relatime"
        };
        let got = if info.mount_options.contains_key("noatime") {
            "noatime"
        } else if info.mount_options.contains_key("relatime") {
            "relatime"
        } else {
            "strictatime"
        };
        if want != got {
            bad.push(format!("atime mode {got}, want {want}"));
        }
    }
    if let Some(want) = w.propagation {
        if !propagation_ok(info, want) {
            bad.push(format!(
                "propagation fields {:?}, want {want:?}",
                info.opt_fields
            ));
        }
    }
    bad
}

/// Numbers the kernel may print differently from the config (octal modes, sizes in k).
fn same_data_value(key: &str, want: &str, got: &str) -> bool {
    let size = |s: &str| -> Option<u64> {
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let mult = match unit.to_ascii_lowercase().as_str() {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            _ => return None,
        };
        digits.parse::<u64>().ok().map(|n| n * mult)
    };
    match key {
        "mode" | "ptmxmode" => {
            u32::from_str_radix(want, 8).ok() == u32::from_str_radix(got, 8).ok()
        }
        "size" => size(want).is_some() && size(want) == size(got),
        _ => {
            want == got
                || want
                    .parse::<u64>()
                    .is_ok_and(|w| got.parse::<u64>() == Ok(w))
        }
    }
}

fn bind(mount: &Mount) -> bool {
    mount
        .options()
        .iter()
        .flatten()
        .any(|o| o == "bind" || o == "rbind")
}

pub fn mounts(spec: &Spec, host: &Host, r: &mut Report) {
    let infos = mountinfo();
    let mounts = spec.mounts().clone().unwrap_or_default();
    for (i, mount) in mounts.iter().enumerate().skip(host.mounts_from) {
        let dest = normalize(mount.destination());
        // A later entry on the same destination covers this one: the order case checks that.
        if mounts[i + 1..]
            .iter()
            .any(|m| normalize(m.destination()) == dest)
        {
            continue;
        }
        let options = mount.options().clone().unwrap_or_default();
        let typ = mount.typ().clone().unwrap_or_default();
        let info = visible(&infos, &dest);
        let mut bad = Vec::new();
        match info {
            None => bad.push("no mount visible there".to_owned()),
            Some(info) => {
                // On cgroup v1 hosts a "cgroup" mount is a tmpfs holding one mount per controller.
                let type_ok = bind(mount)
                    || info.fs_type == typ
                    || (typ == "cgroup" && ["tmpfs", "cgroup2"].contains(&info.fs_type.as_str()));
                if !type_ok {
                    bad.push(format!("type {}, config {typ}", info.fs_type));
                }
                bad.extend(flag_mismatches(&wanted(&options), info));
            }
        }
        let clause = if mount.destination().is_relative() {
            "mounts: a relative destination MUST be interpreted as relative to \"/\""
        } else if options.is_empty() {
            "mounts: the runtime MUST mount entries in the listed order (each entry mounted at its destination)"
        } else {
            "mounts: runtimes MUST (or SHOULD, per the table) implement the Linux option strings, with mount(8) semantics"
        };
        let detail = format!("{} {typ} {options:?}: {}", dest.display(), bad.join(", "));
        r.check("config.md", clause, bad.is_empty(), detail);

        // Filesystem-specific data is only visible where the kernel echoes it back.
        let Some(info) = info else { continue };
        let data: Vec<_> = wanted(&options)
            .data
            .into_iter()
            .filter(|(key, _)| info.super_options.contains_key(key))
            .collect();
        if data.is_empty() {
            continue;
        }
        let wrong: Vec<String> = data
            .iter()
            .filter_map(|(key, want)| {
                let got = info
                    .super_options
                    .get(key)
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                (!same_data_value(key, want, &got))
                    .then(|| format!("{key}={got}, config {key}={want}"))
            })
            .collect();
        let clause =
            "mounts: runtimes SHOULD pass unknown options as filesystem-specific data to mount(2)";
        r.check(
            "config.md",
            clause,
            wrong.is_empty(),
            format!("{}: {}", dest.display(), wrong.join(", ")),
        );
    }
}

pub fn readonly_root(spec: &Spec, r: &mut Report) {
    if spec.root().as_ref().and_then(|root| root.readonly()) != Some(true) {
        return;
    }
    let infos = mountinfo();
    let flag = visible(&infos, Path::new("/")).map(|m| m.mount_options.contains_key("ro"));
    let probe = "/.oci-conformance-write-probe";
    let write = std::fs::File::create(probe).map(|_| ());
    let _ = std::fs::remove_file(probe);
    let erofs = matches!(&write, Err(e) if e.raw_os_error() == Some(libc::EROFS));
    let clause =
        "root.readonly: if true then the root filesystem MUST be read-only inside the container";
    r.check(
        "config.md",
        clause,
        flag == Some(true) && erofs,
        format!("mount ro flag {flag:?}, creating a file: {write:?}"),
    );
}

pub fn rootfs_propagation(spec: &Spec, host: &Host, r: &mut Report) {
    let Some(want) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    else {
        return;
    };
    let infos = mountinfo();
    let root = visible(&infos, Path::new("/"));
    let want_p = match want.as_str() {
        "shared" => Some(Propagation::Shared),
        "slave" => Some(Propagation::Slave),
        "private" => Some(Propagation::Private),
        "unbindable" => Some(Propagation::Unbindable),
        _ => None,
    };
    let ok = match (root, want_p) {
        (Some(root), Some(Propagation::Slave)) if !host.rootfs_source_shared => {
            propagation_ok(root, Propagation::Slave) || propagation_ok(root, Propagation::Private)
        }
        (Some(root), Some(p)) => propagation_ok(root, p),
        _ => false,
    };
    let got = root.map(|r| &r.opt_fields);
    let clause = "rootfsPropagation sets the rootfs's mount propagation (runtime.md: create MUST apply all properties)";
    r.check(
        "config-linux.md",
        clause,
        ok,
        format!("/ is {got:?}, config {want}"),
    );
}

/// Reads up to a few bytes; masked files read as empty or not at all.
fn readable_content(path: &str) -> Result<usize, std::io::Error> {
    let mut buf = [0u8; 64];
    std::fs::File::open(path)?.read(&mut buf)
}

pub fn masked_paths(spec: &Spec, r: &mut Report) {
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for path in masked {
        // Paths the kernel does not offer here (e.g. /proc/asound) have nothing to mask.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let (ok, detail) = if meta.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => {
                    let n = entries.count();
                    (n == 0, format!("directory lists {n} entries"))
                }
                Err(e) => (true, format!("unreadable: {e}")),
            }
        } else {
            match readable_content(&path) {
                Ok(n) => (n == 0, format!("read returned {n} bytes")),
                Err(e) => (true, format!("unreadable: {e}")),
            }
        };
        let clause = "maskedPaths will mask over the provided paths inside the container so that they cannot be read";
        r.check("config-linux.md", clause, ok, format!("{path}: {detail}"));
    }
}

pub fn readonly_paths(spec: &Spec, r: &mut Report) {
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    for path in paths {
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let flags = nix::sys::statvfs::statvfs(path.as_str()).map(|s| s.flags());
        let ok = flags.is_ok_and(|f| f.contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        let clause = "readonlyPaths will set the provided paths as readonly inside the container";
        r.check(
            "config-linux.md",
            clause,
            ok,
            format!("{path}: statvfs flags {flags:?}"),
        );
    }
}

pub fn expectations(host: &Host, r: &mut Report) {
    for e in &host.expect {
        let mut bad = Vec::new();
        if let Some(exists) = e.exists {
            if std::fs::symlink_metadata(&e.path).is_ok() != exists {
                bad.push(format!("exists is {}", !exists));
            }
        }
        if let Some(want) = &e.content {
            let got = std::fs::read_to_string(&e.path);
            if got.as_ref().ok() != Some(want) {
                bad.push(format!("content {got:?}, want {want:?}"));
            }
        }
        if let Some(want) = e.open_errno {
            let got = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&e.path);
            let errno = got
                .as_ref()
                .err()
                .map_or(0, |err| err.raw_os_error().unwrap_or(-1));
            if errno != want {
                bad.push(format!("open(O_RDWR) errno {errno}, want {want}"));
            }
        }
        r.check(
            &e.file,
            &e.clause,
            bad.is_empty(),
            format!("{}: {}", e.path, bad.join(", ")),
        );
    }
}
