//! `tong run`: create + start, then (unless detached) wait, forward signals, delete.

use std::path::PathBuf;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::Global;
use crate::container::{self, CreateOpts};
use crate::error::{Error, Result};
use crate::launch::foreground::Foreground;
use crate::linux::terminal;

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

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    let mut opts = CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds + super::create::listen_fds(),
        console_fd: None,
    };
    if a.detach {
        container::create(&g.root, &opts)?;
        if let Err(e) = container::start(&g.root, &a.id) {
            let _ = container::delete(&g.root, &a.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // Without a console socket, a foreground run relays the container's terminal itself.
    let relay = match &a.console_socket {
        None => Some(UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?),
        Some(_) => None,
    };
    opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let fg = Foreground::begin()?;
    let pid = container::create(&g.root, &opts)?;
    let master = match &relay {
        Some((ours, _)) if terminal_requested(&g.root, &a.id) => match terminal::recv_master(ours.as_raw_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = container::delete(&g.root, &a.id, true);
                return Err(e);
            }
        },
        _ => None,
    };
    drop(relay);
    if let Err(e) = container::start(&g.root, &a.id) {
        let _ = container::delete(&g.root, &a.id, true);
        return Err(e);
    }
    let code = fg.wait(pid, master)?;
    if !a.keep {
        container::delete(&g.root, &a.id, true)?;
    }
    Ok(code)
}

fn terminal_requested(root: &std::path::Path, id: &str) -> bool {
    container::config(root, id).is_ok_and(|s| s.process().as_ref().is_some_and(|p| p.terminal() == Some(true)))
}
