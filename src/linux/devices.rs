//! Device nodes in the container's /dev: the defaults every container gets and `linux.devices`.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, mknodat};
use nix::unistd::{UnlinkatFlags, fchownat, symlinkat, unlinkat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use pathrs::Root;

use crate::error::{Error, Result};
use crate::linux::inroot;

/// (path, major, minor) of the devices runc creates in every container.
pub const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

struct Dev {
    path: PathBuf,
    kind: libc::mode_t,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Creates the default devices and the config's, with mknod, or by bind-mounting the host's
/// node when `bind` (a user namespace cannot mknod).
pub fn create_all(root: &Root, extra: &[LinuxDevice], bind: bool) -> Result<()> {
    let mut devs: Vec<Dev> = DEFAULT_DEVICES
        .iter()
        .map(|(p, ma, mi)| Dev {
            path: p.into(),
            kind: libc::S_IFCHR,
            major: *ma as u64,
            minor: *mi as u64,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in extra {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::config(format!(
                    "linux.devices: {}: type a is not a device",
                    d.path().display()
                )));
            }
        };
        let path = d.path().clone();
        if !path.starts_with("/dev") {
            return Err(Error::config(format!(
                "linux.devices: {} is not under /dev",
                path.display()
            )));
        }
        devs.retain(|x| x.path != path);
        devs.push(Dev {
            path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    for d in &devs {
        create_one(root, d, bind)
            .map_err(|e| Error::other(format!("creating device {}: {e}", d.path.display())))?;
    }
    Ok(())
}

fn create_one(root: &Root, d: &Dev, bind: bool) -> std::result::Result<(), String> {
    let (dir, name) = inroot::parent(root, &d.path).map_err(|e| e.to_string())?;
    let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
    if bind {
        let f = nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(|e| format!("creating the mount point: {e}"))?;
        let target = format!("/proc/self/fd/{}", f.as_raw_fd());
        nix::mount::mount(
            Some(&d.path),
            target.as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount from host: {e}"))?;
        return Ok(());
    }
    let kind = match d.kind {
        libc::S_IFBLK => SFlag::S_IFBLK,
        libc::S_IFIFO => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    mknodat(
        &dir,
        name,
        kind,
        Mode::from_bits_truncate(d.mode & 0o7777),
        dev,
    )
    .map_err(|e| format!("mknod: {e}"))?;
    // mknod applies the umask; set the exact mode (through an O_PATH fd of the new node,
    // never a symlink), then the owner.
    let node = nix::fcntl::openat(
        &dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open: {e}"))?;
    let p = format!("/proc/self/fd/{}", node.as_fd().as_raw_fd());
    std::fs::set_permissions(
        &p,
        std::os::unix::fs::PermissionsExt::from_mode(d.mode & 0o7777),
    )
    .map_err(|e| format!("chmod: {e}"))?;
    fchownat(
        &dir,
        name,
        Some(d.uid.into()),
        Some(d.gid.into()),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("chown: {e}"))?;
    Ok(())
}

/// The /dev symlinks runc makes: fd, stdin, stdout, stderr (and core when /proc/kcore exists),
/// and /dev/ptmx pointing at the container's devpts.
pub fn create_symlinks(root: &Root) -> Result<()> {
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/dev/core", "/proc/kcore"));
    }
    let dev = inroot::mkdir_all(root, Path::new("/dev"))?;
    for (link, target) in links {
        let name = &link["/dev/".len()..];
        match symlinkat(target, &dev, name) {
            Ok(()) => {}
            Err(Errno::EEXIST) if nix::fcntl::readlinkat(&dev, name).is_ok() => {}
            Err(e) => return Err(Error::sys(format!("symlink {link}"), e)),
        }
    }
    let _ = unlinkat(&dev, "ptmx", UnlinkatFlags::NoRemoveDir);
    symlinkat("pts/ptmx", &dev, "ptmx").map_err(|e| Error::sys("symlink /dev/ptmx", e))?;
    Ok(())
}
