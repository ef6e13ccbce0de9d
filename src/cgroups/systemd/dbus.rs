//! A minimal, blocking D-Bus client over a unix socket, for systemd's manager: EXTERNAL
//! authentication, method calls and the signals that report a job's end. No thread, no
//! executor: tong calls it from the parent between its forks, and a thread there would break
//! the single-threaded fork rule (`linux::sys::fork_child` refuses to fork with one).
//!
//! Addresses: `$DBUS_SYSTEM_BUS_ADDRESS` (its `unix:path=` form) or the system bus's socket;
//! for root, systemd's private socket when the bus does not answer (as runc falls back).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::wire::{Decoder, Encoder, Value};

const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const SYSTEMD_PRIVATE: &str = "/run/systemd/private";
/// The largest message tong accepts (the specification's limit is 128 MiB; systemd's
/// replies to tong are a few hundred bytes).
const MAX_MESSAGE: usize = 16 << 20;
/// How long systemd may take to read our authentication.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("cannot connect to systemd over D-Bus ({0})")]
    Connect(String),
    #[error("D-Bus I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] super::wire::DecodeError),
    /// An error reply: its name and message.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("timed out after {0:?} waiting for systemd")]
    Timeout(Duration),
}

impl DbusError {
    /// An error reply of this name (`org.freedesktop.systemd1.NoSuchUnit`, ...).
    pub fn is(&self, name: &str) -> bool {
        matches!(self, DbusError::Remote { name: n, .. } if n == name)
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// A message received.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

pub struct Conn {
    sock: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply.
    queued: VecDeque<Message>,
    /// Connected to a bus (false: systemd's private socket, peer to peer).
    pub bus: bool,
    /// Bytes read past the authentication's last line (none, with the servers tong talks
    /// to: they send nothing until BEGIN).
    early: Vec<u8>,
}

/// Where the system bus listens.
fn system_bus_path() -> String {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) => a
            .split(';')
            .find_map(|a| {
                let rest = a.strip_prefix("unix:")?;
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix("path="))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| SYSTEM_BUS.into()),
        Err(_) => SYSTEM_BUS.into(),
    }
}

impl Conn {
    /// Connects to systemd: the system bus, or as root its private socket.
    pub fn system() -> Result<Conn, DbusError> {
        let bus = system_bus_path();
        let first = match Conn::open(&bus, true) {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        if nix::unistd::geteuid().is_root() {
            return Conn::open(SYSTEMD_PRIVATE, false).map_err(|second| {
                DbusError::Connect(format!("{bus}: {first}; {SYSTEMD_PRIVATE}: {second}"))
            });
        }
        Err(DbusError::Connect(format!("{bus}: {first}")))
    }

    fn open(path: &str, bus: bool) -> Result<Conn, DbusError> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Conn {
            sock,
            serial: 0,
            queued: VecDeque::new(),
            bus,
            early: Vec::new(),
        };
        c.auth()?;
        if !bus {
            c.await_begin_read()?;
        }
        if bus {
            c.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL with our uid, the only mechanism systemd's private socket accepts.
    fn auth(&mut self) -> Result<(), DbusError> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Connect(format!(
                "authentication refused: {line:?}"
            )));
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    /// Waits until systemd has read our BEGIN, before the first message goes out. systemd
    /// (sd-bus as the server of its private socket, 252 at least) leaves a message that came
    /// in the same read as BEGIN in its buffer until more bytes arrive: the call's reply would
    /// never come. Seen under load, when systemd was slow to read.
    fn await_begin_read(&mut self) -> Result<(), DbusError> {
        let deadline = Instant::now() + AUTH_TIMEOUT;
        while crate::linux::sys::unread_by_peer(self.sock.as_fd())? > 0 {
            if Instant::now() >= deadline {
                return Err(DbusError::Timeout(AUTH_TIMEOUT));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// One line of the authentication, read in one go rather than a byte at a time (a
    /// syscall per byte costs a millisecond each under emulation).
    fn read_line(&mut self) -> Result<String, DbusError> {
        let mut buf = [0u8; 512];
        loop {
            if let Some(end) = self.early.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.early[..end]).into_owned();
                self.early.drain(..end + 2);
                return Ok(line);
            }
            let n = self.sock.read(&mut buf)?;
            if n == 0 || self.early.len() > 4096 {
                return Err(DbusError::Connect(
                    "connection closed during authentication".into(),
                ));
            }
            self.early.extend_from_slice(&buf[..n]);
        }
    }

    /// `read_exact`, taking what authentication read ahead first.
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), DbusError> {
        let n = self.early.len().min(out.len());
        out[..n].copy_from_slice(&self.early[..n]);
        self.early.drain(..n);
        self.sock.read_exact(&mut out[n..])?;
        Ok(())
    }

    /// Calls a method and returns its reply's body; an error reply is [`DbusError::Remote`].
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>, DbusError> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.sock.write_all(&msg)?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    return Err(DbusError::Remote {
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
                SIGNAL => self.queued.push_back(m),
                _ => {}
            }
        }
    }

    /// Waits for a signal that `want` accepts, until `timeout`.
    pub fn wait_signal(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&Message) -> bool,
    ) -> Result<Message, DbusError> {
        if let Some(i) = self.queued.iter().position(&mut want) {
            return Ok(self.queued.remove(i).expect("index from position"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(timeout));
            }
            self.sock.set_read_timeout(Some(left))?;
            let m = match self.read_message() {
                Err(DbusError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DbusError::Timeout(timeout));
                }
                r => r?,
            };
            if m.kind == SIGNAL && want(&m) {
                return Ok(m);
            }
        }
    }

    fn read_message(&mut self) -> Result<Message, DbusError> {
        let mut head = [0u8; 16];
        self.read_exact(&mut head)?;
        let big = match head[0] {
            b'l' => false,
            b'B' => true,
            _ => {
                return Err(super::wire::DecodeError("bad endianness mark".into()).into());
            }
        };
        let mut d = Decoder::new(&head, 4, big);
        let body_len = d.u32()? as usize;
        let _serial = d.u32()?;
        let fields_len = d.u32()? as usize;
        let total = (16 + fields_len).next_multiple_of(8) + body_len;
        if total > MAX_MESSAGE {
            return Err(super::wire::DecodeError(format!("message of {total} bytes")).into());
        }
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&head);
        self.read_exact(&mut buf[16..])?;
        decode_message(&buf, big)
    }
}

/// A method call message: header fields PATH, INTERFACE, MEMBER, DESTINATION and SIGNATURE.
fn encode_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let sig: String = args.iter().map(Value::signature).collect();
    let mut fields = vec![
        field(1, Value::Path(path.into())),
        field(2, Value::Str(iface.into())),
        field(3, Value::Str(member.into())),
        field(6, Value::Str(dest.into())),
    ];
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut body = Encoder::new(0);
    for a in args {
        body.value(a);
    }
    let mut m = Encoder::new(0);
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.value(&Value::Array("(yv)".into(), fields));
    while !m.buf.len().is_multiple_of(8) {
        m.buf.push(0);
    }
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

fn field(code: u8, v: Value) -> Value {
    Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
}

pub fn decode_message(buf: &[u8], big: bool) -> Result<Message, DbusError> {
    let mut d = Decoder::new(buf, 12, big);
    let fields = d.value("a(yv)")?;
    let mut m = Message {
        kind: buf[1],
        reply_serial: None,
        path: None,
        member: None,
        error_name: None,
        body: Vec::new(),
    };
    let mut sig = String::new();
    if let Value::Array(_, fs) = fields {
        for f in fs {
            let Value::Struct(kv) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (kv.first(), kv.get(1)) else {
                continue;
            };
            match (code, v.as_ref()) {
                (1, Value::Path(p)) => m.path = Some(p.clone()),
                (3, Value::Str(s)) => m.member = Some(s.clone()),
                (4, Value::Str(s)) => m.error_name = Some(s.clone()),
                (5, Value::U32(n)) => m.reply_serial = Some(*n),
                (8, Value::Sig(s)) => sig = s.clone(),
                _ => {}
            }
        }
    }
    d.align(8)?;
    m.body = d.values(&sig)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_decodes_as_sent() {
        let msg = encode_call(
            3,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            &[
                Value::Str("tong-x.scope".into()),
                Value::Str("replace".into()),
            ],
        );
        assert_eq!(&msg[..4], &[b'l', 1, 0, 1]);
        let m = decode_message(&msg, false).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.member.as_deref(), Some("StopUnit"));
        assert_eq!(m.path.as_deref(), Some("/org/freedesktop/systemd1"));
        assert_eq!(m.body[0].as_str(), Some("tong-x.scope"));
        assert_eq!(m.body.len(), 2);
    }

    #[test]
    fn bus_address_from_the_environment_form() {
        // The parse alone (the variable itself is the process's).
        let a = "unix:path=/tmp/bus,guid=1;tcp:host=x";
        let p = a.split(';').find_map(|a| {
            a.strip_prefix("unix:")?
                .split(',')
                .find_map(|kv| kv.strip_prefix("path="))
        });
        assert_eq!(p, Some("/tmp/bus"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for n in 0..64 {
            let buf: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            if buf.len() >= 16 {
                let _ = decode_message(&buf, false);
                let _ = decode_message(&buf, true);
            }
        }
    }
}
