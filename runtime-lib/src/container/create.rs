//! `create`: from the bundle to a container whose init waits for `start`. The plan
//! (`crate::plan`) has made every check; here it is carried out under one rollback guard
//! ([`Creation`]), and what the runtime does at each step of the init's protocol is
//! [`CreateSteps`]; `process::parent` holds the order, side by side with `process::init`.

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
use crate::plan::{netdev, process_attrs, CreatePlan};
use crate::process::channel::{self, Channel};
use crate::process::parent::{self, InitCalls, InitSteps};
use crate::process::{hooks, id_maps};
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
        let (console, pidfd) = parent::connect_sockets(
            io.console.take(),
            opts.console_socket.as_deref(),
            opts.pidfd_socket.as_deref(),
        )?;
        io.console = console;
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
    /// The v1 cgroups it joins itself.
    cgroups: cgroups::SelfJoin,
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
        let Birth {
            made,
            dir: cgroup_dir,
            self_join,
        } = born_in(&mut *self.plan.cgroup, &self.plan.resources)?;
        let joins_v1_itself = !self_join.is_empty();
        let Sockets { mut io, pidfd } = sockets;
        let ends = InitEnds {
            channel: init_end,
            exec_fifo,
            exec_done,
            console: io.console.take(),
            stdio: io.raw(),
            cgroups: self_join,
        };
        let spawned = self.spawn_init(id, opts, ends, &runtime_end, pidfd.as_ref(), &cgroup_dir)?;
        drop((cgroup_dir, io));
        let pid = spawned.pid;
        self.init = Some(pid);
        self.record.state.pid = pid.as_raw();
        self.pid_file = opts.pid_file.clone();
        let plan = &mut self.plan;
        let calls = InitCalls::of(&plan.bundle.spec, &plan.namespaces, plan.seccomp.as_ref());
        let mut steps = CreateSteps {
            cgroup: CgroupSetup {
                manager: &mut *plan.cgroup,
                resources: &plan.resources,
                net_devices: &plan.net_devices,
                made,
                in_cgroup: spawned.in_cgroup,
                joins_v1_itself,
            },
            bundle: &plan.bundle,
            opts,
            dir: &self.dir,
            record: self.record.clone(),
            pid,
            device_rules: None,
        };
        let driven = parent::drive_init(&runtime_end, pid, calls, &mut steps);
        // What the steps recorded (the init's start time) is what a rollback must know too.
        self.record = steps.record;
        driven?;
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
                if !parent::child_prologue(&runtime_only, &ends.stdio) {
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
                        cgroups: std::cell::Cell::new(ends.cgroups),
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
        if cg.made {
            cg.manager
                .join_rest(pid, cg.in_cgroup, cg.joins_v1_itself)?;
        } else {
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
        id_maps::write_id_mappings(pid, &self.bundle.spec)
    }

    /// Device rules before the hooks, as runc: a prestart hook may add rules of its own (a GPU's).
    fn create_runtime(&mut self) -> Result<String> {
        self.set_device_rules()?;
        let hooks = self.bundle.spec.hooks().clone().unwrap_or_default();
        for kind in [HookKind::Prestart, HookKind::CreateRuntime] {
            hooks::run(
                kind,
                crate::hooks::of_kind(&hooks, kind),
                &self.record.state,
            )?;
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
    /// The cgroup was made before the clone ([`born_in`]); else `apply` makes it.
    made: bool,
    /// The init was cloned into its v2 (or hybrid's unified) cgroup: nothing to move there.
    in_cgroup: bool,
    /// The init joins the v1 hierarchies itself.
    joins_v1_itself: bool,
}

/// Where the init is born: the container's cgroup made before the clone, its v2 (or hybrid's
/// unified) directory opened to clone the init into, and its v1 `tasks` files opened for the init
/// to join itself, so that no pid is written to a cgroup (see `cgroups::SelfJoin`). Nothing with
/// systemd, whose scope exists only once systemd has put a process in it.
#[derive(Default)]
struct Birth {
    made: bool,
    dir: Option<OwnedFd>,
    self_join: cgroups::SelfJoin,
}

fn born_in(manager: &mut dyn cgroups::Manager, resources: &LinuxResources) -> Result<Birth> {
    if manager.paths().systemd.is_some() {
        return Ok(Birth::default());
    }
    manager.create(Some(resources))?;
    Ok(Birth {
        made: true,
        dir: parent::open_cgroup_v2(manager.paths())?,
        self_join: manager.self_join()?,
    })
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
