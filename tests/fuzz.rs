//! Hostile input: a bounded mutation fuzzer over config.json parsing and validation and over
//! the state file reader. Nothing may panic; every input is accepted or refused with an error.

use std::path::Path;

use tong::container::state::parse_state;
use tong::spec;

/// xorshift64*: deterministic, so a failure reproduces from its iteration number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"null",
    b"true",
    b"-1",
    b"0",
    b"18446744073709551616",
    b"\"\"",
    b"[]",
    b"{}",
    b"\"../../..\"",
    b"1e999",
    b"\"\\u0000\"",
    b"\"CAP_FOO\"",
    b"\"RLIMIT_BOGUS\"",
    b"\"time\"",
    b"-9223372036854775809",
    b"\"/\"",
    b"\"a\"",
];

/// One mutation: flip a byte, delete a span, duplicate a span, or splice in a JSON token.
fn mutate(r: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + r.below(4) {
        let len = v.len().max(1);
        match r.below(4) {
            0 => {
                let i = r.below(len);
                if i < v.len() {
                    v[i] = r.next() as u8;
                }
            }
            1 => {
                let i = r.below(len);
                let n = r.below(16).min(v.len().saturating_sub(i));
                v.drain(i..i + n);
            }
            2 => {
                let i = r.below(len);
                let n = r.below(32).min(v.len().saturating_sub(i));
                let span: Vec<u8> = v[i..i + n].to_vec();
                let at = r.below(len);
                v.splice(at.min(v.len())..at.min(v.len()), span);
            }
            _ => {
                let i = r.below(len).min(v.len());
                // Replace a JSON value-ish run (up to the next , or }) with a token.
                let end = v[i..]
                    .iter()
                    .position(|b| *b == b',' || *b == b'}')
                    .map_or(v.len(), |p| i + p);
                let t = TOKENS[r.below(TOKENS.len())];
                v.splice(i..end, t.iter().copied());
            }
        }
    }
    v
}

fn iterations() -> usize {
    std::env::var("TONG_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000)
}

#[test]
fn config_parsing_and_typing_never_panic() {
    let seed = spec::DEFAULT_SPEC.as_bytes();
    let mut r = Rng(0x5eed_1234_abcd_0001);
    let (mut accepted, mut refused) = (0, 0);
    let bundle = std::env::temp_dir().join(format!("tong-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    for i in 0..iterations() {
        let input = mutate(&mut r, seed);
        let outcome = std::panic::catch_unwind(|| {
            let json = spec::parse(&input)?;
            let typed = spec::typed(&json)?;
            // Validation reads the disk only to stat the rootfs and namespace paths.
            let cfg = spec::Config {
                spec: typed,
                json,
                bundle: bundle.clone(),
                rootfs: bundle.join("rootfs"),
            };
            spec::validate(&cfg)
        });
        match outcome {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty(), "iteration {i}: empty error");
                refused += 1
            }
            Err(_) => panic!(
                "iteration {i} panicked on input {:?}",
                String::from_utf8_lossy(&input)
            ),
        }
    }
    std::fs::remove_dir_all(&bundle).unwrap();
    // Both outcomes must really occur, or the fuzzer is not exercising anything.
    assert!(
        accepted > 100 && refused > 100,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn state_reader_never_panics() {
    // Both formats: version 2 as this tong writes it, and version 1 as every tong before
    // it did (the config inline, bare cgroup paths).
    let v2 = r#"{"version":2,"id":"x","oci_version":"1.0.2","phase":"created","creator_pid":1,"pid":1,"pid_start_time":1,"bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":"root","annotations":{"a":"b"},"cgroup":{"driver":"cgroupfs","dirs":[{"path":"/sys/fs/cgroup/memory/x","mount":"/sys/fs/cgroup/memory","controllers":["memory"]},{"path":"/sys/fs/cgroup/unified/x","mount":"/sys/fs/cgroup/unified"}]},"own_pid_ns":true}"#.to_string();
    let v1 = format!(
        r#"{{"id":"x","oci_version":"1.0.2","phase":"created","creator_pid":1,"pid":1,"pid_start_time":1,"bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":"root","cgroup_paths":["/sys/fs/cgroup/memory/x"],"own_pid_ns":true,"config":{}}}"#,
        spec::DEFAULT_SPEC
    );
    for seed in [&v1, &v2] {
        let st = parse_state(seed.as_bytes(), Path::new("/run/tong/x/state.json")).unwrap();
        assert_eq!(st.id, "x");
        assert!(!st.cgroup.dirs.is_empty(), "{seed}");
    }
    let mut r = Rng(0x5eed_9876_0000_0002);
    let mut refused = 0;
    for i in 0..iterations() {
        let seed = if i % 2 == 0 { &v1 } else { &v2 };
        let input = mutate(&mut r, seed.as_bytes());
        let outcome = std::panic::catch_unwind(|| {
            parse_state(&input, Path::new("/run/tong/x/state.json"))
                .map(|s| s.oci_state(tong::container::Status::Stopped))
        });
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!(
                "iteration {i} panicked on input {:?}",
                String::from_utf8_lossy(&input)
            ),
        }
    }
    assert!(refused > 100);
}
