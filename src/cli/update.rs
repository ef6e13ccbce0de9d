//! `tong update [flags] ID`: new resource limits for a running container.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::json;

use super::Global;
use crate::container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// path to the file containing the resources to update or '-' to read from the standard input
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs)
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs)
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (in bytes)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids allowed in the container
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// the container's id
    pub id: String,
}

/// Bytes with an optional unit (k, m, g, t; binary, as runc's RAMInBytes), or -1.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| Error::Usage(format!("invalid size: {s:?}")))?;
    if n < 0.0 {
        return Err(Error::Usage(format!("invalid size: {s:?}")));
    }
    Ok((n * mult as f64) as i64)
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let r: LinuxResources = if let Some(path) = &a.resources {
        let mut data = Vec::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut data)
                .map_err(|e| Error::sys("reading stdin", e))?;
        } else {
            data = std::fs::read(path).map_err(|e| Error::path("cannot read", path, e))?;
        }
        let mut v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Usage(format!("resources: invalid JSON: {e}")))?;
        fold_keys(&mut v);
        serde_path_to_error::deserialize(&v)
            .map_err(|e| Error::Usage(format!("resources: {}: {}", e.path(), e.inner())))?
    } else {
        let mut mem = serde_json::Map::new();
        if let Some(m) = &a.memory {
            mem.insert("limit".into(), json!(parse_bytes(m)?));
        }
        if let Some(m) = &a.memory_reservation {
            mem.insert("reservation".into(), json!(parse_bytes(m)?));
        }
        if let Some(m) = &a.memory_swap {
            mem.insert("swap".into(), json!(parse_bytes(m)?));
        }
        let mut cpu = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                cpu.insert(k.into(), v);
            }
        };
        put("shares", a.cpu_share.map(|v| json!(v)));
        put("quota", a.cpu_quota.map(|v| json!(v)));
        put("period", a.cpu_period.map(|v| json!(v)));
        put("realtimePeriod", a.cpu_rt_period.map(|v| json!(v)));
        put("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v)));
        put("cpus", a.cpuset_cpus.clone().map(|v| json!(v)));
        put("mems", a.cpuset_mems.clone().map(|v| json!(v)));
        let mut v = serde_json::Map::new();
        if !mem.is_empty() {
            v.insert("memory".into(), serde_json::Value::Object(mem));
        }
        if !cpu.is_empty() {
            v.insert("cpu".into(), serde_json::Value::Object(cpu));
        }
        if let Some(p) = a.pids_limit {
            v.insert("pids".into(), json!({"limit": p}));
        }
        if let Some(w) = a.blkio_weight {
            v.insert("blockIO".into(), json!({"weight": w}));
        }
        serde_json::from_value(serde_json::Value::Object(v))
            .map_err(|e| Error::Usage(e.to_string()))?
    };
    container::update(&g.root, &a.id, &r)?;
    Ok(0)
}

/// The field names of `LinuxResources` and everything in it (runtime-spec config-linux).
const RESOURCE_KEYS: &[&str] = &[
    "devices",
    "memory",
    "cpu",
    "pids",
    "blockIO",
    "hugepageLimits",
    "network",
    "rdma",
    "unified",
    "allow",
    "type",
    "major",
    "minor",
    "access",
    "limit",
    "reservation",
    "swap",
    "kernel",
    "kernelTCP",
    "swappiness",
    "disableOOMKiller",
    "useHierarchy",
    "checkBeforeUpdate",
    "shares",
    "quota",
    "burst",
    "period",
    "realtimeRuntime",
    "realtimePeriod",
    "cpus",
    "mems",
    "idle",
    "weight",
    "leafWeight",
    "weightDevice",
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
    "rate",
    "pageSize",
    "classID",
    "priorities",
    "name",
    "priority",
    "hcaHandles",
    "hcaObjects",
];

/// Object keys that match a resource field but for case get the field's spelling, as
/// runc's Go decoder matches them (`{"CPU": {"Cpus": "0"}}` is `cpu.cpus`). An exact key
/// wins over a folded one; the keys of `unified` (file names) and of `rdma` (device names)
/// are left as they are.
fn fold_keys(v: &mut serde_json::Value) {
    let serde_json::Value::Object(m) = v else {
        if let serde_json::Value::Array(a) = v {
            a.iter_mut().for_each(fold_keys);
        }
        return;
    };
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let known = RESOURCE_KEYS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(&k))
            .map(|f| f.to_string());
        let key = match known {
            Some(f) if f != k && !m.contains_key(&f) => {
                let val = m.remove(&k).unwrap_or_default();
                m.insert(f.clone(), val);
                f
            }
            _ => k,
        };
        if key == "unified" {
            continue;
        }
        if let Some(child) = m.get_mut(&key) {
            if key == "rdma" {
                if let serde_json::Value::Object(devs) = child {
                    devs.values_mut().for_each(fold_keys);
                }
            } else {
                fold_keys(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(super::parse_bytes("1024").unwrap(), 1024);
        assert_eq!(super::parse_bytes("-1").unwrap(), -1);
        assert_eq!(super::parse_bytes("1g").unwrap(), 1 << 30);
        assert!(super::parse_bytes("abc").is_err());
    }

    #[test]
    fn keys_fold_as_gos_decoder_matches_them() {
        let mut v = serde_json::json!({
            "CPU": {"Cpus": "0", "SHARES": 2},
            "memory": {"Limit": 1, "limit": 2},
            "Unified": {"Memory.High": "max"},
            "blockio": {"WeightDevice": [{"Major": 8, "minor": 0, "Weight": 10}]},
            "rdma": {"MLX5_0": {"HcaHandles": 3}},
            "Other": 1
        });
        fold_keys(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {"cpus": "0", "shares": 2},
                "memory": {"Limit": 1, "limit": 2},
                "unified": {"Memory.High": "max"},
                "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10}]},
                "rdma": {"MLX5_0": {"hcaHandles": 3}},
                "Other": 1
            })
        );
    }
}
