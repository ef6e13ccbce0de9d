//! AppArmor: the profile the container's process is confined by, applied on its execve.

use crate::error::{Context, Result};

/// Whether the host runs AppArmor.
pub fn enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// Asks the kernel to switch to `profile` at the next execve. Where AppArmor is not enabled
/// the profile is ignored, as runc ignores it.
pub fn apply_on_exec(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    if !enabled() {
        crate::logging::debug(&format!("apparmor not enabled: ignoring process.apparmorProfile {profile:?}"));
        return Ok(());
    }
    let path = if std::path::Path::new("/proc/self/attr/apparmor/exec").exists() {
        "/proc/self/attr/apparmor/exec"
    } else {
        "/proc/self/attr/exec"
    };
    std::fs::write(path, format!("exec {profile}")).at("process.apparmorProfile: cannot write", path)
}
