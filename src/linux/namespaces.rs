//! Namespaces: which to create, which to join, and the settings that live in them
//! (hostname, domainname, `lo`, sysctls, time offsets, id maps).

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::linux::sys;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// The namespaces of a config, split into new ones and ones to join by path.
#[derive(Debug, Clone)]
pub struct Plan {
    pub new: CloneFlags,
    /// (type, path) to join, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Plan {
        let mut p = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        for (t, path) in crate::spec::namespaces(spec) {
            match path {
                Some(path) => p.join.push((t, path)),
                None => p.new |= flag(t),
            }
        }
        p.join
            .sort_by_key(|(t, _)| if *t == LinuxNamespaceType::User { 0 } else { 1 });
        p
    }
    pub fn has_new(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t))
    }
    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(x, _)| *x == t)
    }
}

/// Joins the namespaces listed by path (setns), user namespace first.
pub fn join_all(join: &[(LinuxNamespaceType, PathBuf)]) -> Result<()> {
    for (t, path) in join {
        let f = std::fs::File::open(path).at("cannot open namespace", path)?;
        nix::sched::setns(f.as_fd(), flag(*t)).ctx(|| format!("setns {t} {}", path.display()))?;
    }
    Ok(())
}

/// Writes /proc/PID/{uid_map,setgroups,gid_map} for a child in a new user namespace.
pub fn write_id_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    let fmt = |m: &[LinuxIdMapping]| {
        m.iter()
            .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
            .collect::<String>()
    };
    // An unprivileged user may write only a map of its own single id; anything more goes
    // through the setuid helpers, which check /etc/subuid and /etc/subgid (as runc does).
    if !nix::unistd::geteuid().is_root() {
        let own = |m: &[LinuxIdMapping], id: u32| {
            m.len() == 1 && m[0].size() == 1 && m[0].host_id() == id
        };
        let uid_own = own(uid, nix::unistd::geteuid().as_raw());
        let gid_own = own(gid, nix::unistd::getegid().as_raw());
        if !uid_own || !gid_own {
            if uid_own {
                let p = format!("/proc/{pid}/uid_map");
                std::fs::write(&p, fmt(uid)).at("cannot write", &p)?;
            } else {
                map_helper("newuidmap", pid, uid)?;
            }
            if gid_own {
                let p = format!("/proc/{pid}/setgroups");
                std::fs::write(&p, "deny").at("cannot write", &p)?;
                let p = format!("/proc/{pid}/gid_map");
                std::fs::write(&p, fmt(gid)).at("cannot write", &p)?;
            } else {
                map_helper("newgidmap", pid, gid)?;
            }
            return Ok(());
        }
    }
    let p = format!("/proc/{pid}/uid_map");
    std::fs::write(&p, fmt(uid)).at("cannot write", &p)?;
    // An unprivileged user may map only itself, and only with setgroups denied.
    if !nix::unistd::geteuid().is_root() {
        let p = format!("/proc/{pid}/setgroups");
        std::fs::write(&p, "deny").at("cannot write", &p)?;
    }
    let p = format!("/proc/{pid}/gid_map");
    std::fs::write(&p, fmt(gid)).at("cannot write", &p)?;
    Ok(())
}

/// Runs newuidmap/newgidmap for `pid` with the mappings; their stderr names the problem
/// (e.g. no /etc/subuid range for the user).
fn map_helper(tool: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::other(format!(
                "rootless id mapping needs {tool} (package uidmap): {e}"
            ))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::other(format!(
            "{tool} failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    Ok(())
}

/// Writes /proc/self/timens_offsets before the time namespace gets its first process.
pub fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut s = String::new();
    for (clock, o) in offsets {
        let name = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::config(format!(
                    "linux.timeOffsets: unknown clock {other:?}"
                )));
            }
        };
        s.push_str(&format!(
            "{name} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", s).at("cannot write", "/proc/self/timens_offsets")
}

/// Settings inside the new namespaces: hostname, domainname, `lo` up, sysctls.
pub fn configure(spec: &Spec, plan: &Plan) -> Result<()> {
    if plan.has_new(LinuxNamespaceType::Uts) || plan.joins(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            // SAFETY-free: nix has no setdomainname; write the sysctl.
            std::fs::write("/proc/sys/kernel/domainname", d)
                .at("cannot write", "/proc/sys/kernel/domainname")?;
        }
    }
    if plan.has_new(LinuxNamespaceType::Network) {
        sys::set_link_up("lo").ctx(|| "bringing up lo".into())?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v).at("linux.sysctl: cannot write", &path)?;
        }
    }
    Ok(())
}

/// Opens each path (O_PATH) in the mount namespace of `pid`, then returns to this process's
/// own namespace and working directory. tong is single-threaded, which setns(CLONE_NEWNS)
/// needs.
pub fn open_in_mount_ns(
    pid: i32,
    paths: &[(usize, std::path::PathBuf)],
) -> Result<Vec<(usize, std::os::fd::OwnedFd)>> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let path_flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let own = open(
        "/proc/self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /proc/self/ns/mnt".into())?;
    let cwd = open(".", path_flags | OFlag::O_DIRECTORY, Mode::empty())
        .ctx(|| "open the working directory".into())?;
    let theirs = format!("/proc/{pid}/ns/mnt");
    let target = open(
        theirs.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {theirs}"))?;
    nix::sched::setns(&target, CloneFlags::CLONE_NEWNS).ctx(|| format!("setns to {theirs}"))?;
    // A source that cannot be opened is left to the init, which reports it by path.
    let out = paths
        .iter()
        .filter_map(|(i, p)| open(p, path_flags, Mode::empty()).ok().map(|fd| (*i, fd)))
        .collect();
    nix::sched::setns(&own, CloneFlags::CLONE_NEWNS)
        .ctx(|| "setns back to tong's mount namespace".into())?;
    nix::unistd::fchdir(&cwd).ctx(|| "fchdir back".into())?;
    Ok(out)
}
