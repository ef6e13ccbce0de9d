//! `tong restore [flags] ID`, with runc's flags.

use std::path::PathBuf;

use super::Global;
use super::checkpoint::CriuFlags;
use crate::container::restore::{self, RestoreOpts};
use crate::error::Result;
use crate::linux::criu::Criu;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, value_name = "PATH")]
    pub bundle: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// disable the use of the subreaper used to reap reparented processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Specify an LSM profile to be used during restore in the form of TYPE:NAME.
    #[arg(long = "lsm-profile", value_name = "TYPE:NAME")]
    pub lsm_profile: Option<String>,
    /// Specify an LSM mount context to be used during restore.
    #[arg(long = "lsm-mount-context", value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    /// the container's id
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    // runc's default: the current directory.
    let bundle = a
        .bundle
        .filter(|b| !b.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let opts = RestoreOpts {
        criu: Criu::new(g.criu.as_deref()),
        id: a.id,
        bundle,
        image_path: a.criu.image_path(),
        work_path: a.criu.work_path(),
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        shell_job: a.criu.shell_job,
        file_locks: a.criu.file_locks,
        cgroups_mode: a.criu.cgroups_mode()?,
        detach: a.detach,
        pid_file: a.pid_file.filter(|p| !p.as_os_str().is_empty()),
        console_socket: a.console_socket.filter(|p| !p.as_os_str().is_empty()),
        no_subreaper: a.no_subreaper,
        empty_ns: a.criu.empty_ns()?,
        auto_dedup: a.criu.auto_dedup,
        lazy_pages: a.criu.lazy_pages,
        lsm_profile: a.lsm_profile.filter(|s| !s.is_empty()),
        lsm_mount_context: a.lsm_mount_context.filter(|s| !s.is_empty()),
        systemd_cgroup: g.systemd_cgroup,
    };
    // --no-pivot: CRIU restores the mount namespace as it was dumped; nothing to pivot.
    let _ = a.no_pivot;
    restore::restore(&g.root, &opts)
}
