//! `tong events [--stats] [--interval D] ID`: resource statistics and OOM notifications, one
//! JSON object per line, as runc prints them.

use std::time::{Duration, Instant};

use super::Global;
use crate::container;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// set the stats collection interval
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    /// the container's id
    pub id: String,
}

fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({"type": kind, "id": id});
    if let Some(d) = data {
        v["data"] = d;
    }
    v.to_string()
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let interval = humantime::parse_duration(&a.interval)
        .map_err(|e| Error::Usage(format!("invalid --interval {:?}: {e}", a.interval)))?;
    if interval.is_zero() {
        return Err(Error::Usage(
            "duration interval must be greater than 0".into(),
        ));
    }
    let (cg, alive) = container::cgroup(&g.root, &a.id)?;
    if a.stats {
        if !alive {
            return Err(Error::NotRunning);
        }
        println!("{}", event("stats", &a.id, Some(cg.stats())));
        return Ok(0);
    }
    let mut ooms = cg.oom_kills();
    let watch = cg.oom_watch();
    let mut noticed = 0;
    let mut credit = 0;
    let mut next_stats = Instant::now();
    loop {
        let (cg, alive) = match container::cgroup(&g.root, &a.id) {
            Ok(x) => x,
            Err(_) => return Ok(0),
        };
        // An OOM the watch noticed (the cgroup may be gone by now), or a rise of the kill
        // count. The kernel signals before it kills: a rise that comes after a noticed OOM
        // is that OOM's, reported already.
        let now_ooms = cg.oom_kills();
        let counted = now_ooms.saturating_sub(ooms);
        ooms = ooms.max(now_ooms);
        if noticed > 0 {
            if counted == 0 {
                credit += 1;
            }
            println!("{}", event("oom", &a.id, None));
        } else if counted > 0 {
            if credit > 0 {
                credit -= 1;
            } else {
                println!("{}", event("oom", &a.id, None));
            }
        }
        if !alive {
            return Ok(0);
        }
        if Instant::now() >= next_stats {
            println!("{}", event("stats", &a.id, Some(cg.stats())));
            next_stats = Instant::now() + interval;
        }
        noticed = watch.wait(Duration::from_millis(100));
    }
}
