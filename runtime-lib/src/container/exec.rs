//! `exec`: another process in a created or running container.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::create::ChildIo;
use super::Container;
use crate::error::{Error, SysContext};
use crate::plan::namespaces::{type_name, NamespacePlan};
use crate::process::channel::{self, Channel};
use crate::process::parent::{self, ExecSteps};
use crate::process::{exec, pidfd, spawn};
use crate::seccomp::Filter;
use crate::syscall::LinuxSyscall;
use crate::{cgroups, state, Result};

/// runc's `exec` flags that shape how the process is started (the process itself is a
/// `oci_spec::runtime::Process`, from `--process` or built from the command line).
///
/// ```no_run
/// let opts = hull::ExecOptions {
///     pid_file: Some("/run/web-exec.pid".into()),
///     ..Default::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecOptions {
    /// Written atomically with the process's host pid before `exec` returns.
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when the process has `terminal` set.
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process (SCM_RIGHTS, data "setns").
    pub pidfd_socket: Option<PathBuf>,
    /// Pass fds 3..3+N of the caller into the process.
    pub preserve_fds: u32,
    /// Exec even into a paused container (the process starts frozen).
    pub ignore_paused: bool,
    /// Exec even when the calling program is not a sealed copy of itself: see
    /// [`super::CreateOptions::unsealed_exe`].
    pub unsealed_exe: bool,
}

/// The namespaces `exec` joins, in the order NamespacePlan::join wants them.
const JOINABLE: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
];

impl Container {
    /// Starts `process` inside the container and returns its host pid once it has exec'd (a failure
    /// before the exec, such as an unknown executable, is this call's error). The caller is the
    /// process's parent and may wait for it (see [`wait_pid`]). Refuses to run unless the calling
    /// program is a sealed copy of itself (see [`crate::exe`]) or `opts.unsealed_exe` is set.
    ///
    /// The calling program may have any number of threads: this is the short form of
    /// [`Container::exec_builder`] with the caller's own stdio.
    /// runc's `exec`. Errors: [`crate::Error::InvalidStatus`] unless the container is created or
    /// running (or paused, with `ignore_paused`); [`crate::Error::ExeNotSealed`];
    /// [`crate::Error::Init`] for a step of the process's setup (its user, capabilities, cwd,
    /// executable...).
    ///
    /// ```no_run
    /// use hull::oci_spec::runtime::ProcessBuilder;
    ///
    /// let process = ProcessBuilder::default()
    ///     .args(vec!["ps".to_string(), "-ef".to_string()])
    ///     .cwd("/")
    ///     .build()
    ///     .expect("process");
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let pid = c.exec(&process, &hull::ExecOptions::default())?;
    /// let code = hull::container::wait_pid(pid)?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn exec(&self, process: &Process, opts: &ExecOptions) -> Result<Pid> {
        let spawned = self
            .exec_builder(process.clone())
            .options(opts.clone())
            .spawn()?;
        Ok(Pid::from_raw(spawned.pid()))
    }

    /// [`Container::exec`], the process's stdio and console from `io`.
    pub(crate) fn exec_with(
        &self,
        process: &Process,
        opts: &ExecOptions,
        io: ChildIo,
    ) -> Result<Pid> {
        super::check_sealed(opts.unsealed_exe, "exec into a container")?;
        check_process(
            process,
            opts.console_socket.is_some() || io.console.is_some(),
        )?;
        let lock = self.dir.lock()?;
        let record = self.dir.read()?;
        let _init = self.open_init(&record, "exec")?;
        self.check_not_paused(&record, opts)?;
        let filter = self.seccomp_filter(&record)?;
        let stdio = io.raw();
        let (console, pidfd_socket) = parent::connect_sockets(
            io.console,
            opts.console_socket.as_deref(),
            opts.pidfd_socket.as_deref(),
        )?;
        let (runtime_end, child_end) = channel::pair().sys("create exec channel")?;
        let self_join = match &record.cgroups {
            Some(paths) => cgroups::load(paths).self_join()?,
            None => cgroups::SelfJoin::default(),
        };
        let joins_v1_itself = !self_join.is_empty();
        let child = ExecChild {
            process,
            opts,
            record: &record,
            filter: filter.as_ref(),
            console,
            stdio,
            cgroups: self_join,
        };
        let runtime_only = [
            Some(lock.as_raw_fd()),
            Some(runtime_end.as_fd().as_raw_fd()),
            pidfd_socket.as_ref().map(|s| s.as_raw_fd()),
        ];
        let spawned = child.spawn(child_end, runtime_only)?;
        drop(lock);
        let pid = spawned.pid;
        let mut steps = ExecProcessSteps {
            record: &record,
            pid,
            in_cgroup: spawned.in_cgroup,
            joins_v1_itself,
            oom_score_adj: process.oom_score_adj(),
        };
        let listener = filter.as_ref().is_some_and(|f| f.needs_listener());
        let driven = parent::drive_exec(&runtime_end, pid, listener, &mut steps)
            .and_then(|()| report(pid, pidfd_socket.as_ref(), opts));
        if let Err(e) = driven {
            // The caller never learns the pid: the process is not left behind, nor unreaped.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
        Ok(pid)
    }

    /// The config's `process` as the container was created with it: the template `hull exec`
    /// builds a process from (runc's exec without `--process`). It is kept in the container's
    /// state, so a bundle changed or removed since `create` does not matter; only for a
    /// container created by an older hull, whose state lacks it, is the bundle's config.json read
    /// again. A config without a process gives an empty one. Errors: those of
    /// [`crate::bundle::Bundle::load`] in that fallback.
    ///
    /// ```no_run
    /// let c = hull::Container::load("/run/hull".as_ref(), "web")?;
    /// let mut process = c.process_template()?;
    /// process.set_args(Some(vec!["ps".into()]));
    /// let pid = c.exec(&process, &hull::ExecOptions::default())?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn process_template(&self) -> Result<Process> {
        if let Some(process) = self.dir.read_template()? {
            return Ok(process);
        }
        if self.record.no_process {
            return Ok(Process::default());
        }
        let bundle = crate::bundle::Bundle::load(&self.record.state.bundle)?;
        Ok(bundle.spec.process().clone().unwrap_or_default())
    }

    /// The container's seccomp filter: as create compiled it, or compiled again from the record
    /// when that copy is missing (a container of an older hull) or is not one this hull wrote.
    fn seccomp_filter(&self, record: &state::Record) -> Result<Option<Filter>> {
        let Some(config) = &record.seccomp else {
            return Ok(None);
        };
        let kept = std::fs::read(self.dir.path().join(state::SECCOMP_FILE)).ok();
        match kept.as_deref().and_then(Filter::from_bytes) {
            Some(filter) => Ok(Some(filter)),
            None => crate::seccomp::compile(config).map(Some),
        }
    }

    /// A paused container takes no new process unless asked (`--ignore-paused`).
    fn check_not_paused(&self, record: &state::Record, opts: &ExecOptions) -> Result<()> {
        if !opts.ignore_paused && self.dir.status(record) == crate::Status::Paused {
            return Err(Error::InvalidStatus {
                id: record.state.id.clone(),
                op: "exec",
                status: crate::Status::Paused,
            });
        }
        Ok(())
    }
}

/// The process has exec'd: its pidfd to `--pidfd-socket`, its pid to `--pid-file`.
fn report(pid: Pid, pidfd_socket: Option<&OwnedFd>, opts: &ExecOptions) -> Result<()> {
    if let Some(socket) = pidfd_socket {
        pidfd::send_to_socket(socket, pid, pidfd::EXEC_KIND)?;
    }
    if let Some(pid_file) = &opts.pid_file {
        state::write_atomic(pid_file, pid.to_string().as_bytes(), 0o644)?;
    }
    Ok(())
}

/// What the forked process takes with it.
struct ExecChild<'a> {
    process: &'a Process,
    opts: &'a ExecOptions,
    record: &'a state::Record,
    filter: Option<&'a crate::seccomp::Filter>,
    console: Option<OwnedFd>,
    stdio: [Option<RawFd>; 3],
    /// The container's v1 cgroups, which the process joins itself.
    cgroups: cgroups::SelfJoin,
}

impl ExecChild<'_> {
    /// Forks the process into the container's namespaces (and, on v2, its cgroup); the runtime's
    /// `runtime_only` descriptors are closed in it first.
    fn spawn(self, channel: Channel, runtime_only: [Option<RawFd>; 3]) -> Result<spawn::Spawned> {
        let mut plan = join_plan(self.record.state.pid)?;
        let user_first = user_namespace_first(&mut plan);
        if user_first.is_some() && super::clone_parent() {
            // The fork that joins the user namespace would be the process's parent, and it
            // exits: the caller could never wait for the process.
            return Err(Error::Unsupported {
                feature: "exec by an unprivileged user from a multi-threaded program".into(),
            });
        }
        // Unopenable: the process is moved after the clone, which reports the error if any.
        let cgroup_dir = (self.record.cgroups.as_ref())
            .and_then(|paths| parent::open_cgroup_v2(paths).ok().flatten());
        let [lock, runtime_end, pidfd] = runtime_only;
        let runtime_only = [
            lock,
            runtime_end,
            pidfd,
            cgroup_dir.as_ref().map(|d| d.as_raw_fd()),
        ];
        let session_keyring = (!self.record.no_new_keyring).then(|| self.record.state.id.clone());
        let (stdio, plan_ref) = (self.stdio, &plan);
        let child = move || {
            if !parent::child_prologue(&runtime_only, &stdio) {
                return 1;
            }
            exec::run(
                exec::Exec {
                    process: self.process,
                    plan: plan_ref,
                    channel,
                    console_socket: self.console,
                    preserve_fds: self.opts.preserve_fds,
                    seccomp: self.filter,
                    session_keyring: session_keyring.as_deref(),
                    cgroups: std::cell::Cell::new(self.cgroups),
                },
                &LinuxSyscall,
            )
        };
        let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_fd());
        match user_first {
            None => spawn::spawn(&plan, CloneFlags::empty(), None, cgroup_fd, child),
            Some(user_ns) => spawn::spawn_from_user_namespace(user_ns, |flags| {
                spawn::spawn(&plan, flags, None, cgroup_fd, child)
            }),
        }
    }
}

/// What the runtime does at each step of an exec'd process's protocol (see `process::parent`).
struct ExecProcessSteps<'a> {
    record: &'a state::Record,
    pid: Pid,
    /// Cloned into the v2 (or hybrid's unified) cgroup.
    in_cgroup: bool,
    /// Joins the v1 hierarchies itself.
    joins_v1_itself: bool,
    oom_score_adj: Option<i32>,
}

impl ExecSteps for ExecProcessSteps<'_> {
    fn place(&mut self, pid: Pid) -> Result<()> {
        if let Some(paths) = &self.record.cgroups {
            cgroups::load(paths).join_rest(pid, self.in_cgroup, self.joins_v1_itself)?;
        }
        crate::plan::process_attrs::set_oom_score_adj(pid, self.oom_score_adj)
    }

    /// runc sends the process's pid with the container's state, `running`.
    fn send_listener(&mut self, listener: OwnedFd) -> Result<()> {
        let config = self.record.seccomp.as_ref();
        let path = config
            .and_then(|c| c.listener_path().clone())
            .unwrap_or_default();
        let metadata = config.and_then(|c| c.listener_metadata().clone());
        let mut state = self.record.state.clone();
        state.status = crate::Status::Running;
        crate::seccomp::send_process_listener(
            &path,
            metadata.as_deref(),
            &state,
            self.pid.as_raw(),
            listener.as_fd(),
        )
    }
}

/// Waits for a process this process started (`exec`'s) and returns its exit code, 128+signal if
/// it was killed. Errors: [`crate::Error::Sys`] when `pid` is not a child of this process.
///
/// ```no_run
/// # fn f(c: &hull::Container, p: &hull::oci_spec::runtime::Process) -> hull::Result<()> {
/// let pid: hull::Pid = c.exec(p, &hull::ExecOptions::default())?;
/// match hull::container::wait_pid(pid)? {
///     0 => println!("ok"),
///     code => println!("failed with {code}"),
/// }
/// # Ok(())
/// # }
/// ```
pub fn wait_pid(pid: Pid) -> Result<i32> {
    super::wait::reap(pid, "wait for exec'd process")
}

fn check_process(process: &Process, console: bool) -> Result<()> {
    let invalid = |field: &str, problem: &str| Error::InvalidConfig {
        field: field.into(),
        problem: problem.into(),
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("process.cwd", "must be an absolute path"));
    }
    crate::plan::lsm::validate(process)?;
    crate::plan::user::validate(process.user(), "process.user")?;
    let terminal = process.terminal().unwrap_or(false);
    crate::plan::check_terminal(terminal, console, "process")
}

/// Without privileges on the host, the container's pid namespace can be entered (for the
/// clone) only with the capabilities its user namespace gives, so its user namespace must be
/// joined first: that user namespace, taken out of the plan; `None` when root (the child joins it
/// last, see NamespacePlan::join) or when no pid namespace is to be entered.
fn user_namespace_first(plan: &mut NamespacePlan) -> Option<OwnedFd> {
    if nix::unistd::Uid::effective().is_root() || plan.pid_path.is_none() {
        return None;
    }
    let i = plan
        .joins
        .iter()
        .position(|(t, _)| *t == LinuxNamespaceType::User)?;
    Some(plan.joins.remove(i).1)
}

/// Every namespace in which the init differs from us, opened from /proc/<init>/ns.
fn join_plan(init: i32) -> Result<NamespacePlan> {
    let mut plan = NamespacePlan {
        clone_flags: CloneFlags::empty(),
        joins: Vec::new(),
        pid_path: None,
        time: false,
    };
    for typ in JOINABLE {
        let name = match typ {
            LinuxNamespaceType::Mount => "mnt",
            LinuxNamespaceType::Network => "net",
            other => type_name(other),
        };
        let theirs = format!("/proc/{init}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let ino = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
        if ino(&theirs).is_none() || ino(&theirs) == ino(&ours) {
            continue;
        }
        let fd: OwnedFd = open(
            theirs.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .sys_path("open namespace", &theirs)?;
        if typ == LinuxNamespaceType::Pid {
            plan.pid_path = Some(fd);
        } else {
            plan.joins.push((typ, fd));
        }
    }
    Ok(plan)
}
