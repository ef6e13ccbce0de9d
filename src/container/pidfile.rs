//! `--pid-file`, written as runc writes it.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Context, Result};

/// Writes the pid file atomically, as runc does (engines read it the moment create returns).
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
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
