//! `tong run`: create + start, then (unless detached) wait, forward signals, delete.

use std::path::PathBuf;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Global;
use crate::container::{self, CreateOpts};
use crate::error::Result;
use crate::linux::sys;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// path to the root of the bundle directory, defaults to the current directory
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// the container's id
    pub id: String,
}

/// Signals a foreground `run` passes on to the container.
const FORWARD: [i32; 9] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    let opts = CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds + super::create::listen_fds(),
    };
    if a.detach {
        container::create(&g.root, &opts)?;
        if let Err(e) = container::start(&g.root, &a.id) {
            let _ = container::delete(&g.root, &a.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // Queue the signals to forward (and SIGCHLD) from now on; the init resets its mask.
    let mut waited = FORWARD.to_vec();
    waited.push(libc::SIGCHLD);
    sys::block_signals(&waited);
    // Orphans of a container without its own pid namespace come back to us to be reaped.
    let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    let pid = container::create(&g.root, &opts)?;
    if let Err(e) = container::start(&g.root, &a.id) {
        let _ = container::delete(&g.root, &a.id, true);
        return Err(e);
    }
    let code = loop {
        if let Some(code) = reap(pid) {
            break code;
        }
        let sig = sys::wait_signal(&waited);
        if sig != libc::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::try_from(sig).ok());
        }
    };
    if !a.keep {
        container::delete(&g.root, &a.id, true)?;
    }
    Ok(code)
}

/// Reaps every exited child; returns the init's exit code once it has exited
/// (128+N when killed by signal N).
fn reap(init: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => result = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => result = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}
