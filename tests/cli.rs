//! Command-line surface: --version, usage errors, `spec`, hack/mkbundle.sh,
//! and a CVE-2019-5736 smoke test.
mod common;
use common::*;
use serde_json::Value;
use std::fs;

#[test]
fn version() {
    for flag in ["--version", "-v"] {
        let env = Env::new();
        let out = env.rt(&[flag]);
        out.success();
        let first = out.stdout.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("{} version ", runtime_name())),
            "{out:#?}"
        );
        assert!(
            out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
            "{out:#?}"
        );
    }
}

#[test]
fn help_succeeds() {
    let env = Env::new();
    let out = env.rt(&["--help"]);
    out.success();
    for cmd in [
        "create", "start", "state", "kill", "delete", "run", "list", "spec",
    ] {
        assert!(out.stdout.contains(cmd), "help lists {cmd}: {out:#?}");
    }
}

#[test]
fn unknown_flag_exits_1() {
    let env = Env::new();
    for args in [
        vec!["--bogus-flag", "list"],
        vec!["list", "--bogus"],
        vec!["create", "--bogus", "x"],
    ] {
        let out = env.rt(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        out.stderr_has("bogus");
    }
}

#[test]
fn unknown_subcommand_fails() {
    let env = Env::new();
    let out = env.rt(&["nosuchcmd"]);
    // runc exits 3 here ("No help topic for 'nosuchcmd'").
    assert_ne!(out.code, 0, "{out:#?}");
    out.stderr_has("nosuchcmd");
}

#[test]
fn wrong_argument_count() {
    let env = Env::new();
    for args in [vec!["create"], vec!["start"], vec!["state"], vec!["delete"]] {
        let out = env.rt(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        // runc: `"create" requires exactly 1 argument(s)`
        out.stderr_has("requires exactly 1 argument");
    }
    let out = env.rt(&["state", "a", "b"]);
    assert_eq!(out.code, 1, "{out:#?}");
    let out = env.rt(&["kill"]);
    assert_eq!(out.code, 1, "{out:#?}");
}

#[test]
fn spec_matches_runc_default_except_hostname() {
    let env = Env::new();
    let dir = env.tempdir("spec");
    env.rt(&["spec", "--bundle", dir.to_str().unwrap()])
        .success();
    let text = fs::read_to_string(dir.join("config.json")).expect("spec writes config.json");
    let mut got: Value = serde_json::from_str(&text).unwrap();
    let mut want = default_spec();
    // On a cgroup v2 host runc's `spec` adds a cgroup namespace after the others.
    if pure_cgroup2_host() {
        want["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "cgroup"}));
    }
    assert!(got["hostname"].is_string(), "{got:#}");
    got["hostname"] = Value::Null;
    want["hostname"] = Value::Null;
    assert_eq!(got, want);
    // runc writes tab-indented JSON.
    assert!(text.contains("\n\t\"ociVersion\""), "{text}");

    // It refuses to overwrite.
    let out = env.rt(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:#?}");
    // runc: "File config.json exists. Remove it first"
    out.stderr_has("config.json exists. Remove it first");
    assert_eq!(fs::read_to_string(dir.join("config.json")).unwrap(), text);
}

#[test]
fn spec_defaults_to_the_current_directory() {
    let env = Env::new();
    let dir = env.tempdir("spec");
    env.rt_opts(
        &["spec"],
        Opts {
            cwd: Some(&dir),
            ..Default::default()
        },
    )
    .success();
    assert!(dir.join("config.json").is_file());
}

#[test]
fn mkbundle_script() {
    let env = Env::new();
    let dir = env.base.join("mk");
    let script = repo_dir().join("hack/mkbundle.sh");
    let rt = runtime();
    let cg = format!("/{}mk", env.name);
    let mk = || {
        let mut cmd = std::process::Command::new(&script);
        cmd.arg(&dir)
            .args([
                "sh",
                "-c",
                "echo mk-ok; id -un; ls /home; grep extra /etc/group",
            ])
            .env("TONG", &rt)
            .env("CGROUPS_PATH", &cg);
        cmd.output().unwrap()
    };
    let out = mk();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "silent on success: {out:?}"
    );
    // Idempotent.
    let out = mk();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["terminal"], false);
    assert_eq!(cfg["linux"]["cgroupsPath"], cg.as_str());
    assert!(dir.join("rootfs/bin/busybox").is_file());
    assert!(dir.join("rootfs/bin/sh").is_symlink());

    let id = env.id("mk");
    let out = env.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    out.success();
    assert_eq!(
        out.lines(),
        ["mk-ok", "root", "tester", "extra:x:2000:tester"]
    );
    env.assert_nothing_left(&id);
}

/// CVE-2019-5736: a container must not be able to overwrite the host's
/// runtime binary through /proc/self/exe.
#[test]
fn runtime_binary_is_not_exposed_to_the_container() {
    let env = Env::new();
    let rt = fs::canonicalize(runtime()).unwrap();
    let before = sha256_file(&rt);

    // While created, the container's init is the runtime itself; its exe
    // must be a sealed copy, not the host binary, and not writable.
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, rt, "container init runs the host binary directly");
    let w = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    if let Ok(mut f) = w {
        use std::io::Write;
        assert!(f.write_all(b"x").is_err(), "init's exe is writable");
    }
    env.rt(&["delete", "--force", &id]).success();

    // The classic attack: args[0] is a script whose interpreter is
    // /proc/self/exe, making the runtime re-exec itself inside the
    // container, where the process then tries to write that exe.
    let b = env.bundle_with(&["/evil"], |c| c["root"]["readonly"] = false.into());
    b.put_file("evil", "#!/proc/self/exe\n", 0o755);
    let id = env.id("evil");
    let _ = env.run(&b, &id);
    let b = env.bundle_with(
        &[
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do echo x 2>/dev/null > $p/exe && echo WROTE $p; done; true",
        ],
        |_| {},
    );
    let id2 = env.id("evil2");
    let out = env.run(&b, &id2);
    assert!(!out.stdout.contains("WROTE"), "{out:#?}");
    assert_eq!(sha256_file(&rt), before, "the runtime binary was modified");
    env.assert_nothing_left(&id);
    env.assert_nothing_left(&id2);
}
