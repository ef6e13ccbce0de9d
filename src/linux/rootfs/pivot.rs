//! Into the new root: `pivot_root` (or --no-pivot's move and chroot) and the plain chroot
//! of a container without its own mount namespace.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Context, Error, Result};
use crate::linux::{mounts, sys};

/// Makes the rootfs the new `/`: pivot_root, then the old root is detached. With `no_pivot`,
/// the rootfs is moved onto / and chrooted into, as runc's --no-pivot does.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        hide_host_procfs(rootfs)?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| "moving rootfs to /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else {
        let old = std::fs::File::open("/").at("cannot open", "/")?;
        sys::pivot_root(".", ".").ctx(|| format!("pivot_root {}", rootfs.display()))?;
        // The old root is now stacked under the new one: detach it without propagating.
        nix::unistd::fchdir(&old).ctx(|| "fchdir old root".into())?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "making old root a slave".into())?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching old root".into())?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// Without a mount namespace of its own: into the rootfs by chroot alone (runc chroots
/// too), nothing mounted or remounted in the host's mount table.
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// Before a --no-pivot chroot: every full procfs or sysfs mount (mountinfo root `/`) outside
/// the rootfs stays reachable in this mount namespace, and while one is, the kernel lets a
/// user namespace inside the container mount a fresh procfs. Make each a slave (so nothing
/// propagates to the host), detach it, and where that is refused cover it with a tmpfs, as
/// runc does.
fn hide_host_procfs(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .at("cannot read", "/proc/self/mountinfo")?;
    let mut targets = Vec::new();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(root), Some(mp), Some(fstype)) = (f.get(3), f.get(4), f.get(dash + 1)) else {
            continue;
        };
        let mp = PathBuf::from(mounts::unescape_mountinfo(mp));
        // Inside the rootfs by whole path components (/a/rootfs2 is not inside /a/rootfs).
        if *root != "/" || (*fstype != "proc" && *fstype != "sysfs") || mp.starts_with(rootfs) {
            continue;
        }
        targets.push(mp);
    }
    // Deepest first, so a parent's detach does not hide a child still to handle.
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in targets {
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            // Gone with a parent already detached.
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("--no-pivot: making {} a slave", p.display()),
                    e,
                ));
            }
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .ctx(|| format!("--no-pivot: covering {} with a tmpfs", p.display()))?;
            }
            Err(e) => {
                return Err(Error::sys(
                    format!("--no-pivot: detaching {}", p.display()),
                    e,
                ));
            }
        }
    }
    Ok(())
}
