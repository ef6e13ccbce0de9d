//! The GVariant text form of `org.systemd.property.*` annotation values, as runc reads them
//! (godbus's ParseVariant with no signature): `true`, `42` (int32), `1.5` (double),
//! `uint64 42` and the other type keywords, `@t 42`, `'text'` or `"text"`, and arrays
//! `['a', 'b']` / `@as []`.

use super::wire::Value;

pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(None)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected {:?} at {}", &text[p.i..], p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const KEYWORDS: &[(&str, &str)] = &[
    ("boolean", "b"),
    ("byte", "y"),
    ("int16", "n"),
    ("uint16", "q"),
    ("int32", "i"),
    ("uint32", "u"),
    ("int64", "x"),
    ("uint64", "t"),
    ("double", "d"),
    ("string", "s"),
    ("objectpath", "o"),
    ("signature", "g"),
];

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn word(&mut self) -> &str {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_.+-".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    /// One value, of type `want` when the text named one.
    fn value(&mut self, want: Option<&str>) -> Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("empty value".into()),
            Some(b'@') => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && !self.s[self.i].is_ascii_whitespace() {
                    self.i += 1;
                }
                let sig = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.value(Some(&sig))
            }
            Some(b'\'') | Some(b'"') => {
                let s = self.string()?;
                match want {
                    None | Some("s") => Ok(Value::Str(s)),
                    Some("o") => Ok(Value::Path(s)),
                    Some("g") => Ok(Value::Sig(s)),
                    Some(t) => Err(format!("a string is not of type {t}")),
                }
            }
            Some(b'[') => self.array(want),
            Some(_) => {
                let w = self.word().to_string();
                if let Some((_, sig)) = KEYWORDS.iter().find(|(k, _)| *k == w) {
                    if want.is_some_and(|t| t != *sig) {
                        return Err(format!("{w} is not of type {}", want.unwrap_or("")));
                    }
                    return self.value(Some(sig));
                }
                scalar(&w, want)
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(c) if *c == q => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or("unterminated string")?;
                    out.push(match c {
                        b'n' => b'\n',
                        b't' => b'\t',
                        c => c,
                    });
                    self.i += 2;
                }
                Some(c) => {
                    out.push(*c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".to_string())
    }

    fn array(&mut self, want: Option<&str>) -> Result<Value, String> {
        let elem = match want {
            Some(t) => Some(
                t.strip_prefix('a')
                    .ok_or_else(|| format!("an array is not of type {t}"))?
                    .to_string(),
            ),
            None => None,
        };
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b']') {
                self.i += 1;
                break;
            }
            if !items.is_empty() {
                if self.s.get(self.i) != Some(&b',') {
                    return Err("expected ',' or ']' in array".into());
                }
                self.i += 1;
            }
            let t = elem.clone().or_else(|| items.first().map(Value::signature));
            items.push(self.value(t.as_deref())?);
        }
        let elem = match (elem, items.first()) {
            (Some(e), _) => e,
            (None, Some(v)) => v.signature(),
            (None, None) => return Err("an empty array needs a type (@as [])".into()),
        };
        Ok(Value::Array(elem, items))
    }
}

fn scalar(w: &str, want: Option<&str>) -> Result<Value, String> {
    let bad = || format!("cannot read {w:?} as {}", want.unwrap_or("a value"));
    let int = || w.parse::<i128>().map_err(|_| bad());
    Ok(match want {
        None if w == "true" || w == "false" => Value::Bool(w == "true"),
        Some("b") => match w {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        None if w.contains(['.', 'e']) && !w.starts_with("0x") => {
            Value::Double(w.parse().map_err(|_| bad())?)
        }
        Some("d") => Value::Double(w.parse().map_err(|_| bad())?),
        None | Some("i") => Value::I32(int()?.try_into().map_err(|_| bad())?),
        Some("y") => Value::Byte(int()?.try_into().map_err(|_| bad())?),
        Some("n") => Value::I16(int()?.try_into().map_err(|_| bad())?),
        Some("q") => Value::U16(int()?.try_into().map_err(|_| bad())?),
        Some("u") => Value::U32(int()?.try_into().map_err(|_| bad())?),
        Some("x") => Value::I64(int()?.try_into().map_err(|_| bad())?),
        Some("t") => Value::U64(int()?.try_into().map_err(|_| bad())?),
        Some(_) => return Err(bad()),
    })
}

/// runc's conversion of a `...Sec` property (documented in seconds) to its `...USec` D-Bus
/// name, the value in microseconds.
pub fn sec_to_usec(name: &str, v: Value) -> Result<(String, Value), String> {
    let Some(base) = name.strip_suffix("Sec") else {
        return Ok((name.into(), v));
    };
    if !base.ends_with(|c: char| c.is_ascii_lowercase()) {
        return Ok((name.into(), v));
    }
    const M: f64 = 1_000_000.0;
    let us = match v {
        Value::Byte(n) => u64::from(n) * 1_000_000,
        Value::I16(n) => (n as u64).wrapping_mul(1_000_000),
        Value::U16(n) => u64::from(n) * 1_000_000,
        Value::I32(n) => (n as u64).wrapping_mul(1_000_000),
        Value::U32(n) => u64::from(n) * 1_000_000,
        Value::I64(n) => (n as u64).wrapping_mul(1_000_000),
        Value::U64(n) => n.wrapping_mul(1_000_000),
        Value::Double(d) => (d * M) as u64,
        _ => return Err("not a number".into()),
    };
    Ok((format!("{base}USec"), Value::U64(us)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_runc_users_write() {
        assert_eq!(parse("true"), Ok(Value::Bool(true)));
        assert_eq!(parse("42"), Ok(Value::I32(42)));
        assert_eq!(parse("uint64 123456789"), Ok(Value::U64(123456789)));
        assert_eq!(parse("@t 5"), Ok(Value::U64(5)));
        assert_eq!(
            parse("'inactive-or-failed'"),
            Ok(Value::Str("inactive-or-failed".into()))
        );
        assert_eq!(parse("\"a b\""), Ok(Value::Str("a b".into())));
        assert_eq!(parse("1.5"), Ok(Value::Double(1.5)));
        assert_eq!(
            parse("['a.service', 'b.service']"),
            Ok(Value::Array(
                "s".into(),
                vec![
                    Value::Str("a.service".into()),
                    Value::Str("b.service".into())
                ]
            ))
        );
        assert_eq!(parse("@as []"), Ok(Value::Array("s".into(), vec![])));
    }

    #[test]
    fn bad_text_is_refused() {
        for t in [
            "",
            "'open",
            "[1, 'a']",
            "uint64 -1",
            "byte 300",
            "[]",
            "@t 'x'",
            "1 2",
            "nope",
        ] {
            assert!(parse(t).is_err(), "{t:?} parsed");
        }
    }

    #[test]
    fn seconds_become_microseconds() {
        assert_eq!(
            sec_to_usec("TimeoutStopSec", Value::I32(2)),
            Ok(("TimeoutStopUSec".into(), Value::U64(2_000_000)))
        );
        // Not a lowercase letter before "Sec": left as written.
        assert_eq!(
            sec_to_usec("TimeoutStopUSec", Value::U64(7)),
            Ok(("TimeoutStopUSec".into(), Value::U64(7)))
        );
        assert!(sec_to_usec("RuntimeMaxSec", Value::Str("x".into())).is_err());
    }
}
