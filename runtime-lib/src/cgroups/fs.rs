//! cgroupfs access: the only code in Hull that reads or writes a cgroup file or makes a cgroup
//! directory. Every error names the file and, for writes, the value written.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};

use crate::error::{Context, Error, Result};

/// The error of a failed cgroup write: `write "<file>": "<value>": <reason>`.
pub(crate) fn write_error(file: &Path, value: &str, reason: impl std::fmt::Display) -> Error {
    Error::Io {
        step: "write",
        path: file.to_path_buf(),
        source: std::io::Error::other(format!("{value:?}: {reason}")),
    }
}

fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Opens a file that must live on a cgroup filesystem, so a symlink or bind mount planted where a
/// cgroup directory was expected cannot redirect a write elsewhere.
fn open_cgroup_file(path: &Path, write: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    let st = fstatfs(&f).map_err(std::io::Error::from)?;
    let kind = st.filesystem_type();
    if kind != CGROUP_SUPER_MAGIC && kind != CGROUP2_SUPER_MAGIC {
        return Err(std::io::Error::other("not a cgroup file"));
    }
    Ok(f)
}

/// `path`, a cgroup file, open for writing (close-on-exec, not through a symlink).
pub(crate) fn open_for_write(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    open_cgroup_file(path, true).map(std::os::fd::OwnedFd::from)
}

/// Writes `value` to `dir/file` in one write(2), as cgroupfs wants. `Err(errno)` is kept apart
/// from other failures so callers can react to EBUSY/EINVAL as runc does.
pub(crate) fn try_write(dir: &Path, file: &str, value: &str) -> std::result::Result<(), WriteFail> {
    let path = dir.join(file);
    let mut f = open_cgroup_file(&path, true).map_err(|e| WriteFail {
        path: path.clone(),
        e,
    })?;
    loop {
        match f.write(value.as_bytes()) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteFail { path, e }),
        }
    }
}

/// A failed write, before it becomes an [`Error`].
#[derive(Debug)]
pub(crate) struct WriteFail {
    pub path: PathBuf,
    pub e: std::io::Error,
}

impl WriteFail {
    pub fn errno(&self) -> Option<Errno> {
        self.e.raw_os_error().map(Errno::from_raw)
    }
    pub fn not_found(&self) -> bool {
        self.e.kind() == ErrorKind::NotFound
    }
    pub fn into_error(self, value: &str) -> Error {
        write_error(&self.path, value, errno_text(&self.e))
    }
}

/// [`try_write`] with the error made final.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    try_write(dir, file, value).map_err(|f| f.into_error(value))
}

/// The content of `dir/file`.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    read_with(dir, file, crate::proc_handle::read_unsized)
}

/// [`read`] of a file with one short value (freezer.state): one `read(2)`, see
/// [`crate::proc_handle::read_small`].
pub(crate) fn read_value(dir: &Path, file: &str) -> Result<Option<String>> {
    missing_is_none(read_with(dir, file, crate::proc_handle::read_small))
}

fn read_with(
    dir: &Path,
    file: &str,
    read: fn(&mut std::fs::File) -> std::io::Result<Vec<u8>>,
) -> Result<String> {
    let path = dir.join(file);
    open_cgroup_file(&path, false)
        .and_then(|mut f| read(&mut f))
        .and_then(|data| {
            String::from_utf8(data)
                .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e.utf8_error()))
        })
        .io("read", &path)
}

/// `read`, but a missing file is `None` (an absent controller or a kernel without the knob).
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    missing_is_none(read(dir, file))
}

fn missing_is_none(read: Result<String>) -> Result<Option<String>> {
    match read {
        Ok(s) => Ok(Some(s)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a cgroup number; "max" is u64::MAX and a negative value (v1's -1) is 0, as runc reads them.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    match s.parse::<u64>() {
        Ok(v) => Some(v),
        Err(_) => s.parse::<i64>().ok().filter(|v| *v < 0).map(|_| 0),
    }
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(&s).ok_or_else(|| parse_error(&dir.join(file), &s))
}

pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => parse_u64(&s)
            .map(Some)
            .ok_or_else(|| parse_error(&dir.join(file), &s)),
    }
}

pub(crate) fn parse_error(path: &Path, content: &str) -> Error {
    Error::Io {
        step: "parse",
        path: path.to_path_buf(),
        source: std::io::Error::new(
            ErrorKind::InvalidData,
            format!("unexpected content {:?}", content.trim()),
        ),
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events...), in file order.
pub(crate) fn parse_flat_keyed(content: &str) -> Vec<(&str, u64)> {
    content
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, parse_u64(v)?))
        })
        .collect()
}

/// The value of `key` in a flat-keyed file.
pub(crate) fn read_key(dir: &Path, file: &str, key: &str) -> Result<Option<u64>> {
    Ok(read_opt(dir, file)?.and_then(|c| {
        parse_flat_keyed(&c)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }))
}

/// Makes `path` and any missing parent (never above `root`, the hierarchy's mount point), and
/// appends every directory it made to `created`, top down.
pub(crate) fn mkdir_all(root: &Path, path: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let rel = path.strip_prefix(root).map_err(|_| Error::InvalidConfig {
        field: "linux.cgroupsPath".into(),
        problem: format!("{path:?} is not inside the cgroup hierarchy {root:?}"),
    })?;
    // A parent another container's create made can be removed by that container's delete
    // (`remove_parent_if_empty`) between our finding it and making our directory inside: then
    // the walk starts over and makes the parent itself.
    let mut retries = 0;
    'walk: loop {
        let mut cur = root.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            match fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound && retries < 10 => {
                    retries += 1;
                    continue 'walk;
                }
                Err(e) => return Err(e).io("create cgroup", &cur),
            }
        }
        return Ok(());
    }
}

/// Writes `pid` to `dir/cgroup.procs`, retrying EINVAL a few times as runc does (a process that
/// is still being set up by clone can be refused for a moment).
pub(crate) fn write_procs(dir: &Path, pid: i32) -> Result<()> {
    let value = pid.to_string();
    let mut last = None;
    for _ in 0..5 {
        match try_write(dir, "cgroup.procs", &value) {
            Ok(()) => return Ok(()),
            Err(f) if f.errno() == Some(Errno::EINVAL) => {
                last = Some(f);
                std::thread::sleep(Duration::from_millis(30));
            }
            Err(f) => return Err(f.into_error(&value)),
        }
    }
    Err(last.expect("the loop ran").into_error(&value))
}

/// Every pid in `dir` and in the cgroups below it (a container may make its own sub-cgroups).
pub(crate) fn all_pids(dir: &Path) -> Result<Vec<i32>> {
    let mut out = Vec::new();
    match collect_pids(dir, &mut out) {
        // A cgroup already removed (a delete cut short before) holds no process.
        Err(Error::Io { source, .. }) if removed(&source) => Ok(Vec::new()),
        r => r.map(|()| out),
    }
}

/// The cgroup went away: gone (ENOENT), or removed while we had it open (ENODEV: systemd
/// collects a scope the moment its last process exits, concurrently with delete's reads).
fn removed(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = read(dir, "cgroup.procs")?;
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for entry in fs::read_dir(dir).io("list cgroup", dir)?.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            match collect_pids(&entry.path(), out) {
                // A sub-cgroup removed while we walked.
                Err(Error::Io { source, .. }) if removed(&source) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// Removes a cgroup directory and the sub-cgroups the container made inside it, retrying while
/// the kernel still reports it busy (a killed process leaves its cgroup a moment after it died).
/// A directory already gone is fine.
pub(crate) fn remove_cgroup(dir: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(10);
    let mut last = Ok(());
    for attempt in 0..6 {
        if attempt > 0 {
            std::thread::sleep(delay);
            delay *= 2;
        }
        last = remove_tree(dir);
        if last.is_ok() {
            return Ok(());
        }
    }
    last
}

fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&entry.path())?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).io("remove cgroup", dir),
    }
}

/// [`remove_cgroup`] of a container's own directory `dir`, unless `dir` was there before the
/// container (not in `created`) and still holds processes: those are not the container's (delete
/// has killed every one of its own), and the cgroup is theirs as much as it was ours.
pub(crate) fn remove_leaf(dir: &Path, created: &[PathBuf]) -> Result<()> {
    if !created.iter().any(|c| c == dir) && all_pids(dir).is_ok_and(|p| !p.is_empty()) {
        log::debug!("cgroup {dir:?} still holds processes that are not the container's: left");
        return Ok(());
    }
    remove_cgroup(dir)
}

/// Removes a parent directory Hull made for a nested cgroupsPath, if nothing else lives in it
/// now (another container may share the parent).
pub(crate) fn remove_parent_if_empty(dir: &Path) {
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_runc_reads_them() {
        assert_eq!(parse_u64("42\n"), Some(42));
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64("-1"), Some(0));
        assert_eq!(parse_u64("abc"), None);
        assert_eq!(
            parse_flat_keyed("cache 1\nrss 2\nbad\n"),
            vec![("cache", 1), ("rss", 2)]
        );
    }

    #[test]
    fn mkdir_all_survives_a_parent_removed_meanwhile() {
        use std::sync::{Arc, Barrier};
        let root = std::env::temp_dir().join(format!("hull-mkdir-all-{}", std::process::id()));
        let parent = root.join("ns");
        let rounds = 1000;
        let barrier = Arc::new(Barrier::new(2));
        // Another container's delete, removing the shared parent once, at the same moment.
        let remover = {
            let (parent, barrier) = (parent.clone(), barrier.clone());
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    barrier.wait();
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_micros(300) {
                        if fs::remove_dir(&parent).is_ok() {
                            break;
                        }
                    }
                    barrier.wait();
                }
            })
        };
        let mut failures = Vec::new();
        for i in 0..rounds {
            fs::create_dir_all(&parent).unwrap();
            let leaf = parent.join(format!("c{i}"));
            barrier.wait();
            let mut created = Vec::new();
            let made = mkdir_all(&root, &leaf, &mut created);
            barrier.wait();
            match made {
                Ok(()) => assert!(created.contains(&leaf)),
                Err(e) => failures.push(e.to_string()),
            }
            let _ = fs::remove_dir(&leaf);
        }
        remover.join().unwrap();
        let _ = fs::remove_dir_all(&root);
        assert!(
            failures.is_empty(),
            "{} of {rounds}: {:?}",
            failures.len(),
            failures.first()
        );
    }

    #[test]
    fn write_errors_name_file_and_value() {
        let e = write_error(
            Path::new("/sys/fs/cgroup/memory/x/memory.limit_in_bytes"),
            "abc",
            "invalid argument",
        );
        assert_eq!(
            e.to_string(),
            r#"write "/sys/fs/cgroup/memory/x/memory.limit_in_bytes": "abc": invalid argument"#
        );
    }

    #[test]
    fn writes_outside_cgroupfs_are_refused() {
        let dir = std::env::temp_dir().join(format!("hull-cg-fs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.max"), "").unwrap();
        let err = write(&dir, "memory.max", "1").unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("not a cgroup file"), "{err}");
    }
}
