//! `start`: releases the init waiting on the exec FIFO and returns once it has exec'd.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Created, State, StateDir, Status, hook_state, typed_config_if};
use crate::error::{Context, Error, Result};
use crate::linux::{hooks, sys};
use crate::logging;

/// `start`: releases the init waiting on the exec FIFO.
pub fn start(root: &Path, id: &str) -> Result<()> {
    start_with(root, id, None)
}

/// `start` right after this process created the container (a foreground `run`): the state
/// it just wrote is used instead of read back and parsed again; a concurrent delete still
/// shows (the state dir is gone, or the FIFO with it).
pub fn start_created(root: &Path, id: &str, created: Created) -> Result<()> {
    start_with(root, id, Some(created.state))
}

fn start_with(root: &Path, id: &str, known: Option<State>) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = match known {
        Some(st) => st,
        None => {
            let st = sd.load()?;
            st.status(&sd.dir).may_start()?;
            st
        }
    };
    logging::phase(crate::logging::phases::START_STATE_READ);
    // The pidfd first: once the FIFO is open the process may run, exit and be reaped at once.
    let pidfd = sys::pidfd_open(st.pid)
        .map_err(|_| Error::other("cannot start a container whose init process has exited"))?;
    if !st.init_alive() {
        return Err(Error::other(
            "cannot start a container whose init process has exited",
        ));
    }
    let fifo_path = sd.fifo_path();
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .at("cannot open exec fifo", &fifo_path)?;
    // The init writes one byte once it is released and keeps its end open (close-on-exec)
    // until execve: `start` returns at end-of-file, when the container's process runs. Any
    // more bytes are the init's report of what failed before execve.
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let mut fds = [
            nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll exec fifo", e)),
        }
        let init_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        match (&fifo).read(&mut buf) {
            Ok(0) if !got.is_empty() => break,
            Ok(n) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                continue;
            }
            Ok(_) | Err(_) => {}
        }
        if init_gone && got.is_empty() {
            let _ = std::fs::remove_file(&fifo_path);
            return Err(Error::other(
                "cannot start a container whose init process has exited",
            ));
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    if got.len() > 1 {
        let why = String::from_utf8_lossy(&got[1..]);
        return Err(Error::other(why.trim_end().to_string()));
    }
    logging::phase(crate::logging::phases::START_INIT_RELEASED);
    if let Some(spec) = typed_config_if(&st, &["hooks", "poststart"]).transpose()?
        && let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref())
    {
        hooks::run_all_warn("poststart", Some(h), &hook_state(&st, Status::Running));
    }
    Ok(())
}
