//! The container layer: state on disk and the lifecycle operations, one file each, as runc
//! defines them. What each status allows lives on [`Status`] (state.rs).

mod attached;
pub mod checkpoint;
mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod pidfile;
mod query;
pub mod restore;
mod start;
pub mod state;
mod status;
mod update;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::spec;
pub use attached::{exec_attached, run_attached, run_detached};
pub use create::{CreateOpts, Created, create};
pub use delete::delete;
pub use exec::{ExecOpts, exec};
pub use kill::kill;
pub use pause::{pause, resume};
pub use query::{cgroup, config, list, pids, state};
pub use start::{start, start_created};
pub use state::{OciState, Phase, State, StateDir, Status};
pub use update::update;

/// A container's state dir (locked), its state and its status now.
fn running(root: &Path, id: &str) -> Result<(StateDir, State, Status)> {
    let sd = StateDir::open(root, id)?;
    let st = sd.load()?;
    let status = st.status(&sd.dir);
    Ok((sd, st, status))
}

/// The config the container was created with, typed.
fn typed_config(st: &State) -> Result<Spec> {
    spec::typed(st.config()?)
}

/// The stored config, typed, only if it sets `field` (e.g. `["hooks", "poststart"]`) to
/// something other than null or an empty list: typing a whole config costs more than the
/// start, delete or exec that would mostly find nothing there.
fn typed_config_if(st: &State, field: &[&str]) -> Option<Result<Spec>> {
    let config = match st.config() {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    let v = field.iter().try_fold(config, |v, k| v.get(*k))?;
    let set = !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty());
    set.then(|| typed_config(st))
}

/// The state hooks get on stdin: `status`, and the init's pid while it lives.
fn hook_state(st: &State, status: Status) -> OciState {
    let mut s = st.oci_state(status);
    if status != Status::Stopped {
        s.pid = st.pid;
    }
    s
}

/// `p` made absolute against the working directory (lexically, as runc does).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
