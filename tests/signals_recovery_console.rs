//! Lifecycle corners the basic lifecycle tests leave out: terminals and the
//! console socket, recovery after the runtime itself dies mid-create, an init
//! killed behind the runtime's back, `kill --all`, signal forwarding by a
//! foreground `run`, force-deleting containers that share the host's pid
//! namespace, and `--pid-file` relative to the caller's cwd.
mod common;
use common::*;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::{Value, json};
use std::fs;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

fn writable_rootfs(c: &mut Value) {
    c["root"]["readonly"] = false.into();
}

/// Every namespace of the default config except `pid`.
fn no_pid_namespace(c: &mut Value) {
    set_namespaces(c, &["network", "ipc", "uts", "mount"]);
}

/// The cgroup.procs of a bundle's cgroup: the pids hierarchy on v1, the unified one on a
/// pure v2 host.
fn pids_procs(b: &Bundle) -> std::path::PathBuf {
    let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/pids"
    };
    Path::new(base)
        .join(b.cgroup.trim_start_matches('/'))
        .join("cgroup.procs")
}

fn procs_of(b: &Bundle) -> Vec<i32> {
    fs::read_to_string(pids_procs(b))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls until the bundle's pids cgroup holds at least `n` processes.
#[track_caller]
fn wait_procs_at_least(b: &Bundle, n: usize) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let p = procs_of(b);
        if p.len() >= n {
            return p;
        }
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "cgroup {} never held {n} processes: {p:?}",
            b.cgroup
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- terminal and console socket ---------------------------------------------

fn terminal(c: &mut Value) {
    c["process"]["terminal"] = json!(true);
}

/// Starts the runtime with `args` (which must carry `--console-socket
/// sock`), accepts its connection on `sock`, receives the pty master over
/// SCM_RIGHTS, then waits for the runtime to exit. Returns its output and
/// the master.
fn with_console_socket(env: &Env, sock: &Path, args: &[&str]) -> (Out, OwnedFd) {
    let listener = UnixListener::bind(sock).expect("bind console socket");
    listener.set_nonblocking(true).unwrap();
    let mut sp = env.spawn(args);
    let start = Instant::now();
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept on the console socket: {e}"),
        }
        if sp.try_wait().is_some() {
            let out = sp.wait();
            panic!("runtime exited without connecting to the console socket: {out:#?}");
        }
        assert!(
            start.elapsed() < CMD_DEADLINE,
            "runtime never connected to the console socket"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(CMD_DEADLINE)).unwrap();
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut fds = Vec::new();
    {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg on the console socket");
        for c in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(v) = c {
                fds.extend(v);
            }
        }
    }
    assert_eq!(
        fds.len(),
        1,
        "expected exactly one fd over SCM_RIGHTS: {fds:?}"
    );
    let master = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let out = sp.wait();
    (out, master)
}

/// Asserts `fd` is a pty master (TIOCGPTN works only on a master).
#[track_caller]
fn assert_pty_master(fd: &OwnedFd) {
    let mut n: libc::c_uint = 0;
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(
        r,
        0,
        "the received fd is not a pty master: {}",
        std::io::Error::last_os_error()
    );
}

/// Reads from the pty master until the slave side is closed by everyone
/// (EIO) or `until` matches the text so far, with a generous deadline.
fn read_master(master: &OwnedFd, until: impl Fn(&str) -> bool) -> String {
    let mut f = fs::File::from(master.try_clone().unwrap());
    let mut acc = Vec::new();
    let start = Instant::now();
    loop {
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, 200) };
        if r > 0 {
            let mut buf = [0u8; 4096];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => acc.extend_from_slice(&buf[..n]),
                // EIO: no slave fd open any more.
                Err(_) => break,
            }
            if until(&String::from_utf8_lossy(&acc)) {
                break;
            }
        }
        if start.elapsed() > CMD_DEADLINE {
            break;
        }
    }
    String::from_utf8_lossy(&acc).into_owned()
}

/// Lines of pty output with the `\r` of the terminal's `\r\n` removed.
fn tty_lines(s: &str) -> Vec<String> {
    s.split('\n')
        .map(|l| l.trim_end_matches('\r').trim().to_string())
        .collect()
}

/// Types into an interactive `sh` through the master; the shell's output
/// (not merely the terminal's echo of the input) comes back, and the shell's
/// exit stops the container.
fn drive_interactive_shell(env: &Env, id: &str, master: &OwnedFd) {
    assert_pty_master(master);
    let st = env.wait_status(id, "running");
    let pid = st["pid"].as_i64().unwrap();
    let mut f = fs::File::from(master.try_clone().unwrap());
    f.write_all(b"echo hi; exit 3\n").unwrap();
    let out = read_master(master, |s| tty_lines(s).iter().any(|l| l == "hi"));
    assert!(
        tty_lines(&out).iter().any(|l| l == "hi"),
        "the shell's output `hi` never came back through the master: {out:?}"
    );
    env.wait_status(id, "stopped");
    wait_pid_gone(pid);
    env.rt(&["delete", id]).success();
    env.assert_nothing_left(id);
}

#[test]
fn run_detached_with_console_socket() {
    let env = Env::new();
    let b = env.bundle_with(&["sh"], terminal);
    let id = env.id("c");
    let sock = env.base.join("console.sock");
    let (out, master) = with_console_socket(
        &env,
        &sock,
        &[
            "run",
            "-d",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path(),
            &id,
        ],
    );
    out.success();
    drive_interactive_shell(&env, &id, &master);
}

#[test]
fn create_start_with_console_socket() {
    let env = Env::new();
    let b = env.bundle_with(&["sh"], terminal);
    let id = env.id("c");
    let sock = env.base.join("console.sock");
    let (out, master) = with_console_socket(
        &env,
        &sock,
        &[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path(),
            &id,
        ],
    );
    out.success();
    assert_eq!(env.status(&id), "created");
    env.rt(&["start", &id]).success();
    drive_interactive_shell(&env, &id, &master);
}

#[test]
fn console_size_is_applied() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "stty size"], |c| {
        terminal(c);
        c["process"]["consoleSize"] = json!({ "height": 40, "width": 100 });
    });
    let id = env.id("c");
    let sock = env.base.join("console.sock");
    let (out, master) = with_console_socket(
        &env,
        &sock,
        &[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path(),
            &id,
        ],
    );
    out.success();
    assert_pty_master(&master);
    env.rt(&["start", &id]).success();
    let text = read_master(&master, |s| s.contains('\n'));
    assert!(
        tty_lines(&text).iter().any(|l| l == "40 100"),
        "`stty size` inside did not print `40 100`: {text:?}"
    );
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn terminal_without_console_socket_fails_create() {
    let env = Env::new();
    let b = env.bundle_with(&["sh"], terminal);
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    out.failure();
    out.stderr_has("console socket");
    env.rt(&["state", &id]).failure();
    env.assert_nothing_left(&id);
}

// ---- the runtime dies mid-create ---------------------------------------------

#[test]
fn force_delete_after_create_was_killed_in_a_hook() {
    let env = Env::new();
    let marker = env.base.join("hook-marker");
    let hook_pid = env.base.join("hook-pid");
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        c["hooks"] = json!({ "createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "echo $$ > {}; touch {}; exec sleep 60",
                hook_pid.display(), marker.display()
            )],
        }] });
    });
    let id = env.id("c");
    let mut create = env.spawn(&["create", "--bundle", b.path(), &id]);
    let start = Instant::now();
    while !marker.exists() {
        if create.try_wait().is_some() {
            panic!(
                "create finished before its hook blocked: {:#?}",
                create.wait()
            );
        }
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "the createRuntime hook never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(create.pid() as i32, libc::SIGKILL) };
    let out = create.wait();
    assert_eq!(out.code, 128 + 9, "{out:#?}");
    // The hook (now `sleep`, same pid thanks to exec) was orphaned.
    let hp: i32 = fs::read_to_string(&hook_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(hp, libc::SIGKILL) };
    wait_pid_gone(hp as i64);

    let st = env.rt(&["state", &id]);
    if is_runc() {
        // runc 1.1 writes state.json only once its init is ready, so the
        // half-created container is unknown to it.
        st.failure().stderr_has("does not exist");
    } else {
        st.success();
        let v: Value = serde_json::from_str(&st.stdout).expect("state is JSON");
        assert!(
            v["status"] == "creating" || v["status"] == "stopped",
            "a half-created container is `creating` or `stopped`: {v:#}"
        );
    }

    env.rt(&["delete", "--force", &id]).success();
    env.rt(&["state", &id])
        .failure()
        .stderr_has("does not exist");
    if is_runc() {
        // runc forgets the cgroups of a container it never recorded; only
        // hold it to leaving no process and no state behind (Env's drop
        // removes the empty cgroup dirs).
        assert!(!env.state_dir(&id).exists(), "state dir left behind");
        let start = Instant::now();
        while !env.processes_inside().is_empty() {
            assert!(
                start.elapsed() < STATE_DEADLINE,
                "processes left behind: {:?}",
                env.processes_inside()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        env.assert_nothing_left(&id);
    }
}

// ---- the init dies behind the runtime's back ----------------------------------

#[test]
fn init_killed_from_outside_is_stopped_and_deletable() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let st = env.wait_status(&id, "running");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let st = env.wait_status(&id, "stopped");
    assert_eq!(st["pid"], 0, "{st:#}");
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

// ---- kill --all -------------------------------------------------------------

/// `kill --all` exits 0 and every process of the container (init and both
/// background sleeps) dies. A few rounds, because whether the init is already
/// gone by the time the runtime re-checks it varies from run to run.
#[test]
fn kill_all_reaches_every_process_without_a_pid_namespace() {
    for round in 0..5 {
        let env = Env::new();
        let b = env.bundle_with(
            &["sh", "-c", "sleep 1000 & sleep 1000 & wait"],
            no_pid_namespace,
        );
        let id = env.id("c");
        env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
        env.wait_status(&id, "running");
        let pids = wait_procs_at_least(&b, 3);

        let out = env.rt(&["kill", "--all", &id, "KILL"]);
        assert_eq!(out.code, 0, "round {round}: kill --all failed: {out:#?}");
        let start = Instant::now();
        loop {
            let left = procs_of(&b);
            if left.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < STATE_DEADLINE,
                "round {round}: processes left in {} after kill --all: {left:?}",
                pids_procs(&b).display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in pids {
            wait_pid_gone(p as i64);
        }
        env.wait_status(&id, "stopped");
        env.rt(&["delete", &id]).success();
        env.assert_nothing_left(&id);
    }
}

// ---- a foreground run forwards signals -------------------------------------

fn forwarded_signal(sig: i32, name: &str, code: i32) {
    let env = Env::new();
    let script = format!(
        "trap 'echo got-{name}; exit {code}' {name}; touch /tmp/ready; \
         while :; do sleep 0.1; done"
    );
    let b = env.bundle_with(&["sh", "-c", &script], writable_rootfs);
    let id = env.id("c");
    let mut run = env.spawn(&["run", "--bundle", b.path(), &id]);
    let start = Instant::now();
    let ready = b.rootfs().join("tmp/ready");
    while !ready.exists() {
        if run.try_wait().is_some() {
            panic!("run exited early: {:#?}", run.wait());
        }
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "the container never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unsafe { libc::kill(run.pid() as i32, sig) }, 0);
    let out = run.wait();
    assert_eq!(
        out.code, code,
        "the trap's exit code passes through: {out:#?}"
    );
    assert_eq!(out.stdout, format!("got-{name}\n"), "{out:#?}");
    env.assert_nothing_left(&id);
}

#[test]
fn foreground_run_forwards_sigterm() {
    forwarded_signal(libc::SIGTERM, "TERM", 7);
}

#[test]
fn foreground_run_forwards_sigint() {
    forwarded_signal(libc::SIGINT, "INT", 8);
}

// ---- force delete without a pid namespace -------------------------------------

#[test]
fn force_delete_kills_background_children_without_a_pid_namespace() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "sleep 1000 & wait"], no_pid_namespace);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let st = env.wait_status(&id, "running");
    let init = st["pid"].as_i64().unwrap();
    let pids = wait_procs_at_least(&b, 2);
    assert!(pids.iter().any(|&p| p as i64 != init), "{pids:?}");

    env.rt(&["delete", "--force", &id]).success();
    for p in &pids {
        wait_pid_gone(*p as i64);
    }
    env.assert_nothing_left(&id);
}

// ---- pid of a stopped container ---------------------------------------------

#[test]
fn stopped_container_reports_pid_zero() {
    // A process that exits by itself (not killed through the runtime).
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("c");
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert!(pid > 0);
    env.rt(&["start", &id]).success();
    let st = env.wait_status(&id, "stopped");
    assert_eq!(
        st["pid"], 0,
        "a stopped container must not report its old pid: {st:#}"
    );

    let out = env.rt(&["list", "--format", "json"]);
    out.success();
    let v: Value = serde_json::from_str(&out.stdout).expect("list json");
    let e = v
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()).cloned())
        .unwrap_or_else(|| panic!("{id} not listed: {out:#?}"));
    assert_eq!(e["status"], "stopped");
    assert_eq!(e["pid"], 0, "{e:#}");

    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);
}

// ---- --pid-file is relative to the caller's cwd -----------------------------

#[test]
fn relative_pid_file_is_relative_to_the_callers_cwd() {
    for cmd in ["create", "run"] {
        let env = Env::new();
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id("c");
        let cwd = env.tempdir("cwd");
        let mut args = vec![cmd];
        if cmd == "run" {
            args.push("-d");
        }
        args.extend(["--pid-file", "p", "--bundle", b.path(), &id]);
        env.rt_opts(
            &args,
            Opts {
                cwd: Some(&cwd),
                ..Default::default()
            },
        )
        .success();
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let pf = cwd.join("p");
        let text = fs::read_to_string(&pf)
            .unwrap_or_else(|e| panic!("{cmd}: pid file {} missing: {e}", pf.display()));
        assert_eq!(text.trim(), pid.to_string(), "{cmd}: pid file content");
        assert!(
            !b.dir.join("p").exists(),
            "{cmd}: pid file went to the bundle"
        );
        assert!(!Path::new("/p").exists(), "{cmd}: pid file went to /");
        env.rt(&["delete", "--force", &id]).success();
        env.assert_nothing_left(&id);
    }
}
