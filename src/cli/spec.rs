//! `tong spec`: writes the default config.json.

use std::io::Write;
use std::path::PathBuf;

use super::Global;
use crate::error::{Context, Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(_g: &Global, a: Args) -> Result<i32> {
    let path = a.bundle.join("config.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::Usage("File config.json exists. Remove it first".into())
            }
            _ => Error::path("cannot create", &path, e),
        })?;
    let default = if cgroup2_host() {
        with_cgroup_namespace(crate::spec::DEFAULT_SPEC)?
    } else {
        crate::spec::DEFAULT_SPEC.trim_end().to_string()
    };
    let text = if a.rootless {
        rootless(&default)?
    } else {
        default
    };
    f.write_all(text.as_bytes()).at("cannot write", &path)?;
    Ok(0)
}

/// Whether /sys/fs/cgroup is cgroup v2 alone (runc's test: its file system type).
fn cgroup2_host() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The default spec with a cgroup namespace after the others, as runc's `spec` writes it on a
/// cgroup v2 host.
fn with_cgroup_namespace(default: &str) -> Result<String> {
    let mut v: serde_json::Value =
        serde_json::from_str(default).map_err(|e| Error::other(e.to_string()))?;
    if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
        ns.push(serde_json::json!({"type": "cgroup"}));
    }
    to_runc_json(&v)
}

/// runc's rootless transformation of the default spec: a user namespace mapping root to the
/// caller, the host's network, /sys bound from the host, no devpts gid, no resources.
fn rootless(default: &str) -> Result<String> {
    let mut v: serde_json::Value =
        serde_json::from_str(default).map_err(|e| Error::other(e.to_string()))?;
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let linux = &mut v["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
        ns.push(serde_json::json!({"type": "user"}));
    }
    linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(l) = linux.as_object_mut() {
        l.remove("resources");
    }
    for m in v["mounts"].as_array_mut().into_iter().flatten() {
        if m["destination"] == "/sys" {
            *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        } else if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("gid=")));
        }
    }
    to_runc_json(&v)
}

/// JSON as runc writes its spec: tab-indented, keys in the spec's order.
fn to_runc_json(v: &serde_json::Value) -> Result<String> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).map_err(|e| Error::other(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Error::other(e.to_string()))
}
