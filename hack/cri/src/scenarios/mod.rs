//! The scenarios, one per hack/e2e/cri.sh step. Each makes its own pods (Ctx::cleanup
//! removes them afterwards, pass or fail) and returns the first failed check.
mod container;
mod defaults;
mod exec;
mod lifecycle;
mod misc;
mod pod;
mod streaming;

use k8s_cri::v1 as cri;

use crate::ctx::{ensure, ok, rpc, Ctx};
use crate::R;

/// Name and what it checks, for `cri-e2e list`.
pub const LIST: &[(&str, &str)] = &[
    (
        "version",
        "Version, Status (runtime and network ready), both images present",
    ),
    (
        "pod-network",
        "a pod on the CNI network: IP in the subnet, hostname, DNS, the gateway answers",
    ),
    (
        "pod-host-network",
        "a host-network pod: the host's net and UTS namespaces, no hostname set",
    ),
    (
        "container-env-mounts",
        "env, working dir, host dirs bind-mounted read-only and read-write",
    ),
    (
        "container-resources",
        "memory limit, cpu shares and quota in the container's cgroup files",
    ),
    (
        "container-security",
        "run-as user/group, read-only rootfs, capabilities, seccomp (default, Localhost), no_new_privs",
    ),
    (
        "pod-defaults",
        "shared /dev/shm, sandbox files, masked /proc, sysctls, oom_score_adj, groups, cpuset",
    ),
    (
        "container-privileged",
        "a privileged container: every capability, no seccomp, host devices",
    ),
    (
        "container-start-error",
        "a missing command: StartError, exit 128, the runtime's message; a new working dir",
    ),
    (
        "pod-host-namespaces",
        "hostPID/hostIPC/hostNetwork, and a pid namespace targeting another container",
    ),
    (
        "container-devices-propagation",
        "a host device under another name; HostToContainer and Bidirectional mounts",
    ),
    (
        "exec-sync",
        "ExecSync output and exit code, its timeout, 8 at once, a stopped container",
    ),
    (
        "exit-code",
        "ContainerStatus of containers that exit 3 and 0",
    ),
    (
        "oom-killed",
        "a container over its memory limit: exit 137, reason OOMKilled",
    ),
    (
        "update-resources",
        "UpdateContainerResources seen in the container's cgroup files",
    ),
    (
        "stats",
        "ContainerStats and ListContainerStats of a running container",
    ),
    (
        "logs-reopen",
        "CRI log lines, split long lines, ReopenContainerLog after a rotation",
    ),
    (
        "stop-grace",
        "StopContainer: SIGTERM honoured, or SIGKILL when the grace period ends",
    ),
    (
        "restart-attempt",
        "a container's attempt 1 in the same pod after attempt 0 exited",
    ),
    (
        "pod-shared-pid",
        "a pod's shared pid namespace: an exited container leaves nothing behind",
    ),
    (
        "pod-stop-remove",
        "StopPodSandbox and RemovePodSandbox leave no process, netns, veth, cgroup",
    ),
    (
        "exec-stream",
        "Exec over the streaming server: stdout/stderr apart, exit code, stdin, in the container",
    ),
    (
        "attach-stream",
        "Attach over the streaming server: stdin_once stdin and exit, a running container's output",
    ),
    ("no-pods-left", "no pod and no container left in containerd"),
];

pub async fn run(ctx: &mut Ctx) -> R<()> {
    match ctx.o.scenario.as_str() {
        "version" => version(ctx).await,
        "pod-network" => pod::network(ctx).await,
        "pod-host-network" => pod::host_network(ctx).await,
        "container-env-mounts" => container::env_mounts(ctx).await,
        "container-resources" => container::resources(ctx).await,
        "container-security" => container::security(ctx).await,
        "pod-defaults" => defaults::pod_defaults(ctx).await,
        "container-privileged" => defaults::privileged(ctx).await,
        "container-start-error" => misc::start_error(ctx).await,
        "pod-host-namespaces" => misc::host_namespaces(ctx).await,
        "container-devices-propagation" => misc::devices_propagation(ctx).await,
        "exec-sync" => exec::exec_sync(ctx).await,
        "exit-code" => lifecycle::exit_code(ctx).await,
        "oom-killed" => lifecycle::oom_killed(ctx).await,
        "update-resources" => container::update_resources(ctx).await,
        "stats" => container::stats(ctx).await,
        "logs-reopen" => lifecycle::logs_reopen(ctx).await,
        "stop-grace" => lifecycle::stop_grace(ctx).await,
        "restart-attempt" => lifecycle::restart_attempt(ctx).await,
        "pod-shared-pid" => pod::shared_pid(ctx).await,
        "pod-stop-remove" => pod::stop_remove(ctx).await,
        "exec-stream" => streaming::exec(ctx).await,
        "attach-stream" => streaming::attach(ctx).await,
        "no-pods-left" => no_pods_left(ctx).await,
        s => Err(format!("unknown scenario {s} (cri-e2e list)")),
    }
}

async fn version(ctx: &mut Ctx) -> R<()> {
    let v = rpc(
        "Version",
        ctx.rt
            .version(cri::VersionRequest {
                version: "v1".into(),
            })
            .await,
    )?;
    println!(
        "runtime {} {} (CRI {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    let st = rpc(
        "Status",
        ctx.rt.status(cri::StatusRequest { verbose: false }).await,
    )?;
    for cond in ["RuntimeReady", "NetworkReady"] {
        let c = st
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.r#type == cond));
        ensure(c.is_some_and(|c| c.status), || {
            format!("condition {cond} is not true: {c:?}")
        })?;
        ok(format_args!("{cond}"));
    }
    // Never pulled: the script imported them, and a kubelet would only pull a missing one.
    for image in [ctx.o.image.clone(), ctx.o.pause_image.clone()] {
        let r = rpc(
            "ImageStatus",
            ctx.images
                .image_status(cri::ImageStatusRequest {
                    image: Some(cri::ImageSpec {
                        image: image.clone(),
                        ..Default::default()
                    }),
                    verbose: false,
                })
                .await,
        )?;
        ensure(r.image.is_some(), || format!("image {image} is not there"))?;
        ok(format_args!("image {image} present"));
    }
    // The script points docker.io at this host's discard port: a pull fails at once,
    // whatever image a mistake would ask for (the script checks where it went).
    let t0 = std::time::Instant::now();
    let r = ctx
        .images
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "docker.io/tong-e2e/absent:1".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let e = r.err().ok_or("PullImage of an absent image succeeded")?;
    ok(format_args!(
        "PullImage fails in {:.1?}: {}",
        t0.elapsed(),
        e.message()
    ));
    Ok(())
}

async fn no_pods_left(ctx: &mut Ctx) -> R<()> {
    let pods = rpc(
        "ListPodSandbox",
        ctx.rt
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await,
    )?;
    ensure(pods.items.is_empty(), || {
        format!(
            "pods left: {:?}",
            pods.items.iter().map(|p| &p.id).collect::<Vec<_>>()
        )
    })?;
    ok("no pod left");
    let cs = rpc(
        "ListContainers",
        ctx.rt
            .list_containers(cri::ListContainersRequest { filter: None })
            .await,
    )?;
    ensure(cs.containers.is_empty(), || {
        format!(
            "containers left: {:?}",
            cs.containers.iter().map(|c| &c.id).collect::<Vec<_>>()
        )
    })?;
    ok("no container left");
    Ok(())
}
