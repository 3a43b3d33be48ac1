//! Argument parsing: every argv containerd's shim and conmon send (shared/compat/callers.txt),
//! both flag forms, and runc's single-dash long flags.

use super::*;

fn argv(line: &str) -> Vec<OsString> {
    std::iter::once("hull")
        .chain(line.split_whitespace())
        .map(OsString::from)
        .collect()
}

fn cli(line: &str) -> Cli {
    parse(&runc_style_args(argv(line))).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn fails(line: &str) -> ErrorKind {
    match parse(&runc_style_args(argv(line))) {
        Ok(c) => panic!("{line} parsed: {c:?}"),
        Err(e) => e.kind(),
    }
}

const SHIM: &str = "--root /run/containerd/runc/k8s.io --log /run/b/log.json --log-format json";
const CONMON: &str = "--log-format=json --log /var/lib/c/userdata/oci-log";

#[test]
fn containerd_shim_argv_parse() {
    let c = cli(&format!(
        "{SHIM} create --bundle /run/b --pid-file /run/b/init.pid --console-socket /tmp/pty.sock --no-pivot c1"
    ));
    assert_eq!(c.root, Some(PathBuf::from("/run/containerd/runc/k8s.io")));
    assert_eq!(c.log, Some(PathBuf::from("/run/b/log.json")));
    assert_eq!(c.log_format, Format::Json);
    let Some(Command::Create(create)) = c.command else {
        panic!("not create")
    };
    assert_eq!(create.id, "c1");
    assert_eq!(create.opts.bundle, PathBuf::from("/run/b"));
    assert_eq!(create.opts.pid_file, Some(PathBuf::from("/run/b/init.pid")));
    assert_eq!(
        create.opts.console_socket,
        Some(PathBuf::from("/tmp/pty.sock"))
    );
    assert!(create.opts.no_pivot);

    assert!(
        matches!(cli(&format!("{SHIM} start c1")).command, Some(Command::Start(s)) if s.id == "c1")
    );
    let Some(Command::Delete(d)) = cli(&format!("{SHIM} delete c1")).command else {
        panic!()
    };
    assert!(!d.force);
    let Some(Command::Delete(d)) = cli(&format!("{SHIM} delete --force c1")).command else {
        panic!()
    };
    assert!(d.force && d.id == "c1");
    let Some(Command::Kill(k)) = cli(&format!("{SHIM} kill --all c1 9")).command else {
        panic!()
    };
    assert!(k.all && k.id == "c1" && k.signal == "9");
    let Some(Command::Kill(k)) = cli(&format!("{SHIM} kill c1 15")).command else {
        panic!()
    };
    assert!(!k.all && k.signal == "15");
    for verb in [
        "exec --process /run/b/runc-process1 --detach --pid-file /run/b/e.pid c1",
        "exec --process /run/b/runc-process1 --console-socket /tmp/p.sock --detach --pid-file /run/b/e.pid c1",
    ] {
        let c = cli(&format!("{SHIM} {verb}"));
        assert!(matches!(c.command, Some(Command::Exec(_))), "{verb}");
    }
    let Some(Command::Ps(ps)) = cli(&format!("{SHIM} ps --format json c1")).command else {
        panic!()
    };
    assert!(ps.format == "json" && ps.id == "c1" && ps.ps_args.is_empty());
    assert!(
        matches!(cli(&format!("{SHIM} pause c1")).command, Some(Command::Pause(p)) if p.id == "c1")
    );
    assert!(
        matches!(cli(&format!("{SHIM} resume c1")).command, Some(Command::Resume(r)) if r.id == "c1")
    );
    let Some(Command::Ps(ps)) = cli("ps c1 -o pid,comm").command else {
        panic!()
    };
    assert_eq!(ps.ps_args, ["-o", "pid,comm"]);
}

#[test]
fn conmon_and_podman_argv_parse() {
    let c = cli(&format!(
        "{CONMON} create --bundle /var/lib/c/userdata --pid-file /var/lib/c/pidfile --preserve-fds 1 c1"
    ));
    assert_eq!(c.log_format, Format::Json);
    assert_eq!(c.log, Some(PathBuf::from("/var/lib/c/userdata/oci-log")));
    assert_eq!(c.root, None);
    let Some(Command::Create(create)) = c.command else {
        panic!()
    };
    assert_eq!(create.opts.preserve_fds, 1);
    assert_eq!(create.opts.bundle, PathBuf::from("/var/lib/c/userdata"));
    for line in [
        format!("{CONMON} create --bundle /b --pid-file /b/pidfile --console-socket /b/conmon-term.x c1"),
        format!("{CONMON} create --bundle /b --pid-file /b/pidfile --no-pivot c1"),
        format!("{CONMON} exec --pid-file /b/exec_pid --process /b/exec-process-x --detach --tty --console-socket /b/t c1"),
        format!("{CONMON} exec --pid-file /b/exec_pid --process /b/exec-process-x --detach --preserve-fds 1 c1"),
        "start c1".into(),
        "delete --force c1".into(),
        "kill c1 15".into(),
        "kill c1 9".into(),
        "pause c1".into(),
        "resume c1".into(),
    ] {
        cli(&line);
    }
    assert!(cli("--version").version);
}

#[test]
fn both_flag_forms_and_single_dash_long_flags() {
    for line in [
        "--root /r --log /l --log-format json create --bundle /b --pid-file /p --preserve-fds 2 c",
        "--root=/r --log=/l --log-format=json create --bundle=/b --pid-file=/p --preserve-fds=2 c",
        "-root /r -log /l -log-format json create -bundle /b -pid-file /p -preserve-fds 2 c",
        "-root=/r -log=/l -log-format=json create -bundle=/b -pid-file=/p -preserve-fds=2 c",
        "--root /r --log /l --log-format json create -b /b --pid-file /p --preserve-fds 2 c",
        "--root /r --log /l --log-format json create -b=/b --pid-file /p --preserve-fds 2 c",
    ] {
        let c = cli(line);
        assert_eq!(c.root, Some(PathBuf::from("/r")), "{line}");
        assert_eq!(c.log, Some(PathBuf::from("/l")), "{line}");
        assert_eq!(c.log_format, Format::Json, "{line}");
        let Some(Command::Create(create)) = c.command else {
            panic!("{line}")
        };
        assert_eq!(create.opts.bundle, PathBuf::from("/b"), "{line}");
        assert_eq!(create.opts.pid_file, Some(PathBuf::from("/p")), "{line}");
        assert_eq!(create.opts.preserve_fds, 2, "{line}");
        assert_eq!(create.id, "c", "{line}");
    }
    assert!(cli("-debug -systemd-cgroup state x").debug);
    assert!(cli("-version").version);
    assert!(cli("-v").version);
    let Some(Command::Delete(d)) = cli("delete -force x").command else {
        panic!()
    };
    assert!(d.force);
}

#[test]
fn single_dash_rewrite_leaves_other_words_alone() {
    let got = runc_style_args(argv("kill -a c1 -9 -- -root"));
    let want = argv("kill -a c1 -9 -- -root");
    assert_eq!(got, want);
    assert_eq!(runc_style_args(argv("-rootx list")), argv("-rootx list"));
}

#[test]
fn defaults_are_runcs() {
    let c = cli("create c");
    // Resolved later: /run/hull, or $XDG_RUNTIME_DIR/hull when not root.
    assert_eq!(c.root, None);
    assert_eq!(c.log, None);
    assert_eq!(c.log_format, Format::Text);
    let Some(Command::Create(create)) = c.command else {
        panic!()
    };
    assert_eq!(create.opts.bundle, PathBuf::from("."));
    assert_eq!(create.opts.preserve_fds, 0);
    assert!(!create.opts.no_pivot && !create.opts.no_new_keyring);
    let Some(Command::Kill(k)) = cli("kill c").command else {
        panic!()
    };
    assert_eq!(k.signal, "SIGTERM");
    let Some(Command::List(l)) = cli("list").command else {
        panic!()
    };
    assert_eq!((l.format.as_str(), l.quiet), ("table", false));
    let Some(Command::List(l)) = cli("ls -f json -q").command else {
        panic!()
    };
    assert_eq!((l.format.as_str(), l.quiet), ("json", true));
}

#[test]
fn global_flags_runc_accepts() {
    let c = cli("--criu /usr/sbin/criu --rootless auto --systemd-cgroup run -d --keep --no-subreaper -b /b c");
    assert_eq!(c.rootless.as_deref(), Some("auto"));
    assert!(c.systemd_cgroup);
    let Some(Command::Run(r)) = c.command else {
        panic!()
    };
    assert!(r.detach && r.keep && r.no_subreaper);
    let Some(Command::Spec(s)) = cli("spec --rootless -b /b").command else {
        panic!()
    };
    assert!(s.rootless && s.bundle == Some(PathBuf::from("/b")));
}

#[test]
fn usage_errors() {
    assert_eq!(fails("state"), ErrorKind::MissingRequiredArgument);
    assert_eq!(fails("state a b"), ErrorKind::UnknownArgument);
    assert_eq!(fails("kill"), ErrorKind::MissingRequiredArgument);
    assert_eq!(fails("frob"), ErrorKind::InvalidSubcommand);
    assert_eq!(fails("--log-format xml state x"), ErrorKind::InvalidValue);
    assert_eq!(
        fails("create --preserve-fds abc c"),
        ErrorKind::ValueValidation
    );
    assert_eq!(fails("spec extra"), ErrorKind::UnknownArgument);
    // Global flags come before the verb, as with runc.
    assert_eq!(fails("state --root /r x"), ErrorKind::UnknownArgument);
}

#[test]
fn version_names_hull_and_the_spec() {
    let v = version();
    assert!(v.starts_with("hull version 0.1.0\nspec: 1."), "{v}");
    assert!(v.ends_with('\n'));
}

#[test]
fn usage_errors_are_logged_on_one_line() {
    let e = parse(&argv("create")).unwrap_err();
    assert_eq!(
        one_line(&e.render().to_string()),
        "the following required arguments were not provided: <container-id>"
    );
}

#[test]
fn only_create_run_and_exec_reexecute_sealed() {
    for line in [
        "create --bundle /b c1",
        "run c1",
        "exec -t c1 sh",
        "--root /run/x --log /l --log-format json exec c1 true",
        "--root=/run/x -log /l create c1",
        "--debug run c1",
    ] {
        assert!(forks_container_processes(argv(line)), "{line}");
    }
    for line in [
        "state run",
        "--root exec state c1",
        "kill c1 KILL",
        "delete --force exec",
        "--log run list",
        "",
    ] {
        assert!(!forks_container_processes(argv(line)), "{line}");
    }
}
