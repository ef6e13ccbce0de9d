//! The thin layer of raw system calls that nix does not wrap. Every `unsafe` block in tong's
//! launch path lives here (this module and its files), each with the reason it is sound.

use std::io;

mod bpf;
mod fd;
mod fork;
mod mount;
mod process;

pub use bpf::*;
pub use fd::*;
pub use fork::*;
pub use mount::*;
pub use process::*;

pub(crate) fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub(crate) fn check_int(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
