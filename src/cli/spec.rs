//! `tong spec`: writes the default config.json.

use std::io::Write;
use std::path::PathBuf;

use super::Global;
use crate::error::{Context, Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(_g: &Global, a: Args) -> Result<i32> {
    if a.rootless {
        return Err(Error::Usage("spec --rootless: not implemented in this version of tong".into()));
    }
    let path = a.bundle.join("config.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage("File config.json exists. Remove it first".into()),
            _ => Error::path("cannot create", &path, e),
        })?;
    f.write_all(crate::spec::DEFAULT_SPEC.trim_end().as_bytes()).at("cannot write", &path)?;
    Ok(0)
}
