//! Lifecycle rules engines rely on, as runc 1.1.5 keeps them: `kill --all` and `delete` of a
//! stopped container whose cgroup still holds processes (containerd's pods sharing a pid
//! namespace), sub-cgroups a container made, a state directory a killed `create` left
//! without state.json, `start` returning only once the process runs, `kill ID 0`, and
//! cgroups that exist before the container (frozen, or holding processes).
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every namespace of the default config except `pid`.
fn no_pid_namespace(c: &mut Value) {
    set_namespaces(c, &["network", "ipc", "uts", "mount"]);
}

/// The bundle's cgroup in every hierarchy the host mounts.
fn cgroups_of(env: &Env, b: &Bundle) -> Vec<PathBuf> {
    let name = b.cgroup.trim_start_matches('/');
    env.cgroup_dirs()
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n == name))
        .collect()
}

fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls until `f` holds, or panics with `what`.
#[track_caller]
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < STATE_DEADLINE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container without a pid namespace whose init exits at once, leaving a `sleep` behind in
/// its cgroup: what containerd's shim sees when a pod member sharing the pod's pid namespace
/// exits. Returns the leftover's pid.
fn stopped_with_leftover(env: &Env, b: &Bundle, id: &str) -> i32 {
    env.rt(&["run", "-d", "--bundle", b.path(), id]).success();
    env.wait_status(id, "stopped");
    let dirs = cgroups_of(env, b);
    assert!(!dirs.is_empty(), "no cgroup for {}", b.cgroup);
    let mut left = Vec::new();
    wait_until("the leftover sleep in the cgroup", || {
        left = procs(&dirs[0]);
        !left.is_empty()
    });
    assert_eq!(left.len(), 1, "{left:?}");
    left[0]
}

#[test]
fn kill_all_on_a_stopped_container_signals_what_its_cgroup_still_holds() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "sleep 1000 & exit 0"], no_pid_namespace);
    let id = env.id("c");
    let left = stopped_with_leftover(&env, &b, &id);
    // The init is gone: a plain kill has nobody to signal.
    let out = env.rt(&["kill", &id, "KILL"]);
    out.failure();
    out.stderr_has("container not running");
    assert!(
        pid_alive(left as i64),
        "the control: the leftover still runs"
    );
    // --all reaches the cgroup.
    env.rt(&["kill", "--all", &id, "KILL"]).success();
    wait_pid_gone(left as i64);
    assert_eq!(env.status(&id), "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn delete_of_a_stopped_container_kills_what_its_cgroup_still_holds() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "sleep 1000 & exit 0"], no_pid_namespace);
    let id = env.id("c");
    let left = stopped_with_leftover(&env, &b, &id);
    let out = env.rt(&["delete", &id]);
    out.success();
    // runc warns while it retries the rmdir; tong kills first and says nothing.
    if !is_runc() {
        assert!(out.stderr.is_empty(), "a clean delete: {out:#?}");
    }
    wait_pid_gone(left as i64);
    env.assert_nothing_left(&id);
}

#[test]
fn kill_signal_zero_checks_the_init_is_alive() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    env.rt(&["kill", &id, "0"]).success();
    // Signal 0 delivered nothing.
    assert_eq!(env.status(&id), "running");
    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    let out = env.rt(&["kill", &id, "0"]);
    out.failure();
    out.stderr_has("container not running");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

/// The container makes a sub-cgroup in each hierarchy and moves a process there (here the
/// test does it for it, from the host, as a container with a writable cgroupfs would).
fn with_sub_cgroups(env: &Env, b: &Bundle, id: &str) -> (Vec<PathBuf>, i32) {
    env.rt(&["run", "-d", "--bundle", b.path(), id]).success();
    env.wait_status(id, "running");
    let out = env.rt(&["exec", "-d", id, "sleep", "999"]);
    out.success();
    let dirs = cgroups_of(env, b);
    let mut sleeper = 0;
    wait_until("the exec'd sleep", || {
        sleeper = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|p| {
                fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x00999\x00")
                    && procs(&dirs[0]).contains(p)
            })
            .unwrap_or(0);
        sleeper != 0
    });
    let mut subs = Vec::new();
    for d in &dirs {
        let sub = d.join("inner").join("deeper");
        fs::create_dir_all(&sub).unwrap();
        // A new v1 cpuset cgroup needs its cpus and mems before a process may join.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            for level in [d.join("inner"), sub.clone()] {
                if level.join(f).exists() {
                    let v = fs::read_to_string(d.join(f)).unwrap();
                    fs::write(level.join(f), v.trim()).unwrap();
                }
            }
        }
        fs::write(sub.join("cgroup.procs"), sleeper.to_string())
            .unwrap_or_else(|e| panic!("moving {sleeper} into {}: {e}", sub.display()));
        subs.push(sub);
    }
    assert!(
        procs(&subs[0]).contains(&sleeper),
        "the control: the sleep is in {}",
        subs[0].display()
    );
    (subs, sleeper)
}

#[test]
fn delete_force_removes_the_sub_cgroups_a_container_made() {
    for (tag, edit) in [
        ("own pid namespace", (|_: &mut Value| {}) as fn(&mut Value)),
        ("host pid namespace", no_pid_namespace),
    ] {
        let env = Env::new();
        let b = env.bundle_with(&["sleep", "1000"], edit);
        let id = env.id("c");
        let (subs, sleeper) = with_sub_cgroups(&env, &b, &id);
        let out = env.rt(&["delete", "--force", &id]);
        out.success();
        if !is_runc() {
            assert!(out.stderr.is_empty(), "{tag}: {out:#?}");
        }
        wait_pid_gone(sleeper as i64);
        for s in &subs {
            assert!(!s.exists(), "{tag}: {} left", s.display());
        }
        env.assert_nothing_left(&id);
    }
}

#[test]
fn delete_removes_a_state_dir_without_state_json() {
    let env = Env::new();
    for force in [false, true] {
        let id = env.id(if force { "f" } else { "nf" });
        // What a create SIGKILLed before it wrote its state leaves.
        fs::create_dir_all(env.state_dir(&id)).unwrap();
        let out = if force {
            env.rt(&["delete", "--force", &id])
        } else {
            env.rt(&["delete", &id])
        };
        if force {
            out.success();
        } else {
            out.failure();
            out.stderr_has("does not exist");
        }
        assert!(!env.state_dir(&id).exists(), "force={force}: dir left");
        // The id can be used again.
        let b = env.bundle(&["true"]);
        env.rt(&["run", "--bundle", b.path(), &id]).success();
        env.assert_nothing_left(&id);
    }
}

#[test]
fn start_returns_once_the_process_runs() {
    let env = Env::new();
    // The startContainer hook runs between the init's release and its execve: a slow one
    // shows whether start waits for the execve.
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.3"]}]});
    });
    let id = env.id("c");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let before = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_ne!(before, b"sleep\x001000\x00", "the control: not exec'd yet");
    env.rt(&["start", &id]).success();
    let after = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&after),
        "sleep\x001000\x00",
        "start returned before the container's process ran"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn start_reports_an_init_that_fails_after_its_release() {
    // runc 1.1.5's start reads the FIFO to its end but cannot tell a failure from an execve.
    if is_runc() {
        return;
    }
    let env = Env::new();
    // A failing startContainer hook.
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    });
    let id = env.id("hook");
    env.create(&b, &id);
    let out = env.rt(&["start", &id]);
    out.failure();
    out.stderr_has("startContainer");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);

    // An execve that fails: a script whose interpreter does not exist.
    let b = env.bundle(&["/bin/broken"]);
    b.put_file("/bin/broken", "#!/no/such/interpreter\n", 0o755);
    let id = env.id("exec");
    env.create(&b, &id);
    let out = env.rt(&["start", &id]);
    out.failure();
    out.stderr_has("/bin/broken");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
    // The control: a process that runs and fails by itself is a successful start.
    let b = env.bundle(&["false"]);
    let id = env.id("false");
    env.create(&b, &id);
    env.rt(&["start", &id]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
}

#[test]
fn a_frozen_cgroup_is_refused_and_a_busy_one_warned_about() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let name = b.cgroup.trim_start_matches('/');
    // cgroup v2's cgroup.freeze, or the v1 freezer.
    let (dir, file, frozen) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (Path::new("/sys/fs/cgroup").join(name), "cgroup.freeze", "1")
    } else {
        (
            Path::new("/sys/fs/cgroup/freezer").join(name),
            "freezer.state",
            "FROZEN",
        )
    };
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(file), frozen).unwrap();
    for cmd in ["run", "create"] {
        let id = env.id(cmd);
        let out = env.rt(&[cmd, "--bundle", b.path(), &id]);
        out.failure();
        out.stderr_has("container's cgroup unexpectedly frozen");
        assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
        assert!(!env.state_dir(&id).exists());
    }
    assert!(
        dir.exists(),
        "the cgroup tong did not make is left as it was"
    );
    fs::write(dir.join(file), if frozen == "1" { "0" } else { "THAWED" }).unwrap();
    fs::remove_dir(&dir).unwrap();

    // A cgroup that already holds a process: runc's warning, and the container runs.
    let mut host = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    // In the hierarchies runc (devices) and tong (pids, else memory) count processes in.
    let busy: Vec<PathBuf> = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        vec![Path::new("/sys/fs/cgroup").join(name)]
    } else {
        ["pids", "devices", "memory"]
            .iter()
            .map(|h| Path::new("/sys/fs/cgroup").join(h).join(name))
            .collect()
    };
    for d in &busy {
        fs::create_dir(d).unwrap();
        fs::write(d.join("cgroup.procs"), host.id().to_string()).unwrap();
    }
    let id = env.id("busy");
    let b2 = env.bundle_with(&["echo", "ran"], |c| {
        c["linux"]["cgroupsPath"] = json!(b.cgroup);
    });
    let out = env.rt(&["create", "--bundle", b2.path(), &id]);
    let _ = host.kill();
    let _ = host.wait();
    out.success();
    out.stderr_has("container's cgroup is not empty: 1 process(es) found");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

/// An init that fails after Go reports its cause every time, even when it exits with a
/// message of the parent's unread (the parent's receive then first sees ECONNRESET, ahead
/// of the report). A proc mount on a symlink fails in the init's mount work; many runs,
/// since whether the parent's message is still unread varies.
#[test]
fn an_init_failure_reaches_the_user_every_time() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let target = b.rootfs().join("proc");
    fs::remove_dir_all(&target).unwrap();
    std::os::unix::fs::symlink("/tmp", &target).unwrap();
    for round in 0..60 {
        let id = env.id("fail");
        let out = env.run(&b, &id);
        out.failure();
        assert!(
            out.stderr.contains("proc") && !out.stderr.contains("before reporting"),
            "round {round}: {out:#?}"
        );
        assert_eq!(out.stderr_lines().len(), 1, "round {round}: {out:#?}");
        env.assert_nothing_left(&id);
    }
}
