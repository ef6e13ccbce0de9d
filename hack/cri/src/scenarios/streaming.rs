//! Exec and Attach through containerd's streaming server: what `kubectl exec` and
//! `kubectl attach` go through (the RPC hands back a URL; src/stream.rs speaks
//! v4.channel.k8s.io over WebSocket to it).
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::ctx::{ensure, expect_contains, expect_eq, ok, rpc, short, Ctx};
use crate::stream::{self, Outcome};
use crate::{host, R};

const T: Duration = Duration::from_secs(30);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The Exec RPC (tty false, stdout and stderr, stdin when asked): the stream's URL.
async fn exec_url(ctx: &mut Ctx, id: &str, cmd: &[&str], stdin: bool) -> R<String> {
    let r = rpc(
        "Exec",
        ctx.rt
            .exec(cri::ExecRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                tty: false,
                stdin,
                stdout: true,
                stderr: true,
            })
            .await,
    )?;
    ensure(r.url.starts_with("http://127.0.0.1:"), || {
        format!("Exec URL {:?} is not on 127.0.0.1", r.url)
    })?;
    Ok(r.url)
}

/// Exec then the stream to its end.
async fn exec_stream(ctx: &mut Ctx, id: &str, cmd: &[&str], stdin: Option<&[u8]>) -> R<Outcome> {
    let url = exec_url(ctx, id, cmd, stdin.is_some()).await?;
    stream::run(&url, stdin, T)
        .await
        .map_err(|e| format!("exec {cmd:?}: {e}"))
}

async fn attach_url(ctx: &mut Ctx, id: &str, stdin: bool) -> R<String> {
    let r = rpc(
        "Attach",
        ctx.rt
            .attach(cri::AttachRequest {
                container_id: id.into(),
                stdin,
                tty: false,
                stdout: true,
                stderr: true,
            })
            .await,
    )?;
    ensure(r.url.starts_with("http://127.0.0.1:"), || {
        format!("Attach URL {:?} is not on 127.0.0.1", r.url)
    })?;
    Ok(r.url)
}

pub async fn exec(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("xstream")?;
    let pod = ctx.run_pod(cfg).await?;
    let id = ctx
        .run(&pod, ctx.container(&pod, "shell", &["sleep", "1000"])?)
        .await?;

    // stdout and stderr on their own channels, the exit code in the closing status.
    let o = exec_stream(
        ctx,
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
    )
    .await?;
    expect_eq("stdout", text(&o.stdout).as_str(), "out\n")?;
    expect_eq("stderr", text(&o.stderr).as_str(), "err\n")?;
    expect_eq("exit code", o.exit_code, 3)?;
    let o = exec_stream(ctx, &id, &["echo", "fine"], None).await?;
    expect_eq(
        "stdout, exit code of echo",
        (text(&o.stdout).as_str(), o.exit_code),
        ("fine\n", 0),
    )?;

    // Stdin reaches the process: a line, then more than one message's worth.
    let o = exec_stream(
        ctx,
        &id,
        &["sh", "-c", "read l; echo got:$l"],
        Some(b"over the wire\n"),
    )
    .await?;
    expect_eq(
        "stdout of read from stdin",
        text(&o.stdout).as_str(),
        "got:over the wire\n",
    )?;
    let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let o = exec_stream(
        ctx,
        &id,
        &[
            "sh",
            "-c",
            "head -c 200000 >/tmp/in; wc -c </tmp/in; tail -c 10 /tmp/in; echo",
        ],
        Some(&big),
    )
    .await?;
    let tail = text(&big[big.len() - 10..]);
    expect_eq(
        "200000 bytes of stdin: count and last bytes",
        text(&o.stdout).split_whitespace().collect::<Vec<_>>(),
        vec!["200000", tail.as_str()],
    )?;

    // It ran in the container: its hostname, its pid namespace (pid 1 is the container's
    // sleep), the namespaces of the container's init as the host sees them, its cgroup.
    let init = ctx.pid(&id).await?;
    let kinds = ["pid", "mnt", "uts", "net", "ipc"];
    let script = format!(
        "hostname; tr '\\0' ' ' </proc/1/cmdline; echo; for n in {}; do readlink /proc/self/ns/$n; done; \
         [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroup",
        kinds.join(" ")
    );
    let o = exec_stream(ctx, &id, &["sh", "-c", &script], None).await?;
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    ensure(o.exit_code == 0 && lines.len() == 3 + kinds.len(), || {
        format!(
            "exec of the namespace script: exit {}, stdout {out:?}, stderr {:?}",
            o.exit_code,
            text(&o.stderr)
        )
    })?;
    expect_eq("hostname from an exec", lines[0], "xstream")?;
    expect_eq("pid 1 seen by an exec", lines[1], "sleep 1000")?;
    for (i, kind) in kinds.iter().enumerate() {
        let want = host::ns(&init.to_string(), kind)?;
        let host_own = host::ns("self", kind)?;
        ensure(lines[2 + i] == want && want != host_own, || {
            format!(
                "exec's {kind} namespace {:?}: container init's {want:?}, the host's {host_own:?}",
                lines[2 + i]
            )
        })?;
    }
    ok(format_args!(
        "an exec is in the {} namespaces of the container's init, not the host's",
        kinds.join("/")
    ));
    expect_eq(
        "exec's cgroup vs the container's init",
        lines[2 + kinds.len()],
        "same-cgroup",
    )?;

    // What cannot be started is a failure on the stream, not an exit code of 0.
    let url = exec_url(ctx, &id, &["/no/such/binary"], false).await?;
    match stream::run(&url, None, T).await {
        Err(e) => expect_contains("exec of a missing binary fails", &e, "/no/such/binary")?,
        Ok(o) => return Err(format!("exec of a missing binary: {o:?}")),
    }
    // A token serves one stream.
    let url = exec_url(ctx, &id, &["true"], false).await?;
    stream::run(&url, None, T).await?;
    let again = stream::run(&url, None, T).await;
    ensure(again.is_err(), || {
        format!("a used exec URL served again: {again:?}")
    })?;
    ok("an exec URL serves once");
    Ok(())
}

pub async fn attach(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("astream")?;
    let pod = ctx.run_pod(cfg).await?;

    // stdin_once: one client's stdin, closed when it hangs up; the container answers a line.
    let mut cfg = ctx.container(
        &pod,
        "once",
        &["sh", "-c", "echo ready; read l; echo got:$l; exit 4"],
    )?;
    cfg.stdin = true;
    cfg.stdin_once = true;
    let once = ctx.run(&pod, cfg).await?;
    let url = attach_url(ctx, &once, true).await?;
    let o = stream::run(&url, Some(b"hello attach\n"), T)
        .await
        .map_err(|e| format!("attach to {}: {e}", short(&once)))?;
    expect_contains("attach stdout", &text(&o.stdout), "got:hello attach\n")?;
    ensure(o.finished, || {
        format!("attach ended without a status: {o:?}")
    })?;
    ok(format_args!(
        "the attach ended with the container (stream exit code {})",
        o.exit_code
    ));
    let st = ctx.wait_exited(&once, 30).await?;
    expect_eq("exit code of the attached container", st.exit_code, 4)?;
    let r = attach_url(ctx, &once, false).await;
    match r {
        Err(e) => ok(format_args!("Attach to an exited container fails: {e}")),
        Ok(url) => {
            let r = stream::run(&url, None, T).await;
            ensure(r.is_err(), || {
                format!("attach to an exited container: {r:?}")
            })?;
            ok(format_args!(
                "attach to an exited container fails: {}",
                r.err().unwrap_or_default()
            ));
        }
    }

    // stdin_once again, the client hanging up before the container is done: that closes the
    // container's stdin (EOF), it does not just detach.
    let mut cfg = ctx.container(
        &pod,
        "lines",
        &[
            "sh",
            "-c",
            "while read l; do echo got:$l; done; echo eof; exit 6",
        ],
    )?;
    cfg.stdin = true;
    cfg.stdin_once = true;
    let lines = ctx.run(&pod, cfg).await?;
    let url = attach_url(ctx, &lines, true).await?;
    let o = stream::run_until(&url, Some(b"one\n"), b"got:one\n", T)
        .await
        .map_err(|e| format!("attach to {}: {e}", short(&lines)))?;
    ensure(!o.finished, || {
        format!("the attach ended before the hang-up: {o:?}")
    })?;
    ok("a line through an attach, then a hang-up");
    let st = ctx.wait_exited(&lines, 30).await?;
    expect_eq(
        "exit code once the stdin_once stdin was closed",
        st.exit_code,
        6,
    )?;
    let log = std::path::Path::new(&ctx.pod(&pod)?.config.log_directory).join("lines_0.log");
    expect_contains(
        "its log after the hang-up",
        &host::read(&log)?,
        "stdout F eof",
    )?;

    // A container that keeps running: its output through an attach, which hangs up and
    // leaves it running; a second attach sees later output.
    let tick = ctx
        .run(
            &pod,
            ctx.container(
                &pod,
                "tick",
                &[
                    "sh",
                    "-c",
                    "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
                ],
            )?,
        )
        .await?;
    let mut last = None;
    for round in 0..2 {
        let url = attach_url(ctx, &tick, false).await?;
        let o = stream::run_until(&url, None, b"\n", T)
            .await
            .map_err(|e| format!("attach to {}: {e}", short(&tick)))?;
        ensure(!o.finished, || {
            format!("the ticking container's attach ended: {o:?}")
        })?;
        let out = text(&o.stdout);
        let n: u32 = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
            .ok_or(format!("no tick-N line in the attach's stdout {out:?}"))?;
        if let Some(prev) = last {
            ensure(n > prev, || {
                format!("attach {round} saw tick-{n} after tick-{prev}")
            })?;
        }
        ok(format_args!("attach {round} saw tick-{n} and hung up"));
        last = Some(n);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = ctx.status(&tick).await?;
        expect_eq(
            "the ticking container after the hang-up",
            crate::ctx::cstate(st.state),
            crate::ctx::cstate(cri::ContainerState::ContainerRunning as i32),
        )?;
    }
    Ok(())
}
