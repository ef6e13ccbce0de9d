//! `pause` and `resume`: the container's cgroup frozen and thawed.

use std::path::Path;

use super::running;
use crate::error::Result;

/// `pause`: freezes every process of the container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = running(root, id)?;
    status.may_pause()?;
    st.cgroup.freeze()
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_sd, st, status) = running(root, id)?;
    status.may_resume()?;
    st.cgroup.thaw()
}
