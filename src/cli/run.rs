//! `tong run`: create + start, then (unless detached) wait, forward signals, delete.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::Global;
use super::create::CreateFlags;
use crate::container;
use crate::error::{Error, Result};
use crate::launch::foreground::Foreground;
use crate::linux::terminal;
use crate::logging;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// the container's id
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    let mut opts = a.flags.opts(&a.id);
    if a.detach {
        let created = container::create(&g.root, &opts)?;
        if let Err(e) = container::start_created(&g.root, &a.id, created) {
            let _ = container::delete(&g.root, &a.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    // Without a console socket, a foreground run relays the container's terminal itself.
    let relay = match &a.flags.console_socket {
        None => Some(UnixStream::pair().map_err(|e| Error::sys("socketpair", e))?),
        Some(_) => None,
    };
    opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_raw_fd());
    let fg = Foreground::begin()?;
    let created = container::create(&g.root, &opts)?;
    let master = match &relay {
        Some((ours, _)) if created.terminal => match terminal::recv_master(ours.as_raw_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = container::delete(&g.root, &a.id, true);
                return Err(e);
            }
        },
        _ => None,
    };
    drop(relay);
    let pid = created.state.pid;
    if let Err(e) = container::start_created(&g.root, &a.id, created) {
        let _ = container::delete(&g.root, &a.id, true);
        return Err(e);
    }
    logging::phase(crate::logging::phases::STARTED);
    let code = fg.wait(pid, master)?;
    logging::phase(crate::logging::phases::EXITED);
    if !a.keep {
        container::delete(&g.root, &a.id, true)?;
    }
    Ok(code)
}
