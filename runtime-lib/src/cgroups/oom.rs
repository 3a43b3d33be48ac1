//! OOM notifications for `events`: v1's memory.oom_control eventfd, v2's memory.events (a
//! kernfs file that wakes poll(2) with POLLPRI when it changes). Single-threaded: the caller
//! waits with a timeout and prints a stats event whenever the wait times out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::fs;
use crate::error::{Context, Result, SysContext};

/// What [`OomWatcher::wait`] saw.
///
/// ```no_run
/// use hull::events::OomEvent;
///
/// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
/// let mut watcher = c.oom_watcher()?;
/// loop {
///     match watcher.wait(std::time::Duration::from_secs(5))? {
///         OomEvent::Oom => println!("web: out of memory"),
///         OomEvent::Timeout => continue,
///         OomEvent::Gone => break,
///     }
/// }
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// The OOM killer acted in the container.
    Oom,
    /// Nothing happened within the timeout.
    Timeout,
    /// The cgroup was removed (or, on v2, emptied): no more events will come.
    Gone,
}

/// A watch on a container's out-of-memory kills (v1's `memory.oom_control` eventfd, v2's
/// `memory.events`), from [`crate::Container::oom_watcher`]; `hull events` prints what it sees.
///
/// ```no_run
/// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
/// let mut watcher: hull::events::OomWatcher = c.oom_watcher()?;
/// let first = watcher.wait(std::time::Duration::from_secs(1))?;
/// println!("{first:?}");
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
pub struct OomWatcher {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    V1 {
        eventfd: OwnedFd,
        // Registered with the eventfd; must stay open for as long as it is watched.
        _oom_control: File,
        event_control: PathBuf,
    },
    V2 {
        memory_events: Option<File>,
        cgroup_events: File,
        dir: PathBuf,
        oom_kills: u64,
    },
}

impl OomWatcher {
    pub(super) fn v1(dir: &Path) -> Result<OomWatcher> {
        let oom_control = dir.join("memory.oom_control");
        let file = File::open(&oom_control).io("open", &oom_control)?;
        // SAFETY: eventfd takes no pointers; a non-negative return is a new descriptor we own.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(nix::errno::Errno::last()).sys("create eventfd");
        }
        // SAFETY: `raw` was just returned by eventfd and nothing else owns it.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        use std::os::fd::AsRawFd;
        let line = format!("{} {}", eventfd.as_raw_fd(), file.as_raw_fd());
        fs::write(dir, "cgroup.event_control", &line)?;
        Ok(OomWatcher {
            kind: Kind::V1 {
                eventfd,
                _oom_control: file,
                event_control: dir.join("cgroup.event_control"),
            },
        })
    }

    pub(super) fn v2(dir: &Path) -> Result<OomWatcher> {
        let open = |name: &str| -> Result<Option<File>> {
            let p = dir.join(name);
            match File::open(&p) {
                Ok(f) => Ok(Some(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).io("open", p),
            }
        };
        let cgroup_events = open("cgroup.events")?.ok_or_else(|| crate::Error::Io {
            step: "open",
            path: dir.join("cgroup.events"),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let mut w = OomWatcher {
            kind: Kind::V2 {
                memory_events: open("memory.events")?,
                cgroup_events,
                dir: dir.to_path_buf(),
                oom_kills: 0,
            },
        };
        // Reading arms the poll and gives the count to compare with.
        if let Kind::V2 {
            memory_events,
            cgroup_events,
            oom_kills,
            dir,
        } = &mut w.kind
        {
            if let Some(f) = memory_events {
                *oom_kills = key(&reread(f, dir, "memory.events")?, "oom_kill");
            }
            reread(cgroup_events, dir, "cgroup.events")?;
        }
        Ok(w)
    }

    /// Waits up to `timeout` for the next OOM kill: [`OomEvent::Oom`] when one came,
    /// [`OomEvent::Timeout`] when none did, [`OomEvent::Gone`] once the cgroup is gone (the
    /// container stopped). Errors are [`crate::Error::Io`] or [`crate::Error::Sys`] on the
    /// cgroup's files.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let mut watcher = c.oom_watcher()?;
    /// while watcher.wait(std::time::Duration::from_secs(60))? != hull::events::OomEvent::Gone {}
    /// println!("web has stopped");
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn wait(&mut self, timeout: Duration) -> Result<OomEvent> {
        let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match &mut self.kind {
            Kind::V1 {
                eventfd,
                event_control,
                ..
            } => {
                let mut fds = [PollFd::new(eventfd.as_fd(), PollFlags::POLLIN)];
                if poll_retry(&mut fds, ms)? == 0 {
                    return Ok(OomEvent::Timeout);
                }
                let mut buf = [0u8; 8];
                nix::unistd::read(&*eventfd, &mut buf).sys("read oom eventfd")?;
                // Removing the cgroup also signals the eventfd.
                if !event_control.exists() {
                    return Ok(OomEvent::Gone);
                }
                Ok(OomEvent::Oom)
            }
            Kind::V2 {
                memory_events,
                cgroup_events,
                dir,
                oom_kills,
            } => {
                let flags = PollFlags::POLLPRI | PollFlags::POLLERR;
                let (mem_ready, cg_ready) = {
                    let mut fds = vec![PollFd::new(cgroup_events.as_fd(), flags)];
                    if let Some(m) = memory_events.as_ref() {
                        fds.push(PollFd::new(m.as_fd(), flags));
                    }
                    if poll_retry(&mut fds, ms)? == 0 {
                        return Ok(OomEvent::Timeout);
                    }
                    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                    (fds.get(1).is_some_and(ready), ready(&fds[0]))
                };
                if mem_ready {
                    if let Some(f) = memory_events {
                        // Removing the cgroup wakes memory.events too, and a read of a removed
                        // kernfs file fails with ENODEV: systemd removes a scope's cgroup as
                        // soon as it empties, often before cgroup.events has been read.
                        let content = match reread(f, dir, "memory.events") {
                            Ok(c) => c,
                            Err(_) if !dir.exists() => return Ok(OomEvent::Gone),
                            Err(e) => return Err(e),
                        };
                        let n = key(&content, "oom_kill");
                        if n > *oom_kills {
                            *oom_kills = n;
                            return Ok(OomEvent::Oom);
                        }
                    }
                }
                if cg_ready {
                    let gone = match reread(cgroup_events, dir, "cgroup.events") {
                        Ok(c) => key(&c, "populated") == 0,
                        Err(_) => true,
                    };
                    if gone || !dir.exists() {
                        return Ok(OomEvent::Gone);
                    }
                }
                Ok(OomEvent::Timeout)
            }
        }
    }
}

fn poll_retry(fds: &mut [PollFd], timeout: PollTimeout) -> Result<i32> {
    loop {
        match poll(fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.sys("poll cgroup events"),
        }
    }
}

fn reread(f: &mut File, dir: &Path, name: &str) -> Result<String> {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_string(&mut s))
        .io("read", dir.join(name))?;
    Ok(s)
}

fn key(content: &str, k: &str) -> u64 {
    fs::parse_flat_keyed(content)
        .into_iter()
        .find(|(name, _)| *name == k)
        .map(|(_, v)| v)
        .unwrap_or(0)
}
