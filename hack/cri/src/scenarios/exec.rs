//! ExecSync: what the kubelet's exec probes and `kubectl exec` without a stream use.
use std::time::Duration;

use tokio::time::Instant;

use crate::ctx::{ensure, expect_contains, expect_eq, ok, rpc, Ctx};
use crate::R;

pub async fn exec_sync(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("exec")?;
    let pod = ctx.run_pod(cfg).await?;
    let id = ctx
        .run(&pod, ctx.container(&pod, "exec", &["sleep", "1000"])?)
        .await?;

    let r = ctx
        .exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 4"], 30)
        .await?;
    expect_eq(
        "stdout",
        String::from_utf8_lossy(&r.stdout).as_ref(),
        "out\n",
    )?;
    expect_eq(
        "stderr",
        String::from_utf8_lossy(&r.stderr).as_ref(),
        "err\n",
    )?;
    expect_eq("exit code", r.exit_code, 4)?;
    // The exec'd process runs beside the container's init, in its namespaces.
    expect_eq(
        "ps from an exec",
        ctx.sh(&id, "ps -o args | grep -c '^sleep 1000'")
            .await?
            .as_str(),
        "1",
    )?;
    let r = ctx.exec(&id, &["/no/such/binary"], 30).await;
    match r {
        Err(e) => ok(format_args!("a missing binary is an error: {e}")),
        Ok(r) => ensure(r.exit_code != 0, || {
            "exec of a missing binary exited 0".into()
        })?,
    }

    // A probe's timeout: the call fails after it, and the process is killed.
    let t0 = Instant::now();
    let r = ctx.exec(&id, &["sleep", "10"], 2).await;
    let took = t0.elapsed();
    match r {
        Err(e) => expect_contains("ExecSync error after its timeout", &e, "timeout")?,
        Ok(r) => {
            return Err(format!(
                "ExecSync of sleep 10 with timeout 2 returned {r:?}"
            ))
        }
    }
    ensure(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(7),
        || format!("ExecSync with timeout 2 took {took:?}"),
    )?;
    ok(format_args!(
        "ExecSync with timeout 2 s gave up after {took:.1?}"
    ));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = ctx.sh(&id, "ps -o args").await?;
        if !ps.lines().any(|l| l.trim() == "sleep 10") {
            break;
        }
        if Instant::now() > end {
            return Err(format!("the timed-out exec is still running:\n{ps}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ok("the timed-out exec was killed");

    // Probes run side by side: 8 ExecSyncs at once, each its own output and exit code.
    let calls = (0..8).map(|i| {
        let mut rt = ctx.rt.clone();
        let id = id.clone();
        async move {
            let req = k8s_cri::v1::ExecSyncRequest {
                container_id: id,
                cmd: vec!["sh".into(), "-c".into(), format!("echo exec-{i}; exit {i}")],
                timeout: 30,
            };
            (i, rpc("ExecSync", rt.exec_sync(req).await))
        }
    });
    for (i, r) in futures_util::future::join_all(calls).await {
        let r = r?;
        ensure(
            r.exit_code == i && r.stdout == format!("exec-{i}\n").as_bytes(),
            || {
                format!(
                    "concurrent exec {i}: exit {}, stdout {:?}",
                    r.exit_code,
                    String::from_utf8_lossy(&r.stdout)
                )
            },
        )?;
    }
    ok("8 concurrent ExecSyncs, each with its own output and exit code");

    // No exec into a container that has exited.
    let done = ctx
        .run(&pod, ctx.container(&pod, "done", &["true"])?)
        .await?;
    ctx.wait_exited(&done, 30).await?;
    let r = ctx.exec(&done, &["true"], 30).await;
    ensure(r.is_err(), || {
        format!("ExecSync into an exited container: {r:?}")
    })?;
    ok(format_args!(
        "ExecSync into an exited container fails: {}",
        r.err().unwrap_or_default()
    ));
    Ok(())
}
