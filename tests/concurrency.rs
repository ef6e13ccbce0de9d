//! Concurrency: many containers through create/start/kill/delete with 8 commands in flight,
//! while `list` and `state` read the same root. Every command succeeds or fails cleanly, no
//! reader ever sees half-written state, and nothing leaks.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::Value;

const WORKERS: usize = 8;
const STATUSES: [&str; 5] = ["creating", "created", "running", "stopped", "paused"];

/// One `list --format json` entry or `state` output is whole: an id, a known status, an
/// integer pid that is non-zero exactly when a process should exist, a bundle and a
/// creation time. A half-written state file would break one of these.
#[track_caller]
fn check_entry(c: &Value) {
    let st = c["status"].as_str().unwrap_or("");
    assert!(STATUSES.contains(&st), "bad status {st:?} in {c}");
    assert!(
        c["id"].as_str().is_some_and(|s| !s.is_empty()),
        "no id in {c}"
    );
    let pid = c["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("pid is not an integer in {c}"));
    assert!(pid >= 0, "{c}");
    if ["created", "running", "paused"].contains(&st) {
        assert!(pid > 0, "{st} without a pid: {c}");
    }
    assert!(
        c["bundle"].as_str().is_some_and(|s| s.starts_with('/')),
        "no bundle in {c}"
    );
    assert!(
        c["created"].as_str().is_some_and(|s| !s.is_empty()),
        "no created time in {c}"
    );
}

/// runc 1.1's `list` fails outright ("stat ROOT/ID: no such file or directory") when a
/// container is deleted while it lists; tong's must not. Tolerated for the reference only.
fn runc_list_raced_a_delete(out: &Out) -> bool {
    is_runc() && !out.ok() && out.stderr.contains("no such file or directory")
}

/// A command racing a lifecycle transition either succeeds or fails with one clear error
/// line: never a crash, never silence.
#[track_caller]
fn ok_or_clean_error(out: &Out) {
    if out.ok() {
        return;
    }
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    assert!(!out.stderr.contains("panicked"), "{out:#?}");
}

fn per_worker() -> usize {
    std::env::var("TONG_STRESS_CONTAINERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(200)
        / WORKERS
}

/// Sets the flag when dropped during a panic.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn lifecycles_in_parallel_with_readers() {
    let env = Env::new();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Readers: list and state must always parse and show known statuses.
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let out = env.rt(&["list", "--format", "json"]);
                if runc_list_raced_a_delete(&out) {
                    continue;
                }
                assert_eq!(out.code, 0, "{out:#?}");
                let v: Value = serde_json::from_str(out.stdout.trim())
                    .unwrap_or_else(|e| panic!("list output {e}: {out:#?}"));
                assert!(
                    v.is_array() || v.is_null(),
                    "list is not an array: {out:#?}"
                );
                for c in v.as_array().into_iter().flatten() {
                    check_entry(c);
                    let id = c["id"].as_str().unwrap();
                    let one = env.rt(&["state", id]);
                    // It may have been deleted in between; otherwise it parses.
                    if one.code == 0 {
                        let sv: Value = serde_json::from_str(&one.stdout)
                            .unwrap_or_else(|e| panic!("state {e}: {one:#?}"));
                        check_entry(&sv);
                    } else {
                        one.stderr_has("does not exist");
                    }
                }
                reads += 1;
            }
            reads
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let env = &env;
                let done = &done;
                s.spawn(move || {
                    // A failing worker stops the reader too, or the test would hang.
                    let _stop = StopOnPanic(done);
                    for i in 0..per_worker() {
                        let b = env.bundle(&["sleep", "1000"]);
                        let id = env.id(&format!("w{w}-{i}"));
                        env.rt(&["create", "--bundle", b.path(), &id]).success();
                        // A concurrent kill while it is created must not corrupt anything.
                        env.rt(&["start", &id]).success();
                        assert_eq!(env.status(&id), "running");
                        env.rt(&["kill", &id, "KILL"]).success();
                        env.wait_status(&id, "stopped");
                        env.rt(&["delete", &id]).success();
                        env.assert_nothing_left(&id);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let reads = reader.join().unwrap();
        assert!(reads > 0);
    });
    assert!(env.list_ids().is_empty());
}

#[test]
fn concurrent_commands_on_one_container() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("one");
    env.rt(&["create", "--bundle", b.path(), &id]).success();
    std::thread::scope(|s| {
        let start = s.spawn(|| env.rt(&["start", &id]));
        let states: Vec<_> = (0..4)
            .map(|_| s.spawn(|| env.rt(&["state", &id])))
            .collect();
        let kills: Vec<_> = (0..2)
            .map(|_| s.spawn(|| env.rt(&["kill", &id, "CONT"])))
            .collect();
        start.join().unwrap().success();
        for t in states {
            let out = t.join().unwrap();
            out.success();
            let v: Value = serde_json::from_str(&out.stdout).unwrap();
            assert!(
                ["created", "running"].contains(&v["status"].as_str().unwrap()),
                "{v}"
            );
        }
        for k in kills {
            k.join().unwrap().success();
        }
    });
    assert_eq!(env.status(&id), "running");
    // Two deletes race: one wins, the other finds nothing; neither fails with --force.
    std::thread::scope(|s| {
        let a = s.spawn(|| env.rt(&["delete", "--force", &id]));
        let b2 = s.spawn(|| env.rt(&["delete", "--force", &id]));
        a.join().unwrap().success();
        b2.join().unwrap().success();
    });
    env.assert_nothing_left(&id);
}

/// state, list and kill on one container from several threads at once, while it starts and
/// again while it is killed, stops and is deleted; a few rounds. Every command succeeds or
/// fails cleanly, every `state`/`list` output is whole, and nothing leaks.
#[test]
fn state_list_kill_race_one_container_starting_and_stopping() {
    let env = Env::new();
    let rounds = 3;
    for r in 0..rounds {
        let b = env.bundle(&["sleep", "1000"]);
        let id = env.id(&format!("race{r}"));
        env.rt(&["create", "--bundle", b.path(), &id]).success();
        // While it starts.
        std::thread::scope(|s| {
            let start = s.spawn(|| env.rt(&["start", &id]));
            let rd = spawn_readers(s, &env, &id);
            let kills: Vec<_> = (0..2)
                .map(|_| s.spawn(|| env.rt(&["kill", &id, "CONT"])))
                .collect();
            start.join().unwrap().success();
            for t in rd {
                t.join().unwrap();
            }
            for k in kills {
                // CONT to a created or running container is fine either way.
                k.join().unwrap().success();
            }
        });
        assert_eq!(env.status(&id), "running");
        // While it is killed, stops and is deleted.
        std::thread::scope(|s| {
            let kills: Vec<_> = (0..3)
                .map(|_| s.spawn(|| env.rt(&["kill", &id, "KILL"])))
                .collect();
            let rd = spawn_readers(s, &env, &id);
            let del = s.spawn(|| {
                env.wait_status(&id, "stopped");
                env.rt(&["delete", &id])
            });
            let rd2 = spawn_readers(s, &env, &id);
            let mut killed = 0;
            for k in kills {
                let out = k.join().unwrap();
                ok_or_clean_error(&out);
                killed += out.ok() as usize;
            }
            assert!(killed >= 1, "no kill succeeded");
            for t in rd.into_iter().chain(rd2) {
                t.join().unwrap();
            }
            // The plain delete may lose to nothing: it must succeed.
            del.join().unwrap().success();
        });
        env.assert_nothing_left(&id);
    }
    assert!(env.list_ids().is_empty());
}

/// Three `state ID` and three `list` in parallel, each checked for whole output.
fn spawn_readers<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    env: &'env Env,
    id: &'env str,
) -> Vec<std::thread::ScopedJoinHandle<'scope, ()>> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(s.spawn(move || {
            let out = env.rt(&["state", id]);
            if out.ok() {
                check_entry(
                    &serde_json::from_str(&out.stdout)
                        .unwrap_or_else(|e| panic!("state {e}: {out:#?}")),
                );
            } else {
                ok_or_clean_error(&out);
                out.stderr_has("does not exist");
            }
        }));
        v.push(s.spawn(move || {
            let out = env.rt(&["list", "--format", "json"]);
            if runc_list_raced_a_delete(&out) {
                return;
            }
            out.success();
            let v: Value = serde_json::from_str(out.stdout.trim())
                .unwrap_or_else(|e| panic!("list {e}: {out:#?}"));
            for c in v.as_array().into_iter().flatten() {
                check_entry(c);
            }
        }));
    }
    v
}
