//! Idmapped mounts: bind mounts with the `idmap`/`ridmap` options or mount-level
//! `uidMappings`/`gidMappings`.
//!
//! Only a process privileged over the source's filesystem (the host's root) may idmap a
//! mount, and only a detached one; the container's init holds no such privilege once it is
//! in its user namespace. So tong makes each one on the host side, after the init's id maps
//! are written: `open_tree(OPEN_TREE_CLONE)` of the source, `mount_setattr(MOUNT_ATTR_IDMAP)`
//! with a user namespace carrying the mapping, and passes the fd to the init, which attaches
//! it at its in-root destination (runc 1.2 works the same way).
//!
//! The mapping is the mount's own `uidMappings`/`gidMappings` when given (a user namespace
//! made for it), else the container's user namespace.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use crate::error::{Context, Error, Result};
use crate::linux::{namespaces, sys};

/// How a mount is idmapped: (the source tree is taken recursively, the idmap applies to the
/// whole tree). None for an ordinary mount.
pub fn wanted(m: &Mount) -> Option<(bool, bool)> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let has = |o: &str| opts.iter().any(|x| x == o);
    if !(has("idmap") || has("ridmap") || m.uid_mappings().is_some() || m.gid_mappings().is_some())
    {
        return None;
    }
    Some((has("rbind") || has("ridmap"), has("ridmap")))
}

/// Makes the detached idmapped mounts of `spec` (index in `mounts`, mount fd).
/// `userns` is the container's user namespace (its maps already written).
pub fn prepare(spec: &Spec, bundle: &Path, userns: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Some((tree, recursive)) = wanted(m) else {
            continue;
        };
        let what = |e: &dyn std::fmt::Display| {
            Error::other(format!(
                "mounts[{i}] ({}): idmapped mount: {e}",
                m.destination().display()
            ))
        };
        let src = crate::linux::mounts::source_path(m, bundle).ok_or_else(|| what(&"no source"))?;
        let fd = sys::open_tree_clone(&src.to_string_lossy(), tree)
            .map_err(|e| what(&format!("open_tree {}: {e}", src.display())))?;
        let userns = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) => userns_with(u, g).map_err(|e| what(&e))?,
            _ => nix::fcntl::open(userns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .at("cannot open", userns)?,
        };
        let attr = sys::MountAttr {
            attr_set: sys::MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        };
        sys::mount_setattr(fd.as_raw_fd(), "", recursive, &attr).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EINVAL) => what(&format!(
                    "the filesystem of {} does not support idmapped mounts (mount_setattr: {e})",
                    src.display()
                )),
                _ => what(&format!(
                    "mount_setattr(MOUNT_ATTR_IDMAP) on {}: {e}",
                    src.display()
                )),
            }
        })?;
        out.push((i, fd));
    }
    Ok(out)
}

/// A user namespace with the given maps, held by a process that exits once its namespace
/// fd is open.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    match sys::clone_fork(libc::CLONE_NEWUSER as u64, Some(libc::SIGCHLD), None)
        .map_err(|e| Error::sys("clone a user namespace", e))?
    {
        sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&r, &mut b);
            sys::exit_now(0);
        }
        sys::Forked::Parent(pid) => {
            drop(r);
            let res = namespaces::write_id_maps(pid, uid, gid).and_then(|()| {
                let p = format!("/proc/{pid}/ns/user");
                nix::fcntl::open(
                    p.as_str(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .at("cannot open", &p)
            });
            drop(w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            res
        }
    }
}
