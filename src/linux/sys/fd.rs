//! Descriptors: close-on-exec sweeps, dup, pidfds, memfds and seals, locks, ttys, and the one
//! SCM_RIGHTS receiver.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_int, cstr};

pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags; no memory is passed.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })
        .map(|_| ())
}

/// Which step of marking fds close-on-exec failed, and how: the caller names the syscall
/// (a seccomp profile may refuse any of them).
#[derive(Debug, Clone, Copy)]
pub struct CloexecError {
    pub syscall: &'static str,
    pub errno: i32,
}

/// Marks every fd from `first` up close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)` first;
/// on any error (EPERM from a seccomp profile, ENOSYS before Linux 5.9, EINVAL on 5.9-5.10)
/// a walk of /proc/self/fd with fcntl. Allocates nothing and calls only raw syscalls, so it
/// also serves between fork and exec. The error is the walk's, when both failed.
pub fn mark_cloexec_from(first: u32) -> Result<(), CloexecError> {
    if close_range_cloexec(first).is_ok() {
        return Ok(());
    }
    let fail = |syscall| CloexecError {
        syscall,
        errno: io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    };
    // SAFETY: a NUL-terminated static path; the returned fd is closed below.
    let dir = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(fail("openat"));
    }
    let dir = dir as RawFd;
    let mut buf = [0u8; 2048];
    let result = loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            break Err(fail("getdents64"));
        }
        if n == 0 {
            break Ok(());
        }
        let mut off = 0usize;
        let mut bad = None;
        while off + 19 < n as usize {
            // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the NUL-terminated name.
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let mut fd: u32 = 0;
            let mut digits = 0;
            for &b in buf[off + 19..(off + reclen).min(n as usize)]
                .iter()
                .take_while(|b| **b != 0)
            {
                if !b.is_ascii_digit() {
                    digits = 0;
                    break;
                }
                fd = fd.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                digits += 1;
            }
            if digits > 0 && fd >= first && fd as RawFd != dir {
                // SAFETY: fcntl on an fd number only reads and sets its flags.
                let flags = unsafe { libc::fcntl(fd as RawFd, libc::F_GETFD) };
                // SAFETY: as above.
                if flags >= 0
                    && flags & libc::FD_CLOEXEC == 0
                    && unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }
                        < 0
                {
                    bad = Some(fail("fcntl"));
                    break;
                }
            }
            off += reclen;
        }
        if let Some(e) = bad {
            break Err(e);
        }
    };
    // SAFETY: dir is the fd opened above and not used after this.
    unsafe { libc::close(dir) };
    result
}

/// Makes a command's child keep only fds 0-2 and the `keep` fds after them: fds 3..3+keep
/// lose close-on-exec, every later one gains it (nothing of tong's reaches a hook).
pub fn command_only_stdio(cmd: &mut std::process::Command, keep: u32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it makes only raw syscalls
    // (fcntl, close_range, openat, getdents64, close) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in 3..3 + keep {
                let flags = libc::fcntl(fd as RawFd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd as RawFd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            mark_cloexec_from(3 + keep).map_err(|e| io::Error::from_raw_os_error(e.errno))
        });
    }
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd we take ownership of.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: null siginfo is allowed; the fd is borrowed for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(|_| ())
}

/// memfd_create(2) with sealing allowed.
pub fn memfd_sealable(name: &str) -> io::Result<OwnedFd> {
    let n = cstr(name)?;
    // SAFETY: valid name; returns a new fd.
    let fd = check_int(unsafe {
        libc::memfd_create(n.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn add_seals(fd: RawFd, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl with integer argument.
    check_int(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }).map(|_| ())
}

pub fn set_winsize(fd: RawFd, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws as *const libc::winsize) }).map(|_| ())
}

pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(|_| ())
}

/// Lets an inherited fd survive execve (for --preserve-fds).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor number.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(|_| ())
}

/// Marks `fd` close-on-exec again (after a child that had to inherit it was started).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor number.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(|_| ())
}

/// The file status flags of an open descriptor (F_GETFL): O_WRONLY, O_RDWR...
pub fn fd_flags(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: fcntl with integer arguments on a descriptor number.
    check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// Takes ownership of a descriptor tong was given by number (`--status-fd`), after
/// checking it is open: tong closes it when done with it.
pub fn take_fd(fd: RawFd) -> io::Result<OwnedFd> {
    fd_flags(fd)?;
    if (0..=2).contains(&fd) {
        // stdio stays open for the process's life: use a copy.
        return stdio(fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?
            .try_clone_to_owned();
    }
    // SAFETY: the number was handed to tong on its command line for it to use and close;
    // nothing else in tong knows or owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec copy of `fd` numbered `min` or above (F_DUPFD_CLOEXEC).
pub fn dup_cloexec_above(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl with integer arguments; a new fd it returns is owned by nothing else.
    let n = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: n is a fresh descriptor from the call above.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// dup2(2) onto a fixed descriptor number (stdio of the new process).
pub fn dup2(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the fd table; target is replaced atomically.
    check_int(unsafe { libc::dup2(fd, target) }).map(|_| ())
}

/// How many bytes this end of a unix stream socket has sent that the peer has not read yet
/// (SIOCOUTQ).
pub fn unread_by_peer(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int into n, which we own; fd is a live borrowed socket.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub fn get_winsize(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: zeroed winsize is valid; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes into ws, which we own.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws as *mut libc::winsize) };
    (rc == 0).then_some(ws)
}

/// One of tong's standard descriptors (0, 1 or 2), borrowed for the process's life, as the
/// standard library's `Stdin`/`Stdout`/`Stderr` hold them; `None` for any other number.
pub fn stdio(fd: RawFd) -> Option<BorrowedFd<'static>> {
    // SAFETY: 0, 1 and 2 are never closed by tong (it reopens them onto /dev/null, never
    // leaves them closed), so the number stays valid for the process's life.
    (0..=2)
        .contains(&fd)
        .then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Receives one message on a unix socket, with every descriptor sent along (SCM_RIGHTS),
/// each owned and close-on-exec: none the kernel installed can leak. `Ok((0, []))` is the
/// end of the stream.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let r = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in r.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel installed these numbers in our table for this message;
            // nothing else knows them, so each gets exactly one owner here.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((r.bytes, fds))
}

/// Opens the slave of a pty from its master (TIOCGPTPEER), without a path lookup.
pub fn pty_peer(master: RawFd) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let fd = check_int(unsafe {
        libc::ioctl(
            master,
            TIOCGPTPEER as _,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// flock(LOCK_EX), waiting for the lock.
pub fn flock_exclusive(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor number; no memory is involved.
        match check_int(unsafe { libc::flock(fd, libc::LOCK_EX) }) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}
