//! `kill`: a signal to the init, or with `--all` to everything in the container's cgroup.

use std::os::fd::AsFd;
use std::path::Path;

use super::{State, StateDir, Status};
use crate::error::{Context, Error, Result};
use crate::linux::sys;

/// Signal 0 only checks that the init is alive.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status(&sd.dir);
    status.may_signal(all)?;
    if all {
        // As runc: a stopped container's cgroup may still hold processes (no pid namespace
        // of its own: containerd's shim kills a pod member's leftovers this way). Once the
        // cgroup is gone there is nothing to signal, which is not an error.
        if status != Status::Stopped || st.cgroup.exists() {
            signal_all(&st, sig);
        }
        return Ok(());
    }
    signal_init(&st, sig)?;
    // A frozen process only dies once thawed: SIGKILL to a paused container thaws it (runc).
    if sig == libc::SIGKILL && st.cgroup.is_frozen() {
        st.cgroup.thaw()?;
    }
    Ok(())
}

/// Signals every process in the container's cgroup. The cgroup is frozen meanwhile (when it
/// can be), so nothing forks away between the listing and the signal.
pub(super) fn signal_all(st: &State, sig: i32) {
    let cg = &st.cgroup;
    let was_frozen = cg.is_frozen();
    let froze = !was_frozen && cg.freeze().is_ok();
    let pids = cg.pids();
    if pids.is_empty() && st.init_alive() {
        let _ = signal_init(st, sig);
    }
    for pid in pids {
        if let Ok(fd) = sys::pidfd_open(pid) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cg.thaw();
    }
}

fn signal_init(st: &State, sig: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(st.pid).map_err(|_| Error::NotRunning)?;
    // The pidfd pins the process: check it is still the one we started before signalling.
    if !st.init_alive() {
        return Err(Error::NotRunning);
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig).ctx(|| format!("kill container init {}", st.pid))
}
