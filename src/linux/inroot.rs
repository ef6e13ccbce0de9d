//! Paths inside the container's rootfs, resolved by the kernel inside it.
//!
//! The fast path is one `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` per lookup and
//! `*at` calls on a directory fd resolved that way, whose last component is never followed
//! (mkdirat, mknodat, symlinkat, O_NOFOLLOW). Anything the fast path does not settle (a
//! dangling symlink on the way, a kernel without openat2) goes to pathrs, which handles
//! those cases at the price of its procfs checks (some 60 system calls per operation).

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;
use pathrs::Root;

use crate::error::{Error, Result};

/// A destination as an absolute, lexically clean path (runc turns a relative one absolute).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in p.components() {
        match comp {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// An O_PATH fd for `path` (symlinks followed inside the rootfs).
pub fn resolve(root: &Root, path: &Path) -> Result<OwnedFd> {
    match openat2(root.as_fd(), path, how(OFlag::empty())) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOSYS) => root
            .resolve(path)
            .map(OwnedFd::from)
            .map_err(|e| Error::other(format!("resolving {}: {e}", path.display()))),
        Err(e) => Err(Error::sys(
            format!("resolving {} in the rootfs", path.display()),
            e,
        )),
    }
}

/// `mkdir -p` inside the rootfs; an O_PATH fd of the directory. Symlinks are followed
/// inside the rootfs only, including dangling ones (whose target is created, in the
/// rootfs), as runc's MkdirAllInRoot does.
pub fn mkdir_all(root: &Root, path: &Path) -> Result<OwnedFd> {
    let path = clean(path);
    if let Some(fd) = mkdir_fast(root, &path, 0) {
        return Ok(fd);
    }
    mkdir_slow(root, path)
}

fn mkdir_fast(root: &Root, path: &Path, depth: usize) -> Option<OwnedFd> {
    match openat2(root.as_fd(), path, how(OFlag::O_DIRECTORY)) {
        Ok(fd) => Some(fd),
        Err(Errno::ENOENT) if depth < 64 => {
            let (parent, name) = (path.parent()?, path.file_name()?);
            let pfd = mkdir_fast(root, parent, depth + 1)?;
            match nix::sys::stat::mkdirat(&pfd, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) => {}
                // Someone else made it meanwhile, or it is a dangling symlink: the open below
                // refuses a symlink, and the slow path takes over.
                Err(Errno::EEXIST) => {}
                Err(_) => return None,
            }
            let beneath = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            openat2(&pfd, name, beneath).ok()
        }
        Err(_) => None,
    }
}

fn mkdir_slow(root: &Root, mut path: PathBuf) -> Result<OwnedFd> {
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    for _ in 0..40 {
        match root.mkdir_all(&path, &mode) {
            Ok(h) => return Ok(h.into()),
            Err(e) => {
                // Find the first component that is a symlink and substitute its target.
                let mut prefix = PathBuf::from("/");
                let mut replaced = None;
                let comps: Vec<_> = path.components().skip(1).collect();
                for (i, c) in comps.iter().enumerate() {
                    prefix.push(c);
                    if let Ok(target) = root.readlink(&prefix) {
                        // A procfs link's text (/proc/self/fd/N, /proc/self/cwd) names a
                        // host path, not one in the rootfs: never recreate it here.
                        if on_procfs(root, prefix.parent().unwrap_or(Path::new("/"))) {
                            return Err(Error::other(format!(
                                "creating {} in the rootfs: {} is a link in /proc",
                                path.display(),
                                prefix.display()
                            )));
                        }
                        let base = if target.is_absolute() {
                            target
                        } else {
                            prefix.parent().unwrap_or(Path::new("/")).join(target)
                        };
                        let rest: PathBuf = comps[i + 1..].iter().collect();
                        replaced = Some(clean(&base.join(rest)));
                        break;
                    }
                }
                match replaced {
                    Some(p) => path = p,
                    None => {
                        return Err(Error::other(format!(
                            "creating {} in the rootfs: {e}",
                            path.display()
                        )));
                    }
                }
            }
        }
    }
    Err(Error::other(format!(
        "creating {} in the rootfs: too many levels of symbolic links",
        path.display()
    )))
}

fn on_procfs(root: &Root, dir: &Path) -> bool {
    resolve(root, dir).is_ok_and(|fd| {
        nix::sys::statfs::fstatfs(&fd)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
    })
}

/// The directory that will hold `path` (created in-root if missing) and the last component.
pub fn parent<'p>(root: &Root, path: &'p Path) -> Result<(OwnedFd, &'p OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::other(format!("{}: no file name", path.display())))?;
    let dir = mkdir_all(root, path.parent().unwrap_or(Path::new("/")))?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("a/../../b/./c")), PathBuf::from("/b/c"));
        assert_eq!(clean(Path::new("/../..")), PathBuf::from("/"));
    }
}
