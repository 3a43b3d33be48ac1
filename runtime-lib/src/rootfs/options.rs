//! `mounts[].options` as runc reads them: mount(2) flags, propagation changes, recursive attributes
//! (mount_setattr), runc's `tmpcopyup` extension; anything else is filesystem data
//! (`mode=755`, `size=65536k`, `newinstance`...).

use nix::mount::MsFlags;

/// What one mount's options ask for. Pure data: see [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount(2) call itself.
    pub flags: MsFlags,
    /// Propagation changes, each applied by its own mount(2) call after the mount, in config order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes, applied with mount_setattr(AT_RECURSIVE) after the mount.
    pub rec_attr: Option<RecAttr>,
    /// The unknown options, comma-joined, for the filesystem.
    pub data: String,
    /// runc's `tmpcopyup`: a tmpfs starts with a copy of what it covers.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr: None,
            data: String::new(),
            tmpcopyup: false,
        }
    }
}

/// `struct mount_attr`'s `attr_set` and `attr_clr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

// The values of linux/mount.h; libc does not export them on every target.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// `(name, clears, flag)`: the options runc maps to mount(2) flags.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("acl", false, MsFlags::MS_POSIXACL),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noacl", true, MsFlags::MS_POSIXACL),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
    ("symfollow", true, MS_NOSYMFOLLOW),
];

// nix has no name for it (Linux 5.10).
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The propagation options, also the values `linux.rootfsPropagation` takes.
pub fn propagation(name: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

/// `(name, clears, attribute)`: the recursive forms, applied to the whole mount tree.
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, MOUNT_ATTR_RELATIME),
    ("rnoatime", false, MOUNT_ATTR_NOATIME),
    ("ratime", true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Options Hull refuses rather than ignore: runc 1.1 would pass them to the kernel as data, which a
/// bind mount silently drops, leaving ids unmapped.
const UNSUPPORTED: &[&str] = &["idmap", "ridmap"];

const PROPAGATION: [&str; 8] = [
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
];

/// Every mount option `parse` understands (for `features`), sorted.
pub fn known() -> Vec<&'static str> {
    let mut names: Vec<&str> = FLAGS.iter().map(|(n, ..)| *n).collect();
    names.extend(PROPAGATION);
    names.extend(REC_ATTRS.iter().map(|(n, ..)| *n));
    names.push("tmpcopyup");
    names.sort_unstable();
    names.dedup();
    names
}

/// Reads `options` left to right, a later option overriding an earlier one as with mount(8).
/// Err names an option Hull does not support.
pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<MountOptions, String> {
    let mut m = MountOptions::default();
    let (mut set, mut clr) = (0u64, 0u64);
    let mut data = Vec::new();
    for o in options.iter().map(AsRef::as_ref) {
        if let Some(&(_, clears, flag)) = FLAGS.iter().find(|(n, ..)| *n == o) {
            if clears {
                m.flags.remove(flag);
            } else {
                m.flags.insert(flag);
            }
        } else if let Some(p) = propagation(o) {
            m.propagation.push(p);
        } else if let Some(&(_, clears, attr)) = REC_ATTRS.iter().find(|(n, ..)| *n == o) {
            if clears {
                clr |= attr;
                // Access times are one field, not bits: clearing a mode (ratime, rnostrictatime)
                // is going back to the default, relatime (0), and the kernel wants the whole
                // field cleared for that (EINVAL otherwise).
                if attr & MOUNT_ATTR_ATIME_MASK != 0 {
                    clr |= MOUNT_ATTR_ATIME_MASK;
                }
            } else {
                set |= attr;
                // mount_setattr(2): an access-time mode in attr_set needs the whole atime
                // field in attr_clr.
                if attr & MOUNT_ATTR_ATIME_MASK == attr {
                    clr |= MOUNT_ATTR_ATIME_MASK;
                }
            }
        } else if o == "tmpcopyup" {
            m.tmpcopyup = true;
        } else if UNSUPPORTED.contains(&o) {
            return Err(o.to_string());
        } else {
            data.push(o);
        }
    }
    m.data = data.join(",");
    if set != 0 || clr != 0 {
        m.rec_attr = Some(RecAttr { set, clr });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(opts).unwrap()
    }

    #[test]
    fn flags_set_and_clear_in_order() {
        let m = p(&[
            "nosuid",
            "nodev",
            "ro",
            "rw",
            "noexec",
            "exec",
            "strictatime",
        ]);
        assert_eq!(
            m.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME
        );
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
        assert_eq!(
            p(&["suid", "dev", "async", "atime"]).flags,
            MsFlags::empty()
        );
        assert_eq!(p(&["defaults"]).flags, MsFlags::empty());
        // Clearing one access-time mode is a move to relatime: the kernel wants the whole field.
        for clear in ["ratime", "rnostrictatime"] {
            let a = p(&[clear]).rec_attr.expect(clear);
            assert_eq!(
                (a.set, a.clr & MOUNT_ATTR_ATIME_MASK),
                (0, MOUNT_ATTR_ATIME_MASK)
            );
        }
        assert!(p(&["rbind"])
            .flags
            .contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(p(&["bind"]).flags, MsFlags::MS_BIND);
        assert_eq!(
            p(&[
                "sync",
                "dirsync",
                "mand",
                "remount",
                "noatime",
                "nodiratime",
                "relatime"
            ])
            .flags,
            MsFlags::MS_SYNCHRONOUS
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_MANDLOCK
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
        );
        assert_eq!(
            p(&["relatime", "norelatime", "mand", "nomand"]).flags,
            MsFlags::empty()
        );
    }

    #[test]
    fn unknown_options_are_data_in_order() {
        let m = p(&[
            "nosuid",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(m.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(m.flags, MsFlags::MS_NOSUID);
        assert_eq!(p(&["mode=755", "size=65536k"]).data, "mode=755,size=65536k");
        assert_eq!(p(&[] as &[&str]), MountOptions::default());
    }

    #[test]
    fn propagation_is_kept_apart_in_order() {
        let m = p(&["rbind", "rslave", "shared", "unbindable", "rprivate"]);
        assert_eq!(m.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            m.propagation,
            vec![
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_SHARED,
                MsFlags::MS_UNBINDABLE,
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ]
        );
        assert_eq!(
            propagation("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(
            propagation("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(propagation("bogus"), None);
    }

    #[test]
    fn recursive_attributes() {
        let m = p(&["rbind", "rro", "rnosuid", "rnodev", "rnoexec"]);
        let want = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        assert_eq!(m.rec_attr, Some(RecAttr { set: want, clr: 0 }));
        assert!(m.data.is_empty());

        let m = p(&["rrw", "rsuid", "rdev", "rexec", "rdiratime", "rsymfollow"]);
        assert_eq!(m.rec_attr.unwrap().set, 0);
        assert_eq!(
            m.rec_attr.unwrap().clr,
            want | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW
        );

        // An atime mode in attr_set must clear the whole atime field.
        let m = p(&["rnoatime"]).rec_attr.unwrap();
        assert_eq!((m.set, m.clr), (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK));
        let m = p(&["rstrictatime"]).rec_attr.unwrap();
        assert_eq!(
            (m.set, m.clr),
            (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK)
        );
        let m = p(&["rrelatime"]).rec_attr.unwrap();
        assert_eq!((m.set, m.clr), (0, MOUNT_ATTR_ATIME_MASK));
        let m = p(&["ratime", "rnodiratime"]).rec_attr.unwrap();
        assert_eq!(
            (m.set, m.clr),
            (MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_ATIME_MASK)
        );
    }

    #[test]
    fn extensions_and_unsupported() {
        assert!(p(&["tmpcopyup"]).tmpcopyup);
        assert!(p(&["tmpcopyup"]).data.is_empty());
        assert_eq!(parse(&["rbind", "idmap"]), Err("idmap".to_string()));
        assert_eq!(parse(&["ridmap"]), Err("ridmap".to_string()));
    }
}
