//! A cache of compiled seccomp programs under the state root (`<root>/seccomp@cache/`, a
//! name no container id can take).
//!
//! Engines pass the same large profile with every container; compiling it with libseccomp
//! costs more than the rest of a start. An entry is keyed by a SHA-256 over everything the
//! program depends on: the profile after defaults (its typed, re-serialised form), the
//! libseccomp version and API level, the native architecture, and tong's own version.
//!
//! Entry file: `MAGIC | key (32) | sha256(program) (32) | len u32 LE | program`. An entry
//! is used only if the file is a regular file owned by us with no group/other access, its
//! key matches, its length matches the file, and the checksum matches; anything else is a
//! miss, and the entry is rebuilt. Writes go to a unique temporary file and are renamed
//! into place, so concurrent starts filling the same entry are safe. The directory holds at
//! most [`MAX_ENTRIES`] entries; the least recently written ones go first.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::logging;

const DIR: &str = "seccomp@cache";
const MAGIC: &[u8; 8] = b"TONGBPF1";
const HEADER: usize = 8 + 32 + 32 + 4;
/// The kernel takes at most 4096 instructions of 8 bytes in one filter.
const MAX_PROGRAM: usize = 4096 * 8;
pub const MAX_ENTRIES: usize = 64;

pub type Key = [u8; 32];

/// The key for a profile: None if the key material cannot be gathered (then no cache).
pub fn key(s: &LinuxSeccomp) -> Option<Key> {
    let profile = serde_json::to_vec(s).ok()?;
    let v = libseccomp::ScmpVersion::current().ok()?;
    let api = libseccomp::get_api();
    let arch = libseccomp::ScmpArch::native();
    let mut h = Sha256::new();
    h.update(b"tong seccomp cache 2\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(
        format!(
            "\0libseccomp {}.{}.{} api {api} arch {arch:?}\0",
            v.major, v.minor, v.micro
        )
        .as_bytes(),
    );
    h.update(&profile);
    Some(h.finalize().into())
}

/// The path of an entry (for tests and for the bench's cold-cache case).
pub fn entry_path(root: &Path, key: &Key) -> PathBuf {
    root.join(DIR).join(hex(key))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The cache directory, created if missing; None (no caching) if it is not ours alone.
fn dir(root: &Path) -> Option<PathBuf> {
    let d = root.join(DIR);
    if let Err(e) = std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&d)
    {
        logging::debug(&format!(
            "seccomp cache: cannot create {}: {e}",
            d.display()
        ));
        return None;
    }
    let m = std::fs::symlink_metadata(&d).ok()?;
    if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() || m.mode() & 0o077 != 0 {
        logging::warn(&format!(
            "seccomp cache: {} is not a directory private to this user; not using it",
            d.display()
        ));
        return None;
    }
    Some(d)
}

/// The program cached for `key`, if a valid entry exists.
pub fn lookup(root: &Path, key: &Key) -> Option<Vec<u8>> {
    let path = entry_path(root, key);
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return None,
    };
    match read_entry(&mut f, key) {
        Ok(p) => Some(p),
        Err(why) => {
            logging::debug(&format!(
                "seccomp cache: rejecting {}: {why}",
                path.display()
            ));
            None
        }
    }
}

fn read_entry(f: &mut File, key: &Key) -> std::result::Result<Vec<u8>, String> {
    let m = f.metadata().map_err(|e| e.to_string())?;
    if !m.is_file() || m.uid() != nix::unistd::geteuid().as_raw() || m.mode() & 0o077 != 0 {
        return Err("not a private regular file".into());
    }
    let size = m.len() as usize;
    if !(HEADER + 8..=HEADER + MAX_PROGRAM).contains(&size) {
        return Err(format!("size {size} out of range"));
    }
    let mut buf = Vec::with_capacity(size);
    f.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    parse(&buf, key)
}

/// Checks an entry's bytes and returns its program.
pub fn parse(buf: &[u8], key: &Key) -> std::result::Result<Vec<u8>, String> {
    if buf.len() < HEADER || &buf[..8] != MAGIC {
        return Err("bad magic".into());
    }
    if &buf[8..40] != key {
        return Err("key mismatch".into());
    }
    let len = u32::from_le_bytes([buf[72], buf[73], buf[74], buf[75]]) as usize;
    let prog = &buf[HEADER..];
    if prog.len() != len || len == 0 || !len.is_multiple_of(8) || len > MAX_PROGRAM {
        return Err(format!(
            "length {} does not match the header's {len}",
            prog.len()
        ));
    }
    let sum: [u8; 32] = Sha256::digest(prog).into();
    if buf[40..72] != sum {
        return Err("checksum mismatch".into());
    }
    Ok(prog.to_vec())
}

fn encode(key: &Key, prog: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + prog.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&Sha256::digest(prog));
    out.extend_from_slice(&(prog.len() as u32).to_le_bytes());
    out.extend_from_slice(prog);
    out
}

/// Stores a program. Failures only cost the next start a compile, so they are logged, not
/// returned.
pub fn store(root: &Path, key: &Key, prog: &[u8]) {
    if prog.is_empty() || prog.len() > MAX_PROGRAM {
        return;
    }
    let Some(d) = dir(root) else { return };
    trim(&d);
    let name = hex(key);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let tmp = d.join(format!(".{name}.{}.{nanos}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(&encode(key, prog))?;
        std::fs::rename(&tmp, d.join(&name))
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        logging::debug(&format!("seccomp cache: cannot store {name}: {e}"));
    }
}

/// Keeps the directory under MAX_ENTRIES - 1 entries before a store, oldest first out;
/// temporary files older than a minute (from a writer that was killed) go too.
fn trim(d: &Path) {
    let Ok(rd) = std::fs::read_dir(d) else { return };
    let now = std::time::SystemTime::now();
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        let t = m.modified().unwrap_or(std::time::UNIX_EPOCH);
        if e.file_name().to_string_lossy().starts_with('.') {
            if now.duration_since(t).is_ok_and(|age| age.as_secs() > 60) {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        entries.push((t, e.path()));
    }
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.sort();
    for (_, p) in entries.iter().take(entries.len() + 1 - MAX_ENTRIES) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let key = [7u8; 32];
        let prog: Vec<u8> = (0..64u8).collect();
        let e = encode(&key, &prog);
        assert_eq!(parse(&e, &key).unwrap(), prog);
        assert!(parse(&e, &[8u8; 32]).unwrap_err().contains("key"));
        assert!(
            parse(&e[..e.len() - 8], &key)
                .unwrap_err()
                .contains("length")
        );
        let mut bad = e.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(parse(&bad, &key).unwrap_err().contains("checksum"));
        let mut bad = e.clone();
        bad[0] = b'X';
        assert!(parse(&bad, &key).unwrap_err().contains("magic"));
    }

    #[test]
    fn keys_differ_by_one_rule() {
        let a: LinuxSeccomp = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        let b: LinuxSeccomp = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["rmdir"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        assert_ne!(key(&a).unwrap(), key(&b).unwrap());
        assert_eq!(key(&a).unwrap(), key(&a.clone()).unwrap());
    }

    #[test]
    fn the_store_is_bounded() {
        let root =
            std::env::temp_dir().join(format!("tong-seccomp-cache-unit-{}", std::process::id()));
        for i in 0..(MAX_ENTRIES + 5) {
            let mut k = [0u8; 32];
            k[0] = i as u8;
            store(&root, &k, &[0u8; 16]);
        }
        let n = std::fs::read_dir(root.join(DIR)).unwrap().count();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(n <= MAX_ENTRIES, "{n} entries");
    }
}
