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
use oci_spec::runtime::LinuxIdMapping;

use crate::error::{Context, Error, Result};
use crate::linux::mounts::Planned;
use crate::linux::{namespaces, sys};

/// Makes the detached idmapped mounts of the config (index in `mounts`, mount fd).
/// `userns` is the container's user namespace (its maps already written).
pub fn prepare(mounts: &[Planned], userns: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for m in mounts {
        let Some(idmap) = &m.idmap else {
            continue;
        };
        let i = m.index;
        let what = |e: &dyn std::fmt::Display| {
            Error::other(format!(
                "mounts[{i}] ({}): idmapped mount: {e}",
                m.destination.display()
            ))
        };
        let src = m.source.as_ref().ok_or_else(|| what(&"no source"))?;
        let fd = sys::open_tree_clone(&src.to_string_lossy(), idmap.tree)
            .map_err(|e| what(&format!("open_tree {}: {e}", src.display())))?;
        let userns = match &idmap.maps {
            Some((u, g)) => userns_with(u, g).map_err(|e| what(&e))?,
            None => nix::fcntl::open(userns, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .at("cannot open", userns)?,
        };
        let recursive = idmap.recursive;
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
    // The child waits for the pipe's end (the parent's end closed) and exits.
    let pid = sys::fork_child(
        libc::CLONE_NEWUSER as u64,
        Some(libc::SIGCHLD),
        None,
        &[std::os::fd::AsRawFd::as_raw_fd(&w)],
        || {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&r, &mut b);
            0
        },
    )
    .map_err(|e| Error::sys("clone a user namespace", e))?
    .pid;
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
