//! OCI hooks: when each kind runs, where, with what state on stdin, and
//! what a failing or hanging hook does to the container.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::Path;

const HOST_HOOKS: [&str; 5] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "poststart",
    "poststop",
];

/// A hook that appends `NAME|<state json>|<mnt ns>|<cwd>|$FOO` to `log`.
fn logging_hook(name: &str, log: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "s=$(cat); echo \"{name}|$s|$(readlink /proc/self/ns/mnt)|$(pwd)|$FOO\" >> {}",
            log.display()
        )],
        "env": ["FOO=hook-env"],
    })
}

struct Entry {
    name: String,
    state: Value,
    mnt: String,
    cwd: String,
    foo: String,
}

fn read_log(log: &Path) -> Vec<Entry> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 5, "bad hook log line {l:?}");
            Entry {
                name: f[0].to_string(),
                state: serde_json::from_str(f[1])
                    .unwrap_or_else(|e| panic!("hook stdin is not state JSON ({e}): {l}")),
                mnt: f[2].to_string(),
                cwd: f[3].to_string(),
                foo: f[4].to_string(),
            }
        })
        .collect()
}

fn names(es: &[Entry]) -> Vec<&str> {
    es.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn all_hooks_run_in_order_with_state_on_stdin() {
    let env = Env::new();
    let log = env.base.join("hooks.log");
    let b = env.bundle_with(&["sh", "-c", "echo main >> /tmp/inside.log"], |c| {
        c["root"]["readonly"] = json!(false);
        let mut hooks = serde_json::Map::new();
        for h in HOST_HOOKS {
            hooks.insert(h.into(), json!([logging_hook(h, &log)]));
        }
        // startContainer runs inside the container after pivot_root: its
        // path and its files are the container's.
        hooks.insert(
            "startContainer".into(),
            json!([{ "path": "/bin/sh",
                     "args": ["sh", "-c", "s=$(cat); echo \"startContainer $s\" >> /tmp/inside.log"] }]),
        );
        c["hooks"] = Value::Object(hooks);
    });
    let id = env.id("c");
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    let host_mnt = host_mnt.to_str().unwrap();

    env.create(&b, &id);
    let mut es = read_log(&log);
    if is_runc() && names(&es).last() == Some(&"poststart") {
        // runc 1.1 runs poststart hooks during `create` (fixed in runc 1.2);
        // the spec, and tong, run them after `start`.
        es.pop();
    }
    assert_eq!(names(&es), ["prestart", "createRuntime", "createContainer"]);
    let init_pid = env.state(&id)["pid"].as_i64().unwrap();
    for e in &es {
        assert_eq!(e.state["id"], id.as_str(), "{}", e.name);
        assert_eq!(e.state["status"], "creating", "{}: {}", e.name, e.state);
        assert_eq!(e.state["bundle"], b.path(), "{}", e.name);
        assert_eq!(e.foo, "hook-env", "hook env is passed: {}", e.name);
    }
    for e in &es[..2] {
        assert_eq!(e.state["pid"], init_pid, "{}", e.name);
        assert_eq!(
            e.mnt, host_mnt,
            "{} runs in the runtime's namespace",
            e.name
        );
        assert_eq!(e.cwd, b.path(), "{} runs in the bundle dir", e.name);
    }
    assert_ne!(
        es[2].mnt, host_mnt,
        "createContainer runs in the container's mount namespace"
    );
    // As runc: in the container's rootfs (a hook may reach ./lib relative to it).
    let rootfs = fs::canonicalize(b.rootfs()).unwrap();
    assert_eq!(Path::new(&es[2].cwd), rootfs, "createContainer's cwd");
    assert!(!b.rootfs().join("tmp/inside.log").exists());

    env.rt(&["start", &id]).success();
    env.wait_status(&id, "stopped");
    let inside = fs::read_to_string(b.rootfs().join("tmp/inside.log")).unwrap();
    let il: Vec<&str> = inside.lines().collect();
    assert_eq!(il.len(), 2, "{inside}");
    assert!(il[0].starts_with("startContainer {"), "{inside}");
    assert!(il[0].contains(&id), "{inside}");
    assert_eq!(il[1], "main", "startContainer runs before the process");

    let es = read_log(&log);
    assert_eq!(
        names(&es),
        ["prestart", "createRuntime", "createContainer", "poststart"]
    );
    let ps = &es[3];
    assert_eq!(ps.state["id"], id.as_str());
    assert_eq!(ps.mnt, host_mnt);
    // runc 1.1 reports "created" to poststart; the spec's state would be
    // "running" (or "stopped" if the process already exited).
    let st = ps.state["status"].as_str().unwrap();
    assert!(
        ["created", "running", "stopped"].contains(&st),
        "{}",
        ps.state
    );

    env.rt(&["delete", &id]).success();
    let es = read_log(&log);
    assert_eq!(names(&es), HOST_HOOKS);
    let stop = &es[4];
    assert_eq!(stop.state["id"], id.as_str());
    assert_eq!(stop.state["status"], "stopped");
    assert_eq!(stop.mnt, host_mnt);
    env.assert_nothing_left(&id);
}

/// A hook without `env` inherits the environment of whoever runs it, as runc's do (Go's
/// os/exec): the runtime's hooks get tong's, the container's hooks the container process's;
/// a hook with an empty `env` gets none.
#[test]
fn hooks_without_env_inherit_their_runners_environment() {
    let env = Env::new();
    let log = env.base.join("env.log");
    let hook = |name: &str, own: Option<Value>| {
        let mut h = json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
            "echo \"{name}|$TONG_HOOK_PROBE|$FROM_SPEC|$HOME\" >> {}",
            if name == "startContainer" { "/tmp/env.log".to_string() } else { log.display().to_string() }
        )]});
        if let Some(e) = own {
            h["env"] = e;
        }
        h
    };
    let b = env.bundle_with(&["true"], |c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FROM_SPEC=spec"]);
        c["hooks"] = json!({
            "prestart": [hook("prestart", None), hook("empty", Some(json!([])))],
            "createContainer": [hook("createContainer", None)],
            "startContainer": [hook("startContainer", None)],
        });
    });
    let id = env.id("c");
    let out = env.rt_opts(
        &["run", "--bundle", b.path(), &id],
        Opts {
            envs: vec![("TONG_HOOK_PROBE", "from-tong")],
            ..Default::default()
        },
    );
    out.success();
    let mut lines: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.extend(
        fs::read_to_string(b.rootfs().join("tmp/env.log"))
            .unwrap()
            .lines()
            .map(String::from),
    );
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(
        lines,
        [
            format!("prestart|from-tong||{home}"),
            "empty|||".into(),
            "createContainer||spec|".into(),
            "startContainer||spec|/root".into(),
        ],
        "{out:#?}"
    );
    env.assert_nothing_left(&id);
}

#[test]
fn hooks_run_in_array_order() {
    let env = Env::new();
    let log = env.base.join("hooks.log");
    let l = log.display().to_string();
    let hook = |n: &str| json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("cat >/dev/null; echo {n} >> {l}")] });
    let b = env.bundle_with(&["true"], |c| {
        c["hooks"] = json!({ "createRuntime": [hook("one"), hook("two"), hook("three")] });
    });
    let id = env.id("c");
    env.run(&b, &id).success();
    assert_eq!(fs::read_to_string(&log).unwrap(), "one\ntwo\nthree\n");
    env.assert_nothing_left(&id);
}

fn failing_hook() -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 1"] })
}

#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let env = Env::new();
        let b = env.bundle_with(&["sleep", "1000"], |c| {
            c["hooks"] = json!({ kind: [failing_hook()] });
        });
        let id = env.id("c");
        let out = env.rt(&["create", "--bundle", b.path(), &id]);
        assert_eq!(out.code, 1, "{kind}: {out:#?}");
        // runc: "error running hook #0: error running hook: exit status 1,
        // stdout: , stderr: hook-says-no"
        out.stderr_has("hook #0");
        out.stderr_has("hook-says-no");
        env.rt(&["state", &id])
            .failure()
            .stderr_has("does not exist");
        env.assert_nothing_left(&id);
    }
}

/// A startContainer hook and no other: it still reads the container's state on stdin, with
/// status `created` (it once got an empty stdin, as only the create hooks asked the parent
/// for the state).
#[test]
fn start_container_hook_alone_reads_the_state() {
    let env = Env::new();
    let out_dir = env.tempdir("hookout");
    let b = env.bundle_with(&["true"], |c| {
        c["hooks"] = json!({ "startContainer": [{ "path": "/bin/sh",
            "args": ["sh", "-c", "cat > /hookout/state.json"] }] });
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hookout", "type": "bind",
            "source": out_dir.to_str().unwrap(), "options": ["rbind", "rw"]
        }));
    });
    let id = env.id("c");
    env.run(&b, &id).success();
    let text = fs::read_to_string(out_dir.join("state.json")).unwrap();
    let st: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("hook stdin is not the state ({e}): {text:?}"));
    assert_eq!(st["id"], id.as_str(), "{st:#}");
    assert_eq!(st["status"], "created", "{st:#}");
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{st:#}");
    env.assert_nothing_left(&id);
}

#[test]
fn failing_start_container_hook_fails_start() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "echo main-ran"], |c| {
        c["hooks"] = json!({ "startContainer": [failing_hook()] });
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(!out.stdout.contains("main-ran"), "{out:#?}");
    out.stderr_has("hook-says-no");
    env.assert_nothing_left(&id);
}

#[test]
fn failing_poststart_hook() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "echo main-ran"], |c| {
        c["hooks"] = json!({ "poststart": [failing_hook()] });
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.stderr_has("hook-says-no");
    if is_runc() {
        // runc 1.1 fails the run and destroys the container.
        assert_eq!(out.code, 1, "{out:#?}");
    } else {
        // The spec: a failing poststart hook is logged as a warning and
        // the lifecycle continues.
        assert_eq!(out.code, 0, "{out:#?}");
        assert_eq!(out.stdout, "main-ran\n");
        out.stderr_has("warning");
    }
    env.assert_nothing_left(&id);
}

#[test]
fn failing_poststop_hook_is_only_reported() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "echo main-ran; exit 4"], |c| {
        c["hooks"] = json!({ "poststop": [failing_hook()] });
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    assert_eq!(out.code, 4, "the process's exit code still wins: {out:#?}");
    assert_eq!(out.stdout, "main-ran\n");
    out.stderr_has("hook-says-no");
    env.assert_nothing_left(&id);
}

#[test]
fn hook_timeout_fails_create() {
    let env = Env::new();
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["hooks"] = json!({ "createRuntime": [
            { "path": "/bin/sh", "args": ["sh", "-c", "exec sleep 10"], "timeout": 1 }
        ] });
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has("timeout");
    env.assert_nothing_left(&id);
}

#[test]
fn missing_hook_binary_fails_create() {
    let env = Env::new();
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["hooks"] = json!({ "prestart": [{ "path": "/nonexistent/hook" }] });
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has("/nonexistent/hook");
    env.assert_nothing_left(&id);
}
