//! Namespaces: new vs shared with the host, joining by path, and the
//! settings that need a private namespace.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

const NS_SCRIPT: &str = "for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done";
const NS_KINDS: [&str; 5] = ["mnt", "pid", "net", "ipc", "uts"];

#[test]
fn default_config_gets_new_namespaces() {
    let env = Env::new();
    let out = env.sh(NS_SCRIPT, |_| {});
    let l: Vec<&str> = out.lines().collect();
    for (i, k) in NS_KINDS.iter().enumerate() {
        assert_ne!(l[i], host_ns(k), "{k} namespace must be new");
    }
}

#[test]
fn loopback_is_up_in_a_new_net_namespace() {
    let env = Env::new();
    let out = env.sh("ls /sys/class/net; cat /sys/class/net/lo/flags", |_| {});
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "lo", "only lo exists: {out}");
    let flags = u32::from_str_radix(l[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x1, 0x1, "IFF_UP: {out}");
    assert_eq!(flags & 0x8, 0x8, "IFF_LOOPBACK: {out}");
    let out = env.sh("ip -o addr show lo", |_| {});
    assert!(out.contains("127.0.0.1/8"), "{out}");
}

#[test]
fn only_mount_and_pid_share_the_rest_with_the_host() {
    let env = Env::new();
    let out = env.sh(&format!("{NS_SCRIPT}; hostname; echo $$"), |c| {
        set_namespaces(c, &["mount", "pid"]);
        c.as_object_mut().unwrap().remove("hostname");
    });
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0], host_ns("mnt"));
    assert_ne!(l[1], host_ns("pid"));
    assert_eq!(l[2], host_ns("net"));
    assert_eq!(l[3], host_ns("ipc"));
    assert_eq!(l[4], host_ns("uts"));
    let host_hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(l[5], host_hostname.trim());
    assert_eq!(l[6], "1");
}

#[test]
fn hostname_without_uts_namespace_is_refused() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| set_namespaces(c, &["mount", "pid"]));
    let id = env.id("c");
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has("unable to set hostname without a private UTS namespace");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
    env.assert_nothing_left(&id);
}

#[test]
fn net_sysctl_without_net_namespace_is_refused() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| {
        set_namespaces(c, &["mount", "pid", "uts"]);
        c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    });
    let id = env.id("c");
    let before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has("net.ipv4.ip_forward");
    out.stderr_has("not allowed in host network namespace");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        before,
        "the host sysctl is untouched"
    );
    env.assert_nothing_left(&id);
}

#[test]
fn ipc_sysctl_without_ipc_namespace_is_refused() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| {
        set_namespaces(c, &["mount", "pid", "uts", "network"]);
        c["linux"]["sysctl"] = json!({ "kernel.shm_rmid_forced": "1" });
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has("kernel.shm_rmid_forced");
    out.stderr_has("ipc namespace");
    env.assert_nothing_left(&id);
}

#[test]
fn masked_paths_without_mount_namespace_are_refused() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| set_namespaces(c, &["pid", "network", "uts"]));
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    // runc: "unable to restrict sys entries without a private MNT namespace"
    let e = out.stderr.to_lowercase();
    assert!(
        e.contains("mnt namespace") || e.contains("mount namespace"),
        "{out:#?}"
    );
    env.assert_nothing_left(&id);
}

/// Without a mount namespace the container shares the host's mount table, and tong leaves it
/// as it is: no mount, no propagation change, a chroot (runc mounts there and makes `/`
/// private). It touches the host's mounts if wrong, so it runs in the test VM only
/// (hack/vmtest sets TONG_IN_VM).
#[test]
fn no_mount_namespace_leaves_the_host_mount_table_alone() {
    if std::env::var_os("TONG_IN_VM").is_none() || is_runc() {
        eprintln!("skipped: runs in the test VM only");
        return;
    }
    let env = Env::new();
    let root_line = |info: &str| {
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let before = root_line(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        set_namespaces(c, &["pid", "network", "uts", "ipc"]);
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
        c["root"]["readonly"] = json!(false);
    });
    let id = env.id("c");
    let out = env.rt(&["run", "-d", "--bundle", b.path(), &id]);
    out.success();
    out.stderr_has("no mount namespace");
    let pid = env.wait_status(&id, "running")["pid"].as_i64().unwrap();
    let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(mnt.to_string_lossy(), host_ns("mnt"), "shares the host's");
    let croot = fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(croot, fs::canonicalize(b.rootfs()).unwrap(), "chrooted");
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(root_line(&info), before, "the host's / is unchanged");
    assert!(
        mounts_under(&env.base).is_empty(),
        "no mount in the rootfs: {info}"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
    // The control: a read-only root would need a remount of a host mount: refused.
    let b = env.bundle_with(&["true"], |c| {
        set_namespaces(c, &["pid", "network", "uts", "ipc"]);
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    });
    let id = env.id("ro");
    let out = env.rt(&["run", "--bundle", b.path(), &id]);
    out.failure();
    out.stderr_has("root.readonly");
    env.assert_nothing_left(&id);
}

#[test]
fn no_pid_namespace_means_host_pids() {
    let env = Env::new();
    let out = env.sh("echo $$; readlink /proc/self/ns/pid", |c| {
        set_namespaces(c, &["mount", "uts", "network", "ipc"]);
    });
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0], "1", "{out}");
    assert_eq!(l[1], host_ns("pid"));
}

/// An `ip netns` namespace removed on drop.
struct NetNs(String);

impl NetNs {
    fn new(env: &Env) -> NetNs {
        // Names under /run/netns; keep the tong-test- prefix for humans.
        let name = format!("{}netns", env.name);
        let out = host("/usr/sbin/ip", &["netns", "add", &name]);
        out.success();
        NetNs(name)
    }
    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
    fn exec(&self, args: &[&str]) -> Out {
        let mut full = vec!["netns", "exec", self.0.as_str()];
        full.extend_from_slice(args);
        host("/usr/sbin/ip", &full)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = host("/usr/sbin/ip", &["netns", "del", &self.0]);
    }
}

#[test]
fn join_network_namespace_by_path() {
    let env = Env::new();
    let ns = NetNs::new(&env);
    // (The test kernel has no dummy driver; a veth pair works everywhere.)
    ns.exec(&[
        "ip", "link", "add", "tongv0", "type", "veth", "peer", "name", "tongv1",
    ])
    .success();
    ns.exec(&["ip", "link", "set", "lo", "mtu", "1234"])
        .success();
    let ino = fs::metadata(ns.path()).unwrap().ino();
    let path = ns.path();
    let b = env.bundle(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/net; ls /sys/class/net; cat /sys/class/net/lo/mtu",
    ]);
    b.edit_config(|c| {
        set_namespaces(c, &["mount", "pid", "uts", "ipc"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "network", "path": path }));
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    let l = out.lines();
    assert_eq!(l[0], format!("net:[{ino}]"));
    assert!(l.contains(&"tongv0") && l.contains(&"tongv1"), "{out:#?}");
    assert_eq!(*l.last().unwrap(), "1234");
    env.assert_nothing_left(&id);
    // The namespace itself outlives the container.
    ns.exec(&["ip", "link", "show", "tongv0"]).success();
}

#[test]
fn join_missing_namespace_path_fails() {
    let env = Env::new();
    let missing = format!("/var/run/netns/{}missing", env.name);
    let m = missing.clone();
    let b = env.bundle_with(&["true"], |c| {
        set_namespaces(c, &["mount", "pid", "uts", "ipc"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "network", "path": m }));
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has(&missing);
    env.assert_nothing_left(&id);
}

#[test]
fn join_another_containers_namespaces() {
    let env = Env::new();
    let a = env.bundle(&["sleep", "1000"]);
    let ida = env.id("a");
    env.rt(&["run", "-d", "--bundle", a.path(), &ida]).success();
    let pid = env.wait_status(&ida, "running")["pid"].as_i64().unwrap();
    let want: Vec<String> = ["pid", "net", "ipc", "uts"]
        .iter()
        .map(|k| {
            fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();

    let b = env.bundle_with(
        &[
            "sh",
            "-c",
            "for n in pid net ipc uts; do readlink /proc/self/ns/$n; done; hostname; ps -o comm",
        ],
        |c| {
            c.as_object_mut().unwrap().remove("hostname");
            c["linux"]["namespaces"] = json!([
                { "type": "mount" },
                { "type": "pid", "path": format!("/proc/{pid}/ns/pid") },
                { "type": "network", "path": format!("/proc/{pid}/ns/net") },
                { "type": "ipc", "path": format!("/proc/{pid}/ns/ipc") },
                { "type": "uts", "path": format!("/proc/{pid}/ns/uts") },
            ]);
        },
    );
    let idb = env.id("b");
    let out = env.run(&b, &idb);
    out.success();
    let l = out.lines();
    assert_eq!(
        &l[0..4],
        want.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
    );
    assert_eq!(l[4], a.hostname, "joined uts ns carries a's hostname");
    assert!(l.contains(&"sleep"), "b sees a's processes: {out:#?}");
    env.rt(&["delete", "--force", &ida]).success();
    env.assert_nothing_left(&ida);
    env.assert_nothing_left(&idb);
}

/// A mount namespace joined by path is set up as a new one would be, as runc does (README:
/// pivot_root there moves the root of its other processes too). The namespace here is a
/// private copy of the host's held by `unshare -m`, so the host's mount table is untouched.
#[test]
fn joining_a_mount_namespace_by_path() {
    let env = Env::new();
    let mut holder = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sleep", "1000"])
        .spawn()
        .unwrap();
    let ns = format!("/proc/{}/ns/mnt", holder.id());
    let mut want = String::new();
    for _ in 0..200 {
        want = fs::read_link(&ns).unwrap().to_string_lossy().into_owned();
        if want != host_ns("mnt") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_ne!(
        want,
        host_ns("mnt"),
        "the control: the holder has its own namespace"
    );
    let b = env.bundle_with(
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/mnt; cat /proc/self/mountinfo",
        ],
        |c| {
            for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "mount" {
                    n["path"] = json!(ns);
                }
            }
        },
    );
    let id = env.id("c");
    let out = env.run(&b, &id);
    let _ = holder.kill();
    let _ = holder.wait();
    out.success();
    let l = out.lines();
    assert_eq!(l[0], want, "{out:#?}");
    // Set up as usual: its own /proc in the container's root.
    assert!(out.stdout.contains(" /proc "), "{out:#?}");
    env.assert_nothing_left(&id);
}

#[test]
fn cgroup_namespace() {
    let env = Env::new();
    let out = env.sh(
        "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup",
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "type": "cgroup" }));
        },
    );
    let l: Vec<&str> = out.lines().collect();
    let (last, cg) = l.split_last().unwrap();
    for line in cg {
        assert!(
            line.ends_with(":/"),
            "cgroup paths are / inside a cgroupns: {out}"
        );
    }
    assert_ne!(*last, host_ns("cgroup"));
}

#[test]
fn cgroup_without_namespace_shows_the_configured_path() {
    let env = Env::new();
    let b = env.bundle(&["cat", "/proc/self/cgroup"]);
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    // The memory hierarchy on v1 and hybrid hosts; the unified line on a pure v2 host.
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let key = if v2 { "0::" } else { ":memory:" };
    let mem = out
        .lines()
        .into_iter()
        .find(|l| l.contains(key))
        .expect("memory hierarchy")
        .to_string();
    assert!(mem.ends_with(&format!("{key}{}", b.cgroup)), "{out:#?}");
    env.assert_nothing_left(&id);
}

/// A new user namespace whose uids and gids 0-65535 are host ids 100000-165535.
fn user_ns_root_at_100000(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
    c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
}

#[test]
fn user_namespace_with_mappings() {
    let env = Env::new();
    let out = env.sh(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox",
        |c| {
            user_ns_root_at_100000(c);
        },
    );
    let l: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(l[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(l[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(l[2], ["0"]);
    // Host root is unmapped inside: files it owns show as the overflow uid.
    assert_eq!(l[3], ["65534"]);
}

/// With a user namespace, bind sources only the host's root can reach (below a 0700
/// directory it owns) still mount: tong opens them before the clone, as runc does. Two of
/// them (runc once had a bug with more than one), and exec sees them too.
#[test]
fn user_namespace_bind_mounts_from_inaccessible_sources() {
    let env = Env::new();
    let base = env.tempdir("private");
    let mut srcs = Vec::new();
    for n in ["one", "two"] {
        let private = base.join(n);
        fs::create_dir_all(private.join("dir")).unwrap();
        fs::write(private.join("dir/foo.txt"), format!("{n}\n")).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        srcs.push(private.join("dir").to_str().unwrap().to_string());
    }
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        user_ns_root_at_100000(c);
        for (i, s) in srcs.iter().enumerate() {
            push_mount(
                c,
                json!({"destination": format!("/tmp/mount-{i}"), "type": "bind",
                                 "source": s, "options": ["bind"]}),
            );
        }
    });
    for i in 0..2 {
        fs::create_dir_all(b.rootfs().join(format!("tmp/mount-{i}"))).unwrap();
    }
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    env.wait_status(&id, "running");
    let out = env.rt(&[
        "exec",
        &id,
        "cat",
        "/tmp/mount-0/foo.txt",
        "/tmp/mount-1/foo.txt",
    ]);
    out.success();
    assert_eq!(out.lines(), ["one", "two"], "{out:#?}");
    // The control: the host uid the container's root maps to cannot reach the source.
    let out = host(
        "setpriv",
        &[
            "--reuid",
            "100000",
            "--regid",
            "100000",
            "--clear-groups",
            "cat",
            &format!("{}/foo.txt", srcs[0]),
        ],
    );
    assert!(
        !out.ok() && out.stderr.contains("Permission denied"),
        "{out:#?}"
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn user_namespace_root_writes_as_the_mapped_host_ids() {
    let env = Env::new();
    // A host scratch dir the container's root (host uid 100000) may write.
    let scratch = env.tempdir("scratch");
    std::os::unix::fs::chown(&scratch, Some(100000), Some(100000)).unwrap();
    let host_made = scratch.join("host-made");
    fs::write(&host_made, "x\n").unwrap();
    std::os::unix::fs::chown(&host_made, Some(100005), Some(100007)).unwrap();
    let src = scratch.to_str().unwrap().to_string();
    let b = env.bundle_with(
        &["sh", "-c", "id; stat -c %u:%g /data/host-made; touch /data/made-inside && mkdir /data/dir-inside && echo made"],
        |c| {
            user_ns_root_at_100000(c);
            push_mount(c, json!({ "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"] }));
        },
    );
    // The mount point exists already: the container's root cannot create
    // it in a rootfs owned by host root.
    fs::create_dir(b.rootfs().join("data")).unwrap();
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    let l = out.lines();
    assert!(l[0].starts_with("uid=0(root) gid=0(root)"), "{out:#?}");
    assert_eq!(l[1], "5:7", "host 100005:100007 is 5:7 inside: {out:#?}");
    assert_eq!(l[2], "made", "{out:#?}");
    for f in ["made-inside", "dir-inside"] {
        let md = fs::metadata(scratch.join(f)).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (100000, 100000),
            "{f} as seen on the host"
        );
    }
    env.assert_nothing_left(&id);
}
