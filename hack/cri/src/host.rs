//! What the client checks on the host itself: /proc and the cgroup hierarchies (the client
//! runs as root beside containerd, as a kubelet does).
use std::fs;
use std::path::{Path, PathBuf};

use crate::R;

pub fn read(path: impl AsRef<Path>) -> R<String> {
    let p = path.as_ref();
    fs::read_to_string(p).map_err(|e| format!("read {}: {e}", p.display()))
}

/// The value of FIELD in /proc/PID/status ("Uid", "CapEff", "Seccomp"), tabs kept.
pub fn proc_status(pid: u32, field: &str) -> R<String> {
    let s = read(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .ok_or(format!("no {field} in /proc/{pid}/status"))
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proc {
    pub pid: u32,
    start: u64,
}

/// (state, start time) from /proc/PID/stat; the command may hold spaces and parentheses.
fn stat(pid: u32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // After the command: state is field 3 of stat(5), starttime field 22.
    Some((f.first()?.chars().next()?, f.get(19)?.parse().ok()?))
}

impl Proc {
    pub fn of(pid: u32) -> R<Proc> {
        let (_, start) = stat(pid).ok_or(format!("process {pid} does not exist"))?;
        Ok(Proc { pid, start })
    }
    /// Still there and not a zombie.
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((st, start)) if start == self.start && st != 'Z')
    }
}

/// The namespace link of a process ("net:[4026531840]").
pub fn ns(pid: &str, kind: &str) -> R<String> {
    let p = format!("/proc/{pid}/ns/{kind}");
    fs::read_link(&p)
        .map(|l| l.display().to_string())
        .map_err(|e| format!("readlink {p}: {e}"))
}

/// Mount points of the cgroup hierarchies: (controllers or "" for cgroup2, mount point).
/// The controllers are those of the mount's super options ("memory", "cpu,cpuacct",
/// "name=systemd").
pub fn cgroup_mounts() -> R<Vec<(String, PathBuf)>> {
    let mi = read("/proc/self/mountinfo")?;
    let mut v = Vec::new();
    for l in mi.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (fstype, _src, opts) = (post.next(), post.next(), post.next().unwrap_or(""));
        let Some(mnt) = pre.split(' ').nth(4) else {
            continue;
        };
        match fstype {
            Some("cgroup2") => v.push((String::new(), PathBuf::from(mnt))),
            Some("cgroup") => {
                let ctrls: Vec<&str> = opts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "xattr" | "clone_children")
                            && !o.starts_with("release_agent")
                    })
                    .collect();
                v.push((ctrls.join(","), PathBuf::from(mnt)));
            }
            _ => {}
        }
    }
    Ok(v)
}

/// Whether /sys/fs/cgroup is a pure cgroup v2 host.
pub fn cgroup2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The host directory of PID's cgroup in the hierarchy holding CONTROLLER ("memory",
/// "pids"; "" for the cgroup v2 one).
pub fn cgroup_dir(pid: u32, controller: &str) -> R<PathBuf> {
    let cg = read(format!("/proc/{pid}/cgroup"))?;
    let path = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.to_string())
        })
        .ok_or(format!("no '{controller}' hierarchy in /proc/{pid}/cgroup"))?;
    let mount = cgroup_mounts()?
        .into_iter()
        .find(|(ctrls, _)| {
            if controller.is_empty() {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            }
        })
        .map(|(_, m)| m)
        .ok_or(format!("the '{controller}' hierarchy is not mounted"))?;
    Ok(mount.join(path.trim_start_matches('/')))
}

/// Every directory named REL (a cgroup path) in every hierarchy.
pub fn cgroup_dirs_named(rel: &str) -> R<Vec<PathBuf>> {
    Ok(cgroup_mounts()?
        .into_iter()
        .map(|(_, m)| m.join(rel.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect())
}

/// The pids in a cgroup directory (none when it is gone).
pub fn cgroup_procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Sub-directories of a cgroup directory.
pub fn cgroup_children(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// A systemd unit's property, as `systemctl show -P PROP UNIT` prints it.
pub fn unit_prop(unit: &str, prop: &str) -> R<String> {
    let out = std::process::Command::new("systemctl")
        .args(["show", "-P", prop, unit])
        .output()
        .map_err(|e| format!("systemctl show {unit}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "systemctl show -P {prop} {unit}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The cgroup v2 path of slice NAME below /sys/fs/cgroup: a dash nests slices, so
/// `a-b.slice` is `a.slice/a-b.slice`.
pub fn slice_cgroup(name: &str) -> String {
    let base = name.strip_suffix(".slice").unwrap_or(name);
    let mut path = Vec::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    path.join("/")
}

/// Whether IP (v4) is in CIDR.
pub fn in_subnet(ip: &str, cidr: &str) -> R<bool> {
    let parse = |s: &str| -> R<u32> {
        s.parse::<std::net::Ipv4Addr>()
            .map(u32::from)
            .map_err(|e| format!("bad IPv4 address '{s}': {e}"))
    };
    let (net, bits) = cidr.split_once('/').ok_or(format!("bad CIDR '{cidr}'"))?;
    let bits: u32 = bits.parse().map_err(|_| format!("bad CIDR '{cidr}'"))?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits.min(32))
    };
    Ok(parse(ip)? & mask == parse(net)? & mask)
}

/// The first host address of CIDR (the bridge's, as the CNI bridge plugin's gateway).
pub fn gateway(cidr: &str) -> R<String> {
    let (net, _) = cidr.split_once('/').ok_or(format!("bad CIDR '{cidr}'"))?;
    let n: std::net::Ipv4Addr = net.parse().map_err(|e| format!("bad CIDR '{cidr}': {e}"))?;
    Ok(std::net::Ipv4Addr::from(u32::from(n) + 1).to_string())
}

/// Whether PATH is a mount point (in the client's mount namespace, the host's).
pub fn is_mount_point(path: &Path) -> bool {
    let p = path.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|mi| mi.lines().any(|l| l.split(' ').nth(4) == Some(p.as_str())))
        .unwrap_or(false)
}

/// Runs a host command (mount, umount), which must succeed.
pub fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> R<()> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
