//! Containers' configuration as the kubelet passes it: env, mounts, resources, security
//! context; resource updates and stats.
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::ctx::{cg_inside, cstate, ensure, expect_contains, expect_eq, ok, rpc, short, Ctx};
use crate::host;
use crate::R;

const MIB: i64 = 1024 * 1024;

pub async fn env_mounts(ctx: &mut Ctx) -> R<()> {
    let ro = ctx.dir("host-ro")?;
    let rw = ctx.dir("host-rw")?;
    std::fs::write(ro.join("f"), "from-host\n")
        .map_err(|e| format!("write {}: {e}", ro.display()))?;
    let cfg = ctx.pod_config("envmnt")?;
    let pod = ctx.run_pod(cfg).await?;
    let mut c = ctx.container(&pod, "envmnt", &["sleep", "1000"])?;
    c.envs = vec![
        cri::KeyValue {
            key: "FOO".into(),
            value: "bar".into(),
        },
        cri::KeyValue {
            key: "SPACED".into(),
            value: "a b  c".into(),
        },
    ];
    c.working_dir = "/tmp".into();
    c.mounts = vec![
        cri::Mount {
            container_path: "/data-ro".into(),
            host_path: ro.display().to_string(),
            readonly: true,
            ..Default::default()
        },
        cri::Mount {
            container_path: "/data-rw".into(),
            host_path: rw.display().to_string(),
            ..Default::default()
        },
    ];
    let id = ctx.run(&pod, c).await?;
    expect_eq(
        "env and cwd",
        ctx.sh(&id, "echo \"$FOO|$SPACED|$(pwd)\"").await?.as_str(),
        "bar|a b  c|/tmp",
    )?;
    expect_eq(
        "/data-ro/f",
        ctx.sh(&id, "cat /data-ro/f").await?.as_str(),
        "from-host",
    )?;
    let r = ctx.exec(&id, &["touch", "/data-ro/new"], 30).await?;
    ensure(r.exit_code != 0, || {
        "a write to the read-only mount succeeded".into()
    })?;
    expect_contains(
        "touch /data-ro/new",
        &String::from_utf8_lossy(&r.stderr),
        "Read-only file system",
    )?;
    ctx.sh(&id, "echo written-inside > /data-rw/new").await?;
    expect_eq(
        "host's copy of /data-rw/new",
        host::read(rw.join("new"))?.trim(),
        "written-inside",
    )?;
    Ok(())
}

pub async fn resources(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("res")?;
    let pod = ctx.run_pod(cfg).await?;
    let parent = ctx.pod(&pod)?.cgroup_parent.clone();
    let mut c = ctx.container(&pod, "res", &["sleep", "1000"])?;
    c.linux.get_or_insert_with(Default::default).resources = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: 64 * MIB,
        cpu_shares: 512,
        cpu_quota: 50000,
        cpu_period: 100000,
        ..Default::default()
    });
    let id = ctx.run(&pod, c).await?;
    check_limits(ctx, &id, 64 * MIB, 50000).await?;
    let (shares, v2) = cg_inside(ctx, &id, "cpu", "cpu.shares", "cpu.weight").await?;
    // cgroup v2: runc's shares-to-weight conversion, 1 + (512 - 2) * 9999 / 262142.
    expect_eq(
        "cpu shares (inside)",
        shares.as_str(),
        if v2 { "20" } else { "512" },
    )?;
    // Seen from the host: the cgroup is the pod's parent's child named after the container.
    let pid = ctx.pid(&id).await?;
    let dir = host::cgroup_dir(pid, if host::cgroup2_only() { "" } else { "memory" })?;
    if !ctx.systemd() && !parent.is_empty() {
        ensure(
            dir.ends_with(format!("{}/{id}", parent.trim_start_matches('/'))),
            || {
                format!(
                    "the container's cgroup {} is not {parent}/<id>",
                    dir.display()
                )
            },
        )?;
        ok(format_args!(
            "cgroup {} under the pod's parent",
            dir.display()
        ));
    }
    if ctx.systemd() {
        // runc's systemd driver: CPUWeight from the shares as cpu.weight above.
        ctx.expect_scope(
            &pod,
            &id,
            pid,
            &[
                ("MemoryMax", "67108864"),
                ("CPUQuotaPerSecUSec", "500ms"),
                ("CPUWeight", "20"),
            ],
        )?;
    }
    let f = if host::cgroup2_only() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    expect_eq(
        &format!("host's {f}"),
        host::read(dir.join(f))?.trim(),
        (64 * MIB).to_string().as_str(),
    )?;
    Ok(())
}

/// The memory limit and CPU quota (period 100 ms) in the container's cgroup files.
async fn check_limits(ctx: &mut Ctx, id: &str, mem: i64, quota: i64) -> R<()> {
    let (m, _) = cg_inside(ctx, id, "memory", "memory.limit_in_bytes", "memory.max").await?;
    expect_eq("memory limit (inside)", m, mem.to_string())?;
    let (q, v2) = cg_inside(ctx, id, "cpu", "cpu.cfs_quota_us", "cpu.max").await?;
    expect_eq(
        "cpu quota (inside)",
        q,
        if v2 {
            format!("{quota} 100000")
        } else {
            quota.to_string()
        },
    )?;
    Ok(())
}

pub async fn security(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("sec")?;
    let pod = ctx.run_pod(cfg).await?;
    let sleep = ["sleep", "1000"];

    let plain = ctx.run(&pod, ctx.container(&pod, "plain", &sleep)?).await?;
    let plain_pid = ctx.pid(&plain).await?;
    let caps = u64::from_str_radix(&host::proc_status(plain_pid, "CapEff")?, 16)
        .map_err(|e| e.to_string())?;
    ensure(caps & 1 != 0, || {
        format!("the default CapEff {caps:016x} lacks CAP_CHOWN")
    })?;
    expect_eq(
        "Seccomp (no profile asked)",
        host::proc_status(plain_pid, "Seccomp")?.as_str(),
        "0",
    )?;

    let mut c = ctx.container(&pod, "user", &sleep)?;
    sc(&mut c)?.run_as_user = Some(cri::Int64Value { value: 1000 });
    sc(&mut c)?.run_as_group = Some(cri::Int64Value { value: 1001 });
    let user = ctx.run(&pod, c).await?;
    let pid = ctx.pid(&user).await?;
    expect_eq(
        "Uid",
        host::proc_status(pid, "Uid")?.as_str(),
        "1000\t1000\t1000\t1000",
    )?;
    expect_eq(
        "Gid",
        host::proc_status(pid, "Gid")?.as_str(),
        "1001\t1001\t1001\t1001",
    )?;
    expect_eq(
        "CapEff of uid 1000",
        host::proc_status(pid, "CapEff")?.as_str(),
        "0000000000000000",
    )?;
    expect_eq(
        "id -u -g inside",
        ctx.sh(&user, "echo $(id -u) $(id -g)").await?.as_str(),
        "1000 1001",
    )?;

    let mut c = ctx.container(&pod, "rofs", &sleep)?;
    sc(&mut c)?.readonly_rootfs = true;
    let rofs = ctx.run(&pod, c).await?;
    let r = ctx.exec(&rofs, &["touch", "/new-file"], 30).await?;
    ensure(r.exit_code != 0, || {
        "a write to the read-only rootfs succeeded".into()
    })?;
    expect_contains(
        "touch /new-file",
        &String::from_utf8_lossy(&r.stderr),
        "Read-only file system",
    )?;

    let mut c = ctx.container(&pod, "nocap", &sleep)?;
    sc(&mut c)?.capabilities = Some(cri::Capability {
        drop_capabilities: vec!["CHOWN".into()],
        ..Default::default()
    });
    let nocap = ctx.run(&pod, c).await?;
    let pid = ctx.pid(&nocap).await?;
    expect_eq(
        "CapEff without CHOWN",
        host::proc_status(pid, "CapEff")?,
        format!("{:016x}", caps & !1),
    )?;
    let r = ctx.exec(&nocap, &["chown", "1000", "/tmp"], 30).await?;
    ensure(r.exit_code != 0, || {
        "chown succeeded without CAP_CHOWN".into()
    })?;
    expect_contains(
        "chown 1000 /tmp",
        &String::from_utf8_lossy(&r.stderr),
        "Operation not permitted",
    )?;

    let mut c = ctx.container(&pod, "seccomp", &sleep)?;
    sc(&mut c)?.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
    let sec = ctx.run(&pod, c).await?;
    let pid = ctx.pid(&sec).await?;
    expect_eq(
        "Seccomp (RuntimeDefault)",
        host::proc_status(pid, "Seccomp")?.as_str(),
        "2",
    )?;
    // containerd's default profile allows unshare(2) only with CAP_SYS_ADMIN.
    let r = ctx.exec(&sec, &["unshare", "-U", "true"], 30).await?;
    ensure(r.exit_code != 0, || {
        "unshare -U succeeded under RuntimeDefault".into()
    })?;
    ok("unshare -U is refused under RuntimeDefault");

    // A Localhost profile (a file on the node, Docker's seccomp JSON): mkdir gets EPERM.
    let profile = ctx.dir("seccomp")?.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .map_err(|e| format!("write {}: {e}", profile.display()))?;
    let mut c = ctx.container(&pod, "localhost", &sleep)?;
    sc(&mut c)?.seccomp = Some(cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: profile.display().to_string(),
    });
    let id = ctx.run(&pod, c).await?;
    expect_eq(
        "Seccomp (Localhost)",
        host::proc_status(ctx.pid(&id).await?, "Seccomp")?.as_str(),
        "2",
    )?;
    let r = ctx.exec(&id, &["mkdir", "/tmp/denied"], 30).await?;
    ensure(r.exit_code != 0, || {
        "mkdir succeeded under a profile denying it".into()
    })?;
    expect_contains(
        "mkdir under the profile",
        &String::from_utf8_lossy(&r.stderr),
        "Operation not permitted",
    )?;
    ctx.sh(&id, "touch /tmp/allowed").await?;
    ok("other syscalls are allowed");

    // allowPrivilegeEscalation: false sets no_new_privs; an added capability is there.
    let mut c = ctx.container(&pod, "nnp", &sleep)?;
    sc(&mut c)?.no_new_privs = true;
    sc(&mut c)?.capabilities = Some(cri::Capability {
        add_capabilities: vec!["SYS_TIME".into()],
        ..Default::default()
    });
    let id = ctx.run(&pod, c).await?;
    let pid = ctx.pid(&id).await?;
    expect_eq(
        "NoNewPrivs",
        host::proc_status(pid, "NoNewPrivs")?.as_str(),
        "1",
    )?;
    expect_eq(
        "NoNewPrivs (without)",
        host::proc_status(plain_pid, "NoNewPrivs")?.as_str(),
        "0",
    )?;
    let eff =
        u64::from_str_radix(&host::proc_status(pid, "CapEff")?, 16).map_err(|e| e.to_string())?;
    // CAP_SYS_TIME is 25.
    expect_eq(
        "CapEff with SYS_TIME",
        format!("{eff:016x}"),
        format!("{:016x}", caps | 1 << 25),
    )?;
    Ok(())
}

fn sc(c: &mut cri::ContainerConfig) -> R<&mut cri::LinuxContainerSecurityContext> {
    c.linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .ok_or_else(|| "no security context".to_string())
}

pub async fn update_resources(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("upd")?;
    let pod = ctx.run_pod(cfg).await?;
    let mut c = ctx.container(&pod, "upd", &["sleep", "1000"])?;
    let res = cri::LinuxContainerResources {
        memory_limit_in_bytes: 64 * MIB,
        cpu_shares: 256,
        cpu_quota: 50000,
        cpu_period: 100000,
        ..Default::default()
    };
    c.linux.get_or_insert_with(Default::default).resources = Some(res.clone());
    let id = ctx.run(&pod, c).await?;
    check_limits(ctx, &id, 64 * MIB, 50000).await?;
    // The kubelet sends the whole set of resources, changed or not.
    rpc(
        "UpdateContainerResources",
        ctx.rt
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 96 * MIB,
                    cpu_quota: 20000,
                    ..res
                }),
                ..Default::default()
            })
            .await,
    )?;
    ok("UpdateContainerResources: memory 96 MiB, quota 20 ms");
    check_limits(ctx, &id, 96 * MIB, 20000).await?;
    if ctx.systemd() {
        // The scope's unit follows, or systemd would put the old limits back on its next
        // reload of the unit.
        let pid = ctx.pid(&id).await?;
        ctx.expect_scope(
            &pod,
            &id,
            pid,
            &[
                ("MemoryMax", (96 * MIB).to_string().as_str()),
                ("CPUQuotaPerSecUSec", "200ms"),
            ],
        )?;
    }
    // The container keeps running, its processes untouched.
    expect_eq(
        "state",
        cstate(ctx.status(&id).await?.state),
        cstate(cri::ContainerState::ContainerRunning as i32),
    )?;
    Ok(())
}

pub async fn stats(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("stats")?;
    let pod = ctx.run_pod(cfg).await?;
    // Some CPU time first, and some memory held (a shell variable of 1 MiB).
    let script = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; x=$(head -c 1048576 /dev/zero | tr '\\0' x); \
                  echo ready; exec sleep 1000";
    let id = ctx
        .run(&pod, ctx.container(&pod, "stats", &["sh", "-c", script])?)
        .await?;
    // The busy loop is over once "ready" is in the log.
    let log = std::path::PathBuf::from(&ctx.pod(&pod)?.config.log_directory).join("stats_0.log");
    crate::ctx::wait_for("the container's busy loop done", 60, || {
        host::read(&log)
            .map(|s| s.contains("ready"))
            .unwrap_or(false)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = rpc(
        "ContainerStats",
        ctx.rt
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.clone(),
            })
            .await,
    )?
    .stats
    .ok_or("ContainerStats: no stats")?;
    check_stats(&id, &s)?;
    let filter = Some(cri::ContainerStatsFilter {
        pod_sandbox_id: pod.clone(),
        ..Default::default()
    });
    let l = rpc(
        "ListContainerStats",
        ctx.rt
            .list_container_stats(cri::ListContainerStatsRequest { filter })
            .await,
    )?;
    let s = l
        .stats
        .iter()
        .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == id))
        .ok_or(format!(
            "ListContainerStats of the pod lacks {}",
            short(&id)
        ))?;
    check_stats(&id, s)?;
    expect_eq(
        "containers in the pod's ListContainerStats",
        l.stats.len(),
        1,
    )?;
    Ok(())
}

fn check_stats(id: &str, s: &cri::ContainerStats) -> R<()> {
    let cpu = s
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    let ws = s
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    ensure(cpu > 0, || {
        format!("no CPU usage in the stats of {}: {s:?}", short(id))
    })?;
    ensure(ws > 0, || {
        format!("no memory working set in the stats of {}: {s:?}", short(id))
    })?;
    ok(format_args!(
        "{}: cpu {cpu} ns, memory working set {ws} bytes",
        short(id)
    ));
    Ok(())
}
