//! Namespaces: which to create, which to join, and the settings that live in them
//! (hostname, domainname, `lo`, sysctls, time offsets, id maps).

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxTimeOffset};

use crate::error::{Context, Error, Result};
use crate::linux::sys;

/// One kind of namespace, every name it goes by.
pub struct Kind {
    pub typ: LinuxNamespaceType,
    /// As config.json (and `features`) spell it.
    pub config_name: &'static str,
    /// Its file under /proc/PID/ns.
    pub proc_name: &'static str,
    /// Its CLONE_NEW* flag.
    pub flag: CloneFlags,
}

/// Every namespace kind tong knows, in the order an exec joins them (user first: the
/// others may belong to it).
pub const KINDS: [Kind; 8] = [
    Kind::new(
        LinuxNamespaceType::User,
        "user",
        "user",
        CloneFlags::CLONE_NEWUSER,
    ),
    Kind::new(
        LinuxNamespaceType::Mount,
        "mount",
        "mnt",
        CloneFlags::CLONE_NEWNS,
    ),
    Kind::new(
        LinuxNamespaceType::Pid,
        "pid",
        "pid",
        CloneFlags::CLONE_NEWPID,
    ),
    Kind::new(
        LinuxNamespaceType::Network,
        "network",
        "net",
        CloneFlags::CLONE_NEWNET,
    ),
    Kind::new(
        LinuxNamespaceType::Ipc,
        "ipc",
        "ipc",
        CloneFlags::CLONE_NEWIPC,
    ),
    Kind::new(
        LinuxNamespaceType::Uts,
        "uts",
        "uts",
        CloneFlags::CLONE_NEWUTS,
    ),
    Kind::new(
        LinuxNamespaceType::Cgroup,
        "cgroup",
        "cgroup",
        CloneFlags::CLONE_NEWCGROUP,
    ),
    // CLONE_NEWTIME, which nix does not name.
    Kind::new(
        LinuxNamespaceType::Time,
        "time",
        "time",
        CloneFlags::from_bits_retain(0x80),
    ),
];

impl Kind {
    const fn new(
        typ: LinuxNamespaceType,
        config_name: &'static str,
        proc_name: &'static str,
        flag: CloneFlags,
    ) -> Kind {
        Kind {
            typ,
            config_name,
            proc_name,
            flag,
        }
    }
}

/// The entry of [`KINDS`] for `t`.
pub fn kind(t: LinuxNamespaceType) -> &'static Kind {
    let i = match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 1,
        LinuxNamespaceType::Pid => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Ipc => 4,
        LinuxNamespaceType::Uts => 5,
        LinuxNamespaceType::Cgroup => 6,
        LinuxNamespaceType::Time => 7,
    };
    &KINDS[i]
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    kind(t).flag
}

/// The namespaces of a config, split into new ones and ones to join by path.
#[derive(Debug, Clone)]
pub struct Plan {
    pub new: CloneFlags,
    /// (type, path) to join, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Plan {
    /// From the config's namespaces: (type, path to join, or None for a new one).
    pub fn new(
        namespaces: impl IntoIterator<Item = (LinuxNamespaceType, Option<PathBuf>)>,
    ) -> Plan {
        let mut p = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        for (t, path) in namespaces {
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
pub fn write_time_offsets(
    offsets: Option<&std::collections::HashMap<String, LinuxTimeOffset>>,
) -> Result<()> {
    let Some(offsets) = offsets else {
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

/// What lives inside the namespaces: the config's hostname, domainname and sysctls.
pub struct Settings<'a> {
    pub hostname: Option<&'a str>,
    pub domainname: Option<&'a str>,
    pub sysctl: Option<&'a std::collections::HashMap<String, String>>,
}

/// Settings inside the new namespaces: hostname, domainname, `lo` up, sysctls.
pub fn configure(s: &Settings, plan: &Plan) -> Result<()> {
    if plan.has_new(LinuxNamespaceType::Uts) || plan.joins(LinuxNamespaceType::Uts) {
        if let Some(h) = s.hostname.filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
        }
        if let Some(d) = s.domainname.filter(|d| !d.is_empty()) {
            // SAFETY-free: nix has no setdomainname; write the sysctl.
            std::fs::write("/proc/sys/kernel/domainname", d)
                .at("cannot write", "/proc/sys/kernel/domainname")?;
        }
    }
    if plan.has_new(LinuxNamespaceType::Network) {
        sys::set_link_up("lo").ctx(|| "bringing up lo".into())?;
    }
    if let Some(sysctl) = s.sysctl {
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

/// Brings `lo` up in the network namespace of process `pid`, as [`configure`] does in a
/// namespace tong creates: a restore's network namespace is made new and empty by CRIU
/// (runc's `--empty-ns network`), and the container's loopback connections need it up.
/// tong enters the namespace for a moment (it is single-threaded) and comes back.
pub fn loopback_up_in(pid: i32) -> Result<()> {
    let ours = std::fs::File::open("/proc/self/ns/net").at("cannot open", "/proc/self/ns/net")?;
    let path = format!("/proc/{pid}/ns/net");
    let theirs = std::fs::File::open(&path).at("cannot open", &path)?;
    nix::sched::setns(&theirs, CloneFlags::CLONE_NEWNET).ctx(|| format!("setns into {path}"))?;
    let up = sys::set_link_up("lo").ctx(|| format!("bringing up lo in {path}"));
    nix::sched::setns(&ours, CloneFlags::CLONE_NEWNET)
        .ctx(|| "setns back into tong's network namespace".into())?;
    up
}

#[cfg(test)]
mod kinds {
    use super::*;

    #[test]
    fn one_entry_per_type_user_first() {
        for k in &KINDS {
            assert_eq!(kind(k.typ).config_name, k.config_name);
        }
        assert_eq!(KINDS[0].typ, LinuxNamespaceType::User);
        let flags = KINDS.iter().fold(CloneFlags::empty(), |a, k| {
            assert!(!a.intersects(k.flag), "{} shares a flag", k.config_name);
            a | k.flag
        });
        assert_eq!(flags.bits().count_ones(), 8);
        assert_eq!(kind(LinuxNamespaceType::Mount).proc_name, "mnt");
        assert_eq!(kind(LinuxNamespaceType::Network).config_name, "network");
    }
}
