//! The state directory of one container: `<root>/<id>/` with `state.json` (written atomically),
//! `exec.fifo` while the container waits in `created`, and a lock.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::status::Status;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::linux::proc;

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Where a restore binds the rootfs for CRIU (a mount point while it runs).
pub const CRIU_ROOT: &str = "criu-root";

/// The format of `state.json` this tong writes. Version 1 (no `version` field: every tong
/// before it) embedded the whole config and kept bare cgroup paths; version 2 keeps the config
/// in `config.json` beside it (so `list` and `state` parse a few hundred bytes) and the cgroup
/// handle whole. A record is written back in the format it was read in, so a container made
/// by an older tong can still be managed by it after a downgrade.
pub const STATE_VERSION: u32 = 2;

/// What tong records on disk. The OCI status is derived from it and the live process.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct State {
    /// The record's format ([`STATE_VERSION`]); absent in format 1.
    #[serde(default = "version_1", skip_serializing_if = "is_version_1")]
    pub version: u32,
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
    /// The container's cgroup (format 2; format 1's `cgroup_paths` are read into it).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "cgroup")]
    saved_cgroup: Option<Cgroup>,
    /// Format 1: the cgroup directories alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroup_paths: Option<Vec<PathBuf>>,
    #[serde(skip)]
    pub cgroup: Cgroup,
    /// Whether the container has its own pid namespace.
    #[serde(default)]
    pub own_pid_ns: bool,
    /// Format 1: the config, inline.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "config")]
    inline_config: Option<serde_json::Value>,
    /// The config as read at create (later commands never reread the bundle): loaded from
    /// `config.json` in the state dir on first use.
    #[serde(skip)]
    config: std::cell::OnceCell<serde_json::Value>,
    /// The state dir the record was read from.
    #[serde(skip)]
    dir: PathBuf,
}

fn version_1() -> u32 {
    1
}

fn is_version_1(v: &u32) -> bool {
    *v == 1
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Creating,
    Created,
}

/// runc's `state` output (the OCI state plus runc's fields), in runc's field order: the
/// same record hooks read on stdin.
pub use crate::linux::hooks::State as OciState;

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

    /// Writes state.json atomically (temporary file, fsync-free rename), in the format it
    /// was read in.
    pub fn save(&self, state: &mut State) -> Result<()> {
        if state.version == 1 {
            state.cgroup_paths = Some(state.cgroup.paths());
            state.inline_config = Some(state.config()?.clone());
        } else {
            state.saved_cgroup = Some(std::mem::take(&mut state.cgroup));
        }
        let data = serde_json::to_vec(&*state);
        // Back to the in-memory form, whatever the encoding did.
        if let Some(cg) = state.saved_cgroup.take() {
            state.cgroup = cg;
        }
        state.cgroup_paths = None;
        state.inline_config = None;
        let data = data.map_err(|e| Error::other(format!("encoding state: {e}")))?;
        write_atomic(&self.dir, STATE_FILE, &data)
    }

    /// Writes the config beside the state (format 2), at create and when `update` changes
    /// it.
    pub fn save_config(&self, state: &State) -> Result<()> {
        if state.version == 1 {
            return Ok(());
        }
        let data = serde_json::to_vec(state.config()?)
            .map_err(|e| Error::other(format!("encoding config: {e}")))?;
        write_atomic(&self.dir, CONFIG_FILE, &data)
    }

    /// The fd holding the lock (a cloned child must close it, or it would keep the lock).
    pub fn lock_raw(&self) -> i32 {
        self._lock.as_raw_fd()
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Removes the whole directory (the lock goes with it). A restore killed midway may
    /// have left the rootfs bound at `criu-root`: it is unmounted first, so the removal
    /// never walks into the container's rootfs.
    pub fn remove(self) -> Result<()> {
        let criu_root = self.dir.join(CRIU_ROOT);
        if criu_root.exists() {
            let _ = nix::mount::umount2(&criu_root, nix::mount::MntFlags::MNT_DETACH);
            if let Err(e) = std::fs::remove_dir(&criu_root)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::path("cannot remove", &criu_root, e));
            }
        }
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

/// Writes `dir/name` through a temporary file and a rename, so a reader sees the old file or
/// the new one, never half of one.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .at("cannot write state file", &tmp)?;
    f.write_all(data).at("cannot write state file", &tmp)?;
    drop(f);
    std::fs::rename(&tmp, &path).at("cannot write state file", &path)
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
    parse_state(&data, path)
}

/// A state record read from `data`, which came from the state file `path`: either format,
/// into the in-memory form.
pub fn parse_state(data: &[u8], path: &Path) -> Result<State> {
    let bad = |e: String| Error::other(format!("state file {}: {e}", path.display()));
    let mut st: State = serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
    if st.version > STATE_VERSION {
        return Err(bad(format!(
            "format version {} is newer than this tong reads ({STATE_VERSION})",
            st.version
        )));
    }
    st.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    st.cgroup = match (st.saved_cgroup.take(), st.cgroup_paths.take()) {
        (Some(cg), _) => cg,
        (None, Some(paths)) => Cgroup::from_recorded_paths(&paths),
        (None, None) => Cgroup::default(),
    };
    if let Some(c) = st.inline_config.take() {
        let _ = st.config.set(c);
    }
    Ok(st)
}

impl State {
    /// A new record, in the current format, for a container made with `config`.
    pub fn new(config: serde_json::Value) -> State {
        State {
            version: STATE_VERSION,
            id: String::new(),
            oci_version: String::new(),
            phase: Phase::Creating,
            creator_pid: 0,
            pid: 0,
            pid_start_time: 0,
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            created: String::new(),
            owner: String::new(),
            annotations: HashMap::new(),
            saved_cgroup: None,
            cgroup_paths: None,
            cgroup: Cgroup::default(),
            own_pid_ns: false,
            inline_config: None,
            config: config.into(),
            dir: PathBuf::new(),
        }
    }

    /// The config the container was created with.
    pub fn config(&self) -> Result<&serde_json::Value> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let path = self.dir.join(CONFIG_FILE);
        let data = std::fs::read(&path).at("cannot read container config", &path)?;
        let v = serde_json::from_slice(&data)
            .map_err(|e| Error::other(format!("container config {}: {e}", path.display())))?;
        Ok(self.config.get_or_init(|| v))
    }

    /// The config, to change (then saved by [`StateDir::save_config`]).
    pub fn config_mut(&mut self) -> Result<&mut serde_json::Value> {
        self.config()?;
        self.config
            .get_mut()
            .ok_or_else(|| Error::other("container config not loaded"))
    }

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
        if self.cgroup.is_frozen() {
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
