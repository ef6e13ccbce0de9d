//! `delete`: what is left of a container killed, its cgroups and state removed, its
//! poststop hooks run.

use std::os::fd::AsFd;
use std::path::Path;

use super::kill::signal_all;
use super::{State, StateDir, Status, hook_state, state, typed_config_if};
use crate::error::{Error, Result};
use crate::linux::{hooks, sys};
use crate::logging;

/// `delete`: removes a stopped (or created) container; `force` kills a running one first.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let sd = match StateDir::open(root, id) {
        Ok(sd) => sd,
        Err(Error::NotExist(_)) => {
            // As runc: a directory without state.json (a create killed before it wrote
            // one) is removed, so the id can be used again; without --force the answer is
            // still that the container does not exist.
            if let Err(e) = state::remove_orphan(root, id) {
                logging::warn(&e.to_string());
            }
            return if force {
                Ok(())
            } else {
                Err(Error::NotExist(id.to_string()))
            };
        }
        Err(e) => return Err(e),
    };
    let st = match sd.load() {
        Ok(st) => st,
        Err(e) if force => {
            logging::warn(&format!(
                "removing container {id} with an unreadable state: {e}"
            ));
            return sd.remove();
        }
        Err(e) => return Err(e),
    };
    let status = st.status(&sd.dir);
    status.may_delete(id, force)?;
    if status == Status::Creating {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.creator_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    destroy(sd, &st, false);
    Ok(())
}

/// Kills whatever is left of a container, removes its cgroups, runs poststop hooks and
/// removes its state dir. Best effort: every step runs even when one fails.
pub(super) fn destroy(sd: StateDir, st: &State, failed_create: bool) {
    logging::phase(crate::logging::phases::DESTROY);
    kill_all(st);
    logging::phase(crate::logging::phases::PROCESSES_GONE);
    if let Err(e) = st.cgroup.remove() {
        logging::warn(&e.to_string());
    }
    // A create that failed after its init existed still ends with the poststop hooks.
    if (!failed_create || st.pid > 0)
        && let Some(Ok(spec)) = typed_config_if(st, &["hooks", "poststop"])
        && let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref())
    {
        hooks::run_all_warn("poststop", Some(h), &hook_state(st, Status::Stopped));
    }
    logging::phase(crate::logging::phases::CGROUPS_REMOVED);
    if let Err(e) = sd.remove() {
        logging::warn(&e.to_string());
    }
}

/// SIGKILLs the init (if it is still ours) and every process in the container's cgroup, then
/// waits until they are gone.
fn kill_all(st: &State) {
    let mut pidfds = Vec::new();
    if st.pid > 0
        && let Ok(fd) = sys::pidfd_open(st.pid)
        && st.init_alive()
    {
        let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        pidfds.push(fd);
    }
    // With its own pid namespace, a dead init took every process of the container with it
    // (the kernel kills the namespace and the init's exit waits for them): nothing to scan.
    // Without one, or when the init was never recorded (a create killed early), the
    // cgroup is the list.
    if !st.own_pid_ns || st.pid <= 0 {
        let pids = st.cgroup.pids();
        for pid in &pids {
            if let Ok(fd) = sys::pidfd_open(*pid) {
                pidfds.push(fd);
            }
        }
        signal_all(st, libc::SIGKILL);
    } else if !pidfds.is_empty() {
        // A paused container's processes die only once thawed.
        if st.cgroup.is_frozen() {
            let _ = st.cgroup.thaw();
        }
    }
    for fd in pidfds {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16));
    }
    // Reap our own children (the init is ours when create or run is the caller).
    while let Ok(s) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
        if s == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}
