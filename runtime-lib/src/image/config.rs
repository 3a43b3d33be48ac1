//! The image config's process defaults merged into a runtime spec, as Docker and podman merge
//! them.

use std::io::Read;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Process, Spec};

use crate::rootfs::resolve::{fd_path, Create, Root};
use crate::{Error, Result};

/// /etc/passwd and /etc/group are read up to this size: an image's are a few KiB.
const MAX_DB: u64 = 4 << 20;

/// Merges the image config `image` into `spec`'s process:
///
/// - `process.args` = `Entrypoint` followed by `args` if given, else by `Cmd` (so `args`
///   replaces the image's `Cmd` and keeps its `Entrypoint`, as `docker run IMAGE ARGS...`);
///   an error if that leaves nothing to run;
/// - each `Env` entry of the image replaces the spec's entry of the same name or is added (the
///   spec's other entries, such as `TERM`, stay): apply the caller's own overrides after this;
/// - `WorkingDir`, when set, becomes `process.cwd` (it must be absolute);
/// - `User` (`user`, `uid`, `user:group`, `uid:gid`, ...) becomes `process.user`: names are
///   looked up in the image's own /etc/passwd and /etc/group, read beneath `rootfs` (the
///   container's root, mounted: symlinks in it resolve inside it), and the user's supplementary
///   groups from /etc/group are added. A user without a group gets its passwd group, or 0.
///
/// ```no_run
/// use hull::image::{apply_image_config, ImageLayout};
/// let image = ImageLayout::open("/srv/images/busybox")?.image(None)?;
/// let mut spec = hull::oci_spec::runtime::Spec::default();
/// let args = vec!["echo".to_string(), "hi".to_string()];
/// apply_image_config(&mut spec, image.config(), "/var/lib/hull-images/containers/web/rootfs".as_ref(), Some(&args))?;
/// # Ok::<(), hull::Error>(())
/// ```
pub fn apply_image_config(
    spec: &mut Spec,
    image: &ImageConfiguration,
    rootfs: &Path,
    args: Option<&[String]>,
) -> Result<()> {
    let defaults = image.config().clone().unwrap_or_default();
    let mut process = spec.process().clone().unwrap_or_default();

    let mut argv: Vec<String> = defaults.entrypoint().clone().unwrap_or_default();
    match args {
        Some(a) => argv.extend(a.iter().cloned()),
        None => argv.extend(defaults.cmd().clone().unwrap_or_default()),
    }
    if argv.is_empty() {
        return Err(Error::InvalidConfig {
            field: "process.args".into(),
            problem: "the image has no Entrypoint or Cmd, and no command was given".into(),
        });
    }
    process.set_args(Some(argv));

    let mut env = process.env().clone().unwrap_or_default();
    for entry in defaults.env().iter().flatten() {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => e.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
    process.set_env(Some(env));

    if let Some(dir) = defaults.working_dir().as_deref().filter(|d| !d.is_empty()) {
        if !dir.starts_with('/') {
            return Err(Error::InvalidConfig {
                field: "image config WorkingDir".into(),
                problem: format!("{dir:?} is not an absolute path"),
            });
        }
        process.set_cwd(dir.into());
    }

    if let Some(user) = defaults.user().as_deref().filter(|u| !u.is_empty()) {
        set_user(&mut process, user, rootfs)?;
    }
    spec.set_process(Some(process));
    Ok(())
}

fn set_user(process: &mut Process, user: &str, rootfs: &Path) -> Result<()> {
    let bad = |problem: String| Error::InvalidConfig {
        field: "image config User".into(),
        problem,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_db(rootfs, "etc/passwd")?;
    // name:password:uid:gid:...
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| {
            f.len() >= 4
                && match user_part.parse::<u32>() {
                    Ok(uid) => f[2].parse() == Ok(uid),
                    Err(_) => f[0] == user_part,
                }
        });
    let (uid, mut gid, name) = match (&pw, user_part.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>()
                .map_err(|_| bad(format!("bad uid in /etc/passwd for {:?}", f[0])))?,
            f[3].parse::<u32>()
                .map_err(|_| bad(format!("bad gid in /etc/passwd for {:?}", f[0])))?,
            Some(f[0].to_string()),
        ),
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => {
            return Err(bad(format!(
                "no user {user_part:?} in the image's /etc/passwd"
            )))
        }
    };
    let group = read_db(rootfs, "etc/group")?;
    // name:password:gid:member,member
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad(format!("no group {g:?} in the image's /etc/group")))?,
        };
    }
    let additional: Vec<u32> = match &name {
        Some(name) => groups
            .iter()
            .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    let u = process.user_mut();
    u.set_uid(uid);
    u.set_gid(gid);
    u.set_additional_gids((!additional.is_empty()).then_some(additional));
    Ok(())
}

/// A user database file of the image, read as the container would see it (symlinks resolved
/// inside the root); empty when the image has none.
fn read_db(rootfs: &Path, rel: &str) -> Result<String> {
    let sys = |step, source| Error::Sys {
        step,
        path: Some(rootfs.join(rel)),
        source,
    };
    let root = Root::open(rootfs).map_err(|e| sys("open container root", e))?;
    let fd = match root.open_in(Path::new(rel), Create::Nothing) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(sys("open", e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| sys("stat", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        // A fifo would block the open below, a device would be the host's.
        return Err(Error::InvalidConfig {
            field: "image config User".into(),
            problem: format!("the image's /{rel} is not a regular file"),
        });
    }
    // Reopened through its O_PATH fd: the file the lookup above found, not a path again.
    let file = std::fs::File::open(fd_path(&fd)).map_err(|source| Error::Io {
        step: "open",
        path: rootfs.join(rel),
        source,
    })?;
    let mut text = String::new();
    file.take(MAX_DB)
        .read_to_string(&mut text)
        .map_err(|source| Error::Io {
            step: "read",
            path: rootfs.join(rel),
            source,
        })?;
    Ok(text)
}
