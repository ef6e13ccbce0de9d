//! One container's cgroup, as runc's `cgroups.Manager` holds it: planned once at `create` from
//! the config's `cgroupsPath` and the host's layout, saved whole in `state.json`, and asked
//! for every operation the lifecycle needs. No later command reads mountinfo to find out
//! which hierarchy a recorded directory belongs to.
//!
//! The driver seam: [`Driver`] says who owns the directories. With `cgroupfs` tong makes,
//! joins and removes them itself (v1, v2 and hybrid hosts); with `systemd` a transient unit
//! owns the container's cgroup, and create, apply and remove go through systemd first
//! (super::systemd); on a v1 or hybrid host tong still makes, joins and removes the
//! directories of the hierarchies systemd does not manage. Freezing, pids and stats read the same files under
//! either driver.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{Dirs, Hierarchy, freezer, resources, stats, systemd};
use crate::error::{Error, Result};

/// Who manages the container's cgroup directories.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// tong writes the cgroup filesystems itself.
    #[default]
    Cgroupfs,
    /// systemd's transient unit owns the cgroup (`--systemd-cgroup`).
    Systemd,
}

/// The container's directory in one hierarchy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    /// Where the hierarchy is mounted on the host (the walk that creates `path` starts here).
    pub mount: PathBuf,
    /// The hierarchy's v1 controllers (`name=...` included); empty for cgroup2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<String>,
}

impl Dir {
    pub fn v2(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// A container's cgroup: its driver and its directory in every hierarchy it uses. Empty for
/// a rootless container without a delegated cgroup (it stays in the caller's).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroup {
    pub driver: Driver,
    pub dirs: Vec<Dir>,
    /// The systemd unit (driver `systemd` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<systemd::Unit>,
}

impl Cgroup {
    /// Plans the directories for `id` (or the config's `cgroupsPath`) in every hierarchy the
    /// host mounts. Nothing is created.
    pub fn plan(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let dirs = super::plan(cgroups_path, id)?
            .into_iter()
            .map(|(h, path)| Dir::of(&h, path))
            .collect();
        Ok(Cgroup {
            driver: Driver::Cgroupfs,
            dirs,
            unit: None,
        })
    }

    /// Plans the systemd unit for `cgroupsPath` (`slice:prefix:name`), with the config's
    /// `org.systemd.property.*` annotations. Nothing is started.
    pub fn plan_systemd(
        cgroups_path: Option<&str>,
        id: &str,
        annotations: Vec<(String, String)>,
    ) -> Result<Cgroup> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::Usage(
                "--systemd-cgroup: the systemd cgroup driver of a rootless container (systemd's user instance) is not supported".into(),
            ));
        }
        if !systemd::running() {
            return Err(Error::Usage(
                "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the cgroupfs driver".into(),
            ));
        }
        let mut unit = systemd::Unit::parse(cgroups_path, id)?;
        // Checked now, so a bad annotation fails before anything exists.
        systemd::annotation_properties(&annotations)?;
        unit.extra = annotations;
        let rel = Path::new("/").join(unit.cgroup()?);
        // The unit's cgroup in every hierarchy: on cgroup v2 the one systemd makes; on a v1
        // or hybrid host also those of the controllers systemd does not manage (freezer,
        // cpuset, net_cls, ...), which tong creates and joins itself, and on a hybrid host
        // the unified one systemd mirrors its tree in, as runc's v1 driver places them.
        let dirs = super::hierarchies()?
            .iter()
            .map(|h| {
                let inside = rel.strip_prefix(&h.root).unwrap_or(&rel);
                let inside = inside.strip_prefix("/").unwrap_or(inside);
                Dir::of(h, h.mountpoint.join(inside))
            })
            .collect();
        Ok(Cgroup {
            driver: Driver::Systemd,
            dirs,
            unit: Some(unit),
        })
    }

    fn unit(&self) -> Result<&systemd::Unit> {
        self.unit
            .as_ref()
            .ok_or_else(|| Error::other("state: a systemd cgroup without its unit"))
    }

    /// The handle of a container recorded before state format 2, which kept bare paths: each
    /// is matched to the hierarchy it lives under, from this host's mountinfo.
    pub fn from_recorded_paths(paths: &[PathBuf]) -> Cgroup {
        let hs = super::hierarchies().unwrap_or_default();
        let dirs = paths
            .iter()
            .filter_map(|p| {
                let h = hs
                    .iter()
                    .filter(|h| p.starts_with(&h.mountpoint))
                    .max_by_key(|h| h.mountpoint.as_os_str().len())?;
                Some(Dir::of(h, p.clone()))
            })
            .collect();
        Cgroup {
            driver: Driver::Cgroupfs,
            dirs,
            unit: None,
        }
    }

    /// The directories alone, as state format 1 recorded them.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The directories by controller, as the resource, device, freezer and stats mechanisms
    /// take them.
    pub fn view(&self) -> Dirs {
        let mut d = Dirs::default();
        for dir in &self.dirs {
            if dir.v2() {
                d.v2 = Some(dir.path.clone());
            } else {
                d.v1.push((dir.controllers.clone(), dir.path.clone()));
            }
        }
        d
    }

    /// With cgroup v2 alone, the directory a new process can be cloned straight into
    /// (cgroupfs only: systemd's unit is started with a pid that already exists).
    pub fn clone_target(&self) -> Option<&Path> {
        match self.dirs.as_slice() {
            [d] if d.v2() && self.driver == Driver::Cgroupfs => Some(d.path.as_path()),
            _ => None,
        }
    }

    /// runc's checks on a cgroup that exists before the container: a frozen one is refused
    /// (the init would hang in it), one holding processes gets runc's warning.
    pub fn check_preexisting(&self) -> Result<()> {
        if self.is_frozen() {
            return Err(Error::other("container's cgroup unexpectedly frozen"));
        }
        let n = self.pids().len();
        if n > 0 {
            crate::logging::warn(&format!(
                "container's cgroup is not empty: {n} process(es) found"
            ));
        }
        Ok(())
    }

    /// Makes the directories. systemd's unit is started holding `pid` (the init, or the
    /// process that forks it) and given the limits `r` as its properties; the files are
    /// [`Cgroup::write`]'s. `pid` joins every directory as it is made.
    pub fn create(&self, pid: Option<i32>, r: Option<&LinuxResources>) -> Result<()> {
        match self.driver {
            Driver::Cgroupfs => super::create(&self.dirs, pid),
            Driver::Systemd => {
                let pid = pid
                    .ok_or_else(|| Error::other("systemd cgroup: the unit needs the init's pid"))?;
                systemd::start(self.unit()?, pid, r)?;
                // A slice holds no process and a scope may lag: the directory is made here
                // if systemd has not yet, and the hierarchies systemd leaves alone are joined.
                super::create(&self.dirs, Some(pid))
            }
        }
    }

    /// Writes `linux.resources` (at create and at every `update`): under systemd as unit
    /// properties first, then into the files, as runc does (so what systemd has no
    /// property for still applies).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if self.driver == Driver::Systemd {
            if super::pure_v2() {
                systemd::set(self.unit()?, r)?;
            } else {
                self.set_frozen(r)?;
            }
        }
        self.write(r)
    }

    /// systemd on cgroup v1 rewrites a unit's cgroup when its properties change (the device
    /// list starts again from deny-all): a running container is frozen meanwhile, so it
    /// never meets a limit that dips, as runc's v1 driver does. One already paused stays so.
    fn set_frozen(&self, r: &LinuxResources) -> Result<()> {
        let thaw = !self.is_frozen()
            && match self.freeze() {
                Ok(()) => true,
                Err(e) => {
                    // No freezer (or one that will not settle): set without it, as runc.
                    crate::logging::debug(&format!(
                        "freeze container before SetUnitProperties failed: {e}"
                    ));
                    let _ = self.thaw();
                    false
                }
            };
        let set = systemd::set(self.unit()?, r);
        if thaw && let Err(e) = self.thaw() {
            return Err(set.err().unwrap_or(e));
        }
        set
    }

    /// Writes `linux.resources` into the cgroup files only (at create, after [`Cgroup::create`]
    /// gave systemd's unit its properties).
    pub fn write(&self, r: &LinuxResources) -> Result<()> {
        resources::apply(&self.view(), r)
    }

    /// Moves `pid` into the container's cgroup.
    pub fn join(&self, pid: i32) -> Result<()> {
        super::join(&self.paths(), pid)
    }

    /// Removes the cgroup and every sub-cgroup the container made in it (under systemd:
    /// stops the unit, waits until it is gone, then removes what it left).
    pub fn remove(&self) -> Result<()> {
        let stopped = match self.driver {
            Driver::Systemd => systemd::stop(self.unit()?, self.exists()),
            Driver::Cgroupfs => Ok(()),
        };
        // The directories go even when systemd could not be asked.
        let removed = super::remove(&self.paths());
        stopped.and(removed)
    }

    /// Whether any directory still exists (a stopped container's cgroup may outlive its
    /// init).
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.path.is_dir())
    }

    /// The pids in the container's cgroup and every cgroup below it.
    pub fn pids(&self) -> Vec<i32> {
        super::pids(&self.view())
    }

    pub fn is_frozen(&self) -> bool {
        freezer::is_frozen(&self.view())
    }

    pub fn freeze(&self) -> Result<()> {
        freezer::freeze(&self.view())
    }

    pub fn thaw(&self) -> Result<()> {
        freezer::thaw(&self.view())
    }

    /// What `events --stats` reports.
    pub fn stats(&self) -> serde_json::Value {
        stats::collect(&self.view())
    }

    /// What `events` waits on between reads of the OOM count.
    pub fn oom_watch(&self) -> stats::OomWatch {
        stats::OomWatch::new(&self.view())
    }

    /// The OOM kills counted so far (for `events`).
    pub fn oom_kills(&self) -> u64 {
        stats::oom_kills(&self.view())
    }
}

impl Dir {
    fn of(h: &Hierarchy, path: PathBuf) -> Dir {
        Dir {
            path,
            mount: h.mountpoint.clone(),
            controllers: if h.v2 {
                Vec::new()
            } else {
                h.controllers.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> Cgroup {
        let hs = super::super::parse_mountinfo(
            "35 26 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             36 26 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             37 26 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        Cgroup {
            driver: Driver::Cgroupfs,
            dirs: hs
                .iter()
                .map(|h| Dir::of(h, h.mountpoint.join("c1")))
                .collect(),
            unit: None,
        }
    }

    #[test]
    fn saved_whole_and_read_back() {
        let cg = hybrid();
        let json = serde_json::to_string(&cg).unwrap();
        assert!(json.contains(r#""driver":"cgroupfs""#), "{json}");
        assert!(
            json.contains(r#""controllers":["cpu","cpuacct"]"#),
            "{json}"
        );
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
    }

    #[test]
    fn view_sorts_by_controller() {
        let v = hybrid().view();
        assert_eq!(
            v.v1("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/c1"))
        );
        assert_eq!(v.v1("memory"), Some(Path::new("/sys/fs/cgroup/memory/c1")));
        assert_eq!(
            v.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/c1"))
        );
        assert_eq!(hybrid().clone_target(), None);
    }

    #[test]
    fn clone_target_only_on_v2_alone() {
        let mut cg = hybrid();
        cg.dirs.retain(Dir::v2);
        assert_eq!(
            cg.clone_target(),
            Some(Path::new("/sys/fs/cgroup/unified/c1"))
        );
    }
}
