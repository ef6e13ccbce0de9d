//! `restore`: a container made again from a checkpoint's images, by CRIU, as the bundle's
//! config describes it: a new state dir, its cgroups with their limits (CRIU itself is put
//! there before it restores), the external mounts mapped to their sources, the terminal
//! through CRIU's orphan-pts-master notification. On failure nothing is left behind.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::checkpoint::{
    CgroupsMode, DESCRIPTORS, config_file, criu_ns, diagnose, external_ns_since, open_dir,
    open_existing_dir, restore_mounts,
};
use super::create::{make_cgroups, new_state, now, plan_cgroup, run_create_runtime_hooks};
use super::delete::{delete, destroy};
use super::pidfile::write_pid_file;
use super::{Phase, State, StateDir, Status, absolute, hook_state, state};
use crate::error::{Context, Error, Result};
use crate::launch::foreground::Foreground;
use crate::linux::criu::{self, Criu, Criu_opts, Criu_req, Criu_req_type};
use crate::linux::{inroot, proc, terminal};
use crate::logging;
use crate::spec;

/// `tong restore`'s options.
#[derive(Debug, Clone)]
pub struct RestoreOpts {
    pub criu: Criu,
    pub id: String,
    pub bundle: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_subreaper: bool,
    pub empty_ns: u32,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    pub systemd_cgroup: bool,
}

/// Restores a container; in the foreground, waits for it and returns its exit status (and
/// deletes it, as runc does), else returns 0 once it runs.
pub fn restore(root: &Path, opts: &RestoreOpts) -> Result<i32> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).at("bundle", &opts.bundle)?;
    let opts = &RestoreOpts {
        image_path: absolute(&opts.image_path),
        work_path: opts.work_path.as_deref().map(absolute),
        pid_file: opts.pid_file.as_deref().map(absolute),
        console_socket: opts.console_socket.as_deref().map(absolute),
        ..opts.clone()
    };
    let root = &absolute(root);
    std::env::set_current_dir(&bundle).at("cannot change directory to bundle", &bundle)?;
    let cfg = spec::load(&bundle)?;
    spec::validate(&cfg)?;
    let terminal = cfg
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(Error::Usage(
            "cannot allocate tty if tong will detach without setting console socket".into(),
        ));
    }
    let version = opts.criu.require(30000)?;
    if (opts.lsm_profile.is_some() || opts.lsm_mount_context.is_some()) && version < 31600 {
        let flag = if opts.lsm_profile.is_some() {
            "--lsm-profile"
        } else {
            "--lsm-mount-context"
        };
        return Err(Error::other(format!("{flag} requires at least CRIU 3.16")));
    }
    let images = open_existing_dir(&opts.image_path, "image")?;
    let descriptors = read_descriptors(&opts.image_path)?;
    let cgroup = plan_cgroup(&cfg, &opts.id, opts.systemd_cgroup)?;

    // The terminal: an engine's console socket, or (in the foreground) tong's own relay.
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(UnixStream::connect(p).at("cannot connect to console socket", p)?),
        (None, true) => None,
        _ => None,
    };
    let fg = if opts.detach {
        None
    } else {
        Some(Foreground::begin_with(!opts.no_subreaper)?)
    };

    let sd = StateDir::create(root, &opts.id)?;
    let mut st = new_state(&cfg, &opts.id, cgroup);
    let mut h = RestoreHandler {
        st: &mut st,
        sd: &sd,
        spec: &cfg.spec,
        console: console.as_ref().map(|c| c.as_raw_fd()),
        master: None,
        new_netns: opts.empty_ns & libc::CLONE_NEWNET as u32 != 0
            && spec::namespaces(&cfg.spec)
                .iter()
                .any(|(t, p)| *t == LinuxNamespaceType::Network && p.is_none()),
    };
    let r = (|| {
        h.sd.save_config(h.st)?;
        h.sd.save(h.st)?;
        let crit = CriuRoot::mount(&h.sd.dir, &cfg.rootfs)?;
        make_mountpoints(&cfg.spec, &cfg.rootfs, &cfg.bundle)?;
        let work = match &opts.work_path {
            Some(w) => Some(open_dir(w, "work")?),
            None => None,
        };
        let (o, extra) = restore_opts(
            opts,
            &h,
            &crit.path,
            &images,
            work.as_ref(),
            version,
            &descriptors,
        )?;
        let req = Criu_req {
            type_: Some(protobuf::EnumOrUnknown::new(Criu_req_type::RESTORE)),
            opts: protobuf::MessageField::some(o),
            ..Default::default()
        };
        let log = criu::log_path(opts.work_path.as_deref(), &opts.image_path, "restore.log");
        let mut inherit = vec![images.as_raw_fd()];
        inherit.extend(work.as_ref().map(|w| w.as_raw_fd()));
        inherit.extend(extra.iter().map(|f| f.as_raw_fd()));
        opts.criu
            .call(req, &mut h, &inherit, Some(&log), true)
            .map_err(|e| diagnose(&opts.criu, e))?;
        drop(crit);
        if h.st.pid <= 0 {
            return Err(Error::other(format!(
                "criu restored nothing (no post-restore notification; log file: {})",
                log.display()
            )));
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, h.st.pid)?;
        }
        Ok(())
    })();
    let master = h.master.take();
    if let Err(e) = r {
        destroy(sd, &st, true);
        return Err(e);
    }
    let pid = st.pid;
    drop(sd);
    let Some(fg) = fg else { return Ok(0) };
    if terminal && opts.console_socket.is_none() && master.is_none() {
        logging::warn("restore: CRIU sent no terminal to relay");
    }
    let code = fg.wait(pid, master)?;
    delete(root, &opts.id, true)?;
    Ok(code)
}

/// CRIU's options for the restore, and the descriptors it must inherit (namespaces).
fn restore_opts(
    opts: &RestoreOpts,
    h: &RestoreHandler,
    root: &Path,
    images: &OwnedFd,
    work: Option<&OwnedFd>,
    version: u32,
    descriptors: &[String],
) -> Result<(Criu_opts, Vec<OwnedFd>)> {
    let mut o = Criu_opts {
        images_dir_fd: Some(images.as_raw_fd()),
        work_dir_fd: work.map(|w| w.as_raw_fd()),
        evasive_devices: Some(true),
        log_level: Some(4),
        log_file: Some("restore.log".into()),
        // The restored init becomes tong's child, not CRIU's.
        rst_sibling: Some(true),
        root: Some(root.display().to_string()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        shell_job: Some(opts.shell_job),
        ext_unix_sk: Some(opts.ext_unix_sk),
        tcp_established: Some(opts.tcp_established),
        file_locks: Some(opts.file_locks),
        empty_ns: Some(opts.empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(opts.auto_dedup),
        lazy_pages: Some(opts.lazy_pages),
        lsm_profile: opts.lsm_profile.clone(),
        lsm_mount_context: opts.lsm_mount_context.clone(),
        config_file: config_file(h.st),
        ..Default::default()
    };
    if let Some(m) = opts.cgroups_mode {
        o.manage_cgroups_mode = criu::cg_mode(m.criu());
    }
    let extra = namespaces(h.spec, version, &mut o)?;
    o.ext_mnt = restore_mounts(h.spec, &h.st.cgroup, &h.st.bundle);
    // The init's pipes come back from tong's own stdin, stdout and stderr (runc's rule):
    // an engine's pipes reach the restored process.
    for (i, d) in descriptors.iter().enumerate() {
        if d.contains("pipe:") {
            o.inherit_fd.push(criu::Inherit_fd {
                key: Some(d.clone()),
                fd: Some(i as i32),
                ..Default::default()
            });
        }
    }
    Ok((o, extra))
}

/// The namespaces the config joins by path: network and pid ones were dumped as external
/// and are handed to CRIU by descriptor; others are joined by CRIU.
fn namespaces(spec: &Spec, version: u32, o: &mut Criu_opts) -> Result<Vec<OwnedFd>> {
    let mut extra = Vec::new();
    for (t, path) in spec::namespaces(spec) {
        let Some(path) = path else { continue };
        if let Some((_, key)) = criu_ns(t) {
            if version < external_ns_since(t) {
                continue;
            }
            let f = nix::fcntl::open(
                &path,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| {
                Error::path("the namespace to restore into must exist", &path, e.into())
            })?;
            o.inherit_fd.push(criu::Inherit_fd {
                key: Some(key.to_string()),
                fd: Some(f.as_raw_fd()),
                ..Default::default()
            });
            extra.push(f);
            continue;
        }
        let name = match t {
            LinuxNamespaceType::Mount => "mnt",
            LinuxNamespaceType::Uts => "uts",
            LinuxNamespaceType::Ipc => "ipc",
            LinuxNamespaceType::User => "user",
            LinuxNamespaceType::Time => "time",
            other => {
                return Err(Error::config(format!(
                    "linux.namespaces: CRIU cannot restore into an existing {} namespace",
                    spec::ns_name(other)
                )));
            }
        };
        o.join_ns.push(criu::Join_namespace {
            ns: Some(name.into()),
            ns_file: Some(path.display().to_string()),
            ..Default::default()
        });
    }
    Ok(extra)
}

/// What tong does while CRIU restores.
struct RestoreHandler<'a> {
    st: &'a mut State,
    sd: &'a StateDir,
    spec: &'a Spec,
    /// The engine's console socket.
    console: Option<i32>,
    /// The terminal's master, for a foreground restore to relay.
    master: Option<OwnedFd>,
    /// CRIU makes the container's network namespace new and empty.
    new_netns: bool,
}

impl criu::Handler for RestoreHandler<'_> {
    /// CRIU goes into the container's cgroups (made now, limits written) before it forks
    /// the restored tree, so every restored process starts there; on v1 each controller's
    /// directory is CRIU's cgroup root for it.
    fn started(&mut self, pid: i32, req: &mut Criu_req) -> Result<()> {
        make_cgroups(&self.st.cgroup, self.spec, Some(pid))?;
        if let Some(o) = req.opts.as_mut() {
            let path = format!("/proc/{pid}/cgroup");
            let data = std::fs::read_to_string(&path).at("cannot read", &path)?;
            o.cg_root = cgroup_roots(&data);
        }
        Ok(())
    }

    fn notify(&mut self, script: &str, pid: i32, fds: Vec<OwnedFd>) -> Result<()> {
        logging::debug(&format!("criu notification: {script} (pid {pid})"));
        match script {
            "setup-namespaces" => {
                // A network namespace of the container's own comes back empty: `lo` up,
                // as at create.
                if self.new_netns {
                    crate::linux::namespaces::loopback_up_in(pid)?;
                }
                let mut state = hook_state(self.st, Status::Creating);
                state.pid = pid;
                run_create_runtime_hooks(self.spec, &state)?;
            }
            "post-restore" => {
                self.st.pid = pid;
                self.st.pid_start_time = proc::start_time(pid).unwrap_or(0);
                self.st.phase = Phase::Created;
                self.st.created = now();
                self.sd.save(self.st)?;
            }
            "orphan-pts-master" => {
                let master = fds
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::other("CRIU sent no terminal"))?;
                match self.console {
                    Some(sock) => terminal::send_master(sock, &master, "orphan-pts-master")?,
                    None => self.master = Some(master),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// CRIU's cgroup roots: where CRIU is now (the new container's cgroups), one per v1
/// hierarchy and, for cgroup2, as the default root (no controller). The restored tasks go
/// there, not to the cgroups the images name: a copy restored under another id or
/// cgroupsPath lands in its own cgroup, with its own limits.
fn cgroup_roots(proc_cgroup: &str) -> Vec<criu::Cgroup_root> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut f = line.splitn(3, ':');
            let (_, ctrls, dir) = (f.next()?, f.next()?, f.next()?);
            Some(criu::Cgroup_root {
                ctrl: (!ctrls.is_empty()).then(|| ctrls.to_string()),
                path: Some(dir.to_string()),
                ..Default::default()
            })
        })
        .collect()
}

/// `descriptors.json` of the checkpoint: where the init's stdio pointed.
fn read_descriptors(images: &Path) -> Result<Vec<String>> {
    let path = images.join(DESCRIPTORS);
    let data = std::fs::read(&path).map_err(|e| {
        Error::path(
            "cannot read the checkpoint's descriptors (is this a checkpoint's image path?)",
            &path,
            e,
        )
    })?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::other(format!("{}: invalid JSON: {e}", path.display())))
}

/// The rootfs bound at `<state dir>/criu-root` for the time of the restore: CRIU wants a
/// root that is a mount point whose parent is not overmounted.
struct CriuRoot {
    path: PathBuf,
}

impl CriuRoot {
    fn mount(state_dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        let path = state_dir.join(super::state::CRIU_ROOT);
        std::fs::create_dir(&path).at("cannot create", &path)?;
        let r = CriuRoot { path };
        nix::mount::mount(
            Some(rootfs),
            &r.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::path("cannot bind the rootfs for CRIU at", &r.path, e.into()))?;
        Ok(r)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Makes the mount points the config's mounts need in the rootfs (as create would), unless
/// they lie on a tmpfs the config mounts: CRIU restores a tmpfs's content itself. Cgroup
/// mount points come with their tmpfs or with /sys.
fn make_mountpoints(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<()> {
    let planned = crate::linux::mounts::plan(spec.mounts().as_deref().unwrap_or_default(), bundle);
    let tmpfs: Vec<PathBuf> = planned
        .iter()
        .filter(|m| m.typ == "tmpfs")
        .map(|m| m.dest.clone())
        .collect();
    let root = pathrs::Root::open(rootfs)
        .map_err(|e| Error::other(format!("cannot open rootfs {}: {e}", rootfs.display())))?;
    for m in &planned {
        if m.typ == "cgroup" || tmpfs.iter().any(|t| m.dest.starts_with(t) && m.dest != *t) {
            continue;
        }
        let file = m.bind
            && m.source
                .as_ref()
                .and_then(|s| std::fs::metadata(s).ok())
                .is_some_and(|md| !md.is_dir());
        if file {
            if inroot::resolve(&root, &m.dest).is_err() {
                let (dir, name) = inroot::parent(&root, &m.dest)?;
                let _ = nix::fcntl::openat(
                    &dir,
                    name,
                    nix::fcntl::OFlag::O_CREAT
                        | nix::fcntl::OFlag::O_CLOEXEC
                        | nix::fcntl::OFlag::O_WRONLY,
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                );
            }
        } else {
            inroot::mkdir_all(&root, &m.dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_roots_are_per_v1_hierarchy_and_default_for_cgroup2() {
        let r = cgroup_roots("12:memory:/a/b\n1:name=systemd:/s\n0::/u/c\n");
        let got: Vec<(Option<&str>, &str)> = r
            .iter()
            .map(|c| (c.ctrl.as_deref(), c.path.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("memory"), "/a/b"),
                (Some("name=systemd"), "/s"),
                (None, "/u/c")
            ]
        );
    }
}
