//! `tong checkpoint [flags] ID`, with runc's flags.

use std::path::PathBuf;

use super::Global;
use crate::container;
use crate::container::checkpoint::{CgroupsMode, Options, PageServer};
use crate::error::{Error, Result};

/// The flags `checkpoint` and `restore` share, read as runc's `criuOptions` reads them.
#[derive(clap::Args, Debug)]
pub struct CriuFlags {
    /// path to criu image files
    #[arg(long = "image-path", value_name = "PATH")]
    pub image_path: Option<PathBuf>,
    /// path for saving work files and logs
    #[arg(long = "work-path", value_name = "PATH")]
    pub work_path: Option<PathBuf>,
    /// allow open tcp connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: 'soft' (default), 'full' and 'strict'
    #[arg(long = "manage-cgroups-mode", value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// create a namespace, but don't restore its properties
    #[arg(long = "empty-ns", value_name = "NAMESPACE")]
    pub empty_ns: Vec<String>,
    /// enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// use userfaultfd to lazily restore memory pages
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

impl CriuFlags {
    /// `--image-path`, or runc's default: ./checkpoint.
    pub fn image_path(&self) -> PathBuf {
        match &self.image_path {
            Some(p) if !p.as_os_str().is_empty() => p.clone(),
            _ => PathBuf::from("checkpoint"),
        }
    }

    pub fn work_path(&self) -> Option<PathBuf> {
        self.work_path.clone().filter(|p| !p.as_os_str().is_empty())
    }

    pub fn cgroups_mode(&self) -> Result<Option<CgroupsMode>> {
        self.manage_cgroups_mode
            .as_deref()
            .map(cgroups_mode)
            .transpose()
    }

    pub fn empty_ns(&self) -> Result<u32> {
        empty_ns(&self.empty_ns)
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path for previous criu image files in pre-dump
    #[arg(long = "parent-path", value_name = "PATH")]
    pub parent_path: Option<PathBuf>,
    /// leave the process running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// criu writes \0 to this FD once lazy-pages is ready
    #[arg(long = "status-fd", value_name = "FD", default_value_t = -1, allow_hyphen_values = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server
    #[arg(long = "page-server", value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// dump container's memory information only, leave the container running after this
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// the container's id
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let c = &a.criu;
    let opts = Options {
        criu: crate::linux::criu::Criu::new(g.criu.as_deref()),
        image_path: c.image_path(),
        work_path: c.work_path(),
        parent_path: a.parent_path.filter(|p| !p.as_os_str().is_empty()),
        leave_running: a.leave_running,
        tcp_established: c.tcp_established,
        ext_unix_sk: c.ext_unix_sk,
        shell_job: c.shell_job,
        lazy_pages: c.lazy_pages,
        status_fd: a.status_fd,
        page_server: a.page_server.as_deref().map(page_server).transpose()?,
        file_locks: c.file_locks,
        pre_dump: a.pre_dump,
        cgroups_mode: c.cgroups_mode()?,
        empty_ns: c.empty_ns()?,
        auto_dedup: c.auto_dedup,
    };
    container::checkpoint::checkpoint(&g.root, &a.id, &opts)?;
    Ok(0)
}

/// `--page-server ADDRESS:PORT`, in runc's words when it is not that.
fn page_server(s: &str) -> Result<PageServer> {
    let bad = || Error::Usage("Use --page-server ADDRESS:PORT to specify page server".into());
    let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let port = port
        .parse()
        .map_err(|_| Error::Usage("Invalid port number".into()))?;
    Ok(PageServer {
        address: addr.to_string(),
        port,
    })
}

fn cgroups_mode(s: &str) -> Result<CgroupsMode> {
    match s {
        "soft" => Ok(CgroupsMode::Soft),
        "full" => Ok(CgroupsMode::Full),
        "strict" => Ok(CgroupsMode::Strict),
        _ => Err(Error::Usage("Invalid manage cgroups mode".into())),
    }
}

/// The namespaces CRIU creates empty: the network always (tong does not manage network
/// devices, as runc does not); `--empty-ns` may name only `network` again.
fn empty_ns(names: &[String]) -> Result<u32> {
    for n in names {
        if n != "network" {
            return Err(Error::Usage(format!("namespace {n:?} is not supported")));
        }
    }
    Ok(libc::CLONE_NEWNET as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_server_takes_address_and_port() {
        let p = page_server("127.0.0.1:27").unwrap();
        assert_eq!((p.address.as_str(), p.port), ("127.0.0.1", 27));
        let p = page_server("[::1]:8").unwrap();
        assert_eq!(p.address, "::1");
        for bad in ["27", ":27", "host:", ""] {
            assert!(page_server(bad).is_err(), "{bad}");
        }
        assert!(
            page_server("host:x")
                .unwrap_err()
                .to_string()
                .contains("Invalid port")
        );
    }

    #[test]
    fn empty_ns_is_network_only() {
        assert_eq!(empty_ns(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert!(empty_ns(&["network".into()]).is_ok());
        let e = empty_ns(&["pid".into()]).unwrap_err().to_string();
        assert_eq!(e, "namespace \"pid\" is not supported");
    }

    #[test]
    fn cgroups_modes() {
        assert_eq!(cgroups_mode("full").unwrap(), CgroupsMode::Full);
        assert!(cgroups_mode("ignore").is_err());
    }
}
