//! The embedding API's front: [`ContainerBuilder`] (a container from a spec in memory or a bundle,
//! with the runtime's options and the init's streams) and [`ExecBuilder`] (a process in a running
//! container, with its streams). Both run the verb in this process when it is single-threaded, and
//! through a fresh helper process otherwise (see [`super::helper`]).

use std::path::PathBuf;

use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::create::Config;
use super::stdio::{self, Prepared, ProcessIo, Stdio};
use super::{helper, Container, CreateOptions, ExecOptions};
use crate::{Error, Result};

/// Builder methods that set the [`CreateOptions`] field of their name, one line each: the value
/// the method's argument gives the field, and the argument of the method's example.
macro_rules! option_setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $value:expr, example $example:tt;)*) => {
        $(
            $(#[$doc])*
            ///
            #[doc = concat!(
                "```no_run\nlet b = hull::Container::builder(\"demo\").",
                stringify!($name),
                "(",
                stringify!($example),
                ");\n```"
            )]
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.opts.$name = $value;
                self
            }
        )*
    };
}

/// The stream setters both builders share: `$whose` names whose streams they are, `$builder` is
/// the examples' builder (after the lines of `$setup`).
macro_rules! stdio_setters {
    ($whose:literal, $setup:literal, $builder:literal) => {
        #[doc = concat!("The ", $whose, "'s stdin, default [`Stdio::Inherit`].")]
        ///
        #[doc = concat!("```no_run\n", $setup, "let b = ", $builder, ".stdin(hull::Stdio::Null);\n```")]
        pub fn stdin(mut self, s: Stdio) -> Self {
            self.stdio[0] = s;
            self
        }

        #[doc = concat!("The ", $whose, "'s stdout, default [`Stdio::Inherit`].")]
        ///
        #[doc = concat!("```no_run\n", $setup, "let b = ", $builder, ".stdout(hull::Stdio::Piped);\n```")]
        pub fn stdout(mut self, s: Stdio) -> Self {
            self.stdio[1] = s;
            self
        }

        #[doc = concat!("The ", $whose, "'s stderr, default [`Stdio::Inherit`].")]
        ///
        #[doc = concat!("```no_run\n", $setup, "let b = ", $builder, ".stderr(hull::Stdio::Piped);\n```")]
        pub fn stderr(mut self, s: Stdio) -> Self {
            self.stdio[2] = s;
            self
        }

        /// The same for all three streams ([`Stdio::Pty`] sets `process.terminal`).
        ///
        #[doc = concat!("```no_run\n", $setup, "let b = ", $builder, ".stdio(hull::Stdio::Pty);\n```")]
        pub fn stdio(mut self, s: Stdio) -> Self {
            self.stdio = [s; 3];
            self
        }
    };
}

/// Builds and creates a container: `Container::builder(id)`, then a spec (or a bundle), the
/// runtime's options and the init's streams, then [`ContainerBuilder::create`].
///
/// ```no_run
/// use hull::oci_spec::runtime::{ProcessBuilder, RootBuilder, SpecBuilder};
/// use hull::{Container, Stdio};
///
/// hull::exe::ensure_sealed()?; // first thing in main
/// let mut spec = SpecBuilder::default().build().unwrap(); // runc's default config
/// spec.set_root(Some(RootBuilder::default().path("/srv/busybox").build().unwrap()));
/// let mut process = spec.process().clone().unwrap();
/// process.set_args(Some(vec!["echo".into(), "hello".into()]));
/// process.set_terminal(Some(false));
/// spec.set_process(Some(process));
///
/// let mut c = Container::builder("demo")
///     .spec(spec)
///     .root("/run/hull")
///     .stdout(Stdio::Piped)
///     .create()?;
/// let out = c.take_io().stdout;
/// c.start()?;
/// let code = c.wait()?;
/// c.delete(false)?;
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until create()"]
pub struct ContainerBuilder {
    id: String,
    opts: CreateOptions,
    spec: Option<Box<Spec>>,
    bundle: bool,
    bundle_dir: Option<PathBuf>,
    stdio: [Stdio; 3],
}

impl Container {
    /// A builder for the container `id` (runc's id rules), with the state root
    /// [`crate::state::DEFAULT_ROOT`] and runc's default options.
    ///
    /// ```no_run
    /// # fn spec() -> hull::oci_spec::runtime::Spec { unimplemented!() }
    /// let c = hull::Container::builder("demo").spec(spec()).create()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn builder(id: impl Into<String>) -> ContainerBuilder {
        ContainerBuilder {
            id: id.into(),
            opts: CreateOptions::new(crate::state::DEFAULT_ROOT, PathBuf::new()),
            spec: None,
            bundle: false,
            bundle_dir: None,
            stdio: [Stdio::Inherit; 3],
        }
    }

    /// A builder for a process in this container (`exec`), whose streams can be chosen.
    ///
    /// ```no_run
    /// # fn c() -> hull::Container { unimplemented!() }
    /// use hull::oci_spec::runtime::ProcessBuilder;
    /// use hull::Stdio;
    /// let process = ProcessBuilder::default()
    ///     .args(vec!["cat".to_string(), "/etc/hostname".to_string()])
    ///     .cwd("/")
    ///     .build()
    ///     .unwrap();
    /// let mut p = c().exec_builder(process).stdout(Stdio::Piped).spawn()?;
    /// let out = p.take_io().stdout;
    /// let code = p.wait()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn exec_builder(&self, process: Process) -> ExecBuilder<'_> {
        ExecBuilder {
            container: self,
            process,
            opts: ExecOptions::default(),
            stdio: [Stdio::Inherit; 3],
        }
    }
}

impl ContainerBuilder {
    /// The container's config, in memory: no config.json is needed. hull keeps a copy in the state
    /// directory (the state's `bundle`, where hooks read it). `root.path` must be absolute unless
    /// [`ContainerBuilder::bundle_dir`] gives the directory relative paths resolve against.
    ///
    /// ```no_run
    /// # fn spec() -> hull::oci_spec::runtime::Spec { unimplemented!() }
    /// let b = hull::Container::builder("demo").spec(spec());
    /// ```
    pub fn spec(mut self, spec: Spec) -> Self {
        self.spec = Some(Box::new(spec));
        self
    }

    /// An OCI bundle directory holding config.json, as `hull create --bundle` takes it (instead
    /// of [`ContainerBuilder::spec`]).
    ///
    /// ```no_run
    /// let c = hull::Container::builder("demo").bundle("/srv/bundle").create()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.opts.bundle = path.into();
        self.bundle = true;
        self
    }

    /// With [`ContainerBuilder::spec`]: the directory a relative `root.path` and relative bind
    /// mount sources resolve against (a bundle directory without its config.json).
    ///
    /// ```no_run
    /// # fn spec() -> hull::oci_spec::runtime::Spec { unimplemented!() }
    /// let b = hull::Container::builder("demo").spec(spec()).bundle_dir("/srv/bundle");
    /// ```
    pub fn bundle_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.bundle_dir = Some(path.into());
        self
    }

    /// The state root (`--root`), default `/run/hull`.
    ///
    /// ```no_run
    /// let b = hull::Container::builder("demo").root("/run/my-program");
    /// ```
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.opts.root = root.into();
        self
    }

    /// All runtime options at once (see [`CreateOptions`]); its `bundle` is used when no spec is
    /// given. Options set before this call are replaced.
    ///
    /// ```no_run
    /// let mut opts = hull::CreateOptions::new("/run/hull", "/srv/bundle");
    /// opts.no_pivot = true;
    /// let c = hull::Container::builder("demo").options(opts).create()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn options(mut self, opts: CreateOptions) -> Self {
        self.bundle = !opts.bundle.as_os_str().is_empty();
        self.opts = opts;
        self
    }

    option_setters! {
        /// `--systemd-cgroup`: see [`CreateOptions::systemd_cgroup`].
        systemd_cgroup(on: bool) => on, example true;
        /// `--pid-file`: see [`CreateOptions::pid_file`].
        pid_file(path: impl Into<PathBuf>) => Some(path.into()), example "/run/demo.pid";
        /// `--console-socket`: see [`CreateOptions::console_socket`] ([`Stdio::Pty`] needs none).
        console_socket(path: impl Into<PathBuf>) => Some(path.into()), example "/run/console.sock";
        /// `--pidfd-socket`: see [`CreateOptions::pidfd_socket`].
        pidfd_socket(path: impl Into<PathBuf>) => Some(path.into()), example "/run/pidfd.sock";
        /// `--no-pivot`: see [`CreateOptions::no_pivot`].
        no_pivot(on: bool) => on, example true;
        /// `--preserve-fds`: see [`CreateOptions::preserve_fds`] (only from a single-threaded
        /// caller).
        preserve_fds(n: u32) => n, example 1;
        /// Socket activation: see [`CreateOptions::listen_fds`] (only from a single-threaded
        /// caller).
        listen_fds(n: u32) => n, example 1;
        /// `$NOTIFY_SOCKET` proxying: see [`CreateOptions::notify_socket`].
        notify_socket(on: bool) => on, example true;
        /// `--no-new-keyring`: see [`CreateOptions::no_new_keyring`].
        no_new_keyring(on: bool) => on, example true;
        /// `--rootless`: see [`CreateOptions::rootless`] (default: detected, as runc).
        rootless(on: bool) => on, example false;
        /// Create from an executable that is not sealed: see [`CreateOptions::unsealed_exe`].
        unsealed_exe(on: bool) => on, example true;
    }

    stdio_setters!("init", "", "hull::Container::builder(\"demo\")");

    /// `create`: see [`Container::create`]. The calling program may have any number of threads
    /// (see the crate documentation); it is the init's parent either way, so
    /// [`Container::wait`] gives the exit status.
    ///
    /// ```no_run
    /// let c = hull::Container::builder("demo").bundle("/srv/bundle").create()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn create(mut self) -> Result<Container> {
        let config = self.config()?;
        let through_helper = helper::needed()?;
        let prepared = stdio::prepare(self.stdio, through_helper)?;
        if through_helper {
            return helper::create(&self.id, &self.opts, config, prepared);
        }
        local_create(&self.id, &self.opts, config, prepared)
    }

    fn config(&mut self) -> Result<Config> {
        let invalid = |field: &str, problem: &str| Error::InvalidConfig {
            field: field.into(),
            problem: problem.into(),
        };
        let Some(mut spec) = self.spec.take() else {
            if !self.bundle {
                return Err(invalid(
                    "bundle",
                    "neither a spec nor a bundle directory was given to the builder",
                ));
            }
            return Ok(Config::Bundle);
        };
        if self.bundle {
            return Err(invalid(
                "bundle",
                "both a spec and a bundle were given: the spec is the config (bundle_dir() \
                 names the directory its relative paths resolve against)",
            ));
        }
        if self.bundle_dir.is_none() {
            let relative_root = spec.root().as_ref().is_some_and(|r| r.path().is_relative());
            if relative_root {
                return Err(invalid(
                    "root.path",
                    "a relative root.path needs a base: give the spec an absolute root.path, \
                     or the builder a bundle_dir()",
                ));
            }
            let relative_bind = spec.mounts().iter().flatten().any(|m| {
                let bind = m.typ().as_deref() == Some("bind")
                    || m.options()
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind");
                bind && m.source().as_ref().is_some_and(|s| s.is_relative())
            });
            if relative_bind {
                return Err(invalid(
                    "mounts",
                    "a bind mount with a relative source needs a base: make the source \
                     absolute, or give the builder a bundle_dir()",
                ));
            }
        }
        if self.stdio.contains(&Stdio::Pty) {
            if let Some(process) = spec.process_mut() {
                process.set_terminal(Some(true));
            }
        }
        Ok(Config::Spec {
            spec,
            base: self.bundle_dir.take(),
        })
    }
}

/// `create` in this process, the streams already resolved.
pub(crate) fn local_create(
    id: &str,
    opts: &CreateOptions,
    config: Config,
    prepared: Prepared,
) -> Result<Container> {
    let (io, ours) = stdio::child_io(prepared.child, prepared.pty)?;
    let mut c = Container::create_with(id, opts, config, io)?;
    c.io = prepared.parent;
    if let Some(socket) = ours {
        match stdio::receive_master(&socket) {
            Ok(master) => c.io.pty_master = Some(master),
            Err(e) => {
                if let Err(e) = c.delete(true) {
                    log::warn!("{e}");
                }
                return Err(e);
            }
        }
    }
    Ok(c)
}

/// Builds and starts a process in a running container: [`Container::exec_builder`], then its
/// streams and [`ExecOptions`], then [`ExecBuilder::spawn`].
///
/// ```no_run
/// # fn c() -> hull::Container { unimplemented!() }
/// # fn process() -> hull::oci_spec::runtime::Process { unimplemented!() }
/// let container = c();
/// let mut p = container.exec_builder(process()).stdio(hull::Stdio::Pty).spawn()?;
/// let master = p.take_io().pty_master;
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until spawn()"]
pub struct ExecBuilder<'a> {
    container: &'a Container,
    process: Process,
    opts: ExecOptions,
    stdio: [Stdio; 3],
}

impl ExecBuilder<'_> {
    /// runc's exec options (see [`ExecOptions`]).
    ///
    /// ```no_run
    /// # fn c() -> hull::Container { unimplemented!() }
    /// # fn process() -> hull::oci_spec::runtime::Process { unimplemented!() }
    /// let opts = hull::ExecOptions { ignore_paused: true, ..Default::default() };
    /// let container = c();
    /// let b = container.exec_builder(process()).options(opts);
    /// ```
    pub fn options(mut self, opts: ExecOptions) -> Self {
        self.opts = opts;
        self
    }

    stdio_setters!(
        "process",
        "# fn c() -> hull::Container { unimplemented!() }\n\
         # fn process() -> hull::oci_spec::runtime::Process { unimplemented!() }\n\
         let container = c();\n",
        "container.exec_builder(process())"
    );

    /// `exec`: see [`Container::exec`]. Returns once the process has exec'd; the calling program
    /// (any number of threads) is its parent and can [`ExecProcess::wait`] for it.
    ///
    /// ```no_run
    /// # fn c() -> hull::Container { unimplemented!() }
    /// # fn process() -> hull::oci_spec::runtime::Process { unimplemented!() }
    /// let container = c();
    /// let code = container.exec_builder(process()).spawn()?.wait()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn spawn(mut self) -> Result<ExecProcess> {
        if self.stdio.contains(&Stdio::Pty) {
            self.process.set_terminal(Some(true));
        }
        let through_helper = helper::needed()?;
        let prepared = stdio::prepare(self.stdio, through_helper)?;
        let (pid, io) = if through_helper {
            helper::exec(self.container, &self.process, &self.opts, prepared)?
        } else {
            local_exec(self.container, &self.process, &self.opts, prepared)?
        };
        Ok(ExecProcess { pid, io })
    }
}

/// `exec` in this process, the streams already resolved: the pid and the caller's ends.
pub(crate) fn local_exec(
    container: &Container,
    process: &Process,
    opts: &ExecOptions,
    prepared: Prepared,
) -> Result<(Pid, ProcessIo)> {
    let (io, ours) = stdio::child_io(prepared.child, prepared.pty)?;
    let pid = container.exec_with(process, opts, io)?;
    let mut parent = prepared.parent;
    if let Some(socket) = ours {
        match stdio::receive_master(&socket) {
            Ok(master) => parent.pty_master = Some(master),
            Err(e) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = super::wait_pid(pid);
                return Err(e);
            }
        }
    }
    Ok((pid, parent))
}

/// A process [`ExecBuilder::spawn`] started in a container; this program is its parent.
///
/// ```no_run
/// # fn p() -> hull::ExecProcess { unimplemented!() }
/// let mut p = p();
/// println!("pid {}", p.pid());
/// let code = p.wait()?;
/// # Ok::<(), hull::Error>(())
/// ```
#[derive(Debug)]
pub struct ExecProcess {
    pid: Pid,
    io: ProcessIo,
}

impl ExecProcess {
    /// The process's host pid.
    ///
    /// ```no_run
    /// # fn p() -> hull::ExecProcess { unimplemented!() }
    /// let pid = p().pid();
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Takes the caller's ends of its piped streams and pty master (empty afterwards).
    ///
    /// ```no_run
    /// # fn p() -> hull::ExecProcess { unimplemented!() }
    /// let out = p().take_io().stdout;
    /// ```
    pub fn take_io(&mut self) -> ProcessIo {
        std::mem::take(&mut self.io)
    }

    /// Waits for the process to exit: its exit code, 128+signal if it was killed.
    ///
    /// ```no_run
    /// # fn p() -> hull::ExecProcess { unimplemented!() }
    /// let code = p().wait()?;
    /// # Ok::<(), hull::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<i32> {
        super::wait_pid(self.pid)
    }

    /// [`ExecProcess::wait`] for async programs (cargo feature `tokio`): sleeps on the process's
    /// pidfd through tokio's reactor (see [`Container::wait_async`]).
    ///
    /// ```no_run
    /// # async fn f(mut p: hull::ExecProcess) -> hull::Result<()> {
    /// let code = p.wait_async().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn wait_async(&mut self) -> Result<i32> {
        use crate::error::SysContext;
        let process = crate::process::pidfd::PidFd::open(self.pid).sys("open exec'd process")?;
        super::wait::readable(&process, self.pid).await?;
        super::wait::reap(self.pid, "wait for exec'd process")
    }
}
