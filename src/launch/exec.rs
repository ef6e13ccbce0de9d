//! `exec`: a new process in a running container.
//!
//! tong clones a child; the parent puts it into the container's cgroups and says `Go`; the
//! child joins every namespace of the container's init at once (setns with a pidfd), then
//! forks the new process with CLONE_PARENT (a pid namespace applies to children only). That
//! process goes through the same finalisation as the init ([`super::finalize`]) and execs.
//! It reports `Ready` just before execve; the channel's close-on-exec EOF then confirms the
//! exec, while an execve failure comes back as an error.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::PathBuf;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::finalize;
use super::sync::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::linux::sys;

pub struct ExecConfig<'a> {
    /// pidfd of the container's init.
    pub init_pidfd: BorrowedFd<'a>,
    /// The init's pid (whose cgroup the process joins where the container's refuses it).
    pub init_pid: i32,
    /// CLONE_NEW* flags of the namespaces to join (those that differ from tong's).
    pub ns_flags: i32,
    pub process: &'a Process,
    /// Cgroup directories to join.
    pub cgroups: &'a [PathBuf],
    pub console_fd: Option<RawFd>,
    pub preserve_fds: u32,
    pub close_in_child: Vec<RawFd>,
    pub seccomp: Option<crate::linux::seccomp::Compiled>,
}

/// Starts the process and returns its pid once it has exec'd.
pub fn spawn(cfg: &ExecConfig) -> Result<i32> {
    let (parent_ch, child_ch) = sync::pair()?;
    let close: Vec<RawFd> = std::iter::once(parent_ch.raw())
        .chain(cfg.close_in_child.iter().copied())
        .collect();
    let child = sys::fork_child(0, Some(libc::SIGCHLD), None, &close, || {
        match child_main(cfg, &child_ch) {
            Ok(c) => c,
            Err(e) => {
                let _ = child_ch.send(&Msg::Error(e.to_string()));
                1
            }
        }
    })
    .ctx(|| "clone".into())?
    .pid;
    drop(child_ch);
    let mut pid = None;
    let r = drive(cfg, child, &parent_ch, &mut pid);
    if r.is_err() {
        for p in [Some(child), pid].into_iter().flatten() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    r
}

fn drive(cfg: &ExecConfig, child: i32, ch: &sync::Channel, pid: &mut Option<i32>) -> Result<i32> {
    // The child joins the namespaces meanwhile; if that failed, its report explains why
    // the move or the Go failed.
    let joined = crate::cgroups::join(cfg.cgroups, child)
        .or_else(|e| crate::cgroups::join_like(cfg.init_pid, child).ok_or(e));
    if let Err(e) = joined.and_then(|()| ch.send(&Msg::Go)) {
        // A child still waiting for Go would never report: it goes, and what it did report
        // before stays queued on the channel.
        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        return match ch.recv() {
            Ok(Msg::Error(m)) => Err(Error::Child(m)),
            _ => Err(e),
        };
    }
    let p = match ch.recv()? {
        Msg::InitPid(p) => p,
        Msg::Error(e) => return Err(Error::Child(e)),
        m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
    };
    *pid = Some(p);
    let _ = waitpid(Pid::from_raw(child), None);
    loop {
        match ch.recv_with_fd()? {
            (Msg::Ready, _) => break,
            (Msg::SeccompFd, Some(fd)) => {
                if let Some(f) = &cfg.seccomp {
                    crate::linux::seccomp::send_to_listener(
                        f,
                        fd.as_fd(),
                        p,
                        &serde_json::json!({"pid": p}),
                    )?;
                }
            }
            (Msg::Error(e), _) => return Err(Error::Child(e)),
            (m, _) => return Err(Error::other(format!("unexpected sync message {m:?}"))),
        }
    }
    // EOF: execve closed the channel. A message: execve failed.
    match ch.recv() {
        Ok(Msg::Error(e)) => Err(Error::Child(e)),
        Ok(m) => Err(Error::other(format!("unexpected sync message {m:?}"))),
        Err(_) => Ok(p),
    }
}

fn child_main(cfg: &ExecConfig, ch: &sync::Channel) -> Result<i32> {
    sys::prctl(libc::PR_SET_DUMPABLE, 0).ctx(|| "prctl(PR_SET_DUMPABLE)".into())?;
    // Joining the namespaces overlaps with the parent's cgroup moves; Go says this process
    // is in the container's cgroups, so the process forked next is born there.
    if cfg.ns_flags != 0 {
        nix::sched::setns(
            cfg.init_pidfd.as_fd(),
            nix::sched::CloneFlags::from_bits_retain(cfg.ns_flags),
        )
        .ctx(|| "joining the container's namespaces".into())?;
    }
    match ch.recv()? {
        Msg::Go => {}
        m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
    }
    sync::fork_reported(ch, || {
        let r: Result<()> = finalize::prepare(
            cfg.process,
            false,
            cfg.console_fd,
            None,
            cfg.seccomp.as_ref(),
            &|fd| ch.send_with_fd(&Msg::SeccompFd, Some(std::os::fd::AsRawFd::as_raw_fd(fd))),
        )
        .and_then(|prepared| {
            ch.send(&Msg::Ready)?;
            Err(finalize::exec(&prepared, cfg.preserve_fds))
        });
        if let Err(e) = r {
            let _ = ch.send(&Msg::Error(e.to_string()));
        }
        255
    })?;
    Ok(0)
}

/// The namespaces of `pid` that differ from this process's, as CLONE_NEW* flags.
pub fn namespaces_to_join(pid: i32) -> i32 {
    use std::os::unix::fs::MetadataExt;
    let mut flags = 0;
    for k in &crate::linux::namespaces::KINDS {
        let (name, flag) = (k.proc_name, k.flag.bits());
        let theirs =
            std::fs::metadata(format!("/proc/{pid}/ns/{name}")).map(|m| (m.dev(), m.ino()));
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).map(|m| (m.dev(), m.ino()));
        if let (Ok(t), Ok(o)) = (theirs, ours)
            && t != o
        {
            flags |= flag;
        }
    }
    flags
}
