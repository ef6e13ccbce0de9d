//! The new mount API and pivot_root: mount_setattr, open_tree, move_mount, fsopen/fsmount.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_int, cstr};

pub fn pivot_root(new_root: &str, put_old: &str) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: two valid NUL-terminated strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(|_| ())
}

#[repr(C)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;

pub const MOUNT_ATTR_NOSUID: u64 = 0x2;

pub const MOUNT_ATTR_NODEV: u64 = 0x4;

pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

pub const MOUNT_ATTR__ATIME: u64 = 0x70;

pub const MOUNT_ATTR_RELATIME: u64 = 0x0;

pub const MOUNT_ATTR_NOATIME: u64 = 0x10;

pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;

pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// mount_setattr(2) on `path` relative to `dfd`, recursively when `recursive`.
pub fn mount_setattr(dfd: RawFd, path: &str, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let p = cstr(path)?;
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: valid string and struct pointers for the duration of the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dfd,
            p.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (the whole
/// subtree when `recursive`), close-on-exec.
pub fn open_tree_clone(path: &str, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let p = cstr(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: valid string pointer; open_tree returns a new fd or -1.
    let fd = check_int(unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, p.as_ptr(), flags) as libc::c_int
    })?;
    // SAFETY: fresh fd from open_tree.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// move_mount(2) of the detached mount `from` onto the file or directory `to` (both fds).
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = c"";
    // SAFETY: both fds are open for the call; empty paths with the EMPTY_PATH flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(|_| ())
}

/// fsopen + fsconfig + fsmount: a detached, read-only, nodev, nosuid mount of `fstype` with
/// string options (the first one required, the others best effort).
pub fn fs_mount_detached(fstype: &str, options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let t = cstr(fstype)?;
    // SAFETY: fsopen returns a new fd or -1.
    let fsfd = check_int(unsafe {
        libc::syscall(libc::SYS_fsopen, t.as_ptr(), 1 as libc::c_uint) as libc::c_int
    })?;
    // SAFETY: fresh fd from fsopen.
    let fsfd = unsafe { OwnedFd::from_raw_fd(fsfd) };
    for (i, (k, v)) in options.iter().enumerate() {
        let (k, v) = (cstr(k)?, cstr(v)?);
        // SAFETY: valid strings; fsfd is open.
        let r = check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        });
        // Only the first option is required; the rest are best effort.
        if i == 0 {
            r?;
        }
    }
    // SAFETY: no pointers besides null.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    // SAFETY: fsmount returns a new fd; MOUNT_ATTR_RDONLY makes the mount read-only.
    let mfd = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID) as libc::c_uint,
        )
    })?;
    // SAFETY: fresh fd from fsmount.
    Ok(unsafe { OwnedFd::from_raw_fd(mfd as RawFd) })
}
