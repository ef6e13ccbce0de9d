//! The calls the rootfs makes to the kernel, behind a small trait: the kernel's own in the
//! init ([`Kernel`]), a recording fake in unit tests, so the mount plan a config produces
//! (propagation, the rootfs bind, every mount in order with its flags, remounts, masks) is
//! checked without root. Paths are resolved inside the rootfs before they reach here.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statvfs::FsFlags;
use oci_spec::runtime::LinuxDevice;
use pathrs::Root;

use super::{fdpath, locked_flags};
use crate::error::{Context, Error, Result};
use crate::linux::{devices, sys};

/// One mount(2) call.
pub struct MountCall<'a> {
    pub source: Option<&'a Path>,
    pub target: &'a Path,
    pub fstype: Option<&'a str>,
    pub flags: MsFlags,
    pub data: Option<&'a str>,
}

pub trait Ops {
    fn mount(&self, m: &MountCall) -> nix::Result<()>;
    /// Recursive mount attributes (mount_setattr) on the mount at `fd`.
    fn setattr(&self, fd: BorrowedFd<'_>, attr: &sys::MountAttr) -> std::io::Result<()>;
    /// Attaches a detached mount (an idmapped one) at `to`.
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<()>;
    /// /proc/self/mountinfo.
    fn mountinfo(&self) -> Result<String>;
    /// The flags of the filesystem mounted at `path`.
    fn statvfs(&self, path: &Path) -> nix::Result<FsFlags>;
    /// Whether `path` is a directory (None: nothing there).
    fn is_dir(&self, path: &Path) -> Option<bool>;
    /// The null device as a bind source: an fd to keep open while it is used, and its path.
    /// Refused when /dev/null is not the real null device (CVE-2025-31133).
    fn null_device(&self) -> Result<(Option<OwnedFd>, String)>;
    /// The default devices, `linux.devices` and /dev's symlinks, in the rootfs.
    fn devices(&self, root: &Root, extra: &[LinuxDevice], userns: bool) -> Result<()>;
    /// A tmpfs at `target` holding what was there (`tmpcopyup`).
    fn tmpcopyup(&self, source: &str, target: &str, flags: MsFlags, data: &str) -> Result<()>;
}

/// The real calls.
pub struct Kernel;

impl Ops for Kernel {
    fn mount(&self, m: &MountCall) -> nix::Result<()> {
        nix::mount::mount(m.source, m.target, m.fstype, m.flags, m.data)
    }

    fn setattr(&self, fd: BorrowedFd<'_>, attr: &sys::MountAttr) -> std::io::Result<()> {
        sys::mount_setattr(fd.as_raw_fd(), "", true, attr)
    }

    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<()> {
        sys::move_mount_fd(from, to)
    }

    fn mountinfo(&self) -> Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo").at("cannot read", "/proc/self/mountinfo")
    }

    fn statvfs(&self, path: &Path) -> nix::Result<FsFlags> {
        nix::sys::statvfs::statvfs(path).map(|s| s.flags())
    }

    fn is_dir(&self, path: &Path) -> Option<bool> {
        std::fs::symlink_metadata(path).ok().map(|m| m.is_dir())
    }

    fn null_device(&self) -> Result<(Option<OwnedFd>, String)> {
        // nix's open, not std's: std masks O_ACCMODE out of custom flags, and musl counts
        // O_PATH in O_ACCMODE, so std would open (and block on a FIFO planted as) /dev/null.
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
        let path = fdpath(&null);
        Ok((Some(null), path))
    }

    fn devices(&self, root: &Root, extra: &[LinuxDevice], userns: bool) -> Result<()> {
        devices::create_all(root, extra, userns)?;
        devices::create_symlinks(root)
    }

    fn tmpcopyup(&self, source: &str, target: &str, flags: MsFlags, data: &str) -> Result<()> {
        super::tmpcopy::tmpcopyup(source, target, flags, data)
    }
}

/// [`Ops::mount`] for any path-like source and target (strings, fd paths, rootfs paths).
pub fn mount(
    ops: &dyn Ops,
    source: Option<impl AsRef<Path>>,
    target: impl AsRef<Path>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    ops.mount(&MountCall {
        source: source.as_ref().map(|s| s.as_ref()),
        target: target.as_ref(),
        fstype,
        flags,
        data,
    })
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks (nosuid, nodev,
/// noexec, atime) from the source when the plain remount is refused.
pub fn remount_bind(ops: &dyn Ops, target: &Path, flags: MsFlags) -> Result<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(ops, None::<&str>, target, None, base | flags, None) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            let st = ops
                .statvfs(target)
                .ctx(|| format!("statvfs {}", target.display()))?;
            mount(
                ops,
                None::<&str>,
                target,
                None,
                base | flags | locked_flags(st),
                None,
            )
            .ctx(|| "remount bind mount".into())
        }
        Err(e) => Err(Error::sys("remount bind mount", e)),
    }
}

#[cfg(test)]
pub mod testing {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};

    use nix::errno::Errno;
    use nix::mount::MsFlags;
    use nix::sys::statvfs::FsFlags;
    use oci_spec::runtime::LinuxDevice;
    use pathrs::Root;

    use super::{MountCall, Ops};
    use crate::error::Result;
    use crate::linux::sys;

    /// Records every call, with fd paths (/proc/self/fd/N) shown as what they resolve to,
    /// below `strip` when it is set (a temporary rootfs). `dirs` says what exists for
    /// is_dir; `refuse` makes the next mount of a target fail with an errno.
    #[derive(Default)]
    pub struct Fake {
        pub calls: RefCell<Vec<String>>,
        pub dirs: RefCell<HashMap<PathBuf, bool>>,
        pub refused: RefCell<HashMap<PathBuf, Errno>>,
        pub locked: Cell<FsFlags>,
        pub strip: Option<PathBuf>,
        pub mountinfo: String,
    }

    impl Fake {
        pub fn refuse(&self, target: &str, e: Errno) {
            self.refused.borrow_mut().insert(target.into(), e);
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        fn show(&self, p: &Path) -> String {
            let real = if p.starts_with("/proc/self/fd") {
                std::fs::read_link(p).unwrap_or_else(|_| p.to_path_buf())
            } else {
                p.to_path_buf()
            };
            match &self.strip {
                Some(base) => match real.strip_prefix(base) {
                    Ok(rel) => format!("R/{}", rel.display()),
                    Err(_) => real.display().to_string(),
                },
                None => real.display().to_string(),
            }
        }
        fn record(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
    }

    impl Ops for Fake {
        fn mount(&self, m: &MountCall) -> nix::Result<()> {
            let src = m.source.map_or("-".to_string(), |s| self.show(s));
            let t = self.show(m.target);
            let (fs, flags) = (m.fstype.unwrap_or("-"), m.flags);
            self.record(format!("mount {src} {t} {fs} {flags:?}"));
            match self.refused.borrow_mut().remove(m.target) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn setattr(&self, fd: BorrowedFd<'_>, attr: &sys::MountAttr) -> std::io::Result<()> {
            let p = self.show(Path::new(&format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            )));
            self.record(format!(
                "setattr {p} set={:#x} clr={:#x}",
                attr.attr_set, attr.attr_clr
            ));
            Ok(())
        }
        fn move_mount(&self, _from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<()> {
            let p = self.show(Path::new(&format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&to)
            )));
            self.record(format!("move_mount {p}"));
            Ok(())
        }
        fn mountinfo(&self) -> Result<String> {
            Ok(self.mountinfo.clone())
        }
        fn statvfs(&self, path: &Path) -> nix::Result<FsFlags> {
            self.record(format!("statvfs {}", self.show(path)));
            Ok(self.locked.get())
        }
        fn is_dir(&self, path: &Path) -> Option<bool> {
            self.dirs.borrow().get(path).copied()
        }
        fn null_device(&self) -> Result<(Option<OwnedFd>, String)> {
            Ok((None, "NULL".into()))
        }
        fn devices(&self, _root: &Root, extra: &[LinuxDevice], _userns: bool) -> Result<()> {
            self.record(format!("devices +{}", extra.len()));
            Ok(())
        }
        fn tmpcopyup(
            &self,
            _source: &str,
            target: &str,
            _flags: MsFlags,
            _data: &str,
        ) -> Result<()> {
            let t = self.show(Path::new(target));
            self.record(format!("tmpcopyup {t}"));
            Ok(())
        }
    }
}
