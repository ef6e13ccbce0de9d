//! Container state machine: create/start/state/kill/delete, list, run.
mod common;
use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &r[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

/// Polls until `p` exists (the container signals readiness by creating it).
#[track_caller]
fn wait_file(p: &Path) {
    let start = Instant::now();
    while !p.exists() {
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn writable_rootfs(c: &mut Value) {
    c["root"]["readonly"] = false.into();
}

#[test]
fn create_start_kill_delete() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    let pidfile = env.base.join("pidfile");

    env.rt(&[
        "create",
        "--bundle",
        b.path(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ])
    .success();

    let st = env.state(&id);
    assert_eq!(st["status"], "created", "{st:#}");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().expect("pid is a number");
    assert!(pid > 0, "{st:#}");
    assert!(
        pid_alive(pid),
        "init pid {pid} of a created container is not alive"
    );
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{st:#}"
    );
    assert_eq!(
        st["bundle"],
        b.path(),
        "bundle must be the absolute bundle path"
    );
    assert_eq!(
        st["rootfs"].as_str().unwrap(),
        b.rootfs().to_str().unwrap(),
        "{st:#}"
    );
    assert!(
        st["created"].as_str().is_some_and(is_rfc3339),
        "created is not RFC3339: {st:#}"
    );
    assert!(st["owner"].is_string(), "owner missing: {st:#}");
    let pf = fs::read_to_string(&pidfile).expect("pid file written");
    assert_eq!(pf.trim(), pid.to_string(), "pid file content");
    assert!(
        env.state_dir(&id).is_dir(),
        "state dir exists while created"
    );

    env.rt(&["start", &id]).success();
    let st = env.wait_status(&id, "running");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid),
        "pid stays the same after start"
    );
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep", "the container process runs `sleep`");

    env.rt(&["kill", &id, "KILL"]).success();
    let st = env.wait_status(&id, "stopped");
    assert_eq!(st["pid"], 0, "a stopped container reports pid 0: {st:#}");
    wait_pid_gone(pid);

    env.rt(&["delete", &id]).success();
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(&id);
}

#[test]
fn start_runs_the_process_and_state_reflects_exit() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "echo started > /tmp/marker"], writable_rootfs);
    let id = env.id("c");
    env.create(&b, &id);
    assert!(
        !b.rootfs().join("tmp/marker").exists(),
        "process must not run before start"
    );
    env.rt(&["start", &id]).success();
    env.wait_status(&id, "stopped");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/marker")).unwrap(),
        "started\n"
    );
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn list_formats() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id1 = env.id("one");
    let id2 = env.id("two");
    env.create(&b, &id1);
    let b2 = env.bundle(&["sleep", "1000"]);
    env.create(&b2, &id2);
    env.rt(&["start", &id2]).success();
    env.wait_status(&id2, "running");

    let out = env.rt(&["list"]);
    out.success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{out:#?}"
    );
    let row = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(id1.as_str()))
        .unwrap_or_else(|| panic!("{id1} not listed: {out:#?}"));
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f.len(), 6, "{row}");
    assert!(f[1].parse::<u32>().unwrap() > 0);
    assert_eq!(f[2], "created");
    assert_eq!(f[3], b.path());
    assert!(is_rfc3339(f[4]), "{row}");
    assert_eq!(f[5], "root");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&id2) && l.contains("running")),
        "{out:#?}"
    );

    let mut q = env
        .rt(&["list", "-q"])
        .success()
        .lines()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    q.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(q, want);

    let out = env.rt(&["list", "--format", "json"]);
    out.success();
    let v: Value = serde_json::from_str(&out.stdout).expect("list --format json is JSON");
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 2, "{v:#}");
    let e1 = arr
        .iter()
        .find(|e| e["id"] == id1.as_str())
        .expect("id1 in json");
    assert_eq!(e1["status"], "created");
    assert_eq!(e1["bundle"], b.path());
    assert!(e1["pid"].as_i64().unwrap() > 0);
    let e2 = arr
        .iter()
        .find(|e| e["id"] == id2.as_str())
        .expect("id2 in json");
    assert_eq!(e2["status"], "running");

    env.rt(&["delete", "--force", &id1]).success();
    env.rt(&["delete", "--force", &id2]).success();
    env.assert_nothing_left(&id1);
    env.assert_nothing_left(&id2);
    let out = env.rt(&["list", "-q"]);
    out.success();
    assert_eq!(out.stdout.trim(), "");
}

#[test]
fn list_on_missing_root_is_empty() {
    let env = Env::new();
    assert!(!env.root.exists());
    let out = env.rt(&["list", "--format", "json"]);
    out.success();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "{out:#?}"
    );
}

#[test]
fn run_foreground_output_and_exit_code() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "echo hello from inside; echo to-stderr >&2; exit 3",
    ]);
    let id = env.id("c");
    let out = env.run(&b, &id);
    assert_eq!(out.code, 3, "exit code passes through: {out:#?}");
    assert_eq!(out.stdout, "hello from inside\n");
    assert!(out.stderr.contains("to-stderr"), "{out:#?}");
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(&id);

    let out = env.run_with(&["true"], |_| {});
    assert_eq!(out.code, 0, "{out:#?}");
}

#[test]
fn run_killed_by_signal_exits_128_plus_n() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    let run = env.spawn(&["run", "--bundle", b.path(), &id]);
    env.wait_status(&id, "running");
    env.rt(&["kill", &id, "KILL"]).success();
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{out:#?}");
    env.assert_nothing_left(&id);
}

#[test]
fn run_detached() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let st = env.wait_status(&id, "running");
    assert!(pid_alive(st["pid"].as_i64().unwrap()));
    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "exit 0"]);
    let id = env.id("c");
    env.rt(&["run", "--keep", "--bundle", b.path(), &id])
        .success();
    let st = env.state(&id);
    assert_eq!(st["status"], "stopped", "{st:#}");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn kill_default_signal_is_term_and_reaches_a_trap() {
    let env = Env::new();
    let b = env.bundle_with(
        &[
            "sh",
            "-c",
            "trap 'echo got-term > /tmp/got; exit 7' TERM; touch /tmp/ready; \
             while true; do sleep 0.1; done",
        ],
        writable_rootfs,
    );
    let id = env.id("c");
    let run = env.spawn(&["run", "--bundle", b.path(), &id]);
    wait_file(&b.rootfs().join("tmp/ready"));
    env.rt(&["kill", &id]).success();
    let out = run.wait();
    assert_eq!(out.code, 7, "the TERM trap's exit code: {out:#?}");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/got")).unwrap(),
        "got-term\n"
    );
    env.assert_nothing_left(&id);
}

#[test]
fn kill_signal_spellings() {
    // TERM spelled three ways, each reaching a trapping pid 1.
    for sig in ["TERM", "SIGTERM", "15"] {
        let env = Env::new();
        let b = env.bundle_with(
            &[
                "sh",
                "-c",
                "trap 'exit 9' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
            ],
            writable_rootfs,
        );
        let id = env.id("c");
        env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
        wait_file(&b.rootfs().join("tmp/ready"));
        env.rt(&["kill", &id, sig]).success();
        env.wait_status(&id, "stopped");
        env.rt(&["delete", &id]).success();
        env.assert_nothing_left(&id);
    }
    // KILL spelled three ways, killing a pid 1 that ignores TERM.
    for sig in ["KILL", "SIGKILL", "9"] {
        let env = Env::new();
        let b = env.bundle_with(
            &[
                "sh",
                "-c",
                "trap '' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
            ],
            writable_rootfs,
        );
        let id = env.id("c");
        env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
        wait_file(&b.rootfs().join("tmp/ready"));
        env.rt(&["kill", &id, "TERM"]).success();
        assert_eq!(env.status(&id), "running", "TERM is ignored");
        env.rt(&["kill", &id, sig]).success();
        let st = env.wait_status(&id, "stopped");
        assert_eq!(st["pid"], 0);
        env.rt(&["delete", &id]).success();
        env.assert_nothing_left(&id);
    }
}

#[test]
fn kill_invalid_signal_fails() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    let out = env.rt(&["kill", &id, "SIGNOPE"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("SIGNOPE") || out.stderr.contains("signal"),
        "{out:#?}"
    );
    assert_eq!(
        env.status(&id),
        "created",
        "a bad signal leaves the container alone"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn kill_a_created_container() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn kill_stopped_container_fails() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("c");
    env.rt(&["run", "--keep", "--bundle", b.path(), &id])
        .success();
    assert_eq!(env.status(&id), "stopped");
    let out = env.rt(&["kill", &id, "KILL"]);
    assert_eq!(out.code, 1);
    out.stderr_has("container not running");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn delete_running_needs_force() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    env.wait_status(&id, "running");
    let out = env.rt(&["delete", &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("running"), "{out:#?}");
    assert_eq!(
        env.status(&id),
        "running",
        "failed delete leaves it running"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn delete_created_without_force() {
    // runc deletes a created (never started) container without --force.
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
    wait_pid_gone(pid);
}

#[test]
fn start_twice_fails() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    env.rt(&["start", &id]).success();
    env.wait_status(&id, "running");
    let out = env.rt(&["start", &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("cannot start"), "{out:#?}");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn config_is_read_once_at_create() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    fs::write(b.config_path(), "{\"ociVersion\": garbage").unwrap();
    env.rt(&["start", &id]).success();
    let st = env.wait_status(&id, "running");
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/comm", st["pid"]))
            .unwrap()
            .trim(),
        "sleep"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn create_with_relative_bundle_and_cwd_default() {
    // Without --bundle the current directory is the bundle.
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt_opts(
        &["create", &id],
        Opts {
            cwd: Some(&b.dir),
            ..Default::default()
        },
    )
    .success();
    let st = env.state(&id);
    assert_eq!(st["bundle"], b.path());
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}
