//! The launcher: clones the container's init and drives it to the point where it waits for
//! `start`.
//!
//! The process chain:
//! - tong (parent) clones a child. When every namespace is new (the usual case) the clone
//!   creates them all at once, except the cgroup namespace, and that child is the init.
//! - When a namespace is joined by path, or a time namespace is asked for, the child is an
//!   intermediate: it joins (setns, user namespace first), unshares the rest, forks the init
//!   with CLONE_PARENT (so the init is tong's child), reports its pid and exits.
//! - The parent writes uid/gid maps and oom_score_adj before it says `Go`. Its cgroups are
//!   made and joined at the clone, before `Go`, or after it while the init mounts: one
//!   [`Placement`], decided by [`placement`]. The child unshares the cgroup namespace only
//!   once it is in them.
//! - The init prepares the rootfs, asks the parent to run the createRuntime hooks, pivots,
//!   finalises the process and reports `Ready`; then it blocks opening the exec FIFO.
//!
//! tong is single-threaded throughout, so fork-without-exec is sound.

pub mod exec;
pub mod finalize;
pub mod foreground;
pub mod init;
pub mod sync;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::linux::namespaces::{self, Plan};
use crate::linux::sys;
use sync::Msg;

/// Everything the launcher needs, gathered by the container layer.
pub struct LaunchConfig<'a> {
    pub spec: &'a Spec,
    /// What validation typed of the config (namespaces, mounts, propagation).
    pub plan: &'a crate::spec::Plan,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Planned cgroup directories, made by Parent::cgroups when [`placement`] says.
    pub cgroups: &'a Cgroup,
    /// O_PATH fd of the exec FIFO.
    pub fifo_fd: RawFd,
    /// Connected `--console-socket`, when `process.terminal`.
    pub console_fd: Option<RawFd>,
    /// fds the child must close at once (the state dir lock).
    pub close_in_child: Vec<RawFd>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// Name of a new session keyring (None with --no-new-keyring).
    pub session_keyring: Option<String>,
    /// The compiled seccomp filter, if the config has one.
    pub seccomp: Option<crate::linux::seccomp::Compiled>,
}

/// The bind-mount sources (by index in `mounts`) of a container with a new user namespace:
/// its root may not reach one that only the host's root can (below a 0700 directory).
fn bind_sources(mounts: &[crate::linux::mounts::Planned]) -> Vec<(usize, PathBuf)> {
    mounts
        .iter()
        .filter(|m| m.bind)
        .filter_map(|m| Some((m.index, m.source.clone()?)))
        .collect()
}

impl LaunchConfig<'_> {
    /// Hooks that run before the container's process: the parent runs prestart and
    /// createRuntime, then sends the state the init's createContainer and startContainer
    /// hooks read.
    pub fn hooks_need_state(&self) -> bool {
        self.spec.hooks().as_ref().is_some_and(|h| {
            [
                h.prestart(),
                h.create_runtime(),
                h.create_container(),
                h.start_container(),
            ]
            .iter()
            .any(|l| l.as_ref().is_some_and(|v| !v.is_empty()))
        })
    }
}

/// When the container's cgroups are made and its init joins them: decided once, by
/// [`placement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A pure cgroup v2 host: made before the clone, which puts the child in its cgroup at
    /// birth (CLONE_INTO_CGROUP; where the kernel refuses, it is moved there before Go).
    AtClone,
    /// Made and joined before Go: an intermediate forks the init later, or the init
    /// unshares a cgroup namespace and must be in its cgroups first.
    BeforeGo,
    /// Made and joined after Go, while the init mounts: mkdir in each v1 hierarchy, the
    /// limits and the move (which can wait for an RCU grace period) cost milliseconds. The
    /// init runs no container code before it reports Ready, which the parent reads only
    /// after the move, and it bind-mounts its cgroups only after CgroupsMade.
    WhileMounting,
}

/// The one place that decides [`Placement`], from the cgroup plan and the namespaces.
pub fn placement(cgroup: &Cgroup, plan: &Plan) -> Placement {
    if cgroup.clone_target().is_some() {
        Placement::AtClone
    } else if is_direct(plan) && !plan.has_new(LinuxNamespaceType::Cgroup) {
        Placement::WhileMounting
    } else {
        Placement::BeforeGo
    }
}

/// The cloned child is the container's init itself: no namespace to join by path and no
/// time namespace (whose offsets must be written before any process lives in it), so no
/// intermediate that forks the init.
fn is_direct(plan: &Plan) -> bool {
    plan.join.is_empty() && !plan.has_new(LinuxNamespaceType::Time)
}

/// What the parent does at its points in the protocol.
pub trait Parent {
    /// Make the container's cgroups and write their limits, once; [`Placement`] says when.
    /// `pid`: the child just cloned, which joins them as they are made (none before the
    /// clone).
    fn cgroups(&mut self, pid: Option<i32>) -> Result<()>;
    /// The init exists (record it for crash recovery).
    fn init_pid(&mut self, pid: i32) -> Result<()>;
    /// Run prestart and createRuntime hooks; return the state JSON for the init's hooks.
    fn create_runtime_hooks(&mut self, pid: i32) -> Result<crate::linux::hooks::State>;
    /// The container's seccomp notify fd, for the profile's listener.
    fn seccomp_fd(&mut self, pid: i32, fd: std::os::fd::OwnedFd) -> Result<()>;
    /// The init is set up and waits to be told the container is committed (created).
    fn ready(&mut self, pid: i32) -> Result<()>;
}

/// Starts the container's init and returns its pid once it waits for `start`.
pub fn spawn(cfg: &LaunchConfig, parent: &mut dyn Parent) -> Result<i32> {
    let plan = cfg.plan.namespaces.clone();
    let direct = is_direct(&plan);
    let placement = placement(cfg.cgroups, &plan);
    let clone_flags = if direct {
        plan.new - CloneFlags::CLONE_NEWCGROUP
    } else if plan.has_new(LinuxNamespaceType::User) {
        CloneFlags::CLONE_NEWUSER
    } else {
        CloneFlags::empty()
    };
    let (parent_ch, child_ch) = sync::pair()?;
    let cg_dir = match placement {
        Placement::AtClone => {
            parent.cgroups(None)?;
            cfg.cgroups
                .clone_target()
                .and_then(|d| std::fs::File::open(d).ok())
        }
        _ => None,
    };
    // The child holds neither the parent's end of the channel nor the state-dir lock.
    let close: Vec<RawFd> = std::iter::once(parent_ch.raw())
        .chain(cfg.close_in_child.iter().copied())
        .collect();
    let forked = sys::fork_child(
        clone_flags.bits() as u64,
        Some(libc::SIGCHLD),
        cg_dir.as_ref().map(std::os::fd::AsFd::as_fd),
        &close,
        || init::child_main(cfg, &plan, direct, placement, &child_ch),
    )
    .ctx(|| "clone".into())?;
    let (child, born_in) = (forked.pid, forked.in_cgroup);
    drop(child_ch);
    crate::logging::phase(crate::logging::phases::CLONED);
    let mut init_pid = None;
    let cloned = Cloned {
        pid: child,
        direct,
        placement,
        born_in,
        ch: &parent_ch,
    };
    let r = drive(cfg, &plan, cloned, parent, &mut init_pid);
    if r.is_err() {
        for p in [Some(child), init_pid].into_iter().flatten() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    r
}

/// The child just cloned, as the parent sees it.
#[derive(Clone, Copy)]
struct Cloned<'a> {
    pid: i32,
    /// The child is the container's init (no PID namespace to fork into).
    direct: bool,
    placement: Placement,
    /// Born in its cgroup (CLONE_INTO_CGROUP): nothing to join.
    born_in: bool,
    ch: &'a sync::Channel,
}

fn drive(
    cfg: &LaunchConfig,
    plan: &Plan,
    cloned: Cloned,
    parent: &mut dyn Parent,
    init_pid: &mut Option<i32>,
) -> Result<i32> {
    let Cloned {
        pid: child,
        direct,
        placement,
        born_in,
        ch,
    } = cloned;
    if direct {
        *init_pid = Some(child);
        parent.init_pid(child)?;
    }
    let linux = cfg.spec.linux().as_ref();
    if plan.has_new(LinuxNamespaceType::User) {
        let uid = linux
            .and_then(|l| l.uid_mappings().clone())
            .unwrap_or_default();
        let gid = linux
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default();
        namespaces::write_id_maps(child, &uid, &gid)?;
    }
    // The container's user namespace: the child's new one, or the one it will join.
    let userns = match plan
        .join
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::User)
    {
        Some((_, p)) => Some(p.clone()),
        None => plan
            .has_new(LinuxNamespaceType::User)
            .then(|| PathBuf::from(format!("/proc/{child}/ns/user"))),
    };
    if let Some(userns) = userns {
        for (i, fd) in crate::linux::idmap::prepare(&cfg.plan.mounts, &userns)? {
            ch.send_with_fd(
                &Msg::IdmapMount(i),
                Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
            )?;
        }
    }
    // As runc: tong, still the host's root, opens each bind source in the init's new mount
    // namespace (where the init may bind from the fd; the copy keeps the host's locked
    // flags), for an init whose user namespace's root may not reach it.
    // Rootless, tong has no more reach than the init.
    if direct
        && plan.has_new(LinuxNamespaceType::User)
        && plan.has_new(LinuxNamespaceType::Mount)
        && nix::unistd::geteuid().is_root()
    {
        let sources = bind_sources(&cfg.plan.mounts);
        if !sources.is_empty() {
            for (i, fd) in namespaces::open_in_mount_ns(child, &sources)? {
                ch.send_with_fd(
                    &Msg::MountSource(i),
                    Some(std::os::fd::AsRawFd::as_raw_fd(&fd)),
                )?;
            }
        }
    }
    if let Some(adj) = cfg.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let p = format!("/proc/{child}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).at("process.oomScoreAdj: cannot write", &p)?;
    }
    // [`Placement`] says when: before Go, or after it while the init mounts. The cgroups
    // made before the clone hold the child from birth, unless the kernel refused that.
    let place = |parent: &mut dyn Parent| -> Result<()> {
        if placement == Placement::AtClone {
            if !born_in {
                cfg.cgroups.join(child)?;
            }
        } else {
            parent.cgroups(Some(child))?;
        }
        crate::logging::phase(crate::logging::phases::CGROUPS_JOINED);
        Ok(())
    };
    let while_mounting = placement == Placement::WhileMounting;
    if !while_mounting {
        place(parent)?;
    }
    ch.send(&Msg::Go)?;
    if while_mounting {
        place(parent)?;
        // The init may be gone already (its error is queued for the recv below).
        let _ = ch.send(&Msg::CgroupsMade);
    }

    let pid = if direct {
        child
    } else {
        let pid = match ch.recv()? {
            Msg::InitPid(p) => p,
            Msg::Error(e) => return Err(Error::Child(e)),
            m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
        };
        *init_pid = Some(pid);
        let _ = waitpid(Pid::from_raw(child), None);
        parent.init_pid(pid)?;
        pid
    };
    loop {
        match ch.recv_with_fd()? {
            (Msg::RunCreateRuntimeHooks, _) => {
                let state = parent.create_runtime_hooks(pid)?;
                crate::logging::phase(crate::logging::phases::CREATERUNTIME_HOOKS_RUN);
                ch.send(&Msg::HooksDone(state))?;
            }
            (Msg::SeccompFd, Some(fd)) => parent.seccomp_fd(pid, fd)?,
            (Msg::Ready, _) => {
                parent.ready(pid)?;
                crate::logging::phase(crate::logging::phases::STATE_SAVED);
                ch.send(&Msg::Committed)?;
                crate::logging::phase(crate::logging::phases::COMMITTED);
                return Ok(pid);
            }
            (Msg::Error(e), _) => return Err(Error::Child(e)),
            (m, _) => return Err(Error::other(format!("unexpected sync message {m:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroup(v1: bool, v2: bool) -> Cgroup {
        let dir = |controllers: Vec<String>| crate::cgroups::Dir {
            path: PathBuf::from("/sys/fs/cgroup/c"),
            mount: PathBuf::from("/sys/fs/cgroup"),
            controllers,
        };
        let mut dirs = Vec::new();
        if v1 {
            dirs.push(dir(vec!["memory".into()]));
        }
        if v2 {
            dirs.push(dir(vec![]));
        }
        Cgroup {
            dirs,
            ..Cgroup::default()
        }
    }

    fn plan(new: CloneFlags, join: bool) -> Plan {
        let join = if join {
            vec![(LinuxNamespaceType::Network, PathBuf::from("/proc/1/ns/net"))]
        } else {
            vec![]
        };
        Plan { new, join }
    }

    #[test]
    fn placement_is_decided_by_the_host_and_the_namespaces() {
        let v2 = cgroup(false, true);
        let hybrid = cgroup(true, true);
        let mnt = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
        // One cgroup2 hierarchy: the child is born in its cgroup, whatever it unshares.
        for p in [plan(mnt, false), plan(mnt, true)] {
            assert_eq!(placement(&v2, &p), Placement::AtClone);
        }
        // v1 or hybrid: a direct init joins while it mounts...
        assert_eq!(
            placement(&hybrid, &plan(mnt, false)),
            Placement::WhileMounting
        );
        assert_eq!(
            placement(&cgroup(false, false), &plan(mnt, false)),
            Placement::WhileMounting
        );
        // ...unless it unshares a cgroup namespace, or an intermediate forks it.
        for p in [
            plan(mnt | CloneFlags::CLONE_NEWCGROUP, false),
            plan(mnt, true),
            plan(
                mnt | CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
                false,
            ),
        ] {
            assert_eq!(placement(&hybrid, &p), Placement::BeforeGo, "{:?}", p.new);
        }
    }
}
