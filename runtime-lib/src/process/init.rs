//! The container's init: what the cloned child does between the clone and the exec of the user's
//! process, one call per step, in the order runc applies the spec. Changes the process and the
//! kernel through [`Syscall`], so `seam_tests` run the sequence against a recorder and check its
//! order without privileges. Still outside it, each a no-op unless the config asks for it:
//! linux.netDevices, the console (process.terminal), the hooks, creating a missing cwd.
//!
//! The child is already in every namespace it was cloned with; see `channel` for the messages
//! exchanged with the runtime along the way.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::unistd::{AccessFlags, Gid, Uid};
use oci_spec::runtime::{Hooks, LinuxNamespaceType, Process, Spec};

use super::channel::{Channel, Message};
use super::fds;
use super::hooks;
use super::steps::{lsm, netdev, process_attrs, rlimits, sysctl, tty, user};
use crate::cgroups::SelfJoin;
use crate::error::{InitFailure, InitResult, InitStep, SysContext};
use crate::hooks::HookKind;
use crate::plan::namespaces::NamespacePlan;
use crate::syscall::Syscall;
use crate::{rootfs, seccomp};

/// Everything the init needs, handed over in memory by the fork (nothing is serialised).
pub struct Init<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub plan: &'a NamespacePlan,
    /// Namespaces to unshare after joining `plan.joins` (when the clone could not create them).
    pub unshare: CloneFlags,
    pub channel: Channel,
    /// Read end of `<state>/exec.fifo`, opened read-write by the runtime so it never blocks.
    pub exec_fifo: OwnedFd,
    /// Write end of `<state>/exec.done`: one byte right before the execve tells `start` it worked.
    pub exec_done: OwnedFd,
    /// linux.seccomp, compiled by the runtime.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The container's v1 cgroups, which the init joins itself (taken, then closed, at once).
    pub cgroups: std::cell::Cell<SelfJoin>,
}

/// Runs the init to the exec; returns only on failure (with the exit code for the child).
pub fn run(init: Init<'_>, sys: &dyn Syscall) -> i32 {
    let (exec, state) = match prepare(&init, sys) {
        Ok(prepared) => prepared,
        Err(failure) => {
            let _ = init.channel.send(&Message::Failed(failure));
            return 1;
        }
    };
    let spec = init.spec;
    let seccomp_last = spec
        .process()
        .as_ref()
        .and_then(|p| seccomp_at_exec(p, init.seccomp));
    let Init {
        channel,
        exec_fifo,
        exec_done,
        ..
    } = init;
    if let Err(failure) = wait_for_start(channel, &exec_fifo, sys) {
        // The runtime is gone (create returned) by the time start is awaited: the container's
        // stderr is the only place left to say why.
        eprintln!("hull init: {failure}");
        return 1;
    }
    if let Some(mut state) = state {
        // The user's program has not run yet: still `created` (runtime.md's state).
        state.status = crate::Status::Created;
        let start = spec
            .hooks()
            .as_ref()
            .map(|h| hooks::of_kind(h, HookKind::StartContainer))
            .unwrap_or_default();
        if let Err(failure) = hooks::run(HookKind::StartContainer, start, &state) {
            eprintln!("hull init: {failure}");
            // For `start` to return as its error (crate::state::EXEC_DONE_FIFO).
            if let Ok(record) = serde_json::to_vec(&failure) {
                let _ = std::io::Write::write_all(&mut std::fs::File::from(exec_done), &record);
            }
            return 1;
        }
    }
    // `start` returns once it reads this (or end-of-file, if we died before getting here).
    let _ = nix::unistd::write(&exec_done, crate::state::EXEC_REACHED);
    let Some(exec) = exec else {
        // `start` refuses before writing the fifo; this is someone writing it by hand.
        eprintln!(
            "hull init: {}",
            InitFailure::new(InitStep::Exec).detail("the config has no process to start")
        );
        return 1;
    };
    let failure = exec.exec(seccomp_last, sys);
    eprintln!("hull init: {failure}");
    255
}

/// The init sequence, spec order, up to the point where only the exec is left.
pub(super) fn prepare(
    init: &Init<'_>,
    sys: &dyn Syscall,
) -> InitResult<(Option<Executable>, Option<crate::State>)> {
    guard_against_runtime_death(sys)?;
    let cgroups = init.cgroups.take();
    // Before any path is followed for the container (see `fds`); the host's /proc still.
    let mut keep = vec![
        Some(init.channel.as_fd()),
        Some(init.exec_fifo.as_fd()),
        Some(init.exec_done.as_fd()),
        init.console_socket.as_ref().map(|s| s.as_fd()),
    ];
    keep.extend(cgroups.fds().map(Some));
    sys.sanitize_fds(first_unkept_fd(init.preserve_fds), &keep)?;
    drop(keep);
    await_cgroups(&init.channel, cgroups, sys)?;
    let bind_sources = enter_namespaces(init, sys)?;
    start_session(init, sys)?;
    let (prepared, state) = build_rootfs(init, bind_sources, sys)?;
    name_and_tune(init.spec, sys)?;
    // After sysctl: finalize makes /proc/sys read-only (a readonlyPath of the default config).
    rootfs::finalize(init.spec, &prepared, sys)?;
    let Some(process) = init.spec.process().as_ref() else {
        // config.md lets `process` wait until start; `start` refuses such a container.
        idle(init, sys)?;
        return Ok((None, state));
    };
    let exec = prepare_process(init, process, sys)?;
    Ok((Some(exec), state))
}

/// The first descriptor neither stdio nor one of `process`'s preserved ones (`--preserve-fds`).
fn first_unkept_fd(preserve_fds: u32) -> RawFd {
    3 + preserve_fds as RawFd
}

/// `linux.namespaces`: those with a path joined, the rest unshared when the clone could not make
/// them, the id mappings of a new user namespace written, root in it taken. Returns the bind
/// mount sources, opened while the ids were still the caller's.
fn enter_namespaces(init: &Init<'_>, sys: &dyn Syscall) -> InitResult<rootfs::BindSources> {
    init.plan.join(sys)?;
    if !init.unshare.is_empty() {
        sys.unshare(init.unshare)
            .init(InitStep::CreateNamespaces, format!("{:?}", init.unshare))?;
    }
    // Still with the caller's ids: in a user namespace the mapped root may not traverse the host
    // directories above the bundle (Docker's userns-remap: containerd keeps its state directory
    // 0700), and from here on the rootfs is reached relative to the bundle (`rootfs::reach`).
    // Relative bind sources are relative to the bundle too, as in runc (which runs from there).
    sys.chdir(init.bundle)
        .init(InitStep::Bundle, init.bundle.display())?;
    let new_userns = (init.plan.clone_flags | init.unshare).contains(CloneFlags::CLONE_NEWUSER);
    if new_userns {
        await_id_mappings(&init.channel, sys)?;
    }
    let joined_userns = init
        .plan
        .joins
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::User);
    if !(new_userns || joined_userns) {
        return Ok(rootfs::BindSources::default());
    }
    // Like the bundle above: while our ids are still the caller's (see `BindSources`).
    let bind_sources = rootfs::BindSources::open(init.spec)?;
    become_root(sys)?;
    Ok(bind_sources)
}

/// `linux.netDevices` brought up in the new network namespace, a session of the init's own, and
/// (unless `--no-new-keyring`) a session keyring of the container's own.
fn start_session(init: &Init<'_>, sys: &dyn Syscall) -> InitResult<()> {
    let linux = init.spec.linux().as_ref();
    if let Some(devices) = linux.and_then(|l| l.net_devices().as_ref()) {
        netdev::set_up(devices)?;
    }
    sys.setsid().init(InitStep::Console, "setsid")?;
    if !init.no_new_keyring {
        if let Some(process) = init.spec.process().as_ref() {
            lsm::set_key_label(process, sys)?;
        }
        join_session_keyring(init.id, sys)?;
    }
    Ok(())
}

/// `root`, `mounts` and `linux.devices`, the createRuntime and createContainer hooks, pivot_root,
/// then what must exist in the new root before it may become read-only: the cwd and the console.
fn build_rootfs(
    init: &Init<'_>,
    bind_sources: rootfs::BindSources,
    sys: &dyn Syscall,
) -> InitResult<(rootfs::Prepared, Option<crate::State>)> {
    let spec = init.spec;
    let process = spec.process().as_ref();
    let prepared = rootfs::prepare(spec, init.rootfs, &bind_sources, sys)?;
    drop(bind_sources);
    let state = match spec.hooks() {
        Some(hooks) => Some(create_hooks(init, hooks)?),
        None => None,
    };
    rootfs::pivot(init.rootfs, init.no_pivot, sys)?;
    // Before finalize, which may make the root read-only.
    if let Some(process) = process {
        create_cwd(process)?;
    }
    if let Some(socket) = &init.console_socket {
        let socket = socket
            .try_clone()
            .map_err(|e| io_failure(InitStep::Console, "socket", e))?;
        let size = process.and_then(|p| p.console_size());
        let slave = tty::setup_console_with(socket, size.as_ref())?;
        rootfs::mount_console(&slave, sys)?;
    }
    Ok((prepared, state))
}

/// `hostname`, `domainname` and `linux.sysctl`.
fn name_and_tune(spec: &Spec, sys: &dyn Syscall) -> InitResult<()> {
    if let Some(hostname) = spec.hostname() {
        sys.sethostname(hostname)
            .init(InitStep::Hostname, hostname)?;
    }
    if let Some(domainname) = spec.domainname() {
        sys.setdomainname(domainname)
            .init(InitStep::Domainname, domainname)?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        sysctl::apply(sysctl, sys)?;
    }
    Ok(())
}

/// With no `process`, nothing will ever be exec'd by this init: it waits in `created` for kill or
/// delete, holding nothing a process exec'd into the container could use.
fn idle(init: &Init<'_>, sys: &dyn Syscall) -> InitResult<()> {
    sys.mark_cloexec_from(first_unkept_fd(init.preserve_fds))?;
    let none = sys.drop_bounding_set(None)?;
    sys.apply_capabilities(&none)?;
    sys.set_no_new_privs()
        .init(InitStep::NoNewPrivileges, "prctl")
}

/// `process`: rlimits, the scheduling attributes, the user and its privileges, the cwd, the
/// executable found, the personality, a late seccomp filter.
fn prepare_process(
    init: &Init<'_>,
    process: &Process,
    sys: &dyn Syscall,
) -> InitResult<Executable> {
    let linux = init.spec.linux().as_ref();
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default(), sys)?;
    // While the init still has every capability (FIFO/RR/DEADLINE and RT I/O need CAP_SYS_NICE).
    process_attrs::apply_scheduler(process.scheduler().as_ref(), sys)?;
    process_attrs::apply_io_priority(process.io_priority().as_ref(), sys)?;
    process_attrs::apply_memory_policy(linux.and_then(|l| l.memory_policy().as_ref()), sys)?;

    // Again, for anything opened since; before seccomp, which may deny close_range.
    sys.mark_cloexec_from(first_unkept_fd(init.preserve_fds))?;
    take_identity(process, init.seccomp, &init.channel, sys)?;
    sys.chdir(Path::new(process.cwd()))
        .init(InitStep::Cwd, process.cwd().display())?;
    fds::check_cwd_inside_root(process.cwd())?;

    let exec = Executable::resolve(process)?;
    // Last, as runc: a 32-bit personality changes how the kernel reports the machine from now on.
    process_attrs::apply_personality(linux.and_then(|l| l.personality().as_ref()), sys)?;
    // A notify listener must reach its agent before `create` returns; any other filter with
    // no_new_privs waits until right before the execve (`Executable::exec`).
    load_seccomp_late(process, init.seccomp, &init.channel, sys)?;
    Ok(exec)
}

/// The mounts are made and pivot_root is next: the runtime's prestart and createRuntime hooks, then
/// our createContainer hooks (in the container's namespaces, host paths still reachable).
fn create_hooks(init: &Init<'_>, hooks: &Hooks) -> InitResult<crate::State> {
    init.channel
        .send(&Message::CreateRuntime)
        .init(InitStep::Hooks, "createRuntime")?;
    let created = match init.channel.recv() {
        Ok(Message::HooksDone { created }) => created,
        other => return Err(unexpected(InitStep::Hooks, other)),
    };
    // runtime.md: hooks run in the container namespace get the pid as the container sees it:
    // ours, here in its pid namespace.
    let pid = nix::unistd::getpid().as_raw();
    let state =
        crate::State::creating(init.spec, init.id, pid, (init.bundle, init.rootfs), created);
    let create = hooks::of_kind(hooks, HookKind::CreateContainer);
    hooks::run(HookKind::CreateContainer, create, &state)
        .map_err(|f| InitFailure::new(InitStep::Hooks).detail(f.to_string()))?;
    Ok(state)
}

/// The process's user and privileges, shared by the init and `exec`: its AppArmor profile or
/// SELinux label for the execve (while nothing can refuse the writes yet), the bounding set and the
/// parts of the user that need no id change, seccomp when it needs the capabilities about to go (no
/// no_new_privs: loading a filter then needs CAP_SYS_ADMIN), then the user's ids, the other
/// capability sets, no_new_privs.
///
/// What runs under the filter from here to the execve, as `strace -f` shows it (the profile must
/// allow what is marked required; everything else survives its refusal, EPERM or ENOSYS alike):
/// - no_new_privs false (the filter is loaded here, config-linux.md: before the capabilities are
///   dropped):
///   - required by the spec: setgroups, setresgid, setresuid (`process.user`), prctl
///     (PR_SET_KEEPCAPS, PR_CAP_AMBIENT), capget, capset (`process.capabilities`), chdir
///     (`process.cwd`); each failure names the step and the call;
///   - required by the CVE-2024-21626 check that the cwd is inside the root: getcwd (as runc);
///   - the PATH lookup: newfstatat, statx and access for each candidate (refused: the check is
///     left to the execve), openat/read/close of /etc/passwd for HOME (refused: HOME=/);
///   - the create/start handshake: sendto, recvmsg (Ready/Proceed; refused: write and read on the
///     same socket), prctl (PR_SET_PDEATHSIG, required), fcntl, close, read (exec.fifo), write
///     (exec.done; the user's program needs read and write anyway); the startContainer hooks
///     (clone3 or clone, execve of the hook, pipes, poll, wait4), which runc too runs under the
///     filter;
///   - rt_sigaction, rt_sigprocmask to reset the signals (refused: left as they are);
///   - execve;
///   - `exec` makes the same calls from here to its execve, without the handshake and hooks.
/// - no_new_privs true (see [`Executable::exec`]): rt_sigaction and rt_sigprocmask run before the
///   filter; only execve runs under it.
/// - a notify listener (SCMP_ACT_NOTIFY) with no_new_privs true: loaded at the end of the init's
///   preparation ([`load_seccomp_late`]); the listener is sent (sendmsg, required: it carries the
///   descriptor) and closed (fcntl, close), then the same handshake, hooks, signals and execve as
///   above. With no_new_privs false the listener is sent from take_identity, the same way.
///
/// Moved before the filter so the profile need not allow them: the bounding set (prctl
/// PR_CAPBSET_DROP/READ), the stdio owner (newfstatat, fchown), the umask, /proc/self/setgroups,
/// close_range (which also falls back to a /proc/self/fd walk).
pub(super) fn take_identity(
    process: &Process,
    filter: Option<&seccomp::Filter>,
    channel: &Channel,
    sys: &dyn Syscall,
) -> InitResult<()> {
    lsm::apply(process, sys)?;
    let no_new_privileges = process.no_new_privileges().unwrap_or(false);
    let caps = sys.drop_bounding_set(process.capabilities().as_ref())?;
    let user = user::prepare(process.user(), sys)?;
    if let (Some(filter), false) = (filter, no_new_privileges) {
        load_seccomp(filter, channel, sys)?;
    }
    user::set_user(process.user(), &user, sys)?;
    sys.apply_capabilities(&caps)?;
    if no_new_privileges {
        sys.set_no_new_privs()
            .init(InitStep::NoNewPrivileges, "prctl")?;
    }
    Ok(())
}

/// A filter with a notify listener and no_new_privs: loaded at the end of the preparation (after
/// the PATH lookup), since the agent must have its listener before `create` returns. Any other
/// filter with no_new_privs goes in right before the execve ([`Executable::exec`]).
pub(super) fn load_seccomp_late(
    process: &Process,
    filter: Option<&seccomp::Filter>,
    channel: &Channel,
    sys: &dyn Syscall,
) -> InitResult<()> {
    match filter {
        Some(filter) if process.no_new_privileges().unwrap_or(false) && filter.needs_listener() => {
            load_seccomp(filter, channel, sys)
        }
        _ => Ok(()),
    }
}

/// The filter [`Executable::exec`] loads itself: with no_new_privs and without a listener.
pub(super) fn seccomp_at_exec<'a>(
    process: &Process,
    filter: Option<&'a seccomp::Filter>,
) -> Option<&'a seccomp::Filter> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    filter.filter(|f| nnp && !f.needs_listener())
}

/// Loads the filter; a notify listener goes to the runtime, which hands it to `listenerPath`
/// before we go on (a notified syscall of ours would otherwise wait for an agent without it).
fn load_seccomp(filter: &seccomp::Filter, channel: &Channel, sys: &dyn Syscall) -> InitResult<()> {
    let Some(listener) = sys.load_seccomp(filter)? else {
        return Ok(());
    };
    channel
        .send_with_fd(&Message::SeccompListener, listener.as_fd())
        .init(InitStep::Seccomp, "send listener")?;
    match channel.recv() {
        Ok(Message::ListenerSent) => Ok(()),
        other => Err(unexpected(InitStep::Seccomp, other)),
    }
}

/// Until the runtime confirms, the init must not outlive it: a half-made container nobody knows of
/// would leak. And no process in the container may read this one's memory or /proc/<pid>/exe (the
/// runtime's binary) before the exec replaces both.
fn guard_against_runtime_death(sys: &dyn Syscall) -> InitResult<()> {
    sys.set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
        .init(InitStep::Sync, "prctl(PR_SET_PDEATHSIG)")?;
    sys.set_dumpable(false)
        .init(InitStep::Sync, "prctl(PR_SET_DUMPABLE)")
}

/// Step 0 of the protocol: the runtime made the cgroups and set their limits (and moved this
/// process into those it does not join itself); then this process joins the v1 hierarchies of
/// `cgroups` and closes their files, before anything else.
pub(super) fn await_cgroups(
    channel: &Channel,
    cgroups: SelfJoin,
    sys: &dyn Syscall,
) -> InitResult<()> {
    match channel.recv() {
        Ok(Message::CgroupsApplied) => {}
        other => return Err(unexpected(InitStep::Sync, other)),
    }
    for (path, tasks, optional) in cgroups.files() {
        match sys.join_cgroup(tasks) {
            Ok(()) => {}
            Err(_) if optional => {}
            Err(e) => {
                return Err(InitFailure::sys(
                    InitStep::Cgroups,
                    path.to_string_lossy(),
                    e,
                ))
            }
        }
    }
    Ok(())
}

fn await_id_mappings(channel: &Channel, sys: &dyn Syscall) -> InitResult<()> {
    // Only this process lives in the new user namespace: being dumpable again lets it (as the
    // namespace's root) use its own /proc/self entries, which otherwise belong to the host's
    // root, and lets a runtime that is not root write its uid_map, gid_map and setgroups (runc
    // makes its child dumpable for that too).
    sys.set_dumpable(true)
        .init(InitStep::IdMappings, "prctl(PR_SET_DUMPABLE)")?;
    channel
        .send(&Message::IdMapRequest)
        .init(InitStep::IdMappings, "request")?;
    match channel.recv() {
        Ok(Message::IdMapsWritten) => Ok(()),
        other => Err(unexpected(InitStep::IdMappings, other)),
    }
}

/// In a user namespace the clone leaves us with the overflow ids until we pick the mapped root.
fn become_root(sys: &dyn Syscall) -> InitResult<()> {
    sys.setresgid(Gid::from_raw(0))
        .init(InitStep::User, "gid 0")?;
    sys.setresuid(Uid::from_raw(0))
        .init(InitStep::User, "uid 0")
}

/// A session keyring of the container's own, so it cannot read the keys of the runtime's session
/// (`exec` joins the same one by name, so every process of the container shares it).
pub(crate) fn join_session_keyring(id: &str, sys: &dyn Syscall) -> InitResult<()> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| {
        InitFailure::new(InitStep::Sync)
            .subject(id)
            .detail("the container id contains a NUL byte")
    })?;
    match sys.join_session_keyring(&name) {
        // Kernels without keyrings, and seccomp'd hosts that refuse keyctl: runc carries on too.
        Ok(_) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EPERM) => Ok(()),
        Err(e) => Err(InitFailure::sys(InitStep::Sync, "join session keyring", e)),
    }
}

/// runc creates a missing cwd (as root, before the user changes), so images need not ship it.
fn create_cwd(process: &Process) -> InitResult<()> {
    let cwd = process.cwd();
    if !cwd.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .map_err(|e| io_failure(InitStep::Cwd, cwd.display(), e))?;
    }
    Ok(())
}
/// Tells the runtime we are ready, waits for its go-ahead, then blocks until `start`.
fn wait_for_start(channel: Channel, exec_fifo: &OwnedFd, sys: &dyn Syscall) -> InitResult<()> {
    channel
        .send(&Message::Ready)
        .init(InitStep::Sync, "ready")?;
    match channel.recv() {
        Ok(Message::Proceed) => {}
        other => return Err(unexpected(InitStep::Sync, other)),
    }
    // The runtime recorded us: from now on the container lives on its own.
    sys.set_pdeathsig(None)
        .init(InitStep::Sync, "prctl(PR_SET_PDEATHSIG)")?;
    drop(channel);
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(exec_fifo.as_fd(), &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => {
                return Err(InitFailure::new(InitStep::Sync)
                    .subject("exec.fifo")
                    .detail("closed before start"))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(InitFailure::sys(InitStep::Sync, "exec.fifo", e)),
        }
    }
}

fn unexpected(step: InitStep, got: Result<Message, super::channel::RecvError>) -> InitFailure {
    let detail = match got {
        Ok(m) => format!("unexpected message {m:?}"),
        Err(e) => format!("runtime {e}"),
    };
    InitFailure::new(step).detail(detail)
}

pub(crate) fn io_failure(
    step: InitStep,
    subject: impl std::fmt::Display,
    e: std::io::Error,
) -> InitFailure {
    let f = InitFailure::new(step).subject(subject);
    match e.raw_os_error() {
        Some(n) => f.errno(nix::errno::Errno::from_raw(n)),
        None => f.detail(e.to_string()),
    }
}

/// The user's process, resolved in the container before `Ready` so a missing binary fails `create`.
pub(super) struct Executable {
    pub(super) path: PathBuf,
    /// `path` for execve, made before the filter so nothing allocates under it.
    cpath: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

const NOT_FOUND: &str = "executable file not found in $PATH";

impl Executable {
    pub(super) fn resolve(process: &Process) -> InitResult<Executable> {
        let args = process.args().as_deref().unwrap_or_default();
        let name = args.first().map(String::as_str).unwrap_or_default();
        let env: Vec<String> = process.env().clone().unwrap_or_default();
        let path = if name.contains('/') {
            check_executable(Path::new(name)).map_err(|e| exec_failure(name, e))?;
            PathBuf::from(name)
        } else {
            let search = env
                .iter()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or_default();
            search
                .split(':')
                .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
                .find(|candidate| check_executable(candidate).is_ok())
                .ok_or_else(|| {
                    InitFailure::new(InitStep::Executable)
                        .subject(name)
                        .detail(NOT_FOUND)
                })?
        };
        let cstr = |s: &str| {
            CString::new(s).map_err(|_| {
                InitFailure::new(InitStep::Executable)
                    .subject(name)
                    .detail("argument or environment contains a NUL byte")
            })
        };
        let mut envp = env
            .iter()
            .map(|s| cstr(s))
            .collect::<InitResult<Vec<_>>>()?;
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            envp.push(cstr(&format!(
                "HOME={}",
                user::default_home(process.user().uid())
            ))?);
        }
        let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            InitFailure::new(InitStep::Executable)
                .subject(name)
                .detail("path contains a NUL byte")
        })?;
        Ok(Executable {
            argv: args.iter().map(|s| cstr(s)).collect::<InitResult<_>>()?,
            envp,
            path,
            cpath,
        })
    }

    /// Execs the process; `filter` (with no_new_privs, see [`seccomp_at_exec`]) is loaded after
    /// the signals are reset, so that execve is the only call of ours the profile sees.
    ///
    /// The user's process starts with every signal at its default and none blocked, whatever the
    /// runtime's caller left ignored or blocked (ignored signals survive execve: Rust ignores
    /// SIGPIPE).
    pub(super) fn exec(&self, filter: Option<&seccomp::Filter>, sys: &dyn Syscall) -> InitFailure {
        sys.reset_signals();
        if let Some(filter) = filter {
            if let Err(failure) = sys.load_seccomp(filter) {
                return failure;
            }
        }
        let e = sys.execve(&self.cpath, &self.argv, &self.envp);
        InitFailure::sys(InitStep::Exec, self.path.display(), e)
    }
}

/// What Go's exec.LookPath (and so runc) checks: a regular file we may execute.
///
/// With no_new_privs false this runs under the seccomp filter: a stat the profile refuses
/// (newfstatat, then statx) or a refused access(2) leaves the check to the execve. Not std's
/// metadata alone: it remembers that statx worked before the filter and then fails on EPERM.
fn check_executable(path: &Path) -> nix::Result<()> {
    use nix::errno::Errno;
    let refused = |e: Errno| matches!(e, Errno::EPERM | Errno::ENOSYS);
    let mode = match nix::sys::stat::stat(path) {
        Ok(st) => Some(st.st_mode),
        Err(e) if refused(e) => match std::fs::metadata(path) {
            Ok(meta) => Some(meta.permissions().mode()),
            Err(e) => {
                let e = Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT));
                if !refused(e) {
                    return Err(e);
                }
                None
            }
        },
        Err(e) => return Err(e),
    };
    if let Some(mode) = mode {
        if mode & libc::S_IFMT == libc::S_IFDIR || mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
    }
    match nix::unistd::access(path, AccessFlags::X_OK) {
        // access(2) never answers these itself: the profile refused the check.
        Err(e) if refused(e) => Ok(()),
        r => r,
    }
}

fn exec_failure(name: &str, e: nix::Error) -> InitFailure {
    let f = InitFailure::new(InitStep::Executable).subject(name);
    match e {
        nix::errno::Errno::ENOENT => f.detail("no such file or directory"),
        nix::errno::Errno::EACCES => f.detail("permission denied"),
        e => f.errno(e),
    }
}
