//! Checks of the `process` object (config.md "Process", "POSIX process", "Linux Process", "User")
//! and of runtime-linux.md "File descriptors".

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use caps::CapSet;
use oci_spec::runtime::{Process, Spec};

use crate::{Host, Report};

const START: &str =
    "(runtime.md: start MUST run the user-specified program as specified by process)";

/// The spec's own spelling of an enum value ("CAP_KILL", "RLIMIT_NOFILE", "SCHED_BATCH").
pub fn spec_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn process(spec: &Spec) -> Process {
    spec.process().clone().unwrap_or_default()
}

pub fn args(spec: &Spec, r: &mut Report) {
    let want = process(spec).args().clone().unwrap_or_default();
    let got: Vec<String> = std::env::args().collect();
    let clause = format!("process.args is the argv of the container process {START}");
    r.check(
        "config.md",
        &clause,
        got == want,
        format!("argv {got:?}, config {want:?}"),
    );
}

pub fn env(spec: &Spec, r: &mut Report) {
    let want = process(spec).env().clone().unwrap_or_default();
    let missing: Vec<&String> = want
        .iter()
        .filter(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            std::env::var_os(key).is_none_or(|got| got != value)
        })
        .collect();
    let clause = format!("process.env is the environ of the container process {START}");
    r.check(
        "config.md",
        &clause,
        missing.is_empty(),
        format!("missing or different: {missing:?}"),
    );
}

pub fn cwd(spec: &Spec, r: &mut Report) {
    let want = process(spec).cwd().clone();
    let got = std::env::current_dir();
    let ok = got.as_ref().is_ok_and(|got| *got == want);
    let clause = format!("process.cwd is the working directory set for the executable {START}");
    r.check(
        "config.md",
        &clause,
        ok,
        format!("cwd {got:?}, config {want:?}"),
    );
}

pub fn user(spec: &Spec, r: &mut Report) {
    let user = process(spec).user().clone();
    let uids =
        nix::unistd::getresuid().map(|u| [u.real, u.effective, u.saved].map(|id| id.as_raw()));
    let ok = uids.is_ok_and(|ids| ids.iter().all(|id| *id == user.uid()));
    let clause = format!("user.uid is the user ID in the container namespace {START}");
    r.check(
        "config.md",
        &clause,
        ok,
        format!("real/effective/saved uid {uids:?}, config {}", user.uid()),
    );

    let gids =
        nix::unistd::getresgid().map(|g| [g.real, g.effective, g.saved].map(|id| id.as_raw()));
    let ok = gids.is_ok_and(|ids| ids.iter().all(|id| *id == user.gid()));
    let clause = format!("user.gid is the group ID in the container namespace {START}");
    r.check(
        "config.md",
        &clause,
        ok,
        format!("real/effective/saved gid {gids:?}, config {}", user.gid()),
    );

    if let Some(additional) = user.additional_gids() {
        let want: BTreeSet<u32> = additional.iter().copied().collect();
        let got: Option<BTreeSet<u32>> = nix::unistd::getgroups()
            .ok()
            .map(|groups| groups.iter().map(|g| g.as_raw()).collect());
        let clause = format!("user.additionalGids are added to the process {START}");
        r.check(
            "config.md",
            &clause,
            got.as_ref() == Some(&want),
            format!("groups {got:?}, config {want:?}"),
        );
    }
    if let Some(umask) = user.umask() {
        let got = procfs::process::Process::myself()
            .and_then(|p| p.status())
            .map(|s| s.umask);
        let ok = got.as_ref().is_ok_and(|got| *got == Some(umask));
        let clause = format!("user.umask specifies the umask of the user {START}");
        r.check(
            "config.md",
            &clause,
            ok,
            format!("umask {got:?}, config {umask:o}"),
        );
    }
}

pub fn capabilities(spec: &Spec, r: &mut Report) {
    let Some(config) = process(spec).capabilities().clone() else {
        return;
    };
    let sets = [
        ("bounding", CapSet::Bounding, config.bounding()),
        ("effective", CapSet::Effective, config.effective()),
        ("inheritable", CapSet::Inheritable, config.inheritable()),
        ("permitted", CapSet::Permitted, config.permitted()),
        ("ambient", CapSet::Ambient, config.ambient()),
    ];
    for (name, set, want) in sets {
        let Some(want) = want else { continue };
        let want: BTreeSet<String> = want.iter().map(spec_name).collect();
        let got: Result<BTreeSet<String>, _> =
            caps::read(None, set).map(|caps| caps.iter().map(|c| c.to_string()).collect());
        let ok = got.as_ref().is_ok_and(|got| *got == want);
        let clause = format!(
            "capabilities.{name} is the array of {name} capabilities kept for the process {START}"
        );
        r.check(
            "config.md",
            &clause,
            ok,
            format!("{name} set {got:?}, config {want:?}"),
        );
    }
}

pub fn no_new_privileges(spec: &Spec, r: &mut Report) {
    if process(spec).no_new_privileges() != Some(true) {
        return;
    }
    let got = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.nonewprivs);
    let ok = got.as_ref().is_ok_and(|v| *v == Some(1));
    let clause = format!("noNewPrivileges true prevents the process from gaining additional privileges (no_new_privs) {START}");
    r.check("config.md", &clause, ok, format!("NoNewPrivs {got:?}"));
}

fn rlimit_resource(name: &str) -> Option<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource as R;
    Some(match name {
        "RLIMIT_AS" => R::RLIMIT_AS,
        "RLIMIT_CORE" => R::RLIMIT_CORE,
        "RLIMIT_CPU" => R::RLIMIT_CPU,
        "RLIMIT_DATA" => R::RLIMIT_DATA,
        "RLIMIT_FSIZE" => R::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => R::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => R::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => R::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => R::RLIMIT_NICE,
        "RLIMIT_NOFILE" => R::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => R::RLIMIT_NPROC,
        "RLIMIT_RSS" => R::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => R::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => R::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => R::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => R::RLIMIT_STACK,
        _ => return None,
    })
}

pub fn rlimits(spec: &Spec, r: &mut Report) {
    for limit in process(spec).rlimits().clone().unwrap_or_default() {
        let name = spec_name(&limit.typ());
        let got = rlimit_resource(&name).map(nix::sys::resource::getrlimit);
        let ok =
            matches!(got, Some(Ok((soft, hard))) if soft == limit.soft() && hard == limit.hard());
        let clause = format!(
            "rlimits: for {name} getrlimit MUST succeed, rlim_cur MUST match soft and rlim_max MUST match hard"
        );
        let detail = format!(
            "getrlimit {got:?}, config soft {} hard {}",
            limit.soft(),
            limit.hard()
        );
        r.check("config.md", &clause, ok, detail);
    }
}

pub fn oom_score_adj(spec: &Spec, host: &Host, r: &mut Report) {
    let got = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let (want, clause) = match process(spec).oom_score_adj() {
        Some(v) => (
            v,
            "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value",
        ),
        None => (
            host.oom_score_adj,
            "If oomScoreAdj is not set, the runtime MUST NOT change the value of oom_score_adj",
        ),
    };
    r.check(
        "config.md",
        clause,
        got == Some(want),
        format!("oom_score_adj {got:?}, expected {want}"),
    );
}

pub fn scheduler(spec: &Spec, r: &mut Report) {
    let Some(sched) = process(spec).scheduler().clone() else {
        return;
    };
    let policy = match spec_name(sched.policy()).as_str() {
        "SCHED_OTHER" => libc::SCHED_OTHER,
        "SCHED_FIFO" => libc::SCHED_FIFO,
        "SCHED_RR" => libc::SCHED_RR,
        "SCHED_BATCH" => libc::SCHED_BATCH,
        "SCHED_IDLE" => libc::SCHED_IDLE,
        "SCHED_DEADLINE" => 6,
        _ => -1,
    };
    // SAFETY: sched_getscheduler only reads the calling process's policy.
    let got_policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
    let mut param = libc::sched_param { sched_priority: -1 };
    // SAFETY: param is a valid, writable sched_param.
    unsafe { libc::sched_getparam(0, &mut param) };
    let nice = nix::errno::Errno::result(
        // SAFETY: getpriority only reads the calling process's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
    );
    let want_nice = sched.nice().unwrap_or(0);
    let want_priority = sched.priority().unwrap_or(0);
    let mut ok = got_policy == policy && param.sched_priority == want_priority;
    if matches!(
        policy,
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE
    ) {
        ok &= nice == Ok(want_nice);
    }
    let clause =
        format!("scheduler sets the scheduling policy, nice and priority of the process {START}");
    let detail = format!(
        "policy {got_policy} priority {} nice {nice:?}, config policy {policy} priority {want_priority} nice {want_nice}",
        param.sched_priority
    );
    r.check("config.md", &clause, ok, detail);
}

pub fn io_priority(spec: &Spec, r: &mut Report) {
    let Some(io) = *process(spec).io_priority() else {
        return;
    };
    let class = match spec_name(&io.class()).as_str() {
        "IOPRIO_CLASS_RT" => 1,
        "IOPRIO_CLASS_BE" => 2,
        "IOPRIO_CLASS_IDLE" => 3,
        _ => -1,
    };
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get only reads the calling process's I/O priority.
    let got = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    let (got_class, got_level) = (got >> 13, got & 0xff);
    let ok = got_class == class && got_level == io.priority();
    let clause =
        format!("ioPriority sets the I/O scheduling class and priority of the process {START}");
    let detail = format!(
        "class {got_class} level {got_level}, config class {class} level {}",
        io.priority()
    );
    r.check("config.md", &clause, ok, detail);
}

/// The pty on the standard streams and on /dev/console, and its size.
pub fn terminal(spec: &Spec, r: &mut Report) {
    let process = process(spec);
    let ttys: Vec<bool> = (0..3)
        .map(|fd| nix::unistd::isatty(unsafe_fd(fd)).unwrap_or(false))
        .collect();
    let clause = "terminal true: a pseudoterminal pair is allocated and the pty is duplicated on the standard streams";
    r.check(
        "config.md",
        clause,
        ttys.iter().all(|t| *t),
        format!("isatty(0,1,2) = {ttys:?}"),
    );

    let console = std::fs::metadata("/dev/console");
    let stdin = std::fs::metadata("/proc/self/fd/0");
    let ok = match (&console, &stdin) {
        (Ok(c), Ok(s)) => c.file_type().is_char_device() && c.rdev() == s.rdev(),
        _ => false,
    };
    let clause = "/dev/console is set up if terminal is enabled by bind mounting the pseudoterminal pty to /dev/console";
    let detail = format!(
        "/dev/console rdev {:?}, stdin rdev {:?}",
        console.map(|m| m.rdev()),
        stdin.map(|m| m.rdev())
    );
    r.check("config-linux.md", clause, ok, detail);

    if let Some(size) = process.console_size() {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into ws.
        let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
        let ok = rc == 0
            && u64::from(ws.ws_row) == size.height()
            && u64::from(ws.ws_col) == size.width();
        let clause = "consoleSize specifies the console size in characters of the terminal";
        let detail = format!(
            "rows {} cols {}, config height {} width {}",
            ws.ws_row,
            ws.ws_col,
            size.height(),
            size.width()
        );
        r.check("config.md", clause, ok, detail);
    }
}

fn unsafe_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: 0, 1 and 2 stay open for the whole life of the checker.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Descriptors open when the checker starts, apart from the one used to list them.
pub fn open_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let listed: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor is closed by now; whatever still answers was inherited.
    listed
        .into_iter()
        // SAFETY: F_GETFD only queries; a closed descriptor yields EBADF and nothing else.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0)
        .collect()
}

pub fn only_stdio(inherited: &[i32], r: &mut Report) {
    let extra: Vec<(i32, String)> = inherited
        .iter()
        .filter(|fd| **fd > 2)
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (*fd, target)
        })
        .collect();
    let clause = "By default, only the stdin, stdout and stderr file descriptors are kept open for the application by the runtime";
    r.check(
        "runtime-linux.md",
        clause,
        extra.is_empty(),
        format!("also open: {extra:?}"),
    );
}
