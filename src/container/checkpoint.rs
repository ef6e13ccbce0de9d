//! `checkpoint`: the rules runc keeps before CRIU is asked to dump a container.
//!
//! The dump itself (CRIU's RPC over `criu swrk`) is not built yet: once the options are
//! found sound, tong says so in one line and changes nothing.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// CRIU's `--manage-cgroups-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
}

/// Where CRIU sends the pages it dumps, instead of the image directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageServer {
    pub address: String,
    pub port: u16,
}

/// `tong checkpoint`'s options, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    /// Relative to `image_path`, as CRIU takes it.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub lazy_pages: bool,
    pub status_fd: i32,
    pub page_server: Option<PageServer>,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    /// CLONE_NEW* flags of the namespaces CRIU restores empty.
    pub empty_ns: u32,
    pub auto_dedup: bool,
}

/// Checkpoints a running or paused container.
pub fn checkpoint(root: &Path, id: &str, opts: &Options) -> Result<()> {
    let (_sd, _st, status) = super::running(root, id)?;
    status.may_checkpoint()?;
    check_parent(&opts.image_path, opts.parent_path.as_deref())?;
    Err(Error::other(
        "checkpoint: CRIU support is not built into this version of tong yet",
    ))
}

/// `--parent-path` names a directory relative to the image path, as runc requires.
fn check_parent(image: &Path, parent: Option<&Path>) -> Result<()> {
    let Some(parent) = parent else {
        return Ok(());
    };
    if parent.is_absolute() {
        return Err(Error::Usage("--parent-path must be relative".into()));
    }
    let real = image.join(parent);
    let err = match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::io::Error::from_raw_os_error(libc::ENOTDIR),
        Err(e) => e,
    };
    Err(Error::path("invalid --parent-path: stat", &real, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_path_is_a_directory_under_the_image_path() {
        let t = std::env::temp_dir().join(format!("tong-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(t.join("img/parent")).unwrap();
        std::fs::write(t.join("img/file"), "").unwrap();
        let img = t.join("img");
        assert!(check_parent(&img, None).is_ok());
        assert!(check_parent(&img, Some(Path::new("parent"))).is_ok());
        assert!(check_parent(&img, Some(Path::new("../img/parent"))).is_ok());
        let e = check_parent(&img, Some(&t.join("img/parent"))).unwrap_err();
        assert_eq!(e.to_string(), "--parent-path must be relative");
        let e = check_parent(&img, Some(Path::new("none"))).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid --parent-path: stat "),
            "{e}"
        );
        let e = check_parent(&img, Some(Path::new("file"))).unwrap_err();
        assert!(e.to_string().contains("Not a directory"), "{e}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
