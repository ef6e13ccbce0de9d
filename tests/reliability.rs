//! Reliability (issue #9): the runtime killed at every step of create and delete
//! (`TONG_FAULT=<phase>`), an init killed behind the runtime's back, a hook that hangs, a
//! full or read-only state root, hostile ids and signals, and a negative control proving the
//! harness's leak audit (tests/common/mod.rs, run by every `Env` on drop) catches leaks.
//!
//! `TONG_FAULT` is tong's test-only fault injection: the process that reaches the named
//! phase SIGKILLs itself there (a container init exits 137 instead). runc has no such
//! thing, so those tests are skipped against it.
mod common;

use common::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tong::logging::phases;

/// A failure that is an error, not a crash: non-zero, no panic or abort, no signal death,
/// and something on stderr.
#[track_caller]
fn assert_clean_error(out: &Out) {
    assert_ne!(out.code, 0, "unexpected success: {out:#?}");
    // 101: Rust panic; 134: abort; 129..=159: killed by a signal (runc exits 255 on errors).
    assert!(
        out.code != 101 && !(128..160).contains(&out.code),
        "crash exit: {out:#?}"
    );
    assert!(!out.stderr.contains("panicked"), "panic: {out:#?}");
    assert!(!out.stderr_lines().is_empty(), "no error message: {out:#?}");
}

/// Like [`assert_clean_error`], and (tong only) exactly one error line.
#[track_caller]
fn assert_one_line_error(out: &Out) {
    assert_clean_error(out);
    if !is_runc() {
        assert_eq!(out.stderr_lines().len(), 1, "want one error line: {out:#?}");
    }
}

fn fault(phase: &str) -> Opts<'_> {
    Opts {
        envs: vec![("TONG_FAULT", phase)],
        ..Default::default()
    }
}

/// Fails the test now (rather than at Drop) if the leak audit finds anything.
#[track_caller]
fn assert_no_leaks(env: &Env) {
    let leaks = env.leak_audit_settled(Duration::from_secs(5));
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}

// ---- the runtime killed at every phase of create ------------------------------------------

/// `TONG_FAULT=<phase> create` dies there; `state` then says the container does not exist
/// or shows it created/stopped (never a broken or half-written state); `delete --force`
/// leaves nothing at all.
fn killed_create(phase: &str, init_phase: bool, with_hook: bool) {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        if with_hook {
            c["hooks"] = json!({ "createRuntime": [{ "path": "/bin/true" }] });
        }
    });
    let id = env.id("f");
    let out = env.rt_opts(&["create", "--bundle", b.path(), &id], fault(phase));
    if init_phase {
        // The init died (137); the runtime reports it and cleans up.
        assert_eq!(out.code, 1, "{phase}: {out:#?}");
        assert_eq!(out.stderr_lines().len(), 1, "{phase}: {out:#?}");
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
    } else {
        assert_eq!(
            out.code, 137,
            "{phase}: the runtime should have been SIGKILLed: {out:#?}"
        );
    }

    let st = env.rt(&["state", &id]);
    if st.ok() {
        let v: Value = serde_json::from_str(&st.stdout)
            .unwrap_or_else(|e| panic!("{phase}: state is not JSON ({e}): {st:#?}"));
        let status = v["status"].as_str().unwrap_or("");
        assert!(
            ["created", "stopped", "creating"].contains(&status),
            "{phase}: a half-created container shows {v:#}"
        );
        if status == "created" {
            assert!(
                pid_alive(v["pid"].as_i64().unwrap_or(0)),
                "{phase}: created without a live init: {v:#}"
            );
        }
        // list agrees and parses.
        let l = env.rt(&["list", "--format", "json"]);
        l.success();
        let lv: Value =
            serde_json::from_str(l.stdout.trim()).unwrap_or_else(|e| panic!("list {e}: {l:#?}"));
        assert!(
            lv.as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == id.as_str()),
            "{lv:#}"
        );
    } else {
        assert_eq!(st.code, 1, "{phase}: {st:#?}");
        st.stderr_has("does not exist");
    }

    let del = env.rt(&["delete", "--force", &id]);
    del.success();
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(&id);
    assert_no_leaks(&env);
}

#[test]
fn killed_at_config_loaded() {
    killed_create(phases::CONFIG_LOADED, false, false);
}

#[test]
fn killed_after_state_dir_written() {
    killed_create(phases::STATE_DIR_WRITTEN, false, false);
}

#[test]
fn killed_after_cgroups_created() {
    killed_create(phases::CGROUPS_CREATED, false, false);
}

#[test]
fn killed_while_launching() {
    killed_create(phases::LAUNCHING, false, false);
}

#[test]
fn killed_after_clone() {
    killed_create(phases::CLONED, false, false);
}

#[test]
fn killed_after_cgroups_joined() {
    killed_create(phases::CGROUPS_JOINED, false, false);
}

#[test]
fn init_killed_at_go() {
    killed_create(phases::INIT_GO, true, false);
}

#[test]
fn init_killed_after_namespaces() {
    killed_create(phases::INIT_NAMESPACES_CONFIGURED, true, false);
}

#[test]
fn init_killed_after_mounts() {
    killed_create(phases::INIT_MOUNTS_DONE, true, false);
}

#[test]
fn killed_after_create_runtime_hooks() {
    killed_create(phases::CREATERUNTIME_HOOKS_RUN, false, true);
}

#[test]
fn init_killed_after_pivot() {
    killed_create(phases::INIT_PIVOTED_AND_FINALISED, true, false);
}

#[test]
fn killed_when_init_ready() {
    killed_create(phases::INIT_READY, false, false);
}

/// Killed at "init ready" (the init is set up and blocked before exec, its state not yet
/// recorded as created), the container must not read as `stopped` while its init is alive
/// in its cgroup: `created` with that pid, or stopped only once no process is left.
#[test]
fn killed_when_init_ready_state_tells_the_truth() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("f");
    let out = env.rt_opts(&["create", "--bundle", b.path(), &id], fault("init ready"));
    assert_eq!(out.code, 137, "{out:#?}");
    let st = env.state(&id);
    let live = env.processes_inside();
    if st["status"] == "stopped" {
        // The init learns that its creator died from the sync channel's EOF and exits; give
        // it a moment (a deadline, not a timing assertion).
        let start = std::time::Instant::now();
        let mut live = live;
        while !live.is_empty() && start.elapsed() < STATE_DEADLINE {
            std::thread::sleep(std::time::Duration::from_millis(20));
            live = env.processes_inside();
        }
        assert!(
            live.is_empty(),
            "state says stopped but the container's processes {live:?} are alive: {st:#}"
        );
    } else {
        assert_eq!(st["status"], "created", "{st:#}");
        assert!(
            live.contains(&(st["pid"].as_i64().unwrap() as u32)),
            "{st:#} vs {live:?}"
        );
    }
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
    assert_no_leaks(&env);
}

/// The same phases with a createRuntime hook configured (the hook path changes where the
/// runtime waits), in one test to keep the suite short.
#[test]
fn killed_at_every_phase_with_hooks() {
    for (phase, init) in [
        (phases::CGROUPS_JOINED, false),
        (phases::INIT_MOUNTS_DONE, true),
        (phases::INIT_PIVOTED_AND_FINALISED, true),
        (phases::INIT_READY, false),
    ] {
        killed_create(phase, init, true);
    }
}

/// `run -d` killed at launch leaves a container that `delete --force` cleans.
#[test]
fn killed_run_detached_is_cleaned_by_force_delete() {
    if is_runc() {
        return;
    }
    let env = Env::new();
    for phase in [phases::CLONED, phases::INIT_READY] {
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id(&format!("r{}", phase.len()));
        let out = env.rt_opts(&["run", "-d", "--bundle", b.path(), &id], fault(phase));
        assert_eq!(out.code, 137, "{phase}: {out:#?}");
        env.rt(&["delete", "--force", &id]).success();
        env.assert_nothing_left(&id);
    }
    assert_no_leaks(&env);
}

// ---- the runtime killed midway through delete ---------------------------------------------

/// `TONG_FAULT=<phase> delete` dies there; a second `delete --force` finishes the job.
fn killed_delete(phase: &str, force: bool) {
    if is_runc() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("d");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let pid = env.wait_status(&id, "running")["pid"].as_i64().unwrap();
    if !force {
        env.rt(&["kill", &id, "KILL"]).success();
        env.wait_status(&id, "stopped");
    }
    let args: Vec<&str> = if force {
        vec!["delete", "--force", &id]
    } else {
        vec!["delete", &id]
    };
    let out = env.rt_opts(&args, fault(phase));
    assert_eq!(out.code, 137, "{phase}: {out:#?}");

    // Whatever is left reads as stopped (or is already gone); killed before it killed
    // anything (`destroy`), a forced delete leaves the container running, intact.
    let st = env.rt(&["state", &id]);
    if st.ok() {
        let v: Value = serde_json::from_str(&st.stdout).unwrap_or_else(|e| panic!("{e}: {st:#?}"));
        if phase == phases::DESTROY && force {
            assert_eq!(v["status"], "running", "{phase}: {v:#}");
            assert!(pid_alive(pid));
        } else {
            assert_eq!(v["status"], "stopped", "{phase}: {v:#}");
        }
    } else {
        st.stderr_has("does not exist");
    }
    env.rt(&["delete", "--force", &id]).success();
    assert!(!pid_alive(pid));
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(&id);
    assert_no_leaks(&env);
}

#[test]
fn force_delete_killed_at_destroy() {
    killed_delete(phases::DESTROY, true);
}

#[test]
fn force_delete_killed_when_processes_gone() {
    killed_delete(phases::PROCESSES_GONE, true);
}

#[test]
fn force_delete_killed_after_cgroups_removed() {
    killed_delete(phases::CGROUPS_REMOVED, true);
}

#[test]
fn delete_of_stopped_killed_midway() {
    for phase in [
        phases::DESTROY,
        phases::PROCESSES_GONE,
        phases::CGROUPS_REMOVED,
    ] {
        killed_delete(phase, false);
    }
}

// ---- the init killed from outside ---------------------------------------------------------

/// Plain `delete` (no --force) of a container whose init was SIGKILLed from outside, both
/// after `start` and while still `created` (blocked before exec).
#[test]
fn delete_after_init_killed_from_outside() {
    let env = Env::new();
    for started in [true, false] {
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id(if started { "s" } else { "c" });
        env.create(&b, &id);
        if started {
            env.rt(&["start", &id]).success();
            env.wait_status(&id, "running");
        }
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        assert!(pid > 0);
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        wait_pid_gone(pid);
        env.wait_status(&id, "stopped");
        env.rt(&["delete", &id]).success();
        env.assert_nothing_left(&id);
    }
    assert_no_leaks(&env);
}

// ---- a hook that hangs ----------------------------------------------------------------------

/// A hook that never returns is killed at its timeout: create fails with an error naming
/// the timeout, the hook process itself is gone (not merely abandoned), nothing is left.
/// (tests/hooks.rs checks the error; this checks the hook's fate.)
#[test]
fn hanging_hook_is_killed_at_its_timeout() {
    let env = Env::new();
    // A copy of sleep under the env's scratch dir, so the hook's command line names the env
    // and the leak audit would see it too.
    let dir = env.tempdir("hook");
    let sleeper = dir.join("hook-sleep");
    fs::copy("/bin/sleep", &sleeper).unwrap();
    let pidfile = dir.join("pid");
    for kind in ["createRuntime", "prestart"] {
        let _ = fs::remove_file(&pidfile);
        let b = env.bundle_with(&["sleep", "1000"], |c| {
            c["hooks"] = json!({ kind: [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("echo $$ > {}; exec {} 1000", pidfile.display(), sleeper.display())],
                "timeout": 1
            }] });
        });
        let id = env.id(&format!("h{kind}"));
        let out = env.rt(&["create", "--bundle", b.path(), &id]);
        assert_clean_error(&out);
        assert_eq!(out.code, 1, "{out:#?}");
        out.stderr_has("timeout");
        let hp: i64 = fs::read_to_string(&pidfile)
            .unwrap_or_else(|e| panic!("the {kind} hook never ran ({e}): {out:#?}"))
            .trim()
            .parse()
            .unwrap();
        // Generous deadline: the runtime must have killed it, not left it to run 1000s.
        wait_pid_gone(hp);
        env.assert_nothing_left(&id);
    }
    assert_no_leaks(&env);
}

// ---- full and read-only state roots --------------------------------------------------------

/// A tmpfs mounted for the test; unmounted (lazily) on drop.
struct TmpfsGuard(PathBuf);

impl TmpfsGuard {
    fn mount(dir: &Path, opts: &str) -> TmpfsGuard {
        fs::create_dir_all(dir).unwrap();
        host(
            "/bin/mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                opts,
                "tong-test-tmpfs",
                dir.to_str().unwrap(),
            ],
        )
        .success();
        TmpfsGuard(dir.to_path_buf())
    }
}

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Entries of `dir` other than `keep` (and tong's seccomp cache).
fn entries_besides(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()) && n != "seccomp@cache")
        .collect()
}

/// create and run with `root` as --root fail with a clear error and leave no state dir,
/// cgroup or process.
fn refused_root(env: &Env, root: &Path, keep: &[&str]) {
    for cmd in ["create", "run"] {
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id(cmd);
        let mut args = vec![cmd, "--bundle", b.path(), &id];
        if cmd == "run" {
            args.insert(1, "-d");
        }
        let out = env.rt_with_root(root, &args, &[]);
        assert_one_line_error(&out);
        if !is_runc() {
            assert_eq!(out.code, 1, "{out:#?}");
            out.stderr_has(root.to_str().unwrap());
        }
        assert!(
            entries_besides(root, keep).is_empty(),
            "partial state: {:?}",
            entries_besides(root, keep)
        );
        assert!(
            env.cgroup_dirs().is_empty(),
            "cgroups left: {:?}",
            env.cgroup_dirs()
        );
        assert!(
            env.processes_inside().is_empty(),
            "processes left: {:?}",
            env.processes_inside()
        );
        // Nothing the runtime can see either.
        let st = env.rt_with_root(root, &["state", &id], &[]);
        assert_clean_error(&st);
    }
}

#[test]
fn full_state_root_fails_cleanly() {
    let env = Env::new();
    let root = env.base.join("fullroot");
    let _m = TmpfsGuard::mount(&root, "size=64k,mode=0700");
    // Fill it: write until ENOSPC.
    {
        use std::io::Write;
        let mut f = fs::File::create(root.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        let mut n = 0;
        while f.write_all(&chunk).is_ok() {
            n += 1;
            assert!(n < 10_000, "the 64k tmpfs never filled up");
        }
        let _ = f.sync_all();
    }
    refused_root(&env, &root, &["filler"]);
}

#[test]
fn full_inode_state_root_fails_cleanly() {
    let env = Env::new();
    let root = env.base.join("noinoderoot");
    let _m = TmpfsGuard::mount(&root, "size=1m,nr_inodes=2,mode=0700");
    // The root dir takes one inode; use up the rest.
    let mut k = 0;
    while fs::write(root.join(format!("f{k}")), b"").is_ok() {
        k += 1;
        assert!(k < 100);
    }
    let keep: Vec<String> = (0..k).map(|i| format!("f{i}")).collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    refused_root(&env, &root, &keep);
}

#[test]
fn read_only_state_root_fails_cleanly() {
    let env = Env::new();
    let root = env.base.join("roroot");
    let _m = TmpfsGuard::mount(&root, "size=1m,mode=0700");
    host("/bin/mount", &["-o", "remount,ro", root.to_str().unwrap()]).success();
    refused_root(&env, &root, &[]);
    // The read-only root still answers the read-only commands.
    let l = env.rt_with_root(&root, &["list", "--format", "json"], &[]);
    l.success();
}

// ---- hostile arguments ------------------------------------------------------------------------

/// Ids far beyond NAME_MAX: a clear error, no state, no cgroup, no crash.
#[test]
fn very_long_ids() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    for len in [1024, 1025] {
        let id = "a".repeat(len);
        for args in [
            vec!["create", "--bundle", b.path(), &id],
            vec!["run", "-d", "--bundle", b.path(), &id],
        ] {
            let out = env.rt(&args);
            assert_one_line_error(&out);
            assert!(env.cgroup_dirs().is_empty(), "{:?}", env.cgroup_dirs());
            assert!(env.processes_inside().is_empty());
            if env.root.exists() {
                assert!(
                    entries_besides(&env.root, &[]).is_empty(),
                    "{:?}",
                    entries_besides(&env.root, &[])
                );
            }
        }
        for args in [
            vec!["state", &id],
            vec!["start", &id],
            vec!["kill", &id, "KILL"],
            vec!["delete", &id],
            vec!["pause", &id],
            vec!["ps", &id],
        ] {
            let out = env.rt(&args);
            assert_one_line_error(&out);
        }
        // --force of something that cannot exist is either silent success or a clean error.
        let out = env.rt(&["delete", "--force", &id]);
        if !out.ok() {
            assert_one_line_error(&out);
        }
    }
    assert_no_leaks(&env);
}

/// Ids with bytes that are not UTF-8: refused cleanly, never turned into a state dir.
#[test]
fn non_utf8_ids() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    for raw in [&b"ab\xffcd"[..], b"\xc3\x28", b"\x80", b"ok\xfe\xfe"] {
        let id = OsStr::from_bytes(raw);
        let bundle = OsStr::new(b.path());
        for args in [
            vec![OsStr::new("create"), OsStr::new("--bundle"), bundle, id],
            vec![
                OsStr::new("run"),
                OsStr::new("-d"),
                OsStr::new("--bundle"),
                bundle,
                id,
            ],
            vec![OsStr::new("state"), id],
            vec![OsStr::new("kill"), id, OsStr::new("KILL")],
            vec![OsStr::new("delete"), id],
            vec![OsStr::new("exec"), id, OsStr::new("true")],
        ] {
            let out = env.rt_os(&args);
            assert_one_line_error(&out);
        }
        assert!(env.cgroup_dirs().is_empty(), "{:?}", env.cgroup_dirs());
        assert!(env.processes_inside().is_empty());
        if env.root.exists() {
            assert!(
                entries_besides(&env.root, &[]).is_empty(),
                "{:?}",
                entries_besides(&env.root, &[])
            );
        }
    }
    // A non-UTF-8 signal and bundle path too.
    let id = env.id("c");
    env.create(&b, &id);
    let out = env.rt_os(&[
        OsStr::new("kill"),
        OsStr::new(&id),
        OsStr::from_bytes(b"SIG\xff"),
    ]);
    assert_one_line_error(&out);
    assert_eq!(env.status(&id), "created");
    let out = env.rt_os(&[
        OsStr::new("create"),
        OsStr::new("--bundle"),
        OsStr::from_bytes(b"/tmp/no\xffbundle"),
        OsStr::new(&env.id("x")),
    ]);
    assert_one_line_error(&out);
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
    assert_no_leaks(&env);
}

/// Bad signals to `kill`: one clear error line each, and the container is untouched.
#[test]
fn bad_signals() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let st = env.wait_status(&id, "running");
    let pid = st["pid"].as_i64().unwrap();
    let mut bad = vec![
        "SIG",
        "SIGFOO",
        "FOO",
        "99",
        "65",
        "-9",
        "-1",
        "9999999999999999999999",
        "SIGKILLX",
        "1.5",
        " 9",
    ];
    // Signal 0 is a liveness probe (runc's and tong's `kill ID 0`, tests/semantics.rs).
    // runc 1.1 treats "" as the default SIGTERM; tong refuses it.
    if !is_runc() {
        bad.push("");
    }
    for sig in bad {
        let out = env.rt(&["kill", &id, sig]);
        assert_one_line_error(&out);
        assert!(pid_alive(pid), "`kill {sig}` killed the container");
        assert_eq!(env.status(&id), "running", "after `kill {sig}`");
    }
    // Sanity: the good spellings still work.
    for sig in ["CONT", "SIGCONT", "18"] {
        env.rt(&["kill", &id, sig]).success();
    }
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
    assert_no_leaks(&env);
}

// ---- the leak audit's negative control ------------------------------------------------------

/// The audit sees a container the runtime lost track of (its state dir removed by hand):
/// its process (reparented to the test process, a child subreaper), its cgroups; and an fd
/// and a mount the test leaves. Cleaned up by hand afterwards, after which the audit is
/// clean again.
#[test]
fn leak_audit_reports_what_is_left() {
    let env = Env::new();
    assert!(env.leak_audit().is_empty(), "{:?}", env.leak_audit());
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("leak");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let pid = env.wait_status(&id, "running")["pid"].as_i64().unwrap();
    // The runtime has exited; its orphan came back to us, not to pid 1.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "PPid"),
        Some(std::process::id().to_string().as_str()),
        "the container init was not reparented to the subreaper"
    );
    let cgroups = env.cgroup_dirs();
    assert!(!cgroups.is_empty());
    // Hide the container from the runtime.
    fs::remove_dir_all(env.state_dir(&id)).unwrap();
    assert!(env.list_ids().is_empty());
    let fd = fs::File::open(b.config_path()).unwrap();
    let mnt = env.tempdir("mnt");
    let guard = TmpfsGuard::mount(&mnt, "size=4k");

    let leaks = env.leak_audit();
    let has = |needle: &str| leaks.iter().any(|l| l.contains(needle));
    assert!(
        has(&format!("process {pid} ")),
        "the init is not reported: {leaks:#?}"
    );
    for cg in &cgroups {
        assert!(
            has(&format!("cgroup dir {}", cg.display())),
            "{cg:?} not reported: {leaks:#?}"
        );
    }
    assert!(
        has(&format!("-> {}", b.config_path().display())),
        "the fd is not reported: {leaks:#?}"
    );
    assert!(
        has("mount ") && has(mnt.to_str().unwrap()),
        "the mount is not reported: {leaks:#?}"
    );
    // A leftover state file is reported too.
    fs::create_dir_all(env.root.join("junk")).unwrap();
    assert!(
        env.leak_audit()
            .iter()
            .any(|l| l.contains("state file") && l.contains("junk"))
    );
    // ... but tong's seccomp cache is not.
    fs::create_dir_all(env.root.join("seccomp@cache")).unwrap();
    fs::write(env.root.join("seccomp@cache").join("x"), "").unwrap();
    assert!(!env.leak_audit().iter().any(|l| l.contains("seccomp@cache")));

    // Clean up by hand.
    fs::remove_dir(env.root.join("junk")).unwrap();
    drop(guard);
    drop(fd);
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_pid_gone(pid);
    // The reaper collects the orphan: it does not stay a zombie of the test process.
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "the dead init was never reaped: {}",
            fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    for cg in cgroups {
        while cg.exists() {
            let _ = fs::remove_dir(&cg);
            assert!(start.elapsed() < STATE_DEADLINE, "cannot remove {cg:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_no_leaks(&env);
}

/// End to end: dropping an env that leaked fails the test (Drop panics, after cleaning up),
/// whatever the test itself asserted.
#[test]
fn leaking_env_fails_on_drop() {
    if audit_mode() != AuditMode::Fail {
        return;
    }
    let mut names = None;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let env = Env::new();
        names = Some((env.name.clone(), env.root.clone(), env.base.clone()));
        // A file, not a directory: `delete --force` removes a directory without state.json
        // itself (runc does too), and the audit is about what nothing removes.
        fs::create_dir_all(&env.root).unwrap();
        fs::write(env.root.join("leftover"), "").unwrap();
        drop(env);
    }));
    let err = res.expect_err("the leak went unnoticed");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("leak audit") && msg.contains("leftover"),
        "{msg}"
    );
    // ... and it still cleaned up.
    let (name, root, base) = names.unwrap();
    assert!(!root.exists() && !base.exists());
    assert!(cgroup_dirs_with_prefix(&name).is_empty());
}
