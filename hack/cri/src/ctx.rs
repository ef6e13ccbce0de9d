//! The kubelet's side of a scenario: the CRI clients, the pods made so far (removed by
//! `cleanup` whatever happened), and the calls and checks the scenarios share.
use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::time::{sleep, Instant};
use tonic::transport::Channel;

use crate::host;
use crate::{Opts, R};

/// A gRPC answer, or the call's name with the server's message.
pub fn rpc<T>(what: &str, r: Result<tonic::Response<T>, tonic::Status>) -> R<T> {
    r.map(|r| r.into_inner())
        .map_err(|s| format!("{what}: {} (code {:?})", s.message(), s.code()))
}

// ------------------------------------------------------------------ checks

/// One check passed: said, so that the step's output shows what was checked.
pub fn ok(msg: impl Display) {
    println!("  ok: {msg}");
}

pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R<()> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub fn expect_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> R<()> {
    ensure(got == want, || {
        format!("{what}: expected {want:?}, got {got:?}")
    })?;
    ok(format_args!("{what} = {got:?}"));
    Ok(())
}

pub fn expect_contains(what: &str, hay: &str, needle: &str) -> R<()> {
    ensure(hay.contains(needle), || {
        format!("{what}: {needle:?} not in {hay:?}")
    })?;
    ok(format_args!("{what} has {needle:?}"));
    Ok(())
}

// ------------------------------------------------------------------ context

pub struct Pod {
    pub id: String,
    /// The pod's cgroup parent, as given in its config.
    pub cgroup_parent: String,
    pub config: cri::PodSandboxConfig,
}

pub struct Ctx {
    pub rt: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
    pub o: Opts,
    pods: Vec<Pod>,
    seq: u32,
    /// Host mount points a scenario made (or that a container propagated to the host):
    /// unmounted by the cleanup, after the pods, last first.
    pub host_mounts: Vec<PathBuf>,
}

/// The kubelet's defaults for a pod's namespaces: network and IPC of the pod, a pid
/// namespace per container (v1.PodSpec's default; the CRI default would be POD).
pub fn default_ns() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The kubelet's masked and read-only paths of a container with the Default proc mount
/// (k8s.io/kubernetes pkg/securitycontext), which it always sends but for privileged ones.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

impl Ctx {
    pub fn new(ch: Channel, o: Opts) -> Ctx {
        Ctx {
            rt: RuntimeServiceClient::new(ch.clone()),
            images: ImageServiceClient::new(ch),
            o,
            pods: Vec::new(),
            seq: 0,
            host_mounts: Vec::new(),
        }
    }

    pub fn systemd(&self) -> bool {
        self.o.cgroup_parent.ends_with(".slice")
    }

    /// A directory of the scenario's under --workdir.
    pub fn dir(&self, name: &str) -> R<PathBuf> {
        let d = self.o.workdir.join(&self.o.scenario).join(name);
        std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        Ok(d)
    }

    /// Appends a pod's or container's id (or a pod's slice) to WORKDIR/ids: with the systemd
    /// driver, hack/e2e/cri.sh counts only the units named after them as the run's (a host's
    /// own containerd makes cri-containerd-<id>.scope units too).
    fn record(&self, id: &str) -> R<()> {
        use std::io::Write;
        let path = self.o.workdir.join("ids");
        std::fs::create_dir_all(&self.o.workdir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            })
            .and_then(|mut f| writeln!(f, "{id}"))
            .map_err(|e| format!("append to {}: {e}", path.display()))
    }

    /// A pod's config as a kubelet makes it: metadata, hostname NAME, a log directory, the
    /// cgroup parent of the pod (see Opts::cgroup_parent), the default namespaces.
    pub fn pod_config(&mut self, name: &str) -> R<cri::PodSandboxConfig> {
        self.seq += 1;
        let full = format!("{}-{name}", self.o.scenario);
        let cgroup_parent = if self.o.cgroup_parent.is_empty() {
            String::new()
        } else if let Some(slice) = self.o.cgroup_parent.strip_suffix(".slice") {
            // A dash nests slices: x-pod.slice is a child of x.slice.
            format!("{slice}-{}.slice", full.replace('-', "_"))
        } else {
            format!("{}/{full}", self.o.cgroup_parent.trim_end_matches('/'))
        };
        Ok(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: full.clone(),
                uid: format!("{}-{}-{}", full, std::process::id(), self.seq),
                namespace: "tong-e2e".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.dir(&format!("logs-{name}"))?.display().to_string(),
            labels: HashMap::from([("tong-e2e".into(), self.o.scenario.clone())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(default_ns()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub async fn run_pod(&mut self, config: cri::PodSandboxConfig) -> R<String> {
        let r = rpc(
            "RunPodSandbox",
            self.rt
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: self.o.handler.clone(),
                })
                .await,
        )?;
        let cgroup_parent = config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.clone())
            .unwrap_or_default();
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.record(&r.pod_sandbox_id)?;
        if cgroup_parent.ends_with(".slice") {
            self.record(&cgroup_parent)?;
        }
        self.pods.push(Pod {
            id: r.pod_sandbox_id.clone(),
            cgroup_parent,
            config,
        });
        ok(format_args!(
            "pod {name} runs ({})",
            short(&r.pod_sandbox_id)
        ));
        Ok(r.pod_sandbox_id)
    }

    pub fn pod(&self, id: &str) -> R<&Pod> {
        self.pods
            .iter()
            .find(|p| p.id == id)
            .ok_or(format!("no pod {id} of this run"))
    }

    /// A container's config: the test image, COMMAND, a log file NAME_0.log in the pod's
    /// log directory, the pod's namespaces.
    pub fn container(&self, pod: &str, name: &str, command: &[&str]) -> R<cri::ContainerConfig> {
        let ns = self
            .pod(pod)?
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_else(default_ns);
        Ok(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: self.o.image.clone(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}_0.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(cri::LinuxContainerResources::default()),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(ns),
                    masked_paths: MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                    readonly_paths: READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
    }

    pub async fn create(&mut self, pod: &str, config: cri::ContainerConfig) -> R<String> {
        let sandbox_config = Some(self.pod(pod)?.config.clone());
        let name = config
            .metadata
            .as_ref()
            .map(|m| format!("{}.{}", m.name, m.attempt))
            .unwrap_or_default();
        let r = rpc(
            "CreateContainer",
            self.rt
                .create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: pod.into(),
                    config: Some(config),
                    sandbox_config,
                })
                .await,
        )
        .map_err(|e| format!("{name}: {e}"))?;
        self.record(&r.container_id)?;
        Ok(r.container_id)
    }

    pub async fn start(&mut self, id: &str) -> R<()> {
        rpc(
            "StartContainer",
            self.rt
                .start_container(cri::StartContainerRequest {
                    container_id: id.into(),
                })
                .await,
        )?;
        Ok(())
    }

    /// CreateContainer and StartContainer.
    pub async fn run(&mut self, pod: &str, config: cri::ContainerConfig) -> R<String> {
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let id = self.create(pod, config).await?;
        self.start(&id).await.map_err(|e| format!("{name}: {e}"))?;
        ok(format_args!("container {name} started ({})", short(&id)));
        Ok(id)
    }

    pub async fn status(&mut self, id: &str) -> R<cri::ContainerStatus> {
        self.status_verbose(id).await.map(|(s, _)| s)
    }

    /// ContainerStatus with containerd's verbose info (its "info" JSON: pid, runtimeSpec).
    pub async fn status_verbose(
        &mut self,
        id: &str,
    ) -> R<(cri::ContainerStatus, serde_json::Value)> {
        let r = rpc(
            "ContainerStatus",
            self.rt
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: true,
                })
                .await,
        )?;
        let info = match r.info.get("info") {
            Some(s) => {
                serde_json::from_str(s).map_err(|e| format!("ContainerStatus info of {id}: {e}"))?
            }
            None => serde_json::Value::Null,
        };
        Ok((
            r.status
                .ok_or(format!("ContainerStatus of {id}: no status"))?,
            info,
        ))
    }

    /// The host pid of a running container's init.
    pub async fn pid(&mut self, id: &str) -> R<u32> {
        let (_, info) = self.status_verbose(id).await?;
        info_pid(&info).ok_or(format!(
            "no pid in the ContainerStatus info of {}",
            short(id)
        ))
    }

    /// Polls ContainerStatus until the container has exited.
    pub async fn wait_exited(&mut self, id: &str, secs: u64) -> R<cri::ContainerStatus> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let st = self.status(id).await?;
            if st.state == cri::ContainerState::ContainerExited as i32 {
                return Ok(st);
            }
            if Instant::now() > end {
                return Err(format!(
                    "container {} has not exited after {secs}s (state {})",
                    short(id),
                    cstate(st.state)
                ));
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn exec(&mut self, id: &str, cmd: &[&str], timeout: i64) -> R<cri::ExecSyncResponse> {
        rpc(
            "ExecSync",
            self.rt
                .exec_sync(cri::ExecSyncRequest {
                    container_id: id.into(),
                    cmd: cmd.iter().map(|s| s.to_string()).collect(),
                    timeout,
                })
                .await,
        )
    }

    /// `sh -c SCRIPT` in a container, which must exit 0; its stdout, trimmed.
    pub async fn sh(&mut self, id: &str, script: &str) -> R<String> {
        let r = self.exec(id, &["sh", "-c", script], 30).await?;
        ensure(r.exit_code == 0, || {
            format!(
                "exec `{script}` in {}: exit {}, stdout {:?}, stderr {:?}",
                short(id),
                r.exit_code,
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            )
        })?;
        Ok(String::from_utf8_lossy(&r.stdout).trim().to_string())
    }

    /// PodSandboxStatus with containerd's verbose info (pid, runtimeSpec, cniResult).
    pub async fn pod_status(&mut self, id: &str) -> R<(cri::PodSandboxStatus, serde_json::Value)> {
        let r = rpc(
            "PodSandboxStatus",
            self.rt
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.into(),
                    verbose: true,
                })
                .await,
        )?;
        let info = match r.info.get("info") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| format!("PodSandboxStatus info of {id}: {e}"))?,
            None => serde_json::Value::Null,
        };
        Ok((
            r.status
                .ok_or(format!("PodSandboxStatus of {id}: no status"))?,
            info,
        ))
    }

    pub async fn list_containers(&mut self, pod: &str) -> R<Vec<cri::Container>> {
        let filter = Some(cri::ContainerFilter {
            pod_sandbox_id: pod.into(),
            ..Default::default()
        });
        Ok(rpc(
            "ListContainers",
            self.rt
                .list_containers(cri::ListContainersRequest { filter })
                .await,
        )?
        .containers)
    }

    pub async fn stop_pod(&mut self, id: &str) -> R<()> {
        rpc(
            "StopPodSandbox",
            self.rt
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.into(),
                })
                .await,
        )?;
        Ok(())
    }

    /// RemovePodSandbox, then what the kubelet does after it: the pod's cgroup goes (it must
    /// hold no container's cgroup any more).
    pub async fn remove_pod(&mut self, id: &str) -> R<()> {
        rpc(
            "RemovePodSandbox",
            self.rt
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.into(),
                })
                .await,
        )?;
        let Some(i) = self.pods.iter().position(|p| p.id == id) else {
            return Ok(());
        };
        let pod = self.pods.remove(i);
        self.remove_pod_cgroup(&pod.cgroup_parent).await
    }

    async fn remove_pod_cgroup(&self, parent: &str) -> R<()> {
        if parent.is_empty() {
            return Ok(());
        }
        if self.systemd() {
            // The runtime stops its containers' scopes; the slice itself is the kubelet's to
            // stop, which would take any scope left in it along: there must be none. (systemd
            // may still be removing the last scope's cgroup for a moment.)
            let dir = Path::new("/sys/fs/cgroup").join(host::slice_cgroup(parent));
            let mut tries = 0;
            while !host::cgroup_children(&dir).is_empty() {
                tries += 1;
                if tries > 50 {
                    return Err(format!(
                        "container scopes left in the pod's slice {parent}: {:?}",
                        host::cgroup_children(&dir)
                    ));
                }
                sleep(Duration::from_millis(100)).await;
            }
            let st = std::process::Command::new("systemctl")
                .args(["stop", parent])
                .status()
                .map_err(|e| format!("systemctl stop {parent}: {e}"))?;
            ensure(st.success(), || format!("systemctl stop {parent}: {st}"))?;
            return ensure(!dir.exists(), || {
                format!("{} is left after systemctl stop {parent}", dir.display())
            });
        }
        for d in host::cgroup_dirs_named(parent)? {
            let children = host::cgroup_children(&d);
            ensure(children.is_empty(), || {
                format!("container cgroups left in the pod's: {children:?}")
            })?;
            // The last container's exit may still be leaving the cgroup (EBUSY) for a moment.
            let mut tries = 0;
            while let Err(e) = std::fs::remove_dir(&d) {
                // The same hierarchy may be mounted twice (hack/bench.sh binds them again
                // in its own namespace): gone through the other mount is gone.
                if e.kind() == std::io::ErrorKind::NotFound {
                    break;
                }
                tries += 1;
                if tries > 50 {
                    return Err(format!(
                        "rmdir {}: {e} (procs {:?})",
                        d.display(),
                        host::cgroup_procs(&d)
                    ));
                }
                sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// With the systemd driver: container ID, PID its init, runs in the active scope
    /// cri-containerd-<ID>.scope, in its pod's slice, a unit with PROPS (name, value as
    /// `systemctl show` prints it).
    pub fn expect_scope(&self, pod: &str, id: &str, pid: u32, props: &[(&str, &str)]) -> R<()> {
        let slice = &self.pod(pod)?.cgroup_parent;
        let unit = format!("cri-containerd-{id}.scope");
        let cg = host::read(format!("/proc/{pid}/cgroup"))?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .ok_or(format!("no cgroup v2 line in /proc/{pid}/cgroup"))?;
        expect_eq(
            "the container's cgroup",
            cg.as_str(),
            format!("/{}/{unit}", host::slice_cgroup(slice)).as_str(),
        )?;
        for (prop, want) in [
            ("ActiveState", "active"),
            ("SubState", "running"),
            ("ControlGroup", cg.as_str()),
            ("Slice", slice.as_str()),
        ]
        .iter()
        .chain(props)
        {
            expect_eq(
                &format!("cri-containerd-{}.scope {prop}", short(id)),
                host::unit_prop(&unit, prop)?.as_str(),
                *want,
            )?;
        }
        Ok(())
    }

    /// After a failed check, before the cleanup: the state of every container of the
    /// scenario's pods, with containerd's reason and message (a runtime's error text).
    pub async fn dump(&mut self) {
        for pod in self.pods.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
            let Ok(list) = self.list_containers(&pod).await else {
                continue;
            };
            for c in list {
                let name = c
                    .metadata
                    .as_ref()
                    .map(|m| format!("{}.{}", m.name, m.attempt))
                    .unwrap_or_default();
                match self.status(&c.id).await {
                    Ok(st) => println!(
                        "  state: pod {} container {name} ({}): {}, exit {}, reason {:?}, message {:?}",
                        short(&pod),
                        short(&c.id),
                        cstate(st.state),
                        st.exit_code,
                        st.reason,
                        st.message
                    ),
                    Err(e) => println!("  state: pod {} container {name}: {e}", short(&pod)),
                }
            }
        }
    }

    /// Stops and removes every pod of the run that is still there, removing its containers
    /// with it; run after every scenario, failed or not.
    pub async fn cleanup(&mut self) -> R<()> {
        let mut errs = Vec::new();
        for id in self.pods.iter().map(|p| p.id.clone()).collect::<Vec<_>>() {
            if let Err(e) = self.stop_pod(&id).await {
                errs.push(format!("cleanup: {e}"));
            }
            if let Err(e) = self.remove_pod(&id).await {
                errs.push(format!("cleanup: {e}"));
            }
        }
        while let Some(m) = self.host_mounts.pop() {
            if host::is_mount_point(&m) {
                if let Err(e) = host::run("umount", &[m.as_os_str()]) {
                    errs.push(format!("cleanup: {e}"));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}

/// The "pid" of a ContainerStatus or PodSandboxStatus verbose info.
pub fn info_pid(info: &serde_json::Value) -> Option<u32> {
    info.get("pid")?
        .as_u64()
        .filter(|p| *p > 0)
        .map(|p| p as u32)
}

/// A container state's name (CONTAINER_RUNNING), for messages.
pub fn cstate(s: i32) -> String {
    cri::ContainerState::try_from(s)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// A pod state's name (SANDBOX_READY), for messages.
pub fn pstate(s: i32) -> String {
    cri::PodSandboxState::try_from(s)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// The first 12 characters of an id, as `crictl ps` shows them.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Reads a file of a container's cgroup from inside it: cgroup v1's
/// /sys/fs/cgroup/CONTROLLER/V1FILE or, on a cgroup v2 host, /sys/fs/cgroup/V2FILE
/// (containerd gives each container a cgroup namespace there). Ok((value, is_v2)).
pub async fn cg_inside(
    ctx: &mut Ctx,
    id: &str,
    controller: &str,
    v1file: &str,
    v2file: &str,
) -> R<(String, bool)> {
    let out = ctx
        .sh(
            id,
            &format!(
                "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo v2; cat /sys/fs/cgroup/{v2file}; \
                 else echo v1; cat /sys/fs/cgroup/{controller}/{v1file}; fi"
            ),
        )
        .await?;
    let (v, val) = out.split_once('\n').ok_or(format!(
        "cannot read the cgroup file in {}: {out:?}",
        short(id)
    ))?;
    Ok((val.trim().to_string(), v == "v2"))
}

/// Polls COND every 100 ms for up to SECS seconds.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> R<()> {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > end {
            return Err(format!("timed out after {secs}s waiting for {what}"));
        }
        sleep(Duration::from_millis(100)).await;
    }
    ok(what);
    Ok(())
}

pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}
