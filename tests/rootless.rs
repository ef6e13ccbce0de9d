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
        .args([
            "--reuid",
            &UID.to_string(),
            "--regid",
            &UID.to_string(),
            "--clear-groups",
            "env",
        ])
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
    let c: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    // As runc's: a cgroup namespace on a cgroup v2 host (the default spec's, kept).
    assert_eq!(ns.contains(&"cgroup"), pure_cgroup2_host(), "{ns:?}");
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
        .args([
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; touch /tmp/made-inside",
        ])
        .env("TONG", runtime())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}"), dir.to_str().unwrap()])
        .status()
        .unwrap();
    let out = as_user(&dir, &["spec", "--rootless"]);
    assert!(out.status.success(), "{out:?}");
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = Value::Bool(false);
    c["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/made-inside"
    ]);
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
    assert_eq!(
        made.uid(),
        UID,
        "a file made by the container's root belongs to the user on the host"
    );
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

/// Adds `<uid>:<start>:<count>` to /etc/subuid and /etc/subgid for the test's user, and
/// takes exactly those lines out again when dropped.
struct SubIds {
    line: String,
}

impl SubIds {
    fn add(start: u32, count: u32) -> SubIds {
        let line = format!("{UID}:{start}:{count}");
        for f in ["/etc/subuid", "/etc/subgid"] {
            let mut s = std::fs::read_to_string(f).unwrap_or_default();
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&line);
            s.push('\n');
            std::fs::write(f, s).unwrap();
        }
        SubIds { line }
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(s) = std::fs::read_to_string(f) {
                let kept: String = s
                    .lines()
                    .filter(|l| *l != self.line)
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = std::fs::write(f, kept);
            }
        }
    }
}

/// A rootless container mapping 65537 ids: the user's own id as root, and a subordinate
/// range from /etc/subuid for the rest, written by newuidmap/newgidmap.
#[test]
fn rootless_multi_id_mapping_goes_through_newuidmap() {
    if is_runc() {
        return;
    }
    let dir = tempfile_dir("rootless-multi");
    let script = "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/by-root; chown 1000:1000 /tmp/by-root && echo chown-ok";
    let status = Command::new(repo_dir().join("hack/mkbundle.sh"))
        .arg(&dir)
        .args(["sh", "-c", script])
        .env("TONG", runtime())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}"), dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(as_user(&dir, &["spec", "--rootless"]).status.success());
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["process"]["terminal"] = Value::Bool(false);
    c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    c["root"]["readonly"] = Value::Bool(false);
    let maps = serde_json::json!([
        {"containerID": 0, "hostID": UID, "size": 1},
        {"containerID": 1, "hostID": 300000, "size": 65536}
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("CAP_CHOWN"));
    }
    c["linux"]["uidMappings"] = maps.clone();
    c["linux"]["gidMappings"] = maps;
    std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("xdg")).unwrap();
    std::os::unix::fs::chown(dir.join("xdg"), Some(UID), Some(UID)).unwrap();

    // Without a subordinate range the helper refuses, and says so.
    let out = as_user(&dir, &["run", "multi-c"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newuidmap"),
        "the error names the helper: {err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.join("xdg/tong")).unwrap().count(),
        0,
        "no state left"
    );

    let sub = SubIds::add(300000, 65536);
    let out = as_user(&dir, &["run", "multi-c"]);
    drop(sub);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = UID.to_string();
    assert_eq!(
        rows,
        [
            vec!["0", uid.as_str(), "1"],
            vec!["1", "300000", "65536"],
            vec!["0", uid.as_str(), "1"],
            vec!["1", "300000", "65536"]
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("chown-ok"),
        "ids beyond the user's own exist inside: {stdout}"
    );
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(dir.join("rootfs/tmp/by-root")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (300000 + 999, 300000 + 999),
        "container uid 1000 is host 300999"
    );
    assert_eq!(std::fs::read_dir(dir.join("xdg/tong")).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
