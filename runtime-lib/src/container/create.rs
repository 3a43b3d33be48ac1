//! `create`: the runtime's side of the init protocol (see `process::channel`), which reads side by
//! side with `process::init`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, Pid};
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};

use super::{Container, CreateOptions};
use crate::bundle::Bundle;
use crate::error::{Context, Error, SysContext};
use crate::hooks::HookKind;
use crate::plan::namespaces::NamespacePlan;
use crate::plan::{netdev, process_attrs, tty};
use crate::process::channel::{self, Channel, Message, RecvError};
use crate::process::hooks;
use crate::process::id_maps;
use crate::process::{init, pidfd, spawn};
use crate::state::{self, ProcessId, Record, State, StateDir, Status};
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

    /// [`Container::create`] from `config`, the init's stdio and console from `io`.
    pub(crate) fn create_with(
        id: &str,
        opts: &CreateOptions,
        config: Config,
        io: ChildIo,
    ) -> Result<Container> {
        super::check_sealed(opts.unsealed_exe, "create a container")?;
        state::validate_id(id)?;
        let state_path =
            std::path::absolute(opts.root.join(id)).io("resolve state root", &opts.root)?;
        let (mut bundle, from_spec) = match config {
            Config::Bundle => (Bundle::load(&opts.bundle)?, false),
            Config::Spec { spec, base } => {
                let base = base.unwrap_or_else(|| state_path.clone());
                (Bundle::from_spec(*spec, &base)?, true)
            }
        };
        // Hooks find the config in the state's bundle directory (config.md): for a spec given in
        // memory that is the copy kept in the state directory.
        let state_bundle = if from_spec {
            state_path
        } else {
            bundle.path.clone()
        };
        let stdio_raw = io.raw();
        if opts.listen_fds > 0 {
            if let Some(process) = bundle.spec.process_mut() {
                let mut env = process.env().clone().unwrap_or_default();
                env.push(format!("LISTEN_FDS={}", opts.listen_fds));
                env.push("LISTEN_PID=1".into());
                process.set_env(Some(env));
            }
        }
        check_terminal(
            &bundle.spec,
            opts.console_socket.is_some() || io.console.is_some(),
        )?;
        process_attrs::validate(&bundle.spec)?;
        process_attrs::check_unsupported(&bundle.spec)?;
        let plan = NamespacePlan::from_spec(&bundle.spec)?;
        let (mut clone_flags, mut unshare) = split_flags(&plan)?;
        // The cgroup namespace must be made after the init joined its cgroup, so the container
        // sees that cgroup as its root.
        if clone_flags.contains(CloneFlags::CLONE_NEWCGROUP) {
            clone_flags -= CloneFlags::CLONE_NEWCGROUP;
            unshare |= CloneFlags::CLONE_NEWCGROUP;
        }
        let linux = bundle.spec.linux().as_ref();
        let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
        crate::rootless::check(&bundle.spec)?;
        let mut resources = cgroups::container_resources(&bundle.spec);
        let mut cgroup = if opts.systemd_cgroup {
            cgroups::new_systemd(cgroups_path, id, opts.rootless)?
        } else if opts.rootless {
            // As runc: a rootless container gets no device rules (the user namespace already
            // keeps device nodes out of its reach, and the user could not write them).
            if resources.devices().is_some() {
                log::debug!("rootless: linux.resources.devices not applied");
                resources.set_devices(None);
            }
            cgroups::new_rootless(cgroups_path, id, &resources)?
        } else {
            cgroups::new(cgroups_path, id)?
        };
        let seccomp_filter = linux
            .and_then(|l| l.seccomp().as_ref())
            .map(seccomp::compile)
            .transpose()?;
        let seccomp_ref = seccomp_filter.as_ref();
        let net_devices = match linux.and_then(|l| l.net_devices().as_ref()) {
            Some(devices) if !devices.is_empty() => {
                // The namespace must exist right after the clone, when the runtime moves them.
                if !clone_flags.contains(CloneFlags::CLONE_NEWNET) {
                    return Err(Error::Unsupported {
                        feature: "linux.netDevices without a new network namespace made at clone \
                                  (none, or one joined by path)"
                            .into(),
                    });
                }
                netdev::plan(devices)?
            }
            _ => Vec::new(),
        };
        for warning in crate::bundle::warnings(&bundle.spec)
            .into_iter()
            .chain(cgroups::warnings(&resources))
        {
            log::warn!("{warning}");
        }
        let console = match io.console {
            Some(socket) => Some(socket),
            None => opts
                .console_socket
                .as_deref()
                .map(tty::connect_console_socket)
                .transpose()?,
        };
        let pidfd_socket = opts
            .pidfd_socket
            .as_deref()
            .map(|p| tty::connect_unix(p, "connect to pidfd socket"))
            .transpose()?;

        let (foreign_dirs, foreign_processes) = cgroups::foreign_processes(cgroup.paths())?;
        if let Some(first) = foreign_dirs.first() {
            let pids: Vec<i32> = foreign_processes.iter().map(|p| p.pid).collect();
            log::warn!(
                "cgroup {first:?} (linux.cgroupsPath {:?}) already holds {} process(es) that are \
                 not the container's ({pids:?}): they share its limits, and delete will leave \
                 them and the cgroup in place",
                cgroups_path.unwrap_or(Path::new(id)),
                pids.len()
            );
        }
        // What delete needs to undo this create, written before anything is made (see
        // crate::state): a create killed at any point leaves a record of what it may have made.
        let mut record = Record {
            state: State::creating(
                &bundle.spec,
                id,
                0,
                (&state_bundle, &bundle.rootfs),
                state::now_rfc3339(),
            ),
            init_start_time: 0,
            hooks: bundle.spec.hooks().clone(),
            cgroups: Some(cgroups::planned(cgroup.paths())),
            resources: Some(resources.clone()),
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            no_new_keyring: opts.no_new_keyring,
            no_process: bundle.spec.process().is_none(),
            creator: ProcessId::of(std::process::id() as i32),
            foreign_processes,
        };
        let (dir, lock) = StateDir::create(&opts.root, id)?;
        if let Err(e) = dir.write(&record) {
            let _ = dir.remove();
            return Err(e);
        }

        let mut init_pid = None;
        let made = (|| {
            if from_spec {
                let text = serde_json::to_vec(&bundle.spec).map_err(|e| Error::Io {
                    step: "write",
                    path: dir.path().join(CONFIG_FILE),
                    source: e.into(),
                })?;
                state::write_atomic(&dir.path().join(CONFIG_FILE), &text, 0o600)?;
            }
            let fifo = make_fifo(&dir.fifo_path())?;
            let done_fifo = make_fifo(&dir.done_fifo_path())?;
            if opts.notify_socket {
                crate::sd_notify::prepare(&mut bundle.spec, dir.path())?;
            }
            let (runtime_end, init_end) = channel::pair().sys("create init channel")?;
            let cgroup_dir = born_in(&mut *cgroup, &resources)?;

            // The child's copies of these must close at once: the lock would otherwise stay held
            // for as long as the container waits for `start`, and the runtime's end of the
            // channel must read end-of-file when the runtime dies.
            let runtime_only = [
                Some(lock.as_raw_fd()),
                Some(runtime_end.as_fd().as_raw_fd()),
                pidfd_socket.as_ref().map(|s| s.as_raw_fd()),
                // Only the clone needs it: in the init it is a way into the host's cgroupfs.
                cgroup_dir.as_ref().map(|d| d.as_raw_fd()),
            ];
            let (spec, rootfs, plan_ref) = (&bundle.spec, bundle.rootfs.as_path(), &plan);
            let bundle_path = bundle.path.as_path();
            let spawned = spawn::spawn(
                &plan,
                clone_flags,
                spec.linux()
                    .as_ref()
                    .and_then(|l| l.time_offsets().as_ref()),
                cgroup_dir.as_ref().map(|d| d.as_fd()),
                move || {
                    close_inherited(&runtime_only);
                    if !take_stdio(&stdio_raw) {
                        return 1;
                    }
                    init::run(
                        init::Init {
                            id,
                            spec,
                            bundle: bundle_path,
                            rootfs,
                            plan: plan_ref,
                            unshare,
                            channel: init_end,
                            exec_fifo: fifo,
                            exec_done: done_fifo,
                            seccomp: seccomp_ref,
                            console_socket: console,
                            no_pivot: opts.no_pivot,
                            no_new_keyring: opts.no_new_keyring,
                            preserve_fds: opts.listen_fds + opts.preserve_fds,
                        },
                        &LinuxSyscall,
                    )
                },
            )?;
            drop(cgroup_dir);
            let pid = spawned.pid;
            init_pid = Some(pid);
            record.state.pid = pid.as_raw();

            let cg = CgroupSetup {
                manager: &mut *cgroup,
                resources: &resources,
                net_devices: &net_devices,
                in_cgroup: spawned.in_cgroup,
            };
            let record = follow_init(&runtime_end, pid, record.clone(), &bundle, opts, &dir, cg)?;
            if let Some(socket) = &pidfd_socket {
                pidfd::send_to_socket(socket, pid, pidfd::INIT_KIND)?;
            }
            Ok(record)
        })();
        match made {
            Ok(record) => {
                drop(lock);
                Ok(Container {
                    dir,
                    record,
                    child: init_pid,
                    io: super::ProcessIo::default(),
                })
            }
            Err(e) => {
                // An init the kernel OOM-killed in its fresh cgroup only shows as a broken
                // channel; say what happened, as runc does.
                let e = match (init_pid, cgroup.oom_kill_count()) {
                    (Some(_), Ok(n)) if n > 0 => Error::InitLost {
                        step: "was OOM-killed",
                        detail: "memory limit too low?".into(),
                    },
                    _ => e,
                };
                if let Some(pid) = init_pid {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                }
                // What the init forked without a pid namespace of its own (its hooks) is still
                // in the cgroup.
                let teardown =
                    cgroups::kill_all(&*cgroup, &record.foreign_processes, super::KILL_TIMEOUT)
                        .and_then(|()| cgroup.destroy());
                if let Err(e) = teardown {
                    log::warn!("{e}");
                }
                let _ = dir.remove();
                if let Some(p) = &opts.pid_file {
                    let _ = std::fs::remove_file(p);
                }
                // runtime.md: a failed create continues the lifecycle at the delete step, whose
                // end is the poststop hooks (runc runs them too, whatever failed).
                hooks::poststop(bundle.spec.hooks().as_ref(), &record.state);
                Err(e)
            }
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

/// runc's rules: a terminal needs somewhere to send its master, and a socket needs a terminal.
fn check_terminal(spec: &Spec, console: bool) -> Result<()> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    match (terminal, console) {
        (true, false) => Err(Error::InvalidConfig {
            field: "process.terminal".into(),
            problem: "a terminal needs --console-socket to send its master to".into(),
        }),
        (false, true) => Err(Error::InvalidConfig {
            field: "process.terminal".into(),
            problem: "--console-socket given but the config asks for no terminal".into(),
        }),
        _ => Ok(()),
    }
}

/// Which namespaces the clone creates and which the init unshares after joining the given paths.
///
/// Without joins, the clone makes them all at once (the fast path). With joins, the init must enter
/// those first (so a joined user namespace owns the new ones), so it unshares the rest itself; only a
/// new pid namespace must come from the clone, as unshare would move only the init's children.
fn split_flags(plan: &NamespacePlan) -> Result<(CloneFlags, CloneFlags)> {
    if plan.joins.is_empty() {
        return Ok((plan.clone_flags, CloneFlags::empty()));
    }
    let at_clone = plan.clone_flags & CloneFlags::CLONE_NEWPID;
    let user_involved = plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
        || plan
            .joins
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User);
    if user_involved && !at_clone.is_empty() {
        // The new pid namespace would belong to the host's user namespace, and the container's root
        // could not mount its /proc.
        return Err(Error::Unsupported {
            feature:
                "a new pid namespace together with a user namespace and namespaces joined by path"
                    .into(),
        });
    }
    Ok((at_clone, plan.clone_flags - at_clone))
}

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
