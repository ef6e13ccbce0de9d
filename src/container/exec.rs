//! `exec`: a new process in a running container, in its namespaces and cgroups (or
//! sub-cgroups of them, with `--cgroup`).

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use super::pidfile::write_pid_file;
use super::{StateDir, absolute, typed_config_if};
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::launch;
use crate::linux::sys;

/// Options of `exec`.
pub struct ExecOpts {
    pub process: oci_spec::runtime::Process,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub console_fd: Option<i32>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// Sub-cgroups of the container's (`--cgroup`): one bare `path`, or any number of
    /// `controller[,controller]:path`.
    pub sub_cgroup: Vec<String>,
}

/// `exec`: starts a process in a running container; returns its pid once it has exec'd.
pub fn exec(root: &Path, id: &str, opts: &ExecOpts) -> Result<i32> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    st.status(&sd.dir).may_exec(opts.ignore_paused)?;
    let pidfd = sys::pidfd_open(st.pid).map_err(|_| Error::NotRunning)?;
    if !st.init_alive() {
        return Err(Error::NotRunning);
    }
    if opts.process.terminal().unwrap_or(false)
        && opts.console_socket.is_none()
        && opts.console_fd.is_none()
    {
        return Err(Error::Usage(
            "cannot allocate tty if tong will detach without setting console socket".into(),
        ));
    }
    let console = match &opts.console_socket {
        Some(p) if opts.process.terminal() == Some(true) => Some(
            std::os::unix::net::UnixStream::connect(p).at("cannot connect to console socket", p)?,
        ),
        _ => None,
    };
    let cgroups = exec_cgroups(&st.cgroup, &opts.sub_cgroup)?;
    let filter = match typed_config_if(&st, &["linux", "seccomp"]).transpose()? {
        Some(spec) => match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(crate::linux::seccomp::compile(s, Some(root))?),
            None => None,
        },
        None => None,
    };
    // The pidfd pins the init; the lock is not held while the process starts, or a paused
    // container's `resume` would wait on an exec that waits on the resume (runc holds none).
    drop(sd);
    let cfg = launch::exec::ExecConfig {
        init_pidfd: pidfd.as_fd(),
        // As runc: an explicit --cgroup is joined or refused, never replaced by the init's.
        init_pid: if opts.sub_cgroup.is_empty() {
            st.pid
        } else {
            0
        },
        ns_flags: launch::exec::namespaces_to_join(st.pid),
        process: &opts.process,
        cgroups: &cgroups,
        console_fd: console.as_ref().map(|c| c.as_raw_fd()).or(opts.console_fd),
        preserve_fds: opts.preserve_fds,
        close_in_child: vec![],
        seccomp: filter,
    };
    let pid = launch::exec::spawn(&cfg)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(&absolute(pf), pid)?;
    }
    Ok(pid)
}

/// The cgroups an exec'd process joins: the container's, or sub-cgroups of them, as runc
/// reads `--cgroup`: one bare `path` for every hierarchy, or `ctl[,ctl]:path` (repeatable)
/// for the hierarchies of those controllers.
fn exec_cgroups(cg: &cgroups::Cgroup, subs: &[String]) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(cg.paths());
    }
    let mut bare = None;
    let mut per: Vec<(&str, &str)> = Vec::new();
    for c in subs {
        let parts: Vec<&str> = c.splitn(3, ':').collect();
        match parts.as_slice() {
            [p] if subs.len() == 1 => bare = Some(*p),
            [_] => {
                return Err(Error::Usage(format!(
                    "invalid --cgroup argument: {c} (missing <controller>: prefix)"
                )));
            }
            [ctls, p] => {
                for ctl in ctls.split(',') {
                    per.retain(|(k, _)| *k != ctl);
                    per.push((ctl, p));
                }
            }
            _ => return Err(Error::Usage(format!("invalid --cgroup argument: {c}"))),
        }
    }
    if bare.is_none()
        && let Some((ctl, _)) = per.iter().find(|(ctl, _)| {
            !cg.dirs
                .iter()
                .any(|d| d.controllers.iter().any(|c| c == ctl))
        })
    {
        return Err(Error::other(format!(
            "unknown controller {ctl} in SubCgroupPaths"
        )));
    }
    let mut out = Vec::new();
    for d in &cg.dirs {
        let add = match bare {
            Some(p) => Some(p),
            None => per
                .iter()
                .find(|(ctl, _)| d.controllers.iter().any(|c| c == ctl))
                .map(|(_, p)| *p),
        };
        let Some(add) = add else {
            out.push(d.path.clone());
            continue;
        };
        let target = sub_cgroup(&d.path, add)?;
        let procs = target.join("cgroup.procs");
        if !procs.exists() {
            return Err(Error::other(format!(
                "error adding pid to cgroups: open {}: no such file or directory",
                procs.display()
            )));
        }
        out.push(target);
    }
    Ok(out)
}

/// `add` below `base`, lexically (runc's path.Join and prefix check): `..` may not leave it.
fn sub_cgroup(base: &Path, add: &str) -> Result<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for c in add.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::other(format!(
                        "--cgroup {add} is not a sub cgroup path"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.iter().fold(base.to_path_buf(), |p, c| p.join(c)))
}
