//! AppArmor: the profile the container's process is confined by, applied on its execve.

use crate::error::{Context, Result};

/// Whether the host runs AppArmor.
pub fn enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// Asks the kernel to switch to `profile` at the next execve. A profile on a host without
/// AppArmor is an error (create refuses it earlier; this covers `exec --apparmor`), as in
/// runc: the process would otherwise run unconfined.
pub fn apply_on_exec(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    if !enabled() {
        return Err(crate::error::Error::config(format!(
            "apparmor profile {profile:?} is specified, but AppArmor is not enabled on this host"
        )));
    }
    let path = if std::path::Path::new("/proc/self/attr/apparmor/exec").exists() {
        "/proc/self/attr/apparmor/exec"
    } else {
        "/proc/self/attr/exec"
    };
    std::fs::write(path, format!("exec {profile}"))
        .at("process.apparmorProfile: cannot write", path)
}
