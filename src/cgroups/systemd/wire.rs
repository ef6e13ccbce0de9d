//! The D-Bus wire format (the specification's "Marshaling" section): the values systemd's
//! manager takes and returns, encoded and decoded by signature. Only what the driver needs:
//! basic types, arrays, structs, variants; no dicts and no unix fds.

use std::fmt;

/// A D-Bus value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// Element signature and elements (the signature is needed for an empty array).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(v) => format!("({})", v.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }
}

/// A struct of (name, variant): one unit property.
pub fn property(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "malformed D-Bus message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn align_of(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d ( {
    }
}

/// Encodes values; offsets are from the start of the message (the body starts 8-aligned).
pub struct Encoder {
    pub buf: Vec<u8>,
    base: usize,
}

impl Encoder {
    pub fn new(base: usize) -> Encoder {
        Encoder {
            buf: Vec::new(),
            base,
        }
    }

    fn pad(&mut self, a: usize) {
        while !(self.base + self.buf.len()).is_multiple_of(a) {
            self.buf.push(0);
        }
    }

    pub fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::Double(d) => {
                self.pad(8);
                self.buf.extend_from_slice(&d.to_le_bytes())
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => self.sig(s),
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                self.pad(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for i in items {
                    self.value(i);
                }
                let n = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&n.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature());
                self.value(inner);
            }
        }
    }
}

/// The first complete type in a signature, and the rest.
pub fn split_type(sig: &str) -> Result<(&str, &str), DecodeError> {
    let b = sig.as_bytes();
    let bad = || DecodeError(format!("bad signature {sig:?}"));
    let mut i = 0;
    while i < b.len() && b[i] == b'a' {
        i += 1;
    }
    let first = *b.get(i).ok_or_else(bad)?;
    let end = match first {
        b'(' | b'{' => {
            let (open, close) = if first == b'(' {
                (b'(', b')')
            } else {
                (b'{', b'}')
            };
            let mut depth = 0;
            let mut j = i;
            loop {
                match b.get(j) {
                    Some(c) if *c == open => depth += 1,
                    Some(c) if *c == close => {
                        depth -= 1;
                        if depth == 0 {
                            break j + 1;
                        }
                    }
                    Some(_) => {}
                    None => return Err(bad()),
                }
                j += 1;
            }
        }
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'v' | b'h' => i + 1,
        _ => return Err(bad()),
    };
    Ok((&sig[..end], &sig[end..]))
}

/// Decodes values from a message (offsets from its start; little or big endian).
pub struct Decoder<'a> {
    buf: &'a [u8],
    pub pos: usize,
    big: bool,
    depth: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8], pos: usize, big: bool) -> Decoder<'a> {
        Decoder {
            buf,
            pos,
            big,
            depth: 0,
        }
    }

    fn err(&self, what: &str) -> DecodeError {
        DecodeError(format!("{what} at byte {}", self.pos))
    }

    pub fn align(&mut self, a: usize) -> Result<(), DecodeError> {
        let p = self.pos.next_multiple_of(a);
        if p > self.buf.len() {
            return Err(self.err("truncated"));
        }
        self.pos = p;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| self.err("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.align(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        if self.big {
            a.reverse();
        }
        Ok(a)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn text(&mut self, len: usize) -> Result<String, DecodeError> {
        let s = self.take(len)?;
        let s = String::from_utf8(s.to_vec()).map_err(|_| self.err("string not UTF-8"))?;
        self.take(1)?; // the NUL
        Ok(s)
    }

    /// Decodes one value of complete type `sig`.
    pub fn value(&mut self, sig: &str) -> Result<Value, DecodeError> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(self.err("nested too deep"));
        }
        let r = self.value_inner(sig);
        self.depth -= 1;
        r
    }

    fn value_inner(&mut self, sig: &str) -> Result<Value, DecodeError> {
        let b = sig.as_bytes();
        Ok(match b.first().copied() {
            Some(b'y') => Value::Byte(self.take(1)?[0]),
            Some(b'b') => Value::Bool(self.u32()? != 0),
            Some(b'n') => Value::I16(i16::from_le_bytes(self.fixed()?)),
            Some(b'q') => Value::U16(u16::from_le_bytes(self.fixed()?)),
            Some(b'i') => Value::I32(i32::from_le_bytes(self.fixed()?)),
            Some(b'u') | Some(b'h') => Value::U32(self.u32()?),
            Some(b'x') => Value::I64(i64::from_le_bytes(self.fixed()?)),
            Some(b't') => Value::U64(u64::from_le_bytes(self.fixed()?)),
            Some(b'd') => Value::Double(f64::from_le_bytes(self.fixed()?)),
            Some(b's') | Some(b'o') => {
                let n = self.u32()? as usize;
                let s = self.text(n)?;
                if b[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            Some(b'g') => {
                let n = self.take(1)?[0] as usize;
                Value::Sig(self.text(n)?)
            }
            Some(b'v') => {
                let n = self.take(1)?[0] as usize;
                let inner = self.text(n)?;
                let (t, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return Err(self.err("variant of more than one type"));
                }
                Value::Variant(Box::new(self.value(t)?))
            }
            Some(b'a') => {
                let n = self.u32()? as usize;
                let elem = &sig[1..];
                self.align(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')))?;
                let end = self
                    .pos
                    .checked_add(n)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(|| self.err("array past the end"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                Value::Array(elem.to_string(), items)
            }
            Some(b'(') | Some(b'{') => {
                self.align(8)?;
                let mut inner = &sig[1..sig.len() - 1];
                let mut fields = Vec::new();
                while !inner.is_empty() {
                    let (t, rest) = split_type(inner)?;
                    fields.push(self.value(t)?);
                    inner = rest;
                }
                Value::Struct(fields)
            }
            _ => return Err(self.err("unknown type")),
        })
    }

    /// Decodes a sequence of values (a message body) of signature `sig`.
    pub fn values(&mut self, mut sig: &str) -> Result<Vec<Value>, DecodeError> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (t, rest) = split_type(sig)?;
            out.push(self.value(t)?);
            sig = rest;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) {
        let mut e = Encoder::new(0);
        e.value(&v);
        let sig = v.signature();
        let mut d = Decoder::new(&e.buf, 0, false);
        assert_eq!(d.value(&sig).unwrap(), v, "{sig}");
        assert_eq!(d.pos, e.buf.len());
    }

    #[test]
    fn values_round_trip() {
        round_trip(Value::Str("tong-1.scope".into()));
        round_trip(Value::Array(
            "(sv)".into(),
            vec![
                property("Delegate", Value::Bool(true)),
                property("MemoryMax", Value::U64(1 << 30)),
                property("PIDs", Value::Array("u".into(), vec![Value::U32(42)])),
                property(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(3)]),
                ),
            ],
        ));
        round_trip(Value::Array("(sa(sv))".into(), vec![]));
        round_trip(Value::Struct(vec![
            Value::Byte(1),
            Value::U64(7),
            Value::Double(1.5),
        ]));
    }

    #[test]
    fn empty_array_is_padded_to_its_element() {
        // u32 length 0 at offset 0, then padding to 8 for the struct elements.
        let mut e = Encoder::new(0);
        e.value(&Value::Array("(sv)".into(), vec![]));
        assert_eq!(e.buf, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_spec_example_job_removed() {
        // JobRemoved's body, "uoss", as systemd sends it.
        let mut e = Encoder::new(0);
        for v in [
            Value::U32(7),
            Value::Path("/org/freedesktop/systemd1/job/7".into()),
            Value::Str("tong-a.scope".into()),
            Value::Str("done".into()),
        ] {
            e.value(&v);
        }
        let vals = Decoder::new(&e.buf, 0, false).values("uoss").unwrap();
        assert_eq!(vals[3].as_str(), Some("done"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for sig in ["a", "(s", "z", "a{sv", ""] {
            let _ = Decoder::new(&[255; 16], 0, false).values(sig);
        }
        assert!(
            Decoder::new(&[255, 255, 255, 127], 0, false)
                .value("s")
                .is_err()
        );
        assert!(Decoder::new(&[8, 0, 0, 0], 0, false).value("as").is_err());
        // Variant whose signature holds two types.
        assert!(
            Decoder::new(&[2, b'u', b'u', 0, 0, 0, 0, 0], 0, false)
                .value("v")
                .is_err()
        );
    }
}
