//! The thin layer of raw system calls that nix does not wrap. Every `unsafe` block in tong's
//! launch path lives here, each with the reason it is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn check_int(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// Result of a fork-like clone.
enum Forked {
    Parent(i32),
    Child,
}

/// Forks with namespace flags, like fork(2) but able to create namespaces at once.
/// `cgroup_fd` places the child straight into a cgroup v2 directory (CLONE_INTO_CGROUP).
/// Private: [`fork_child`] is the one way in, and it checks what this needs.
fn clone_fork(
    flags: u64,
    exit_signal: Option<i32>,
    cgroup_fd: Option<RawFd>,
) -> io::Result<Forked> {
    let mut args = CloneArgs {
        flags,
        exit_signal: exit_signal.unwrap_or(0) as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with a null stack behaves like fork: the child gets a copy of this
    // address space and returns here with 0; fork_child checked that the process has one
    // thread, so no lock another thread held is copied locked. `args` outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let rc = match check(rc) {
        Ok(rc) => rc,
        Err(e)
            if e.raw_os_error() == Some(libc::ENOSYS)
                && cgroup_fd.is_none()
                && flags & 0x80 == 0 =>
        {
            // Old kernel: clone(2) with the same flags (it cannot create a time namespace).
            let raw = (flags as libc::c_ulong) | exit_signal.unwrap_or(0) as libc::c_ulong;
            // SAFETY: as above; a null stack makes clone(2) fork-like.
            check(unsafe { libc::syscall(libc::SYS_clone, raw, 0usize, 0usize, 0usize, 0usize) })?
        }
        Err(e) => return Err(e),
    };
    Ok(if rc == 0 {
        Forked::Child
    } else {
        Forked::Parent(rc as i32)
    })
}

/// A child forked by [`fork_child`].
pub struct Child {
    pub pid: i32,
    /// It was born in the cgroup asked for (CLONE_INTO_CGROUP); false when the kernel
    /// refused that and the child was forked without it.
    pub in_cgroup: bool,
}

/// Set once this process (or the one it was forked from: a fork copies only the calling
/// thread) was seen to have one thread. tong's code starts no thread (no `std::thread` in
/// src/), so it stays true.
static SINGLE_THREADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The one way tong forks a process that runs tong code: a clone with `flags` (new
/// namespaces, CLONE_PARENT), the child born in `into_cgroup` when the kernel allows (else
/// forked without it), running `child` and exiting with its return value (never returning
/// or unwinding into the caller's code). Forking without exec is sound only in a
/// single-threaded process: the first call checks (/proc/self/stat, readable before tong
/// enters a container's namespaces), and a second thread fails it.
pub fn fork_child(
    flags: u64,
    exit_signal: Option<i32>,
    into_cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce() -> i32,
) -> io::Result<Child> {
    use std::sync::atomic::Ordering;
    if !SINGLE_THREADED.load(Ordering::Relaxed) {
        let n = threads()?;
        if n != 1 {
            return Err(io::Error::other(format!(
                "refusing to fork: the process has {n} threads, and a forked copy of a \
                 multi-threaded process may deadlock"
            )));
        }
        SINGLE_THREADED.store(true, Ordering::Relaxed);
    }
    let with_cgroup = into_cgroup.map(|fd| clone_fork(flags, exit_signal, Some(fd.as_raw_fd())));
    let (forked, in_cgroup) = match with_cgroup {
        Some(Ok(f)) => (f, true),
        _ => (clone_fork(flags, exit_signal, None)?, false),
    };
    match forked {
        Forked::Child => {
            // An unwinding panic must not return into the parent's code in this copy.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
            exit_now(code)
        }
        Forked::Parent(pid) => Ok(Child { pid, in_cgroup }),
    }
}

/// The number of threads of this process: field 20 of /proc/self/stat, in one read.
fn threads() -> io::Result<usize> {
    use std::io::Read;
    let mut buf = [0u8; 2048];
    let n = std::fs::File::open("/proc/self/stat")?.read(&mut buf)?;
    let data = &buf[..n];
    let bad = || io::Error::other("cannot parse /proc/self/stat");
    let close = data.iter().rposition(|&b| b == b')').ok_or_else(bad)?;
    std::str::from_utf8(&data[close + 1..])
        .map_err(|_| bad())?
        .split_ascii_whitespace()
        .nth(17)
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)
}

pub fn pivot_root(new_root: &str, put_old: &str) -> io::Result<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    // SAFETY: two valid NUL-terminated strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(|_| ())
}

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

/// Brings a network interface up (SIOCSIFFLAGS with IFF_UP).
pub fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: socket() returns a new fd or -1.
    let sock = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: fresh fd.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    // SAFETY: the ioctls read and write the ifreq we own.
    unsafe {
        check_int(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req,
        ))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check_int(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req))?;
    }
    Ok(())
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl options used by tong take integer arguments only.
    check_int(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(|_| ())
}

/// Resets the signal mask and every handled signal to its default, as a new program expects
/// (Rust ignores SIGPIPE).
pub fn reset_signals() {
    // SAFETY: sigset is initialised by sigemptyset; signal() with SIG_DFL is always sound.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Blocks `sigs` in this (single) thread and returns the previous mask.
pub fn block_signals(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: both sets are initialised before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Waits for one of `sigs` (which must be blocked); returns the signal number.
pub fn wait_signal(sigs: &[i32]) -> i32 {
    // SAFETY: set initialised before use; info is written by the kernel.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::sigwaitinfo(&set, &mut info);
            if rc > 0 {
                return rc;
            }
        }
    }
}

/// execve(2). Returns only on failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of pointers to strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Exits the current process at once, without running destructors or atexit handlers
/// (for forked children, whose copies of the parent's buffers must not be flushed twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

/// capset(2) for this thread: effective, permitted and inheritable in one call.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x20080522;
    let hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: header and two data structs as capset v3 expects; both outlive the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) })
        .map(|_| ())
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the program an fd refers to.
pub fn fexecve(fd: RawFd, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    let empty = c"";
    // SAFETY: NUL-terminated pointer arrays and strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
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

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring for this process.
pub fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let n = cstr(name)?;
    // SAFETY: valid NUL-terminated name for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, n.as_ptr()) })
        .map(|_| ())
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

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// bpf(BPF_PROG_LOAD) of a cgroup device program given as raw 64-bit instructions.
pub fn bpf_load_cgroup_device(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0 OR GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: attr is a zero-padded bpf_attr for PROG_LOAD whose pointers (instructions,
    // license) outlive the call.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            attr.len() as u32,
        )
    })?;
    // SAFETY: a fresh program fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// bpf(BPF_PROG_ATTACH) of a device program to a cgroup v2 directory.
pub fn bpf_attach_cgroup_device(cgroup_fd: RawFd, prog_fd: RawFd) -> io::Result<()> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup_fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    // SAFETY: attr is a zero-padded bpf_attr for PROG_ATTACH holding plain integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attr.as_ptr(),
            attr.len() as u32,
        )
    })
    .map(|_| ())
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) with a program given as raw sock_filter bytes.
pub fn seccomp_set_filter(bpf: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: prog points at `bpf`, a whole number of 8-byte sock_filter instructions that
    // outlives the call; the kernel copies the program.
    let rc = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const SockFprog,
        )
    })?;
    // With SECCOMP_FILTER_FLAG_NEW_LISTENER the result is the notify fd.
    // SAFETY: a fresh fd returned by the kernel.
    Ok((flags & 8 != 0 && rc > 0).then(|| unsafe { OwnedFd::from_raw_fd(rc as RawFd) }))
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

#[cfg(test)]
mod tests {
    #[test]
    fn fork_child_refuses_a_multi_threaded_process() {
        // A second thread, alive while fork_child runs (the test harness may run this on
        // its main thread).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(super::threads().unwrap() >= 2);
        let e = super::fork_child(0, Some(libc::SIGCHLD), None, || 0)
            .err()
            .expect("forked a multi-threaded process");
        assert!(e.to_string().contains("threads"), "{e}");
        drop(tx);
        let _ = t.join();
    }
}
