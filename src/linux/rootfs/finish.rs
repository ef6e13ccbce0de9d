//! After `pivot_root`: read-only and masked paths, a read-only root and /dev, the root's
//! propagation.

use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use super::{fdpath, locked_flags, remount_bind};
use crate::error::{Context, Error, Result};
use crate::linux::mounts::Planned;

/// What [`finalize`] does after pivot_root, typed by the launcher.
pub struct Finish<'a> {
    /// `linux.readonlyPaths`.
    pub readonly_paths: &'a [String],
    /// `linux.maskedPaths`.
    pub masked_paths: &'a [String],
    /// `root.readonly`.
    pub readonly_root: bool,
    /// `linux.rootfsPropagation`, for the root itself.
    pub propagation: Option<MsFlags>,
    /// The mounts (a read-only /dev filesystem is remounted read-only now).
    pub mounts: &'a [Planned],
}

/// After pivot_root: read-only paths, masked paths, a read-only root, and rootfsPropagation.
pub fn finalize(f: &Finish) -> Result<()> {
    for p in f.readonly_paths {
        readonly_path(p)?;
    }
    for p in f.masked_paths {
        mask_path(p)?;
    }
    if dev_readonly(f.mounts) {
        let st = nix::sys::statvfs::statvfs("/dev").ctx(|| "statvfs /dev".into())?;
        mount(
            None::<&str>,
            "/dev",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked_flags(st.flags()),
            None::<&str>,
        )
        .ctx(|| "making /dev read-only".into())?;
    }
    if f.readonly_root {
        remount_bind("/", MsFlags::MS_RDONLY)
            .map_err(|e| Error::other(format!("making the root read-only: {e}")))?;
    }
    // The root itself ends with the configured propagation; mounts below keep what their
    // own options made them (a `shared` bind stays shared under rslave).
    if let Some(p) = f.propagation {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            p.difference(MsFlags::MS_REC),
            None::<&str>,
        )
        .ctx(|| "setting rootfsPropagation".into())?;
    }
    Ok(())
}

/// Whether the config mounts a filesystem (not a bind) read-only at /dev.
fn dev_readonly(mounts: &[Planned]) -> bool {
    mounts.iter().any(|m| {
        m.dest == Path::new("/dev") && !m.bind && m.opts.flags.contains(MsFlags::MS_RDONLY)
    })
}

fn readonly_path(p: &str) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("readonlyPaths: bind {p}"), e)),
    }
    remount_bind(p, MsFlags::MS_RDONLY | MsFlags::MS_REC)
        .map_err(|e| Error::other(format!("readonlyPaths: {p}: {e}")))
}

/// Masks a path: a directory gets an empty read-only tmpfs, anything else /dev/null, which
/// must really be the null device (a container cannot swap it for a symlink: CVE-2025-31133).
fn mask_path(p: &str) -> Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        return mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("maskedPaths: tmpfs on {p}"));
    }
    // nix's open, not std's: std masks O_ACCMODE out of custom flags, and musl counts O_PATH
    // in O_ACCMODE, so std would open (and block on a FIFO planted as) /dev/null.
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
    match mount(
        Some(fdpath(&null).as_str()),
        p,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys(format!("maskedPaths: bind /dev/null on {p}"), e)),
    }
}
