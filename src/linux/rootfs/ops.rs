//! The calls by path that the steps after `pivot_root` make, behind a small trait: the
//! kernel's in the init ([`Kernel`]), a recording fake in unit tests, so what tong does for
//! a config's read-only, masked and propagation settings is checked without root.

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statvfs::FsFlags;

use super::{fdpath, locked_flags};
use crate::error::{Context, Error, Result};

pub trait Ops {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// The flags of the filesystem mounted at `path`.
    fn statvfs(&mut self, path: &str) -> nix::Result<FsFlags>;
    /// Whether `path` is a directory (None: nothing there).
    fn is_dir(&mut self, path: &str) -> Option<bool>;
    /// The null device as a bind source: an fd to keep open while it is used, and its path.
    /// Refused when /dev/null is not the real null device (CVE-2025-31133).
    fn null_device(&mut self) -> Result<(Option<OwnedFd>, String)>;
}

/// The real calls.
pub struct Kernel;

impl Ops for Kernel {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn statvfs(&mut self, path: &str) -> nix::Result<FsFlags> {
        nix::sys::statvfs::statvfs(path).map(|s| s.flags())
    }

    fn is_dir(&mut self, path: &str) -> Option<bool> {
        std::fs::symlink_metadata(path).ok().map(|m| m.is_dir())
    }

    fn null_device(&mut self) -> Result<(Option<OwnedFd>, String)> {
        // nix's open, not std's: std masks O_ACCMODE out of custom flags, and musl counts
        // O_PATH in O_ACCMODE, so std would open (and block on a FIFO planted as) /dev/null.
        let null = nix::fcntl::open(
            "/dev/null",
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .at("maskedPaths: cannot open", "/dev/null")?;
        let st = nix::sys::stat::fstat(&null).ctx(|| "fstat /dev/null".into())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
            return Err(Error::other(
                "maskedPaths: /dev/null is not the null device".to_string(),
            ));
        }
        let path = fdpath(&null);
        Ok((Some(null), path))
    }
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks (nosuid, nodev,
/// noexec, atime) from the source when the plain remount is refused.
pub fn remount_bind(ops: &mut impl Ops, target: &str, flags: MsFlags) -> Result<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match ops.mount(None, target, None, base | flags, None) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            let locked = locked_flags(ops.statvfs(target).ctx(|| format!("statvfs {target}"))?);
            ops.mount(None, target, None, base | flags | locked, None)
                .ctx(|| "remount bind mount".into())
        }
        Err(e) => Err(Error::sys("remount bind mount", e)),
    }
}
