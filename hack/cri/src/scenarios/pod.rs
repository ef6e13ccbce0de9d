//! Pods: their network, their namespaces, and what stopping and removing them leaves.
use std::path::PathBuf;

use k8s_cri::v1 as cri;

use crate::ctx::{
    cstate, ensure, expect_contains, expect_eq, info_pid, ok, pstate, short, wait_for, Ctx,
};
use crate::host::{self, Proc};
use crate::R;

pub async fn network(ctx: &mut Ctx) -> R<()> {
    let mut cfg = ctx.pod_config("net")?;
    cfg.hostname = "tong-pod-net".into();
    cfg.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["tong-e2e.svc.cluster.local".into(), "cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let pod = ctx.run_pod(cfg).await?;
    let (st, info) = ctx.pod_status(&pod).await?;
    expect_eq(
        "pod state",
        pstate(st.state),
        pstate(cri::PodSandboxState::SandboxReady as i32),
    )?;
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    ensure(!ip.is_empty(), || "the pod has no IP".into())?;
    if let Some(subnet) = ctx.o.subnet.clone() {
        ensure(host::in_subnet(&ip, &subnet)?, || {
            format!("pod IP {ip} is not in {subnet}")
        })?;
        ok(format_args!("pod IP {ip} in {subnet}"));
    }
    let pause = info_pid(&info).ok_or("no pid in the pod's info")?;
    expect_eq(
        "the pod's runtime handler",
        info["runtimeHandler"].as_str(),
        Some(ctx.o.handler.as_str()),
    )?;
    ok(format_args!(
        "its runtime binary: {}",
        info.pointer("/runtimeOptions/binary_name")
            .unwrap_or(&info["runtimeOptions"])
    ));

    let c = ctx
        .run(&pod, ctx.container(&pod, "net", &["sleep", "1000"])?)
        .await?;
    expect_eq(
        "hostname",
        ctx.sh(&c, "hostname").await?.as_str(),
        "tong-pod-net",
    )?;
    let resolv = ctx.sh(&c, "cat /etc/resolv.conf").await?;
    expect_contains("/etc/resolv.conf", &resolv, "nameserver 10.96.0.10")?;
    expect_contains(
        "/etc/resolv.conf",
        &resolv,
        "search tong-e2e.svc.cluster.local cluster.local",
    )?;
    expect_contains("/etc/resolv.conf", &resolv, "options ndots:5")?;
    expect_contains(
        "eth0",
        &ctx.sh(&c, "ip -4 -o addr show eth0").await?,
        &format!("inet {ip}/"),
    )?;
    if let Some(subnet) = ctx.o.subnet.clone() {
        let gw = host::gateway(&subnet)?;
        ctx.sh(&c, &format!("ping -c 1 -W 5 {gw}")).await?;
        ok(format_args!("the bridge's gateway {gw} answers a ping"));
    }
    // The container joined the sandbox's network and UTS namespaces, not the host's.
    let pid = ctx.pid(&c).await?.to_string();
    for kind in ["net", "uts", "ipc"] {
        let (cns, pns, hns) = (
            host::ns(&pid, kind)?,
            host::ns(&pause.to_string(), kind)?,
            host::ns("self", kind)?,
        );
        ensure(cns == pns && cns != hns, || {
            format!("{kind} ns: container {cns}, pause {pns}, host {hns}")
        })?;
        ok(format_args!(
            "the container is in the pod's {kind} namespace"
        ));
    }
    Ok(())
}

pub async fn host_network(ctx: &mut Ctx) -> R<()> {
    let mut cfg = ctx.pod_config("hostnet")?;
    // The kubelet sets no hostname for a host-network pod: it keeps the host's UTS
    // namespace, where a runtime refuses to set one.
    cfg.hostname = String::new();
    let host_ns = cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..crate::ctx::default_ns()
    };
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.namespace_options = Some(host_ns);
    }
    let pod = ctx.run_pod(cfg).await?;
    let (st, _) = ctx.pod_status(&pod).await?;
    expect_eq(
        "pod state",
        pstate(st.state),
        pstate(cri::PodSandboxState::SandboxReady as i32),
    )?;
    expect_eq(
        "pod IP (none of its own)",
        st.network.map(|n| n.ip).unwrap_or_default().as_str(),
        "",
    )?;
    let c = ctx
        .run(&pod, ctx.container(&pod, "hostnet", &["sleep", "1000"])?)
        .await?;
    let hostname = host::read("/proc/sys/kernel/hostname")?;
    expect_eq(
        "hostname",
        ctx.sh(&c, "hostname").await?.as_str(),
        hostname.trim(),
    )?;
    let pid = ctx.pid(&c).await?.to_string();
    for kind in ["net", "uts"] {
        expect_eq(
            &format!("{kind} namespace (the host's)"),
            host::ns(&pid, kind)?,
            host::ns("self", kind)?,
        )?;
    }
    expect_contains("interfaces", &ctx.sh(&c, "ls /sys/class/net").await?, "lo")?;
    Ok(())
}

/// The host directories of container ID's cgroups, PID its init: in every hierarchy, the
/// directory of PID's cgroup when it is named after the container (`<id>` with cgroupfs,
/// `cri-containerd-<id>.scope` with systemd).
pub fn own_cgroup_dirs(pid: u32, id: &str) -> R<Vec<PathBuf>> {
    let mut v = Vec::new();
    for (ctrls, _) in host::cgroup_mounts()? {
        let c = ctrls.split(',').next().unwrap_or("");
        if let Ok(d) = host::cgroup_dir(pid, c) {
            if d.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(id))
            {
                v.push(d);
            }
        }
    }
    Ok(v)
}

pub async fn shared_pid(ctx: &mut Ctx) -> R<()> {
    let mut cfg = ctx.pod_config("sharedpid")?;
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Pod as i32,
            ..crate::ctx::default_ns()
        });
    }
    let pod = ctx.run_pod(cfg).await?;
    let b = ctx
        .run(&pod, ctx.container(&pod, "b", &["sleep", "2000"])?)
        .await?;
    // A's init leaves a child behind and exits: with a shared pid namespace the shim must
    // kill what is left in A's cgroup, as the pod's pid 1 (pause) would not.
    let a = ctx
        .create(
            &pod,
            ctx.container(
                &pod,
                "a",
                &["sh", "-c", "sleep 1001 & sleep 1; echo left-a-child"],
            )?,
        )
        .await?;
    ctx.start(&a).await?;
    let a_pid = ctx.pid(&a).await?;
    let a_dirs = own_cgroup_dirs(a_pid, &a)?;
    ensure(!a_dirs.is_empty(), || {
        "no cgroup of container a found".into()
    })?;
    let st = ctx.wait_exited(&a, 30).await?;
    expect_eq("a's exit code", st.exit_code, 0)?;
    wait_for("nothing left in a's cgroups", 10, || {
        a_dirs.iter().all(|d| host::cgroup_procs(d).is_empty())
    })
    .await?;
    let ps = ctx.sh(&b, "ps -o pid,args").await?;
    ensure(!ps.contains("sleep 1001"), || {
        format!("a's child is still there, b sees:\n{ps}")
    })?;
    ok("b no longer sees a's child");
    expect_eq(
        "pid 1 seen from b",
        ctx.sh(&b, "tr '\\0' ' ' </proc/1/cmdline").await?.as_str(),
        "/pause",
    )?;
    crate::ctx::rpc(
        "RemoveContainer",
        ctx.rt
            .remove_container(cri::RemoveContainerRequest {
                container_id: a.clone(),
            })
            .await,
    )?;
    let left: Vec<_> = a_dirs.iter().filter(|d| d.exists()).collect();
    ensure(left.is_empty(), || {
        format!("a's cgroups left after RemoveContainer: {left:?}")
    })?;
    ok(format_args!(
        "a's {} cgroup directories are gone",
        a_dirs.len()
    ));
    expect_eq(
        "b's state",
        cstate(ctx.status(&b).await?.state),
        cstate(cri::ContainerState::ContainerRunning as i32),
    )?;
    Ok(())
}

pub async fn stop_remove(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("stoprm")?;
    let pod = ctx.run_pod(cfg).await?;
    let parent = ctx.pod(&pod)?.cgroup_parent.clone();
    let (_, info) = ctx.pod_status(&pod).await?;
    let mut procs = vec![Proc::of(
        info_pid(&info).ok_or("no pid in the pod's info")?,
    )?];
    // The pod's netns (bind-mounted by containerd) and the host side of its veth.
    let netns = info
        .pointer("/runtimeSpec/linux/namespaces")
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().find(|n| n["type"] == "network"))
        .and_then(|n| n["path"].as_str())
        .map(PathBuf::from)
        .ok_or("no network namespace path in the pod's runtime spec")?;
    ok(format_args!("the pod's netns is {}", netns.display()));
    let veths: Vec<String> = info
        .pointer("/cniResult/Interfaces")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter(|(name, i)| {
                    name.starts_with("veth") && i["Sandbox"].as_str().unwrap_or("").is_empty()
                })
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    ensure(!veths.is_empty(), || {
        format!(
            "no host veth in the pod's CNI result: {}",
            info["cniResult"]
        )
    })?;
    ensure(
        veths
            .iter()
            .all(|v| host::read(format!("/sys/class/net/{v}/ifindex")).is_ok()),
        || format!("veths {veths:?} not on the host"),
    )?;
    ok(format_args!("the pod's veth {veths:?} is on the host"));

    let mut dirs = Vec::new();
    let mut ids = Vec::new();
    for (name, cmd) in [
        ("sleeper", "exec sleep 1000"),
        ("trapper", "trap 'exit 0' TERM; while :; do sleep 0.1; done"),
    ] {
        let id = ctx
            .run(&pod, ctx.container(&pod, name, &["sh", "-c", cmd])?)
            .await?;
        let pid = ctx.pid(&id).await?;
        procs.push(Proc::of(pid)?);
        dirs.extend(own_cgroup_dirs(pid, &id)?);
        ids.push(id);
    }

    ctx.stop_pod(&pod).await?;
    let left: Vec<u32> = procs.iter().filter(|p| p.alive()).map(|p| p.pid).collect();
    ensure(left.is_empty(), || {
        format!("processes of the pod alive after StopPodSandbox: {left:?}")
    })?;
    ok("StopPodSandbox: the pause process and the containers' are gone");
    let (st, _) = ctx.pod_status(&pod).await?;
    expect_eq(
        "pod state",
        pstate(st.state),
        pstate(cri::PodSandboxState::SandboxNotready as i32),
    )?;
    for id in &ids {
        let st = ctx.status(id).await?;
        ensure(
            st.state == cri::ContainerState::ContainerExited as i32,
            || format!("container {} not exited: {}", short(id), cstate(st.state)),
        )?;
    }
    ok("its containers are exited");
    let left: Vec<&String> = veths
        .iter()
        .filter(|v| host::read(format!("/sys/class/net/{v}/ifindex")).is_ok())
        .collect();
    ensure(left.is_empty(), || {
        format!("veths left after StopPodSandbox: {left:?}")
    })?;
    ok("StopPodSandbox: the veth is gone");

    ctx.remove_pod(&pod).await?;
    let pods = crate::ctx::rpc(
        "ListPodSandbox",
        ctx.rt
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await,
    )?;
    ensure(pods.items.iter().all(|p| p.id != pod), || {
        "the pod is still listed".into()
    })?;
    ensure(ctx.list_containers(&pod).await?.is_empty(), || {
        "containers of the pod still listed".into()
    })?;
    ok("RemovePodSandbox: the pod and its containers are no longer listed");
    let mi = host::read("/proc/self/mountinfo")?;
    let left: Vec<&str> = mi
        .lines()
        .filter(|l| {
            std::iter::once(&pod)
                .chain(&ids)
                .any(|id| l.contains(id.as_str()))
        })
        .collect();
    ensure(left.is_empty(), || {
        format!("mounts of the pod left: {left:?}")
    })?;
    ok("no mount of the pod or its containers left (rootfs, shm, hostname, hosts, resolv.conf)");
    ensure(!crate::ctx::exists(&netns), || {
        format!("netns {} left", netns.display())
    })?;
    ok("the netns is gone");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    ensure(left.is_empty(), || {
        format!("container cgroups left: {left:?}")
    })?;
    ok(format_args!(
        "the containers' {} cgroup directories are gone",
        dirs.len()
    ));
    // remove_pod removed the pod's own cgroup (the kubelet's part), having found it empty.
    if !ctx.systemd() && !parent.is_empty() {
        let left = host::cgroup_dirs_named(&parent)?;
        ensure(left.is_empty(), || format!("pod cgroups left: {left:?}"))?;
        ok("the pod's cgroup held nothing more and is removed");
    } else if ctx.systemd() {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(host::slice_cgroup(&parent));
        ensure(!dir.exists(), || format!("{} left", dir.display()))?;
        ok(format_args!(
            "the pod's slice {parent} held no scope any more and is stopped"
        ));
    }
    Ok(())
}
