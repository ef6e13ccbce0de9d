//! `cri-e2e bench`: how long a pod takes to start and to go through CRI, per runtime handler,
//! as a kubelet drives it (hack/bench.sh's "pod" case runs it through hack/e2e/cri.sh).
//!
//! One run of a handler: RunPodSandbox (the pause container, its network namespace and CNI),
//! CreateContainer and StartContainer of a busybox shell that honours SIGTERM, then the
//! teardown: StopContainer (grace 10 s), StopPodSandbox and RemovePodSandbox. The handlers
//! take turns in every round, the order rotating, so drift on a busy host spreads over all
//! of them. Each RPC is timed on its own, so the result says where the time goes: the runtime
//! runs inside RunPodSandbox (the pause container's `create` and `start`, beside a new shim,
//! the network namespace and CNI) and StartContainer (the container's `create` and `start`);
//! CreateContainer is containerd's bookkeeping; the teardown holds `kill` and `delete`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use k8s_cri::v1 as cri;

use crate::ctx::{rpc, Ctx};
use crate::R;

/// The RPCs of one run, in order; the first three make up the start, the rest the teardown.
pub const PHASES: [&str; 6] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];
const START: usize = 3;

/// Milliseconds of each phase of one run.
type Run = [f64; PHASES.len()];

async fn one(ctx: &mut Ctx, handler: &str) -> R<Run> {
    ctx.o.handler = handler.to_string();
    let mut t = [0.0; PHASES.len()];
    let mut clock = Instant::now();
    let mut lap = |i: usize| {
        t[i] = clock.elapsed().as_secs_f64() * 1000.0;
        clock = Instant::now();
    };
    let config = ctx.pod_config(&format!("b-{handler}"))?;
    let pod = ctx.run_pod(config).await?;
    lap(0);
    let c = ctx.container(
        &pod,
        "app",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 1 & wait; done",
        ],
    )?;
    let id = ctx.create(&pod, c).await?;
    lap(1);
    ctx.start(&id).await?;
    lap(2);
    rpc(
        "StopContainer",
        ctx.rt
            .stop_container(cri::StopContainerRequest {
                container_id: id.clone(),
                timeout: 10,
            })
            .await,
    )?;
    lap(3);
    ctx.stop_pod(&pod).await?;
    lap(4);
    ctx.remove_pod(&pod).await?;
    lap(5);
    Ok(t)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `runs` rounds (after one untimed warm-up round), prints a table of medians and the
/// ratios to the first handler, and writes every run's figures as JSON to `out`.
pub async fn run(ctx: &mut Ctx, handlers: &[String], runs: usize, out: Option<&Path>) -> R<()> {
    if handlers.is_empty() {
        return Err("bench: no handlers (--handlers a,b,...)".into());
    }
    for h in handlers {
        one(ctx, h)
            .await
            .map_err(|e| format!("warm-up, {h}: {e}"))?;
    }
    let mut all: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for round in 0..runs {
        for k in 0..handlers.len() {
            let h = &handlers[(round + k) % handlers.len()];
            let r = one(ctx, h)
                .await
                .map_err(|e| format!("round {round}, {h}: {e}"))?;
            all.entry(h.as_str()).or_default().push(r);
        }
    }
    // Per handler: the median of each phase, of the start and of the teardown.
    let mut med: BTreeMap<&str, (Vec<f64>, f64, f64)> = BTreeMap::new();
    for (h, rs) in &all {
        let phase = (0..PHASES.len())
            .map(|i| median(&mut rs.iter().map(|r| r[i]).collect::<Vec<_>>()))
            .collect();
        let start = median(
            &mut rs
                .iter()
                .map(|r| r[..START].iter().sum())
                .collect::<Vec<_>>(),
        );
        let down = median(
            &mut rs
                .iter()
                .map(|r| r[START..].iter().sum())
                .collect::<Vec<_>>(),
        );
        med.insert(h, (phase, start, down));
    }
    let base = &handlers[0];
    let (_, bs, bd) = med[base.as_str()].clone();
    println!("pod bench: {runs} runs per handler, medians in ms; ratio = handler / {base}");
    print!("{:10}", "handler");
    for p in PHASES {
        print!(" {p:>16}");
    }
    println!(
        " {:>10} {:>8} {:>10} {:>8}",
        "start", "ratio", "teardown", "ratio"
    );
    for h in handlers {
        let (ph, s, d) = &med[h.as_str()];
        print!("{h:10}");
        for v in ph {
            print!(" {v:>16.1}");
        }
        println!(" {s:>10.1} {:>8.2} {d:>10.1} {:>8.2}", s / bs, d / bd);
    }
    if let Some(out) = out {
        let json = serde_json::json!({
            "phases": PHASES,
            "runs": all.iter().map(|(h, rs)| (h.to_string(), rs.iter().map(|r| r.to_vec()).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(out, json.to_string()).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}
