//! Forking tong code: one helper, `fork_child`, over clone3 (clone(2) on old kernels).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::{check, exit_now};

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
/// or unwinding into the caller's code). The child first closes `close`: descriptors of the
/// parent's it must not hold (the parent's end of a channel or pipe, a state-dir lock), so
/// that the parent sees EOF when the child dies and the lock goes with the parent. Forking without exec is sound only in a
/// single-threaded process: the first call checks (/proc/self/stat, readable before tong
/// enters a container's namespaces), and a second thread fails it.
pub fn fork_child(
    flags: u64,
    exit_signal: Option<i32>,
    into_cgroup: Option<BorrowedFd<'_>>,
    close: &[RawFd],
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
            for fd in close {
                // A raw close in this copy of the process: the OwnedFds that own these
                // numbers here are never dropped (the child ends in exit_now).
                let _ = nix::unistd::close(*fd);
            }
            // An unwinding panic must not return into the parent's code in this copy.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
            exit_now(code)
        }
        Forked::Parent(pid) => Ok(Child { pid, in_cgroup }),
    }
}

/// The number of threads of this process.
fn threads() -> io::Result<usize> {
    crate::linux::proc::own_threads()
        .ok_or_else(|| io::Error::other("cannot read the thread count from /proc/self/stat"))
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
        let e = super::fork_child(0, Some(libc::SIGCHLD), None, &[], || 0)
            .err()
            .expect("forked a multi-threaded process");
        assert!(e.to_string().contains("threads"), "{e}");
        drop(tx);
        let _ = t.join();
    }
}
