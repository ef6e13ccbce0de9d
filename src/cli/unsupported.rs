//! `restore`, which the checkpoint and restore work brings: a clear error until then.

use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Rest {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(name: &str) -> Result<i32> {
    Err(Error::Usage(format!(
        "{name}: not implemented in this version of tong"
    )))
}
