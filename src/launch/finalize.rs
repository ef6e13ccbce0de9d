//! The last steps before `execve`, shared by the container's init and by `exec`, so the two
//! cannot drift apart: session, terminal, keyring, rlimits, capabilities, user, no_new_privs,
//! working directory, environment and the executable's path; then AppArmor, signals, fds.

use std::ffi::CString;
use std::os::fd::RawFd;

use oci_spec::runtime::Process;

use crate::error::{Context, Error, Result};
use crate::linux::capabilities::CapSets;
use crate::linux::{apparmor, process, seccomp, sys, terminal};

/// What to hand to execve, prepared while errors can still be reported.
pub struct Prepared {
    pub path: String,
    /// A seccomp filter still to load (with no_new_privs: as late as possible, before execve).
    seccomp_late: Option<seccomp::Compiled>,
    /// The seccomp notify fd, for tong to pass to the profile's listener.
    pub notify_fd: Option<std::os::fd::OwnedFd>,
    cpath: CString,
    cargs: Vec<CString>,
    cenv: Vec<CString>,
    apparmor: Option<String>,
}

/// Sets up the process's credentials and environment inside the container's namespaces and
/// root. `console` is where a terminal's master goes (a console socket, or tong itself).
pub fn prepare(
    p: &Process,
    is_init: bool,
    console: Option<RawFd>,
    session_keyring: Option<&str>,
    filter: Option<&seccomp::Compiled>,
) -> Result<Prepared> {
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    if p.terminal().unwrap_or(false) {
        let sock = console.ok_or_else(|| {
            Error::other("process.terminal is set but there is no console socket")
        })?;
        let size = p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        terminal::setup(sock, size, is_init)?;
    }
    if let Some(name) = session_keyring {
        // Kernels without keyrings (ENOSYS) or with them restricted are fine: runc ignores it.
        if let Err(e) = sys::join_session_keyring(name) {
            crate::logging::debug(&format!("cannot create a session keyring: {e}"));
        }
    }
    if let Some(limits) = p.rlimits() {
        process::set_rlimits(limits)?;
    }
    let env = process::environment(p);
    let nnp = p.no_new_privileges() == Some(true);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the
    // capabilities go (runc's order).
    let mut notify_fd = None;
    if let Some(f) = filter.filter(|_| !nnp) {
        notify_fd = seccomp::load(f)?;
    }
    let caps = CapSets::from_spec(p.capabilities().as_ref())?;
    caps.apply_bounding()?;
    // As runc: enter cwd while still root (a root-only directory works as the workdir), and
    // again after the user change if that first attempt failed.
    let cwd = p.cwd();
    let early = nix::unistd::chdir(cwd).is_ok();
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    process::set_user(p)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    caps.apply()?;
    if p.no_new_privileges() == Some(true) {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }
    if !early {
        nix::unistd::chdir(cwd).ctx(|| format!("process.cwd: chdir to {}", cwd.display()))?;
    }
    // CVE-2024-21626: the working directory must be inside the container.
    match nix::unistd::getcwd() {
        Ok(d) if d.is_absolute() => {}
        _ => {
            return Err(Error::other(format!(
                "process.cwd: {} is outside the container",
                cwd.display()
            )));
        }
    }
    let args = p.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::config("process.args: must not be empty"))?;
    let path = process::find_executable(arg0, &env)?;
    // A notify filter is loaded now, so its fd can reach tong before the process runs.
    let mut late = filter.filter(|_| nnp).cloned();
    if let Some(f) = late.as_ref().filter(|f| f.listener.is_some()) {
        notify_fd = seccomp::load(f)?;
        late = None;
    }
    Ok(Prepared {
        notify_fd,
        cpath: sys::cstr(&path)
            .map_err(|_| Error::config("process.args[0]: contains a NUL byte"))?,
        cargs: process::to_cstrings("process.args", &args)?,
        cenv: process::to_cstrings("process.env", &env)?,
        apparmor: p.apparmor_profile().clone(),
        seccomp_late: late,
        path,
    })
}

/// Every syscall the init makes from its Ready message to execve, error paths included.
const AFTER_READY: &[&str] = &[
    "recvmsg",
    "sendmsg",
    "openat",
    "write",
    "writev",
    "close",
    "fcntl",
    "close_range",
    "rt_sigprocmask",
    "rt_sigaction",
    "execve",
    "exit_group",
    "getpid",
    "gettid",
    "tgkill",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "brk",
    "futex",
    "clock_gettime",
];

/// Loads a filter that was to be loaded just before execve (with no_new_privs) now, when
/// nothing the init still does could be refused by it: no AppArmor profile to switch to, no
/// startContainer hooks to run, and every syscall in AFTER_READY allowed unconditionally.
/// Loading a large profile takes the kernel about a millisecond (BPF JIT); the init does it
/// after Ready, while tong commits the state and `start` comes, instead of after `start`.
pub fn load_seccomp_early(p: &mut Prepared, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let safe = p.apparmor.is_none()
        && spec
            .hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_ref())
            .is_none_or(|v| v.is_empty())
        && spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_some_and(|s| seccomp::allows_unconditionally(s, AFTER_READY));
    if safe && let Some(f) = p.seccomp_late.take() {
        seccomp::load(&f)?;
    }
    Ok(())
}

/// AppArmor, default signal handling, every fd but stdio and the preserved ones closed on
/// exec, then execve. Returns only on failure.
pub fn exec(p: &Prepared, preserve_fds: u32) -> Error {
    if let Some(profile) = &p.apparmor
        && let Err(e) = apparmor::apply_on_exec(profile)
    {
        return e;
    }
    sys::reset_signals();
    let first = 3 + preserve_fds;
    for fd in 3..first {
        let _ = sys::clear_cloexec(fd as i32);
    }
    if let Err(e) = sys::close_range_cloexec(first) {
        return Error::sys("close_range", e);
    }
    if let Some(f) = &p.seccomp_late
        && let Err(e) = seccomp::load(f)
    {
        return e;
    }
    let err = sys::execve(&p.cpath, &p.cargs, &p.cenv);
    Error::other(format!("exec {}: {err}", p.path))
}
