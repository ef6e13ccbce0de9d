//! Control groups: the host's layout (v1, v2 or hybrid) and a container's place in it.
//!
//! A container gets its own cgroup in every hierarchy the host mounts (on a hybrid host: every
//! v1 hierarchy and the cgroup2 one). [`resources`] writes `linux.resources` there,
//! [`devices`] the device rules (v1 lists or a v2 eBPF program), [`freezer`] pauses and
//! resumes, [`stats`] reads what `events` reports.

pub mod devices;
pub mod freezer;
mod handle;
pub mod resources;
pub mod stats;
pub mod systemd;

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
pub use handle::{Cgroup, Dir, Driver};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted on the host, e.g. /sys/fs/cgroup/memory.
    pub mountpoint: PathBuf,
    /// The cgroup this mount shows as its root (field 4 of mountinfo), usually "/".
    pub root: PathBuf,
    /// v1 controllers (and `name=...`), from the super options; empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// The hierarchies mounted in tong's mount namespace, from /proc/self/mountinfo (read once
/// per process: the host's layout does not change under one command).
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    static CACHE: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(h) = CACHE.get() {
        return Ok(h.clone());
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .at("cannot read", "/proc/self/mountinfo")?;
    Ok(CACHE.get_or_init(|| parse_mountinfo(&info)).clone())
}

pub fn parse_mountinfo(info: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let controllers = if fstype == "cgroup" {
            post[2]
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro"
                            | "relatime"
                            | "noatime"
                            | "nosuid"
                            | "nodev"
                            | "noexec"
                            | "xattr"
                            | "clone_children"
                            | "cpuset_v2_mode"
                    ) && !o.starts_with("release_agent=")
                })
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let h = Hierarchy {
            mountpoint: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            controllers,
            v2: fstype == "cgroup2",
        };
        // The same hierarchy may be mounted twice; the first mount wins.
        if !out
            .iter()
            .any(|o| o.v2 == h.v2 && o.controllers == h.controllers)
        {
            out.push(h);
        }
    }
    out
}

use crate::linux::mounts::unescape_mountinfo as unescape;

/// Whether the host mounts cgroup v2 alone (no v1 hierarchy beside it).
pub fn pure_v2() -> bool {
    hierarchies().is_ok_and(|h| !h.is_empty() && h.iter().all(|h| h.v2))
}

/// runc's refusal of `linux.resources.unified` anywhere but on a pure cgroup v2 host (a
/// hybrid host's v2 hierarchy holds no controllers the v1 ones hold).
pub const V1_NO_UNIFIED: &str =
    "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1";

/// A container's cgroup directories by controller: what the resource, device, freezer and
/// stats mechanisms take (from [`Cgroup::view`]).
#[derive(Debug, Default)]
pub struct Dirs {
    /// (v1 controllers, directory), one per v1 hierarchy.
    pub v1: Vec<(Vec<String>, PathBuf)>,
    /// The directory in the cgroup2 hierarchy, if the host has one.
    pub v2: Option<PathBuf>,
}

impl Dirs {
    /// The v1 directory of a controller.
    pub fn v1(&self, ctl: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == ctl))
            .map(|(_, p)| p.as_path())
    }

    /// The v2 directory, if `ctl` is enabled there.
    pub fn v2_with(&self, ctl: &str) -> Option<&Path> {
        let d = self.v2.as_deref()?;
        let ctls = std::fs::read_to_string(d.join("cgroup.controllers")).ok()?;
        ctls.split_whitespace().any(|c| c == ctl).then_some(d)
    }

    /// A directory that lists the container's processes (any will do).
    pub fn any(&self) -> Option<&Path> {
        self.v1("pids")
            .or(self.v1("memory"))
            .or(self.v1.first().map(|(_, p)| p.as_path()))
            .or(self.v2.as_deref())
    }
}

/// The directory this process is in now in the hierarchy mounted at `mount`, from
/// /proc/self/cgroup (what runc binds for a container's `cgroup` mount on v1: systemd may
/// have moved the init up out of an undelegated cgroup, and removed that cgroup, since it
/// joined). None when the hierarchy or the line is not found.
pub fn current_dir(mount: &Path) -> Option<PathBuf> {
    let h = hierarchies()
        .ok()?
        .into_iter()
        .find(|h| h.mountpoint == mount)?;
    let cg = own_cgroup(&h)?;
    let inside = cg.strip_prefix(&h.root).unwrap_or(&cg);
    let inside = inside.strip_prefix("/").unwrap_or(inside);
    Some(h.mountpoint.join(inside))
}

/// This process's cgroup in a hierarchy, from /proc/self/cgroup.
fn own_cgroup(h: &Hierarchy) -> Option<PathBuf> {
    let data = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in data.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let set: Vec<&str> = ctrls.split(',').collect();
            !h.controllers.is_empty() && h.controllers.iter().all(|c| set.contains(&c.as_str()))
        };
        if matches {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The directory for a container in hierarchy `h`. An absolute `cgroups_path` is taken from the
/// hierarchy's root; a relative one (or the default, the container id) from tong's own cgroup
/// on v1 and hybrid hosts, from its parent on a pure v2 host, as runc does.
pub fn dir_for(h: &Hierarchy, cgroups_path: Option<&str>, id: &str) -> Option<PathBuf> {
    let rel = match cgroups_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => id.to_string(),
    };
    let clean = clean(&rel);
    let cg = if rel.starts_with('/') {
        clean
    } else if h.v2 && pure_v2() {
        // As runc on cgroup v2: beside tong's own cgroup, under its parent. Tong's own
        // cgroup holds a process (tong), so the no-internal-processes rule keeps it from
        // handing controllers to a child (inside a systemd service, say).
        let own = own_cgroup(h)?;
        own.parent().unwrap_or(Path::new("/")).join(clean)
    } else {
        own_cgroup(h)?.join(clean)
    };
    // The mount shows the hierarchy from `root`; strip it.
    let inside = cg
        .strip_prefix(&h.root)
        .map(Path::to_path_buf)
        .unwrap_or(cg.clone());
    let inside = inside
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or(inside);
    if inside.as_os_str().is_empty() {
        return None;
    }
    Some(h.mountpoint.join(inside))
}

/// Lexically cleans a cgroup path: no `..` can climb above the hierarchy's root.
fn clean(p: &str) -> PathBuf {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    PathBuf::from(out.join("/"))
}

/// The cgroup directories a container will own, in every hierarchy.
fn plan(cgroups_path: Option<&str>, id: &str) -> Result<Vec<(Hierarchy, PathBuf)>> {
    let mut out = Vec::new();
    // Rootless: without a delegated cgroup a user cannot create one; the container runs in
    // the caller's cgroup (runc --rootless auto does the same).
    if !nix::unistd::geteuid().is_root() {
        return Ok(out);
    }
    for h in hierarchies()? {
        if let Some(d) = dir_for(&h, cgroups_path, id) {
            out.push((h, d));
        }
    }
    Ok(out)
}

/// Creates the directories (copying cpuset.cpus/mems down a v1 cpuset tree, which a new v1
/// cpuset cgroup needs before a process can join) and, given `pid`, moves it into each as
/// soon as it exists, as runc's v1 driver does: on a v1 host systemd may remove an empty
/// cgroup of an undelegated tree it manages (the blkio or cpu one below a service, say)
/// between the mkdir and a later join; one that holds a process cannot be removed.
///
/// On cgroup v2 every level above the leaf hands its controllers down. On a pure v2 host
/// that starts at the root and includes levels that already exist, as runc's fs2 driver
/// does: a systemd host enables only the controllers its own units need, so without this a
/// container under `/` would get no cpu or io controller. On a hybrid host the v2 hierarchy
/// is not the one resources go to: only the levels tong creates are touched there.
fn create(dirs: &[Dir], pid: Option<i32>) -> Result<()> {
    let pure_v2 = dirs.iter().all(Dir::v2);
    for d in dirs {
        let rel = d
            .path
            .strip_prefix(&d.mount)
            .unwrap_or(&d.path)
            .to_path_buf();
        let mut cur = d.mount.clone();
        let n = rel.components().count();
        if d.v2() && pure_v2 && n > 0 {
            enable_controllers(&cur);
        }
        for (i, c) in rel.components().enumerate() {
            cur.push(c);
            let created = match std::fs::create_dir(&cur) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(Error::path("cannot create cgroup", &cur, e)),
            };
            if d.v2() && i + 1 < n && (created || pure_v2) {
                enable_controllers(&cur);
            }
        }
        if d.controllers.iter().any(|c| c == "cpuset") {
            init_cpuset(&d.mount, &d.path)?;
        }
        if let Some(pid) = pid {
            join(std::slice::from_ref(&d.path), pid)?;
        }
    }
    Ok(())
}

/// Enables in `dir`'s subtree_control every controller `dir` has. A refusal (a level that
/// holds processes, a controller the kernel will not hand down) is left for the resource
/// that needs the controller to report.
fn enable_controllers(dir: &Path) {
    let ctls = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let all: Vec<String> = ctls.split_whitespace().map(|c| format!("+{c}")).collect();
    if all.is_empty() {
        return;
    }
    let control = dir.join("cgroup.subtree_control");
    if std::fs::write(&control, all.join(" ")).is_err() {
        for c in &all {
            let _ = std::fs::write(&control, c);
        }
    }
}

fn init_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if v.trim().is_empty() {
                let pv =
                    std::fs::read_to_string(parent.join(f)).at("cannot read", parent.join(f))?;
                std::fs::write(cur.join(f), pv.trim()).at("cannot write", cur.join(f))?;
            }
        }
    }
    Ok(())
}

/// Moves `pid` into every directory.
pub fn join(paths: &[PathBuf], pid: i32) -> Result<()> {
    for d in paths {
        let f = d.join("cgroup.procs");
        std::fs::write(&f, pid.to_string()).at("cannot join cgroup", &f)?;
    }
    Ok(())
}

/// runc's fallback for `exec` on a pure cgroup v2 host: where the container's cgroup refuses
/// a process (EBUSY: it hands controllers to sub-cgroups the container made, and may then hold
/// none itself), `pid` joins the cgroup the init is in now. None when that is no better.
pub fn join_like(init: i32, pid: i32) -> Option<()> {
    if init <= 0 || !pure_v2() {
        return None;
    }
    let data = std::fs::read_to_string(format!("/proc/{init}/cgroup")).ok()?;
    let rel = data.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()
}

/// The pids in the container's cgroup and in every cgroup below it (runc's GetAllPids): a
/// container may make sub-cgroups and move its processes there.
fn pids(dirs: &Dirs) -> Vec<i32> {
    let mut out = Vec::new();
    if let Some(d) = dirs.any() {
        tree_pids(d, &mut out, 0);
    }
    out
}

/// How deep tong follows sub-cgroups (the kernel's own default limit is far above any real
/// container's tree; this only stops a pathological one).
const MAX_DEPTH: usize = 64;

/// The pids in `d` itself.
fn procs(d: &Path) -> Vec<i32> {
    std::fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn tree_pids(d: &Path, out: &mut Vec<i32>, depth: usize) {
    out.extend(procs(d));
    if depth < MAX_DEPTH {
        for sub in subdirs(d) {
            tree_pids(&sub, out, depth + 1);
        }
    }
}

/// The child cgroups of `d`.
fn subdirs(d: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(d) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Removes the directories and every sub-cgroup the container made in them, leaf first; the
/// processes left in a sub-cgroup are killed. Waits briefly for exiting processes to leave.
fn remove(paths: &[PathBuf]) -> Result<()> {
    for d in paths {
        remove_tree(d, 0)?;
    }
    Ok(())
}

fn remove_tree(d: &Path, depth: usize) -> Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                let subs = subdirs(d);
                if depth < MAX_DEPTH && !subs.is_empty() {
                    for s in subs {
                        remove_tree(&s, depth + 1)?;
                    }
                    continue;
                }
                // The container's own cgroup was emptied by its caller; below it, what a
                // process of the container put there goes the same way.
                if depth > 0 {
                    kill_procs(d);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(Error::path("cannot remove cgroup", d, e)),
        }
    }
}

fn kill_procs(d: &Path) {
    for pid in procs(d) {
        if let Ok(fd) = crate::linux::sys::pidfd_open(pid) {
            let _ =
                crate::linux::sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 26 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 26 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 26 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
38 26 0:33 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn parses_hybrid() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(h.len(), 4);
        assert_eq!(h[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(h[2].v2);
        assert_eq!(h[3].controllers, vec!["name=systemd"]);
    }

    #[test]
    fn absolute_paths_are_cleaned() {
        let h = &parse_mountinfo(HYBRID)[0];
        assert_eq!(
            dir_for(h, Some("/a/../../b"), "x").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/b")
        );
        assert_eq!(dir_for(h, Some("/"), "x"), None);
    }
}
