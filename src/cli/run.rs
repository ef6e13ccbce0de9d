//! `tong run`: create + start, then (unless detached) wait, forward signals, delete.

use super::Global;
use super::create::CreateFlags;
use crate::container;
use crate::error::Result;

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
    let opts = a.flags.opts(&a.id, g.systemd_cgroup);
    if a.detach {
        container::run_detached(&g.root, &opts)?;
        return Ok(0);
    }
    container::run_attached(&g.root, opts, a.keep)
}
