//! `tmpcopyup`: a tmpfs that starts with the directory's old content.

use super::perm;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Context, Error, Result};

/// tmpfs with `tmpcopyup`: the directory's content is copied into the new tmpfs (podman's
/// --read-only uses it for /etc, /run and friends).
pub(super) fn tmpcopyup(source: &str, target: &str, flags: MsFlags, data: &str) -> Result<()> {
    let tmp = tempdir()?;
    let r = (|| {
        mount(
            Some(source),
            tmp.as_path(),
            Some("tmpfs"),
            flags.difference(MsFlags::MS_RDONLY),
            Some(data),
        )
        .ctx(|| "mount tmpfs".into())?;
        copy_tree(Path::new(target), &tmp).ctx(|| "tmpcopyup".into())?;
        if flags.contains(MsFlags::MS_RDONLY) {
            mount(
                None::<&str>,
                tmp.as_path(),
                None::<&str>,
                MsFlags::MS_REMOUNT | flags,
                Some(data),
            )
            .ctx(|| "remount tmpfs ro".into())?;
        }
        mount(
            Some(tmp.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "move tmpfs into place".into())
    })();
    let _ = umount2(tmp.as_path(), MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&tmp);
    r
}

fn tempdir() -> Result<PathBuf> {
    for i in 0..100u32 {
        let p = std::env::temp_dir().join(format!("tong-tmpcopyup-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::path("cannot create", &p, e)),
        }
    }
    Err(Error::other("cannot create a temporary directory"))
}

/// Copies a directory tree, keeping modes, owners and symlinks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_dir_entries(from, to, true)
}

fn copy_dir_entries(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // The top directory may be reached through a /proc/self/fd link: follow it.
    let m = if top {
        std::fs::metadata(from)?
    } else {
        std::fs::symlink_metadata(from)?
    };
    std::fs::set_permissions(to, perm(m.mode() & 0o7777))?;
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let em = std::fs::symlink_metadata(&src)?;
        let ft = em.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_dir_entries(&src, &dst, false)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            std::os::unix::fs::lchown(&dst, Some(em.uid()), Some(em.gid()))?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
            std::os::unix::fs::lchown(&dst, Some(em.uid()), Some(em.gid()))?;
        }
    }
    Ok(())
}
