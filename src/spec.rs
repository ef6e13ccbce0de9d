//! Loading and validating a bundle's config.json, and the default spec (`tong spec`).
//!
//! Everything that can be refused is refused here, before any state dir, cgroup, mount or
//! process exists, with a message that names the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::logging;

/// The default config.json, as `runc spec` writes it (hostname aside).
pub const DEFAULT_SPEC: &str = include_str!("../config.json.example");

/// The runtime-spec version tong implements (the oci-spec crate's).
pub const SPEC_VERSION: &str = oci_spec::runtime::VERSION;

/// A loaded config: the typed spec, the JSON as read, and the absolute rootfs.
pub struct Config {
    pub spec: Spec,
    pub json: serde_json::Value,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
}

/// Reads `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Config> {
    let path = bundle.join("config.json");
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::config(format!(
                "JSON specification file {} not found",
                path.display()
            )));
        }
        Err(e) => return Err(Error::path("cannot read", &path, e)),
    };
    let json = parse(&data)?;
    let spec = typed(&json)?;
    let bundle = bundle.to_path_buf();
    let rootfs = rootfs_path(&spec, &bundle)?;
    Ok(Config {
        spec,
        json,
        bundle,
        rootfs,
    })
}

/// Parses config.json text: syntax errors carry the line and column.
pub fn parse(data: &[u8]) -> Result<serde_json::Value> {
    let mut json: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| Error::config(format!("invalid JSON: {e}")))?;
    if !json.is_object() {
        return Err(Error::config("the top level must be a JSON object"));
    }
    check_version(&json)?;
    drop_unknown_capabilities(&mut json);
    Ok(json)
}

/// Converts the JSON to the typed spec; type errors name the field's path.
pub fn typed(json: &serde_json::Value) -> Result<Spec> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        Error::config(format!("{path}: {}", e.inner()))
    })
}

fn check_version(json: &serde_json::Value) -> Result<()> {
    let v = match json.get("ociVersion") {
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => return Err(Error::config("ociVersion: must be a string")),
        None => return Err(Error::config("ociVersion: missing")),
    };
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
    match (major, minor) {
        (Some(1), Some(_)) => Ok(()),
        _ => Err(Error::config(format!(
            "ociVersion: unsupported version {v:?} (this runtime supports 1.x, up to {SPEC_VERSION})"
        ))),
    }
}

/// runtime-spec 1.1: a capability the runtime does not know is logged, not fatal. One
/// warning names them all, sorted, in runc's words.
fn drop_unknown_capabilities(json: &mut serde_json::Value) {
    let Some(caps) = json
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    let mut unknown = std::collections::BTreeSet::new();
    for list in caps.values_mut() {
        let Some(items) = list.as_array_mut() else {
            continue;
        };
        items.retain(|c| {
            let known = c.as_str().is_some_and(crate::linux::capabilities::known);
            if !known {
                unknown.insert(c.as_str().map_or_else(|| c.to_string(), str::to_string));
            }
            known
        });
    }
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.into_iter().collect();
        logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("root: missing"))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(Error::config("root.path: must not be empty"));
    }
    Ok(if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    })
}

/// A namespace type as config.json spells it.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The namespace types the config lists, with their paths (None: create a new one).
pub fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| ns.iter().map(|n| (n.typ(), n.path().clone())).collect())
        .unwrap_or_default()
}

pub fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec).iter().any(|(t, _)| *t == typ)
}

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
pub fn validate(cfg: &Config) -> Result<()> {
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
            crate::linux::mounts::propagation_flag(p).ok_or_else(|| {
                Error::config(format!("linux.rootfsPropagation: invalid value {p:?}"))
            })?;
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
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            return Err(Error::config(format!(
                "mounts[{i}].destination: must not be empty"
            )));
        }
        if crate::linux::idmap::wanted(m).is_some() {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind");
            if !bind {
                return Err(Error::config(format!(
                    "mounts[{i}]: idmapped mounts are only supported for bind mounts"
                )));
            }
            if !userns {
                return Err(Error::config(format!(
                    "mounts[{i}]: idmapped mounts need a user namespace (linux.namespaces has none)"
                )));
            }
            if m.uid_mappings().is_some() != m.gid_mappings().is_some() {
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
    Ok(())
}

fn validate_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Spec> {
        let v = parse(json.as_bytes())?;
        typed(&v)
    }

    #[test]
    fn default_spec_parses() {
        let s = cfg(DEFAULT_SPEC).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("tong"));
        assert!(has_namespace(&s, LinuxNamespaceType::Pid));
    }

    fn validate_edited(
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> std::result::Result<(), String> {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).unwrap();
        edit(&mut v);
        let spec = typed(&v).map_err(|e| e.to_string())?;
        let c = Config {
            spec,
            json: v,
            rootfs: std::env::temp_dir(),
            bundle: std::env::temp_dir(),
        };
        validate(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn idmapped_mounts_need_a_bind_and_a_user_namespace() {
        let idmapped = |v: &mut serde_json::Value, opts: serde_json::Value| {
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": opts}));
        };
        let userns = |v: &mut serde_json::Value| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"type": "user"}));
            v["linux"]["uidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        };
        let e =
            validate_edited(|v| idmapped(v, serde_json::json!(["rbind", "idmap"]))).unwrap_err();
        assert!(e.contains("mounts[") && e.contains("user namespace"), "{e}");
        validate_edited(|v| {
            userns(v);
            idmapped(v, serde_json::json!(["rbind", "ridmap"]));
        })
        .unwrap();
        let e = validate_edited(|v| {
            userns(v);
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}));
        })
        .unwrap_err();
        assert!(e.contains("only supported for bind mounts"), "{e}");
        let e = validate_edited(|v| {
            userns(v);
            idmapped(v, serde_json::json!(["bind"]));
            v["mounts"].as_array_mut().unwrap().last_mut().unwrap()["uidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 1, "size": 1}]);
        })
        .unwrap_err();
        assert!(e.contains("gidMappings must be given together"), "{e}");
    }

    #[test]
    fn syntax_error_has_position() {
        let e = cfg("{\"ociVersion\": ").err().unwrap().to_string();
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn wrong_type_names_field() {
        let e =
            cfg(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"zero","gid":0}}}"#)
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("process.user.uid"), "{e}");
    }

    #[test]
    fn versions() {
        assert!(cfg(r#"{"ociVersion":"1.0.2-dev"}"#).is_ok());
        assert!(cfg(r#"{"ociVersion":"1.2.0"}"#).is_ok());
        let e = cfg(r#"{"ociVersion":"2.0.0"}"#).err().unwrap().to_string();
        assert!(e.contains("ociVersion"), "{e}");
        assert!(cfg(r#"{"ociVersion":"x"}"#).is_err());
        assert!(cfg(r#"{}"#).is_err());
    }

    #[test]
    fn unknown_capability_is_dropped() {
        let s = cfg(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_CHOWN","CAP_FOO_BAR"]}}}"#,
        )
        .unwrap();
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn unknown_namespace_is_named() {
        let e = cfg(r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"foo"}]}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("linux.namespaces"), "{e}");
    }

    #[test]
    fn sysctl_rules() {
        let has_net = |t| t == LinuxNamespaceType::Network;
        let none = |_| false;
        assert!(validate_sysctl("net.ipv4.ip_forward", &has_net).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", &none).is_err());
        assert!(validate_sysctl("kernel.shmmax", &none).is_err());
        assert!(validate_sysctl("vm.swappiness", &has_net).is_err());
    }
}
