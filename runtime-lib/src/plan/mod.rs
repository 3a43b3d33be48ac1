//! `create`'s plan: the config and the options turned into everything the create needs, every
//! check made (once) before anything exists, so that carrying it out (`container::create`) only
//! makes things.

// The host side of each spec concept: checks made before the fork, one file per concept.
pub(crate) mod capabilities;
pub(crate) mod hooks;
pub(crate) mod lsm;
pub(crate) mod namespaces;
pub(crate) mod netdev;
pub(crate) mod process_attrs;
pub(crate) mod sysctl;
pub(crate) mod tty;
pub(crate) mod user;

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process, Spec};

use crate::bundle::{Bundle, Checked};
use crate::container::{Config, CreateOptions};
use crate::error::Context;
use crate::state::{self, ProcessId, Record, State};
use crate::{bundle, cgroups, seccomp, Error, Result};
use namespaces::NamespacePlan;

/// A validated, complete plan of one container.
#[derive(Debug)]
pub(crate) struct CreatePlan {
    /// The config, with the runtime's own additions to the process (LISTEN_FDS).
    pub bundle: Bundle,
    /// The spec was given in memory: its copy is kept in the state directory.
    pub from_spec: bool,
    /// The state's `bundle`: where hooks find the config (config.md), the state directory for a
    /// spec given in memory.
    pub state_bundle: PathBuf,
    /// config.json's `process` as the config gives it (see [`state::PROCESS_FILE`]).
    pub process_template: Option<Process>,
    /// linux.namespaces, the join paths opened.
    pub namespaces: NamespacePlan,
    /// The namespaces the clone makes.
    pub clone_flags: CloneFlags,
    /// The namespaces the init unshares itself.
    pub unshare: CloneFlags,
    /// The cgroup resources, as they are applied.
    pub resources: LinuxResources,
    /// The container's cgroup (not made yet).
    pub cgroup: Box<dyn cgroups::Manager>,
    /// Processes already in that cgroup, which are never the container's.
    pub foreign_processes: Vec<ProcessId>,
    /// linux.seccomp, compiled.
    pub seccomp: Option<seccomp::Filter>,
    /// linux.netDevices: (host name, container name).
    pub net_devices: Vec<(String, String)>,
}

impl CreatePlan {
    /// The plan of container `id` from `config`; `console` says whether the caller gave the init
    /// somewhere to send a pty master. Checks everything `create` checks, in the order the errors
    /// have always come in, and logs runc's warnings.
    pub(crate) fn new(
        id: &str,
        opts: &CreateOptions,
        config: Config,
        console: bool,
    ) -> Result<CreatePlan> {
        state::validate_id(id)?;
        let state_path =
            std::path::absolute(opts.root.join(id)).io("resolve state root", &opts.root)?;
        let (mut bundle, checked, from_spec) = load(config, &opts.bundle, &state_path)?;
        let state_bundle = if from_spec {
            state_path
        } else {
            bundle.path.clone()
        };
        let process_template = bundle.spec.process().clone();
        add_listen_fds(&mut bundle.spec, opts.listen_fds);
        let process = bundle.spec.process().as_ref();
        check_terminal(
            process.and_then(|p| p.terminal()).unwrap_or(false),
            console,
            "config",
        )?;
        process_attrs::validate(&bundle.spec)?;
        process_attrs::check_unsupported(&bundle.spec)?;
        let Checked {
            namespaces,
            mount_label,
            ..
        } = checked;
        let (clone_flags, unshare) = split_flags(&namespaces)?;
        crate::rootless::check(&bundle.spec)?;
        let (resources, cgroup) = cgroup(id, opts, &bundle.spec)?;
        let linux = bundle.spec.linux().as_ref();
        let seccomp = linux
            .and_then(|l| l.seccomp().as_ref())
            .map(seccomp::compile)
            .transpose()?;
        let net_devices = net_devices(&bundle.spec, clone_flags)?;
        for warning in bundle::warnings(&bundle.spec)
            .into_iter()
            .chain(mount_label)
            .chain(cgroups::warnings(&resources))
        {
            log::warn!("{warning}");
        }
        let foreign_processes = foreign_processes(id, &bundle.spec, &*cgroup)?;
        Ok(CreatePlan {
            bundle,
            from_spec,
            state_bundle,
            process_template,
            namespaces,
            clone_flags,
            unshare,
            resources,
            cgroup,
            foreign_processes,
            seccomp,
            net_devices,
        })
    }

    /// The record `create` writes before it makes anything (see [`crate::state`]): what delete
    /// needs to undo a create killed at any point.
    pub(crate) fn first_record(&self, id: &str, opts: &CreateOptions) -> Record {
        let spec = &self.bundle.spec;
        Record {
            state: State::creating(
                spec,
                id,
                0,
                (&self.state_bundle, &self.bundle.rootfs),
                state::now_rfc3339(),
            ),
            init_start_time: 0,
            hooks: spec.hooks().clone(),
            cgroups: Some(cgroups::planned(self.cgroup.paths())),
            resources: Some(self.resources.clone()),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            no_new_keyring: opts.no_new_keyring,
            no_process: spec.process().is_none(),
            creator: ProcessId::of(std::process::id() as i32),
            foreign_processes: self.foreign_processes.clone(),
        }
    }
}

/// The config, validated, with what validation found; true for a spec given in memory.
fn load(config: Config, bundle: &Path, state_path: &Path) -> Result<(Bundle, Checked, bool)> {
    match config {
        Config::Bundle => {
            let (bundle, checked) = Bundle::load_checked(bundle)?;
            Ok((bundle, checked, false))
        }
        Config::Spec { spec, base } => {
            let base = base.as_deref().unwrap_or(state_path);
            let (bundle, checked) = Bundle::checked(*spec, base)?;
            Ok((bundle, checked, true))
        }
    }
}

/// Socket activation: the init passes on `listen_fds` descriptors, which its process finds named
/// in its environment (sd_listen_fds(3)).
fn add_listen_fds(spec: &mut Spec, listen_fds: u32) {
    if listen_fds == 0 {
        return;
    }
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".into());
        process.set_env(Some(env));
    }
}

/// runc's rules: a terminal needs somewhere to send its master, and a socket needs a terminal.
/// `asker` is what asked for the terminal or not: "config" for create, "process" for exec.
pub(crate) fn check_terminal(terminal: bool, console: bool, asker: &str) -> Result<()> {
    let problem = match (terminal, console) {
        (true, false) => "a terminal needs --console-socket to send its master to".to_string(),
        (false, true) => format!("--console-socket given but the {asker} asks for no terminal"),
        _ => return Ok(()),
    };
    Err(Error::InvalidConfig {
        field: "process.terminal".into(),
        problem,
    })
}

/// Which namespaces the clone creates and which the init unshares after joining the given paths.
///
/// Without joins, the clone makes them all at once (the fast path). With joins, the init must enter
/// those first (so a joined user namespace owns the new ones), so it unshares the rest itself; only a
/// new pid namespace must come from the clone, as unshare would move only the init's children.
/// The cgroup namespace is always unshared: it must be made after the init joined its cgroup, so
/// the container sees that cgroup as its root.
fn split_flags(plan: &NamespacePlan) -> Result<(CloneFlags, CloneFlags)> {
    let (mut at_clone, mut unshare) = if plan.joins.is_empty() {
        (plan.clone_flags, CloneFlags::empty())
    } else {
        let at_clone = plan.clone_flags & CloneFlags::CLONE_NEWPID;
        let user_involved = plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
            || plan
                .joins
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::User);
        if user_involved && !at_clone.is_empty() {
            // The new pid namespace would belong to the host's user namespace, and the
            // container's root could not mount its /proc.
            return Err(Error::Unsupported {
                feature: "a new pid namespace together with a user namespace and namespaces \
                          joined by path"
                    .into(),
            });
        }
        (at_clone, plan.clone_flags - at_clone)
    };
    if at_clone.contains(CloneFlags::CLONE_NEWCGROUP) {
        at_clone -= CloneFlags::CLONE_NEWCGROUP;
        unshare |= CloneFlags::CLONE_NEWCGROUP;
    }
    Ok((at_clone, unshare))
}

/// The resources and the cgroup manager of the host's kind (or systemd's, or a rootless user's).
fn cgroup(
    id: &str,
    opts: &CreateOptions,
    spec: &Spec,
) -> Result<(LinuxResources, Box<dyn cgroups::Manager>)> {
    let cgroups_path = cgroups_path(spec);
    let mut resources = cgroups::container_resources(spec);
    let manager = if opts.systemd_cgroup {
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
    Ok((resources, manager))
}

fn cgroups_path(spec: &Spec) -> Option<&Path> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_deref())
}

/// linux.netDevices, checked; they are moved into the network namespace the clone makes.
fn net_devices(spec: &Spec, clone_flags: CloneFlags) -> Result<Vec<(String, String)>> {
    match spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) {
        Some(devices) if !devices.is_empty() => {
            // The namespace must exist right after the clone, when the runtime moves them.
            if !clone_flags.contains(CloneFlags::CLONE_NEWNET) {
                return Err(Error::Unsupported {
                    feature: "linux.netDevices without a new network namespace made at clone \
                              (none, or one joined by path)"
                        .into(),
                });
            }
            netdev::plan(devices)
        }
        _ => Ok(Vec::new()),
    }
}

/// The processes already in the container's cgroup, with runc's warning about them.
fn foreign_processes(
    id: &str,
    spec: &Spec,
    cgroup: &dyn cgroups::Manager,
) -> Result<Vec<ProcessId>> {
    let (foreign_dirs, foreign) = cgroups::foreign_processes(cgroup.paths())?;
    if let Some(first) = foreign_dirs.first() {
        let pids: Vec<i32> = foreign.iter().map(|p| p.pid).collect();
        log::warn!(
            "cgroup {first:?} (linux.cgroupsPath {:?}) already holds {} process(es) that are \
             not the container's ({pids:?}): they share its limits, and delete will leave \
             them and the cgroup in place",
            cgroups_path(spec).unwrap_or(Path::new(id)),
            pids.len()
        );
    }
    Ok(foreign)
}
