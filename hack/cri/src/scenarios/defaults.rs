//! What every Kubernetes container gets (containerd's CRI spec, the kubelet's masked and
//! read-only paths) and the pod-level settings a kubelet passes: shared IPC and /dev/shm,
//! the sandbox's /etc/hosts and /etc/hostname, masked and read-only /proc paths,
//! oom_score_adj, pod sysctls, supplemental groups, cpusets; and a privileged container.
use k8s_cri::v1 as cri;

use crate::ctx::{cg_inside, ensure, expect_contains, expect_eq, ok, Ctx};
use crate::host;
use crate::R;

pub async fn pod_defaults(ctx: &mut Ctx) -> R<()> {
    let mut cfg = ctx.pod_config("defaults")?;
    if let Some(l) = cfg.linux.as_mut() {
        // Namespaced sysctls a pod may set: one of IPC, one of the network.
        l.sysctls
            .insert("kernel.shm_rmid_forced".into(), "1".into());
        l.sysctls
            .insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
    }
    let pod = ctx.run_pod(cfg).await?;
    let one = ctx
        .run(&pod, ctx.container(&pod, "one", &["sleep", "1000"])?)
        .await?;
    let mut c = ctx.container(&pod, "two", &["sleep", "1000"])?;
    if let Some(l) = c.linux.as_mut() {
        // The kubelet's BestEffort score; restrict_oom_score_adj keeps it (it is above
        // containerd's own).
        l.resources = Some(cri::LinuxContainerResources {
            oom_score_adj: 1000,
            cpuset_cpus: "0".into(),
            ..Default::default()
        });
        if let Some(sc) = l.security_context.as_mut() {
            sc.supplemental_groups = vec![2000, 3000];
        }
    }
    let two = ctx.run(&pod, c).await?;

    // The pod's IPC namespace and its /dev/shm are the containers' both.
    ctx.sh(&one, "echo shared > /dev/shm/tong-e2e").await?;
    expect_eq(
        "/dev/shm/tong-e2e written by one, read by two",
        ctx.sh(&two, "cat /dev/shm/tong-e2e").await?.as_str(),
        "shared",
    )?;
    let (p1, p2) = (
        ctx.pid(&one).await?.to_string(),
        ctx.pid(&two).await?.to_string(),
    );
    expect_eq(
        "two's IPC namespace (one's)",
        host::ns(&p2, "ipc")?,
        host::ns(&p1, "ipc")?,
    )?;
    let shm = ctx
        .sh(&two, "grep ' /dev/shm ' /proc/self/mountinfo")
        .await?;
    expect_contains("/dev/shm mount", &shm, "shm")?;

    // The sandbox's files, bind-mounted into each container.
    expect_eq(
        "/etc/hostname",
        ctx.sh(&one, "cat /etc/hostname").await?.as_str(),
        "defaults",
    )?;
    expect_contains(
        "/etc/hosts",
        &ctx.sh(&one, "cat /etc/hosts").await?,
        "localhost",
    )?;

    // The kubelet's masked paths read as empty, /proc/sys is read-only: those of the
    // masked files this kernel has and that hold something on the host.
    for f in [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/kcore",
        "/proc/sched_debug",
    ] {
        if std::fs::metadata(f).is_ok() && !host::read(f).unwrap_or_default().is_empty() {
            expect_eq(
                &format!("{f} (masked)"),
                ctx.sh(&one, &format!("wc -c < {f}")).await?.as_str(),
                "0",
            )?;
        }
    }
    expect_eq(
        "/sys/firmware (masked)",
        ctx.sh(&one, "ls /sys/firmware | wc -l").await?.as_str(),
        "0",
    )?;
    let r = ctx
        .exec(&one, &["sh", "-c", "echo 1 > /proc/sys/kernel/panic"], 30)
        .await?;
    ensure(r.exit_code != 0, || "a write to /proc/sys succeeded".into())?;
    expect_contains(
        "write to /proc/sys",
        &String::from_utf8_lossy(&r.stderr),
        "Read-only file system",
    )?;

    // The pod's sysctls, in its namespaces (the host's values are not touched).
    expect_eq(
        "kernel.shm_rmid_forced",
        ctx.sh(&one, "cat /proc/sys/kernel/shm_rmid_forced")
            .await?
            .as_str(),
        "1",
    )?;
    expect_eq(
        "net.ipv4.ping_group_range",
        ctx.sh(&one, "cat /proc/sys/net/ipv4/ping_group_range")
            .await?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .as_str(),
        "0 2147483647",
    )?;

    expect_eq(
        "two's oom_score_adj",
        host::read(format!("/proc/{p2}/oom_score_adj"))?.trim(),
        "1000",
    )?;
    let groups = host::proc_status(p2.parse().map_err(|_| "bad pid")?, "Groups")?;
    let mut groups: Vec<&str> = groups.split_whitespace().collect();
    groups.sort();
    // The image's /etc/group may add root's own groups; the pod's must be there.
    ensure(groups.contains(&"2000") && groups.contains(&"3000"), || {
        format!("Groups of two: {groups:?}")
    })?;
    ok(format_args!(
        "two's supplemental groups {groups:?} hold 2000 and 3000"
    ));
    let (cpus, _) = cg_inside(ctx, &two, "cpuset", "cpuset.cpus", "cpuset.cpus").await?;
    expect_eq("two's cpuset.cpus", cpus.as_str(), "0")?;
    expect_eq(
        "Cpus_allowed_list",
        host::proc_status(p2.parse().map_err(|_| "bad pid")?, "Cpus_allowed_list")?.as_str(),
        "0",
    )?;
    Ok(())
}

pub async fn privileged(ctx: &mut Ctx) -> R<()> {
    let mut cfg = ctx.pod_config("priv")?;
    // A privileged container needs a privileged sandbox (containerd refuses it otherwise).
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
    }
    let pod = ctx.run_pod(cfg).await?;
    let mut c = ctx.container(&pod, "priv", &["sleep", "1000"])?;
    if let Some(sc) = c.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
        // What the kubelet sends for a privileged container: no masked or read-only path.
        sc.masked_paths.clear();
        sc.readonly_paths.clear();
    }
    let id = ctx.run(&pod, c).await?;
    let pid = ctx.pid(&id).await?;
    // Every capability the runtime itself has (root lacks some on a restricted host: a
    // runtime cannot grant what its own bounding set lacks), no seccomp filter.
    let all = host::proc_status(std::process::id(), "CapBnd")?;
    expect_eq(
        "CapEff (the runtime's bounding set)",
        host::proc_status(pid, "CapEff")?,
        all.clone(),
    )?;
    expect_eq("CapBnd", host::proc_status(pid, "CapBnd")?, all)?;
    expect_eq("Seccomp", host::proc_status(pid, "Seccomp")?.as_str(), "0")?;
    // The host's devices, and writable /sys and /proc/sys (but in its own namespaces).
    if std::fs::metadata("/dev/kmsg").is_ok() {
        ctx.sh(&id, "test -c /dev/kmsg").await?;
        ok("the host's /dev/kmsg is there");
    }
    ctx.sh(&id, "echo 1 > /proc/sys/kernel/shm_rmid_forced")
        .await?;
    ok("/proc/sys is writable");
    // (/proc files have no size: their bytes are counted.)
    let n = ctx.sh(&id, "wc -c < /proc/keys").await?;
    ensure(n != "0", || {
        "/proc/keys is masked in a privileged container".into()
    })?;
    ok(format_args!("/proc/keys is not masked ({n} bytes)"));
    Ok(())
}
