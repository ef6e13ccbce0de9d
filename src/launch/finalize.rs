//! The last steps before `execve`, shared by the container's init and by `exec`, so the two
//! cannot drift apart: session, terminal, keyring, rlimits, capabilities, user, no_new_privs,
//! working directory, environment and the executable's path; then AppArmor, signals, fds.

use std::ffi::CString;
use std::os::fd::RawFd;

use oci_spec::runtime::Process;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::linux::capabilities::CapSets;
use crate::linux::{apparmor, process, seccomp, sys, terminal};

/// What to hand to execve, prepared while errors can still be reported.
pub struct Prepared {
    pub path: String,
    /// A seccomp filter still to load (with no_new_privs: as late as possible, before execve).
    seccomp_late: Option<seccomp::Compiled>,
    /// What the filter in force refuses of tong's own last steps (empty without one), to
    /// name in an error.
    refused: Vec<&'static str>,
    cpath: CString,
    cargs: Vec<CString>,
    cenv: Vec<CString>,
    apparmor: Option<String>,
}

impl Prepared {
    /// The environment the process will get (HOME included).
    pub fn env(&self) -> Vec<String> {
        self.cenv
            .iter()
            .filter_map(|c| c.to_str().ok().map(String::from))
            .collect()
    }
}

/// Sets up the process's credentials and environment inside the container's namespaces and
/// root. `console` is where a terminal's master goes (a console socket, or tong itself);
/// `hand_over` sends a seccomp notify fd to tong as soon as the filter is loaded.
pub fn prepare(
    p: &Process,
    is_init: bool,
    console: Option<RawFd>,
    session_keyring: Option<&str>,
    filter: Option<&seccomp::Compiled>,
    hand_over: &dyn Fn(&std::os::fd::OwnedFd) -> Result<()>,
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
    // A notify fd goes to tong at once: every later step (the working-directory check opens
    // directories) may be a notified syscall, which waits until the agent has the fd.
    let load = |f: &seccomp::Compiled| -> Result<Vec<&'static str>> {
        if let Some(fd) = seccomp::load(f)? {
            hand_over(&fd)?;
        }
        Ok(f.refused.clone())
    };
    // Before any filter: the profile has no say over tong's own fchown.
    process::chown_stdio(p.user().uid())?;
    let mut refused = Vec::new();
    if let Some(f) = filter.filter(|_| !nnp) {
        refused = load(f)?;
    }
    let caps = CapSets::from_spec(p.capabilities().as_ref())?;
    caps.apply_bounding()?;
    // As runc: enter cwd while still root (a root-only directory works as the workdir), and
    // again after the user change if that first attempt failed.
    let cwd = p.cwd();
    let early = nix::unistd::chdir(cwd).is_ok();
    // Checked where the chdir succeeded: as root, the fallback walk can search a root-only
    // directory too.
    if early {
        check_cwd_inside(cwd, &refused)?;
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    process::set_user(p)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    caps.apply()?;
    if p.no_new_privileges() == Some(true) {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())?;
    }
    if !early {
        nix::unistd::chdir(cwd).ctx(|| format!("process.cwd: chdir to {}", cwd.display()))?;
        check_cwd_inside(cwd, &refused)?;
    }
    let args = p.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::config("process.args: must not be empty"))?;
    // The lookup stats each candidate: a profile refusing stat makes every one look absent.
    let path = process::find_executable(arg0, &env).map_err(|e| {
        match ["newfstatat", "statx", "stat", "fstat"]
            .iter()
            .find(|c| refused.contains(c))
        {
            Some(c) => Error::other(format!("{e}: the container's seccomp profile refuses {c}")),
            None => e,
        }
    })?;
    // A notify filter is loaded now, so its fd can reach tong before the process runs.
    let mut late = filter.filter(|_| nnp).cloned();
    if let Some(f) = late.take_if(|f| f.listener.is_some()) {
        refused = load(&f)?;
    }
    Ok(Prepared {
        cpath: sys::cstr(&path)
            .map_err(|_| Error::config("process.args[0]: contains a NUL byte"))?,
        cargs: process::to_cstrings("process.args", &args)?,
        cenv: process::to_cstrings("process.env", &env)?,
        apparmor: p.apparmor_profile().clone(),
        seccomp_late: late,
        refused,
        path,
    })
}

/// CVE-2024-21626: the working directory must be inside the container. getcwd needs no
/// permission on the directory (runc's check); only when the profile refuses it does tong
/// walk up from `.` with openat and fstat, which needs search permission on each level.
fn check_cwd_inside(cwd: &std::path::Path, refused: &[&str]) -> Result<()> {
    let inside = cwd_inside_root().map_err(|e| {
        let what = format!(
            "process.cwd: checking that {} is inside the container",
            cwd.display()
        );
        refused_error(
            refused,
            &["getcwd", "openat", "fstat", "newfstatat"],
            what,
            e,
        )
    })?;
    if !inside {
        return Err(Error::other(format!(
            "process.cwd: {} is outside the container",
            cwd.display()
        )));
    }
    Ok(())
}

/// Whether the working directory lies under this process's root, by getcwd.
fn cwd_inside_root() -> nix::Result<bool> {
    match nix::unistd::getcwd() {
        // The kernel prefixes an unreachable directory with "(unreachable)"; libcs turn that
        // into ENOENT.
        Ok(p) => return Ok(p.as_os_str().as_encoded_bytes().starts_with(b"/")),
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(_) => {}
    }
    cwd_walk_inside_root()
}

/// The fallback of [`cwd_inside_root`] when getcwd is refused: walks `..` up from `.`
/// until it meets `/` (inside) or a directory that is its own parent (the top of a tree the
/// root is not in: a host directory reached through a leaked fd, outside a chroot).
fn cwd_walk_inside_root() -> nix::Result<bool> {
    use nix::sys::stat::fstat;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = nix::sys::stat::stat("/")?;
    let mut cur = nix::fcntl::open(".", flags, Mode::empty())?;
    for _ in 0..4096 {
        let st = fstat(&cur)?;
        if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino) {
            return Ok(true);
        }
        let parent = nix::fcntl::openat(&cur, "..", flags, Mode::empty())?;
        let pst = fstat(&parent)?;
        if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino) {
            return Ok(false);
        }
        cur = parent;
    }
    Ok(false)
}

/// Every syscall the init makes from its Ready message to execve, error paths included.
/// `tests/hardening.rs` traces a real init and checks this list against it.
pub const AFTER_READY: &[&str] = &[
    "recvmsg",
    "sendmsg",
    "openat",
    "write",
    "writev",
    "close",
    "fcntl",
    "close_range",
    "getdents64",
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

/// The error of a last step that failed with `e`: it names the first of `calls` that the
/// filter in force refuses, when one is.
fn refused_error(refused: &[&str], calls: &[&str], what: String, e: nix::errno::Errno) -> Error {
    match calls.iter().find(|c| refused.contains(c)) {
        Some(c) => Error::other(format!(
            "{what}: {e}: the container's seccomp profile refuses {c}"
        )),
        None => Error::sys(what, e),
    }
}

/// Marks every fd from `first` up close-on-exec (close_range, else a /proc/self/fd walk).
fn mark_cloexec(first: u32, refused: &[&str]) -> Result<()> {
    sys::mark_cloexec_from(first).map_err(|e| {
        let what = format!("marking fds close-on-exec: close_range and {}", e.syscall);
        refused_error(
            refused,
            &[e.syscall],
            what,
            nix::errno::Errno::from_raw(e.errno),
        )
    })
}

/// Loads the filter that was to come just before execve now: startContainer hooks run under
/// it, with the capabilities, user and no_new_privs of the process already in force (runc's
/// order).
pub fn load_seccomp_now(p: &mut Prepared) -> Result<()> {
    if let Some(f) = p.seccomp_late.take() {
        seccomp::load(&f)?;
        p.refused = f.refused;
    }
    Ok(())
}

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
    if safe {
        load_seccomp_now(p)?;
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
    if let Err(e) = mark_cloexec(first, &p.refused) {
        return e;
    }
    if let Some(f) = &p.seccomp_late
        && let Err(e) = seccomp::load(f)
    {
        return e;
    }
    let err = sys::execve(&p.cpath, &p.cargs, &p.cenv);
    let refused = p.seccomp_late.as_ref().map_or(&p.refused, |f| &f.refused);
    Error::Exec {
        path: p.path.clone(),
        source: err,
        why: if refused.contains(&"execve") {
            ": the container's seccomp profile refuses execve"
        } else {
            ""
        },
    }
}
