//! After `pivot_root`: read-only and masked paths, a read-only root and /dev, the root's
//! propagation.

use std::path::Path;

use nix::mount::MsFlags;

use super::locked_flags;
use super::ops::{Kernel, Ops, mount, remount_bind};
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
    finalize_with(&Kernel, f)
}

fn finalize_with(ops: &dyn Ops, f: &Finish) -> Result<()> {
    for p in f.readonly_paths {
        readonly_path(ops, p)?;
    }
    for p in f.masked_paths {
        mask_path(ops, p)?;
    }
    if dev_readonly(f.mounts) {
        let st = ops
            .statvfs(Path::new("/dev"))
            .ctx(|| "statvfs /dev".into())?;
        mount(
            ops,
            None::<&str>,
            "/dev",
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | locked_flags(st),
            None,
        )
        .ctx(|| "making /dev read-only".into())?;
    }
    if f.readonly_root {
        remount_bind(ops, Path::new("/"), MsFlags::MS_RDONLY)
            .map_err(|e| Error::other(format!("making the root read-only: {e}")))?;
    }
    // The root itself ends with the configured propagation; mounts below keep what their
    // own options made them (a `shared` bind stays shared under rslave).
    if let Some(p) = f.propagation {
        mount(
            ops,
            None::<&str>,
            "/",
            None,
            p.difference(MsFlags::MS_REC),
            None,
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

fn readonly_path(ops: &dyn Ops, p: &str) -> Result<()> {
    let path = Path::new(p);
    match mount(
        ops,
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("readonlyPaths: bind {p}"), e)),
    }
    remount_bind(ops, path, MsFlags::MS_RDONLY | MsFlags::MS_REC)
        .map_err(|e| Error::other(format!("readonlyPaths: {p}: {e}")))
}

/// Masks a path: a directory gets an empty read-only tmpfs, anything else /dev/null, which
/// must really be the null device (a container cannot swap it for a symlink: CVE-2025-31133).
fn mask_path(ops: &dyn Ops, p: &str) -> Result<()> {
    let path = Path::new(p);
    match ops.is_dir(path) {
        None => Ok(()),
        Some(true) => mount(
            ops,
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
        .ctx(|| format!("maskedPaths: tmpfs on {p}")),
        Some(false) => {
            let (_keep, null) = ops.null_device()?;
            match mount(
                ops,
                Some(Path::new(&null)),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            ) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
                Err(e) => Err(Error::sys(format!("maskedPaths: bind /dev/null on {p}"), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;
    use nix::mount::MsFlags;
    use nix::sys::statvfs::FsFlags;

    use super::super::ops::testing::Fake;
    use super::*;

    fn finish<'a>(ro: &'a [String], masked: &'a [String]) -> Finish<'a> {
        Finish {
            readonly_paths: ro,
            masked_paths: masked,
            readonly_root: false,
            propagation: None,
            mounts: &[],
        }
    }

    #[test]
    fn read_only_masked_and_propagation_in_order() {
        let ro = ["/proc/sys".to_string(), "/proc/gone".to_string()];
        let masked = [
            "/proc/acpi".to_string(),
            "/proc/kcore".to_string(),
            "/proc/absent".to_string(),
        ];
        let f = Fake::default();
        f.dirs.borrow_mut().insert("/proc/acpi".into(), true);
        f.dirs.borrow_mut().insert("/proc/kcore".into(), false);
        f.refuse("/proc/gone", Errno::ENOENT);
        let mut cfg = finish(&ro, &masked);
        cfg.propagation = Some(MsFlags::MS_SHARED | MsFlags::MS_REC);
        finalize_with(&f, &cfg).unwrap();
        let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_REC;
        assert_eq!(
            f.calls(),
            [
                format!("mount /proc/sys /proc/sys - {rec:?}"),
                format!("mount - /proc/sys - {remount:?}"),
                // A read-only path that does not exist is skipped.
                format!("mount /proc/gone /proc/gone - {rec:?}"),
                format!("mount tmpfs /proc/acpi tmpfs {:?}", MsFlags::MS_RDONLY),
                format!("mount NULL /proc/kcore - {:?}", MsFlags::MS_BIND),
                // The root's own propagation, never recursive.
                format!("mount - / - {:?}", MsFlags::MS_SHARED),
            ]
        );
    }

    #[test]
    fn a_refused_read_only_remount_keeps_the_locked_flags() {
        let f = Fake::default();
        f.locked.set(FsFlags::ST_NOSUID | FsFlags::ST_NODEV);
        f.refuse("/", Errno::EPERM);
        let mut cfg = finish(&[], &[]);
        cfg.readonly_root = true;
        finalize_with(&f, &cfg).unwrap();
        let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        assert_eq!(
            f.calls(),
            [
                format!("mount - / - {base:?}"),
                "statvfs /".to_string(),
                format!(
                    "mount - / - {:?}",
                    base | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
                ),
            ]
        );
        // Any other refusal is the error, named.
        let f = Fake::default();
        f.refuse("/", Errno::EBUSY);
        let e = finalize_with(&f, &cfg).unwrap_err().to_string();
        assert!(e.contains("making the root read-only"), "{e}");
    }
}
