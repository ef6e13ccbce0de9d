//! Pausing and resuming: the v1 freezer (freezer.state) or cgroup v2's cgroup.freeze.

use std::time::{Duration, Instant};

use super::Dirs;
use crate::error::{Error, Result};

pub fn is_frozen(d: &Dirs) -> bool {
    if let Some(dir) = d.v1("freezer") {
        return std::fs::read_to_string(dir.join("freezer.state"))
            .is_ok_and(|s| s.trim() == "FROZEN");
    }
    if let Some(dir) = d.v2.as_deref() {
        return std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
    }
    false
}

/// Freezes the cgroup and waits until the kernel reports it frozen.
pub fn freeze(d: &Dirs) -> Result<()> {
    set(d, true)
}

pub fn thaw(d: &Dirs) -> Result<()> {
    set(d, false)
}

fn set(d: &Dirs, frozen: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(dir) = d.v1("freezer") {
        let (want, file) = (
            if frozen { "FROZEN" } else { "THAWED" },
            dir.join("freezer.state"),
        );
        loop {
            // Writing FROZEN again nudges tasks that were busy forking (as runc does).
            std::fs::write(&file, want).map_err(|e| Error::path("cannot write", &file, e))?;
            let now =
                std::fs::read_to_string(&file).map_err(|e| Error::path("cannot read", &file, e))?;
            if now.trim() == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::other(format!(
                    "the freezer did not reach {want} (still {})",
                    now.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if let Some(dir) = d.v2.as_deref() {
        let file = dir.join("cgroup.freeze");
        std::fs::write(&file, if frozen { "1" } else { "0" })
            .map_err(|e| Error::path("cannot write", &file, e))?;
        let events = dir.join("cgroup.events");
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        loop {
            let s = std::fs::read_to_string(&events)
                .map_err(|e| Error::path("cannot read", &events, e))?;
            if s.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::other(format!("the cgroup did not report {want:?}")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Err(Error::other(
        "this host has no freezer: cannot pause or resume",
    ))
}
