//! Less common paths of a pod: a container that cannot start, a working directory the
//! image lacks, the host's namespaces, a pid namespace targeting another container (kubectl
//! debug --target), devices, and mount propagation both ways.
use std::ffi::OsStr;

use k8s_cri::v1 as cri;

use crate::ctx::{cstate, default_ns, ensure, expect_contains, expect_eq, ok, Ctx};
use crate::host;
use crate::R;

pub async fn start_error(ctx: &mut Ctx) -> R<()> {
    let cfg = ctx.pod_config("starterr")?;
    let pod = ctx.run_pod(cfg).await?;
    for (name, cmd, text) in [
        ("missing", "/no/such/binary", "no such file or directory"),
        (
            "notinpath",
            "not-a-command",
            "executable file not found in $PATH",
        ),
    ] {
        // The runtime only runs at StartContainer (CreateContainer makes containerd's
        // container, no task).
        let id = ctx.create(&pod, ctx.container(&pod, name, &[cmd])?).await?;
        let r = ctx.start(&id).await;
        let e = r
            .err()
            .ok_or(format!("StartContainer of {cmd} succeeded"))?;
        expect_contains(&format!("{name}: StartContainer error"), &e, text)?;
        let st = ctx.status(&id).await?;
        expect_eq(
            &format!("{name}: state"),
            cstate(st.state),
            cstate(cri::ContainerState::ContainerExited as i32),
        )?;
        expect_eq(&format!("{name}: reason"), st.reason.as_str(), "StartError")?;
        expect_eq(&format!("{name}: exit code"), st.exit_code, 128)?;
        expect_contains(&format!("{name}: message"), &st.message, text)?;
    }
    // A working directory the image lacks is made (runc does, and the kubelet relies on it).
    let mut c = ctx.container(&pod, "workdir", &["sleep", "1000"])?;
    c.working_dir = "/new/work/dir".into();
    let id = ctx.run(&pod, c).await?;
    expect_eq(
        "pwd in a new working dir",
        ctx.sh(&id, "pwd").await?.as_str(),
        "/new/work/dir",
    )?;
    Ok(())
}

pub async fn host_namespaces(ctx: &mut Ctx) -> R<()> {
    // hostNetwork, hostPID and hostIPC: the kubelet sets no hostname.
    let mut cfg = ctx.pod_config("hostns")?;
    cfg.hostname = String::new();
    let node = cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        pid: cri::NamespaceMode::Node as i32,
        ipc: cri::NamespaceMode::Node as i32,
        ..Default::default()
    };
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.namespace_options = Some(node);
    }
    let pod = ctx.run_pod(cfg).await?;
    let id = ctx
        .run(&pod, ctx.container(&pod, "hostns", &["sleep", "1000"])?)
        .await?;
    let pid = ctx.pid(&id).await?.to_string();
    for kind in ["pid", "ipc", "net", "uts"] {
        expect_eq(
            &format!("{kind} namespace (the host's)"),
            host::ns(&pid, kind)?,
            host::ns("self", kind)?,
        )?;
    }
    let init = host::read("/proc/1/cmdline")?.replace('\0', " ");
    expect_eq(
        "pid 1 seen inside (the host's)",
        ctx.sh(&id, "tr '\\0' ' ' </proc/1/cmdline").await?.as_str(),
        init.trim(),
    )?;

    // kubectl debug --target: a container in the pid namespace of another one of its pod.
    let cfg = ctx.pod_config("target")?;
    let pod = ctx.run_pod(cfg).await?;
    let a = ctx
        .run(&pod, ctx.container(&pod, "a", &["sleep", "3000"])?)
        .await?;
    let mut c = ctx.container(&pod, "b", &["sleep", "1000"])?;
    if let Some(sc) = c.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Target as i32,
            target_id: a.clone(),
            ..default_ns()
        });
    }
    let b = ctx.run(&pod, c).await?;
    let (pa, pb) = (
        ctx.pid(&a).await?.to_string(),
        ctx.pid(&b).await?.to_string(),
    );
    expect_eq(
        "b's pid namespace (a's)",
        host::ns(&pb, "pid")?,
        host::ns(&pa, "pid")?,
    )?;
    ensure(host::ns(&pb, "pid")? != host::ns("self", "pid")?, || {
        "b is in the host's pid namespace".into()
    })?;
    expect_eq(
        "pid 1 seen from b (a's init)",
        ctx.sh(&b, "tr '\\0' ' ' </proc/1/cmdline").await?.as_str(),
        "sleep 3000",
    )?;
    Ok(())
}

pub async fn devices_propagation(ctx: &mut Ctx) -> R<()> {
    // A shared mount of the client's: propagation needs a shared (or slave) source.
    let prop = ctx.dir("prop")?;
    host::run(
        "mount",
        &[OsStr::new("--bind"), prop.as_os_str(), prop.as_os_str()],
    )?;
    ctx.host_mounts.push(prop.clone());
    host::run("mount", &[OsStr::new("--make-rshared"), prop.as_os_str()])?;

    let mut cfg = ctx.pod_config("devprop")?;
    // Bidirectional propagation is for privileged containers, in a privileged pod.
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
    }
    let pod = ctx.run_pod(cfg).await?;
    let mut c = ctx.container(&pod, "slave", &["sleep", "1000"])?;
    c.mounts = vec![cri::Mount {
        container_path: "/prop".into(),
        host_path: prop.display().to_string(),
        propagation: cri::MountPropagation::PropagationHostToContainer as i32,
        ..Default::default()
    }];
    c.devices = vec![cri::Device {
        container_path: "/dev/tong-null".into(),
        host_path: "/dev/null".into(),
        permissions: "rwm".into(),
    }];
    let slave = ctx.run(&pod, c).await?;
    let mut c = ctx.container(&pod, "shared", &["sleep", "1000"])?;
    c.mounts = vec![cri::Mount {
        container_path: "/prop".into(),
        host_path: prop.display().to_string(),
        propagation: cri::MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    }];
    if let Some(sc) = c.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
        sc.masked_paths.clear();
        sc.readonly_paths.clear();
    }
    let shared = ctx.run(&pod, c).await?;

    // A device of the host's, under another name, usable (device cgroup rule and node).
    expect_eq(
        "/dev/tong-null (major,minor)",
        ctx.sh(&slave, "stat -c %t,%T /dev/tong-null")
            .await?
            .as_str(),
        "1,3",
    )?;
    ctx.sh(&slave, "echo x > /dev/tong-null").await?;
    ok("/dev/tong-null is writable");

    // Host to container: a mount made on the host after the start shows inside.
    let from_host = prop.join("from-host");
    std::fs::create_dir_all(&from_host)
        .map_err(|e| format!("mkdir {}: {e}", from_host.display()))?;
    host::run(
        "mount",
        &[
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("tmpfs"),
            from_host.as_os_str(),
        ],
    )?;
    ctx.host_mounts.push(from_host.clone());
    std::fs::write(from_host.join("f"), "made-on-host\n").map_err(|e| format!("write: {e}"))?;
    for id in [&slave, &shared] {
        expect_eq(
            "the host's later mount, inside",
            ctx.sh(id, "cat /prop/from-host/f").await?.as_str(),
            "made-on-host",
        )?;
    }
    // Container to host (Bidirectional only): a mount made inside shows on the host...
    ctx.sh(&shared, "mkdir -p /prop/from-ct && mount -t tmpfs tmpfs /prop/from-ct && echo made-inside > /prop/from-ct/f")
        .await?;
    ctx.host_mounts.push(prop.join("from-ct"));
    expect_eq(
        "the container's mount, on the host",
        host::read(prop.join("from-ct/f"))?.trim(),
        "made-inside",
    )?;
    // ... and in the HostToContainer one (it receives whatever the host gets).
    expect_eq(
        "the container's mount, in the other",
        ctx.sh(&slave, "cat /prop/from-ct/f").await?.as_str(),
        "made-inside",
    )?;
    // Nothing goes back from a HostToContainer mount: slave has no right to mount, so the
    // check is its mountinfo's optional field (master:N, no shared:N).
    let mi = ctx
        .sh(&slave, "grep ' /prop ' /proc/self/mountinfo")
        .await?;
    ensure(mi.contains("master:") && !mi.contains("shared:"), || {
        format!("/prop in slave is not a slave mount: {mi}")
    })?;
    ok("/prop in the HostToContainer container is a slave mount");
    let mi = ctx
        .sh(&shared, "grep ' /prop ' /proc/self/mountinfo")
        .await?;
    ensure(mi.contains("shared:"), || {
        format!("/prop in shared is not a shared mount: {mi}")
    })?;
    ok("/prop in the Bidirectional container is a shared mount");
    Ok(())
}
