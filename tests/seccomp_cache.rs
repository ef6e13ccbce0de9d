//! The compiled-seccomp cache under the state root: what it stores is exactly libseccomp's
//! program, a damaged entry is never loaded, different profiles never share an entry, and
//! concurrent starts fill it safely. (tong only: runc has no such cache.)

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Value, json};
use tong::linux::seccomp::{self, cache};

fn deny(names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

fn podman_profile() -> Value {
    let p = repo_dir().join("tests/data/podman-seccomp.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn typed(v: &Value) -> LinuxSeccomp {
    serde_json::from_value(v.clone()).unwrap()
}

fn cache_dir(env: &Env) -> PathBuf {
    env.root.join("seccomp@cache")
}

/// The cache's entries (temporary files excluded).
fn entries(env: &Env) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(cache_dir(env)) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Runs `sh -c script` under `profile` with --debug; returns (stdout lines, stderr).
fn run_under(env: &Env, profile: &Value, script: &str) -> (Vec<String>, String) {
    let b = env.bundle_with(&["sh", "-c", script], |c| {
        c["linux"]["seccomp"] = profile.clone();
        with_sys_admin(c);
    });
    let id = env.id(&format!(
        "c{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = env.rt(&["--debug", "run", "--bundle", b.path(), &id]);
    out.success();
    env.assert_nothing_left(&id);
    (
        out.lines().iter().map(|s| s.to_string()).collect(),
        out.stderr.clone(),
    )
}

fn with_sys_admin(c: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
}

fn entry_program(path: &Path, profile: &Value) -> Vec<u8> {
    let key = cache::key(&typed(profile)).unwrap();
    cache::parse(&std::fs::read(path).unwrap(), &key).unwrap()
}

#[test]
fn cached_program_is_libseccomps_own_and_behaves_the_same() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let p = deny(&["mkdir", "mkdirat"]);
    let script = "mkdir /dev/shm/x; echo mkdir=$?; ls / >/dev/null && echo ls-ok";
    let (cold, err) = run_under(&env, &p, script);
    assert_eq!(cold, ["mkdir=1", "ls-ok"]);
    assert!(!err.contains("taken from the cache"), "{err}");
    let e = entries(&env);
    assert_eq!(e.len(), 1, "{e:?}");
    let key = cache::key(&typed(&p)).unwrap();
    assert_eq!(e[0], cache::entry_path(&env.root, &key));
    assert_eq!(
        entry_program(&e[0], &p),
        seccomp::export(&typed(&p)).unwrap(),
        "the cached program is libseccomp's export"
    );
    // Root-only: the directory 0700 and the entry 0600, owned by root.
    let dm = std::fs::metadata(cache_dir(&env)).unwrap();
    assert_eq!(dm.permissions().mode() & 0o777, 0o700);
    let fm = std::fs::metadata(&e[0]).unwrap();
    assert_eq!((fm.permissions().mode() & 0o777, fm.uid()), (0o600, 0));

    let (warm, err) = run_under(&env, &p, script);
    assert!(
        err.contains("taken from the cache"),
        "the second start uses the cache: {err}"
    );
    assert_eq!(warm, cold);
}

#[test]
fn podman_default_profile_still_blocks_sethostname_from_the_cache() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let p = podman_profile();
    // podman's profile (resolved for its default capabilities) denies sethostname even to
    // a process that holds CAP_SYS_ADMIN; without the profile, `hostname` works here.
    let script = "hostname h; echo hostname=$?; echo ok";
    let (lines, _) = run_under(&env, &json!(null), script);
    assert_eq!(
        lines,
        ["hostname=0", "ok"],
        "negative control: no profile, hostname works"
    );
    for round in 0..2 {
        let (lines, err) = run_under(&env, &p, script);
        assert_eq!(lines, ["hostname=1", "ok"], "round {round}: {err}");
        assert_eq!(
            err.contains("taken from the cache"),
            round == 1,
            "round {round}: {err}"
        );
    }
    let e = entries(&env);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        entry_program(&e[0], &p),
        seccomp::export(&typed(&p)).unwrap()
    );
}

#[test]
fn damaged_entries_are_rejected_and_rebuilt() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let p = deny(&["mkdir", "mkdirat"]);
    let script = "mkdir /dev/shm/x; echo mkdir=$?";
    run_under(&env, &p, script);
    let path = entries(&env).remove(0);
    let good = std::fs::read(&path).unwrap();

    // A flipped bit in the program (an allow where a deny was, say), a truncated file, an
    // empty file, another entry's bytes under this name: each is refused, never loaded.
    let other = {
        let q = deny(&["rmdir"]);
        let key = cache::key(&typed(&q)).unwrap();
        let prog = seccomp::export(&typed(&q)).unwrap();
        // Build a well-formed entry for q by letting tong write it in a scratch root.
        let scratch = Env::new();
        run_under(&scratch, &q, "true");
        let bytes = std::fs::read(cache::entry_path(&scratch.root, &key)).unwrap();
        assert_eq!(cache::parse(&bytes, &key).unwrap(), prog);
        bytes
    };
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x40;
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("flipped", flipped),
        ("truncated", good[..good.len() - 8].to_vec()),
        ("empty", vec![]),
        ("another profile's entry", other),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let (lines, err) = run_under(&env, &p, script);
        assert_eq!(lines, ["mkdir=1"], "{what}: {err}");
        assert!(
            err.contains("rejecting"),
            "{what}: the entry is reported as rejected: {err}"
        );
        assert!(!err.contains("taken from the cache"), "{what}: {err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "{what}: the entry is rebuilt"
        );
    }

    // A group-readable entry is not trusted either.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, err) = run_under(&env, &p, script);
    assert!(err.contains("rejecting"), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_symlinked_entry_is_replaced_not_followed() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let p = deny(&["mkdir", "mkdirat"]);
    let key = cache::key(&typed(&p)).unwrap();
    let victim = env.tempdir("victim").join("file");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::create_dir_all(cache_dir(&env)).unwrap();
    std::fs::set_permissions(cache_dir(&env), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, cache::entry_path(&env.root, &key)).unwrap();
    let (lines, _) = run_under(&env, &p, "mkdir /dev/shm/x; echo mkdir=$?");
    assert_eq!(lines, ["mkdir=1"]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let m = std::fs::symlink_metadata(cache::entry_path(&env.root, &key)).unwrap();
    assert!(
        m.file_type().is_file(),
        "the symlink was replaced by a regular entry"
    );
}

#[test]
fn a_shared_cache_dir_is_not_used() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(cache_dir(&env)).unwrap();
    std::fs::set_permissions(cache_dir(&env), std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = deny(&["mkdir", "mkdirat"]);
    let (lines, err) = run_under(&env, &p, "mkdir /dev/shm/x; echo mkdir=$?");
    assert_eq!(lines, ["mkdir=1"]);
    assert!(err.contains("not a directory private"), "{err}");
    assert!(
        entries(&env).is_empty(),
        "nothing is written into a directory others can write"
    );
}

#[test]
fn profiles_differing_in_one_rule_get_their_own_entries() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let a = deny(&["mkdir", "mkdirat"]);
    let b = deny(&["symlink", "symlinkat"]);
    let script = "mkdir /dev/shm/d; echo mkdir=$?; ln -s x /dev/shm/l; echo ln=$?";
    for round in 0..2 {
        let (la, _) = run_under(&env, &a, script);
        let (lb, _) = run_under(&env, &b, script);
        assert_eq!(la, ["mkdir=1", "ln=0"], "round {round}");
        assert_eq!(lb, ["mkdir=0", "ln=1"], "round {round}");
    }
    let e = entries(&env);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_ne!(std::fs::read(&e[0]).unwrap(), std::fs::read(&e[1]).unwrap());
}

#[test]
fn concurrent_starts_fill_the_cache_safely() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let p = podman_profile();
    let bundles: Vec<_> = (0..8)
        .map(|_| {
            env.bundle_with(&["sh", "-c", "hostname h; echo hostname=$?"], |c| {
                c["linux"]["seccomp"] = p.clone();
                with_sys_admin(c);
            })
        })
        .collect();
    let ids: Vec<String> = (0..8).map(|i| env.id(&format!("p{i}"))).collect();
    let env_ref = &env;
    std::thread::scope(|s| {
        let hs: Vec<_> = bundles
            .iter()
            .zip(&ids)
            .map(|(b, id)| s.spawn(move || env_ref.rt(&["run", "--bundle", b.path(), id])))
            .collect();
        for h in hs {
            let out = h.join().unwrap();
            out.success();
            assert_eq!(out.lines(), ["hostname=1"], "{out:#?}");
        }
    });
    for id in &ids {
        env.assert_nothing_left(id);
    }
    let all: Vec<_> = std::fs::read_dir(cache_dir(&env))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(all.len(), 1, "one entry and no temporary files: {all:?}");
    assert_eq!(
        entry_program(&entries(&env)[0], &p),
        seccomp::export(&typed(&p)).unwrap()
    );
}

#[test]
fn notify_profiles_are_not_cached() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let sock = env.tempdir("l").join("l.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Read the message without taking the fd: the kernel closes it, and the pending
        // mkdir then fails.
        let mut buf = vec![0u8; 65536];
        let _ = std::io::Read::read(&mut s, &mut buf);
    });
    let p = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let (lines, _) = run_under(&env, &p, "mkdir /dev/shm/z; echo mkdir=$?");
    t.join().unwrap();
    assert_eq!(lines.len(), 1);
    assert!(entries(&env).is_empty(), "{:?}", entries(&env));
}
