//! `update`: new resource limits written to the cgroups; the recorded config follows.

use std::path::Path;

use super::running;
use crate::error::Result;

/// `update`: writes new resource limits; the recorded config follows.
pub fn update(root: &Path, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let (sd, mut st, status) = running(root, id)?;
    status.may_update()?;
    let r = &with_cpu_pair(r, st.config()?);
    st.cgroup.apply(r)?;
    // Merge the update into the recorded config so `state` and later updates see it.
    if let Ok(patch) = serde_json::to_value(r) {
        let res = st
            .config_mut()?
            .pointer_mut("/linux")
            .and_then(|l| l.as_object_mut())
            .map(|l| {
                l.entry("resources")
                    .or_insert_with(|| serde_json::json!({}))
            });
        if let Some(res) = res {
            merge(res, &patch);
        }
    }
    sd.save_config(&st)?;
    sd.save(&mut st)
}

/// runc's update starts from the recorded limits: a CPU quota or period given alone keeps
/// the other one the container has. systemd takes the pair as one property
/// (CPUQuotaPerSecUSec), so a period alone would otherwise lift the quota.
fn with_cpu_pair(
    r: &oci_spec::runtime::LinuxResources,
    config: &serde_json::Value,
) -> oci_spec::runtime::LinuxResources {
    let mut r = r.clone();
    let Some(mut cpu) = r.cpu().clone() else {
        return r;
    };
    let recorded = |k: &str| {
        config
            .pointer(&format!("/linux/resources/cpu/{k}"))
            .cloned()
    };
    match (cpu.quota(), cpu.period()) {
        (Some(_), None) => cpu.set_period(recorded("period").and_then(|v| v.as_u64())),
        (None, Some(_)) => cpu.set_quota(recorded("quota").and_then(|v| v.as_i64())),
        _ => return r,
    };
    r.set_cpu(Some(cpu));
    r
}

fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}
