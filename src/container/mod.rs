//! The container layer: state on disk and the lifecycle operations (create, start, kill,
//! delete, state, list), each as runc defines it.

pub mod checkpoint;
pub mod state;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::cgroups;
use crate::error::{Context, Error, Result};
use crate::launch::{self, LaunchConfig};
use crate::linux::{hooks, proc, sys};
use crate::logging;
use crate::spec;
pub use state::{OciState, Phase, State, StateDir, Status};

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
    spec::validate(&cfg)?;
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
    let cgroups_path = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string());
    let cg_plan = cgroups::plan(cgroups_path.as_deref(), &opts.id)?;
    cgroups::check_preexisting(&cg_plan)?;
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
    if cg_plan.is_empty() && limits && !nix::unistd::geteuid().is_root() {
        logging::warn("rootless: no delegated cgroup, so linux.resources limits are not applied");
    }
    // Compiled before anything exists, so a bad profile leaves nothing behind.
    let filter = match cfg.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::linux::seccomp::compile(s, Some(root))?),
        None => None,
    };

    logging::phase("config loaded");
    let sd = StateDir::create(root, &opts.id)?;
    let mut st = State {
        id: opts.id.clone(),
        oci_version: cfg.spec.version().clone(),
        phase: Phase::Creating,
        creator_pid: std::process::id() as i32,
        bundle: bundle.clone(),
        rootfs: cfg.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: owner_name(),
        annotations: cfg.spec.annotations().clone().unwrap_or_default(),
        cgroup_paths: cg_plan.iter().map(|(_, d)| d.clone()).collect(),
        own_pid_ns: spec::has_namespace(&cfg.spec, oci_spec::runtime::LinuxNamespaceType::Pid),
        config: cfg.json.clone(),
        ..Default::default()
    };
    // On a pure cgroup v2 host the init is cloned straight into its cgroup, which must exist
    // first. Elsewhere the cgroups are made after the clone, while the init does its mount
    // work (launch::Parent::cgroups): mkdir in each v1 hierarchy and the limits cost about a
    // millisecond. The state records their paths either way, for a delete after a crash.
    let early = cgroups::clone_target(&cg_plan).is_some();
    let r = (|| {
        sd.save(&st)?;
        logging::phase("state dir written");
        if early {
            make_cgroups(&cg_plan, &cfg.spec)?;
        }
        create_inner(&sd, &mut st, &cfg, &cg_plan, opts, filter, !early)
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

/// Creates the container's cgroups and writes its linux.resources limits.
fn make_cgroups(plan: &[(cgroups::Hierarchy, PathBuf)], spec: &Spec) -> Result<()> {
    let made = cgroups::create(plan)?;
    logging::phase("cgroups created");
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroups::resources::apply(&cgroups::Dirs::from_paths(&made), r)?;
    }
    Ok(())
}

fn create_inner(
    sd: &StateDir,
    st: &mut State,
    cfg: &spec::Config,
    cg_plan: &[(cgroups::Hierarchy, PathBuf)],
    opts: &CreateOpts,
    filter: Option<crate::linux::seccomp::Compiled>,
    cgroups_pending: bool,
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
    let lc = LaunchConfig {
        spec: &cfg.spec,
        rootfs: &cfg.rootfs,
        bundle: &cfg.bundle,
        cgroups: cg_plan,
        cgroups_late: cgroups_pending,
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
        cg_plan,
        cgroups_pending,
    };
    logging::phase("launching");
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
    cg_plan: &'a [(cgroups::Hierarchy, PathBuf)],
    cgroups_pending: bool,
}

impl launch::Parent for CreateParent<'_> {
    fn cgroups(&mut self) -> Result<()> {
        if std::mem::take(&mut self.cgroups_pending) {
            make_cgroups(self.cg_plan, self.spec)?;
        }
        Ok(())
    }
    fn init_pid(&mut self, pid: i32) -> Result<()> {
        self.st.pid = pid;
        self.st.pid_start_time = proc::start_time(pid).unwrap_or(0);
        self.sd.save(self.st)
    }
    fn create_runtime_hooks(&mut self, _pid: i32) -> Result<String> {
        let json = hook_state(self.st, Status::Creating);
        let h = self.spec.hooks().as_ref();
        hooks::run_all("prestart", h.and_then(|h| h.prestart().as_ref()), &json)?;
        hooks::run_all(
            "createRuntime",
            h.and_then(|h| h.create_runtime().as_ref()),
            &json,
        )?;
        Ok(json)
    }
    fn ready(&mut self, _pid: i32) -> Result<()> {
        logging::phase("init ready");
        self.st.phase = Phase::Created;
        self.sd.save(self.st)
    }
    fn seccomp_fd(&mut self, pid: i32, fd: OwnedFd) -> Result<()> {
        let Some(f) = self.filter else { return Ok(()) };
        let state = serde_json::to_value(self.st.oci_state(Status::Creating)).unwrap_or_default();
        crate::linux::seccomp::send_to_listener(f, fd.as_fd(), pid, &state)
    }
}

fn typed_config(st: &State) -> Result<Spec> {
    spec::typed(&st.config)
}

/// The stored config, typed, only if it sets `field` (e.g. `["hooks", "poststart"]`) to
/// something other than null or an empty list: typing a whole config costs more than the
/// start, delete or exec that would mostly find nothing there.
fn typed_config_if(st: &State, field: &[&str]) -> Option<Result<Spec>> {
    let v = field.iter().try_fold(&st.config, |v, k| v.get(*k))?;
    let set = !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty());
    set.then(|| typed_config(st))
}

fn hook_state(st: &State, status: Status) -> String {
    let mut s = st.oci_state(status);
    if status != Status::Stopped {
        s.pid = st.pid;
    }
    serde_json::to_string(&s).unwrap_or_default()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Writes the pid file atomically, as runc does (engines read it the moment create returns).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, pid.to_string().as_bytes()))
        .at("cannot write pid file", &tmp)?;
    std::fs::rename(&tmp, path).at("cannot write pid file", path)
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

/// `start`: releases the init waiting on the exec FIFO.
pub fn start(root: &Path, id: &str) -> Result<()> {
    start_with(root, id, None)
}

/// `start` right after this process created the container (a foreground `run`): the state
/// it just wrote is used instead of read back and parsed again; a concurrent delete still
/// shows (the state dir is gone, or the FIFO with it).
pub fn start_created(root: &Path, id: &str, created: Created) -> Result<()> {
    start_with(root, id, Some(created.state))
}

fn start_with(root: &Path, id: &str, known: Option<State>) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = match known {
        Some(st) => st,
        None => {
            let st = sd.load()?;
            st.status(&sd.dir).may_start()?;
            st
        }
    };
    logging::phase("start: state read");
    // The pidfd first: once the FIFO is open the process may run, exit and be reaped at once.
    let pidfd = sys::pidfd_open(st.pid)
        .map_err(|_| Error::other("cannot start a container whose init process has exited"))?;
    if !st.init_alive() {
        return Err(Error::other(
            "cannot start a container whose init process has exited",
        ));
    }
    let fifo_path = sd.fifo_path();
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .at("cannot open exec fifo", &fifo_path)?;
    // The init writes one byte once it is released and keeps its end open (close-on-exec)
    // until execve: `start` returns at end-of-file, when the container's process runs. Any
    // more bytes are the init's report of what failed before execve.
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let mut fds = [
            nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("poll exec fifo", e)),
        }
        let init_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        match (&fifo).read(&mut buf) {
            Ok(0) if !got.is_empty() => break,
            Ok(n) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                continue;
            }
            Ok(_) | Err(_) => {}
        }
        if init_gone && got.is_empty() {
            let _ = std::fs::remove_file(&fifo_path);
            return Err(Error::other(
                "cannot start a container whose init process has exited",
            ));
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    if got.len() > 1 {
        let why = String::from_utf8_lossy(&got[1..]);
        return Err(Error::other(why.trim_end().to_string()));
    }
    logging::phase("start: init released");
    if let Some(spec) = typed_config_if(&st, &["hooks", "poststart"]).transpose()?
        && let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref())
    {
        hooks::run_all_warn("poststart", Some(h), &hook_state(&st, Status::Running));
    }
    Ok(())
}

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

/// The config a container was created with.
pub fn config(root: &Path, id: &str) -> Result<Spec> {
    let sd = StateDir::open(root, id)?;
    typed_config(&sd.load()?)
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
    let cgroups = exec_cgroups(&st.cgroup_paths, &opts.sub_cgroup)?;
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
fn exec_cgroups(dirs: &[PathBuf], subs: &[String]) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(dirs.to_vec());
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
    let parsed = cgroups::Dirs::from_paths(dirs);
    let controllers_of = |d: &Path| -> Vec<String> {
        parsed
            .v1
            .iter()
            .find(|(_, p)| p == d)
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    };
    if bare.is_none()
        && let Some((ctl, _)) = per
            .iter()
            .find(|(ctl, _)| !parsed.v1.iter().any(|(cs, _)| cs.iter().any(|c| c == ctl)))
    {
        return Err(Error::other(format!(
            "unknown controller {ctl} in SubCgroupPaths"
        )));
    }
    let mut out = Vec::new();
    for d in dirs {
        let add = match bare {
            Some(p) => Some(p),
            None => {
                let cs = controllers_of(d);
                per.iter()
                    .find(|(ctl, _)| cs.iter().any(|c| c == ctl))
                    .map(|(_, p)| *p)
            }
        };
        let Some(add) = add else {
            out.push(d.clone());
            continue;
        };
        let target = sub_cgroup(d, add)?;
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

fn running(root: &Path, id: &str) -> Result<(StateDir, State, Status)> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status(&sd.dir);
    Ok((sd, st, status))
}

/// `pause`: freezes every process of the container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = running(root, id)?;
    status.may_pause()?;
    cgroups::freezer::freeze(&cgroups::Dirs::from_paths(&st.cgroup_paths))
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = running(root, id)?;
    status.may_resume()?;
    cgroups::freezer::thaw(&cgroups::Dirs::from_paths(&st.cgroup_paths))
}

/// The pids of the container's processes (for `ps`).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_sd, st, status) = running(root, id)?;
    if status == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut p = cgroups::pids(&st.cgroup_paths);
    if p.is_empty() && st.init_alive() {
        p.push(st.pid);
    }
    Ok(p)
}

/// `update`: writes new resource limits; the recorded config follows.
pub fn update(root: &Path, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let (sd, mut st, status) = running(root, id)?;
    status.may_update()?;
    cgroups::resources::apply(&cgroups::Dirs::from_paths(&st.cgroup_paths), r)?;
    // Merge the update into the recorded config so `state` and later updates see it.
    if let Ok(patch) = serde_json::to_value(r) {
        let res = st
            .config
            .pointer_mut("/linux")
            .and_then(|l| l.as_object_mut())
            .map(|l| {
                l.entry("resources")
                    .or_insert_with(|| serde_json::json!({}))
            });
        if let Some(res) = res {
            merge(res, &patch);
        }
    }
    sd.save(&st)
}

fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// The container's cgroup directories and its status, for `events`.
pub fn cgroup_dirs(root: &Path, id: &str) -> Result<(cgroups::Dirs, bool)> {
    let (_sd, st, status) = running(root, id)?;
    Ok((
        cgroups::Dirs::from_paths(&st.cgroup_paths),
        status != Status::Stopped,
    ))
}

/// `state`: runc's JSON for one container (read without the lock, which create holds).
pub fn state(root: &Path, id: &str) -> Result<OciState> {
    state::validate_id(id).map_err(|_| Error::NotExist(id.to_string()))?;
    let dir = root.join(id);
    let st = match state::read_state(&dir.join(state::STATE_FILE)) {
        Ok(s) => s,
        Err(_) if !dir.join(state::STATE_FILE).exists() => {
            return Err(Error::NotExist(id.to_string()));
        }
        Err(e) => return Err(e),
    };
    Ok(st.oci_state(st.status(&dir)))
}

/// Every container under the root, for `list`.
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::path("cannot read state root", root, e)),
    };
    for e in entries.flatten() {
        let dir = e.path();
        if let Ok(st) = state::read_state(&dir.join(state::STATE_FILE)) {
            out.push(st.oci_state(st.status(&dir)));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// `kill`: sends a signal to the init, or to every process of the container with `all`.
/// Signal 0 only checks that the init is alive.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status(&sd.dir);
    status.may_signal(all)?;
    if all {
        // As runc: a stopped container's cgroup may still hold processes (no pid namespace
        // of its own: containerd's shim kills a pod member's leftovers this way). Once the
        // cgroup is gone there is nothing to signal, which is not an error.
        if status != Status::Stopped || cgroups::exists(&st.cgroup_paths) {
            signal_all(&st, sig);
        }
        return Ok(());
    }
    signal_init(&st, sig)?;
    // A frozen process only dies once thawed: SIGKILL to a paused container thaws it (runc).
    let dirs = cgroups::Dirs::from_paths(&st.cgroup_paths);
    if sig == libc::SIGKILL && cgroups::freezer::is_frozen(&dirs) {
        cgroups::freezer::thaw(&dirs)?;
    }
    Ok(())
}

/// Signals every process in the container's cgroup. The cgroup is frozen meanwhile (when it
/// can be), so nothing forks away between the listing and the signal.
fn signal_all(st: &State, sig: i32) {
    let dirs = cgroups::Dirs::from_paths(&st.cgroup_paths);
    let was_frozen = cgroups::freezer::is_frozen(&dirs);
    let froze = !was_frozen && cgroups::freezer::freeze(&dirs).is_ok();
    let pids = cgroups::pids(&st.cgroup_paths);
    if pids.is_empty() && st.init_alive() {
        let _ = signal_init(st, sig);
    }
    for pid in pids {
        if let Ok(fd) = sys::pidfd_open(pid) {
            let _ = sys::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cgroups::freezer::thaw(&dirs);
    }
}

fn signal_init(st: &State, sig: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(st.pid).map_err(|_| Error::NotRunning)?;
    // The pidfd pins the process: check it is still the one we started before signalling.
    if !st.init_alive() {
        return Err(Error::NotRunning);
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig).ctx(|| format!("kill container init {}", st.pid))
}

/// `delete`: removes a stopped (or created) container; `force` kills a running one first.
/// An unknown id with `force` is not an error (engines rely on that).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let sd = match StateDir::open(root, id) {
        Ok(sd) => sd,
        Err(Error::NotExist(_)) => {
            // As runc: a directory without state.json (a create killed before it wrote
            // one) is removed, so the id can be used again; without --force the answer is
            // still that the container does not exist.
            if let Err(e) = state::remove_orphan(root, id) {
                logging::warn(&e.to_string());
            }
            return if force {
                Ok(())
            } else {
                Err(Error::NotExist(id.to_string()))
            };
        }
        Err(e) => return Err(e),
    };
    let st = match sd.load() {
        Ok(st) => st,
        Err(e) if force => {
            logging::warn(&format!(
                "removing container {id} with an unreadable state: {e}"
            ));
            return sd.remove();
        }
        Err(e) => return Err(e),
    };
    let status = st.status(&sd.dir);
    status.may_delete(id, force)?;
    if status == Status::Creating {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.creator_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    destroy(sd, &st, false);
    Ok(())
}

/// Kills whatever is left of a container, removes its cgroups, runs poststop hooks and
/// removes its state dir. Best effort: every step runs even when one fails.
fn destroy(sd: StateDir, st: &State, failed_create: bool) {
    logging::phase("destroy");
    kill_all(st);
    logging::phase("processes gone");
    if let Err(e) = cgroups::remove(&st.cgroup_paths) {
        logging::warn(&e.to_string());
    }
    // A create that failed after its init existed still ends with the poststop hooks.
    if (!failed_create || st.pid > 0)
        && let Some(Ok(spec)) = typed_config_if(st, &["hooks", "poststop"])
        && let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref())
    {
        hooks::run_all_warn("poststop", Some(h), &hook_state(st, Status::Stopped));
    }
    logging::phase("cgroups removed");
    if let Err(e) = sd.remove() {
        logging::warn(&e.to_string());
    }
}

/// SIGKILLs the init (if it is still ours) and every process in the container's cgroup, then
/// waits until they are gone.
fn kill_all(st: &State) {
    let mut pidfds = Vec::new();
    if st.pid > 0
        && let Ok(fd) = sys::pidfd_open(st.pid)
        && st.init_alive()
    {
        let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        pidfds.push(fd);
    }
    // With its own pid namespace, a dead init took every process of the container with it
    // (the kernel kills the namespace and the init's exit waits for them): nothing to scan.
    // Without one, or when the init was never recorded (a create killed early), the
    // cgroup is the list.
    if !st.own_pid_ns || st.pid <= 0 {
        let pids = cgroups::pids(&st.cgroup_paths);
        for pid in &pids {
            if let Ok(fd) = sys::pidfd_open(*pid) {
                pidfds.push(fd);
            }
        }
        signal_all(st, libc::SIGKILL);
    } else if !pidfds.is_empty() {
        // A paused container's processes die only once thawed.
        let dirs = cgroups::Dirs::from_paths(&st.cgroup_paths);
        if cgroups::freezer::is_frozen(&dirs) {
            let _ = cgroups::freezer::thaw(&dirs);
        }
    }
    for fd in pidfds {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16));
    }
    // Reap our own children (the init is ours when create or run is the caller).
    while let Ok(s) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
        if s == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

impl StateDir {
    fn lock_fd(&self) -> i32 {
        self.lock_raw()
    }
}
