//! The container process: user and groups, environment, executable lookup, rlimits.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, Process};

use crate::error::{Context, Error, Result};

/// HOME from the container's /etc/passwd for `uid`, "/" when not found (as runc does).
pub fn home_for(uid: u32) -> String {
    let Ok(data) = std::fs::read_to_string("/etc/passwd") else {
        return "/".into();
    };
    for line in data.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
            return if f[5].is_empty() {
                "/".into()
            } else {
                f[5].to_string()
            };
        }
    }
    "/".into()
}

/// The environment for the process: the config's, plus HOME when unset.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env = dedup_env(p.env().as_deref().unwrap_or_default());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_for(p.user().uid())));
    }
    env
}

/// Hands the process's stdio to its user before it becomes that user, as runc does: a pipe
/// or a pty it could not otherwise reopen (`/proc/self/fd/1`). /dev/null and fds the user
/// already owns are left alone; the group stays (devpts gives a pty its tty group). Refusals
/// that do not matter (EINVAL, EPERM, EROFS: a socket, a file another user namespace owns,
/// a read-only filesystem) are ignored.
pub fn chown_stdio(uid: u32) -> Result<()> {
    use nix::errno::Errno;
    for fd in 0..3 {
        let Some(bfd) = crate::linux::sys::stdio(fd) else {
            continue;
        };
        let Ok(st) = nix::sys::stat::fstat(bfd) else {
            continue;
        };
        let is_null =
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if is_null || st.st_uid == uid {
            continue;
        }
        match nix::unistd::fchown(bfd, Some(uid.into()), None) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => {}
            Err(e) => return Err(Error::sys(format!("chown of fd {fd} to uid {uid}"), e)),
        }
    }
    Ok(())
}

/// One entry per name, where the name first appears, with its last value: what runc's init
/// makes of a list by setting each entry in turn (`exec --env` overrides the spec's value).
/// Replaces a stdin, stdout or stderr that is a /dev/null node (the host's, handed over
/// by the engine: conmon gives a detached container /dev/null as stdin) with the
/// container's own /dev/null, as runc's init does after pivot_root. A descriptor on a mount
/// the container cannot see is one CRIU cannot checkpoint.
pub fn reopen_dev_null() -> Result<()> {
    let null = match nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(f) => f,
        // A config without /dev/null: nothing to reopen onto.
        Err(_) => return Ok(()),
    };
    let ours = nix::sys::stat::fstat(&null).ctx(|| "fstat /dev/null".into())?;
    for fd in 0..3 {
        let Some(b) = crate::linux::sys::stdio(fd) else {
            continue;
        };
        let Ok(st) = nix::sys::stat::fstat(b) else {
            continue;
        };
        let chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
        if chr && st.st_rdev == ours.st_rdev && (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino)
        {
            crate::linux::sys::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd)
                .ctx(|| format!("reopening /dev/null as fd {fd}"))?;
        }
    }
    Ok(())
}

pub fn dedup_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in env {
        let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
        match at.get(name) {
            Some(&i) => out[i].clone_from(e),
            None => {
                at.insert(name, out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

/// Resolves `arg0` as Go's exec.LookPath does, with runc's error words (docker maps
/// "executable file not found" to 127 and "permission denied" to 126).
pub fn find_executable(arg0: &str, env: &[String]) -> Result<String> {
    let check = |p: &Path| -> std::result::Result<(), std::io::Error> {
        let m = std::fs::metadata(p)?;
        if !m.is_dir() && m.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EACCES))
        }
    };
    if arg0.contains('/') {
        return match check(Path::new(arg0)) {
            Ok(()) => Ok(arg0.to_string()),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                Err(Error::other(format!("exec: {arg0:?}: permission denied")))
            }
            Err(_) => Err(Error::other(format!(
                "exec: {arg0:?}: stat {arg0}: no such file or directory"
            ))),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    // As Go's exec.LookPath: a candidate that is not executable is skipped.
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if check(&cand).is_ok() {
            return Ok(cand.to_string_lossy().into_owned());
        }
    }
    Err(Error::other(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

pub fn to_cstrings(what: &str, v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::config(format!("{what}: {s:?} contains a NUL byte")))
        })
        .collect()
}

/// Sets the rlimits (before capabilities are dropped: raising a hard limit needs CAP_SYS_RESOURCE).
pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for r in limits {
        let res = rlimit_resource(&r.typ().to_string()).ok_or_else(|| {
            Error::config(format!("process.rlimits: unknown rlimit type {}", r.typ()))
        })?;
        nix::sys::resource::setrlimit(res, r.soft(), r.hard())
            .ctx(|| format!("setrlimit {} soft {} hard {}", r.typ(), r.soft(), r.hard()))?;
    }
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource as R;
    Some(match name.to_ascii_uppercase().as_str() {
        "RLIMIT_CPU" => R::RLIMIT_CPU,
        "RLIMIT_FSIZE" => R::RLIMIT_FSIZE,
        "RLIMIT_DATA" => R::RLIMIT_DATA,
        "RLIMIT_STACK" => R::RLIMIT_STACK,
        "RLIMIT_CORE" => R::RLIMIT_CORE,
        "RLIMIT_RSS" => R::RLIMIT_RSS,
        "RLIMIT_NPROC" => R::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => R::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => R::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => R::RLIMIT_AS,
        "RLIMIT_LOCKS" => R::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => R::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => R::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => R::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => R::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => R::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// Switches to the process's user: supplementary groups, gid, then uid.
pub fn set_user(p: &Process) -> Result<()> {
    let u = p.user();
    // Each group once (docker may list one twice), in the order given.
    let mut groups: Vec<Gid> = Vec::new();
    for g in u.additional_gids().iter().flatten() {
        if !groups.contains(&Gid::from_raw(*g)) {
            groups.push(Gid::from_raw(*g));
        }
    }
    if let Err(e) = nix::unistd::setgroups(&groups) {
        // In a user namespace with setgroups denied, only an empty list is possible.
        if !(groups.is_empty() && e == nix::errno::Errno::EPERM) {
            return Err(Error::sys("setgroups", e));
        }
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setresgid {}", u.gid()))?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setresuid {}", u.uid()))?;
    if let Some(m) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m as libc::mode_t));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_words() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert!(find_executable("sh", &env).is_ok());
        let e = find_executable("no-such-cmd-xyz", &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "exec: \"no-such-cmd-xyz\": executable file not found in $PATH"
        );
        let e = find_executable("/etc/passwd", &env)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("permission denied"), "{e}");
        let e = find_executable("passwd", &["PATH=/etc".to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("not found in $PATH"), "{e}");
    }
}
