//! What the read-only commands ask of a container: `state`, `list`, `ps`, `events` and the
//! stored config.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::state::{self as st_file};
use super::{OciState, StateDir, Status, running, typed_config};
use crate::cgroups;
use crate::error::{Error, Result};

/// The config a container was created with.
pub fn config(root: &Path, id: &str) -> Result<Spec> {
    let sd = StateDir::open(root, id)?;
    typed_config(&sd.load()?)
}

/// The pids of the container's processes (for `ps`).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_sd, st, status) = running(root, id)?;
    if status == Status::Stopped {
        return Ok(Vec::new());
    }
    let mut p = st.cgroup.pids();
    if p.is_empty() && st.init_alive() {
        p.push(st.pid);
    }
    Ok(p)
}

/// The container's cgroup and whether it still runs, for `events`.
pub fn cgroup(root: &Path, id: &str) -> Result<(cgroups::Cgroup, bool)> {
    let (_sd, st, status) = running(root, id)?;
    Ok((st.cgroup, status != Status::Stopped))
}

/// `state`: runc's JSON for one container (read without the lock, which create holds).
pub fn state(root: &Path, id: &str) -> Result<OciState> {
    st_file::validate_id(id).map_err(|_| Error::NotExist(id.to_string()))?;
    let dir = root.join(id);
    let st = match st_file::read_state(&dir.join(st_file::STATE_FILE)) {
        Ok(s) => s,
        Err(_) if !dir.join(st_file::STATE_FILE).exists() => {
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
        if let Ok(st) = st_file::read_state(&dir.join(st_file::STATE_FILE)) {
            out.push(st.oci_state(st.status(&dir)));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
