//! Rootless: `spec --rootless`, and a container run by an unprivileged user.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// A uid with no special rights on this host (tester in mkbundle's passwd).
const UID: u32 = 1000;

fn as_user(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let xdg = dir.join("xdg");
    Command::new("setpriv")
        .args(["--reuid", &UID.to_string(), "--regid", &UID.to_string(), "--clear-groups", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
        .arg(runtime())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("setpriv")
}

#[test]
fn spec_rootless_maps_the_caller_and_drops_host_only_settings() {
    if is_runc() {
        return;
    }
    let dir = tempfile_dir("spec-rootless");
    std::os::unix::fs::chown(&dir, Some(UID), Some(UID)).unwrap();
    let out = as_user(&dir, &["spec", "--rootless"]);
    assert!(out.status.success(), "{out:?}");
    let c: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = c["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], UID);
    assert_eq!(c["linux"]["gidMappings"][0]["hostID"], UID);
    assert!(c["linux"].get("resources").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unprivileged_user_runs_a_container() {
    if is_runc() {
        return;
    }
    let dir = tempfile_dir("rootless-run");
    let status = Command::new(repo_dir().join("hack/mkbundle.sh"))
        .arg(&dir)
        .args(["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made-inside"])
        .env("TONG", runtime())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    Command::new("chown").args(["-R", &format!("{UID}:{UID}"), dir.to_str().unwrap()]).status().unwrap();
    let out = as_user(&dir, &["spec", "--rootless"]);
    assert!(out.status.success(), "{out:?}");
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = Value::Bool(false);
    c["process"]["args"] = serde_json::json!(["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made-inside"]);
    c["root"]["readonly"] = Value::Bool(false);
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("xdg")).unwrap();
    std::os::unix::fs::chown(dir.join("xdg"), Some(UID), Some(UID)).unwrap();

    let out = as_user(&dir, &["run", "rootless-c"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {stdout}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &UID.to_string(), "1"], "{stdout}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(dir.join("rootfs/tmp/made-inside")).unwrap();
    assert_eq!(made.uid(), UID, "a file made by the container's root belongs to the user on the host");
    // State lived under $XDG_RUNTIME_DIR/tong and is gone after run.
    let state = dir.join("xdg/tong");
    assert!(state.is_dir());
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tong-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
