//! `create`: a container whose init waits for `start`, or nothing at all on failure.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use super::delete::destroy;
use super::pidfile::write_pid_file;
use super::{OciState, Phase, State, StateDir, Status, absolute, hook_state, state};
use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::launch::{self, LaunchConfig};
use crate::linux::{hooks, proc};
use crate::logging;
use crate::spec;

/// Options of `create` (and `run`).
#[derive(Debug, Default, Clone)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// A connected socket for the pty master instead of `console_socket` (a foreground
    /// `run` that relays the terminal itself).
    pub console_fd: Option<i32>,
    /// `--systemd-cgroup`: systemd's unit owns the container's cgroup.
    pub systemd_cgroup: bool,
}

/// A created container: its state as saved (phase created, the init's pid), and whether
/// its process asked for a terminal.
#[derive(Debug, Clone)]
pub struct Created {
    pub state: State,
    pub terminal: bool,
}

/// Creates a container and leaves its init waiting for `start`.
/// On any failure nothing is left behind: no state dir, cgroup, mount or process.
pub fn create(root: &Path, opts: &CreateOpts) -> Result<Created> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).at("bundle", &opts.bundle)?;
    // runc works from the bundle directory (hooks inherit it); paths from the command line
    // are made absolute first.
    let opts = &CreateOpts {
        pid_file: opts.pid_file.as_ref().map(|p| absolute(p)),
        console_socket: opts.console_socket.as_ref().map(|p| absolute(p)),
        ..opts.clone()
    };
    let root = &absolute(root);
    std::env::set_current_dir(&bundle).at("cannot change directory to bundle", &bundle)?;
    let cfg = spec::load(&bundle)?;
    let plan = spec::validate(&cfg)?;
    let process = cfg
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process: missing"))?;
    if process.terminal().unwrap_or(false)
        && opts.console_socket.is_none()
        && opts.console_fd.is_none()
    {
        return Err(Error::Usage(
            "cannot allocate tty if tong will detach without setting console socket".into(),
        ));
    }
    let cgroup = plan_cgroup(&cfg, &opts.id, opts.systemd_cgroup)?;
    let limits = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .is_some_and(|r| {
            r.memory().is_some()
                || r.cpu().is_some()
                || r.pids().is_some()
                || r.block_io().is_some()
        });
    if cgroup.is_empty() && limits && !nix::unistd::geteuid().is_root() {
        logging::warn("rootless: no delegated cgroup, so linux.resources limits are not applied");
    }
    // Compiled before anything exists, so a bad profile leaves nothing behind.
    let filter = match cfg.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::linux::seccomp::compile(s, Some(root))?),
        None => None,
    };

    logging::phase(crate::logging::phases::CONFIG_LOADED);
    let sd = StateDir::create(root, &opts.id)?;
    let mut st = new_state(&cfg, &opts.id, cgroup);
    // The launcher makes the cgroups when its placement says (launch::Placement); the state
    // records them before they exist, for a delete after a crash.
    let r = (|| {
        sd.save_config(&st)?;
        sd.save(&mut st)?;
        logging::phase(crate::logging::phases::STATE_DIR_WRITTEN);
        create_inner(&sd, &mut st, &cfg, &plan, opts, filter)
    })();
    match r {
        Ok(_) => Ok(Created {
            state: st,
            terminal: process.terminal().unwrap_or(false),
        }),
        Err(e) => {
            destroy(sd, &st, true);
            Err(e)
        }
    }
}

/// The container's cgroup as the config and the driver place it, refused if it exists in a
/// state runc refuses.
pub(super) fn plan_cgroup(cfg: &spec::Config, id: &str, systemd: bool) -> Result<cgroups::Cgroup> {
    let cgroups_path = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string());
    let cgroup = if systemd {
        let ann = cfg.spec.annotations().clone().unwrap_or_default();
        cgroups::Cgroup::plan_systemd(cgroups_path.as_deref(), id, ann.into_iter().collect())?
    } else {
        cgroups::Cgroup::plan(cgroups_path.as_deref(), id)?
    };
    cgroup.check_preexisting()?;
    Ok(cgroup)
}

/// The record of a container being made from `cfg` (phase creating, no init yet).
pub(super) fn new_state(cfg: &spec::Config, id: &str, cgroup: cgroups::Cgroup) -> State {
    let mut st = State::new(cfg.json.clone());
    st.id = id.to_string();
    st.oci_version = cfg.spec.version().clone();
    st.phase = Phase::Creating;
    st.creator_pid = std::process::id() as i32;
    st.bundle = cfg.bundle.clone();
    st.rootfs = cfg.rootfs.clone();
    st.created = now();
    st.owner = owner_name();
    st.annotations = cfg.spec.annotations().clone().unwrap_or_default();
    st.cgroup = cgroup;
    st.own_pid_ns = spec::has_namespace(&cfg.spec, oci_spec::runtime::LinuxNamespaceType::Pid);
    st
}

/// A timestamp as `state` shows `created`.
pub(super) fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Creates the container's cgroups (systemd's unit holding `pid`) and writes its
/// linux.resources limits.
pub(super) fn make_cgroups(cgroup: &cgroups::Cgroup, spec: &Spec, pid: Option<i32>) -> Result<()> {
    let r = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    cgroup.create(pid, r)?;
    logging::phase(crate::logging::phases::CGROUPS_CREATED);
    if let Some(r) = r {
        cgroup.write(r)?;
    }
    Ok(())
}

fn create_inner(
    sd: &StateDir,
    st: &mut State,
    cfg: &spec::Config,
    plan: &spec::Plan,
    opts: &CreateOpts,
    filter: Option<crate::linux::seccomp::Compiled>,
) -> Result<i32> {
    let fifo_path = sd.fifo_path();
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .at("cannot create exec fifo", &fifo_path)?;
    // Whoever the init becomes (another user, or root of a user namespace) must be able to
    // open it for writing: no umask, owned by the container's root.
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .at("cannot chmod exec fifo", &fifo_path)?;
    let (ruid, rgid) = container_root_ids(&cfg.spec);
    std::os::unix::fs::chown(&fifo_path, Some(ruid), Some(rgid))
        .at("cannot chown exec fifo", &fifo_path)?;
    let fifo: OwnedFd =
        nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .at("cannot open exec fifo", &fifo_path)?;
    let console = match &opts.console_socket {
        Some(p)
            if cfg
                .spec
                .process()
                .as_ref()
                .is_some_and(|p| p.terminal() == Some(true)) =>
        {
            Some(
                std::os::unix::net::UnixStream::connect(p)
                    .at("cannot connect to console socket", p)?,
            )
        }
        _ => None,
    };
    let lock_fd = sd.lock_fd();
    // The launcher reads the plan while the parent below records the container in `st`.
    let cgroup = st.cgroup.clone();
    let lc = LaunchConfig {
        spec: &cfg.spec,
        plan,
        rootfs: &cfg.rootfs,
        bundle: &cfg.bundle,
        cgroups: &cgroup,
        fifo_fd: fifo.as_raw_fd(),
        console_fd: console.as_ref().map(|c| c.as_raw_fd()).or(opts.console_fd),
        close_in_child: vec![lock_fd],
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        session_keyring: (!opts.no_new_keyring).then(|| format!("_ses.{}", opts.id)),
        seccomp: filter,
    };
    let mut parent = CreateParent {
        sd,
        st,
        spec: &cfg.spec,
        filter: lc.seccomp.as_ref(),
        cgroups_pending: true,
    };
    logging::phase(crate::logging::phases::LAUNCHING);
    let pid = launch::spawn(&lc, &mut parent)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    Ok(pid)
}

/// The host uid and gid that the container's root maps to (0 without a user namespace).
fn container_root_ids(spec: &Spec) -> (u32, u32) {
    let host = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
            .unwrap_or(0)
    };
    let linux = spec.linux().as_ref();
    (
        host(linux.and_then(|l| l.uid_mappings().as_ref())),
        host(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

struct CreateParent<'a> {
    sd: &'a StateDir,
    st: &'a mut State,
    spec: &'a Spec,
    filter: Option<&'a crate::linux::seccomp::Compiled>,
    cgroups_pending: bool,
}

impl launch::Parent for CreateParent<'_> {
    fn cgroups(&mut self, pid: Option<i32>) -> Result<()> {
        if std::mem::take(&mut self.cgroups_pending) {
            make_cgroups(&self.st.cgroup, self.spec, pid)?;
        }
        Ok(())
    }
    fn init_pid(&mut self, pid: i32) -> Result<()> {
        self.st.pid = pid;
        self.st.pid_start_time = proc::start_time(pid).unwrap_or(0);
        self.sd.save(self.st)
    }
    fn create_runtime_hooks(&mut self, _pid: i32) -> Result<OciState> {
        let state = hook_state(self.st, Status::Creating);
        run_create_runtime_hooks(self.spec, &state)?;
        Ok(state)
    }
    fn ready(&mut self, _pid: i32) -> Result<()> {
        logging::phase(crate::logging::phases::INIT_READY);
        self.st.phase = Phase::Created;
        self.sd.save(self.st)
    }
    fn seccomp_fd(&mut self, pid: i32, fd: OwnedFd) -> Result<()> {
        let Some(f) = self.filter else { return Ok(()) };
        let state = serde_json::to_value(self.st.oci_state(Status::Creating)).unwrap_or_default();
        crate::linux::seccomp::send_to_listener(f, fd.as_fd(), pid, &state)
    }
}

/// The prestart and createRuntime hooks, in the runtime's namespace, with `state` on
/// stdin: at create once the init exists, at restore once CRIU made the namespaces.
pub(super) fn run_create_runtime_hooks(spec: &Spec, state: &OciState) -> Result<()> {
    let h = spec.hooks().as_ref();
    hooks::run_all("prestart", h.and_then(|h| h.prestart().as_ref()), state)?;
    hooks::run_all(
        "createRuntime",
        h.and_then(|h| h.create_runtime().as_ref()),
        state,
    )
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    // /etc/passwd read directly (as runc's Go lookup does): no NSS modules in tong's process.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

impl StateDir {
    fn lock_fd(&self) -> i32 {
        self.lock_raw()
    }
}
