//! The container's root filesystem: mounts (resolved inside the rootfs), /dev, `pivot_root`,
//! masked and read-only paths. Runs in the container's init, in its new mount namespace.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxDevice;
use pathrs::Root;

use crate::error::{Context, Error, Result};
use crate::linux::mounts::{self, MountOptions, Planned};
use crate::linux::{inroot, sys};

mod cgroup;
mod finish;
mod pivot;

use cgroup::mount_cgroup;
pub use cgroup::{CgroupMount, cgroup_bind_name};
pub mod ops;
mod tmpcopy;
pub use finish::{Finish, finalize};
pub use pivot::{chroot_into, enter};

/// What the rootfs needs, typed by the launcher from the validated config.
pub struct RootfsConfig<'a> {
    /// The kernel's calls (`ops::Kernel`), or a unit test's fake.
    pub ops: &'a dyn ops::Ops,
    pub rootfs: &'a Path,
    /// config.json's `mounts`, parsed (`spec::Plan`).
    pub mounts: &'a [Planned],
    /// `linux.rootfsPropagation` (None: rslave, as runc).
    pub propagation: Option<MsFlags>,
    /// `linux.devices`, made in /dev (unless /dev is a bind mount).
    pub devices: &'a [LinuxDevice],
    /// `process.cwd`, made when missing (runc does).
    pub cwd: Option<&'a Path>,
    /// `process.terminal`: /dev/console's mount point is made.
    pub terminal: bool,
    /// (hierarchy, container's cgroup dir) for the `cgroup` mount type.
    pub cgroups: &'a [CgroupMount],
    pub cgroupns: bool,
    pub userns: bool,
    /// Detached idmapped mounts made by the parent, by index in `mounts`.
    pub idmapped: &'a [(usize, std::os::fd::OwnedFd)],
    /// Bind sources tong opened in this mount namespace as the host's root (with a user
    /// namespace), by index.
    pub sources: &'a [(usize, std::os::fd::OwnedFd)],
    /// Returns once the container's cgroup directories exist (the parent may still be
    /// making them while the init mounts).
    pub await_cgroups: &'a dyn Fn() -> Result<()>,
}

fn fdpath(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

fn perm(mode: u32) -> std::fs::Permissions {
    std::fs::Permissions::from_mode(mode)
}

/// Mount propagation, the rootfs bind, every config mount and the devices: everything
/// before `pivot_root`.
pub fn prepare(c: &RootfsConfig) -> Result<()> {
    let prop = c.propagation.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // An unbindable tree cannot be bind mounted: the rootfs bind needs it private first, and
    // `finalize` makes the new root unbindable (as crun does; runc 1.1.5 fails here).
    let first = match prop.intersects(MsFlags::MS_UNBINDABLE) {
        true => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        false => prop,
    };
    ops::mount(c.ops, None::<&str>, "/", None::<&str>, first, None::<&str>)
        .ctx(|| "making / a slave mount".into())?;
    if prop.intersects(MsFlags::MS_SHARED) {
        make_parent_private(c)?;
    }
    ops::mount(
        c.ops,
        Some(c.rootfs),
        c.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mounting rootfs {}", c.rootfs.display()))?;

    let root = Root::open(c.rootfs)
        .map_err(|e| Error::other(format!("opening rootfs {}: {e}", c.rootfs.display())))?;
    let mut dev_is_bind = false;
    for m in c.mounts {
        let i = m.index;
        if m.dest == Path::new("/dev") && m.opts.is_bind() {
            dev_is_bind = true;
        }
        let fds = MountFds {
            idmapped: c.idmapped.iter().find(|(j, _)| *j == i).map(|(_, fd)| fd),
            source: c.sources.iter().find(|(j, _)| *j == i).map(|(_, fd)| fd),
        };
        mount_one(c, &root, m, fds)
            .map_err(|e| Error::other(format!("mounts[{i}] ({}): {e}", m.destination.display())))?;
    }
    // runc creates a missing working directory.
    if let Some(cwd) = c.cwd {
        inroot::mkdir_all(&root, cwd).map_err(|e| Error::other(format!("process.cwd: {e}")))?;
    }
    if !dev_is_bind {
        c.ops.devices(&root, c.devices, c.userns)?;
        // The mount point of a terminal's /dev/console, while /dev is still writable.
        if c.terminal {
            let (dir, name) = inroot::parent(&root, Path::new("/dev/console"))?;
            match nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys("creating /dev/console", e)),
            }
        }
    }
    Ok(())
}

fn make_parent_private(c: &RootfsConfig) -> Result<()> {
    let rootfs = c.rootfs;
    // Find the mount point that holds the rootfs and make it private: pivot_root refuses a
    // shared parent.
    let info = c.ops.mountinfo()?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            let mp = Path::new(mp);
            if rootfs.starts_with(mp) && mp.as_os_str().len() > best.as_os_str().len() {
                best = mp.to_path_buf();
            }
        }
    }
    ops::mount(
        c.ops,
        None::<&str>,
        &best,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| format!("making {} private", best.display()))
}

/// What the parent opened for one mount: its detached idmapped mount, or its bind source
/// opened as the host's root.
#[derive(Clone, Copy)]
struct MountFds<'a> {
    idmapped: Option<&'a OwnedFd>,
    source: Option<&'a OwnedFd>,
}

fn mount_one(c: &RootfsConfig, root: &Root, m: &Planned, fds: MountFds) -> Result<()> {
    let (typ, dest, opts) = (m.typ.as_str(), m.dest.as_path(), &m.opts);
    if m.bind {
        return bind_mount(c, root, m, fds);
    }
    if typ == "cgroup" {
        (c.await_cgroups)()?;
        return mount_cgroup(c, root, dest, opts);
    }
    if typ == "proc" || typ == "sysfs" {
        ordinary_directory(c.rootfs, dest, typ)?;
    }
    let target = inroot::mkdir_all(root, dest)?;
    check_proc_dest(c, typ, &target)?;
    let target = fdpath(&target);
    let source = m
        .source
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| typ.to_string());
    // `remount` (with other options) changes the mount already at the destination: the kernel
    // ignores source and type then, as for runc.
    let mut flags = opts.flags.difference(MsFlags::MS_BIND | MsFlags::MS_REC);
    // A read-only /dev is made writable first: the devices and /dev/pts go in before
    // `finalize` remounts it read-only (runc's order).
    if dest == Path::new("/dev") {
        flags.remove(MsFlags::MS_RDONLY);
    }
    if opts.tmpcopyup && typ == "tmpfs" {
        return c.ops.tmpcopyup(&source, &target, flags, &opts.data());
    }
    let data = opts.data();
    let r = ops::mount(
        c.ops,
        Some(source.as_str()),
        target.as_str(),
        Some(typ),
        flags,
        Some(data.as_str()),
    );
    if let Err(e) = r {
        // mqueue/sysfs may refuse some flags in a user namespace; runc retries without them.
        if e == nix::errno::Errno::EPERM && c.userns && typ == "sysfs" {
            flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            ops::mount(
                c.ops,
                Some("/sys"),
                target.as_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .ctx(|| "bind mounting /sys".into())?;
        } else {
            return Err(Error::sys(
                format!("mount {typ} {source:?} with options {data:?}"),
                e,
            ));
        }
    }
    finish(c, root, dest, opts)
}

/// procfs and sysfs go only on a directory that is no symlink (CVE-2019-19921,
/// CVE-2023-27561, CVE-2023-28642): a link planted by the image would lead the mount, and
/// later LSM and sysctl writes, elsewhere. A missing destination is made as a directory.
fn ordinary_directory(rootfs: &Path, dest: &Path, typ: &str) -> Result<()> {
    let path = rootfs.join(dest.strip_prefix("/").unwrap_or(dest));
    match std::fs::symlink_metadata(&path) {
        Ok(m) if !m.is_dir() => Err(Error::other(format!(
            "filesystem {typ:?} must be mounted on ordinary directory"
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::path("cannot stat mount destination", &path, e)),
    }
}

/// runc's rule: nothing but procfs itself is mounted inside the container's /proc, wherever
/// the destination's path (symlinks included) leads, except over the files lxcfs replaces.
/// A decoy there would feed lies to the container's own setup (cap_last_cap, attr files).
fn check_proc_dest(c: &RootfsConfig, typ: &str, target: &OwnedFd) -> Result<()> {
    const LXCFS: [&str; 10] = [
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    ];
    if typ == "proc" {
        return Ok(());
    }
    let fs = nix::sys::statfs::fstatfs(target)
        .map_err(|e| Error::sys("statfs of a mount destination", e))?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Ok(());
    }
    let host = std::fs::read_link(fdpath(target)).unwrap_or_default();
    let inside = match host.strip_prefix(c.rootfs) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => host,
    };
    if LXCFS.iter().any(|p| Path::new(p) == inside) {
        return Ok(());
    }
    Err(Error::config(format!(
        "{} cannot be mounted because it is inside /proc",
        inside.display()
    )))
}

/// Propagation and recursive attributes, on the mount now at `dest`.
fn finish(c: &RootfsConfig, root: &Root, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() && opts.rec_set == 0 && opts.rec_clr == 0 {
        return Ok(());
    }
    let h = inroot::resolve(root, dest)?;
    let target = fdpath(&h);
    for p in &opts.propagation {
        ops::mount(
            c.ops,
            None::<&str>,
            target.as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .ctx(|| "setting propagation".into())?;
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let mut set = opts.rec_set & !mounts::ATIME_MARK;
        let mut clr = opts.rec_clr;
        if opts.rec_set & mounts::ATIME_MARK != 0 {
            clr |= sys::MOUNT_ATTR__ATIME;
            set &= !0;
        }
        let attr = sys::MountAttr {
            attr_set: set,
            attr_clr: clr,
            propagation: 0,
            userns_fd: 0,
        };
        c.ops
            .setattr(h.as_fd(), &attr)
            .ctx(|| "mount_setattr (recursive options)".into())?;
    }
    Ok(())
}

fn bind_mount(c: &RootfsConfig, root: &Root, m: &Planned, fds: MountFds) -> Result<()> {
    let (dest, opts) = (m.dest.as_path(), &m.opts);
    let MountFds { idmapped, source } = fds;
    let src = m
        .source
        .as_ref()
        .ok_or_else(|| Error::config("bind mount without a source"))?;
    // Opened by tong as the host's root: the fd reaches what the path may not.
    let via = source.map(|fd| PathBuf::from(fdpath(fd)));
    let meta = std::fs::metadata(via.as_ref().unwrap_or(src)).at("bind mount source", src)?;
    let handle = if meta.is_dir() {
        inroot::mkdir_all(root, dest)?
    } else {
        match inroot::resolve(root, dest) {
            Ok(h) => h,
            Err(_) => {
                // A file mount point: created (never through a symlink) in its in-root parent.
                let (dir, name) = inroot::parent(root, dest)?;
                let f = nix::fcntl::openat(
                    &dir,
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC
                        | OFlag::O_RDONLY,
                    Mode::from_bits_truncate(0o644),
                );
                match f {
                    Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(Error::sys(
                            format!("creating mount point {}", dest.display()),
                            e,
                        ));
                    }
                }
                inroot::resolve(root, dest)?
            }
        }
    };
    check_proc_dest(c, "bind", &handle)?;
    if let Some(fd) = idmapped {
        c.ops
            .move_mount(fd.as_fd(), handle.as_fd())
            .map_err(|e| Error::sys(format!("attaching idmapped mount of {}", src.display()), e))?;
    } else {
        let target = fdpath(&handle);
        let rec = opts.flags & MsFlags::MS_REC;
        ops::mount(
            c.ops,
            Some(via.as_ref().unwrap_or(src)),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {}", src.display()))?;
    }
    drop(handle);
    let extra = opts
        .flags
        .difference(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        let h = inroot::resolve(root, dest)?;
        ops::remount_bind(c.ops, Path::new(&fdpath(&h)), extra)?;
    }
    finish(c, root, dest, opts)
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks (nosuid, nodev,
/// noexec, atime) from the source when the plain remount is refused.
fn locked_flags(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as S;
    let mut m = MsFlags::empty();
    for (s, ms) in [
        (S::ST_NOSUID, MsFlags::MS_NOSUID),
        (S::ST_NODEV, MsFlags::MS_NODEV),
        (S::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (S::ST_NOATIME, MsFlags::MS_NOATIME),
        (S::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // ST_RELATIME (4096): named by glibc's nix bindings only.
        (S::from_bits_retain(4096), MsFlags::MS_RELATIME),
        (S::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(s) {
            m |= ms;
        }
    }
    m
}

#[cfg(test)]
mod tests;
