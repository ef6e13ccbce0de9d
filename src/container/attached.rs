//! `run` and `exec` in the foreground: tong waits for the container's process, forwards
//! signals to it, relays its terminal when no console socket was given, and returns its exit
//! status (a foreground `run` then deletes the container, unless `--keep`).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{CreateOpts, ExecOpts, create, delete, exec, start_created};
use crate::error::{Error, Result};
use crate::launch::foreground::Foreground;
use crate::linux::terminal;
use crate::logging::{self, phases};

/// `run -d`: create and start; a failed start deletes what create made.
pub fn run_detached(root: &Path, opts: &CreateOpts) -> Result<()> {
    let created = create(root, opts)?;
    if let Err(e) = start_created(root, &opts.id, created) {
        let _ = delete(root, &opts.id, true);
        return Err(e);
    }
    Ok(())
}

/// `run` in the foreground: create, start, wait; the container's exit status is returned.
pub fn run_attached(root: &Path, mut opts: CreateOpts, keep: bool) -> Result<i32> {
    let id = opts.id.clone();
    // Without a console socket, a foreground run relays the container's terminal itself.
    let relay = match &opts.console_socket {
        None => Some(UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?),
        Some(_) => None,
    };
    opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let fg = Foreground::begin()?;
    let created = create(root, &opts)?;
    let master = match &relay {
        Some((ours, _)) if created.terminal => match terminal::recv_master(ours.as_raw_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete(root, &id, true);
                return Err(e);
            }
        },
        _ => None,
    };
    drop(relay);
    let pid = created.state.pid;
    if let Err(e) = start_created(root, &id, created) {
        let _ = delete(root, &id, true);
        return Err(e);
    }
    logging::phase(phases::STARTED);
    let code = fg.wait(pid, master)?;
    logging::phase(phases::EXITED);
    if !keep {
        delete(root, &id, true)?;
    }
    Ok(code)
}

/// `exec` in the foreground: the process's exit status is returned. A terminal is relayed
/// when the process asks for one and no console socket was given.
pub fn exec_attached(root: &Path, id: &str, mut opts: ExecOpts) -> Result<i32> {
    let tty = opts.process.terminal() == Some(true);
    let relay = if tty && opts.console_socket.is_none() {
        Some(UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?)
    } else {
        None
    };
    opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let fg = Foreground::begin()?;
    let pid = exec(root, id, &opts)?;
    let master = match &relay {
        Some((ours, _)) => Some(terminal::recv_master(ours.as_raw_fd())?),
        None => None,
    };
    drop(relay);
    fg.wait(pid, master)
}
