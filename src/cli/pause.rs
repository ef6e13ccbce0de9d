//! `tong pause` and `tong resume`

use super::{Global, IdArg};
use crate::container;
use crate::error::Result;

pub type Args = IdArg;

pub fn pause(g: &Global, a: Args) -> Result<i32> {
    container::pause(&g.root, &a.id)?;
    Ok(0)
}

pub fn resume(g: &Global, a: Args) -> Result<i32> {
    container::resume(&g.root, &a.id)?;
    Ok(0)
}
