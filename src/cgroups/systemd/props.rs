//! `linux.resources` as systemd unit properties (systemd.resource-control(5)), as runc's
//! systemd driver converts them: v2 names on a cgroup v2 host, v1 names (MemoryLimit,
//! CPUShares, BlockIOWeight) on a v1 or hybrid one. tong writes every resource to the cgroup
//! files afterwards too, so what systemd does not know (IO weights, hugetlb, swap on v1,
//! `unified` keys it has no property for) still applies.

use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxResources};

use super::wire::{Value, property};
use crate::cgroups::devices::{self, Rule};
use crate::cgroups::resources::{shares_to_weight, v2_swap};
use crate::error::{Error, Result};

/// systemd's USEC_INFINITY / "infinity" for the u64 limits.
const INFINITY: u64 = u64::MAX;
const DEFAULT_PERIOD: u64 = 100_000;

/// Which property names systemd takes: its cgroup v2 ones, or its v1 ones (a host whose
/// controllers are on v1 hierarchies, hybrid included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    V2,
    V1,
}

/// The properties for `r`; `version` is systemd's (the quota period needs 242, the cpuset
/// properties 244).
pub fn resources(r: &LinuxResources, version: u32, names: Names) -> Result<Vec<Value>> {
    if names == Names::V1 {
        return v1(r, version);
    }
    let mut p = Vec::new();
    if let Some(rules) = r.devices() {
        p.extend(devices(rules)?);
    }
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            p.push(property("MemoryMax", Value::U64(limit(l))));
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            p.push(property("MemoryLow", Value::U64(limit(l))));
        }
        if let Some(s) = v2_swap(m.limit(), m.swap())? {
            let v = if s == "max" {
                INFINITY
            } else {
                s.parse().unwrap_or(INFINITY)
            };
            p.push(property("MemorySwapMax", Value::U64(v)));
        }
    }
    if let Some(c) = r.cpu() {
        cpu(&mut p, c, version, |s| {
            property("CPUWeight", Value::U64(shares_to_weight(s)))
        })?;
    }
    tasks_max(&mut p, r);
    for (k, v) in r.unified().iter().flatten() {
        if let Some(prop) = unified(k, v.trim(), version)? {
            p.extend(prop);
        }
    }
    Ok(p)
}

/// runc's v1 set: the device rules, MemoryLimit, CPUShares, the quota, BlockIOWeight,
/// TasksMax and the cpuset (which systemd keeps but applies on v2 only).
fn v1(r: &LinuxResources, version: u32) -> Result<Vec<Value>> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::config(crate::cgroups::V1_NO_UNIFIED));
    }
    let mut p = Vec::new();
    if let Some(rules) = r.devices() {
        p.extend(devices(rules)?);
    }
    if let Some(l) = r
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|l| *l != 0)
    {
        p.push(property("MemoryLimit", Value::U64(limit(l))));
    }
    if let Some(c) = r.cpu() {
        cpu(&mut p, c, version, |s| property("CPUShares", Value::U64(s)))?;
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        p.push(property("BlockIOWeight", Value::U64(u64::from(w))));
    }
    tasks_max(&mut p, r);
    Ok(p)
}

/// The shares (as `shares` names and converts them), the quota and the cpuset.
fn cpu(p: &mut Vec<Value>, c: &LinuxCpu, version: u32, shares: fn(u64) -> Value) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        p.push(shares(s));
    }
    cpu_quota(p, c.quota().unwrap_or(0), c.period().unwrap_or(0), version);
    cpuset(p, c.cpus().as_deref(), c.mems().as_deref(), version)
}

/// TasksMax, for a limit or -1 (infinity).
fn tasks_max(p: &mut Vec<Value>, r: &LinuxResources) {
    if let Some(pids) = r.pids() {
        let l = pids.limit();
        if l > 0 || l == -1 {
            p.push(property("TasksMax", Value::U64(limit(l))));
        }
    }
}

/// AllowedCPUs and AllowedMemoryNodes (systemd 244 and later).
fn cpuset(p: &mut Vec<Value>, cpus: Option<&str>, mems: Option<&str>, version: u32) -> Result<()> {
    if version < 244 {
        return Ok(());
    }
    for (name, list) in [("AllowedCPUs", cpus), ("AllowedMemoryNodes", mems)] {
        if let Some(s) = list.filter(|s| !s.trim().is_empty()) {
            p.push(property(name, bits(s, name)?));
        }
    }
    Ok(())
}

fn limit(v: i64) -> u64 {
    if v < 0 { INFINITY } else { v as u64 }
}

/// CPUQuotaPerSecUSec (rounded up to 10 ms: systemd keeps it as a whole percent) and
/// CPUQuotaPeriodUSec.
fn cpu_quota(p: &mut Vec<Value>, quota: i64, period: u64, version: u32) {
    if period != 0 && version >= 242 {
        p.push(property("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = INFINITY;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        p.push(property("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
}

/// A cpu list ("0-3,8") as systemd's bitmask: byte i holds CPUs 8i..8i+7.
fn bits(list: &str, name: &str) -> Result<Value> {
    let bad = || {
        Error::config(format!(
            "linux.resources.cpu: {name}: invalid list {list:?}"
        ))
    };
    let mut out: Vec<u8> = Vec::new();
    for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        for i in a..=b {
            if out.len() <= i / 8 {
                out.resize(i / 8 + 1, 0);
            }
            out[i / 8] |= 1 << (i % 8);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(Value::Array(
        "y".into(),
        out.into_iter().map(Value::Byte).collect(),
    ))
}

/// A `linux.resources.unified` key systemd has a property for (runc's table); others are
/// only written to the file.
fn unified(k: &str, v: &str, version: u32) -> Result<Option<Vec<Value>>> {
    let bad = || Error::config(format!("linux.resources.unified: {k}: invalid value {v:?}"));
    let num = |v: &str| -> Result<u64> {
        if v == "max" {
            Ok(INFINITY)
        } else {
            v.parse().map_err(|_| bad())
        }
    };
    let name = match k {
        "memory.high" => "MemoryHigh",
        "memory.low" => "MemoryLow",
        "memory.min" => "MemoryMin",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        "cpu.weight" => {
            let w: u64 = v.parse().map_err(|_| bad())?;
            return Ok(Some(vec![property("CPUWeight", Value::U64(w))]));
        }
        "cpu.max" => {
            let f: Vec<&str> = v.split_whitespace().collect();
            if f.is_empty() || f.len() > 2 {
                return Err(bad());
            }
            let quota = if f[0] == "max" {
                0
            } else {
                f[0].parse().map_err(|_| bad())?
            };
            let period = match f.get(1) {
                Some(p) => p.parse().map_err(|_| bad())?,
                None => DEFAULT_PERIOD,
            };
            let mut p = Vec::new();
            cpu_quota(&mut p, quota, period, version);
            return Ok(Some(p));
        }
        "cpuset.cpus" | "cpuset.mems" if version >= 244 => {
            let name = if k == "cpuset.cpus" {
                "AllowedCPUs"
            } else {
                "AllowedMemoryNodes"
            };
            return Ok(Some(vec![property(name, bits(v, name)?)]));
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![property(name, Value::U64(num(v)?))]))
}

/// DevicePolicy and DeviceAllow, as runc derives them: the rules (with runc's default allows)
/// reduced to an allow list; a list that allows everything is policy `auto`. systemd cannot
/// express a deny list or a `*:N` rule: those are left to tong's own eBPF program, with a
/// warning, as runc does.
fn devices(config: &[LinuxDeviceCgroup]) -> Result<Vec<Value>> {
    let entry = |path: String, access: &str| {
        Value::Struct(vec![Value::Str(path), Value::Str(access.into())])
    };
    let allow_list = |items: Vec<Value>| Value::Array("(ss)".into(), items);
    let rules = devices::rules(config)?;
    // Emulate the kernel's v1 list: a type-a rule resets to allow-all or deny-all.
    let mut default_allow = false;
    let mut list: Vec<Rule> = Vec::new();
    for r in rules {
        if r.kind == 'a' && r.major.is_none() && r.minor.is_none() {
            default_allow = r.allow;
            list.clear();
        } else if r.allow != default_allow {
            list.push(r);
        } else {
            // The opposite of an entry: drop those it covers exactly.
            list.retain(|e| !(e.kind == r.kind && e.major == r.major && e.minor == r.minor));
        }
    }
    if default_allow {
        if list.is_empty() {
            return Ok(vec![
                property("DevicePolicy", Value::Str("auto".into())),
                property("DeviceAllow", allow_list(vec![])),
            ]);
        }
        crate::logging::warn(
            "systemd doesn't support blacklist device rules -- applying temporary deny-all rule",
        );
        return Ok(vec![
            property("DevicePolicy", Value::Str("strict".into())),
            property("DeviceAllow", allow_list(vec![])),
        ]);
    }
    let mut items = Vec::new();
    for r in list {
        let access = devices::access_str(r.access);
        let group = if r.kind == 'b' { "block" } else { "char" };
        let path = match (r.major, r.minor) {
            (None, None) => format!("{group}-*"),
            (None, Some(_)) => {
                crate::logging::warn(&format!(
                    "systemd doesn't support '*:n' device rules -- temporarily ignoring rule: {} *:{} {access}",
                    r.kind,
                    r.minor.unwrap_or(0)
                ));
                continue;
            }
            (Some(major), None) => match device_group(r.kind, major) {
                Some(g) => g,
                None => {
                    crate::logging::warn(&format!(
                        "could not find device group for '{}/{major}' in /proc/devices -- temporarily ignoring rule",
                        r.kind
                    ));
                    continue;
                }
            },
            (Some(major), Some(minor)) => {
                let p = format!("/dev/{group}/{major}:{minor}");
                if std::fs::metadata(&p).is_err() && std::fs::metadata(format!("/sys{p}")).is_err()
                {
                    crate::logging::warn(&format!("skipping device {p} for systemd"));
                    continue;
                }
                p
            }
        };
        items.push(entry(path, &access));
    }
    Ok(vec![
        property("DevicePolicy", Value::Str("strict".into())),
        property("DeviceAllow", allow_list(items)),
    ])
}

/// `char-NAME` / `block-NAME` for a major number, from /proc/devices.
fn device_group(kind: char, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let want = if kind == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.ends_with("devices:") {
            inside = line == want;
            continue;
        }
        let mut f = line.split_whitespace();
        if inside && f.next().and_then(|m| m.parse::<i64>().ok()) == Some(major) {
            let prefix = if kind == 'b' { "block-" } else { "char-" };
            return f.next().map(|n| format!("{prefix}{n}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(p: &'a [Value], name: &str) -> Option<&'a Value> {
        p.iter().find_map(|v| match v {
            Value::Struct(f) if f[0].as_str() == Some(name) => match &f[1] {
                Value::Variant(v) => Some(v.as_ref()),
                _ => None,
            },
            _ => None,
        })
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn runc_conversions() {
        let r = res(
            r#"{"memory":{"limit":33554432,"swap":67108864,"reservation":1048576},
            "cpu":{"shares":1024,"quota":25000,"period":100000,"cpus":"0-1,9"},
            "pids":{"limit":20}}"#,
        );
        let p = resources(&r, 252, Names::V2).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(33554432)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(1048576)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(33554432)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(250_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(20)));
        assert_eq!(
            get(&p, "AllowedCPUs"),
            Some(&Value::Array(
                "y".into(),
                vec![Value::Byte(3), Value::Byte(2)]
            ))
        );
        // Older systemd: no period, no cpuset properties.
        let old = resources(&r, 241, Names::V2).unwrap();
        assert!(get(&old, "CPUQuotaPeriodUSec").is_none());
        assert!(get(&old, "AllowedCPUs").is_none());
    }

    #[test]
    fn v1_names_as_runcs_legacy_driver() {
        let r = res(
            r#"{"memory":{"limit":33554432,"swap":67108864,"reservation":1048576},
            "cpu":{"shares":512,"quota":25000,"period":100000},
            "blockIO":{"weight":300},"pids":{"limit":20}}"#,
        );
        let p = resources(&r, 252, Names::V1).unwrap();
        assert_eq!(get(&p, "MemoryLimit"), Some(&Value::U64(33554432)));
        assert_eq!(get(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(250_000)));
        assert_eq!(get(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(20)));
        for v2 in ["MemoryMax", "MemoryLow", "MemorySwapMax", "CPUWeight"] {
            assert!(get(&p, v2).is_none(), "{v2} on v1: {p:?}");
        }
        let e = resources(&res(r#"{"unified":{"memory.high":"max"}}"#), 252, Names::V1);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("cannot use unified on cgroup v1")
        );
    }

    #[test]
    fn quota_rounds_up_to_ten_ms_and_unlimited_is_infinity() {
        let p = resources(
            &res(r#"{"cpu":{"quota":5001,"period":100000}}"#),
            252,
            Names::V2,
        )
        .unwrap();
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(60_000)));
        let p = resources(&res(r#"{"cpu":{"quota":-1}}"#), 252, Names::V2).unwrap();
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        let p = resources(
            &res(r#"{"pids":{"limit":-1},"memory":{"limit":-1}}"#),
            252,
            Names::V2,
        )
        .unwrap();
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
    }

    #[test]
    fn unified_keys_systemd_knows() {
        let p = resources(
            &res(r#"{"unified":{"memory.high":"max","cpu.max":"50000 100000","io.weight":"50"}}"#),
            252,
            Names::V2,
        )
        .unwrap();
        assert_eq!(get(&p, "MemoryHigh"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(p.len(), 3, "io.weight has no property: {p:?}");
        assert!(resources(&res(r#"{"unified":{"pids.max":"lots"}}"#), 252, Names::V2).is_err());
    }

    #[test]
    fn device_rules() {
        // Deny all, then allow /dev/null and every pts: an allow list.
        let p = devices(
            &serde_json::from_str::<Vec<LinuxDeviceCgroup>>(
                r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let Some(Value::Array(_, allow)) = get(&p, "DeviceAllow") else {
            panic!("{p:?}")
        };
        assert!(allow.contains(&Value::Struct(vec![
            Value::Str("char-*".into()),
            Value::Str("m".into())
        ])));
        // Allow all: policy auto.
        let p = devices(
            &serde_json::from_str::<Vec<LinuxDeviceCgroup>>(r#"[{"allow":true,"access":"rwm"}]"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::Str("auto".into())));
    }

    #[test]
    fn bad_cpu_lists() {
        for l in ["a", "3-1", "1-", "70000"] {
            assert!(bits(l, "AllowedCPUs").is_err(), "{l}");
        }
    }
}
