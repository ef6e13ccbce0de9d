//! `checkpoint`: CRIU dumps a running container into an image directory, as runc drives it
//! (options, external mounts and namespaces, `descriptors.json`), over CRIU's RPC
//! (linux/criu.rs). After a dump the container is gone unless `--leave-running` or
//! `--pre-dump`; a failed dump leaves it running as it was (CRIU thaws it).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::delete::destroy;
use super::{State, typed_config};
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::linux::criu::{self, Criu, Criu_cg_mode, Criu_opts, Criu_req, Criu_req_type};
use crate::linux::{devices, mounts};
use crate::logging;

/// CRIU's `--manage-cgroups-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
}

impl CgroupsMode {
    pub(super) fn criu(self) -> Criu_cg_mode {
        match self {
            CgroupsMode::Soft => Criu_cg_mode::SOFT,
            CgroupsMode::Full => Criu_cg_mode::FULL,
            CgroupsMode::Strict => Criu_cg_mode::STRICT,
        }
    }
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
    pub criu: Criu,
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

/// The file beside the images that lists the init's stdio as CRIU will see it
/// (`pipe:[N]`, a path...): restore hands pipes back by these names.
pub const DESCRIPTORS: &str = "descriptors.json";

/// Checkpoints a running or paused container.
pub fn checkpoint(root: &Path, id: &str, opts: &Options) -> Result<()> {
    let (sd, st, status) = super::running(root, id)?;
    status.may_checkpoint()?;
    // Made first, as runc does: `--parent-path` is resolved through it.
    let images = open_dir(&opts.image_path, "image")?;
    check_parent(&opts.image_path, opts.parent_path.as_deref())?;
    let version = opts.criu.require(30000)?;
    let spec = typed_config(&st)?;
    let work = match &opts.work_path {
        Some(w) => Some(open_dir(w, "work")?),
        None => None,
    };
    let mut o = Criu_opts {
        images_dir_fd: Some(images.as_raw_fd()),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        log_level: Some(4),
        log_file: Some("dump.log".into()),
        root: Some(st.rootfs.display().to_string()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        pid: Some(st.pid),
        shell_job: Some(opts.shell_job),
        leave_running: Some(opts.leave_running),
        tcp_established: Some(opts.tcp_established),
        ext_unix_sk: Some(opts.ext_unix_sk),
        file_locks: Some(opts.file_locks),
        empty_ns: Some(opts.empty_ns),
        orphan_pts_master: Some(true),
        auto_dedup: Some(opts.auto_dedup),
        lazy_pages: Some(opts.lazy_pages),
        config_file: config_file(&st),
        ..Default::default()
    };
    o.external = external_namespaces(&spec, version)?;
    o.freeze_cgroup = freezer(&st.cgroup, version);
    if let Some(ps) = &opts.page_server {
        o.ps = protobuf::MessageField::some(criu::Criu_page_server_info {
            address: Some(ps.address.clone()),
            port: Some(i32::from(ps.port)),
            ..Default::default()
        });
    }
    if let Some(p) = &opts.parent_path {
        o.parent_img = Some(p.display().to_string());
        o.track_mem = Some(true);
    }
    if let Some(m) = opts.cgroups_mode {
        o.manage_cgroups_mode = criu::cg_mode(m.criu());
    }
    let kind = if opts.pre_dump {
        need_feature(&opts.criu, &o, "pre-dump", |f| f.mem_track = Some(true))?;
        Criu_req_type::PRE_DUMP
    } else {
        Criu_req_type::DUMP
    };
    let mut status_fd = None;
    if opts.lazy_pages {
        need_feature(&opts.criu, &o, "lazy-pages", |f| f.lazy_pages = Some(true))?;
        if opts.status_fd != -1 {
            status_fd = Some(check_status_fd(opts.status_fd)?);
        }
    }
    if !opts.pre_dump {
        o.ext_mnt = dump_mounts(&spec, &st)?;
        write_descriptors(&opts.image_path, st.pid)?;
    }
    let req = Criu_req {
        type_: Some(protobuf::EnumOrUnknown::new(kind)),
        opts: protobuf::MessageField::some(o),
        ..Default::default()
    };
    let log = criu::log_path(opts.work_path.as_deref(), &opts.image_path, "dump.log");
    let mut h = DumpHandler { status_fd };
    let mut inherit = vec![images.as_raw_fd()];
    inherit.extend(work.as_ref().map(|w| w.as_raw_fd()));
    if let Err(e) = opts.criu.call(req, &mut h, &inherit, Some(&log), false) {
        return Err(diagnose(&opts.criu, e));
    }
    if !(opts.leave_running || opts.pre_dump) {
        logging::debug("checkpoint: the dumped container is destroyed");
        destroy(sd, &st, false);
    }
    Ok(())
}

/// Answers a dump's notifications: tong manages no network devices (runc's network lock
/// is a no-op for OCI configs too); with lazy pages, `status-ready` is passed on.
struct DumpHandler {
    status_fd: Option<OwnedFd>,
}

impl criu::Handler for DumpHandler {
    fn notify(&mut self, script: &str, _pid: i32, _fds: Vec<OwnedFd>) -> Result<()> {
        logging::debug(&format!("criu notification: {script}"));
        if script == "status-ready"
            && let Some(fd) = self.status_fd.take()
        {
            // The lazy-pages server is ready: one NUL, then the descriptor is closed.
            if let Err(e) = nix::unistd::write(&fd, &[0u8]) {
                logging::warn(&format!("cannot write to --status-fd: {e}"));
            }
        }
        Ok(())
    }
}

/// `--status-fd`: it must be open for writing (runc's check), and it is closed once used.
fn check_status_fd(fd: i32) -> Result<OwnedFd> {
    let flags = crate::linux::sys::fd_flags(fd)
        .map_err(|e| Error::Usage(format!("invalid --status-fd argument {fd}: {e}")))?;
    if flags & (libc::O_WRONLY | libc::O_RDWR) == 0 {
        return Err(Error::Usage(format!(
            "invalid --status-fd argument {fd}: not writable"
        )));
    }
    crate::linux::sys::take_fd(fd).map_err(|e| Error::sys("--status-fd", e))
}

/// Fails unless CRIU and the kernel have the feature `name` needs.
fn need_feature(
    c: &Criu,
    o: &Criu_opts,
    name: &str,
    set: impl FnOnce(&mut criu::Criu_features),
) -> Result<()> {
    let mut want = criu::Criu_features::default();
    set(&mut want);
    let missing = c.missing_features(o, &want)?;
    if !missing.is_empty() {
        return Err(Error::other(format!(
            "{name}: CRIU is missing features: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// A failed CRIU call, with `criu check`'s verdict when the host is what fails.
pub(super) fn diagnose(c: &Criu, e: Error) -> Error {
    match criu::check(c) {
        Some(why) if e.to_string().contains(&why) => {
            Error::other(format!("{e}; `criu check` fails on this host too"))
        }
        Some(why) => Error::other(format!("{e}; `criu check` fails on this host: {why}")),
        None => e,
    }
}

/// The image or work directory: made (0700) if missing, as runc does, and opened.
pub(super) fn open_dir(p: &Path, what: &str) -> Result<OwnedFd> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
    {
        Ok(()) => {}
        Err(e) => {
            return Err(Error::path(
                if what == "image" {
                    "cannot create the image directory"
                } else {
                    "cannot create the work directory"
                },
                p,
                e,
            ));
        }
    }
    open_existing_dir(p, what)
}

pub(super) fn open_existing_dir(p: &Path, what: &str) -> Result<OwnedFd> {
    nix::fcntl::open(
        p,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Error::path(
            if what == "image" {
                "cannot open the image directory"
            } else {
                "cannot open the work directory"
            },
            p,
            e.into(),
        )
    })
}

/// CRIU's configuration file, as runc picks it: `org.criu.config` names one (empty: none),
/// else /etc/criu/runc.conf (CRIU ignores a missing file). The same file runc users keep
/// for their containers is read, so a switch of runtime keeps their settings.
pub(super) fn config_file(st: &State) -> Option<String> {
    match st.annotations.get("org.criu.config") {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some("/etc/criu/runc.conf".into()),
    }
}

/// CRIU's name for a namespace type, and the key of an external one (runc's keys).
pub(super) fn criu_ns(t: LinuxNamespaceType) -> Option<(&'static str, &'static str)> {
    match t {
        LinuxNamespaceType::Network => Some(("net", "extRootNetNS")),
        LinuxNamespaceType::Pid => Some(("pid", "extRootPidNS")),
        _ => None,
    }
}

/// The CRIU version that knows an external namespace of this type (net 3.11, pid 3.15).
pub(super) fn external_ns_since(t: LinuxNamespaceType) -> u32 {
    if t == LinuxNamespaceType::Pid {
        31500
    } else {
        31100
    }
}

/// Network and pid namespaces the config joins by path are dumped as external
/// (`net[INODE]:extRootNetNS`): CRIU leaves them, and a restore must be given them again.
fn external_namespaces(spec: &Spec, version: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (t, path) in crate::spec::namespaces(spec) {
        let (Some((name, key)), Some(path)) = (criu_ns(t), path) else {
            continue;
        };
        if version < external_ns_since(t) {
            continue;
        }
        let st = nix::sys::stat::stat(&path)
            .map_err(|e| Error::path("cannot stat namespace", &path, e.into()))?;
        out.push(format!("{name}[{}]:{key}", st.st_ino));
    }
    Ok(out)
}

/// The freezer CRIU stops the container with (else it uses ptrace): v1's freezer, or the
/// cgroup2 directory with CRIU 3.14 and later.
fn freezer(cg: &Cgroup, version: u32) -> Option<String> {
    let d = cg.view();
    if let Some(f) = d.v1("freezer") {
        return Some(f.display().to_string());
    }
    if version >= 31400 {
        return d.v2.map(|p| p.display().to_string());
    }
    None
}

/// The container's mounts that come from outside it, by their path inside (CRIU's
/// "external" mounts): bind mounts, the v1 cgroup binds, masked files (bound from
/// /dev/null) and device nodes. A dump names each by itself; a restore maps each to its
/// source on the host ([`restore_mounts`]).
fn dump_mounts(spec: &Spec, st: &State) -> Result<Vec<criu::Ext_mount_map>> {
    let ext = |k: &Path, v: &Path| criu::Ext_mount_map {
        key: Some(k.display().to_string()),
        val: Some(v.display().to_string()),
        ..Default::default()
    };
    let mut out: Vec<_> = external_mounts(spec, &st.cgroup, &st.bundle)
        .into_iter()
        .map(|(inside, _)| ext(&inside, &inside))
        .collect();
    for p in masked_paths(spec) {
        // A masked file is /dev/null bound over it; a masked directory is a tmpfs of its own.
        let inside = format!("/proc/{}/root{}", st.pid, p.display());
        match std::fs::metadata(&inside) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => out.push(ext(&p, Path::new("/dev/null"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::path("cannot stat masked path", &inside, e)),
        }
    }
    for d in device_paths(spec) {
        out.push(ext(&d, &d));
    }
    Ok(out)
}

/// A restore's map of the same mounts: each to its source on the host. `cgroup` gives the
/// container's new cgroup directories.
pub(super) fn restore_mounts(spec: &Spec, cg: &Cgroup, bundle: &Path) -> Vec<criu::Ext_mount_map> {
    let ext = |k: &Path, v: &Path| criu::Ext_mount_map {
        key: Some(k.display().to_string()),
        val: Some(v.display().to_string()),
        ..Default::default()
    };
    let mut out: Vec<_> = external_mounts(spec, cg, bundle)
        .into_iter()
        .map(|(inside, source)| ext(&inside, &source))
        .collect();
    if !masked_paths(spec).is_empty() {
        out.push(ext(Path::new("/dev/null"), Path::new("/dev/null")));
    }
    for d in device_paths(spec) {
        out.push(ext(&d, &d));
    }
    out
}

/// (path inside, source on the host) of the bind mounts and, on a v1 or hybrid host
/// without a cgroup namespace, of each cgroup hierarchy bound under a `cgroup` mount.
fn external_mounts(spec: &Spec, cg: &Cgroup, bundle: &Path) -> Vec<(PathBuf, PathBuf)> {
    let planned = mounts::plan(spec.mounts().as_deref().unwrap_or_default(), bundle);
    let cgroupns = crate::spec::namespaces(spec)
        .iter()
        .any(|(t, p)| *t == LinuxNamespaceType::Cgroup && p.is_none());
    let only_v2 = !cg.dirs.is_empty() && cg.dirs.iter().all(|d| d.v2());
    let mut out = Vec::new();
    for m in &planned {
        let inside = Path::new("/").join(&m.dest);
        if m.bind {
            if let Some(src) = &m.source {
                out.push((inside, src.clone()));
            }
        } else if m.typ == "cgroup" && !only_v2 && !cgroupns {
            for d in &cg.dirs {
                let name = crate::linux::rootfs::cgroup_bind_name(&d.controllers);
                out.push((inside.join(name), d.path.clone()));
            }
        }
    }
    out
}

fn masked_paths(spec: &Spec) -> Vec<PathBuf> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .collect()
}

/// The default device nodes and the config's.
fn device_paths(spec: &Spec) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = devices::DEFAULT_DEVICES
        .iter()
        .map(|(p, _, _)| PathBuf::from(p))
        .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if !out.contains(d.path()) {
            out.push(d.path().clone());
        }
    }
    out
}

/// `descriptors.json`: where the init's stdin, stdout and stderr point now, as runc
/// records them (a restore hands `pipe:[N]` ones back from its own stdio).
fn write_descriptors(images: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect();
    let path = images.join(DESCRIPTORS);
    let json = serde_json::to_vec(&fds).map_err(|e| Error::other(e.to_string()))?;
    std::fs::write(&path, json).at("cannot write", &path)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .at("cannot chmod", &path)
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
