//! Loading and validating a bundle's config.json, and the default spec (`tong spec`).
//!
//! Everything that can be refused is refused here, before any state dir, cgroup, mount or
//! process exists, with a message that names the field.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

mod validate;
use crate::logging;
pub use validate::{Plan, validate};

/// The default config.json, as `runc spec` writes it (hostname aside).
pub const DEFAULT_SPEC: &str = include_str!("../../config.json.example");

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
    crate::linux::namespaces::kind(t).config_name
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

#[cfg(test)]
mod tests {
    use super::validate::validate_sysctl;
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
        validate(&c).map(|_| ()).map_err(|e| e.to_string())
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
