//! `checkpoint` and `restore` with CRIU, as runc 1.1.5 drives it.
//!
//! The rules before any dump (runc's flags, a created container refused, `--parent-path`
//! relative to the image path) and restore's refusals run everywhere. The dumps and
//! restores need a host where `criu check` passes (the VM guests, on Debian's 6.1
//! kernel): elsewhere they are listed as ignored, with the reason printed once, not
//! counted as passed. One test runs only where `criu check` fails: a checkpoint there
//! gives one line naming CRIU's error and leaves the container running.
//!
//! A custom harness (libtest-mimic) so that "skipped" is decided at run time and shows as
//! ignored in the summary.
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};
use serde_json::{Value, json};

fn main() {
    let args = Arguments::from_args();
    let why_not = criu_unusable();
    if let Some(why) = &why_not {
        eprintln!("checkpoint: the CRIU tests are skipped: {why}");
    }
    let always: Vec<(&str, fn())> = vec![
        ("checkpoint_takes_runcs_flags", checkpoint_takes_runcs_flags),
        (
            "checkpoint_of_a_created_container_is_refused",
            checkpoint_of_a_created_container_is_refused,
        ),
        (
            "checkpoint_refuses_a_bad_parent_path_and_leaves_the_container_running",
            checkpoint_refuses_a_bad_parent_path_and_leaves_the_container_running,
        ),
        (
            "checkpoint_refuses_bad_flag_values",
            checkpoint_refuses_bad_flag_values,
        ),
        ("restore_takes_runcs_flags", restore_takes_runcs_flags),
        (
            "restore_without_images_names_the_path_and_leaves_nothing",
            restore_without_images_names_the_path_and_leaves_nothing,
        ),
        (
            "a_missing_criu_is_named_and_the_container_runs_on",
            a_missing_criu_is_named_and_the_container_runs_on,
        ),
        (
            "delete_never_walks_into_a_rootfs_left_bound_by_a_restore",
            delete_never_walks_into_a_rootfs_left_bound_by_a_restore,
        ),
        (
            "a_dev_null_stdin_is_the_containers_own",
            a_dev_null_stdin_is_the_containers_own,
        ),
        (
            "the_engines_spellings_of_the_flags_are_taken",
            the_engines_spellings_of_the_flags_are_taken,
        ),
    ];
    let with_criu: Vec<(&str, fn())> = vec![
        (
            "checkpoint_and_restore_continue_the_count",
            checkpoint_and_restore_continue_the_count,
        ),
        (
            "leave_running_keeps_it_running",
            leave_running_keeps_it_running,
        ),
        (
            "pre_dump_then_dump_with_parent_path_restores",
            pre_dump_then_dump_with_parent_path_restores,
        ),
        (
            "a_restored_container_is_checkpointed_again",
            a_restored_container_is_checkpointed_again,
        ),
        (
            "tcp_established_restores_a_loopback_connection",
            tcp_established_restores_a_loopback_connection,
        ),
        (
            "shell_job_with_a_terminal_and_a_console_socket",
            shell_job_with_a_terminal_and_a_console_socket,
        ),
        (
            "restore_in_the_foreground_returns_the_exit_status",
            restore_in_the_foreground_returns_the_exit_status,
        ),
        (
            "a_failed_restore_leaves_nothing",
            a_failed_restore_leaves_nothing,
        ),
        (
            "bind_mounts_work_path_and_pid_file_survive_a_restore",
            bind_mounts_work_path_and_pid_file_survive_a_restore,
        ),
        (
            "the_org_criu_config_annotation_is_read",
            the_org_criu_config_annotation_is_read,
        ),
        (
            "a_copy_restored_under_another_id_gets_its_own_cgroup",
            a_copy_restored_under_another_id_gets_its_own_cgroup,
        ),
    ];
    let with_systemd: Vec<(&str, fn())> = vec![(
        "restore_under_the_systemd_driver",
        restore_under_the_systemd_driver,
    )];
    let without_criu: Vec<(&str, fn())> = vec![(
        "a_failing_criu_is_one_line_and_the_container_runs_on",
        a_failing_criu_is_one_line_and_the_container_runs_on,
    )];
    let trial = |(name, f): (&str, fn()), ignore: bool| {
        Trial::test(name, move || {
            f();
            Ok(())
        })
        .with_ignored_flag(ignore)
    };
    let mut trials: Vec<Trial> = always.into_iter().map(|t| trial(t, false)).collect();
    trials.extend(with_criu.into_iter().map(|t| trial(t, why_not.is_some())));
    let no_systemd = !systemd_host();
    trials.extend(
        with_systemd
            .into_iter()
            .map(|t| trial(t, why_not.is_some() || no_systemd)),
    );
    trials.extend(
        without_criu
            .into_iter()
            .map(|t| trial(t, why_not.is_none())),
    );
    libtest_mimic::run(&args, trials).exit();
}

/// Why the CRIU tests cannot run here, if they cannot: no criu, or `criu check` fails.
fn criu_unusable() -> Option<String> {
    let out = match Command::new("criu")
        .args(["check", "-v1", "--log-file", "/dev/stderr"])
        .output()
    {
        Ok(o) => o,
        Err(e) => return Some(format!("criu cannot run: {e}")),
    };
    if out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Error"))
        .unwrap_or("failed");
    Some(format!("`criu check` fails on this host: {}", line.trim()))
}

/// systemd runs the host (PID 1): the systemd driver can be used.
fn systemd_host() -> bool {
    std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
        && std::path::Path::new("/run/systemd/system").is_dir()
}

// ---- a container counting on pipes ---------------------------------------------------

/// A process that prints 0, 1, 2... once a tenth of a second.
const COUNT: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done";

/// The output of containers that count, read from a pipe: CRIU hands an init's pipes back
/// on restore from the runtime's own stdio, so each run or restore gets fresh pipes and
/// the numbers are read from all of them.
struct Counter {
    lines: Arc<Mutex<Vec<String>>>,
    /// stdin pipes kept open (a closed stdin would end `cat`-like processes).
    stdins: Vec<std::io::PipeWriter>,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            lines: Default::default(),
            stdins: Vec::new(),
        }
    }

    /// Runs `runtime --root R args...` with stdin, stdout and stderr pipes whose far ends
    /// the detached container keeps; its lines are collected. Returns the runtime's exit
    /// code and what it printed before it exited.
    fn spawn(&mut self, env: &Env, args: &[&str]) -> (i32, String) {
        let (sr, sw) = std::io::pipe().unwrap();
        let (or, ow) = std::io::pipe().unwrap();
        let mut full = vec!["--root".to_string(), env.root.display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        let mut child = Command::new(runtime())
            .args(&full)
            .current_dir(&env.base)
            .stdin(sr)
            .stdout(ow.try_clone().unwrap())
            .stderr(ow)
            .spawn()
            .unwrap();
        self.stdins.push(sw);
        let lines = self.lines.clone();
        let own = Arc::new(Mutex::new(String::new()));
        let own2 = own.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(or).lines() {
                let Ok(l) = l else { break };
                own2.lock().unwrap().push_str(&format!("{l}\n"));
                lines.lock().unwrap().push(l);
            }
        });
        let start = Instant::now();
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break exit_code(st);
            }
            assert!(start.elapsed() < CMD_DEADLINE, "{full:?} did not finish");
            std::thread::sleep(Duration::from_millis(10));
        };
        // What the runtime itself printed has arrived by now or within a moment.
        std::thread::sleep(Duration::from_millis(50));
        let printed = own.lock().unwrap().clone();
        (code, printed)
    }

    #[track_caller]
    fn spawn_ok(&mut self, env: &Env, args: &[&str]) {
        let (code, printed) = self.spawn(env, args);
        assert_eq!(code, 0, "{args:?} failed: {printed}");
    }

    /// The numbers seen so far, in order.
    fn numbers(&self) -> Vec<u64> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn last(&self) -> Option<u64> {
        self.numbers().last().copied()
    }

    /// Waits until a number above `n` has been printed (the count goes on), and returns it.
    #[track_caller]
    fn wait_above(&self, n: Option<u64>) -> u64 {
        let start = Instant::now();
        loop {
            if let Some(l) = self.last()
                && n.is_none_or(|n| l > n)
            {
                return l;
            }
            assert!(
                start.elapsed() < CMD_DEADLINE,
                "the count never went past {n:?}: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The numbers printed after the first `mark` lines.
    fn numbers_from(&self, mark: usize) -> Vec<u64> {
        self.lines.lock().unwrap()[mark..]
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }
}

/// A counting container, running detached; returns its bundle.
fn counting(env: &Env, c: &mut Counter, id: &str, edit: impl FnOnce(&mut Value)) -> Bundle {
    let b = env.bundle_with(&["sh", "-c", COUNT], edit);
    c.spawn_ok(env, &["run", "-d", "--bundle", b.path(), id]);
    c.wait_above(Some(2));
    b
}

fn checkpoint(env: &Env, id: &str, img: &std::path::Path, extra: &[&str]) -> Out {
    let mut args = vec!["checkpoint", "--image-path", img.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    env.rt(&args)
}

/// After a dump the container is gone: no state, no process, no cgroup.
#[track_caller]
fn assert_gone(env: &Env, id: &str) {
    env.rt(&["state", id])
        .failure()
        .stderr_has("does not exist");
    env.assert_nothing_left(id);
}

/// A restored container is a container: state says running with a live pid, the init is
/// in the container's cgroup, exec works, pause and resume work.
#[track_caller]
fn assert_a_container(env: &Env, b: &Bundle, id: &str) {
    let st = env.wait_status(id, "running");
    let pid = st["pid"].as_u64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&b.cgroup),
        "init {pid} is not in {}: {cg}",
        b.cgroup
    );
    let out = env.rt(&["exec", id, "cat", "/proc/1/cmdline"]);
    out.success();
    assert!(out.stdout.starts_with("sh"), "{out:#?}");
    env.rt(&["pause", id]).success();
    env.wait_status(id, "paused");
    env.rt(&["resume", id]).success();
    env.wait_status(id, "running");
}

fn delete(env: &Env, id: &str) {
    env.rt(&["delete", "--force", id]).success();
    env.assert_nothing_left(id);
}

// ---- with CRIU -------------------------------------------------------------------------

fn checkpoint_and_restore_continue_the_count() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |cfg| {
        cfg["linux"]["resources"] = json!({ "memory": { "limit": 67108864 } });
    });
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &[]).success();
    let at_dump = c.last();
    assert_gone(&env, &id);
    assert!(img.join("descriptors.json").exists());
    let mark = c.mark();
    c.spawn_ok(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    c.wait_above(at_dump);
    // The count went on from where it was: no restart at 0.
    let after = c.numbers_from(mark);
    assert!(
        after.first().is_some_and(|&n| n >= at_dump.unwrap_or(0)),
        "the count restarted: {after:?} after {at_dump:?}"
    );
    assert_a_container(&env, &b, &id);
    // The restored container's cgroup has the config's limit.
    let pid = env.state(&id)["pid"].as_u64().unwrap();
    assert_eq!(memory_limit_of(pid), Some(67108864));
    delete(&env, &id);
}

/// The memory limit of the cgroup process `pid` is in (v2's memory.max or v1's
/// memory.limit_in_bytes), None when unlimited or not found.
fn memory_limit_of(pid: u64) -> Option<u64> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let file = if ctrls.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if ctrls.is_empty() && pure_cgroup2_host() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        if let Ok(v) = std::fs::read_to_string(&file) {
            return v.trim().parse().ok();
        }
    }
    None
}

fn leave_running_keeps_it_running() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |_| {});
    let img = env.tempdir("img");
    // The container counts on while it is dumped: the dump holds a number at least this.
    let before = c.last();
    checkpoint(&env, &id, &img, &["--leave-running"]).success();
    let at_dump = c.last();
    assert_eq!(env.status(&id), "running");
    c.wait_above(at_dump.map(|n| n + 3));
    // The images restore once the original is gone.
    delete(&env, &id);
    let mark = c.mark();
    c.spawn_ok(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    c.wait_above(c.last());
    let after = c.numbers_from(mark);
    assert!(
        after.first().is_some_and(|&n| n >= before.unwrap_or(0)),
        "{after:?} after {before:?}"
    );
    assert_a_container(&env, &b, &id);
    delete(&env, &id);
}

fn pre_dump_then_dump_with_parent_path_restores() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |_| {});
    let dir = env.tempdir("ck");
    let pre = dir.join("pre");
    let fin = dir.join("final");
    checkpoint(&env, &id, &pre, &["--pre-dump"]).success();
    // A pre-dump leaves the container running.
    assert_eq!(env.status(&id), "running");
    c.wait_above(c.last());
    checkpoint(&env, &id, &fin, &["--parent-path", "../pre"]).success();
    let at_dump = c.last();
    assert_gone(&env, &id);
    // The final dump refers to the pre-dump's pages (CRIU links its parent).
    assert!(
        fin.join("parent").exists(),
        "no parent link in {}",
        fin.display()
    );
    c.spawn_ok(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b.path(),
            "--image-path",
            fin.to_str().unwrap(),
            &id,
        ],
    );
    c.wait_above(at_dump);
    assert_a_container(&env, &b, &id);
    delete(&env, &id);
}

fn a_restored_container_is_checkpointed_again() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |_| {});
    for round in 0..2 {
        let img = env.tempdir(&format!("img{round}"));
        checkpoint(&env, &id, &img, &[]).success();
        let at_dump = c.last();
        assert_gone(&env, &id);
        c.spawn_ok(
            &env,
            &[
                "restore",
                "-d",
                "--bundle",
                b.path(),
                "--image-path",
                img.to_str().unwrap(),
                &id,
            ],
        );
        c.wait_above(at_dump);
    }
    assert_a_container(&env, &b, &id);
    delete(&env, &id);
}

/// A TCP connection over the loopback of the container's own network namespace: the
/// client's count goes to a server that echoes it back, and the client prints the echo. Without `--tcp-established` CRIU refuses
/// the dump (the negative control); with it the connection comes back and the count goes
/// on through it.
fn tcp_established_restores_a_loopback_connection() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting_over_tcp(&env, |_| {});
    c.spawn_ok(&env, &["run", "-d", "--bundle", b.path(), &id]);
    c.wait_above(Some(2));
    let img = env.tempdir("img");
    let out = checkpoint(&env, &id, &img, &[]);
    out.failure();
    assert_eq!(
        env.status(&id),
        "running",
        "a failed dump leaves it running"
    );
    c.wait_above(c.last());
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &["--tcp-established"]).success();
    let at_dump = c.last();
    assert_gone(&env, &id);
    let (code, printed) = c.spawn(
        &env,
        &[
            "restore",
            "-d",
            "--tcp-established",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    if is_runc() {
        // runc restores the namespace empty, loopback down: CRIU cannot connect the
        // socket back ("Network is unreachable" in restore.log). tong brings lo up first.
        assert_ne!(code, 0, "{printed}");
        env.assert_nothing_left(&id);
        return;
    }
    assert_eq!(code, 0, "{printed}");
    c.wait_above(at_dump.map(|n| n + 3));
    delete(&env, &id);
}

/// A container with a terminal: its pty master went to a console socket at run; the
/// restore sends the restored pty's master to a new console socket, and the count goes
/// on there.
fn shell_job_with_a_terminal_and_a_console_socket() {
    let env = Env::new();
    let id = env.id("c");
    let b = env.bundle_with(&["sh", "-c", COUNT], |cfg| {
        cfg["process"]["terminal"] = json!(true);
    });
    let cs = ConsoleSocket::new(&env);
    let mut sp = env.spawn(&[
        "run",
        "-d",
        "--console-socket",
        cs.arg(),
        "--bundle",
        b.path(),
        &id,
    ]);
    let (_, mut fds) = cs.receive(&mut sp).expect("a pty master at run");
    sp.wait().success();
    let master = fds.remove(0);
    let before = read_tty_until(&master, |t| last_number(t).is_some_and(|n| n > 2));
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &["--shell-job"]).success();
    let at_dump = last_number(&before).unwrap();
    drop(master);
    assert_gone(&env, &id);
    let cs2 = ConsoleSocket::new(&env);
    let mut sp = env.spawn(&[
        "restore",
        "-d",
        "--shell-job",
        "--console-socket",
        cs2.arg(),
        "--bundle",
        b.path(),
        "--image-path",
        img.to_str().unwrap(),
        &id,
    ]);
    let (_, mut fds) = cs2.receive(&mut sp).expect("a pty master at restore");
    sp.wait().success();
    let master = fds.remove(0);
    let after = read_tty_until(&master, |t| last_number(t).is_some_and(|n| n > at_dump + 2));
    let first = after
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap();
    assert!(
        first >= at_dump.saturating_sub(1),
        "the count restarted: {after:?} after {at_dump}"
    );
    env.wait_status(&id, "running");
    delete(&env, &id);
}

/// A restore without `--detach` waits for the container and returns its exit status,
/// then deletes it, as `run` does.
fn restore_in_the_foreground_returns_the_exit_status() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = env.bundle(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.1; done; exit 7",
    ]);
    c.spawn_ok(&env, &["run", "-d", "--bundle", b.path(), &id]);
    c.wait_above(Some(2));
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &[]).success();
    assert_gone(&env, &id);
    let (code, printed) = c.spawn(
        &env,
        &[
            "restore",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    assert_eq!(code, 7, "{printed}");
    assert!(c.numbers().contains(&29), "{:?}", c.numbers());
    assert_gone(&env, &id);
}

/// A restore CRIU refuses (its images say a different root filesystem layout: the
/// container's binary is gone) leaves no state dir, cgroup, mount or process, and its
/// error names CRIU's log.
fn a_failed_restore_leaves_nothing() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |_| {});
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &[]).success();
    assert_gone(&env, &id);
    // busybox is what the restored tasks map: without it CRIU cannot restore them.
    let bb = b.dir.join("rootfs/bin/busybox");
    std::fs::rename(&bb, bb.with_extension("gone")).unwrap();
    let (code, printed) = c.spawn(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    assert_ne!(code, 0, "{printed}");
    assert!(
        printed.contains("restore.log"),
        "the error names CRIU's log: {printed}"
    );
    assert_eq!(printed.trim().lines().count(), 1, "one line: {printed}");
    assert_gone(&env, &id);
}

/// A host directory bound into the container (an external mount to CRIU) is bound again
/// at restore, and the count keeps reaching the host through it; CRIU's logs go to
/// `--work-path`; `restore --pid-file` names the restored init.
fn bind_mounts_work_path_and_pid_file_survive_a_restore() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let data = env.tempdir("data");
    let script = "i=0; while :; do echo $i; echo $i > /data/n; i=$((i+1)); sleep 0.1; done";
    let b = env.bundle_with(&["sh", "-c", script], |cfg| {
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data",
            "type": "bind",
            "source": data.to_str().unwrap(),
            "options": ["rbind", "rw"],
        }));
    });
    c.spawn_ok(&env, &["run", "-d", "--bundle", b.path(), &id]);
    c.wait_above(Some(2));
    let img = env.tempdir("img");
    let work = env.tempdir("work");
    let work_s = work.to_str().unwrap();
    checkpoint(&env, &id, &img, &["--work-path", work_s]).success();
    assert!(work.join("dump.log").exists(), "dump.log is in --work-path");
    let at_dump: u64 = std::fs::read_to_string(data.join("n"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_gone(&env, &id);
    let pid_file = env.base.join("restored.pid");
    c.spawn_ok(
        &env,
        &[
            "restore",
            "-d",
            "--work-path",
            work_s,
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    assert!(
        work.join("restore.log").exists(),
        "restore.log is in --work-path"
    );
    let st = env.wait_status(&id, "running");
    let pid: u64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        Some(pid),
        st["pid"].as_u64(),
        "--pid-file names the restored init"
    );
    let start = Instant::now();
    loop {
        let n: u64 = std::fs::read_to_string(data.join("n"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        if n > at_dump + 2 {
            break;
        }
        assert!(
            start.elapsed() < CMD_DEADLINE,
            "the bind mount saw no count after {at_dump}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    delete(&env, &id);
}

/// `org.criu.config` names a CRIU configuration file for the container, as with runc:
/// one that says `tcp-established` lets a container with a TCP connection be dumped and
/// restored without the flag (without it the dump fails: see the TCP test's control).
fn the_org_criu_config_annotation_is_read() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let conf = env.tempdir("criu").join("c.conf");
    std::fs::write(&conf, "tcp-established\n").unwrap();
    let b = counting_over_tcp(&env, |cfg| {
        cfg["annotations"] = json!({ "org.criu.config": conf.to_str().unwrap() });
    });
    c.spawn_ok(&env, &["run", "-d", "--bundle", b.path(), &id]);
    c.wait_above(Some(2));
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &[]).success();
    assert_gone(&env, &id);
    let (code, printed) = c.spawn(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b.path(),
            "--image-path",
            img.to_str().unwrap(),
            &id,
        ],
    );
    if is_runc() {
        // As in the TCP test: runc's restored namespace has lo down.
        assert_ne!(code, 0, "{printed}");
        return;
    }
    assert_eq!(code, 0, "{printed}");
    c.wait_above(c.last().map(|n| n + 3));
    delete(&env, &id);
}

/// `--systemd-cgroup`: the restored container is in its transient scope again (systemd
/// starts the unit with CRIU's pid, and CRIU restores into it), with its limit, and delete
/// stops the unit.
fn restore_under_the_systemd_driver() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let unit = format!("{}-sd.scope", env.name.trim_end_matches('-'));
    let b = env.bundle_with(&["sh", "-c", COUNT], |cfg| {
        cfg["linux"]["cgroupsPath"] = json!(format!(
            "system.slice:{}:sd",
            env.name.trim_end_matches('-')
        ));
        cfg["linux"]["resources"] = json!({ "memory": { "limit": 67108864 } });
    });
    let sd = |args: &[&str]| {
        let mut v = vec!["--systemd-cgroup"];
        v.extend_from_slice(args);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = sd(&["run", "-d", "--bundle", b.path(), &id]);
    c.spawn_ok(&env, &run.iter().map(String::as_str).collect::<Vec<_>>());
    c.wait_above(Some(2));
    let img = env.tempdir("img");
    let out = env.rt(
        &sd(&["checkpoint", "--image-path", img.to_str().unwrap(), &id])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    out.success();
    let at_dump = c.last();
    assert_gone(&env, &id);
    let active = |u: &str| {
        host("systemctl", &["is-active", u])
            .stdout
            .trim()
            .to_string()
    };
    assert_ne!(
        active(&unit),
        "active",
        "the dumped container's unit is stopped"
    );
    let restore = sd(&[
        "restore",
        "-d",
        "--bundle",
        b.path(),
        "--image-path",
        img.to_str().unwrap(),
        &id,
    ]);
    c.spawn_ok(
        &env,
        &restore.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    c.wait_above(at_dump);
    let st = env.wait_status(&id, "running");
    let pid = st["pid"].as_u64().unwrap();
    assert_eq!(active(&unit), "active");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&unit), "the restored init is in {unit}: {cg}");
    assert_eq!(memory_limit_of(pid), Some(67108864));
    env.rt(&["--systemd-cgroup", "delete", "--force", &id])
        .success();
    env.assert_nothing_left(&id);
    assert_ne!(active(&unit), "active", "delete stops the unit");
}

/// A copy restored beside the original (another id, another bundle whose cgroupsPath
/// differs) runs in its own cgroup with its own limit, not in the cgroup the images name.
fn a_copy_restored_under_another_id_gets_its_own_cgroup() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    let b = counting(&env, &mut c, &id, |_| {});
    let img = env.tempdir("img");
    checkpoint(&env, &id, &img, &["--leave-running"]).success();
    let copy = env.id("copy");
    let b2 = env.bundle_with(&["sh", "-c", COUNT], |cfg| {
        cfg["linux"]["resources"] = json!({ "memory": { "limit": 33554432 } });
    });
    assert_ne!(b.cgroup, b2.cgroup);
    c.spawn_ok(
        &env,
        &[
            "restore",
            "-d",
            "--bundle",
            b2.path(),
            "--image-path",
            img.to_str().unwrap(),
            &copy,
        ],
    );
    let st = env.wait_status(&copy, "running");
    let pid = st["pid"].as_u64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&b2.cgroup) && !cg.contains(&format!("{}\n", b.cgroup)),
        "the copy runs in {}: {cg}",
        b2.cgroup
    );
    assert_eq!(memory_limit_of(pid), Some(33554432));
    assert_eq!(env.status(&id), "running", "the original runs on");
    // Both go; nothing of either is left (the check covers the whole env).
    env.rt(&["delete", "--force", &copy]).success();
    delete(&env, &id);
}

// ---- where CRIU fails ----------------------------------------------------------------

fn a_failing_criu_is_one_line_and_the_container_runs_on() {
    let env = Env::new();
    let mut c = Counter::new();
    let id = env.id("c");
    counting(&env, &mut c, &id, |_| {});
    let img = env.tempdir("img");
    let out = checkpoint(&env, &id, &img, &[]);
    out.failure();
    if !is_runc() {
        // runc's error spans two lines ("...\nlog file: ..."); tong's is one.
        assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
        out.stderr_has("dump.log");
        out.stderr_has("criu check");
    }
    assert_eq!(env.status(&id), "running");
    c.wait_above(c.last());
    delete(&env, &id);
}

// ---- everywhere ------------------------------------------------------------------------

fn restore_takes_runcs_flags() {
    let env = Env::new();
    let out = env.rt(&["restore", "--help"]);
    out.success();
    for flag in [
        "--console-socket",
        "--image-path",
        "--work-path",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups-mode",
        "--bundle",
        "--detach",
        "--pid-file",
        "--no-subreaper",
        "--no-pivot",
        "--empty-ns",
        "--auto-dedup",
        "--lazy-pages",
        "--lsm-profile",
        "--lsm-mount-context",
    ] {
        out.stdout_has(flag);
    }
    // podman's probe for restoring into a pod: urfave/cli's words for a missing value.
    let out = env.rt(&["restore", "--lsm-mount-context"]);
    out.failure();
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("flag needs an argument"),
        "{out:#?}"
    );
    // The control: a flag runc does not have.
    env.rt(&["restore", "--no-such-flag", "x"]).failure();
}

fn restore_without_images_names_the_path_and_leaves_nothing() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    let img = env.base.join("no-images-here");
    let out = env.rt(&[
        "restore",
        "-d",
        "--bundle",
        b.path(),
        "--image-path",
        img.to_str().unwrap(),
        &id,
    ]);
    out.failure();
    out.stderr_has("no-images-here");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    env.rt(&["state", &id]).failure();
    env.assert_nothing_left(&id);
    // An empty directory is not a checkpoint either.
    let empty = env.tempdir("empty");
    let out = env.rt(&[
        "restore",
        "-d",
        "--bundle",
        b.path(),
        "--image-path",
        empty.to_str().unwrap(),
        &id,
    ]);
    out.failure();
    if !is_runc() {
        out.stderr_has("descriptors.json");
    }
    env.assert_nothing_left(&id);
}

fn a_missing_criu_is_named_and_the_container_runs_on() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let img = env.tempdir("img");
    let out = env.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        img.to_str().unwrap(),
        &id,
    ]);
    out.failure();
    out.stderr_has("/nonexistent/criu");
    assert_eq!(env.status(&id), "running");
    delete(&env, &id);
}

/// A restore killed midway leaves the rootfs bound at `<state dir>/criu-root`; removing
/// the state dir must unmount it, not delete what the rootfs holds through it.
fn delete_never_walks_into_a_rootfs_left_bound_by_a_restore() {
    if is_runc() {
        eprintln!("skipped: tong's state dir layout");
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let precious = b.dir.join("rootfs/etc/precious");
    std::fs::write(&precious, "keep").unwrap();
    let criu_root = env.state_dir(&id).join("criu-root");
    std::fs::create_dir(&criu_root).unwrap();
    let rootfs = b.dir.join("rootfs");
    host(
        "mount",
        &[
            "--bind",
            rootfs.to_str().unwrap(),
            criu_root.to_str().unwrap(),
        ],
    )
    .success();
    // The control: through the bind the file is there.
    assert!(criu_root.join("etc/precious").exists());
    env.rt(&["delete", "--force", &id]).success();
    assert!(
        precious.exists(),
        "delete removed a file of the rootfs through criu-root"
    );
    assert!(!env.state_dir(&id).exists());
    env.assert_nothing_left(&id);
}

/// conmon gives a detached container the host's /dev/null as stdin: the init reopens it
/// from the container's own /dev (as runc does), since CRIU cannot dump a descriptor on a
/// mount the container does not have. A stdout that is a host file stays as it was (the
/// control).
fn a_dev_null_stdin_is_the_containers_own() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    // env.rt's stdin is the host's /dev/null, its stdout a host file.
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let pid = env.state(&id)["pid"].as_u64().unwrap();
    let mnt_id = |fd: u32| -> String {
        std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:").map(|v| v.trim().to_string()))
            .unwrap()
    };
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let dev_id = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/dev"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(
        mnt_id(0),
        dev_id,
        "stdin is /dev/null from the container's /dev"
    );
    let visible: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(
        !visible.contains(&mnt_id(1).as_str()),
        "stdout (a host file) is left as it was, on a host mount"
    );
    delete(&env, &id);
}

/// podman 4.3 passes `--leave-running` twice; go-runc (containerd 1.6) passes
/// `restore -no-subreaper` with one dash: Go's flag package takes both, and so does tong.
fn the_engines_spellings_of_the_flags_are_taken() {
    let env = Env::new();
    let out = env.rt(&["checkpoint", "--leave-running", "--leave-running", "--help"]);
    out.success();
    let out = env.rt(&[
        "restore",
        "-no-subreaper",
        "-detach",
        "-bundle",
        "/nonexistent-bundle",
        "x",
    ]);
    out.failure();
    // Past the flags: the bundle is what is wrong.
    out.stderr_has("nonexistent-bundle");
    assert!(
        !out.stderr.contains("flag provided but not defined"),
        "{out:#?}"
    );
    // Without --bundle the bundle is the current directory (runc's bats restore so).
    let out = env.rt(&["restore", "-d", "--image-path", "/nonexistent-images", "x"]);
    out.failure();
    assert!(!out.stderr.contains("flag needs an argument"), "{out:#?}");
}

// ---- helpers ---------------------------------------------------------------------------

/// A container of its own network namespace whose count goes over a loopback TCP
/// connection to a server that echoes it back; the client prints the echo.
fn counting_over_tcp(env: &Env, edit: impl FnOnce(&mut Value)) -> Bundle {
    let script = format!(
        "ip link set lo up; nc -l -p 5000 -e /bin/cat & sleep 0.5; ({COUNT}) | nc 127.0.0.1 5000; sleep 1000"
    );
    env.bundle_with(&["sh", "-c", &script], |cfg| {
        add_namespace(cfg, "network");
        edit(cfg);
    })
}

fn add_namespace(cfg: &mut Value, typ: &str) {
    let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
    if !ns.iter().any(|n| n["type"] == typ) {
        ns.push(json!({ "type": typ }));
    }
}

fn last_number(text: &str) -> Option<u64> {
    text.split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .next_back()
}

/// Reads a pty master until `done` holds for what it showed.
#[track_caller]
fn read_tty_until(master: &std::os::fd::OwnedFd, done: impl Fn(&str) -> bool) -> String {
    use std::os::fd::AsFd;
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&seen).replace('\r', "");
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < CMD_DEADLINE,
            "the terminal showed only {text:?}"
        );
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(_) => panic!("the terminal closed after {text:?}"),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn checkpoint_takes_runcs_flags() {
    let env = Env::new();
    // podman accepts a runtime for checkpointing only if `checkpoint --help` exits 0.
    let out = env.rt(&["checkpoint", "--help"]);
    out.success();
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--lazy-pages",
        "--status-fd",
        "--page-server",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
    ] {
        out.stdout_has(flag);
    }
    // The control: a flag runc does not have is a usage error.
    env.rt(&["checkpoint", "--no-such-flag", "x"]).failure();
}

fn checkpoint_of_a_created_container_is_refused() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["create", "--bundle", b.path(), &id]).success();
    let img = env.tempdir("img");
    let out = env.rt(&["checkpoint", "--image-path", img.to_str().unwrap(), &id]);
    out.failure();
    out.stderr_has("Container cannot be checkpointed in created state");
    // Nothing changed: the container is still there, created.
    assert_eq!(env.status(&id), "created");
    env.rt(&["delete", "--force", &id]).success();
}

fn checkpoint_refuses_a_bad_parent_path_and_leaves_the_container_running() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let work = env.tempdir("ck");
    let img = work.join("image-dir");
    let img_s = img.to_str().unwrap();
    let parent = work.join("parent-dir");
    let checkpoint = |parent_path: &str| {
        env.rt(&[
            "checkpoint",
            "--parent-path",
            parent_path,
            "--image-path",
            img_s,
            &id,
        ])
    };
    // Absolute: refused.
    let out = checkpoint(parent.to_str().unwrap());
    out.failure();
    out.stderr_has("--parent-path must be relative");
    // Relative, but not there under the image path: refused, naming it.
    let out = checkpoint("../parent-dir");
    out.failure();
    out.stderr_has("invalid --parent-path");
    // A file, not a directory: refused.
    std::fs::write(&parent, "").unwrap();
    std::fs::create_dir_all(&img).unwrap();
    let out = checkpoint("../parent-dir");
    out.failure();
    out.stderr_has("invalid --parent-path");
    // runc prints Go's lower-case errno text.
    assert!(
        out.stderr.to_lowercase().contains("not a directory"),
        "{out:#?}"
    );
    // The container runs on, untouched by the refusals.
    assert_eq!(env.status(&id), "running");
    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
}

fn checkpoint_refuses_bad_flag_values() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let img = env.tempdir("img");
    let img_s = img.to_str().unwrap();
    for (flag, value, says) in [
        (
            "--manage-cgroups-mode",
            "loose",
            "Invalid manage cgroups mode",
        ),
        ("--empty-ns", "pid", "is not supported"),
        ("--page-server", "nowhere", "--page-server ADDRESS:PORT"),
    ] {
        let out = env.rt(&["checkpoint", "--image-path", img_s, flag, value, &id]);
        out.failure();
        out.stderr_has(says);
    }
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
}
