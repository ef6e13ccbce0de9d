//! `linux.resources` written to the container's cgroups.
//!
//! Each field goes to the v1 controller when the host has it as a v1 hierarchy, else to the
//! cgroup v2 directory when its controller is enabled there (so a hybrid host takes memory,
//! cpu, pids... from v1 and hugetlb from v2, as runc does). v2 values are converted as runc
//! converts them. A field the host has no file for is an error, except the ones runc only
//! warns about (kernel memory, and on v2 swappiness, net_cls/net_prio and leaf weights).

use std::path::Path;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use super::Dirs;

mod blkio;
use crate::error::{Error, Result};
use crate::logging;
use blkio::blkio;
pub use blkio::blkio_to_io_weight;

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<()> {
    let v = value.to_string();
    write_raw(dir, file, &v).map_err(|e| write_error(dir, file, &v, e))
}

fn write_raw(dir: &Path, file: &str, v: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), v)
}

fn write_error(dir: &Path, file: &str, v: &str, e: std::io::Error) -> Error {
    Error::other(format!(
        "cannot write {v:?} to {}: {e}",
        dir.join(file).display()
    ))
}

fn missing(field: &str) -> Error {
    Error::config(format!(
        "linux.resources.{field}: this host has no cgroup controller for it"
    ))
}

/// Applies every resource field that is set.
pub fn apply(d: &Dirs, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        memory(d, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(d, c)?;
    }
    if let Some(p) = r.pids() {
        pids(d, p.limit())?;
    }
    if let Some(b) = r.block_io() {
        blkio(d, b)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        if let Some(dir) = d.v1("hugetlb") {
            write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                h.limit(),
            )?;
        } else if let Some(dir) = d.v2_with("hugetlb") {
            write(dir, &format!("hugetlb.{}.max", h.page_size()), h.limit())?;
        } else {
            return Err(missing("hugepageLimits"));
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            match d.v1("net_cls") {
                Some(dir) => write(dir, "net_cls.classid", id)?,
                None => {
                    logging::warn("linux.resources.network.classID: no net_cls controller, ignored")
                }
            }
        }
        for p in n.priorities().iter().flatten() {
            match d.v1("net_prio") {
                Some(dir) => write(
                    dir,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                )?,
                None => logging::warn(
                    "linux.resources.network.priorities: no net_prio controller, ignored",
                ),
            }
        }
    }
    if let Some(rdma) = r.rdma() {
        // One line per device in rdma.max (v1 and v2 alike); unset limits stay "max".
        let dir = d
            .v1("rdma")
            .or(d.v2_with("rdma"))
            .ok_or_else(|| missing("rdma"))?;
        let mut devices: Vec<_> = rdma.iter().collect();
        devices.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, l) in devices {
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(Error::config(format!(
                    "linux.resources.rdma: invalid device name {dev:?}"
                )));
            }
            let v = |x: Option<u32>| x.map_or("max".to_string(), |n| n.to_string());
            let line = format!(
                "{dev} hca_handle={} hca_object={}",
                v(l.hca_handles()),
                v(l.hca_objects())
            );
            write(dir, "rdma.max", line)
                .map_err(|e| Error::other(format!("linux.resources.rdma[{dev}]: {e}")))?;
        }
    }
    if let Some(rules) = r.devices() {
        super::devices::apply(d, rules)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        if !super::pure_v2() {
            return Err(Error::config(super::V1_NO_UNIFIED));
        }
        let dir = d.v2.as_deref().ok_or_else(|| {
            Error::config("linux.resources.unified: this host has no cgroup v2 hierarchy")
        })?;
        for (k, v) in u {
            if k.contains('/') || k.starts_with('.') {
                return Err(Error::config(format!(
                    "linux.resources.unified: invalid file name {k:?}"
                )));
            }
            write(dir, k, v)?;
        }
    }
    Ok(())
}

fn memory(d: &Dirs, m: &LinuxMemory) -> Result<()> {
    if m.kernel().is_some_and(|k| k != 0) {
        logging::warn("linux.resources.memory.kernel is deprecated and ignored");
    }
    if let Some(dir) = d.v1("memory") {
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        if limit == -1 && swap == 0 {
            swap = -1;
        }
        let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
        if swap != 0 && !has_memsw {
            if swap == -1 {
                swap = 0;
            } else {
                return Err(Error::config(
                    "linux.resources.memory.swap: this host has no swap accounting (memory.memsw)",
                ));
            }
        }
        if m.check_before_update() == Some(true) && limit > 0 {
            let usage: i64 = read_num(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
            if usage > limit {
                return Err(Error::config(format!(
                    "linux.resources.memory.limit: {limit} is below the current usage {usage}"
                )));
            }
        }
        if limit != 0 && swap != 0 {
            // A raise must lift memsw first, a cut must lower the limit first: the kernel
            // requires limit <= memsw at every step.
            let cur = read_num(&dir.join("memory.limit_in_bytes")).unwrap_or(i64::MAX);
            if swap == -1 || cur < swap {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
                write(dir, "memory.limit_in_bytes", limit)?;
            } else {
                write(dir, "memory.limit_in_bytes", limit)?;
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
            }
        } else {
            if limit != 0 {
                write(dir, "memory.limit_in_bytes", limit)?;
            }
            if swap != 0 {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
            }
        }
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            write(dir, "memory.soft_limit_in_bytes", r)?;
        }
        if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
            write(dir, "memory.kmem.tcp.limit_in_bytes", t)?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::config(format!(
                    "linux.resources.memory.swappiness: {s} is above 100"
                )));
            }
            write(dir, "memory.swappiness", s)?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(dir, "memory.oom_control", 1)?;
        }
        return Ok(());
    }
    let Some(dir) = d.v2_with("memory") else {
        if m.limit().is_some() || m.swap().is_some() || m.reservation().is_some() {
            return Err(missing("memory"));
        }
        return Ok(());
    };
    if let Some(limit) = m.limit().filter(|l| *l != 0)
        && m.check_before_update() == Some(true)
        && limit > 0
    {
        let usage: i64 = read_num(&dir.join("memory.current")).unwrap_or(0);
        if usage > limit {
            return Err(Error::config(format!(
                "linux.resources.memory.limit: {limit} is below the current usage {usage}"
            )));
        }
    }
    // runc's conversion: v1's memsw (memory+swap) becomes v2's swap alone.
    let swap_max = v2_swap(m.limit(), m.swap())?;
    if let Some(s) = swap_max {
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", s)?;
        } else if s != "0" && s != "max" {
            return Err(Error::config(
                "linux.resources.memory.swap: this host has no swap accounting",
            ));
        }
    }
    if let Some(l) = m.limit().filter(|l| *l != 0) {
        write(dir, "memory.max", max_or(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.low", max_or(r))?;
    }
    if m.swappiness().is_some() {
        logging::warn("linux.resources.memory.swappiness is not supported on cgroup v2, ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        logging::warn(
            "linux.resources.memory.disableOOMKiller is not supported on cgroup v2, ignored",
        );
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// memory.swap.max from v1-style limit and memsw (runc's ConvertMemorySwapToCgroupV2Value).
pub fn v2_swap(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    let (limit, swap) = (limit.unwrap_or(0), swap.unwrap_or(0));
    if swap == -1 {
        return Ok(Some("max".into()));
    }
    if swap == 0 {
        return Ok(if limit == -1 {
            Some("max".into())
        } else {
            None
        });
    }
    if limit == 0 || limit == -1 {
        return Err(Error::config(
            "linux.resources.memory.swap: a swap limit needs a memory limit",
        ));
    }
    if swap < limit {
        return Err(Error::config(
            "linux.resources.memory.swap: memory+swap must not be below the memory limit",
        ));
    }
    Ok(Some((swap - limit).to_string()))
}

fn cpu(d: &Dirs, c: &LinuxCpu) -> Result<()> {
    if let Some(dir) = d.v1("cpu") {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write(dir, "cpu.shares", s)?;
        }
        // As runc: the period first; when the kernel refuses it against the current quota
        // (EINVAL) and a quota is given, the quota first and the period again.
        let quota = c.quota().filter(|q| *q != 0);
        if let Some(p) = c.period().filter(|p| *p != 0)
            && let Err(e) = write_raw(dir, "cpu.cfs_period_us", &p.to_string())
        {
            match (e.raw_os_error(), quota) {
                (Some(libc::EINVAL), Some(q)) => {
                    write(dir, "cpu.cfs_quota_us", q)?;
                    write(dir, "cpu.cfs_period_us", p)?;
                }
                _ => return Err(write_error(dir, "cpu.cfs_period_us", &p.to_string(), e)),
            }
        }
        if let Some(q) = quota {
            write(dir, "cpu.cfs_quota_us", q)?;
        }
        if let Some(b) = c.burst() {
            write(dir, "cpu.cfs_burst_us", b)?;
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            write(dir, "cpu.rt_period_us", p)?;
        }
        if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
            write(dir, "cpu.rt_runtime_us", r)?;
        }
        if let Some(i) = c.idle() {
            write(dir, "cpu.idle", i)?;
        }
    } else if let Some(dir) = d.v2_with("cpu") {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write(dir, "cpu.weight", shares_to_weight(s))?;
        }
        if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
            // One write; the value not given keeps what cpu.max holds now.
            let now = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
            let mut cur = now.split_whitespace();
            let (cur_quota, cur_period) = (cur.next(), cur.next());
            let quota = match c.quota().filter(|q| *q != 0) {
                Some(q) if q > 0 => q.to_string(),
                Some(_) => "max".into(),
                None => cur_quota.unwrap_or("max").to_string(),
            };
            let period = match c.period().filter(|p| *p != 0) {
                Some(p) => p.to_string(),
                None => cur_period.unwrap_or("100000").to_string(),
            };
            write(dir, "cpu.max", format!("{quota} {period}"))?;
        }
        if let Some(b) = c.burst() {
            write(dir, "cpu.max.burst", b)?;
        }
        if let Some(i) = c.idle() {
            write(dir, "cpu.idle", i)?;
        }
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            return Err(Error::config(
                "linux.resources.cpu.realtime*: not supported on cgroup v2",
            ));
        }
    } else if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
        return Err(missing("cpu"));
    }
    if c.cpus().as_ref().is_some_and(|s| !s.is_empty())
        || c.mems().as_ref().is_some_and(|s| !s.is_empty())
    {
        let dir = d
            .v1("cpuset")
            .or(d.v2_with("cpuset"))
            .ok_or_else(|| missing("cpu.cpus"))?;
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", s)?;
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", s)?;
        }
    }
    Ok(())
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), runc's formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

fn pids(d: &Dirs, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let v = if limit > 0 {
        limit.to_string()
    } else {
        "max".into()
    };
    let dir = d
        .v1("pids")
        .or(d.v2_with("pids"))
        .ok_or_else(|| missing("pids"))?;
    write(dir, "pids.max", v)
}

pub fn read_num(p: &Path) -> Option<i64> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    if s == "max" {
        Some(i64::MAX)
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(
            v2_swap(Some(100), Some(300)).unwrap().as_deref(),
            Some("200")
        );
        assert_eq!(
            v2_swap(Some(100), Some(-1)).unwrap().as_deref(),
            Some("max")
        );
        assert_eq!(v2_swap(Some(-1), None).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap(Some(100), None).unwrap(), None);
        assert!(v2_swap(Some(300), Some(100)).is_err());
    }
}
