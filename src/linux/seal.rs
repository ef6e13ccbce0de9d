//! Sealing tong's own binary against CVE-2019-5736.
//!
//! A container whose program is `#!/proc/self/exe` makes the kernel run the runtime's binary
//! inside the container, and that process could then reopen its /proc/self/exe for writing
//! and overwrite the host's tong. So before tong starts a container process it re-executes
//! itself from a read-only view: a detached, read-only overlayfs mount of its own directory
//! (runc 1.2's approach: nothing is copied, and the mount is visible nowhere). Where overlayfs
//! cannot be used, a sealed memfd copy is the fallback.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Context, Error, Result};
use crate::linux::sys;

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c7630;

/// Whether /proc/self/exe already lives on a read-only overlay or a sealed memfd.
pub fn is_sealed() -> bool {
    let overlay = nix::sys::statfs::statfs("/proc/self/exe")
        .is_ok_and(|s| s.filesystem_type().0 as i64 == OVERLAYFS_SUPER_MAGIC);
    let ro = nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    match (overlay, ro) {
        (true, true) => true,
        _ => {
            // A sealed memfd: its link reads "/memfd:tong-sealed (deleted)".
            std::fs::read_link("/proc/self/exe")
                .is_ok_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:tong-sealed"))
        }
    }
}

/// Re-executes tong from a sealed view of its binary unless it already runs from one.
/// Returns only on failure, or at once when already sealed.
pub fn ensure_sealed(spare_dir: &std::path::Path) -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let fd = match overlay_fd(spare_dir) {
        Ok(fd) => fd,
        Err(e) => {
            crate::logging::debug(&format!(
                "overlayfs seal unavailable ({e}); copying the binary to a sealed memfd"
            ));
            memfd_copy()?
        }
    };
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).unwrap_or_default()
        })
        .collect();
    let err = sys::fexecve(fd.as_raw_fd(), &argv, &envp);
    Err(Error::sys("re-executing the sealed tong binary", err))
}

fn overlay_fd(spare_dir: &std::path::Path) -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").at("cannot read", "/proc/self/exe")?;
    let dir = exe
        .parent()
        .ok_or_else(|| Error::other("tong binary has no directory"))?;
    let name = exe
        .file_name()
        .ok_or_else(|| Error::other("tong binary has no name"))?;
    let esc = |p: &std::path::Path| {
        p.to_string_lossy()
            .replace('\\', "\\\\")
            .replace(':', "\\:")
    };
    // Without an upper layer overlayfs needs two lower layers: the binary's directory on top,
    // and any other directory (the state root) below it.
    let lower = format!("{}:{}", esc(dir), esc(spare_dir));
    let mnt = sys::fs_mount_detached("overlay", &[("lowerdir", &lower), ("xino", "off")])
        .ctx(|| format!("overlay mount for the seal (lowerdir={lower})"))?;
    let fd = nix::fcntl::openat(
        &mnt,
        std::path::Path::new(name),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening the sealed binary".into())?;
    Ok(fd)
}

fn memfd_copy() -> Result<OwnedFd> {
    let mut src = std::fs::File::open("/proc/self/exe").at("cannot open", "/proc/self/exe")?;
    let mfd = sys::memfd_sealable("tong-sealed").ctx(|| "memfd_create".into())?;
    let mut dst = std::fs::File::from(nix::unistd::dup(&mfd).ctx(|| "dup".into())?);
    std::io::copy(&mut src, &mut dst).ctx(|| "copying tong into a memfd".into())?;
    sys::add_seals(
        mfd.as_raw_fd(),
        libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE,
    )
    .ctx(|| "sealing the memfd".into())?;
    Ok(mfd)
}
