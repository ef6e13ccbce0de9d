//! Validation of a loaded config: every refusal, each naming its field, before anything
//! exists; and the typed [`Plan`] the launcher hands to each mechanism.

use std::collections::HashSet;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{Config, has_namespace, namespaces, ns_name};
use crate::error::{Error, Result};
use crate::logging;

/// Security modules and resctrl: what the config asks for must exist here, or the container
/// would run less confined than its author meant (runc's words).
fn security_modules(spec: &Spec) -> Result<()> {
    let process = spec.process().as_ref();
    if let Some(p) = process
        .and_then(|p| p.apparmor_profile().as_deref())
        .filter(|p| !p.is_empty())
        && !crate::linux::apparmor::enabled()
    {
        return Err(Error::config(format!(
            "process.apparmorProfile: apparmor profile {p:?} is specified in config, but AppArmor is not enabled on this host"
        )));
    }
    if process
        .and_then(|p| p.selinux_label().as_deref())
        .is_some_and(|l| !l.is_empty())
    {
        return Err(Error::config(
            "process.selinuxLabel: selinux label is specified in config, but selinux is disabled or not supported",
        ));
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.mount_label().as_deref())
        .is_some_and(|l| !l.is_empty())
    {
        return Err(Error::config(
            "linux.mountLabel: selinux label is specified in config, but selinux is disabled or not supported",
        ));
    }
    if let Some(rdt) = linux.and_then(|l| l.intel_rdt().as_ref()) {
        if rdt
            .l3_cache_schema()
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(Error::config(
                "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled",
            ));
        }
        if rdt
            .mem_bw_schema()
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(Error::config(
                "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled",
            ));
        }
        // A closID alone names a class of service; without resctrl there is none to join,
        // and runc 1.1 goes on without it too.
        if rdt.clos_id().is_some() {
            crate::logging::warn("linux.intelRdt: Intel RDT is not supported here; closID ignored");
        }
    }
    Ok(())
}

/// Checks everything `create` needs, as runc's validator does.
pub fn validate(cfg: &Config) -> Result<Plan> {
    let spec = &cfg.spec;
    match std::fs::metadata(&cfg.rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::config(format!(
                "root.path: rootfs ({}) is not a directory",
                cfg.rootfs.display()
            )));
        }
        Err(_) => {
            return Err(Error::config(format!(
                "root.path: rootfs ({}) does not exist",
                cfg.rootfs.display()
            )));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process: missing"))?;
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => return Err(Error::config("process.args: must not be empty")),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config(format!(
            "process.cwd: {:?} is not an absolute path",
            process.cwd()
        )));
    }
    security_modules(spec)?;
    if process.terminal().unwrap_or(false) {
        // checked by the caller against --console-socket
    }

    let ns = namespaces(spec);
    let mut seen = HashSet::new();
    for (t, path) in &ns {
        if !seen.insert(*t as u64) {
            return Err(Error::config(format!(
                "linux.namespaces: duplicate namespace {}",
                ns_name(*t)
            )));
        }
        if let Some(p) = path {
            if !p.is_absolute() {
                return Err(Error::config(format!(
                    "linux.namespaces: {} path {} is not absolute",
                    ns_name(*t),
                    p.display()
                )));
            }
            if std::fs::metadata(p).is_err() {
                return Err(Error::config(format!(
                    "linux.namespaces: {} path {} does not exist",
                    ns_name(*t),
                    p.display()
                )));
            }
        }
    }
    let has = |t: LinuxNamespaceType| ns.iter().any(|(x, _)| *x == t);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "hostname: unable to set hostname without a private UTS namespace",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "domainname: unable to set domainname without a private UTS namespace",
        ));
    }
    if !has(LinuxNamespaceType::Mount) {
        let restricts = spec.linux().as_ref().is_some_and(|l| {
            l.masked_paths().as_ref().is_some_and(|v| !v.is_empty())
                || l.readonly_paths().as_ref().is_some_and(|v| !v.is_empty())
        });
        if restricts {
            return Err(Error::config(
                "linux.namespaces: unable to restrict sys entries without a private MNT namespace",
            ));
        }
        // Sharing the host's mount table, tong changes nothing in it (runc mounts there and
        // undoes nothing): a read-only root would be a remount of a host mount.
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly() == Some(true))
        {
            return Err(Error::config(
                "root.readonly: needs a private mount namespace (linux.namespaces)",
            ));
        }
        if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
            logging::warn(
                "linux.namespaces: no mount namespace: the config's mounts are not made (they would land in the host's mount table)",
            );
        }
    }
    let mut rootfs_propagation = None;
    if let Some(linux) = spec.linux() {
        // Any key at all (runc drops an empty map before it checks).
        if linux
            .resources()
            .as_ref()
            .is_some_and(|r| r.unified().as_ref().is_some_and(|u| !u.is_empty()))
            && !crate::cgroups::pure_v2()
        {
            return Err(Error::config(crate::cgroups::V1_NO_UNIFIED));
        }
        for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
            validate_sysctl(key, &has)?;
        }
        let userns = has(LinuxNamespaceType::User);
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let joins_userns = ns
            .iter()
            .any(|(t, p)| *t == LinuxNamespaceType::User && p.is_some());
        if userns && !joins_userns {
            if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
                return Err(Error::config(
                    "linux.uidMappings: user namespaces enabled, but no uid mappings found",
                ));
            }
            if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
                return Err(Error::config(
                    "linux.gidMappings: user namespaces enabled, but no gid mappings found",
                ));
            }
        }
        if !userns && maps {
            return Err(Error::config(
                "linux.uidMappings: user namespaces are not enabled in linux.namespaces",
            ));
        }
        if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
            return Err(Error::config(
                "linux.timeOffsets: time offsets require a new time namespace",
            ));
        }
        if let Some(p) = linux.rootfs_propagation() {
            rootfs_propagation =
                Some(crate::linux::mounts::propagation_flag(p).ok_or_else(|| {
                    Error::config(format!("linux.rootfsPropagation: invalid value {p:?}"))
                })?);
        }
    }
    let mut rl = HashSet::new();
    for r in process.rlimits().iter().flatten() {
        if !rl.insert(r.typ() as u32) {
            return Err(Error::config(format!(
                "process.rlimits: duplicate rlimit {}",
                r.typ()
            )));
        }
        if r.soft() > r.hard() {
            return Err(Error::config(format!(
                "process.rlimits: {} soft limit is above the hard limit",
                r.typ()
            )));
        }
    }
    let userns = has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::User);
    let mounts = crate::linux::mounts::plan(spec.mounts().as_deref().unwrap_or(&[]), &cfg.bundle);
    for m in &mounts {
        let i = m.index;
        if m.destination.as_os_str().is_empty() {
            return Err(Error::config(format!(
                "mounts[{i}].destination: must not be empty"
            )));
        }
        if let Some(idmap) = &m.idmap {
            if !m.bind {
                return Err(Error::config(format!(
                    "mounts[{i}]: idmapped mounts are only supported for bind mounts"
                )));
            }
            if !userns {
                return Err(Error::config(format!(
                    "mounts[{i}]: idmapped mounts need a user namespace (linux.namespaces has none)"
                )));
            }
            if idmap.half_given {
                return Err(Error::config(format!(
                    "mounts[{i}]: uidMappings and gidMappings must be given together"
                )));
            }
        }
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (name, list) in all {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(Error::config(format!(
                        "hooks.{name}[{i}].path: {} is not absolute",
                        h.path().display()
                    )));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(Error::config(format!(
                        "hooks.{name}[{i}].timeout: must be positive"
                    )));
                }
            }
        }
    }
    Ok(Plan {
        namespaces: crate::linux::namespaces::Plan::new(ns),
        mounts,
        rootfs_propagation,
    })
}

/// What validation makes of a config for the launcher: each mechanism's part, typed once.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The namespaces to create and to join.
    pub namespaces: crate::linux::namespaces::Plan,
    /// `mounts`, parsed.
    pub mounts: Vec<crate::linux::mounts::Planned>,
    /// `linux.rootfsPropagation`, as mount flags.
    pub rootfs_propagation: Option<nix::mount::MsFlags>,
}

pub(super) fn validate_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    let ok = if IPC.contains(&key)
        || key == "kernel.shm_rmid_forced"
        || key.starts_with("fs.mqueue.")
    {
        if !has(LinuxNamespaceType::Ipc) {
            return Err(Error::config(format!(
                "linux.sysctl: sysctl {key:?} is not allowed in the hosts ipc namespace"
            )));
        }
        true
    } else if key.starts_with("net.") {
        if !has(LinuxNamespaceType::Network) {
            return Err(Error::config(format!(
                "linux.sysctl: sysctl {key:?} not allowed in host network namespace"
            )));
        }
        true
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        if !has(LinuxNamespaceType::Uts) {
            return Err(Error::config(format!(
                "linux.sysctl: sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field"
            )));
        }
        true
    } else {
        false
    };
    if !ok {
        return Err(Error::config(format!(
            "linux.sysctl: sysctl {key:?} is not in a separate kernel namespace"
        )));
    }
    if key.contains("..") || key.contains('/') {
        return Err(Error::config(format!(
            "linux.sysctl: invalid sysctl name {key:?}"
        )));
    }
    Ok(())
}
