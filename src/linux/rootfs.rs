//! The container's root filesystem: mounts (resolved inside the rootfs), /dev, `pivot_root`,
//! masked and read-only paths. Runs in the container's init, in its new mount namespace.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Mount, Spec};
use pathrs::Root;

use crate::cgroups::Hierarchy;
use crate::error::{Context, Error, Result};
use crate::linux::mounts::{self, MountOptions};
use crate::linux::{devices, inroot, sys};

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// (hierarchy, container's cgroup dir) for the `cgroup` mount type.
    pub cgroups: &'a [(Hierarchy, PathBuf)],
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
    let linux = c.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // An unbindable tree cannot be bind mounted: the rootfs bind needs it private first, and
    // `finalize` makes the new root unbindable (as crun does; runc 1.1.5 fails here).
    let first = match prop.intersects(MsFlags::MS_UNBINDABLE) {
        true => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        false => prop,
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
        .ctx(|| "making / a slave mount".into())?;
    if prop.intersects(MsFlags::MS_SHARED) {
        make_parent_private(c.rootfs)?;
    }
    mount(
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
    for (i, m) in c.spec.mounts().iter().flatten().enumerate() {
        let dest = inroot::clean(m.destination());
        let opts = mounts::parse(m.options().as_deref().unwrap_or(&[]));
        if dest == Path::new("/dev") && opts.is_bind() {
            dev_is_bind = true;
        }
        let idmapped = c.idmapped.iter().find(|(j, _)| *j == i).map(|(_, fd)| fd);
        let source = c.sources.iter().find(|(j, _)| *j == i).map(|(_, fd)| fd);
        mount_one(c, &root, m, &dest, &opts, idmapped, source).map_err(|e| {
            Error::other(format!("mounts[{i}] ({}): {e}", m.destination().display()))
        })?;
    }
    // runc creates a missing working directory.
    if let Some(p) = c.spec.process().as_ref() {
        inroot::mkdir_all(&root, p.cwd()).map_err(|e| Error::other(format!("process.cwd: {e}")))?;
    }
    if !dev_is_bind {
        let extra = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        devices::create_all(&root, &extra, c.userns)?;
        devices::create_symlinks(&root)?;
        // The mount point of a terminal's /dev/console, while /dev is still writable.
        if c.spec
            .process()
            .as_ref()
            .is_some_and(|p| p.terminal() == Some(true))
        {
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

fn make_parent_private(rootfs: &Path) -> Result<()> {
    // Find the mount point that holds the rootfs and make it private: pivot_root refuses a
    // shared parent.
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .at("cannot read", "/proc/self/mountinfo")?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            let mp = Path::new(mp);
            if rootfs.starts_with(mp) && mp.as_os_str().len() > best.as_os_str().len() {
                best = mp.to_path_buf();
            }
        }
    }
    mount(
        None::<&str>,
        &best,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| format!("making {} private", best.display()))
}

fn mount_one(
    c: &RootfsConfig,
    root: &Root,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    idmapped: Option<&std::os::fd::OwnedFd>,
    source: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("");
    if opts.is_bind() || typ == "bind" {
        return bind_mount(c, root, m, dest, opts, idmapped, source);
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
        .source()
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
        return tmpcopyup(&source, &target, flags, &opts.data());
    }
    let data = opts.data();
    let r = mount(
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
            mount(
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
    finish(root, dest, opts)
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
fn finish(root: &Root, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() && opts.rec_set == 0 && opts.rec_clr == 0 {
        return Ok(());
    }
    let h = inroot::resolve(root, dest)?;
    let target = fdpath(&h);
    for p in &opts.propagation {
        mount(
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
        sys::mount_setattr(h.as_fd().as_raw_fd(), "", true, &attr)
            .ctx(|| "mount_setattr (recursive options)".into())?;
    }
    Ok(())
}

fn bind_mount(
    c: &RootfsConfig,
    root: &Root,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    idmapped: Option<&std::os::fd::OwnedFd>,
    source: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let src = mounts::source_path(m, c.bundle)
        .ok_or_else(|| Error::config("bind mount without a source"))?;
    // Opened by tong as the host's root: the fd reaches what the path may not.
    let via = source.map(|fd| PathBuf::from(fdpath(fd)));
    let meta = std::fs::metadata(via.as_ref().unwrap_or(&src)).at("bind mount source", &src)?;
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
        sys::move_mount_fd(fd.as_fd(), handle.as_fd())
            .map_err(|e| Error::sys(format!("attaching idmapped mount of {}", src.display()), e))?;
    } else {
        let target = fdpath(&handle);
        let rec = opts.flags & MsFlags::MS_REC;
        mount(
            Some(via.as_ref().unwrap_or(&src)),
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
        remount_bind(&fdpath(&h), extra)?;
    }
    finish(root, dest, opts)
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks (nosuid, nodev,
/// noexec, atime) from the source when the plain remount is refused.
fn remount_bind(target: &str, flags: MsFlags) -> Result<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            let st = nix::sys::statvfs::statvfs(target).ctx(|| format!("statvfs {target}"))?;
            let locked = locked_flags(st.flags());
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
            .ctx(|| "remount bind mount".into())
        }
        Err(e) => Err(Error::sys("remount bind mount", e)),
    }
}

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

/// tmpfs with `tmpcopyup`: the directory's content is copied into the new tmpfs (podman's
/// --read-only uses it for /etc, /run and friends).
fn tmpcopyup(source: &str, target: &str, flags: MsFlags, data: &str) -> Result<()> {
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

/// The `cgroup` mount type. With cgroup v2 alone: a cgroup2 mount. On v1 and hybrid hosts, as
/// runc builds it: a tmpfs with one mount per hierarchy (the container's own cgroup bound, or
/// a fresh cgroup mount inside a cgroup namespace).
fn mount_cgroup(c: &RootfsConfig, root: &Root, dest: &Path, opts: &MountOptions) -> Result<()> {
    let target = inroot::mkdir_all(root, dest)?;
    let tpath = fdpath(&target);
    let flags = opts
        .flags
        .difference(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let only_v2 = !c.cgroups.is_empty() && c.cgroups.iter().all(|(h, _)| h.v2);
    if only_v2 {
        return match mount(
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
                let dir = &c.cgroups[0].1;
                mount(
                    Some(dir),
                    tpath.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(|| format!("bind mount cgroup {}", dir.display()))?;
                drop(target);
                let m = inroot::resolve(root, dest)?;
                remount_bind(
                    &fdpath(&m),
                    flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                )
            }
            Err(e) => Err(Error::sys("mount cgroup2", e)),
        };
    }
    mount(
        Some("tmpfs"),
        tpath.as_str(),
        Some("tmpfs"),
        flags.difference(MsFlags::MS_RDONLY),
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups".into())?;
    drop(target);
    for (h, dir) in c.cgroups {
        let name = if h.v2 {
            "unified".to_string()
        } else {
            h.controllers
                .iter()
                .map(|s| s.strip_prefix("name=").unwrap_or(s))
                .collect::<Vec<_>>()
                .join(",")
        };
        let sub = dest.join(&name);
        let t = inroot::mkdir_all(root, &sub)?;
        let tp = fdpath(&t);
        if c.cgroupns {
            let (fstype, data) = if h.v2 {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            mount(
                Some("cgroup"),
                tp.as_str(),
                Some(fstype),
                flags,
                Some(data.as_str()),
            )
            .ctx(|| format!("mount cgroup {name}"))?;
        } else {
            mount(
                Some(dir),
                tp.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("bind mount cgroup {}", dir.display()))?;
            drop(t);
            let m = inroot::resolve(root, &sub)?;
            remount_bind(
                &fdpath(&m),
                flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            )?;
        }
        // Co-mounted controllers get a symlink each (cpu -> cpu,cpuacct).
        if h.controllers.len() > 1 {
            for ctl in &h.controllers {
                let link = dest.join(ctl.strip_prefix("name=").unwrap_or(ctl));
                let _ = root.create(&link, &pathrs::InodeType::Symlink(name.clone().into()));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let h = inroot::resolve(root, dest)?;
        mount(
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

/// After pivot_root: read-only paths, masked paths, a read-only root, and rootfsPropagation.
pub fn finalize(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(p)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(p)?;
    }
    if dev_readonly(spec) {
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
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly() == Some(true))
    {
        remount_bind("/", MsFlags::MS_RDONLY)
            .map_err(|e| Error::other(format!("making the root read-only: {e}")))?;
    }
    // The root itself ends with the configured propagation; mounts below keep what their
    // own options made them (a `shared` bind stays shared under rslave).
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation_flag)
    {
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
fn dev_readonly(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        let opts = mounts::parse(m.options().as_deref().unwrap_or(&[]));
        inroot::clean(m.destination()) == Path::new("/dev")
            && !opts.is_bind()
            && m.typ().as_deref() != Some("bind")
            && opts.flags.contains(MsFlags::MS_RDONLY)
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dests() {
        assert_eq!(inroot::clean(Path::new("proc")), PathBuf::from("/proc"));
        assert_eq!(
            inroot::clean(Path::new("/a/../../b/./c")),
            PathBuf::from("/b/c")
        );
    }
}
