//! Concurrency: many containers through create/start/kill/delete with 8 commands in flight,
//! while `list` and `state` read the same root. Every command succeeds or fails cleanly, no
//! reader ever sees half-written state, and nothing leaks.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::Value;

const WORKERS: usize = 8;

fn per_worker() -> usize {
    std::env::var("TONG_STRESS_CONTAINERS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(40) / WORKERS
}

#[test]
fn lifecycles_in_parallel_with_readers() {
    let env = Env::new();
    let done = AtomicBool::new(false);
    let statuses = ["creating", "created", "running", "stopped", "paused"];
    std::thread::scope(|s| {
        // Readers: list and state must always parse and show known statuses.
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let out = env.rt(&["list", "--format", "json"]);
                assert_eq!(out.code, 0, "{out:#?}");
                let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("list output {e}: {out:#?}"));
                for c in v.as_array().into_iter().flatten() {
                    let st = c["status"].as_str().unwrap_or("");
                    assert!(statuses.contains(&st), "bad status {st:?} in {c}");
                    let id = c["id"].as_str().unwrap();
                    let one = env.rt(&["state", id]);
                    // It may have been deleted in between; otherwise it parses.
                    if one.code == 0 {
                        let sv: Value = serde_json::from_str(&one.stdout).unwrap_or_else(|e| panic!("state {e}: {one:#?}"));
                        assert!(statuses.contains(&sv["status"].as_str().unwrap_or("")), "{sv}");
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
                s.spawn(move || {
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
        let states: Vec<_> = (0..4).map(|_| s.spawn(|| env.rt(&["state", &id]))).collect();
        let kills: Vec<_> = (0..2).map(|_| s.spawn(|| env.rt(&["kill", &id, "CONT"]))).collect();
        start.join().unwrap().success();
        for t in states {
            let out = t.join().unwrap();
            out.success();
            let v: Value = serde_json::from_str(&out.stdout).unwrap();
            assert!(["created", "running"].contains(&v["status"].as_str().unwrap()), "{v}");
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
