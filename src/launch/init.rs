//! The child side: from the clone to `execve` of the container's process.
//!
//! Nothing here panics on purpose: every failure becomes an `Error` message on the sync
//! channel, and the child exits.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxNamespaceType;

use super::finalize;
use super::sync::{self, Channel, Msg};
use super::{LaunchConfig, Placement};
use crate::error::{Context, Error, Result};
use crate::linux::namespaces::{self, Plan};
use crate::linux::{hooks, rootfs, sys};

/// Entry point of the cloned child. Returns the exit code (the caller `_exit`s).
pub fn child_main(
    cfg: &LaunchConfig,
    plan: &Plan,
    direct: bool,
    placement: Placement,
    ch: &Channel,
) -> i32 {
    let r = if direct {
        init(cfg, plan, placement, ch)
    } else {
        intermediate(cfg, plan, ch)
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            let _ = ch.send(&Msg::Error(e.to_string()));
            1
        }
    }
}

/// Mounts the parent prepared, by index in `mounts`.
#[derive(Default)]
struct MountFds {
    /// Detached idmapped mounts.
    idmapped: Vec<(usize, OwnedFd)>,
    /// Bind sources opened by the host's root in this process's mount namespace.
    sources: Vec<(usize, OwnedFd)>,
}

/// Waits for Go; returns the mounts the parent sent before it.
fn wait_go(ch: &Channel) -> Result<MountFds> {
    let mut fds = MountFds::default();
    loop {
        match ch.recv_with_fd()? {
            (Msg::Go, _) => return Ok(fds),
            (Msg::IdmapMount(i), Some(fd)) => fds.idmapped.push((i, fd)),
            (Msg::MountSource(i), Some(fd)) => fds.sources.push((i, fd)),
            (m, _) => return Err(Error::other(format!("unexpected sync message {m:?}"))),
        }
    }
}

/// Joins namespaces by path, unshares the new ones, forks the init into them.
fn intermediate(cfg: &LaunchConfig, plan: &Plan, ch: &Channel) -> Result<i32> {
    let fds = wait_go(ch)?;
    namespaces::join_all(&plan.join)?;
    let rest = plan.new - CloneFlags::CLONE_NEWUSER;
    if !rest.is_empty() {
        nix::sched::unshare(rest).ctx(|| format!("unshare {rest:?}"))?;
    }
    if plan.has_new(LinuxNamespaceType::Time) {
        namespaces::write_time_offsets(
            cfg.spec
                .linux()
                .as_ref()
                .and_then(|l| l.time_offsets().as_ref()),
        )?;
    }
    let gate = CgroupGate {
        ch,
        pending: std::cell::Cell::new(false),
    };
    sync::fork_reported(ch, || match init_after_go(cfg, plan, ch, &fds, &gate) {
        Ok(c) => c,
        Err(e) => {
            let _ = ch.send(&Msg::Error(e.to_string()));
            1
        }
    })?;
    Ok(0)
}

fn init(cfg: &LaunchConfig, plan: &Plan, placement: Placement, ch: &Channel) -> Result<i32> {
    let fds = wait_go(ch)?;
    crate::logging::phase(crate::logging::phases::INIT_GO);
    if plan.has_new(LinuxNamespaceType::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "unshare cgroup namespace".into())?;
    }
    // Cgroups placed while the init mounts: the parent says when they exist.
    let gate = CgroupGate {
        ch,
        pending: std::cell::Cell::new(placement == Placement::WhileMounting),
    };
    init_after_go(cfg, plan, ch, &fds, &gate)
}

/// Waits, once, for the parent's word that the container's cgroups exist.
struct CgroupGate<'a> {
    ch: &'a Channel,
    pending: std::cell::Cell<bool>,
}

impl CgroupGate<'_> {
    fn wait(&self) -> Result<()> {
        if self.pending.replace(false) {
            match self.ch.recv()? {
                Msg::CgroupsMade => {}
                m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
            }
        }
        Ok(())
    }
}

fn init_after_go(
    cfg: &LaunchConfig,
    plan: &Plan,
    ch: &Channel,
    fds: &MountFds,
    gate: &CgroupGate,
) -> Result<i32> {
    let spec = cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process: missing"))?;
    // Keep other container processes from reading this one's memory or fds via /proc.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).ctx(|| "prctl(PR_SET_DUMPABLE)".into())?;
    if plan.has_new(LinuxNamespaceType::User) {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .ctx(|| "setresgid 0 in the user namespace".into())?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .ctx(|| "setresuid 0 in the user namespace".into())?;
    }
    let settings = namespaces::Settings {
        hostname: spec.hostname().as_deref(),
        domainname: spec.domainname().as_deref(),
        sysctl: spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()),
    };
    namespaces::configure(&settings, plan)?;
    // A joined mount namespace (by path) is set up as a new one would be: as with runc,
    // pivot_root there moves the root of that namespace's other processes too. Without
    // one of its own the container shares the host's mount table, which tong leaves as it
    // is: no mounts, no propagation change, a chroot into the rootfs.
    let own_mounts =
        plan.has_new(LinuxNamespaceType::Mount) || plan.joins(LinuxNamespaceType::Mount);
    let cgroup_mounts: Vec<rootfs::CgroupMount> = cfg
        .cgroups
        .dirs
        .iter()
        .map(|d| rootfs::CgroupMount {
            dir: d.path.clone(),
            mount: d.mount.clone(),
            controllers: d.controllers.clone(),
        })
        .collect();
    let linux = spec.linux().as_ref();
    let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
    let rcfg = rootfs::RootfsConfig {
        ops: &rootfs::ops::Kernel,
        rootfs: cfg.rootfs,
        mounts: &cfg.plan.mounts,
        propagation: cfg.plan.rootfs_propagation,
        devices: &devices,
        cwd: Some(process.cwd().as_path()),
        terminal: process.terminal() == Some(true),
        cgroups: &cgroup_mounts,
        cgroupns: plan.has_new(LinuxNamespaceType::Cgroup),
        userns: plan.has_new(LinuxNamespaceType::User) || plan.joins(LinuxNamespaceType::User),
        idmapped: &fds.idmapped,
        sources: &fds.sources,
        await_cgroups: &|| gate.wait(),
    };
    crate::logging::phase(crate::logging::phases::INIT_NAMESPACES_CONFIGURED);
    if own_mounts {
        rootfs::prepare(&rcfg)?;
    }
    crate::logging::phase(crate::logging::phases::INIT_MOUNTS_DONE);
    // Every later message from the parent comes after this one.
    gate.wait()?;
    let mut hook_state = None;
    if cfg.hooks_need_state() {
        ch.send(&Msg::RunCreateRuntimeHooks)?;
        let state = match ch.recv()? {
            Msg::HooksDone(s) => s,
            m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
        };
        // As runc's init runs them: in the rootfs, with the process's env.
        let env = process.env().clone().unwrap_or_default();
        let ctx = hooks::Context {
            env: Some(&env),
            cwd: Some(cfg.rootfs),
            ..Default::default()
        };
        hooks::run_all_in(
            "createContainer",
            spec.hooks()
                .as_ref()
                .and_then(|h| h.create_container().as_ref()),
            &state,
            ctx,
        )?;
        hook_state = Some(state);
    }
    // The FIFO is reopened through this process's own fd directory, opened before the
    // container's /proc replaces the host's.
    let fd_dir: OwnedFd = nix::fcntl::open(
        "/proc/self/fd",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /proc/self/fd".into())?;
    if own_mounts {
        rootfs::enter(cfg.rootfs, cfg.no_pivot)?;
        rootfs::finalize(&rootfs::Finish {
            readonly_paths: linux
                .and_then(|l| l.readonly_paths().as_deref())
                .unwrap_or(&[]),
            masked_paths: linux
                .and_then(|l| l.masked_paths().as_deref())
                .unwrap_or(&[]),
            readonly_root: spec
                .root()
                .as_ref()
                .is_some_and(|r| r.readonly() == Some(true)),
            propagation: cfg.plan.rootfs_propagation,
            mounts: &cfg.plan.mounts,
        })?;
        crate::linux::process::reopen_dev_null()?;
    } else {
        rootfs::chroot_into(cfg.rootfs)?;
    }
    crate::logging::phase(crate::logging::phases::INIT_PIVOTED_AND_FINALISED);

    let mut prepared = finalize::prepare(
        process,
        true,
        cfg.console_fd,
        cfg.session_keyring.as_deref(),
        cfg.seccomp.as_ref(),
        &|fd| ch.send_with_fd(&Msg::SeccompFd, Some(std::os::fd::AsRawFd::as_raw_fd(fd))),
    )?;
    ch.send(&Msg::Ready)?;
    finalize::load_seccomp_early(&mut prepared, spec)?;
    match ch.recv()? {
        Msg::Committed => {}
        m => return Err(Error::other(format!("unexpected sync message {m:?}"))),
    }
    crate::logging::phase(crate::logging::phases::INIT_COMMITTED);
    // Wait for `start`: opening the FIFO for writing blocks until it opens the other end.
    let fifo = loop {
        match nix::fcntl::openat(
            &fd_dir,
            cfg.fifo_fd.to_string().as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(f) => break f,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("open exec fifo", e)),
        }
    };
    crate::logging::phase(crate::logging::phases::INIT_STARTED);
    // Above the preserved fds, whose close-on-exec flag execve's preparation clears.
    let first = 3 + cfg.preserve_fds as i32;
    let fifo = match std::os::fd::AsRawFd::as_raw_fd(&fifo) < first {
        true => sys::dup_cloexec_above(fifo.as_fd(), first).unwrap_or(fifo),
        false => fifo,
    };
    let _ = nix::unistd::write(&fifo, b"0");
    drop(fd_dir);
    // The FIFO stays open (close-on-exec) until execve: `start` returns when it closes, and
    // what goes wrong before that reaches `start` through it (the creator is gone by now).
    let fail = |e: &dyn std::fmt::Display, code: i32| -> Result<i32> {
        let msg = e.to_string();
        let _ = nix::unistd::write(&fifo, msg.as_bytes());
        eprintln!("{msg}");
        Ok(code)
    };
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .filter(|h| !h.is_empty())
    {
        // As runc: the hooks run as the container's process would, under its seccomp filter.
        if let Err(e) = finalize::load_seccomp_now(&mut prepared) {
            return fail(&e, 1);
        }
        // The state the parent sent (hooks_need_state), now that the container is created.
        let Some(mut st) = hook_state.take() else {
            return fail(&Error::other("startContainer hooks: no container state"), 1);
        };
        st.status = "created".into();
        // The environment the container's process gets (HOME included).
        let env = prepared.env();
        let ctx = hooks::Context {
            keep: cfg.preserve_fds,
            env: Some(&env),
            cwd: None,
        };
        if let Err(e) = hooks::run_all_in("startContainer", Some(h), &st, ctx) {
            return fail(&e, 1);
        }
    }
    let err = finalize::exec(&prepared, cfg.preserve_fds);
    let code = err.exec_exit_code();
    fail(&err, code)
}
