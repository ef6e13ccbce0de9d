//! A container's life: how it ends (exit code, OOM, StopContainer), its logs, its restart.
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio::time::Instant;

use crate::ctx::{cstate, ensure, expect_eq, ok, rpc, short, wait_for, Ctx};
use crate::host;
use crate::R;

pub async fn exit_code(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("exit")?;
    let pod = ctx.run_pod(cfg).await?;
    let three = ctx
        .run(&pod, ctx.container(&pod, "three", &["sh", "-c", "exit 3"])?)
        .await?;
    let st = ctx.wait_exited(&three, 30).await?;
    expect_eq("exit code", st.exit_code, 3)?;
    expect_eq("reason", st.reason.as_str(), "Error")?;
    // Not finished_at >= started_at: containerd takes started_at once the runtime's start
    // has returned, and finished_at from the shim's reaping, so a container quick to exit
    // may show an end before its start (seen with a fast start: 0.4 ms earlier).
    ensure(
        st.created_at > 0 && st.started_at >= st.created_at && st.finished_at >= st.created_at,
        || {
            format!(
                "times: created {} started {} finished {}",
                st.created_at, st.started_at, st.finished_at
            )
        },
    )?;
    ok("created_at, started_at and finished_at are set, none before created_at");
    let zero = ctx
        .run(&pod, ctx.container(&pod, "zero", &["true"])?)
        .await?;
    let st = ctx.wait_exited(&zero, 30).await?;
    expect_eq("exit code", st.exit_code, 0)?;
    expect_eq("reason", st.reason.as_str(), "Completed")?;
    Ok(())
}

pub async fn oom_killed(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("oom")?;
    let pod = ctx.run_pod(cfg).await?;
    let hog = "x=0123456789abcdef; while :; do x=$x$x; done";
    // With the systemd driver the hog is a child of the container's init, which outlives
    // it by 5 s: systemd removes a scope's cgroup as soon as it is empty, before the shim
    // has read its OOM event (hack/e2e/lib.sh's E2E_OOM_CMD, the same for runc). The exit
    // status stays the hog's.
    let script = if ctx.systemd() {
        format!("sh -c '{hog}'; st=$?; sleep 5; exit $st")
    } else {
        hog.to_string()
    };
    let mut c = ctx.container(&pod, "hog", &["sh", "-c", &script])?;
    c.linux.get_or_insert_with(Default::default).resources = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        ..Default::default()
    });
    let id = ctx.run(&pod, c).await?;
    let st = ctx.wait_exited(&id, 60).await?;
    expect_eq("exit code", st.exit_code, 137)?;
    expect_eq("reason", st.reason.as_str(), "OOMKilled")?;
    Ok(())
}

/// A CRI log line: `<RFC 3339 time> <stream> <P|F> <text>`.
struct Line {
    stream: String,
    tag: String,
    text: String,
}

fn rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (t.ends_with('Z') || t[19..].contains(['+', '-']))
}

fn parse_log(path: &Path) -> R<Vec<Line>> {
    let s = host::read(path)?;
    s.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            ensure(
                f.len() == 4
                    && rfc3339(f[0])
                    && matches!(f[1], "stdout" | "stderr")
                    && matches!(f[2], "P" | "F"),
                || format!("not a CRI log line in {}: {l:?}", path.display()),
            )?;
            Ok(Line {
                stream: f[1].into(),
                tag: f[2].into(),
                text: f[3].into(),
            })
        })
        .collect()
}

/// The numbers of the `line-N` lines of a log.
fn numbers(lines: &[Line]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.text.strip_prefix("line-")?.parse().ok())
        .collect()
}

pub async fn logs_reopen(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("logs")?;
    let pod = ctx.run_pod(cfg).await?;
    let dir = PathBuf::from(&ctx.pod(&pod)?.config.log_directory);
    // A line longer than containerd's max_container_log_line_size (16 KiB) is split into
    // partial (P) lines and a final (F) one.
    let script = "echo to-stderr >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; \
                  i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.1; done";
    let id = ctx
        .run(&pod, ctx.container(&pod, "logs", &["sh", "-c", script])?)
        .await?;
    let log = dir.join("logs_0.log");
    let st = ctx.status(&id).await?;
    expect_eq(
        "ContainerStatus log_path",
        st.log_path.as_str(),
        log.to_str().unwrap_or(""),
    )?;
    wait_for("5 lines in the log", 30, || {
        parse_log(&log)
            .map(|l| numbers(&l).len() >= 5)
            .unwrap_or(false)
    })
    .await?;
    let lines = parse_log(&log)?;
    ok(format_args!("{} lines in the CRI format", lines.len()));
    ensure(
        lines
            .iter()
            .any(|l| l.stream == "stderr" && l.tag == "F" && l.text == "to-stderr"),
        || "no 'stderr F to-stderr' line".into(),
    )?;
    ok("stderr line");
    let long: Vec<&Line> = lines.iter().filter(|l| l.text.starts_with("xxx")).collect();
    let total: usize = long.iter().map(|l| l.text.len()).sum();
    ensure(
        long.len() >= 2
            && long[..long.len() - 1].iter().all(|l| l.tag == "P")
            && long[long.len() - 1].tag == "F"
            && total == 20000,
        || {
            format!(
                "the 20000-byte line: {} pieces, tags {:?}, {total} bytes",
                long.len(),
                long.iter().map(|l| &l.tag).collect::<Vec<_>>()
            )
        },
    )?;
    ok(format_args!(
        "a 20000-byte line in {} pieces (P... F)",
        long.len()
    ));

    // Log rotation as the kubelet does it: rename, then ReopenContainerLog.
    let rotated = dir.join("logs_0.log.1");
    std::fs::rename(&log, &rotated).map_err(|e| format!("rename {}: {e}", log.display()))?;
    rpc(
        "ReopenContainerLog",
        ctx.rt
            .reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: id.clone(),
            })
            .await,
    )?;
    ok("ReopenContainerLog");
    wait_for("a new log file with 3 lines", 30, || {
        parse_log(&log)
            .map(|l| numbers(&l).len() >= 3)
            .unwrap_or(false)
    })
    .await?;
    let (old, new) = (numbers(&parse_log(&rotated)?), numbers(&parse_log(&log)?));
    let (last_old, first_new) = (
        old.last().copied().unwrap_or(0),
        new.first().copied().unwrap_or(0),
    );
    ensure(first_new == last_old + 1, || {
        format!("the new log starts at line-{first_new}, the rotated one ends at line-{last_old}")
    })?;
    ok(format_args!(
        "the rotated log ends at line-{last_old}, the new one goes on at line-{first_new}"
    ));
    Ok(())
}

pub async fn stop_grace(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("stop")?;
    let pod = ctx.run_pod(cfg).await?;
    let polite = ctx
        .run(
            &pod,
            ctx.container(
                &pod,
                "polite",
                &[
                    "sh",
                    "-c",
                    "trap 'exit 0' TERM; echo trap-set; while :; do sleep 0.1; done",
                ],
            )?,
        )
        .await?;
    let stubborn = ctx
        .run(
            &pod,
            ctx.container(
                &pod,
                "stubborn",
                &[
                    "sh",
                    "-c",
                    "trap '' TERM; echo trap-set; while :; do sleep 0.1; done",
                ],
            )?,
        )
        .await?;
    // Stopped only once their traps are set.
    let dir = PathBuf::from(&ctx.pod(&pod)?.config.log_directory);
    for name in ["polite", "stubborn"] {
        let log = dir.join(format!("{name}_0.log"));
        wait_for(&format!("{name}'s trap set"), 30, || {
            host::read(&log).is_ok_and(|s| s.contains("trap-set"))
        })
        .await?;
    }

    let t0 = Instant::now();
    stop(ctx, &polite, 10).await?;
    let took = t0.elapsed();
    let st = ctx.status(&polite).await?;
    expect_eq("polite: exit code", st.exit_code, 0)?;
    ensure(took < Duration::from_secs(5), || {
        format!("SIGTERM was not honoured: stopping took {took:?}")
    })?;
    ok(format_args!(
        "polite: SIGTERM honoured, stopped in {took:.1?} of a 10 s grace period"
    ));

    let t0 = Instant::now();
    stop(ctx, &stubborn, 3).await?;
    let took = t0.elapsed();
    let st = ctx.status(&stubborn).await?;
    expect_eq("stubborn: exit code", st.exit_code, 137)?;
    ensure(
        took >= Duration::from_millis(2800) && took < Duration::from_secs(10),
        || format!("the grace period is 3 s, stopping took {took:?}"),
    )?;
    ok(format_args!(
        "stubborn: SIGKILL after the grace period, stopped in {took:.1?}"
    ));
    Ok(())
}

async fn stop(ctx: &mut Ctx, id: &str, timeout: i64) -> R<()> {
    rpc(
        "StopContainer",
        ctx.rt
            .stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout,
            })
            .await,
    )
    .map_err(|e| format!("{}: {e}", short(id)))?;
    Ok(())
}

pub async fn restart_attempt(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("restart")?;
    let pod = ctx.run_pod(cfg).await?;
    let first = ctx
        .run(
            &pod,
            ctx.container(&pod, "app", &["sh", "-c", "echo attempt-0; exit 1"])?,
        )
        .await?;
    let st = ctx.wait_exited(&first, 30).await?;
    expect_eq("attempt 0: exit code", st.exit_code, 1)?;
    // The kubelet's restart: a new container of the same name, attempt 1, its own log file.
    let mut c = ctx.container(
        &pod,
        "app",
        &["sh", "-c", "echo attempt-1; exec sleep 1000"],
    )?;
    c.metadata = Some(cri::ContainerMetadata {
        name: "app".into(),
        attempt: 1,
    });
    c.log_path = "app_1.log".into();
    let second = ctx.run(&pod, c).await?;
    ensure(second != first, || "attempt 1 has attempt 0's id".into())?;
    let mut list: Vec<(u32, String)> = ctx
        .list_containers(&pod)
        .await?
        .iter()
        .map(|c| {
            (
                c.metadata.as_ref().map(|m| m.attempt).unwrap_or(99),
                cstate(c.state),
            )
        })
        .collect();
    list.sort();
    expect_eq(
        "(attempt, state) listed in the pod",
        list,
        vec![
            (0, cstate(cri::ContainerState::ContainerExited as i32)),
            (1, cstate(cri::ContainerState::ContainerRunning as i32)),
        ],
    )?;
    expect_eq(
        "attempt 1 answers",
        ctx.sh(&second, "echo alive").await?.as_str(),
        "alive",
    )?;
    let dir = PathBuf::from(&ctx.pod(&pod)?.config.log_directory);
    wait_for("attempt 1's own log", 10, || {
        host::read(dir.join("app_1.log")).is_ok_and(|s| s.contains("attempt-1"))
    })
    .await?;
    ensure(
        host::read(dir.join("app_0.log"))?.contains("attempt-0"),
        || "attempt 0's log lost".into(),
    )?;
    ok("attempt 0's log kept");
    Ok(())
}
