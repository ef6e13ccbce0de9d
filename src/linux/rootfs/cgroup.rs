//! The `cgroup` mount type: the container's own cgroups as it sees them.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use pathrs::Root;

use super::{RootfsConfig, fdpath, ops};
use crate::error::{Context, Error, Result};
use crate::linux::inroot;
use crate::linux::mounts::MountOptions;

/// One of the container's cgroup directories, as the `cgroup` mount type shows it.
#[derive(Debug, Clone)]
pub struct CgroupMount {
    /// The directory tong made for the container.
    pub dir: PathBuf,
    /// Where the hierarchy is mounted on the host.
    pub mount: PathBuf,
    /// The hierarchy's v1 controllers (`name=...` included); empty for cgroup2.
    pub controllers: Vec<String>,
}

impl CgroupMount {
    pub fn v2(&self) -> bool {
        self.controllers.is_empty()
    }

    /// What a bind shows: `dir`, or where it is gone, the init's cgroup in this hierarchy
    /// now (what runc binds, from /proc/self/cgroup). On a v1 host systemd, realizing a
    /// controller for a unit's siblings, may move the processes of an undelegated cgroup up
    /// and remove it. (`dir` first: the parent may still be moving the init in, see
    /// `Placement::WhileMounting`.)
    fn source(&self) -> PathBuf {
        if self.dir.is_dir() {
            return self.dir.clone();
        }
        crate::cgroups::current_dir(&self.mount).unwrap_or_else(|| self.dir.clone())
    }
}

/// The directory under a v1 `cgroup` mount's tmpfs where a hierarchy is bound: its
/// controllers joined ("cpu,cpuacct", "systemd" for name=systemd), or "unified" for cgroup2.
pub fn cgroup_bind_name(controllers: &[String]) -> String {
    if controllers.is_empty() {
        return "unified".to_string();
    }
    controllers
        .iter()
        .map(|s| s.strip_prefix("name=").unwrap_or(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// Binds the container's own cgroup directory `dir` at `dest` (in the rootfs), then remounts
/// it with the mount's flags and nosuid, nodev, noexec.
/// `target` is the mount point, opened in the rootfs.
fn bind_own_cgroup(
    c: &RootfsConfig,
    root: &Root,
    target: OwnedFd,
    dir: &Path,
    dest: &Path,
    flags: MsFlags,
) -> Result<()> {
    ops::mount(
        c.ops,
        Some(dir),
        fdpath(&target),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount cgroup {}", dir.display()))?;
    drop(target);
    // Resolved again: the fd above is the directory under the new mount.
    let m = inroot::resolve(root, dest)?;
    ops::remount_bind(
        c.ops,
        Path::new(&fdpath(&m)),
        flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
}

/// The `cgroup` mount type. With cgroup v2 alone: a cgroup2 mount. On v1 and hybrid hosts, as
/// runc builds it: a tmpfs with one mount per hierarchy (the container's own cgroup bound, or
/// a fresh cgroup mount inside a cgroup namespace).
pub(super) fn mount_cgroup(
    c: &RootfsConfig,
    root: &Root,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let target = inroot::mkdir_all(root, dest)?;
    let tpath = fdpath(&target);
    let flags = opts
        .flags
        .difference(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let only_v2 = !c.cgroups.is_empty() && c.cgroups.iter().all(CgroupMount::v2);
    if only_v2 {
        return match ops::mount(
            c.ops,
            Some("cgroup2"),
            tpath.as_str(),
            Some("cgroup2"),
            flags,
            None::<&str>,
        ) {
            Ok(()) => Ok(()),
            // In a user namespace without its own cgroup namespace the kernel refuses a new
            // cgroup2 mount; bind the container's own cgroup instead (runc binds too).
            Err(nix::errno::Errno::EPERM) | Err(nix::errno::Errno::EBUSY) if c.userns => {
                bind_own_cgroup(c, root, target, &c.cgroups[0].source(), dest, flags)
            }
            Err(e) => Err(Error::sys("mount cgroup2", e)),
        };
    }
    ops::mount(
        c.ops,
        Some("tmpfs"),
        tpath.as_str(),
        Some("tmpfs"),
        flags.difference(MsFlags::MS_RDONLY),
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups".into())?;
    drop(target);
    for cg in c.cgroups {
        let name = cgroup_bind_name(&cg.controllers);
        let sub = dest.join(&name);
        let t = inroot::mkdir_all(root, &sub)?;
        let tp = fdpath(&t);
        if c.cgroupns {
            let (fstype, data) = if cg.v2() {
                ("cgroup2", String::new())
            } else {
                ("cgroup", cg.controllers.join(","))
            };
            ops::mount(
                c.ops,
                Some("cgroup"),
                tp.as_str(),
                Some(fstype),
                flags,
                Some(data.as_str()),
            )
            .ctx(|| format!("mount cgroup {name}"))?;
        } else {
            bind_own_cgroup(c, root, t, &cg.source(), &sub, flags)?;
        }
        // Co-mounted controllers get a symlink each (cpu -> cpu,cpuacct).
        if cg.controllers.len() > 1 {
            for ctl in &cg.controllers {
                let link = dest.join(ctl.strip_prefix("name=").unwrap_or(ctl));
                let _ = root.create(&link, &pathrs::InodeType::Symlink(name.clone().into()));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let h = inroot::resolve(root, dest)?;
        ops::mount(
            c.ops,
            None::<&str>,
            fdpath(&h).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )
        .ctx(|| "remount cgroup tmpfs read-only".into())?;
    }
    Ok(())
}
