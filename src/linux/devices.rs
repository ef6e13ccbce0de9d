//! Device nodes in the container's /dev: the defaults every container gets and `linux.devices`.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use pathrs::{InodeType, Root};

use crate::error::{Error, Result};

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
        .map(|(p, ma, mi)| Dev { path: p.into(), kind: libc::S_IFCHR, major: *ma as u64, minor: *mi as u64, mode: 0o666, uid: 0, gid: 0 })
        .collect();
    for d in extra {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::config(format!("linux.devices: {}: type a is not a device", d.path().display()))),
        };
        let path = d.path().clone();
        if !path.starts_with("/dev") {
            return Err(Error::config(format!("linux.devices: {} is not under /dev", path.display())));
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
        create_one(root, d, bind).map_err(|e| Error::other(format!("creating device {}: {e}", d.path.display())))?;
    }
    Ok(())
}

fn create_one(root: &Root, d: &Dev, bind: bool) -> std::result::Result<(), String> {
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    root.mkdir_all(parent, &std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| e.to_string())?;
    let _ = root.remove_file(&d.path);
    if bind {
        let f = root
            .create_file(&d.path, pathrs::flags::OpenFlags::O_RDONLY, &std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .map_err(|e| e.to_string())?;
        let target = format!("/proc/self/fd/{}", f.as_raw_fd());
        nix::mount::mount(Some(&d.path), target.as_str(), None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("bind mount from host: {e}"))?;
        return Ok(());
    }
    let perm = std::os::unix::fs::PermissionsExt::from_mode(d.mode & 0o7777);
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    let it = match d.kind {
        libc::S_IFBLK => InodeType::BlockDevice(perm, dev),
        libc::S_IFIFO => InodeType::Fifo(perm),
        _ => InodeType::CharacterDevice(perm, dev),
    };
    root.create(&d.path, &it).map_err(|e| e.to_string())?;
    let h = root.resolve_nofollow(&d.path).map_err(|e| e.to_string())?;
    let p = format!("/proc/self/fd/{}", h.as_fd().as_raw_fd());
    // mknod applies the umask; set the exact mode, then the owner.
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(d.mode & 0o7777)).map_err(|e| format!("chmod: {e}"))?;
    std::os::unix::fs::chown(&p, Some(d.uid), Some(d.gid)).map_err(|e| format!("chown: {e}"))?;
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
    for (link, target) in links {
        match root.create(link, &InodeType::Symlink(target.into())) {
            Ok(()) => {}
            Err(_) if root.readlink(link).is_ok() => {}
            Err(e) => return Err(Error::other(format!("symlink {link}: {e}"))),
        }
    }
    let _ = root.remove_file("/dev/ptmx");
    root.create("/dev/ptmx", &InodeType::Symlink("pts/ptmx".into()))
        .map_err(|e| Error::other(format!("symlink /dev/ptmx: {e}")))?;
    Ok(())
}
