//! Freezing: v1's freezer.state, v2's cgroup.freeze. Both wait until the kernel says every
//! process has stopped, so `pause` returning means the container is really still.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{fs, FreezerState};
use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

fn timeout(dir: &Path, file: &str) -> Error {
    Error::Io {
        step: "wait for frozen state in",
        path: dir.join(file),
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the cgroup did not freeze within {TIMEOUT:?}"),
        ),
    }
}

/// runc's loop: write FROZEN and read back until the state leaves FREEZING. A task stuck in an
/// uninterruptible sleep can keep the cgroup FREEZING for good; thawing now and then lets it
/// finish what it was doing.
pub(super) fn freeze_v1(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let result = (|| {
        for i in 0u32.. {
            if started.elapsed() > TIMEOUT {
                return Err(timeout(dir, "freezer.state"));
            }
            if i % 50 == 49 {
                fs::write(dir, "freezer.state", "THAWED")?;
                std::thread::sleep(Duration::from_millis(10));
            }
            fs::write(dir, "freezer.state", "FROZEN")?;
            if i % 25 == 24 {
                std::thread::sleep(Duration::from_micros(10));
            }
            match fs::read(dir, "freezer.state")?.trim() {
                "FROZEN" => return Ok(()),
                "FREEZING" => continue,
                other => {
                    return Err(fs::parse_error(&dir.join("freezer.state"), other));
                }
            }
        }
        unreachable!("the loop only ends by returning")
    })();
    if result.is_err() {
        let _ = fs::write(dir, "freezer.state", "THAWED");
    }
    result
}

pub(super) fn thaw_v1(dir: &Path) -> Result<()> {
    fs::write(dir, "freezer.state", "THAWED")
}

pub(super) fn state_v1(dir: &Path) -> Result<FreezerState> {
    loop {
        let Some(state) = fs::read_value(dir, "freezer.state")? else {
            return Ok(FreezerState::Undefined);
        };
        match state.trim() {
            "THAWED" => return Ok(FreezerState::Thawed),
            "FROZEN" => {
                // Frozen because an ancestor is, not by us: the container is not paused.
                return Ok(match fs::read_opt(dir, "freezer.self_freezing")? {
                    Some(s) if s.trim() == "0" => FreezerState::Thawed,
                    _ => FreezerState::Frozen,
                });
            }
            "FREEZING" => std::thread::sleep(Duration::from_millis(1)),
            other => return Err(fs::parse_error(&dir.join("freezer.state"), other)),
        }
    }
}

fn wait_events_frozen(dir: &Path, want: bool) -> Result<()> {
    let started = Instant::now();
    loop {
        let frozen = fs::read_key(dir, "cgroup.events", "frozen")?;
        if frozen == Some(u64::from(want)) {
            return Ok(());
        }
        if started.elapsed() > TIMEOUT {
            return Err(timeout(dir, "cgroup.events"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn freeze_v2(dir: &Path) -> Result<()> {
    if !dir.join("cgroup.freeze").exists() {
        return Err(Error::Unsupported {
            feature: "pause without cgroup.freeze (kernel older than 5.2)".into(),
        });
    }
    fs::write(dir, "cgroup.freeze", "1")?;
    let r = wait_events_frozen(dir, true);
    if r.is_err() {
        let _ = fs::write(dir, "cgroup.freeze", "0");
    }
    r
}

pub(super) fn thaw_v2(dir: &Path) -> Result<()> {
    if !dir.join("cgroup.freeze").exists() {
        return Ok(());
    }
    fs::write(dir, "cgroup.freeze", "0")?;
    wait_events_frozen(dir, false)
}

pub(super) fn state_v2(dir: &Path) -> Result<FreezerState> {
    match fs::read_opt(dir, "cgroup.freeze")?
        .as_deref()
        .map(str::trim)
    {
        None => Ok(FreezerState::Undefined),
        Some("0") => Ok(FreezerState::Thawed),
        Some("1") => {
            // Asked to freeze: report frozen once it is.
            wait_events_frozen(dir, true)?;
            Ok(FreezerState::Frozen)
        }
        Some(other) => Err(fs::parse_error(&dir.join("cgroup.freeze"), other)),
    }
}
