//! `create`: the runtime's side of the init protocol (see `process::channel`), which reads side by
//! side with `process::init`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, Pid};
use oci_spec::runtime::{LinuxResources, Spec};

use super::{Container, CreateOptions};
use crate::bundle::Bundle;
use crate::error::{Error, SysContext};
use crate::hooks::HookKind;
use crate::plan::{netdev, process_attrs, tty, CreatePlan};
use crate::process::channel::{self, Channel, Message, RecvError};
use crate::process::hooks;
use crate::process::id_maps;
use crate::process::{init, pidfd, spawn};
use crate::state::{self, Lock, Record, StateDir, Status};
use crate::syscall::LinuxSyscall;
use crate::{cgroups, seccomp, Result};

/// Where `create` takes the config from.
pub(crate) enum Config {
    /// `<opts.bundle>/config.json`.
    Bundle,
    /// A spec in memory. Relative paths resolve against `base`, or the state directory when there
    /// is none (the builder then requires an absolute root.path); the spec is kept in the state
    /// directory as config.json, which is the state's `bundle` (hooks read their config there).
    Spec {
        spec: Box<Spec>,
        base: Option<PathBuf>,
    },
}

/// What the init gets instead of the caller's own: descriptors to become its fds 0, 1 and 2
/// (numbered 3 and up, see [`super::stdio`]), and a connected socket to send its pty master to.
#[derive(Debug, Default)]
pub(crate) struct ChildIo {
    pub stdio: [Option<OwnedFd>; 3],
    pub console: Option<OwnedFd>,
}

impl ChildIo {
    /// The raw numbers the child dup2s onto 0, 1 and 2 (it never drops these values: it leaves
    /// through `_exit`).
    pub(crate) fn raw(&self) -> [Option<RawFd>; 3] {
        [0, 1, 2].map(|i| self.stdio[i].as_ref().map(|fd| fd.as_raw_fd()))
    }
}

impl Container {
    /// `create`: validates the bundle, makes the state directory, forks the init into its
    /// namespaces and waits until it is ready to exec the user's process. On return the container is
    /// `created`, its pid in `opts.pid_file`. On failure nothing is left: no state directory, no
    /// process (the init's mounts die with its mount namespace).
    ///
    /// Refuses to run unless the calling program is a sealed copy of itself (see [`crate::exe`])
    /// or `opts.unsealed_exe` is set.
    ///
    /// The calling program may have any number of threads: see [`Container::builder`], of
    /// which this is the short form for a bundle.
    ///
    /// runc's `create`. Errors: [`crate::Error::InvalidId`], [`crate::Error::ContainerExists`];
    /// the bundle's ([`crate::bundle::Bundle::load`]); [`crate::Error::ExeNotSealed`];
    /// [`crate::Error::Init`] for a step of the init (a mount, the user, the executable...),
    /// [`crate::Error::Hook`] for a prestart, createRuntime or createContainer hook,
    /// [`crate::Error::Systemd`] with `systemd_cgroup`, [`crate::Error::Io`] or
    /// [`crate::Error::Sys`] for the host side.
    ///
    /// ```no_run
    /// use hull::{Container, CreateOptions};
    ///
    /// hull::exe::ensure_sealed()?;
    /// let c = Container::create("web", &CreateOptions::new("/run/hull", "/srv/bundle"))?;
    /// assert_eq!(c.status(), hull::Status::Created);
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn create(id: &str, opts: &CreateOptions) -> Result<Container> {
        Container::builder(id).options(opts.clone()).create()
    }

    /// [`Container::create`] from `config`, the init's stdio and console from `io`: the plan,
    /// then its steps, each recorded in one [`Creation`] that undoes them if a later one fails.
    pub(crate) fn create_with(
        id: &str,
        opts: &CreateOptions,
        config: Config,
        io: ChildIo,
    ) -> Result<Container> {
        super::check_sealed(opts.unsealed_exe, "create a container")?;
        let console = opts.console_socket.is_some() || io.console.is_some();
        let plan = CreatePlan::new(id, opts, config, console)?;
        let sockets = Sockets::connect(opts, io)?;
        let mut creation = Creation::claim(id, opts, plan)?;
        match creation.carry_out(id, opts, sockets) {
            Ok(()) => Ok(creation.commit()),
            Err(e) => Err(creation.fail(e)),
        }
    }
}

/// The caller's descriptors for the init: its stdio, where its pty master goes, where its pidfd
/// goes.
struct Sockets {
    io: ChildIo,
    pidfd: Option<OwnedFd>,
}

impl Sockets {
    fn connect(opts: &CreateOptions, mut io: ChildIo) -> Result<Sockets> {
        if io.console.is_none() {
            io.console = opts
                .console_socket
                .as_deref()
                .map(tty::connect_console_socket)
                .transpose()?;
        }
        let pidfd = opts
            .pidfd_socket
            .as_deref()
            .map(|p| tty::connect_unix(p, "connect to pidfd socket"))
            .transpose()?;
        Ok(Sockets { io, pidfd })
    }
}

/// What the init takes with it from the runtime.
struct InitEnds {
    channel: Channel,
    exec_fifo: OwnedFd,
    exec_done: OwnedFd,
    console: Option<OwnedFd>,
    stdio: [Option<RawFd>; 3],
}

/// A create under way: the plan, and what carrying it out has made so far. Dropped before
/// [`Creation::commit`] (a failed step, or a panic), it undoes exactly that, in reverse.
struct Creation {
    plan: CreatePlan,
    dir: StateDir,
    /// Held from the directory's birth until the container is created or gone (see crate::state).
    lock: Option<Lock>,
    record: Record,
    /// The first record is written: a failed create then ends as delete does, with poststop.
    recorded: bool,
    cgroup_made: bool,
    init: Option<Pid>,
    /// The pid file, once the step that writes it has begun.
    pid_file: Option<PathBuf>,
    committed: bool,
}

impl Creation {
    /// Claims the id: the state directory, locked, and its first record (see crate::state),
    /// before anything else exists; beside it, what `exec` takes from the plan (the process
    /// template and the compiled seccomp filter).
    fn claim(id: &str, opts: &CreateOptions, plan: CreatePlan) -> Result<Creation> {
        let record = plan.first_record(id, opts);
        let (dir, lock) = StateDir::create(&opts.root, id)?;
        let mut creation = Creation {
            plan,
            dir,
            lock: Some(lock),
            record,
            recorded: false,
            cgroup_made: false,
            init: None,
            pid_file: None,
            committed: false,
        };
        creation.dir.write(&creation.record)?;
        creation.recorded = true;
        if let Some(process) = &creation.plan.process_template {
            creation.dir.write_template(process)?;
        }
        if let Some(filter) = &creation.plan.seccomp {
            let path = creation.dir.path().join(state::SECCOMP_FILE);
            state::write_atomic(&path, &filter.to_bytes(), 0o600)?;
        }
        Ok(creation)
    }

    /// The plan's steps after the claim: the config's copy, the fifos, the cgroup, the init, the
    /// protocol to its end.
    fn carry_out(&mut self, id: &str, opts: &CreateOptions, sockets: Sockets) -> Result<()> {
        if self.plan.from_spec {
            self.keep_config()?;
        }
        let exec_fifo = make_fifo(&self.dir.fifo_path())?;
        let exec_done = make_fifo(&self.dir.done_fifo_path())?;
        if opts.notify_socket {
            crate::sd_notify::prepare(&mut self.plan.bundle.spec, self.dir.path())?;
        }
        let (runtime_end, init_end) = channel::pair().sys("create init channel")?;
        self.cgroup_made = true;
        let cgroup_dir = born_in(&mut *self.plan.cgroup, &self.plan.resources)?;
        let Sockets { mut io, pidfd } = sockets;
        let ends = InitEnds {
            channel: init_end,
            exec_fifo,
            exec_done,
            console: io.console.take(),
            stdio: io.raw(),
        };
        let spawned = self.spawn_init(id, opts, ends, &runtime_end, pidfd.as_ref(), &cgroup_dir)?;
        drop((cgroup_dir, io));
        let pid = spawned.pid;
        self.init = Some(pid);
        self.record.state.pid = pid.as_raw();
        self.pid_file = opts.pid_file.clone();
        let cgroup = CgroupSetup {
            manager: &mut *self.plan.cgroup,
            resources: &self.plan.resources,
            net_devices: &self.plan.net_devices,
            in_cgroup: spawned.in_cgroup,
        };
        let record = self.record.clone();
        self.record = follow_init(
            &runtime_end,
            pid,
            record,
            &self.plan.bundle,
            opts,
            &self.dir,
            cgroup,
        )?;
        if let Some(socket) = &pidfd {
            pidfd::send_to_socket(socket, pid, pidfd::INIT_KIND)?;
        }
        Ok(())
    }

    /// A spec given in memory is kept in the state directory: the state's bundle, where hooks
    /// read the config.
    fn keep_config(&self) -> Result<()> {
        state::write_json(&self.dir.path().join(CONFIG_FILE), &self.plan.bundle.spec)
    }

    /// Clones the init into its namespaces (and, on v2, its cgroup).
    fn spawn_init(
        &self,
        id: &str,
        opts: &CreateOptions,
        ends: InitEnds,
        runtime_end: &Channel,
        pidfd_socket: Option<&OwnedFd>,
        cgroup_dir: &Option<OwnedFd>,
    ) -> Result<spawn::Spawned> {
        // The child's copies of these must close at once: the lock would otherwise stay held
        // for as long as the container waits for `start`, and the runtime's end of the
        // channel must read end-of-file when the runtime dies.
        let runtime_only = [
            self.lock.as_ref().map(|l| l.as_raw_fd()),
            Some(runtime_end.as_fd().as_raw_fd()),
            pidfd_socket.map(|s| s.as_raw_fd()),
            // Only the clone needs it: in the init it is a way into the host's cgroupfs.
            cgroup_dir.as_ref().map(|d| d.as_raw_fd()),
        ];
        let plan = &self.plan;
        let spec = &plan.bundle.spec;
        let time_offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref());
        let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_fd());
        spawn::spawn(
            &plan.namespaces,
            plan.clone_flags,
            time_offsets,
            cgroup_fd,
            move || {
                close_inherited(&runtime_only);
                if !take_stdio(&ends.stdio) {
                    return 1;
                }
                init::run(
                    init::Init {
                        id,
                        spec,
                        bundle: &plan.bundle.path,
                        rootfs: &plan.bundle.rootfs,
                        plan: &plan.namespaces,
                        unshare: plan.unshare,
                        channel: ends.channel,
                        exec_fifo: ends.exec_fifo,
                        exec_done: ends.exec_done,
                        seccomp: plan.seccomp.as_ref(),
                        console_socket: ends.console,
                        no_pivot: opts.no_pivot,
                        no_new_keyring: opts.no_new_keyring,
                        preserve_fds: opts.listen_fds + opts.preserve_fds,
                    },
                    &LinuxSyscall,
                )
            },
        )
    }

    /// The container, created: nothing is undone any more.
    fn commit(mut self) -> Container {
        self.committed = true;
        drop(self.lock.take());
        Container {
            dir: self.dir.clone(),
            record: self.record.clone(),
            child: self.init,
            io: super::ProcessIo::default(),
        }
    }

    /// The create failed with `e`: says so (an OOM-killed init only shows as a broken channel,
    /// so it is named, as runc does), and undoes what was made (on drop).
    fn fail(self, e: Error) -> Error {
        let oom_killed =
            self.init.is_some() && self.plan.cgroup.oom_kill_count().is_ok_and(|n| n > 0);
        if oom_killed {
            return Error::InitLost {
                step: "was OOM-killed",
                detail: "memory limit too low?".into(),
            };
        }
        e
    }
}

impl Drop for Creation {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
        if let Some(pid) = self.init {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if self.cgroup_made {
            // What the init forked without a pid namespace of its own (its hooks) is still in
            // the cgroup.
            let cgroup = &mut *self.plan.cgroup;
            let teardown = cgroups::kill_all(
                &*cgroup,
                &self.record.foreign_processes,
                super::KILL_TIMEOUT,
            )
            .and_then(|()| cgroup.destroy());
            if let Err(e) = teardown {
                log::warn!("{e}");
            }
        }
        let _ = self.dir.remove();
        if self.recorded {
            // runtime.md: a failed create continues the lifecycle at the delete step, whose end
            // is the poststop hooks (runc runs them too, whatever failed).
            hooks::poststop(self.record.hooks.as_ref(), &self.record.state);
        }
    }
}

/// The runtime's half of the protocol, message by message.
fn follow_init(
    channel: &Channel,
    pid: Pid,
    mut record: Record,
    bundle: &Bundle,
    opts: &CreateOptions,
    dir: &StateDir,
    cgroup: CgroupSetup<'_>,
) -> Result<Record> {
    // Before the init runs a step: its cgroup holds it (and its namespace is made from it).
    if !cgroup.in_cgroup {
        cgroup.manager.apply(pid, Some(cgroup.resources))?;
    }
    if !cgroup.net_devices.is_empty() {
        let path = format!("/proc/{pid}/ns/net");
        let netns = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys_path("open network namespace", &path)?;
        netdev::move_into(cgroup.net_devices, netns.as_fd())?;
    }
    let process = bundle.spec.process().as_ref();
    process_attrs::set_oom_score_adj(pid, process.and_then(|p| p.oom_score_adj()))?;
    channel
        .send(&Message::CgroupsApplied)
        .sys("send cgroups applied")?;
    // While the init sets itself up: so `state` shows the init of a container being created, and
    // a delete after a killed create finds it (it dies with us anyway: PR_SET_PDEATHSIG, or
    // end-of-file on the channel before it set that).
    record.init_start_time = state::start_time(pid.as_raw())?;
    dir.write(&record)?;
    let hooks = bundle.spec.hooks().clone().unwrap_or_default();
    let seccomp_config = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref());
    loop {
        match channel.recv_with_fd() {
            Ok((Message::SeccompListener, fd)) => {
                let (Some(fd), Some(config)) = (fd, seccomp_config) else {
                    return Err(Error::InitLost {
                        step: "wait for init",
                        detail: "seccomp listener message without a listener".into(),
                    });
                };
                let path = config.listener_path().clone().unwrap_or_default();
                seccomp::send_listener(
                    &path,
                    config.listener_metadata().as_deref(),
                    &record.state,
                    fd.as_fd(),
                )?;
                channel
                    .send(&Message::ListenerSent)
                    .sys("send listener sent")?;
            }
            Ok((Message::CreateRuntime, _)) => {
                for kind in [HookKind::Prestart, HookKind::CreateRuntime] {
                    hooks::run(kind, hooks::of_kind(&hooks, kind), &record.state)?;
                }
                channel
                    .send(&Message::HooksDone {
                        created: record.state.created.clone(),
                    })
                    .sys("send hooks done")?;
            }
            Ok((Message::IdMapRequest, _)) => {
                id_maps::write_id_mappings(pid, &bundle.spec)?;
                channel
                    .send(&Message::IdMapsWritten)
                    .sys("send id maps written")?;
            }
            Ok((Message::Ready, _)) => break,
            Ok((Message::Failed(failure), _)) => return Err(Error::Init(failure)),
            Ok((other, _)) => {
                return Err(Error::InitLost {
                    step: "wait for init",
                    detail: format!("unexpected message {other:?}"),
                })
            }
            Err(RecvError::Closed) => return Err(init_lost(pid)),
            Err(e) => {
                return Err(Error::InitLost {
                    step: "wait for init",
                    detail: e.to_string(),
                })
            }
        }
    }

    cgroup.manager.set(cgroup.resources)?;
    record.state.status = Status::Created;
    record.cgroups = Some(cgroup.manager.paths().clone());
    record.creator = None;
    dir.write(&record)?;
    if let Some(pid_file) = &opts.pid_file {
        state::write_atomic(pid_file, pid.to_string().as_bytes(), 0o644)?;
    }
    channel
        .send(&Message::Proceed)
        .sys("send proceed to init")?;
    // The init closes its end once it no longer dies with us (PR_SET_PDEATHSIG cleared): returning
    // earlier would let our exit kill a container we just reported as created.
    match channel.recv() {
        Err(RecvError::Closed) => Ok(record),
        Ok(other) => Err(Error::InitLost {
            step: "wait for init to detach",
            detail: format!("unexpected message {other:?}"),
        }),
        Err(e) => Err(Error::InitLost {
            step: "wait for init to detach",
            detail: e.to_string(),
        }),
    }
}

/// The container's cgroup and what to put in it.
struct CgroupSetup<'a> {
    manager: &'a mut dyn cgroups::Manager,
    resources: &'a LinuxResources,
    /// linux.netDevices: (host name, container name), moved in once the init exists.
    net_devices: &'a [(String, String)],
    /// The init was cloned into its cgroup (v2): nothing to move.
    in_cgroup: bool,
}

/// On a pure cgroup v2 host: makes the container's cgroup now and opens it, so the init can be
/// cloned into it. `None` elsewhere: v1 and hybrid hosts need one move per hierarchy anyway.
fn born_in(
    manager: &mut dyn cgroups::Manager,
    resources: &LinuxResources,
) -> Result<Option<OwnedFd>> {
    let paths = manager.paths();
    // A systemd scope exists only once systemd has put a process in it.
    let Some(dir) = paths
        .unified
        .as_ref()
        .filter(|_| paths.mode == cgroups::Mode::V2 && paths.systemd.is_none())
    else {
        return Ok(None);
    };
    let path = dir.path.clone();
    manager.create(Some(resources))?;
    let fd = open(
        &path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .sys_path("open cgroup", &path)?;
    Ok(Some(fd))
}

/// The init closed the channel without a word: say how it ended.
fn init_lost(pid: Pid) -> Error {
    let detail = match waitpid(pid, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => e.desc().to_lowercase(),
    };
    Error::InitLost {
        step: "wait for init",
        detail,
    }
}

/// The copy of a spec given in memory, in its state directory.
pub(crate) const CONFIG_FILE: &str = "config.json";

/// The fifos between `start` and the init (`exec.fifo`: start → init, `exec.done`: init → start).
/// Opened read-write here so the open never blocks; the init inherits them (O_CLOEXEC), so a
/// reader sees end-of-file, and a writer's open ENXIO, once the init has exec'd or died.
fn make_fifo(path: &Path) -> Result<OwnedFd> {
    mkfifo(path, Mode::from_bits_truncate(0o600)).sys_path("create fifo", path)?;
    open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).sys_path("open fifo", path)
}

/// In the fresh child: make `fds` its stdin, stdout and stderr (dup2 clears their close-on-exec
/// flag; the originals, numbered 3 and up, close at the exec). False if that failed: the child
/// then exits, and the runtime reports the closed channel.
pub(crate) fn take_stdio(fds: &[Option<RawFd>; 3]) -> bool {
    for (target, fd) in fds.iter().enumerate() {
        if let Some(fd) = *fd {
            // SAFETY: dup2 on descriptor numbers this child holds; no memory is touched.
            if unsafe { libc::dup2(fd, target as RawFd) } < 0 {
                return false;
            }
        }
    }
    true
}

/// In the fresh child: close its copies of descriptors only the runtime may hold.
fn close_inherited(fds: &[Option<RawFd>]) {
    for &fd in fds.iter().flatten() {
        // SAFETY: each fd is this child's copy of one owned by a value in the runtime's frames;
        // the child leaves through `_exit`, so those values are never dropped here (no double close).
        unsafe { libc::close(fd) };
    }
}
