//! `tong delete`

use super::Global;
use crate::container;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Forcibly deletes the container if it is still running (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// the container's id
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    container::delete(&g.root, &a.id, a.force)?;
    Ok(0)
}
