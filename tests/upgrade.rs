//! An upgrade under running containers: containers created by the tong engines run today
//! (hack/previous-release, built by hack/previous.sh and passed as TONG_PREVIOUS_BIN) are
//! managed by the tong under test: state, list, exec, update, pause, ps, kill, start and
//! delete. And the other way: what the new tong writes for such a container, the old one
//! still reads. Without TONG_PREVIOUS_BIN (a bare `cargo test`) the tests say so and do
//! nothing; hack/test.sh sets it, or TONG_PREVIOUS_ERROR when it could not build it, which
//! fails them with the reason.
mod common;
use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn previous() -> Option<PathBuf> {
    if let Ok(why) = std::env::var("TONG_PREVIOUS_ERROR") {
        panic!("no previous tong to upgrade from: {why}");
    }
    match std::env::var_os("TONG_PREVIOUS_BIN") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("skipped: TONG_PREVIOUS_BIN is not set (hack/test.sh builds it)");
            None
        }
    }
}

/// A JSON file of the container's state directory.
fn stored_json(env: &Env, id: &str, file: &str) -> Value {
    let p = env.state_dir(id).join(file);
    serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
}

fn state_json(env: &Env, id: &str) -> Value {
    stored_json(env, id, "state.json")
}

/// The bundle's pids.max (v1 pids hierarchy, or the unified one on a pure v2 host).
fn pids_max(b: &Bundle) -> String {
    let root = Path::new("/sys/fs/cgroup");
    let dir = if root.join("cgroup.controllers").exists() {
        root.to_path_buf()
    } else {
        root.join("pids")
    };
    let p = dir.join(b.cgroup.trim_start_matches('/')).join("pids.max");
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn running_container_of_the_previous_tong_is_managed_by_this_one() {
    if is_runc() {
        return;
    }
    let Some(old) = previous() else { return };
    let env = Env::new();
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 50 });
    });
    let id = env.id("old");
    env.rt_prog(&old, &["run", "-d", "--bundle", b.path(), &id])
        .success();
    // The old tong's record: format 1, the config inline.
    let rec = state_json(&env, &id);
    assert!(rec.get("version").is_none(), "{rec:#}");
    assert!(rec["config"].is_object(), "{rec:#}");

    let st = env.wait_status(&id, "running");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0 && pid_alive(pid), "{st:#}");
    let list = env.rt(&["list", "--format", "json"]);
    list.success();
    assert!(list.stdout.contains(&id), "{list:#?}");

    let out = env.rt(&["exec", &id, "sh", "-c", "echo in-$(hostname)"]);
    out.success();
    assert_eq!(out.stdout.trim(), format!("in-{}", b.hostname));

    env.rt(&["update", "--pids-limit", "20", &id]).success();
    assert_eq!(pids_max(&b), "20");
    // Written back in the format it was read in, with the update merged: the old tong
    // (after a downgrade) still reads it.
    let rec = state_json(&env, &id);
    assert!(rec.get("version").is_none(), "{rec:#}");
    assert_eq!(
        rec["config"]["linux"]["resources"]["pids"]["limit"], 20,
        "{rec:#}"
    );
    assert!(rec["cgroup_paths"].is_array(), "{rec:#}");
    let old_state = env.rt_prog(&old, &["state", &id]);
    old_state.success();
    assert!(old_state.stdout.contains("\"running\""), "{old_state:#?}");

    env.rt(&["pause", &id]).success();
    assert_eq!(env.status(&id), "paused");
    env.rt(&["resume", &id]).success();
    assert_eq!(env.status(&id), "running");

    let ps = env.rt(&["ps", "--format", "json", &id]);
    ps.success();
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks the init {pid}");

    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn created_container_of_the_previous_tong_starts_and_is_deleted() {
    if is_runc() {
        return;
    }
    let Some(old) = previous() else { return };
    let env = Env::new();
    let marker = env.tempdir("m");
    let b = env.bundle_with(&["sh", "-c", "echo started > /m/out"], |c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/m", "type": "bind",
            "source": marker.to_str().unwrap(), "options": ["rbind", "rw"]
        }));
    });
    let id = env.id("c");
    env.rt_prog(&old, &["create", "--bundle", b.path(), &id])
        .success();
    assert_eq!(env.status(&id), "created");
    env.rt(&["start", &id]).success();
    env.wait_status(&id, "stopped");
    assert_eq!(
        fs::read_to_string(marker.join("out")).unwrap().trim(),
        "started"
    );
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);

    // One the old tong created and the new one force-deletes while it waits.
    let b2 = env.bundle(&["sleep", "1000"]);
    let id2 = env.id("c2");
    env.rt_prog(&old, &["create", "--bundle", b2.path(), &id2])
        .success();
    env.rt(&["delete", "--force", &id2]).success();
    env.assert_nothing_left(&id2);
}

#[test]
fn this_tong_writes_format_2_with_the_config_beside_it() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("new");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let rec = state_json(&env, &id);
    assert_eq!(rec["version"], 2, "{rec:#}");
    assert!(rec.get("config").is_none(), "{rec:#}");
    // The cgroup handle saved whole: the driver and each directory's hierarchy.
    assert_eq!(rec["cgroup"]["driver"], "cgroupfs", "{rec:#}");
    let dirs = rec["cgroup"]["dirs"].as_array().unwrap();
    assert!(!dirs.is_empty(), "{rec:#}");
    for d in dirs {
        let path = d["path"].as_str().unwrap();
        assert!(path.starts_with(d["mount"].as_str().unwrap()), "{d}");
        assert!(path.ends_with(b.cgroup.trim_start_matches('/')), "{d}");
        assert!(Path::new(path).is_dir(), "{d}");
    }
    let cfg = stored_json(&env, &id, "config.json");
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sleep", "1000"]));
    // `update` changes the config beside the state, which later updates build on.
    env.rt(&["update", "--pids-limit", "7", &id]).success();
    let cfg = stored_json(&env, &id, "config.json");
    assert_eq!(cfg["linux"]["resources"]["pids"]["limit"], 7);
    assert_eq!(pids_max(&b), "7");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn a_state_format_newer_than_this_tong_is_refused_by_name() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("future");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let p = env.state_dir(&id).join("state.json");
    let mut rec = state_json(&env, &id);
    rec["version"] = 99.into();
    let saved = fs::read(&p).unwrap();
    fs::write(&p, serde_json::to_vec(&rec).unwrap()).unwrap();
    let out = env.rt(&["state", &id]);
    assert!(!out.ok(), "{out:#?}");
    assert!(
        out.stderr.contains("state.json") && out.stderr.contains("version 99"),
        "{out:#?}"
    );
    // Negative control: the record as written is read.
    fs::write(&p, saved).unwrap();
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}
