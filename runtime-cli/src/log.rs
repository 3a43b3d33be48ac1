//! Error reporting exactly as runc does it, because containerd's shim and conmon read runc's log
//! file and show users its last error line.
//!
//! runc (logrus) writes each entry to `--log` (default: stderr) in `--log-format`:
//! - json: `{"level":"error","msg":"...","time":"2026-11-22T10:00:00Z"}` (keys sorted, Go's JSON
//!   escaping);
//! - text: `time="2026-11-22T10:00:00Z" level=error msg="..."` (a value is quoted only when it
//!   holds a character outside `[A-Za-z0-9-._/@^+]`).
//!
//! The time is RFC 3339 to the second in local time (`Z` when the offset is zero). When `--log`
//! names a file, the error also goes to stderr as the bare message.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            // logrus' name for it.
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// Where and how entries are written: `--log`, `--log-format`, `--debug`.
#[derive(Debug, Clone)]
pub struct Logger {
    pub file: Option<PathBuf>,
    pub format: Format,
    pub debug: bool,
}

impl Logger {
    pub fn error(&self, msg: &str) {
        self.write(Level::Error, msg);
        if self.file.is_some() {
            eprintln!("{msg}");
        }
    }

    /// An error for the log file alone (the terminal was already told).
    pub fn log_only(&self, msg: &str) {
        if self.file.is_some() {
            self.write(Level::Error, msg);
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write(Level::Debug, msg);
        }
    }

    fn write(&self, level: Level, msg: &str) {
        let line = entry(self.format, level, msg, &timestamp());
        match &self.file {
            // Opened per entry (there are one or two per run): no descriptor is held while the
            // container's init is forked, and each entry is a single append.
            Some(path) => {
                if let Err(e) = append(path, &line) {
                    eprintln!("hull: write log {path:?}: {}", io_message(&e));
                    eprint!("{line}");
                }
            }
            None => eprint!("{line}"),
        }
    }
}

/// The library reports what does not fail an operation (a warning for a resource the kernel
/// dropped, a failed poststop hook, debug detail) through the `log` facade; this writes those
/// records as runc writes its own: warnings always, debug and info only with `--debug`.
struct Bridge(Logger);

impl ::log::Log for Bridge {
    fn enabled(&self, meta: &::log::Metadata<'_>) -> bool {
        meta.level() <= ::log::Level::Warn || self.0.debug
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            ::log::Level::Error => Level::Error,
            ::log::Level::Warn => Level::Warning,
            ::log::Level::Info => Level::Info,
            ::log::Level::Debug | ::log::Level::Trace => Level::Debug,
        };
        self.0.write(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Routes the library's `log` records to `logger` for the rest of the process.
pub fn install(logger: &Logger) {
    let max = if logger.debug {
        ::log::LevelFilter::Debug
    } else {
        ::log::LevelFilter::Warn
    };
    if ::log::set_boxed_logger(Box::new(Bridge(logger.clone()))).is_ok() {
        ::log::set_max_level(max);
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

/// One log line, newline included.
pub fn entry(format: Format, level: Level, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            // serde_json's map is sorted by key, which is also logrus' order.
            let v = serde_json::json!({ "level": level.as_str(), "msg": msg, "time": time });
            format!("{}\n", go_json_escapes(&v.to_string()))
        }
        Format::Text => format!(
            "time={} level={} msg={}\n",
            text_value(time),
            text_value(level.as_str()),
            text_value(msg)
        ),
    }
}

/// Go's encoding/json also escapes `<`, `>`, `&`, U+2028 and U+2029 (outside strings none of
/// these occur in a log entry).
fn go_json_escapes(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// logrus' text formatter: bare when every character is in `[A-Za-z0-9-._/@^+]` (or the value is
/// empty), else quoted as Go's `%q` does.
fn text_value(s: &str) -> String {
    let bare = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'));
    if bare {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Now, as Go's `time.RFC3339` in the local time zone.
fn timestamp() -> String {
    let mut now: libc::time_t = 0;
    // SAFETY: `time` writes the current time to the pointer we own.
    unsafe { libc::time(&mut now) };
    // SAFETY: all-zero is a valid `tm` (integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant form.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        // SAFETY: as above; gmtime_r cannot fail for the current time.
        unsafe { libc::gmtime_r(&now, &mut tm) };
        tm.tm_gmtoff = 0;
    }
    rfc3339(&tm)
}

fn rfc3339(tm: &libc::tm) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    );
    let off = tm.tm_gmtoff;
    if off == 0 {
        s.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        let _ = write!(s, "{sign}{:02}:{:02}", off / 3600, off % 3600 / 60);
    }
    s
}

/// An I/O error in the lower-case words of the rest of hull's messages (no "(os error N)").
pub fn io_message(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Why a command failed.
#[derive(Debug)]
pub struct Failure {
    /// The verb runc names in front of the message ("runc create failed: ..."), for create and run.
    verb: Option<&'static str>,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    Hull(hull::Error),
    Message(String),
}

impl From<hull::Error> for Failure {
    fn from(e: hull::Error) -> Self {
        Failure {
            verb: None,
            cause: Cause::Hull(e),
        }
    }
}

impl Failure {
    pub fn msg(m: impl Into<String>) -> Self {
        Failure {
            verb: None,
            cause: Cause::Message(m.into()),
        }
    }

    pub fn during(mut self, verb: &'static str) -> Self {
        self.verb = Some(verb);
        self
    }

    /// The message written to the log.
    pub fn message(&self) -> String {
        let cause = match &self.cause {
            Cause::Hull(e) => hull_message(e),
            Cause::Message(m) => m.clone(),
        };
        match self.verb {
            Some(verb) => format!("hull {verb} failed: {cause}"),
            None => cause,
        }
    }
}

/// The library's message, except where engines match runc's exact words: containerd's shim
/// treats "does not exist" as not-found, and both engines show these lines to users.
fn hull_message(e: &hull::Error) -> String {
    match e {
        hull::Error::ContainerNotFound { .. } => "container does not exist".into(),
        hull::Error::InvalidSignal { signal } => format!("unknown signal {signal:?}"),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-22T19:13:46Z";

    /// (format, level, message, the line runc writes for it).
    const RUNCS: &[(Format, Level, &str, &str)] = &[
        (
            Format::Json,
            Level::Error,
            "container does not exist",
            "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2026-11-22T19:13:46Z\"}\n",
        ),
        (
            Format::Json,
            Level::Error,
            "a \"b\"\n<c> & d",
            "{\"level\":\"error\",\"msg\":\"a \\\"b\\\"\\n\\u003cc\\u003e \\u0026 d\",\"time\":\"2026-11-22T19:13:46Z\"}\n",
        ),
        (
            Format::Text,
            Level::Error,
            "container does not exist",
            "time=\"2026-11-22T19:13:46Z\" level=error msg=\"container does not exist\"\n",
        ),
        // What runc logs for an unknown verb.
        (
            Format::Text,
            Level::Error,
            "No help topic for 'frob'\n",
            "time=\"2026-11-22T19:13:46Z\" level=error msg=\"No help topic for 'frob'\\n\"\n",
        ),
        (
            Format::Text,
            Level::Debug,
            "plain-word_1.2/x@y^z+",
            "time=\"2026-11-22T19:13:46Z\" level=debug msg=plain-word_1.2/x@y^z+\n",
        ),
        (
            Format::Text,
            Level::Error,
            "tab\there \\ \u{1}",
            "time=\"2026-11-22T19:13:46Z\" level=error msg=\"tab\\there \\\\ \\x01\"\n",
        ),
    ];

    #[test]
    fn entries_are_runcs() {
        for &(format, level, msg, want) in RUNCS {
            assert_eq!(entry(format, level, msg, T), want, "{msg:?}");
        }
    }

    #[test]
    fn json_entry_parses_as_containerd_reads_it() {
        let line = entry(Format::Json, Level::Error, "x <y>", &timestamp());
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "x <y>");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["level", "msg", "time"]);
    }

    #[test]
    fn time_is_rfc3339_seconds() {
        // SAFETY: all-zero is a valid `tm`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        (tm.tm_year, tm.tm_mon, tm.tm_mday) = (126, 10, 22);
        (tm.tm_hour, tm.tm_min, tm.tm_sec) = (19, 3, 4);
        assert_eq!(rfc3339(&tm), "2026-11-22T19:03:04Z");
        tm.tm_gmtoff = 5 * 3600 + 30 * 60;
        assert_eq!(rfc3339(&tm), "2026-11-22T19:03:04+05:30");
        tm.tm_gmtoff = -5 * 3600;
        assert_eq!(rfc3339(&tm), "2026-11-22T19:03:04-05:00");

        let now = timestamp();
        assert_eq!(now.len(), if now.ends_with('Z') { 20 } else { 25 }, "{now}");
        assert_eq!(&now[10..11], "T");
    }

    #[test]
    fn engine_visible_messages_use_runcs_words() {
        let not_found = Failure::from(hull::Error::ContainerNotFound { id: "x".into() });
        assert_eq!(not_found.message(), "container does not exist");
        let sig = Failure::from(hull::Error::InvalidSignal {
            signal: "FOO".into(),
        });
        assert_eq!(sig.message(), "unknown signal \"FOO\"");
        let exists =
            Failure::from(hull::Error::ContainerExists { id: "c1".into() }).during("create");
        assert_eq!(
            exists.message(),
            "hull create failed: container with id \"c1\" already exists"
        );
    }

    #[test]
    fn log_file_gets_the_entry_and_is_appended() {
        let dir = std::env::temp_dir().join(format!("hull-cli-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.json");
        let logger = Logger {
            file: Some(path.clone()),
            format: Format::Json,
            debug: false,
        };
        logger.debug("not written without --debug");
        logger.error("first");
        logger.error("second");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let msgs: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["msg"].to_string())
            .collect();
        assert_eq!(msgs, ["\"first\"", "\"second\""]);
    }
}
