//! Loading a bundle: config.json through oci-spec, then every check that can be made before the
//! system is touched (so bad input fails before any directory, mount or process exists).
//!
//! Unknown namespace types, capability names and rlimit types never get this far: oci-spec's
//! deserializer refuses them, and the refusal comes back as [`Error::ConfigSyntax`] with the line
//! and column of the bad value.
//!
//! [`crate::Container::create`] loads its bundle itself; a program calls [`Bundle::load`] to check
//! a bundle before creating from it, or [`parse`] and [`parse_process`] to read a config or a
//! process file the way `hull create` and `hull exec --process` do.
//!
//! ```no_run
//! let bundle = hull::bundle::Bundle::load("/srv/bundle".as_ref())?;
//! let text = std::fs::read("/srv/ps.json").expect("read process.json");
//! let process = hull::bundle::parse_process(&text, "/srv/ps.json".as_ref())?;
//! println!("{:?} from {}", process.args(), bundle.path.display());
//! # Ok::<(), hull::Error>(())
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::Context;
use crate::plan::namespaces::NamespacePlan;
use crate::plan::sysctl;
use crate::{Error, Result};

/// A loaded and validated bundle (runtime-spec bundle.md): a directory holding config.json and
/// the root filesystem it names.
///
/// ```no_run
/// let bundle = hull::bundle::Bundle::load("/srv/bundle".as_ref())?;
/// let args = bundle.spec.process().as_ref().and_then(|p| p.args().clone());
/// println!("{:?} runs {args:?}", bundle.rootfs);
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub path: PathBuf,
    /// config.json, parsed.
    pub spec: Spec,
    /// Absolute, canonical path of `root.path` (resolved against the bundle directory).
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Loads `<path>/config.json` and makes every check `create` makes before it touches the
    /// system: the spec's rules (paths, namespaces, id mappings, sysctls, hooks, seccomp...), a
    /// `root.path` that is a directory. Errors: [`Error::Io`] for a missing bundle or config,
    /// [`Error::ConfigSyntax`] for bad JSON or a value of the wrong type,
    /// [`Error::InvalidConfig`] naming the field that breaks a rule, [`Error::Unsupported`] for
    /// what hull does not implement.
    ///
    /// ```no_run
    /// match hull::bundle::Bundle::load("/srv/bundle".as_ref()) {
    ///     Ok(b) => println!("{} is fine", b.path.display()),
    ///     Err(hull::Error::InvalidConfig { field, problem }) => eprintln!("{field}: {problem}"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// ```
    pub fn load(path: &Path) -> Result<Bundle> {
        Bundle::load_checked(path).map(|(bundle, _)| bundle)
    }

    /// [`Bundle::load`], with what validation found on the way (see [`Bundle::checked`]).
    pub(crate) fn load_checked(path: &Path) -> Result<(Bundle, Checked)> {
        let path = std::path::absolute(path).io("resolve bundle path", path)?;
        let meta = std::fs::metadata(&path).io("open bundle", &path)?;
        if !meta.is_dir() {
            return Err(Error::Io {
                step: "open bundle",
                path,
                source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        let config = path.join("config.json");
        let text = std::fs::read(&config).io("read", &config)?;
        let spec = parse(&text, &config)?;
        Bundle::checked(spec, &path)
    }

    /// A spec given in memory, validated as [`Bundle::load`] validates a config.json; `base` is
    /// the directory its relative paths (root.path, bind sources) resolve against, and the init's
    /// working directory until pivot_root.
    pub fn from_spec(spec: Spec, base: &Path) -> Result<Bundle> {
        Bundle::checked(spec, base).map(|(bundle, _)| bundle)
    }

    /// [`Bundle::from_spec`], with what validation found on the way (for `create`, which would
    /// otherwise open the namespace files and canonicalise the root a second time).
    pub(crate) fn checked(spec: Spec, base: &Path) -> Result<(Bundle, Checked)> {
        let path = std::path::absolute(base).io("resolve bundle path", base)?;
        let checked = validate(&spec, &path)?;
        let bundle = Bundle {
            path,
            spec,
            rootfs: checked.rootfs.clone(),
        };
        Ok((bundle, checked))
    }
}

/// What [`validate`] found while checking, kept so no check is made twice.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The canonical `root.path`.
    pub rootfs: PathBuf,
    /// linux.namespaces, every `path` opened and of the right type.
    pub namespaces: NamespacePlan,
    /// The warning of a `linux.mountLabel` this host ignores (no SELinux).
    pub mount_label: Option<String>,
}

/// Parses config.json's bytes, without the checks of [`Bundle::load`]; `file` is only used to
/// name it in errors. A syntax error or a value of the wrong type is [`Error::ConfigSyntax`], with
/// the line, column and field.
///
/// ```
/// let text = br#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}"#;
/// let spec = hull::bundle::parse(text, "config.json".as_ref())?;
/// assert_eq!(spec.root().as_ref().map(|r| r.path().clone()), Some("rootfs".into()));
///
/// let bad = br#"{"ociVersion": "1.0.2", "hostname": 7}"#;
/// let e = hull::bundle::parse(bad, "config.json".as_ref()).unwrap_err();
/// assert!(matches!(e, hull::Error::ConfigSyntax { ref field, .. } if field == "hostname"));
/// # Ok::<(), hull::Error>(())
/// ```
pub fn parse(text: &[u8], file: &Path) -> Result<Spec> {
    parse_json(text, file, false)
}

/// Parses a process.json (`exec --process`), as [`parse`] does a config: the process to give
/// [`crate::Container::exec`].
///
/// ```
/// let text = br#"{"cwd": "/", "args": ["ps"], "user": {"uid": 0, "gid": 0}}"#;
/// let process = hull::bundle::parse_process(text, "process.json".as_ref())?;
/// assert_eq!(process.args().as_deref(), Some(&["ps".to_string()][..]));
/// # Ok::<(), hull::Error>(())
/// ```
pub fn parse_process(text: &[u8], file: &Path) -> Result<oci_spec::runtime::Process> {
    parse_json(text, file, true)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    text: &[u8],
    file: &Path,
    process_json: bool,
) -> Result<T> {
    let e = match serde_json::from_slice(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // The slow paths, taken only by a document that failed as it was. Both go through the same
    // deserializer again rather than one of their own: each deserializer type instantiates the
    // whole spec's decoding code (hundreds of KB in a static binary, and peak RSS follows).
    //
    // The spec's spellings of two scheduler flags, which the spec crate does not know.
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(text) {
        if crate::plan::process_attrs::normalize_scheduler_flags(&mut value, process_json) {
            if let Ok(Ok(v)) = serde_json::to_vec(&value).map(|t| serde_json::from_slice(&t)) {
                return Ok(v);
            }
        }
    }
    // serde_json's Display appends " at line L column C", which ConfigSyntax says itself.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    Err(Error::ConfigSyntax {
        path: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        field: field_at(text, e.line(), e.column()),
        msg: full.strip_suffix(&suffix).unwrap_or(&full).to_string(),
    })
}

/// Where in the document the value at `line`:`column` (serde_json's 1-based position of an error)
/// sits, as `process.rlimits[0].hard`; empty at the top level. A small scan instead of a
/// path-tracking deserializer: that would instantiate the spec's whole decoding a second time.
pub(crate) fn field_at(text: &[u8], line: usize, column: usize) -> String {
    let start = text
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    let end = (start + column.saturating_sub(1)).min(text.len());
    let mut frames: Vec<Frame> = Vec::new();
    // A key has been read and its value has not begun (a value missing there is the key's).
    let mut after_colon = false;
    let mut i = 0;
    while i < end {
        match text[i] {
            b'"' => {
                let from = i + 1;
                i = string_end(text, from);
                match frames.last_mut() {
                    Some(f) if f.index.is_none() && f.key.is_none() => {
                        f.key = Some(decode_key(&text[from..i.min(text.len())]));
                    }
                    _ => after_colon = false,
                }
            }
            open @ (b'{' | b'[') => {
                frames.push(Frame {
                    key: None,
                    index: (open == b'[').then_some(0),
                });
                after_colon = false;
            }
            b'}' | b']' => {
                frames.pop();
                after_colon = false;
            }
            b':' => after_colon = true,
            b',' => {
                if let Some(f) = frames.last_mut() {
                    f.key = None;
                    if let Some(n) = f.index.as_mut() {
                        *n += 1;
                    }
                }
                after_colon = false;
            }
            b if !b.is_ascii_whitespace() => after_colon = false,
            _ => {}
        }
        i += 1;
    }
    // An error at an object's closing brace (a missing field) is the object's own.
    if text.get(end) == Some(&b'}') && !after_colon {
        if let Some(f) = frames.last_mut() {
            f.key = None;
        }
    }
    path_of(&frames)
}

/// An object (its key, once read) or an array (its index) open at the point `field_at` scans.
struct Frame {
    key: Option<String>,
    index: Option<usize>,
}

/// The index of the quote closing the string whose contents start at `from` (or the text's end).
fn string_end(text: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < text.len() && text[i] != b'"' {
        i += if text[i] == b'\\' { 2 } else { 1 };
    }
    i
}

/// A key as JSON text (escapes and all) decoded; as it is if it does not decode.
fn decode_key(raw: &[u8]) -> String {
    serde_json::from_slice::<String>(&[b"\"", raw, b"\""].concat())
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

/// `process.rlimits[0].hard` from the open frames, up to the first without key or index.
fn path_of(frames: &[Frame]) -> String {
    let mut path = String::new();
    for f in frames {
        if let Some(n) = f.index {
            path.push_str(&format!("[{n}]"));
        } else if let Some(k) = &f.key {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
        } else {
            break;
        }
    }
    path
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The canonical path of `root.path`, which must be a directory.
fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "root must be specified"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "root.path must not be empty"));
    }
    let joined = bundle.join(root.path());
    let canonical = std::fs::canonicalize(&joined).map_err(|e| {
        invalid(
            "root.path",
            format!("invalid rootfs {joined:?}: {}", lower(&e)),
        )
    })?;
    if !canonical.is_dir() {
        return Err(invalid(
            "root.path",
            format!("invalid rootfs {joined:?}: not a directory"),
        ));
    }
    Ok(canonical)
}

/// An io::Error's text without Rust's " (os error N)" tail, lower case as the rest of our messages.
fn lower(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Every check that needs no side effect. Error wording names the field (`process.args`,
/// `linux.namespaces[2]`...) and what is wrong with it.
pub(crate) fn validate(spec: &Spec, bundle: &Path) -> Result<Checked> {
    let version = spec.version();
    if version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        != Some(1)
    {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {version:?}: hull supports 1.x"),
        ));
    }
    let rootfs = rootfs(spec, bundle)?;
    validate_process(spec)?;
    // Opens every namespace path and checks its type, refuses duplicates and a missing mount ns.
    let namespaces = NamespacePlan::from_spec(spec)?;
    validate_uts(spec)?;
    validate_user_namespace(spec)?;
    validate_time_namespace(spec)?;
    validate_sysctl(spec)?;
    let mount_label = crate::plan::lsm::check_mount_label(spec)?;
    if let Some(hooks) = spec.hooks() {
        crate::plan::hooks::validate(hooks)?;
    }
    Ok(Checked {
        rootfs,
        namespaces,
        mount_label,
    })
}

fn validate_process(spec: &Spec) -> Result<()> {
    // config.md: OPTIONAL, "REQUIRED when start is called": `start` refuses (Record::no_process).
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("cwd {:?} must be an absolute path", process.cwd()),
        ));
    }
    crate::plan::lsm::validate(process)?;
    crate::plan::user::validate(process.user(), "process.user")?;
    let rlimits = process.rlimits().as_deref().unwrap_or_default();
    for (i, r) in rlimits.iter().enumerate() {
        if let Some(first) = rlimits[..i].iter().position(|o| o.typ() == r.typ()) {
            return Err(invalid(
                format!("process.rlimits[{i}]"),
                format!(
                    "duplicate rlimit type \"{}\" (also process.rlimits[{first}])",
                    r.typ()
                ),
            ));
        }
    }
    Ok(())
}

/// The config's entry for a namespace type, if any (`Some(None)`: a new one; `Some(Some(p))`: join).
fn namespace(spec: &Spec, typ: LinuxNamespaceType) -> Option<Option<&Path>> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == typ)
        .map(|n| n.path().as_deref())
}

fn validate_uts(spec: &Spec) -> Result<()> {
    let has_uts = namespace(spec, LinuxNamespaceType::Uts).is_some();
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) && !has_uts {
            return Err(invalid(
                field,
                format!("unable to set {field} without a private UTS namespace"),
            ));
        }
    }
    Ok(())
}

fn validate_user_namespace(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uid_maps = linux.and_then(|l| l.uid_mappings().as_deref());
    let gid_maps = linux.and_then(|l| l.gid_mappings().as_deref());
    match namespace(spec, LinuxNamespaceType::User) {
        None => {
            if uid_maps.is_some() || gid_maps.is_some() {
                return Err(invalid(
                    "linux.uidMappings",
                    "user namespace mappings specified, but user namespace isn't enabled in the config",
                ));
            }
        }
        // Joining: the namespace's own maps apply (containerd and CRI-O also pass them here).
        Some(Some(_)) => {}
        Some(None) => {
            let user = spec.process().as_ref().map(|p| p.user());
            for (field, maps, kind, ids) in [
                (
                    "linux.uidMappings",
                    uid_maps,
                    "uid",
                    [0, user.map_or(0, |u| u.uid())],
                ),
                (
                    "linux.gidMappings",
                    gid_maps,
                    "gid",
                    [0, user.map_or(0, |u| u.gid())],
                ),
            ] {
                let maps = maps.unwrap_or_default();
                if maps.is_empty() {
                    return Err(invalid(
                        field,
                        format!("user namespaces enabled, but no {kind} mappings found"),
                    ));
                }
                // The init becomes root in the namespace, then the process's user.
                for id in ids {
                    if !maps.iter().any(|m| maps_id(m, id)) {
                        return Err(invalid(
                            field,
                            format!("{kind} {id} is not mapped in the user namespace"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn maps_id(m: &LinuxIdMapping, id: u32) -> bool {
    id >= m.container_id() && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
}

fn validate_time_namespace(spec: &Spec) -> Result<()> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    match (namespace(spec, LinuxNamespaceType::Time), offsets) {
        (None, Some(_)) => Err(invalid(
            "linux.timeOffsets",
            "time namespace offsets specified, but time namespace isn't enabled in the config",
        )),
        (Some(Some(_)), Some(_)) => Err(invalid(
            "linux.timeOffsets",
            "time namespace enabled, but both namespace path and time offsets specified",
        )),
        _ => Ok(()),
    }
}

/// runc's rules: only sysctls that belong to a namespace the container does not share with the
/// host may be set.
fn validate_sysctl(spec: &Spec) -> Result<()> {
    const IPC_KEYS: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let has = |t| namespace(spec, t).is_some();
    for key in keys {
        let s = sysctl::dotted(key);
        let refuse = |problem: String| Err(invalid("linux.sysctl", problem));
        if sysctl::proc_path(key).is_none() {
            return refuse(format!("invalid sysctl key {key:?}"));
        }
        if IPC_KEYS.contains(&s.as_str()) || s.starts_with("fs.mqueue.") {
            if !has(LinuxNamespaceType::Ipc) {
                return refuse(format!(
                    "sysctl {s:?} is not allowed in the hosts ipc namespace"
                ));
            }
        } else if s.starts_with("net.") {
            let host_net = match namespace(spec, LinuxNamespaceType::Network) {
                None => true,
                Some(None) => false,
                Some(Some(path)) => is_host_netns(path)?,
            };
            if host_net {
                return refuse(format!(
                    "sysctl {s:?} not allowed in host network namespace"
                ));
            }
        } else if has(LinuxNamespaceType::Uts) && s == "kernel.domainname" {
        } else if has(LinuxNamespaceType::Uts) && s == "kernel.hostname" {
            return refuse(format!(
                "sysctl {s:?} is not allowed as it conflicts with the OCI \"hostname\" field"
            ));
        } else if s.starts_with("user.") {
            if !has(LinuxNamespaceType::User) {
                return refuse(format!(
                    "setting ucounts without a user namespace not allowed: {s}"
                ));
            }
        } else {
            return refuse(format!(
                "sysctl {s:?} is not in a separate kernel namespace"
            ));
        }
    }
    Ok(())
}

/// Whether a network namespace path is the runtime's own ("host" means current, as in runc).
fn is_host_netns(path: &Path) -> Result<bool> {
    let own = std::fs::metadata("/proc/self/ns/net").io("stat", "/proc/self/ns/net")?;
    let other = std::fs::metadata(path).io("stat", path)?;
    Ok(own.dev() == other.dev() && own.ino() == other.ino())
}

/// What runc only warns about: the config is run, but the caller should log these (with
/// [`Checked::mount_label`], which validation found).
pub(crate) fn warnings(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if !m.destination().is_absolute() {
            out.push(format!(
                "mount destination {:?} is not absolute: it is taken relative to the rootfs",
                m.destination()
            ));
        }
    }
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    out.extend(crate::plan::capabilities::warnings(caps));
    out
}

#[cfg(test)]
mod tests;
