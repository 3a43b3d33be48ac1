//! `create`: from the bundle to a container whose init waits for `start`. What the runtime does
//! at each step of the init's protocol is here ([`CreateSteps`]); `process::parent` holds the
//! order, side by side with `process::init`.

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
use crate::hooks::{self, HookKind};
use crate::namespaces::NamespacePlan;
use crate::process::channel;
use crate::process::parent::{self, InitCalls, InitSteps};
use crate::process::{init, pidfd, spawn};
use crate::state::{self, ProcessId, Record, State, StateDir, Status};
use crate::syscall::LinuxSyscall;
use crate::{cgroups, netdev, process_attrs, seccomp, user, Result};

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
        let (console, pidfd_socket) = parent::connect_sockets(
            io.console,
            opts.console_socket.as_deref(),
            opts.pidfd_socket.as_deref(),
        )?;
        let calls = InitCalls::of(&bundle.spec, &plan, seccomp_ref);

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
                crate::notify::prepare(&mut bundle.spec, dir.path())?;
            }
            let (runtime_end, init_end) = channel::pair().sys("create init channel")?;
            let cgroup_dir = born_in(&mut *cgroup, &resources)?;

            let runtime_only = [
                Some(lock.as_raw_fd()),
                Some(runtime_end.as_fd().as_raw_fd()),
                pidfd_socket.as_ref().map(|s| s.as_raw_fd()),
                cgroup_dir.as_ref().map(|d| d.as_raw_fd()),
            ];
            let child = InitChild {
                id,
                bundle: &bundle,
                plan: &plan,
                unshare,
                seccomp: seccomp_ref,
                console,
                stdio: stdio_raw,
                opts,
            };
            let fifos = (fifo, done_fifo);
            let spawned = child.spawn(clone_flags, init_end, fifos, &cgroup_dir, runtime_only)?;
            drop(cgroup_dir);
            let pid = spawned.pid;
            init_pid = Some(pid);
            record.state.pid = pid.as_raw();

            let mut steps = CreateSteps {
                cgroup: CgroupSetup {
                    manager: &mut *cgroup,
                    resources: &resources,
                    net_devices: &net_devices,
                    in_cgroup: spawned.in_cgroup,
                },
                bundle: &bundle,
                opts,
                dir: &dir,
                record: record.clone(),
                pid,
                device_rules: None,
            };
            parent::drive_init(&runtime_end, pid, calls, &mut steps)?;
            let record = steps.record;
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

/// What the forked init takes with it.
struct InitChild<'a> {
    id: &'a str,
    bundle: &'a Bundle,
    plan: &'a NamespacePlan,
    /// Namespaces the init unshares itself (see [`split_flags`]).
    unshare: CloneFlags,
    seccomp: Option<&'a seccomp::Filter>,
    console: Option<OwnedFd>,
    stdio: [Option<RawFd>; 3],
    opts: &'a CreateOptions,
}

impl InitChild<'_> {
    /// Clones the init with `clone_flags` (into `cgroup_dir` when there is one); the runtime's
    /// `runtime_only` descriptors are closed in it first.
    fn spawn(
        self,
        clone_flags: CloneFlags,
        channel: channel::Channel,
        (exec_fifo, exec_done): (OwnedFd, OwnedFd),
        cgroup_dir: &Option<OwnedFd>,
        runtime_only: [Option<RawFd>; 4],
    ) -> Result<spawn::Spawned> {
        let (spec, opts, stdio) = (&self.bundle.spec, self.opts, self.stdio);
        let time_offsets = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref());
        let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_fd());
        spawn::spawn(self.plan, clone_flags, time_offsets, cgroup_fd, move || {
            if !parent::child_prologue(&runtime_only, &stdio) {
                return 1;
            }
            init::run(
                init::Init {
                    id: self.id,
                    spec,
                    bundle: &self.bundle.path,
                    rootfs: &self.bundle.rootfs,
                    plan: self.plan,
                    unshare: self.unshare,
                    channel,
                    exec_fifo,
                    exec_done,
                    seccomp: self.seccomp,
                    console_socket: self.console,
                    no_pivot: opts.no_pivot,
                    no_new_keyring: opts.no_new_keyring,
                    preserve_fds: opts.listen_fds + opts.preserve_fds,
                },
                &LinuxSyscall,
            )
        })
    }
}

/// What the runtime does at each step of the init's protocol (see `process::parent`).
struct CreateSteps<'a> {
    cgroup: CgroupSetup<'a>,
    bundle: &'a Bundle,
    opts: &'a CreateOptions,
    dir: &'a StateDir,
    record: Record,
    pid: Pid,
    /// The device rules, set once the rootfs is ready: at `CreateRuntime`, or `Ready` without
    /// hooks (see `place`).
    device_rules: Option<LinuxResources>,
}

impl CreateSteps<'_> {
    fn set_device_rules(&mut self) -> Result<()> {
        match self.device_rules.take() {
            Some(rules) => self.cgroup.manager.set(&rules),
            None => Ok(()),
        }
    }
}

impl InitSteps for CreateSteps<'_> {
    /// The cgroup holds the init before it runs a step (and its namespace is made from it), with
    /// every limit in force: its own setup and every hook run under them. But for the device
    /// rules: as runc, the mounts come first (a block device mounted by the config needs no rule
    /// of its own, and the init only mknods, which runc's default rules allow anyway).
    fn place(&mut self, pid: Pid) -> Result<()> {
        let cg = &mut self.cgroup;
        let (limits, devices) = split_device_rules(cg.resources);
        if !cg.in_cgroup {
            cg.manager.apply(pid, Some(cg.resources))?;
        }
        cg.manager.set(&limits)?;
        self.device_rules = devices;
        if !cg.net_devices.is_empty() {
            let path = format!("/proc/{pid}/ns/net");
            let netns = open(
                path.as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .sys_path("open network namespace", &path)?;
            netdev::move_into(cg.net_devices, netns.as_fd())?;
        }
        let process = self.bundle.spec.process().as_ref();
        process_attrs::set_oom_score_adj(pid, process.and_then(|p| p.oom_score_adj()))
    }

    /// So `state` shows the init of a container being created, and a delete after a killed create
    /// finds it (it dies with us anyway: PR_SET_PDEATHSIG, or end-of-file on the channel before
    /// it set that).
    fn placed(&mut self, pid: Pid) -> Result<()> {
        self.record.init_start_time = state::start_time(pid.as_raw())?;
        self.dir.write(&self.record)
    }

    fn write_id_maps(&mut self, pid: Pid) -> Result<()> {
        user::write_id_mappings(pid, &self.bundle.spec)
    }

    /// Device rules before the hooks, as runc: a prestart hook may add rules of its own (a GPU's).
    fn create_runtime(&mut self) -> Result<String> {
        self.set_device_rules()?;
        let hooks = self.bundle.spec.hooks().clone().unwrap_or_default();
        for kind in [HookKind::Prestart, HookKind::CreateRuntime] {
            hooks::run(kind, hooks::of_kind(&hooks, kind), &self.record.state)?;
        }
        Ok(self.record.state.created.clone())
    }

    fn send_listener(&mut self, listener: OwnedFd) -> Result<()> {
        let linux = self.bundle.spec.linux().as_ref();
        let Some(config) = linux.and_then(|l| l.seccomp().as_ref()) else {
            return Ok(());
        };
        let path = config.listener_path().clone().unwrap_or_default();
        seccomp::send_listener(
            &path,
            config.listener_metadata().as_deref(),
            &self.record.state,
            listener.as_fd(),
        )
    }

    fn ready(&mut self) -> Result<()> {
        self.set_device_rules()?;
        let record = &mut self.record;
        record.state.status = Status::Created;
        record.cgroups = Some(self.cgroup.manager.paths().clone());
        record.creator = None;
        self.dir.write(record)?;
        if let Some(pid_file) = &self.opts.pid_file {
            state::write_atomic(pid_file, self.pid.to_string().as_bytes(), 0o644)?;
        }
        Ok(())
    }
}

/// `resources` without its device rules, and the device rules alone (`None`: none to set).
fn split_device_rules(resources: &LinuxResources) -> (LinuxResources, Option<LinuxResources>) {
    let mut limits = resources.clone();
    let rules = limits.devices().clone().map(|rules| {
        let mut only = LinuxResources::default();
        only.set_devices(Some(rules));
        only
    });
    limits.set_devices(None);
    (limits, rules)
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
/// cloned into it. `None` elsewhere (see `parent::open_cgroup_v2`), and with systemd, whose
/// scope exists only once systemd has put a process in it.
fn born_in(
    manager: &mut dyn cgroups::Manager,
    resources: &LinuxResources,
) -> Result<Option<OwnedFd>> {
    let paths = manager.paths();
    if paths.systemd.is_some() || paths.mode != cgroups::Mode::V2 || paths.unified.is_none() {
        return Ok(None);
    }
    manager.create(Some(resources))?;
    parent::open_cgroup_v2(manager.paths())
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
