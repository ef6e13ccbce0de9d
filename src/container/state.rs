//! The state directory of one container: `<root>/<id>/` with `state.json` (written atomically),
//! `exec.fifo` while the container waits in `created`, and a lock.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::linux::proc;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// What tong records on disk. The OCI status is derived from it and the live process.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct State {
    pub id: String,
    /// The `ociVersion` of the config.
    pub oci_version: String,
    /// Lifecycle phase as recorded: "creating" until create finished, then "created".
    pub phase: Phase,
    /// pid of the `tong create` that is building the container (while creating).
    pub creator_pid: i32,
    /// The container's init, in the host's pid namespace (0 before it exists).
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Cgroup directories the container owns, one per hierarchy.
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// Whether the container has its own pid namespace.
    #[serde(default)]
    pub own_pid_ns: bool,
    /// The config as read at create; later commands never reread the bundle.
    pub config: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Creating,
    Created,
}

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What each status allows, in runc's words when it does not. Every lifecycle operation asks
/// here before it acts.
impl Status {
    /// `start`: only a created container.
    pub fn may_start(self) -> Result<()> {
        match self {
            Status::Created => Ok(()),
            Status::Stopped => Err(Error::other("cannot start a container that has stopped")),
            Status::Running => Err(Error::other("cannot start an already running container")),
            s => Err(Error::other(format!(
                "cannot start a container in the {s} state"
            ))),
        }
    }

    /// `exec`: a created or running container; a paused one only with `--ignore-paused`.
    pub fn may_exec(self, ignore_paused: bool) -> Result<()> {
        match self {
            Status::Stopped => Err(Error::other("cannot exec in a stopped container")),
            Status::Creating => Err(Error::NotRunning),
            Status::Paused if !ignore_paused => Err(Error::other(
                "cannot exec in a paused container (use --ignore-paused to override)",
            )),
            _ => Ok(()),
        }
    }

    /// `pause`: a created or running container.
    pub fn may_pause(self) -> Result<()> {
        match self {
            Status::Running | Status::Created => Ok(()),
            Status::Paused => Err(Error::other("container already paused")),
            _ => Err(Error::NotRunning),
        }
    }

    /// `resume`: a paused container.
    pub fn may_resume(self) -> Result<()> {
        match self {
            Status::Paused => Ok(()),
            _ => Err(Error::other("container not paused")),
        }
    }

    /// `kill` of the init: it must be there. `kill --all` also reaches a stopped container's
    /// cgroup (what it still holds); only a container still being created is refused.
    pub fn may_signal(self, all: bool) -> Result<()> {
        match self {
            Status::Creating => Err(Error::NotRunning),
            Status::Stopped if !all => Err(Error::NotRunning),
            _ => Ok(()),
        }
    }

    /// `update`: anything not stopped.
    pub fn may_update(self) -> Result<()> {
        match self {
            Status::Stopped => Err(Error::NotRunning),
            _ => Ok(()),
        }
    }

    /// `delete`: a created or stopped container; anything with `--force`.
    pub fn may_delete(self, id: &str, force: bool) -> Result<()> {
        match self {
            Status::Stopped | Status::Created => Ok(()),
            _ if force => Ok(()),
            s => Err(Error::other(format!(
                "cannot delete container {id} that is not stopped: {s}"
            ))),
        }
    }

    /// `checkpoint`: a running or paused container.
    pub fn may_checkpoint(self) -> Result<()> {
        match self {
            Status::Running | Status::Paused => Ok(()),
            s => Err(Error::other(format!(
                "Container cannot be checkpointed in {s} state"
            ))),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// runc's `state` output (the OCI state plus runc's fields), in runc's field order.
#[derive(Serialize, Debug)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Validates a container id as runc does: `^[\w+\-.]+$`, and never `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::EmptyId);
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if !ok || id == "." || id == ".." || id.len() > 1024 {
        return Err(Error::InvalidId(id.to_string()));
    }
    Ok(())
}

/// A container's state directory, held under an exclusive lock while open.
pub struct StateDir {
    pub dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates `<root>/<id>` (root made 0700 if missing) and locks it.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        ensure_root(root)?;
        let dir = root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists),
            Err(e) => return Err(Error::path("cannot create state directory", &dir, e)),
        }
        let lock = lock_dir(&dir)?;
        Ok(StateDir { dir, _lock: lock })
    }

    /// Opens and locks an existing container's directory.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id).map_err(|_| Error::NotExist(id.to_string()))?;
        let dir = root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(_) if !dir.exists() => return Err(Error::NotExist(id.to_string())),
            Err(e) => return Err(e),
        };
        // A concurrent delete may have removed it while we waited for the lock.
        if !dir.join(STATE_FILE).exists() {
            return Err(Error::NotExist(id.to_string()));
        }
        Ok(StateDir { dir, _lock: lock })
    }

    pub fn load(&self) -> Result<State> {
        read_state(&self.dir.join(STATE_FILE))
    }

    /// Writes state.json atomically (temporary file, fsync-free rename).
    pub fn save(&self, state: &State) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let path = self.dir.join(STATE_FILE);
        let data =
            serde_json::to_vec(state).map_err(|e| Error::other(format!("encoding state: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .at("cannot write state file", &tmp)?;
        f.write_all(&data).at("cannot write state file", &tmp)?;
        drop(f);
        std::fs::rename(&tmp, &path).at("cannot write state file", &path)
    }

    /// The fd holding the lock (a cloned child must close it, or it would keep the lock).
    pub fn lock_raw(&self) -> i32 {
        self._lock.as_raw_fd()
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Removes the whole directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::path("cannot remove state directory", &self.dir, e)),
        }
    }
}

/// Removes `<root>/<id>` when it holds no state.json once its lock is free (a create that
/// died before writing one). A create in progress holds the lock until its state exists.
pub fn remove_orphan(root: &Path, id: &str) -> Result<()> {
    if validate_id(id).is_err() {
        return Ok(());
    }
    let dir = root.join(id);
    let Ok(lock) = lock_dir(&dir) else {
        return Ok(());
    };
    if dir.join(STATE_FILE).exists() {
        return Ok(());
    }
    let sd = StateDir { dir, _lock: lock };
    sd.remove()
}

pub fn ensure_root(root: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(root)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::path("cannot create state root", root, e)),
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .at("cannot open state directory", dir)?;
    crate::linux::sys::flock_exclusive(f.as_raw_fd()).at("cannot lock state directory", dir)?;
    Ok(f)
}

/// Reads a state file without taking the lock (for `list`, which must not block on a busy
/// container). Writes are atomic renames, so a reader never sees half a file.
pub fn read_state(path: &Path) -> Result<State> {
    let data = std::fs::read(path).at("cannot read state file", path)?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::other(format!("state file {}: {e}", path.display())))
}

impl State {
    /// Whether the recorded init process is still the one we started.
    pub fn init_alive(&self) -> bool {
        proc::alive_since(self.pid, self.pid_start_time)
    }

    /// The OCI status, derived from the record and the live process.
    pub fn status(&self, dir: &Path) -> Status {
        if self.phase == Phase::Creating {
            return if self.creator_pid > 0 && proc::alive(self.creator_pid) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(&self.cgroup_paths) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> OciState {
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str().to_string(),
            bundle: self.bundle.display().to_string(),
            rootfs: self.rootfs.display().to_string(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        assert!(matches!(validate_id(""), Err(Error::EmptyId)));
        for bad in ["a/b", "..", ".", "a b", "a\0b", "é"] {
            assert!(
                matches!(validate_id(bad), Err(Error::InvalidId(_))),
                "{bad}"
            );
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }
}

#[cfg(test)]
mod status_rules {
    use super::Status::{self, *};

    const ALL: [Status; 5] = [Creating, Created, Running, Paused, Stopped];

    fn allowed(f: impl Fn(Status) -> bool) -> Vec<Status> {
        ALL.into_iter().filter(|s| f(*s)).collect()
    }

    #[test]
    fn what_each_status_allows() {
        assert_eq!(allowed(|s| s.may_start().is_ok()), [Created]);
        assert_eq!(allowed(|s| s.may_exec(false).is_ok()), [Created, Running]);
        assert_eq!(
            allowed(|s| s.may_exec(true).is_ok()),
            [Created, Running, Paused]
        );
        assert_eq!(allowed(|s| s.may_pause().is_ok()), [Created, Running]);
        assert_eq!(allowed(|s| s.may_resume().is_ok()), [Paused]);
        assert_eq!(
            allowed(|s| s.may_signal(false).is_ok()),
            [Created, Running, Paused]
        );
        assert_eq!(
            allowed(|s| s.may_signal(true).is_ok()),
            [Created, Running, Paused, Stopped]
        );
        assert_eq!(
            allowed(|s| s.may_update().is_ok()),
            [Creating, Created, Running, Paused]
        );
        assert_eq!(
            allowed(|s| s.may_delete("c", false).is_ok()),
            [Created, Stopped]
        );
        assert_eq!(allowed(|s| s.may_delete("c", true).is_ok()), ALL);
        assert_eq!(allowed(|s| s.may_checkpoint().is_ok()), [Running, Paused]);
    }

    #[test]
    fn refusals_keep_runcs_words() {
        let msg = |r: crate::error::Result<()>| r.unwrap_err().to_string();
        assert_eq!(
            msg(Stopped.may_start()),
            "cannot start a container that has stopped"
        );
        assert_eq!(
            msg(Running.may_start()),
            "cannot start an already running container"
        );
        assert_eq!(msg(Stopped.may_signal(false)), "container not running");
        assert_eq!(msg(Paused.may_pause()), "container already paused");
        assert_eq!(
            msg(Running.may_delete("c", false)),
            "cannot delete container c that is not stopped: running"
        );
        assert_eq!(
            msg(Created.may_checkpoint()),
            "Container cannot be checkpointed in created state"
        );
    }
}
