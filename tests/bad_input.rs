//! Bad configs, bad ids and operations on missing containers: each must
//! exit 1 with one clear error line and leave nothing behind.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;

/// Asserts exit code 1, exactly one non-empty stderr line, and that no
/// container, cgroup, mount or process of this env survived.
#[track_caller]
fn assert_clean_failure(env: &Env, out: &Out, id: &str) {
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stderr_lines().len(), 1, "one error line: {out:#?}");
    assert_root_empty(env);
    if !id.is_empty() && !id.contains('/') && !id.starts_with('.') {
        env.assert_nothing_left(id);
    } else {
        env.assert_nothing_left(&format!("{}never-created", env.name));
    }
}

#[track_caller]
fn assert_root_empty(env: &Env) {
    if let Ok(rd) = fs::read_dir(&env.root) {
        let left: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "state left in --root: {left:?}");
    }
}

/// `create` with a config.json whose text is `text`.
fn create_raw(env: &Env, text: &str) -> (Out, String, Bundle) {
    let b = env.bundle(&["true"]);
    fs::write(b.config_path(), text).unwrap();
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    (out, id, b)
}

/// `create` with the default test config edited by `edit`.
fn create_edited(env: &Env, edit: impl FnOnce(&mut Value)) -> (Out, String, Bundle) {
    let b = env.bundle_with(&["true"], edit);
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    (out, id, b)
}

#[test]
fn truncated_config() {
    let env = Env::new();
    let (out, id, _) = create_raw(&env, "{\"ociVersion\": ");
    assert_clean_failure(&env, &out, &id);
    // runc: "unexpected EOF"; tong points at the spot.
    if !is_runc() {
        out.stderr_has("line").stderr_has("column");
    }
}

#[test]
fn syntax_error_in_config() {
    let env = Env::new();
    let (out, id, _) = create_raw(
        &env,
        "{\"ociVersion\": \"1.0.2\",\n \"process\": {\n \"args\": [1, }",
    );
    assert_clean_failure(&env, &out, &id);
    // runc: "invalid character '}' looking for beginning of value".
    if !is_runc() {
        out.stderr_has("line 3").stderr_has("column");
    }
}

#[test]
fn wrong_type_names_the_field() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| c["process"]["user"]["uid"] = json!("zero"));
    assert_clean_failure(&env, &out, &id);
    // runc: "json: cannot unmarshal string into Go struct field
    // User.process.user.uid of type uint32"
    out.stderr_has("uid");
    if !is_runc() {
        out.stderr_has("process.user.uid");
    }
}

#[test]
fn unsupported_oci_version() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| c["ociVersion"] = json!("2.0.0"));
    // runc 1.1 does not check ociVersion at all (create succeeds).
    if !is_runc() {
        assert_clean_failure(&env, &out, &id);
        out.stderr_has("ociVersion").stderr_has("2.0.0");
    }
}

#[test]
fn missing_rootfs() {
    let env = Env::new();
    let (out, id, b) = create_edited(&env, |c| c["root"]["path"] = json!("no-such-rootfs"));
    assert_clean_failure(&env, &out, &id);
    // runc: "invalid rootfs: stat <bundle>/no-such-rootfs: no such file or directory"
    out.stderr_has(&format!("{}/no-such-rootfs", b.path()));
}

#[test]
fn empty_args() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| c["process"]["args"] = json!([]));
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("args"); // runc: "args must not be empty"
}

#[test]
fn missing_process() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| {
        c.as_object_mut().unwrap().remove("process");
    });
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("process"); // runc: "process property must not be empty"
}

#[test]
fn missing_root() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| {
        c.as_object_mut().unwrap().remove("root");
    });
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("root"); // runc: "root must be specified"
}

#[test]
fn unknown_namespace_type() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "foo" }));
    });
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("foo"); // runc: `namespace {"foo" ""} does not exist`
}

#[test]
fn duplicated_namespace() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "network" }));
    });
    assert_clean_failure(&env, &out, &id);
    // runc: `malformed spec file: duplicated ns {"network" ""}`
    out.stderr_has("net");
}

#[test]
fn relative_cwd() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| c["process"]["cwd"] = json!("relative/dir"));
    assert_clean_failure(&env, &out, &id);
    // runc: "Cwd must be an absolute path"
    assert!(out.stderr.to_lowercase().contains("cwd"), "{out:#?}");
}

#[test]
fn unknown_rlimit() {
    let env = Env::new();
    let (out, id, _) = create_edited(&env, |c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_FOO", "soft": 1, "hard": 1 }]);
    });
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("RLIMIT_FOO"); // runc: "wrong rlimit value: RLIMIT_FOO"
}

#[test]
fn missing_config_json() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    fs::remove_file(b.config_path()).unwrap();
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_clean_failure(&env, &out, &id);
    out.stderr_has("config.json"); // runc: "JSON specification file config.json not found"
}

#[test]
fn missing_bundle_dir() {
    let env = Env::new();
    let missing = env.base.join("no-such-bundle");
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", missing.to_str().unwrap(), &id]);
    assert_clean_failure(&env, &out, &id);
    // runc: "chdir <dir>: no such file or directory"
    out.stderr_has(missing.to_str().unwrap());
}

#[test]
fn invalid_ids() {
    for (bad, runc_msg) in [
        ("", "container id cannot be empty"),
        ("a/b", "invalid container ID format"),
        ("..", "invalid container ID format"),
        (".", "invalid container ID format"),
        ("a b", "invalid container ID format"),
    ] {
        let env = Env::new();
        let b = env.bundle(&["true"]);
        let out = env.rt(&["create", "--bundle", b.path(), bad]);
        assert_clean_failure(&env, &out, bad);
        out.stderr_has(runc_msg);
        assert!(!env.root.join("a").exists());
        // `run` validates the same way.
        let out = env.rt(&["run", "--bundle", b.path(), bad]);
        assert_clean_failure(&env, &out, bad);
    }
}

#[test]
fn duplicate_id_leaves_the_first_container_alone() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    let st = env.state(&id);
    let b2 = env.bundle(&["sleep", "1000"]);
    let out = env.rt(&["create", "--bundle", b2.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    out.stderr_has("container with given ID already exists");
    let st2 = env.state(&id);
    assert_eq!(st, st2, "the existing container is untouched");
    assert!(pid_alive(st["pid"].as_i64().unwrap()));
    // The second bundle's cgroup was not left behind.
    let stray: Vec<_> = env
        .cgroup_dirs()
        .into_iter()
        .filter(|d| d.ends_with(b2.cgroup.trim_start_matches('/')))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn operations_on_unknown_id() {
    let env = Env::new();
    let id = env.id("nope");
    for args in [
        vec!["start", &id],
        vec!["state", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = env.rt(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        assert_eq!(out.stderr_lines().len(), 1, "{args:?}: {out:#?}");
        out.stderr_has("does not exist");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    assert_root_empty(&env);
}

#[test]
fn force_delete_of_unknown_id_is_silent_success() {
    let env = Env::new();
    let id = env.id("nope");
    let out = env.rt(&["delete", "--force", &id]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
    let out = env.rt(&["delete", "-f", &id]);
    assert_eq!(out.code, 0, "{out:#?}");
}

fn json_log_lines(path: &std::path::Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

#[test]
fn json_log_file_gets_one_error_line() {
    let env = Env::new();
    let log = env.base.join("log.json");
    let id = env.id("nope");
    let out = env.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    assert_eq!(out.code, 1, "{out:#?}");
    let lines = json_log_lines(&log);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    assert_eq!(l["level"], "error", "{l}");
    assert!(l["msg"].as_str().unwrap().contains("does not exist"), "{l}");
    assert!(l["time"].is_string(), "{l}");
    assert_eq!(
        l.as_object().unwrap().len(),
        3,
        "exactly level/msg/time: {l}"
    );

    // A create failure is logged the same way.
    let log2 = env.base.join("log2.json");
    let b = env.bundle_with(&["true"], |c| c["process"]["args"] = json!([]));
    let id = env.id("c");
    let out = env.rt(&[
        "--log",
        log2.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.path(),
        &id,
    ]);
    assert_eq!(out.code, 1, "{out:#?}");
    let lines = json_log_lines(&log2);
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "error").collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(
        errors[0]["msg"].as_str().unwrap().contains("args"),
        "{lines:#?}"
    );
    env.assert_nothing_left(&id);
}

#[test]
fn text_log_file() {
    let env = Env::new();
    let log = env.base.join("log.txt");
    let id = env.id("nope");
    let out = env.rt(&["--log", log.to_str().unwrap(), "state", &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("time=\""), "{text}");
    assert!(lines[0].contains(" level=error msg=\""), "{text}");
    assert!(lines[0].contains("does not exist"), "{text}");
    if is_runc() {
        assert!(
            lines[0].ends_with("msg=\"container does not exist\""),
            "{text}"
        );
    } else {
        // tong names the container.
        assert!(lines[0].contains(&id), "{text}");
    }
}

#[test]
fn stderr_error_line_format() {
    let env = Env::new();
    let id = env.id("nope");
    let out = env.rt(&["state", &id]);
    let l = out.stderr_lines();
    assert_eq!(l.len(), 1, "{out:#?}");
    assert!(l[0].contains("does not exist"), "{out:#?}");
    // Without --log, the error goes to stderr in logrus' text format.
    assert!(l[0].starts_with("time=\""), "{out:#?}");
    assert!(l[0].contains(" level=error msg=\"container "), "{out:#?}");
    if !is_runc() {
        assert!(l[0].contains(&id), "{out:#?}");
    }
}
