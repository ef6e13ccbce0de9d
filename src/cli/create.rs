//! `tong create`

use std::path::PathBuf;

use super::Global;
use crate::container::{self, CreateOpts};
use crate::error::Result;

/// The flags `create` and `run` share.
#[derive(clap::Args, Debug)]
pub struct CreateFlags {
    /// path to the root of the bundle directory, defaults to the current directory
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// do not use pivot root to jail process inside rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
}

impl CreateFlags {
    pub fn opts(&self, id: &str, systemd_cgroup: bool) -> CreateOpts {
        CreateOpts {
            id: id.to_string(),
            systemd_cgroup,
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds + listen_fds(),
            console_fd: None,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// the container's id
    pub id: String,
}

/// systemd socket activation: $LISTEN_FDS fds are passed on too, as runc does.
pub fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    container::create(&g.root, &a.flags.opts(&a.id, g.systemd_cgroup))?;
    Ok(0)
}
