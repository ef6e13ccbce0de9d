//! What `events --stats` reports, in the JSON shape `runc events --stats` prints, read from
//! v1 or v2 files (whichever holds each controller).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::Dirs;

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &Path) -> u64 {
    read(p).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// "key value" lines as a map.
fn kv(p: &Path) -> BTreeMap<String, u64> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

pub fn collect(d: &Dirs) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("cpu".into(), cpu(d));
    data.insert("memory".into(), memory(d));
    data.insert("pids".into(), pids(d));
    data.insert("blkio".into(), json!({}));
    data.insert("hugetlb".into(), hugetlb(d));
    Value::Object(data)
}

fn cpu(d: &Dirs) -> Value {
    if let Some(dir) = d.v1("cpuacct") {
        let percpu: Vec<u64> = read(&dir.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        let stat = kv(&dir.join("cpuacct.stat"));
        let tick = 10_000_000u64; // USER_HZ 100 → ns
        let cpu_stat = d
            .v1("cpu")
            .map(|c| kv(&c.join("cpu.stat")))
            .unwrap_or_default();
        return json!({
            "usage": {
                "total": num(&dir.join("cpuacct.usage")),
                "percpu": percpu,
                "kernel": stat.get("system").copied().unwrap_or(0) * tick,
                "user": stat.get("user").copied().unwrap_or(0) * tick,
            },
            "throttling": {
                "periods": cpu_stat.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": cpu_stat.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": cpu_stat.get("throttled_time").copied().unwrap_or(0),
            }
        });
    }
    if let Some(dir) = d.v2.as_deref() {
        let s = kv(&dir.join("cpu.stat"));
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        return json!({
            "usage": {"total": g("usage_usec") * 1000, "kernel": g("system_usec") * 1000, "user": g("user_usec") * 1000},
            "throttling": {"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_usec") * 1000}
        });
    }
    json!({})
}

fn memory(d: &Dirs) -> Value {
    if let Some(dir) = d.v1("memory") {
        let entry = |prefix: &str| {
            json!({
                "limit": num(&dir.join(format!("{prefix}limit_in_bytes"))),
                "usage": num(&dir.join(format!("{prefix}usage_in_bytes"))),
                "max": num(&dir.join(format!("{prefix}max_usage_in_bytes"))),
                "failcnt": num(&dir.join(format!("{prefix}failcnt"))),
            })
        };
        return json!({
            "cache": kv(&dir.join("memory.stat")).get("cache").copied().unwrap_or(0),
            "usage": entry("memory."),
            "swap": entry("memory.memsw."),
            "kernel": entry("memory.kmem."),
            "kernelTCP": entry("memory.kmem.tcp."),
            "raw": kv(&dir.join("memory.stat")),
        });
    }
    if let Some(dir) = d.v2_with("memory") {
        let max = |f: &str| {
            read(&dir.join(f))
                .map(|s| s.trim().parse::<u64>().unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        let stat = kv(&dir.join("memory.stat"));
        return json!({
            "cache": stat.get("file").copied().unwrap_or(0),
            "usage": {"limit": max("memory.max"), "usage": num(&dir.join("memory.current")), "max": num(&dir.join("memory.peak")), "failcnt": kv(&dir.join("memory.events")).get("max").copied().unwrap_or(0)},
            "swap": {"limit": max("memory.swap.max"), "usage": num(&dir.join("memory.swap.current"))},
            "raw": stat,
        });
    }
    json!({})
}

fn pids(d: &Dirs) -> Value {
    let Some(dir) = d.v1("pids").or(d.v2_with("pids")) else {
        return json!({});
    };
    let limit = read(&dir.join("pids.max"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    json!({"current": num(&dir.join("pids.current")), "limit": limit})
}

fn hugetlb(d: &Dirs) -> Value {
    let mut out = serde_json::Map::new();
    let (dir, v1) = match (d.v1("hugetlb"), d.v2_with("hugetlb")) {
        (Some(x), _) => (x, true),
        (None, Some(x)) => (x, false),
        _ => return json!({}),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return json!({});
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let size = if v1 {
            name.strip_prefix("hugetlb.")
                .and_then(|n| n.strip_suffix(".usage_in_bytes"))
        } else {
            name.strip_prefix("hugetlb.")
                .and_then(|n| n.strip_suffix(".current"))
        };
        if let Some(size) = size {
            if size.contains('.') {
                continue;
            }
            let usage = num(&e.path());
            let failcnt = if v1 {
                num(&dir.join(format!("hugetlb.{size}.failcnt")))
            } else {
                kv(&dir.join(format!("hugetlb.{size}.events")))
                    .get("max")
                    .copied()
                    .unwrap_or(0)
            };
            out.insert(
                size.to_string(),
                json!({"usage": usage, "failcnt": failcnt}),
            );
        }
    }
    Value::Object(out)
}

/// Wakes `events` when the container's memory cgroup meets an OOM, so it is reported at
/// once: under systemd's driver the scope's cgroup is removed soon after its last process
/// dies, and a poll that came later would find nothing. On v2 an inotify watch on
/// `memory.events` (an OOM kill writes it); on v1 an eventfd registered for
/// `memory.oom_control` in `cgroup.event_control` (runc's way), which the kernel signals
/// at each OOM, and once more when the cgroup is removed.
pub enum OomWatch {
    V2(nix::sys::inotify::Inotify),
    V1 {
        efd: nix::sys::eventfd::EventFd,
        /// Open while registered (the kernel holds it, tong keeps it for the watch's life).
        _control: std::fs::File,
        /// `cgroup.event_control`: gone once the cgroup is.
        registry: std::path::PathBuf,
    },
    None,
}

impl OomWatch {
    pub fn new(d: &Dirs) -> OomWatch {
        match d.v1("memory") {
            Some(dir) => Self::v1(dir).unwrap_or(OomWatch::None),
            None => Self::v2(d).unwrap_or(OomWatch::None),
        }
    }

    fn v2(d: &Dirs) -> Option<OomWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let f = d.v2_with("memory")?.join("memory.events");
        let i = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        i.add_watch(&f, AddWatchFlags::IN_MODIFY).ok()?;
        Some(OomWatch::V2(i))
    }

    fn v1(dir: &std::path::Path) -> Option<OomWatch> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        use std::os::fd::{AsFd, AsRawFd};
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .ok()?;
        let control = std::fs::File::open(dir.join("memory.oom_control")).ok()?;
        let registry = dir.join("cgroup.event_control");
        let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
        std::fs::write(&registry, line).ok()?;
        Some(OomWatch::V1 {
            efd,
            _control: control,
            registry,
        })
    }

    /// Sleeps up to `t`, less when an OOM is noticed; returns the OOMs the v1 eventfd
    /// counted meanwhile (the v2 count is read from memory.events).
    pub fn wait(&self, t: std::time::Duration) -> u64 {
        use std::os::fd::AsFd;
        let fd = match self {
            OomWatch::V2(i) => i.as_fd(),
            OomWatch::V1 { efd, .. } => efd.as_fd(),
            OomWatch::None => {
                std::thread::sleep(t);
                return 0;
            }
        };
        let timeout = nix::poll::PollTimeout::try_from(t).unwrap_or(nix::poll::PollTimeout::MAX);
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, timeout);
        match self {
            OomWatch::V2(i) => {
                let _ = i.read_events();
                0
            }
            OomWatch::V1 { efd, registry, .. } => {
                let n = efd.read().unwrap_or(0);
                // The cgroup's removal signals once too.
                if n > 0 && !registry.exists() {
                    n - 1
                } else {
                    n
                }
            }
            OomWatch::None => 0,
        }
    }
}

/// The container's OOM kill count so far (v1 memory.oom_control, v2 memory.events).
pub fn oom_kills(d: &Dirs) -> u64 {
    if let Some(dir) = d.v1("memory") {
        return kv(&dir.join("memory.oom_control"))
            .get("oom_kill")
            .copied()
            .unwrap_or(0);
    }
    if let Some(dir) = d.v2_with("memory") {
        return kv(&dir.join("memory.events"))
            .get("oom_kill")
            .copied()
            .unwrap_or(0);
    }
    0
}
