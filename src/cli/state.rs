//! `tong state`

use super::{Global, IdArg};
use crate::container;
use crate::error::{Error, Result};

pub type Args = IdArg;

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let s = container::state(&g.root, &a.id)?;
    let out = serde_json::to_string_pretty(&s).map_err(|e| Error::other(e.to_string()))?;
    println!("{out}");
    Ok(0)
}
