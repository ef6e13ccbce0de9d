//! `exec` into a running container: what the new process joins (namespaces,
//! root, cgroup), what runc's flags change (env, cwd, user, groups, caps,
//! no_new_privs, preserved fds), `--process` JSON as containerd passes it,
//! `--detach --pid-file`, exit statuses and refusals (stopped, unknown,
//! paused containers).
//!
//! Terminals (`--tty`, the console socket, the pty relay) are in
//! tests/terminal.rs.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A container running `sleep 1000`, started with `run -d`.
struct Sleeper {
    b: Bundle,
    id: String,
    /// The init's host pid.
    pid: i64,
}

fn sleeper_with(env: &Env, tag: &str, edit: impl FnOnce(&mut Value)) -> Sleeper {
    let b = env.bundle_with(&["sleep", "1000"], edit);
    let id = env.id(tag);
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let st = env.wait_status(&id, "running");
    let pid = st["pid"].as_i64().expect("running container has a pid");
    assert!(pid_alive(pid), "init {pid} not alive: {st:#}");
    Sleeper { b, id, pid }
}

fn sleeper(env: &Env) -> Sleeper {
    sleeper_with(env, "c", |_| {})
}

/// `exec [flags...] ID args...`
fn exec(env: &Env, flags: &[&str], id: &str, args: &[&str]) -> Out {
    let mut v = vec!["exec"];
    v.extend_from_slice(flags);
    v.push(id);
    v.extend_from_slice(args);
    env.rt(&v)
}

/// Force-deletes the container and checks nothing of it survived.
fn finish(env: &Env, s: &Sleeper) {
    env.rt(&["delete", "--force", &s.id]).success();
    env.assert_nothing_left(&s.id);
}

fn cap_mask(status: &str, key: &str) -> u64 {
    let v = status_field(status, key).unwrap_or_else(|| panic!("{key} missing in {status}"));
    u64::from_str_radix(v, 16).unwrap()
}

fn ns_of(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Polls until `p` exists; panics after STATE_DEADLINE.
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

const CAP_SYS_ADMIN: u64 = 1 << 21;
/// CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE: the default spec's set.
const DEFAULT_CAPS: u64 = (1 << 29) | (1 << 5) | (1 << 10);

// ---- what the exec'd process joins ------------------------------------------

#[test]
fn exec_sees_the_containers_hostname_and_namespaces() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["hostname"]);
    out.success();
    assert_eq!(out.stdout.trim(), s.b.hostname, "{out:#?}");

    let out = exec(
        &env,
        &[],
        &s.id,
        &[
            "sh",
            "-c",
            "for n in mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done",
        ],
    );
    out.success();
    let got = out.lines();
    let kinds = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
    assert_eq!(got.len(), kinds.len(), "{out:#?}");
    let init = s.pid.to_string();
    for (k, line) in kinds.iter().zip(&got) {
        assert_eq!(
            *line,
            ns_of(&init, k),
            "exec'd process is not in the init's {k} namespace"
        );
    }
    // The comparison means something: the container has its own namespaces.
    for k in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(
            ns_of(&init, k),
            ns_of("self", k),
            "container shares the host's {k} ns"
        );
    }
    finish(&env, &s);
}

#[test]
fn exec_sees_the_containers_pids() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["ps", "-o", "pid,comm"]);
    out.success();
    let rows: Vec<(u32, String)> = out.lines()[1..]
        .iter()
        .map(|l| {
            let mut f = l.split_whitespace();
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        rows.contains(&(1, "sleep".to_string())),
        "pid 1 must be the init: {out:#?}"
    );
    assert!(rows.iter().any(|(_, c)| c == "ps"), "{out:#?}");
    assert!(
        rows.len() <= 3,
        "only the container's few processes are visible: {out:#?}"
    );

    let out = exec(
        &env,
        &[],
        &s.id,
        &["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"],
    );
    out.success();
    let l = out.lines();
    let mypid: u32 = l[0].parse().unwrap();
    assert!(
        mypid > 1 && mypid < 100,
        "a pid of the container's namespace, not the host's: {out:#?}"
    );
    assert_eq!(l[1], "sleep 1000", "{out:#?}");
    finish(&env, &s);
}

#[test]
fn exec_sees_the_containers_root_and_mounts() {
    let env = Env::new();
    let s = sleeper(&env);
    // The runtime's own cwd is a host dir; the process must not see it.
    let host_cwd = env.tempdir("hostcwd");
    fs::write(host_cwd.join("host-only-file"), "x").unwrap();
    let out = env.rt_opts(
        &[
            "exec",
            &s.id,
            "sh",
            "-c",
            "pwd; ls /; cat /proc/self/mountinfo",
        ],
        Opts {
            cwd: Some(&host_cwd),
            ..Default::default()
        },
    );
    out.success();
    let l = out.lines();
    assert_eq!(
        l[0], "/",
        "cwd is the container's (process.cwd), not the runtime's: {out:#?}"
    );
    assert!(!out.stdout.contains("host-only-file"), "{out:#?}");
    let ms = parse_mountinfo(&out.stdout);
    let root = find_mount(&ms, "/");
    // `root` is the bind source inside its filesystem: the bundle's rootfs.
    let b_dir = s.b.dir.file_name().unwrap().to_string_lossy().into_owned();
    let base_dir = env.base.file_name().unwrap().to_string_lossy().into_owned();
    let want = format!("/{base_dir}/{b_dir}/rootfs");
    assert!(
        root.root.ends_with(&want),
        "/ is not the container's rootfs: {root:#?} (want ..{want})"
    );
    let proc_ = find_mount(&ms, "/proc");
    assert_eq!(proc_.fstype, "proc");
    assert!(ms.iter().any(|m| m.mount_point == "/dev/shm"), "{ms:#?}");
    // The host's mount table is not what the process sees.
    let host = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert_ne!(find_mount(&host, "/").root, root.root);
    // Same mount table as the init.
    let init_mi = fs::read_to_string(format!("/proc/{}/mountinfo", s.pid)).unwrap();
    let mp = |v: &[MountInfo]| v.iter().map(|m| m.mount_point.clone()).collect::<Vec<_>>();
    assert_eq!(
        mp(&ms),
        mp(&parse_mountinfo(&init_mi)),
        "exec sees the init's mounts"
    );
    finish(&env, &s);
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["cat", "/proc/self/cgroup"]);
    out.success();
    let mut got: Vec<&str> = out.lines();
    let init_cg = fs::read_to_string(format!("/proc/{}/cgroup", s.pid)).unwrap();
    let mut want: Vec<&str> = init_cg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exec'd process is not in the init's cgroups");
    // Every hierarchy mounted on the host (a v1 controller, name=systemd,
    // the cgroup2 `unified` one) holds the process at the cgroupsPath.
    let host = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut checked = 0;
    for l in &got {
        let ctl = l.split(':').nth(1).unwrap_or("");
        // A pure cgroup v2 host mounts its one hierarchy at /sys/fs/cgroup itself.
        let mp = if ctl.is_empty() && v2 {
            "/sys/fs/cgroup".to_string()
        } else {
            let dir = if ctl.is_empty() {
                "unified"
            } else {
                ctl.trim_start_matches("name=")
            };
            format!("/sys/fs/cgroup/{dir}")
        };
        if !host
            .iter()
            .any(|m| m.mount_point == mp && m.fstype.starts_with("cgroup"))
        {
            continue; // a hierarchy not mounted here (neither runtime can join it)
        }
        checked += 1;
        assert!(
            l.ends_with(&format!(":{}", s.b.cgroup)),
            "{l} is not the cgroupsPath {}: {out:#?}",
            s.b.cgroup
        );
    }
    if v2 {
        assert_eq!(checked, 1, "{out:#?}");
    } else {
        assert!(checked >= 2, "{out:#?}");
        assert!(got.iter().any(|l| l.contains(":memory:")), "{out:#?}");
    }
    finish(&env, &s);
}

#[test]
fn exec_inherits_the_containers_process_settings() {
    // One code path finalises the init and exec'd processes: caps, rlimits,
    // no_new_privs, env, user come from config.json unless overridden.
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(
        &env,
        &[],
        &s.id,
        &["sh", "-c", "cat /proc/self/status; ulimit -n; env"],
    );
    out.success();
    let init = fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap();
    for k in [
        "CapEff",
        "CapPrm",
        "CapBnd",
        "CapInh",
        "CapAmb",
        "NoNewPrivs",
        "Uid",
        "Gid",
        "Groups",
    ] {
        assert_eq!(
            status_field(&out.stdout, k),
            status_field(&init, k),
            "{k} differs from the init's"
        );
    }
    assert_eq!(cap_mask(&out.stdout, "CapEff"), DEFAULT_CAPS);
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), Some("1"));
    assert!(
        out.lines().contains(&"1024"),
        "RLIMIT_NOFILE from the config: {out:#?}"
    );
    assert!(
        out.lines().contains(&"TERM=xterm"),
        "the container's env: {out:#?}"
    );
    assert!(
        out.lines()
            .iter()
            .any(|l| l.starts_with("PATH=/usr/local/sbin:")),
        "{out:#?}"
    );
    finish(&env, &s);
}

// ---- exit statuses ------------------------------------------------------------

#[test]
fn exec_exit_code_passes_through() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out:#?}");
    let out = exec(&env, &[], &s.id, &["true"]);
    assert_eq!(out.code, 0, "{out:#?}");
    // The container is not affected by its exec'd processes' exits.
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
}

#[test]
fn exec_killed_by_a_signal_is_128_plus_n() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.code, 128 + 9, "{out:#?}");
    let out = exec(&env, &[], &s.id, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.code, 128 + 15, "{out:#?}");
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
}

#[test]
fn exec_foreground_forwards_signals() {
    let env = Env::new();
    let s = sleeper(&env);
    let sp = env.spawn(&[
        "exec",
        &s.id,
        "sh",
        "-c",
        "trap 'exit 42' TERM; touch /dev/shm/ready; while :; do sleep 0.1; done",
    ]);
    // /dev/shm of the container, seen through the init's root.
    wait_file(Path::new(&format!("/proc/{}/root/dev/shm/ready", s.pid)));
    unsafe { libc::kill(sp.pid() as i32, libc::SIGTERM) };
    let out = sp.wait();
    assert_eq!(
        out.code, 42,
        "SIGTERM to the runtime must reach the process: {out:#?}"
    );
    finish(&env, &s);
}

/// On a pure cgroup v2 host, where the container's cgroup refuses a process (the container
/// moved its init to a sub-cgroup and handed a domain controller down: EBUSY), `exec` joins
/// the init's cgroup, as runc does; an explicit `--cgroup /` is refused instead, in runc's
/// words, and does not hang.
#[test]
fn exec_falls_back_to_the_inits_cgroup_on_v2() {
    if !pure_cgroup2_host() {
        eprintln!("skipped: needs a pure cgroup v2 host (hack/vmtest)");
        return;
    }
    let env = Env::new();
    let s = sleeper(&env);
    let dir = Path::new("/sys/fs/cgroup").join(s.b.cgroup.trim_start_matches('/'));
    let init = env.state(&s.id)["pid"].as_i64().unwrap();
    fs::create_dir(dir.join("foobar")).unwrap();
    fs::write(dir.join("foobar/cgroup.procs"), init.to_string()).unwrap();
    fs::write(dir.join("cgroup.subtree_control"), "+memory").unwrap();
    let out = exec(&env, &[], &s.id, &["cat", "/proc/self/cgroup"]);
    out.success();
    assert!(
        out.stdout.contains(&format!("0::{}/foobar", s.b.cgroup)),
        "{out:#?}"
    );
    let out = exec(&env, &["--cgroup", "/"], &s.id, &["true"]);
    out.failure();
    // runc says "device or resource busy"; tong gives the C library's text for EBUSY.
    out.stderr_has("cgroup.procs: ");
    assert!(out.stderr.to_lowercase().contains("busy"), "{out:#?}");
    finish(&env, &s);
}

/// `exec --cgroup`: one bare path for every hierarchy, or `ctl[,ctl]:path` repeated; the
/// errors in runc's words (bats' exec --cgroup tests match on them).
#[test]
fn exec_cgroup_sub_cgroups() {
    let env = Env::new();
    let s = sleeper(&env);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let name = s.b.cgroup.trim_start_matches('/');
    let dir = |h: &str| match v2 {
        true => Path::new("/sys/fs/cgroup").join(name),
        false => Path::new("/sys/fs/cgroup").join(h).join(name),
    };
    let fails = |flags: &[&str], words: &str| {
        let out = exec(&env, flags, &s.id, &["true"]);
        out.failure();
        out.stderr_has(words);
    };
    fails(&["--cgroup", ".."], " .. is not a sub cgroup path");
    fails(
        &["--cgroup", "nonexistent"],
        "/nonexistent/cgroup.procs: no such file ",
    );
    if !is_runc() {
        fails(
            &["--cgroup", "a", "--cgroup", "b"],
            "missing <controller>: prefix",
        );
    }
    // Explicit top level.
    let out = exec(
        &env,
        &["--cgroup", "/"],
        &s.id,
        &["cat", "/proc/self/cgroup"],
    );
    out.success();
    assert!(
        out.lines()
            .iter()
            .all(|l| l.ends_with(&s.b.cgroup) || l.ends_with(":/")),
        "{out:#?}"
    );
    if v2 {
        fs::create_dir(dir("").join("sub")).unwrap();
        let out = exec(
            &env,
            &["--cgroup", "sub"],
            &s.id,
            &["cat", "/proc/self/cgroup"],
        );
        out.success();
        assert!(
            out.stdout.contains(&format!("0::{}/sub", s.b.cgroup)),
            "{out:#?}"
        );
        finish(&env, &s);
        return;
    }
    fails(&["--cgroup", "whaaat:/"], "unknown controller ");
    fails(
        &["--cgroup", "cpu:nonexistent"],
        "/nonexistent/cgroup.procs: no such file ",
    );
    for (h, sub) in [
        ("memory", "submem"),
        ("cpu", "subcpu"),
        ("cpuacct", "subcpu"),
    ] {
        fs::create_dir(dir(h).join(sub)).unwrap();
    }
    let out = exec(
        &env,
        &[
            "--cgroup",
            "memory:submem",
            "--cgroup",
            "cpu,cpuacct:subcpu",
        ],
        &s.id,
        &["cat", "/proc/self/cgroup"],
    );
    out.success();
    let line = |ctl: &str| {
        out.lines()
            .iter()
            .find(|l| l.split(':').nth(1) == Some(ctl))
            .map(|l| l.rsplit(':').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {ctl} line: {out:#?}"))
    };
    assert_eq!(line("memory"), format!("{}/submem", s.b.cgroup));
    assert_eq!(line("cpu"), format!("{}/subcpu", s.b.cgroup));
    assert_eq!(line("cpuacct"), format!("{}/subcpu", s.b.cgroup));
    // The control: a hierarchy not named stays at the container's cgroup.
    assert_eq!(line("pids"), s.b.cgroup);
    finish(&env, &s);
}

// ---- flags --------------------------------------------------------------------

#[test]
fn exec_env_flag() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(
        &env,
        &["-e", "FOO=bar", "-e", "BAZ=qux quux", "-e", "TERM=dumb"],
        &s.id,
        &[
            "sh",
            "-c",
            "echo \"$FOO|$BAZ|$TERM\"; env | grep -c '^TERM='",
        ],
    );
    out.success();
    let l = out.lines();
    assert_eq!(l[0], "bar|qux quux|dumb", "{out:#?}");
    assert_eq!(l[1], "1", "an overridden variable appears once: {out:#?}");
    // The long form (runc's flag parser refuses mixing -e and --env).
    let out = exec(
        &env,
        &["--env", "FOO=long"],
        &s.id,
        &["sh", "-c", "echo \"$FOO|$TERM\""],
    );
    out.success();
    assert_eq!(out.stdout.trim(), "long|xterm", "{out:#?}");
    finish(&env, &s);
}

/// `--env` overrides a variable the spec sets: one entry per name, the flag's value, seen
/// without a shell in between (a shell would tidy its own environment).
#[test]
fn exec_env_flag_overrides_the_specs_variable() {
    let env = Env::new();
    let s = sleeper_with(&env, "c", |c| {
        c["process"]["env"] = json!(["PATH=/bin", "TERM=xterm", "KEEP=1"]);
    });
    let out = exec(
        &env,
        &["--env", "TERM=dumb", "--env", "NEW=2"],
        &s.id,
        &["cat", "/proc/self/environ"],
    );
    out.success();
    let vars: Vec<&str> = out.stdout.split('\0').filter(|v| !v.is_empty()).collect();
    let term: Vec<&&str> = vars.iter().filter(|v| v.starts_with("TERM=")).collect();
    assert_eq!(term, [&"TERM=dumb"], "{vars:?}");
    assert!(
        vars.contains(&"KEEP=1") && vars.contains(&"NEW=2"),
        "{vars:?}"
    );
    finish(&env, &s);
}

/// `exec -p` with a process that has no `user`: uid 0 and gid 0, as runc; its cwd must be
/// absolute and its args non-empty.
#[test]
fn exec_process_json_without_user() {
    let env = Env::new();
    let s = sleeper(&env);
    let pj = env.base.join("process.json");
    let write = |v: Value| fs::write(&pj, serde_json::to_string(&v).unwrap()).unwrap();
    write(json!({"args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]}));
    let out = exec(&env, &["-p", pj.to_str().unwrap()], &s.id, &[]);
    out.success();
    assert_eq!(out.lines(), ["0", "0"], "{out:#?}");
    for (bad, word) in [
        (json!({"args": ["true"], "cwd": "tmp"}), "cwd"),
        (json!({"args": [], "cwd": "/"}), "args"),
    ] {
        write(bad);
        let out = exec(&env, &["-p", pj.to_str().unwrap()], &s.id, &[]);
        out.failure();
        if !is_runc() {
            out.stderr_has(word);
            assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
        }
    }
    finish(&env, &s);
}

#[test]
fn exec_cwd_flag() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &["--cwd", "/tmp"], &s.id, &["pwd"]);
    out.success();
    assert_eq!(out.stdout.trim(), "/tmp", "{out:#?}");
    finish(&env, &s);
}

#[test]
fn exec_user_and_additional_gids() {
    let env = Env::new();
    let s = sleeper(&env);
    let script = "id -u; id -g; grep '^Groups:' /proc/self/status; echo \"home=$HOME\"";
    let out = exec(&env, &["--user", "1000:1000"], &s.id, &["sh", "-c", script]);
    out.success();
    let l = out.lines();
    assert_eq!(l[0], "1000", "{out:#?}");
    assert_eq!(l[1], "1000", "{out:#?}");
    assert_eq!(
        l[2].split_whitespace().collect::<Vec<_>>(),
        ["Groups:"],
        "no supplementary groups: {out:#?}"
    );
    assert_eq!(l[3], "home=/home/tester", "HOME from /etc/passwd: {out:#?}");
    let out = exec(&env, &["-u", "1000:1000"], &s.id, &["id"]);
    out.success();
    assert!(
        out.stdout.starts_with("uid=1000(tester) gid=1000(tester)"),
        "{out:#?}"
    );

    let out = exec(
        &env,
        &["--user", "1000:1000", "--additional-gids", "2000"],
        &s.id,
        &["sh", "-c", script],
    );
    out.success();
    let l = out.lines();
    assert_eq!(&l[..2], ["1000", "1000"], "{out:#?}");
    assert_eq!(
        l[2].split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "2000"],
        "{out:#?}"
    );
    // uid only: gid stays the container's (0).
    let out = exec(&env, &["-u", "1000"], &s.id, &["sh", "-c", "id -u; id -g"]);
    out.success();
    assert_eq!(out.lines(), ["1000", "0"], "{out:#?}");
    finish(&env, &s);
}

#[test]
fn exec_cap_flag_adds_a_capability() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["cat", "/proc/self/status"]);
    out.success();
    assert_eq!(
        cap_mask(&out.stdout, "CapEff") & CAP_SYS_ADMIN,
        0,
        "not there without --cap"
    );
    let out = exec(
        &env,
        &["--cap", "CAP_SYS_ADMIN"],
        &s.id,
        &["cat", "/proc/self/status"],
    );
    out.success();
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            cap_mask(&out.stdout, k),
            DEFAULT_CAPS | CAP_SYS_ADMIN,
            "{k}: {}",
            out.stdout
        );
    }
    // And it is usable: mounting needs CAP_SYS_ADMIN.
    exec(&env, &[], &s.id, &["mount", "-t", "tmpfs", "t", "/tmp"]).failure();
    exec(
        &env,
        &["-c", "CAP_SYS_ADMIN"],
        &s.id,
        &["mount", "-t", "tmpfs", "t", "/tmp"],
    )
    .success();
    finish(&env, &s);
}

#[test]
fn exec_no_new_privs_flag() {
    let env = Env::new();
    let s = sleeper_with(&env, "c", |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    let out = exec(
        &env,
        &[],
        &s.id,
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    out.success();
    assert_eq!(
        status_field(&out.stdout, "NoNewPrivs"),
        Some("0"),
        "{out:#?}"
    );
    let out = exec(
        &env,
        &["--no-new-privs"],
        &s.id,
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    out.success();
    assert_eq!(
        status_field(&out.stdout, "NoNewPrivs"),
        Some("1"),
        "{out:#?}"
    );
    finish(&env, &s);
}

#[test]
fn arguments_after_the_id_belong_to_the_process() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &[], &s.id, &["ls", "-la", "/"]);
    out.success();
    assert!(
        out.lines()
            .iter()
            .any(|l| l.starts_with('d') && l.ends_with(" bin")),
        "{out:#?}"
    );
    assert!(
        out.lines().iter().any(|l| l.ends_with(" .")),
        "-a lists `.`: {out:#?}"
    );
    // Even words that are the runtime's own flags.
    let out = exec(
        &env,
        &[],
        &s.id,
        &[
            "sh",
            "-c",
            "echo \"$*\"",
            "sh",
            "--cwd",
            "/nonexistent",
            "-e",
            "X=1",
            "-d",
            "--help",
        ],
    );
    out.success();
    assert_eq!(
        out.stdout.trim(),
        "--cwd /nonexistent -e X=1 -d --help",
        "{out:#?}"
    );
    finish(&env, &s);
}

#[test]
fn exec_without_a_command_fails() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = env.rt(&["exec", &s.id]);
    out.failure();
    assert!(!out.stderr.trim().is_empty(), "{out:#?}");
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
}

// ---- --process ------------------------------------------------------------------

/// An OCI process as containerd writes it for `ctr task exec`.
fn process_json(args: &[&str]) -> Value {
    json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000, "additionalGids": [2000] },
        "args": args,
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FOO=from-process-json"
        ],
        "cwd": "/tmp",
        "capabilities": {
            "bounding": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"]
        },
        "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 512, "soft": 512 } ],
        "noNewPrivileges": true
    })
}

#[test]
fn exec_process_json() {
    let env = Env::new();
    let s = sleeper_with(&env, "c", |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    let pj = env.base.join("process.json");
    let p = process_json(&[
        "sh",
        "-c",
        "echo \"$FOO|${TERM-unset}\"; pwd; id -u; id -g; ulimit -n; cat /proc/self/status",
    ]);
    fs::write(&pj, serde_json::to_string(&p).unwrap()).unwrap();
    let out = exec(&env, &["--process", pj.to_str().unwrap()], &s.id, &[]);
    out.success();
    let l = out.lines();
    // The process replaces the config's: TERM=xterm is not merged in.
    assert_eq!(l[0], "from-process-json|unset", "{out:#?}");
    assert_eq!(&l[1..5], ["/tmp", "1000", "1000", "512"], "{out:#?}");
    assert_eq!(
        status_field(&out.stdout, "Groups"),
        Some("2000"),
        "{out:#?}"
    );
    assert_eq!(
        status_field(&out.stdout, "NoNewPrivs"),
        Some("1"),
        "{out:#?}"
    );
    assert_eq!(cap_mask(&out.stdout, "CapBnd"), (1 << 5) | 1, "{out:#?}");
    // A non-root user without ambient caps loses the effective set at execve.
    assert_eq!(cap_mask(&out.stdout, "CapEff"), 0, "{out:#?}");
    // -p is the short form.
    let out = exec(&env, &["-p", pj.to_str().unwrap()], &s.id, &[]);
    out.success();
    assert_eq!(out.lines()[0], "from-process-json|unset");
    finish(&env, &s);
}

#[test]
fn exec_process_json_detached_like_containerd() {
    // containerd: `runc exec --process F --detach --pid-file P ID`.
    let env = Env::new();
    let s = sleeper(&env);
    let pj = env.base.join("process.json");
    let p = process_json(&[
        "sh",
        "-c",
        "echo \"$FOO $(id -u) $(pwd)\" > /dev/shm/out; exec sleep 1000",
    ]);
    fs::write(&pj, serde_json::to_string(&p).unwrap()).unwrap();
    let pidfile = env.base.join("exec.pid");
    exec(
        &env,
        &[
            "--process",
            pj.to_str().unwrap(),
            "--detach",
            "--pid-file",
            pidfile.to_str().unwrap(),
        ],
        &s.id,
        &[],
    )
    .success();
    let pid: i64 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let out = Path::new(&format!("/proc/{}/root/dev/shm/out", s.pid)).to_path_buf();
    let start = Instant::now();
    while fs::read_to_string(&out)
        .map(|s| !s.ends_with('\n'))
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "process never wrote its output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "from-process-json 1000 /tmp\n"
    );
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "Uid")
            .unwrap()
            .split_whitespace()
            .next(),
        Some("1000")
    );
    finish(&env, &s);
}

// ---- --detach, --pid-file -------------------------------------------------------

#[test]
fn exec_detach_writes_a_pid_file_of_a_live_process_in_the_container() {
    let env = Env::new();
    let s = sleeper(&env);
    let pidfile = env.base.join("exec.pid");
    // Returns although `sleep 1000` keeps running (the harness deadline
    // would fail the test otherwise).
    let out = exec(
        &env,
        &["--detach", "--pid-file", pidfile.to_str().unwrap()],
        &s.id,
        &["sleep", "1000"],
    );
    out.success();
    let text = fs::read_to_string(&pidfile).expect("pid file written");
    let pid: i64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file holds {text:?}"));
    assert!(pid_alive(pid), "exec'd pid {pid} is not alive");
    assert_ne!(pid, s.pid, "a new process, not the init");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(),
        "sleep\u{0}1000\u{0}"
    );
    // Its root is the container's rootfs: readlink shows the path inside the
    // container's mount namespace ("/" after pivot_root), like the init's,
    // and the directory it names is the bundle's rootfs.
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        fs::read_link(format!("/proc/{}/root", s.pid)).unwrap(),
    );
    let theirs = fs::metadata(format!("/proc/{pid}/root/")).unwrap();
    let rootfs = fs::metadata(s.b.rootfs()).unwrap();
    assert_eq!(
        (theirs.dev(), theirs.ino()),
        (rootfs.dev(), rootfs.ino()),
        "the process's root is not the bundle's rootfs"
    );
    assert!(
        theirs.ino() != fs::metadata("/").unwrap().ino()
            || theirs.dev() != fs::metadata("/").unwrap().dev()
    );
    let p = pid.to_string();
    let init = s.pid.to_string();
    for k in ["pid", "mnt", "net", "ipc", "uts"] {
        assert_eq!(ns_of(&p, k), ns_of(&init, k), "{k} namespace");
    }
    // -d is the short form; the container keeps running meanwhile.
    let pidfile2 = env.base.join("exec2.pid");
    exec(
        &env,
        &["-d", "--pid-file", pidfile2.to_str().unwrap()],
        &s.id,
        &["sleep", "1000"],
    )
    .success();
    let pid2: i64 = fs::read_to_string(&pidfile2)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid2) && pid2 != pid);
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
    assert!(
        !pid_alive(pid) && !pid_alive(pid2),
        "delete --force kills exec'd processes too"
    );
}

// ---- fds ----------------------------------------------------------------------

/// Parses `ls -l /proc/self/fd` into (fd, target) pairs.
fn fd_table(out: &Out) -> Vec<(u32, String)> {
    out.lines()
        .iter()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            // `ls` shows its own, already closed, directory fd without a target.
            let (left, target) = l.split_once(" -> ").unwrap_or((l, ""));
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.to_string()))
        })
        .collect()
}

#[test]
fn no_host_fds_leak_into_the_process() {
    let env = Env::new();
    let s = sleeper(&env);
    let a = env.base.join("leak-a");
    let b = env.base.join("leak-b");
    fs::write(&a, "A").unwrap();
    fs::write(&b, "B").unwrap();
    let out = env.rt_opts(
        &["exec", &s.id, "ls", "-l", "/proc/self/fd"],
        Opts {
            extra_fds: vec![fs::File::open(&a).unwrap(), fs::File::open(&b).unwrap()],
            ..Default::default()
        },
    );
    out.success();
    let t = fd_table(&out);
    let fds: Vec<u32> = t.iter().map(|(f, _)| *f).collect();
    // 0, 1, 2 and the directory `ls` itself opened.
    assert_eq!(fds, [0, 1, 2, 3], "{out:#?}");
    assert!(!out.stdout.contains("leak-"), "{out:#?}");
    finish(&env, &s);
}

#[test]
fn preserve_fds_passes_fd_3() {
    let env = Env::new();
    let s = sleeper(&env);
    let a = env.base.join("keep-a");
    let b = env.base.join("drop-b");
    fs::write(&a, "preserved-content\n").unwrap();
    fs::write(&b, "B").unwrap();
    let fds = || Opts {
        extra_fds: vec![fs::File::open(&a).unwrap(), fs::File::open(&b).unwrap()],
        ..Default::default()
    };
    let out = env.rt_opts(
        &["exec", "--preserve-fds", "1", &s.id, "sh", "-c", "cat <&3"],
        fds(),
    );
    out.success();
    assert_eq!(out.stdout, "preserved-content\n", "{out:#?}");
    let out = env.rt_opts(
        &[
            "exec",
            "--preserve-fds",
            "1",
            &s.id,
            "ls",
            "-l",
            "/proc/self/fd",
        ],
        fds(),
    );
    out.success();
    let t = fd_table(&out);
    let fdn: Vec<u32> = t.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        fdn,
        [0, 1, 2, 3, 4],
        "fd 3 preserved, 4 is ls's own: {out:#?}"
    );
    assert!(t[3].1.ends_with("keep-a"), "{out:#?}");
    assert!(
        !out.stdout.contains("drop-b"),
        "only one fd preserved: {out:#?}"
    );
    finish(&env, &s);
}

// ---- refusals -----------------------------------------------------------------

#[test]
fn exec_into_a_stopped_container_fails() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    env.wait_status(&id, "stopped");
    let out = exec(&env, &[], &id, &["echo", "should-not-run"]);
    out.failure();
    assert!(!out.stdout.contains("should-not-run"), "{out:#?}");
    out.stderr_has("stopped");
    // Detached too.
    let out = exec(&env, &["-d"], &id, &["true"]);
    out.failure().stderr_has("stopped");
    assert_eq!(env.status(&id), "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn exec_into_an_unknown_container_fails() {
    let env = Env::new();
    let id = format!("{}nosuch", env.name);
    let out = exec(&env, &[], &id, &["true"]);
    out.failure().stderr_has("does not exist");
    let out = exec(&env, &["-d"], &id, &["true"]);
    out.failure().stderr_has("does not exist");
    env.assert_nothing_left(&id);
}

#[test]
fn exec_detached_tty_without_console_socket_fails() {
    let env = Env::new();
    let s = sleeper(&env);
    let out = exec(&env, &["-d", "-t"], &s.id, &["sh"]);
    out.failure();
    if is_runc() {
        out.stderr_has("console socket");
    }
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
}

#[test]
fn exec_into_a_paused_container_is_refused() {
    let env = Env::new();
    let s = sleeper(&env);
    env.rt(&["pause", &s.id]).success();
    assert_eq!(env.status(&s.id), "paused");
    let out = exec(&env, &[], &s.id, &["echo", "should-not-run"]);
    out.failure().stderr_has("paused");
    assert!(!out.stdout.contains("should-not-run"));
    let out = exec(&env, &["-d"], &s.id, &["echo", "should-not-run"]);
    out.failure().stderr_has("paused");
    env.rt(&["resume", &s.id]).success();
    assert_eq!(env.status(&s.id), "running");
    let out = exec(&env, &[], &s.id, &["echo", "after-resume"]);
    out.success();
    assert_eq!(out.stdout.trim(), "after-resume");
    finish(&env, &s);
}

#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let env = Env::new();
    let s = sleeper(&env);
    env.rt(&["pause", &s.id]).success();
    // With --ignore-paused the process is started; it is frozen with the
    // rest of the cgroup and finishes once the container is resumed.
    let mut sp = env.spawn(&["exec", "--ignore-paused", &s.id, "echo", "ran-after-resume"]);
    // Let the exec get as far as the frozen cgroup (best effort, no assertion).
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let procs = format!(
        "/sys/fs/cgroup{}{}/cgroup.procs",
        if v2 { "" } else { "/freezer" },
        s.b.cgroup
    );
    let start = Instant::now();
    while fs::read_to_string(&procs)
        .map(|p| p.lines().count() < 2)
        .unwrap_or(false)
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut resume = env.spawn(&["resume", &s.id]);
    let start = Instant::now();
    while resume.try_wait().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            // Unblock it (and leave nothing frozen behind) before failing.
            unsafe { libc::kill(sp.pid() as i32, libc::SIGKILL) };
            let r = resume.wait();
            let _ = sp.try_wait();
            panic!(
                "`resume` blocked while an `exec --ignore-paused` was pending (finished only after killing the exec: {r:#?})"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    resume.wait().success();
    let out = sp.wait();
    out.success();
    assert_eq!(out.stdout.trim(), "ran-after-resume", "{out:#?}");
    assert_eq!(env.status(&s.id), "running");
    finish(&env, &s);
}
