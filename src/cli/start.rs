//! `tong start`

use super::{Global, IdArg};
use crate::container;
use crate::error::Result;

pub type Args = IdArg;

pub fn run(g: &Global, a: Args) -> Result<i32> {
    container::start(&g.root, &a.id)?;
    Ok(0)
}
