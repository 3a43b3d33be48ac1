//! A D-Bus client for the handful of calls the systemd driver makes, over the system bus's unix
//! socket, blocking, on the calling thread.
//!
//! Why not a crate: zbus's blocking connection starts three threads (measured: `clone3` x3 on
//! connect) and hull forks its init from the calling process, where a thread holding a lock
//! at fork time can deadlock the child; it also added 1.2 MB to a static binary. The dbus crate
//! needs libdbus (a C library, not in a static musl-free build). The driver needs: the EXTERNAL
//! authentication, method calls with a small set of argument types, method returns and errors,
//! and one signal (`JobRemoved`): a few hundred lines of the wire format, below.
//!
//! Wire format (D-Bus specification, "Message Protocol"): little-endian only (the bus forwards
//! each message in its sender's byte order; systemd and dbus-daemon on every host hull runs on
//! are little-endian, and a big-endian message is refused with a clear error, not misread).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the system bus listens when `DBUS_SYSTEM_BUS_ADDRESS` does not say.
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// A message larger than this is refused: systemd's replies to these calls are tiny, and a
/// corrupt length must not make hull allocate gigabytes.
const MAX_MESSAGE: usize = 1 << 20;

/// What went wrong talking to the bus.
#[derive(Debug)]
pub enum BusError {
    /// The socket could not be reached (no bus on this host, or not this user's to use).
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    Io(std::io::Error),
    /// The peer broke the protocol (or spoke big-endian).
    Protocol(String),
    /// The callee answered with a D-Bus error: its name and message.
    Remote {
        name: String,
        message: String,
    },
    Timeout(&'static str),
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusError::Connect { path, source } => {
                write!(f, "cannot connect to the system bus at {path:?}: {source}")
            }
            BusError::Io(e) => write!(f, "system bus: {e}"),
            BusError::Protocol(p) => write!(f, "system bus protocol: {p}"),
            BusError::Remote { name, message } => write!(f, "{name}: {message}"),
            BusError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl From<std::io::Error> for BusError {
    fn from(e: std::io::Error) -> Self {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            BusError::Timeout("a reply from the system bus")
        } else {
            BusError::Io(e)
        }
    }
}

pub type BusResult<T> = std::result::Result<T, BusError>;

/// A value to marshal. Arrays carry their element signature so an empty one still has a type.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Bool(bool),
    U32(u32),
    U64(u64),
    Str(String),
    ObjectPath(String),
    Array(&'static str, Vec<Arg>),
    Struct(Vec<Arg>),
    Variant(Box<Arg>),
    Byte(u8),
    Signature(String),
}

impl Arg {
    pub fn str(s: impl Into<String>) -> Arg {
        Arg::Str(s.into())
    }

    /// A systemd unit property: the `(sv)` pair of StartTransientUnit and SetUnitProperties.
    pub fn property(name: &str, value: Arg) -> Arg {
        Arg::Struct(vec![Arg::str(name), Arg::Variant(Box::new(value))])
    }

    pub fn signature(&self) -> String {
        match self {
            Arg::Bool(_) => "b".into(),
            Arg::U32(_) => "u".into(),
            Arg::U64(_) => "t".into(),
            Arg::Str(_) => "s".into(),
            Arg::ObjectPath(_) => "o".into(),
            Arg::Byte(_) => "y".into(),
            Arg::Signature(_) => "g".into(),
            Arg::Array(elem, _) => format!("a{elem}"),
            Arg::Struct(fields) => {
                let inner: String = fields.iter().map(Arg::signature).collect();
                format!("({inner})")
            }
            Arg::Variant(_) => "v".into(),
        }
    }
}

/// Alignment of a type by the first character of its signature.
fn alignment(sig: &str) -> usize {
    match sig.as_bytes().first() {
        Some(b't' | b'x' | b'd' | b'(' | b'{') => 8,
        Some(b'y' | b'g' | b'v') => 1,
        Some(b'n' | b'q') => 2,
        _ => 4,
    }
}

/// Marshals into a buffer whose offset 0 is 8-aligned in the message (the header, or the body,
/// which starts on an 8-byte boundary).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn arg(&mut self, a: &Arg) {
        match a {
            Arg::Bool(b) => self.u32(u32::from(*b)),
            Arg::U32(v) => self.u32(*v),
            Arg::U64(v) => {
                self.pad(8);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Arg::Byte(b) => self.buf.push(*b),
            Arg::Signature(s) => self.signature(s),
            Arg::Str(s) | Arg::ObjectPath(s) => self.string(s),
            Arg::Array(elem, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // The padding to the first element is not part of the array's length.
                self.pad(alignment(elem));
                let start = self.buf.len();
                for i in items {
                    self.arg(i);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Arg::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.arg(f);
                }
            }
            Arg::Variant(inner) => {
                self.signature(&inner.signature());
                self.arg(inner);
            }
        }
    }
}

/// Reads values out of a received buffer (its offset 0 8-aligned, as for [`Writer`]).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn short() -> BusError {
        BusError::Protocol("message shorter than its contents".into())
    }

    fn align(&mut self, n: usize) -> BusResult<()> {
        let p = self.pos.div_ceil(n) * n;
        if p > self.buf.len() {
            return Err(Self::short());
        }
        self.pos = p;
        Ok(())
    }

    fn take(&mut self, n: usize) -> BusResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(Self::short)?;
        let s = self.buf.get(self.pos..end).ok_or_else(Self::short)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> BusResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> BusResult<u32> {
        self.align(4)?;
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> BusResult<String> {
        let len = self.u32()? as usize;
        let s = self.take(len)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| BusError::Protocol("string not UTF-8".into()))
    }

    fn signature(&mut self) -> BusResult<String> {
        let len = usize::from(self.u8()?);
        let s = self.take(len)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).map_err(|_| BusError::Protocol("signature not UTF-8".into()))
    }

    /// A header field's value: only the basic types header fields use.
    fn basic(&mut self, sig: &str) -> BusResult<Field> {
        Ok(match sig {
            "s" | "o" => Field::Str(self.string()?),
            "g" => Field::Str(self.signature()?),
            "u" => Field::U32(self.u32()?),
            "y" => Field::U32(u32::from(self.u8()?)),
            other => {
                return Err(BusError::Protocol(format!(
                    "unexpected header field type {other:?}"
                )))
            }
        })
    }
}

enum Field {
    Str(String),
    U32(u32),
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// A received message: what the driver looks at.
#[derive(Debug, Default)]
pub struct Message {
    kind: u8,
    reply_serial: Option<u32>,
    interface: Option<String>,
    member: Option<String>,
    error_name: Option<String>,
    signature: String,
    body: Vec<u8>,
}

impl Message {
    /// The body's leading values, for the simple signatures the driver reads (strings, object
    /// paths, u32s).
    pub fn body_strings(&self) -> BusResult<Vec<String>> {
        let mut r = Reader::new(&self.body);
        let mut out = Vec::new();
        for c in self.signature.chars() {
            match c {
                's' | 'o' => out.push(r.string()?),
                'u' => out.push(r.u32()?.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind == SIGNAL
            && self.interface.as_deref() == Some(interface)
            && self.member.as_deref() == Some(member)
    }
}

/// A connection to the system bus.
pub struct Bus {
    stream: UnixStream,
    serial: u32,
    /// Signals that arrived while waiting for a method's reply.
    pending: Vec<Message>,
}

/// The system bus socket: `DBUS_SYSTEM_BUS_ADDRESS`'s first `unix:path=` address, else the
/// well-known path.
pub fn system_bus_path() -> PathBuf {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| {
            a.split(';').find_map(|addr| {
                let rest = addr.strip_prefix("unix:")?;
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix("path="))
                    .map(PathBuf::from)
            })
        })
        .unwrap_or_else(|| PathBuf::from(SYSTEM_BUS_SOCKET))
}

impl Bus {
    /// Connects, authenticates as this process's uid (EXTERNAL: the bus checks it with
    /// SO_PEERCRED) and says Hello. Every later read waits at most `timeout`.
    pub fn system(timeout: Duration) -> BusResult<Bus> {
        Bus::connect(&system_bus_path(), timeout)
    }

    /// [`Bus::system`] for the bus listening on `path`.
    pub fn connect(path: &std::path::Path, timeout: Duration) -> BusResult<Bus> {
        let stream = UnixStream::connect(path).map_err(|source| BusError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut bus = Bus {
            stream,
            serial: 0,
            pending: Vec::new(),
        };
        bus.authenticate()?;
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )?;
        Ok(bus)
    }

    fn authenticate(&mut self) -> BusResult<()> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(BusError::Protocol(format!(
                "authentication refused: {line:?}"
            )));
        }
        self.stream.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    /// One line of the authentication exchange, read byte by byte so nothing after it is
    /// consumed.
    fn read_line(&mut self) -> BusResult<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(BusError::Protocol("authentication line too long".into()));
            }
            if self.stream.read(&mut b)? == 0 {
                return Err(BusError::Protocol(
                    "the bus closed the connection during authentication".into(),
                ));
            }
            line.push(b[0]);
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Calls `member` and waits for its reply; a D-Bus error reply is [`BusError::Remote`].
    /// Signals received meanwhile are kept for [`Bus::wait_signal`].
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Arg],
    ) -> BusResult<Message> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, destination, path, interface, member, args);
        self.stream.write_all(&msg)?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m.body_strings()?.into_iter().next().unwrap_or_default();
                    return Err(BusError::Remote {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    });
                }
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal `interface.member` whose body `matches`, until `deadline`. Only signals
    /// the bus routes here (an AddMatch rule) can arrive.
    pub fn wait_signal(
        &mut self,
        interface: &str,
        member: &str,
        deadline: Instant,
        what: &'static str,
        matches: impl Fn(&Message) -> bool,
    ) -> BusResult<Message> {
        if let Some(i) = self
            .pending
            .iter()
            .position(|m| m.is_signal(interface, member) && matches(m))
        {
            return Ok(self.pending.swap_remove(i));
        }
        self.pending.clear();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BusError::Timeout(what));
            }
            self.stream.set_read_timeout(Some(left))?;
            let m = self.read_message().map_err(|e| match e {
                BusError::Timeout(_) => BusError::Timeout(what),
                e => e,
            })?;
            if m.is_signal(interface, member) && matches(&m) {
                return Ok(m);
            }
        }
    }

    fn read_message(&mut self) -> BusResult<Message> {
        let mut fixed = [0u8; 16];
        self.stream.read_exact(&mut fixed)?;
        if fixed[0] != b'l' {
            return Err(BusError::Protocol(format!(
                "message in byte order {:?}: only little-endian is understood",
                fixed[0] as char
            )));
        }
        let word = |i: usize| {
            u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]) as usize
        };
        let (body_len, fields_len) = (word(4), word(12));
        let fields_end = 16 + fields_len;
        let body_start = fields_end.div_ceil(8) * 8;
        let total = body_start + body_len;
        if total > MAX_MESSAGE {
            return Err(BusError::Protocol(format!("message of {total} bytes")));
        }
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&fixed);
        self.stream.read_exact(&mut buf[16..])?;

        let mut m = Message {
            kind: fixed[1],
            ..Message::default()
        };
        let mut r = Reader::new(&buf[..fields_end]);
        r.pos = 16;
        while r.pos < fields_end {
            r.align(8)?;
            if r.pos >= fields_end {
                break;
            }
            let code = r.u8()?;
            let sig = r.signature()?;
            let value = r.basic(&sig)?;
            match (code, value) {
                (FIELD_INTERFACE, Field::Str(s)) => m.interface = Some(s),
                (FIELD_MEMBER, Field::Str(s)) => m.member = Some(s),
                (FIELD_ERROR_NAME, Field::Str(s)) => m.error_name = Some(s),
                (FIELD_REPLY_SERIAL, Field::U32(v)) => m.reply_serial = Some(v),
                (FIELD_SIGNATURE, Field::Str(s)) => m.signature = s,
                _ => {}
            }
        }
        m.body = buf.split_off(body_start);
        Ok(m)
    }
}

/// A METHOD_CALL message: the fixed header, the header fields, the body 8-aligned after them.
fn encode_call(
    serial: u32,
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    args: &[Arg],
) -> Vec<u8> {
    let mut body = Writer::default();
    for a in args {
        body.arg(a);
    }
    let signature: String = args.iter().map(Arg::signature).collect();

    let field =
        |code: u8, value: Arg| Arg::Struct(vec![Arg::Byte(code), Arg::Variant(value.into())]);
    let mut fields = vec![
        field(FIELD_PATH, Arg::ObjectPath(path.into())),
        field(FIELD_INTERFACE, Arg::str(interface)),
        field(FIELD_MEMBER, Arg::str(member)),
        field(FIELD_DESTINATION, Arg::str(destination)),
    ];
    let mut w = Writer::default();
    w.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    w.u32(body.buf.len() as u32);
    w.u32(serial);
    if !signature.is_empty() {
        fields.push(field(FIELD_SIGNATURE, Arg::Signature(signature)));
    }
    w.arg(&Arg::Array("(yv)", fields));
    w.pad(8);
    w.buf.extend_from_slice(&body.buf);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_of_systemd_arguments() {
        let props = Arg::Array("(sv)", vec![Arg::property("Delegate", Arg::Bool(true))]);
        assert_eq!(props.signature(), "a(sv)");
        assert_eq!(Arg::Array("(sa(sv))", vec![]).signature(), "a(sa(sv))");
    }

    #[test]
    fn arrays_are_aligned_and_sized_without_leading_padding() {
        let mut w = Writer::default();
        w.arg(&Arg::Array("t", vec![Arg::U64(7)]));
        // length 8 (not 12: the 4 bytes of padding to the u64 are not counted), pad, value.
        assert_eq!(&w.buf[..4], &8u32.to_le_bytes());
        assert_eq!(w.buf.len(), 16);
        assert_eq!(&w.buf[8..], &7u64.to_le_bytes());
    }

    #[test]
    fn a_call_reads_back_as_its_parts() {
        let msg = encode_call(
            3,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            &[Arg::str("x.scope"), Arg::str("replace")],
        );
        assert_eq!(msg.len() % 8, (msg.len() - body_len(&msg)) % 8);
        let body = &msg[msg.len() - body_len(&msg)..];
        let mut r = Reader::new(body);
        assert_eq!(r.string().unwrap(), "x.scope");
        assert_eq!(r.string().unwrap(), "replace");
    }

    fn body_len(msg: &[u8]) -> usize {
        u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]) as usize
    }
}
