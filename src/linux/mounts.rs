//! Mount options: the fstab-style strings of config.json, as runc parses them.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxIdMapping, Mount};

use crate::linux::{inroot, sys};

/// One of config.json's `mounts`, typed once (by `spec::validate`): what the launcher, the
/// idmapped-mount maker and the rootfs need of it, so none of them parses it again.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its index in `mounts` (errors name it).
    pub index: usize,
    /// The destination as written, for messages.
    pub destination: PathBuf,
    /// The destination cleaned lexically: a path inside the rootfs.
    pub dest: PathBuf,
    /// The filesystem type ("" when absent).
    pub typ: String,
    /// A bind's source made absolute against the bundle (runc works from there); any other
    /// mount's source as written (a filesystem's name, a device).
    pub source: Option<PathBuf>,
    pub opts: MountOptions,
    /// A bind mount (`bind`/`rbind`, or type "bind").
    pub bind: bool,
    pub idmap: Option<Idmap>,
}

/// How a bind mount is idmapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap {
    /// The source tree is taken recursively (`rbind` or `ridmap`).
    pub tree: bool,
    /// The idmap applies to every mount of the tree (`ridmap`).
    pub recursive: bool,
    /// The mount's own maps (uid, gid); None: the container's user namespace's.
    pub maps: Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)>,
    /// Only one of uidMappings and gidMappings was given (refused by validation).
    pub half_given: bool,
}

/// Types every config mount.
pub fn plan(mounts: &[Mount], bundle: &Path) -> Vec<Planned> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let raw = m.options().as_deref().unwrap_or(&[]);
            let opts = parse(raw);
            let typ = m.typ().clone().unwrap_or_default();
            let bind = opts.is_bind() || typ == "bind";
            let source = m.source().as_ref().map(|src| {
                if bind && !src.is_absolute() {
                    bundle.join(src)
                } else {
                    src.clone()
                }
            });
            let has = |o: &str| raw.iter().any(|x| x == o);
            let idmap = (has("idmap")
                || has("ridmap")
                || m.uid_mappings().is_some()
                || m.gid_mappings().is_some())
            .then(|| Idmap {
                tree: has("rbind") || has("ridmap"),
                recursive: has("ridmap"),
                maps: m.uid_mappings().clone().zip(m.gid_mappings().clone()),
                half_given: m.uid_mappings().is_some() != m.gid_mappings().is_some(),
            });
            Planned {
                index,
                destination: m.destination().clone(),
                dest: inroot::clean(m.destination()),
                typ,
                source,
                opts,
                bind,
                idmap,
            }
        })
        .collect()
}

/// A config mount's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`, `dev`, ...).
    pub cleared: MsFlags,
    /// Propagation changes, applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Filesystem data (options the kernel's filesystem interprets).
    pub data: Vec<String>,
    /// `tmpcopyup`: copy the directory's old content into a new tmpfs.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clr: 0,
            data: Vec::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    pub fn data(&self) -> String {
        self.data.join(",")
    }
}

fn flag(name: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match name {
        "acl" => (false, F::MS_POSIXACL),
        "noacl" => (true, F::MS_POSIXACL),
        "async" => (true, F::MS_SYNCHRONOUS),
        "atime" => (true, F::MS_NOATIME),
        "bind" => (false, F::MS_BIND),
        "defaults" => (false, F::empty()),
        "dev" => (true, F::MS_NODEV),
        "diratime" => (true, F::MS_NODIRATIME),
        "dirsync" => (false, F::MS_DIRSYNC),
        "exec" => (true, F::MS_NOEXEC),
        "iversion" => (false, F::MS_I_VERSION),
        "lazytime" => (false, F::MS_LAZYTIME),
        "loud" => (true, F::MS_SILENT),
        "mand" => (false, F::MS_MANDLOCK),
        "noatime" => (false, F::MS_NOATIME),
        "nodev" => (false, F::MS_NODEV),
        "nodiratime" => (false, F::MS_NODIRATIME),
        "noexec" => (false, F::MS_NOEXEC),
        "noiversion" => (true, F::MS_I_VERSION),
        "nolazytime" => (true, F::MS_LAZYTIME),
        "nomand" => (true, F::MS_MANDLOCK),
        "norelatime" => (true, F::MS_RELATIME),
        "nostrictatime" => (true, F::MS_STRICTATIME),
        "nosuid" => (false, F::MS_NOSUID),
        "nosymfollow" => (false, F::from_bits_retain(libc::MS_NOSYMFOLLOW as _)),
        "symfollow" => (true, F::from_bits_retain(libc::MS_NOSYMFOLLOW as _)),
        "rbind" => (false, F::MS_BIND | F::MS_REC),
        "relatime" => (false, F::MS_RELATIME),
        "remount" => (false, F::MS_REMOUNT),
        "ro" => (false, F::MS_RDONLY),
        "rw" => (true, F::MS_RDONLY),
        "silent" => (false, F::MS_SILENT),
        "strictatime" => (false, F::MS_STRICTATIME),
        "suid" => (true, F::MS_NOSUID),
        "sync" => (false, F::MS_SYNCHRONOUS),
        _ => return None,
    })
}

/// Propagation option → mount flags.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match name {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// Recursive attribute → (clear?, attribute bits).
fn rec_attr(name: &str) -> Option<(bool, u64)> {
    Some(match name {
        "rro" => (false, sys::MOUNT_ATTR_RDONLY),
        "rrw" => (true, sys::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, sys::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, sys::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, sys::MOUNT_ATTR_NODEV),
        "rdev" => (true, sys::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, sys::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, sys::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, sys::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, sys::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (false, sys::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, sys::MOUNT_ATTR_NOSYMFOLLOW),
        // The atime attributes are one field: setting one clears the others.
        "rrelatime" => (false, sys::MOUNT_ATTR_RELATIME | (1 << 63)),
        "rnorelatime" => (true, sys::MOUNT_ATTR__ATIME),
        "rnoatime" => (false, sys::MOUNT_ATTR_NOATIME | (1 << 63)),
        "ratime" => (true, sys::MOUNT_ATTR__ATIME),
        "rstrictatime" => (false, sys::MOUNT_ATTR_STRICTATIME | (1 << 63)),
        "rnostrictatime" => (true, sys::MOUNT_ATTR__ATIME),
        _ => return None,
    })
}

/// The top bit marks an atime attribute, which must clear MOUNT_ATTR__ATIME when set.
pub const ATIME_MARK: u64 = 1 << 63;

pub fn parse(options: &[String]) -> MountOptions {
    let mut m = MountOptions::default();
    for o in options {
        let o = o.as_str();
        if let Some((clear, f)) = flag(o) {
            if clear {
                m.flags.remove(f);
                m.cleared.insert(f);
            } else {
                m.flags.insert(f);
                m.cleared.remove(f);
            }
        } else if let Some(p) = propagation_flag(o) {
            m.propagation.push(p);
        } else if let Some((clear, a)) = rec_attr(o) {
            if clear {
                m.rec_clr |= a;
            } else {
                m.rec_set |= a;
            }
        } else if o == "tmpcopyup" {
            m.tmpcopyup = true;
        } else if o == "idmap" || o == "ridmap" {
            // Made by the parent: see linux::idmap.
        } else {
            m.data.push(o.to_string());
        }
    }
    m
}

/// The option names tong understands, for `features`.
pub fn known_options() -> Vec<&'static str> {
    let mut v = vec![
        "acl",
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "idmap",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noacl",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "ratime",
        "rbind",
        "rdev",
        "rdiratime",
        "ridmap",
        "relatime",
        "remount",
        "rexec",
        "rnoatime",
        "rnodev",
        "rnodiratime",
        "rnoexec",
        "rnorelatime",
        "rnostrictatime",
        "rnosuid",
        "rnosymfollow",
        "ro",
        "rprivate",
        "rrelatime",
        "rro",
        "rrw",
        "rshared",
        "rslave",
        "rstrictatime",
        "rsuid",
        "rsymfollow",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
    ];
    v.sort_unstable();
    v
}

/// A path field of /proc/self/mountinfo, with the kernel's octal escapes undone.
pub fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &[&str]) -> MountOptions {
        parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let m = p(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert!(
            m.flags
                .contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY)
        );
        assert_eq!(m.data(), "mode=755,size=65536k");
    }

    #[test]
    fn later_wins() {
        let m = p(&["ro", "rw"]);
        assert!(!m.flags.contains(MsFlags::MS_RDONLY));
        assert!(m.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_propagation_recursive() {
        let m = p(&["rbind", "rprivate", "rro", "tmpcopyup"]);
        assert!(m.is_bind() && m.flags.contains(MsFlags::MS_REC));
        assert_eq!(m.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(m.rec_set, sys::MOUNT_ATTR_RDONLY);
        assert!(m.tmpcopyup);
    }
}
