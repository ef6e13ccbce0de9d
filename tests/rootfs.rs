//! The container's filesystem: default mounts, read-only root, masked and
//! read-only paths, /dev, bind/tmpfs mounts, symlink escapes, --no-pivot.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::Path;

fn mountinfo_of(env: &Env, edit: impl FnOnce(&mut Value)) -> Vec<MountInfo> {
    parse_mountinfo(&env.sh("cat /proc/self/mountinfo", edit))
}

#[test]
fn default_mounts() {
    let env = Env::new();
    let ms = mountinfo_of(&env, |_| {});

    let root = find_mount(&ms, "/");
    assert!(
        root.opts.contains(&"ro".to_string()),
        "root.readonly: {root:?}"
    );

    let proc_ = find_mount(&ms, "/proc");
    assert_eq!(proc_.fstype, "proc");

    let dev = find_mount(&ms, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(dev.has_opt("nosuid") && dev.has_opt("mode=755"), "{dev:?}");
    assert!(dev.has_opt("size=65536k"), "{dev:?}");

    let pts = find_mount(&ms, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for o in ["nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666"] {
        assert!(pts.has_opt(o), "/dev/pts lacks {o}: {pts:?}");
    }

    let shm = find_mount(&ms, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    for o in ["nosuid", "noexec", "nodev", "size=65536k"] {
        assert!(shm.has_opt(o), "/dev/shm lacks {o}: {shm:?}");
    }

    let mq = find_mount(&ms, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    for o in ["nosuid", "noexec", "nodev"] {
        assert!(mq.has_opt(o), "/dev/mqueue lacks {o}: {mq:?}");
    }

    let sys = find_mount(&ms, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    for o in ["ro", "nosuid", "noexec", "nodev"] {
        assert!(sys.opts.contains(&o.to_string()), "/sys lacks {o}: {sys:?}");
    }

    // /sys/fs/cgroup is mounted (on this hybrid host runc uses a tmpfs with
    // one read-only bind per controller, showing the container's cgroup).
    assert!(
        ms.iter().any(|m| m.mount_point == "/sys/fs/cgroup"),
        "no /sys/fs/cgroup mount: {ms:#?}"
    );
    let mem = ms.iter().find(|m| m.mount_point == "/sys/fs/cgroup/memory");
    if let Some(mem) = mem {
        assert!(mem.opts.contains(&"ro".to_string()), "{mem:?}");
        assert!(mem.root.starts_with("/tong-test-"), "{mem:?}");
    }
}

#[test]
fn readonly_root() {
    let env = Env::new();
    let out = env.run_with(&["sh", "-c", "touch /newfile"], |_| {});
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Read-only file system"), "{out:#?}");

    // Writable root: the file lands in the bundle's rootfs.
    let b = env.bundle_with(&["sh", "-c", "echo hi > /newfile"], |c| {
        c["root"]["readonly"] = json!(false)
    });
    let id = env.id("rw");
    env.run(&b, &id).success();
    assert_eq!(
        fs::read_to_string(b.rootfs().join("newfile")).unwrap(),
        "hi\n"
    );
    let ms = mountinfo_of(&env, |c| c["root"]["readonly"] = json!(false));
    assert!(find_mount(&ms, "/").opts.contains(&"rw".to_string()));
}

#[test]
fn masked_paths() {
    let env = Env::new();
    let mut script = String::from(
        "stat -c '%F %t:%T' /proc/keys /proc/timer_list; \
         wc -c < /proc/keys; ls -A /sys/firmware | wc -l; ls -A /proc/acpi | wc -l; \
         touch /sys/firmware/x 2>&1; echo; ",
    );
    let has_kcore = Path::new("/proc/kcore").exists();
    if has_kcore {
        script.push_str("wc -c < /proc/kcore;");
    }
    let out = env.sh(&script, |_| {});
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(
        l[0], "character special file 1:3",
        "/proc/keys is /dev/null: {out}"
    );
    assert_eq!(l[1], "character special file 1:3", "{out}");
    assert_eq!(l[2].trim(), "0", "masked file reads empty: {out}");
    assert_eq!(l[3].trim(), "0", "/sys/firmware is empty: {out}");
    assert_eq!(l[4].trim(), "0", "/proc/acpi is empty: {out}");
    assert!(l[5].contains("Read-only file system"), "{out}");
    if has_kcore {
        // After touch's error and the blank line from `echo`.
        assert_eq!(
            l.last().map(|s| s.trim()),
            Some("0"),
            "/proc/kcore reads empty: {out}"
        );
    }

    let ms = mountinfo_of(&env, |_| {});
    let fw = find_mount(&ms, "/sys/firmware");
    assert_eq!(fw.fstype, "tmpfs");
    assert!(fw.opts.contains(&"ro".to_string()), "{fw:?}");
}

#[test]
fn masked_path_that_does_not_exist_is_ignored() {
    let env = Env::new();
    let out = env.sh("echo ok", |c| {
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/proc/does-not-exist"));
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/proc/also-missing"));
    });
    assert_eq!(out, "ok\n");
}

#[test]
fn readonly_paths() {
    let env = Env::new();
    let out = env.run_with(
        &["sh", "-c", "echo other > /proc/sys/kernel/hostname"],
        |_| {},
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Read-only file system"), "{out:#?}");

    let ms = mountinfo_of(&env, |_| {});
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        if !Path::new(p).exists() {
            continue;
        }
        let m = find_mount(&ms, p);
        assert!(m.opts.contains(&"ro".to_string()), "{p} not ro: {m:?}");
    }
}

#[test]
fn default_devices() {
    let env = Env::new();
    let out = env.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done; \
         echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c; \
         head -c 3 /dev/zero | od -An -tx1",
        |_| {},
    );
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "/dev/fd /proc/self/fd",
        "/dev/stdin /proc/self/fd/0",
        "/dev/stdout /proc/self/fd/1",
        "/dev/stderr /proc/self/fd/2",
        "/dev/ptmx pts/ptmx",
        "null-ok",
        "4",
        "00 00 00",
    ];
    assert_eq!(l, want, "{out}");
}

#[test]
fn extra_device_node() {
    let env = Env::new();
    let out = env.sh(
        "stat -c '%F %t:%T %a %u:%g' /dev/kmsg /dev/tong-null",
        |c| {
            c["linux"]["devices"] = json!([
                { "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                  "fileMode": 0o640, "uid": 1000, "gid": 2000 },
                { "path": "/dev/tong-null", "type": "c", "major": 1, "minor": 3,
                  "fileMode": 0o600, "uid": 0, "gid": 0 },
            ]);
        },
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "character special file 1:b 640 1000:2000",
            "character special file 1:3 600 0:0"
        ]
    );
}

#[test]
fn bind_mounts_rw_and_ro() {
    let env = Env::new();
    let host = env.tempdir("data");
    fs::write(host.join("in.txt"), "from host\n").unwrap();
    let h = host.to_str().unwrap().to_string();
    let out = env.sh(
        "cat /data/in.txt; echo from container > /data/out.txt; \
         cat /rodata/in.txt; touch /rodata/nope 2>&1; true",
        |c| {
            push_mount(
                c,
                json!({ "destination": "/data", "type": "bind", "source": h,
                                  "options": ["rbind", "rw"] }),
            );
            push_mount(
                c,
                json!({ "destination": "/rodata", "type": "bind", "source": h,
                                  "options": ["rbind", "ro"] }),
            );
        },
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "from host");
    assert_eq!(l[1], "from host");
    assert!(l[2].contains("Read-only file system"), "{out}");
    assert_eq!(
        fs::read_to_string(host.join("out.txt")).unwrap(),
        "from container\n"
    );
    assert!(!host.join("nope").exists());
    // The host side is untouched by the container's mounts.
    assert!(mounts_under(&host).is_empty());
}

#[test]
fn bind_mount_of_a_file() {
    let env = Env::new();
    let host = env.tempdir("file");
    let f = host.join("motd");
    fs::write(&f, "message of the day\n").unwrap();
    let src = f.to_str().unwrap().to_string();
    let out = env.sh("cat /etc/motd", |c| {
        push_mount(
            c,
            json!({ "destination": "/etc/motd", "type": "bind", "source": src,
                              "options": ["bind", "ro"] }),
        );
    });
    assert_eq!(out, "message of the day\n");
}

#[test]
fn bind_mount_missing_source_fails() {
    let env = Env::new();
    let missing = env.base.join("no-such-dir");
    let m = missing.to_str().unwrap().to_string();
    let b = env.bundle_with(&["true"], |c| {
        push_mount(
            c,
            json!({ "destination": "/data", "type": "bind", "source": m,
                              "options": ["rbind"] }),
        );
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    out.stderr_has(&m);
    env.assert_nothing_left(&id);
}

#[test]
fn tmpfs_with_options() {
    let env = Env::new();
    let ms = mountinfo_of(&env, |c| {
        push_mount(
            c,
            json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "nodev", "size=1m", "mode=700"] }),
        );
    });
    let m = find_mount(&ms, "/scratch");
    assert_eq!(m.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "size=1024k", "mode=700"] {
        assert!(m.has_opt(o), "/scratch lacks {o}: {m:?}");
    }
    let out = env.sh(
        "stat -c %a /scratch; echo x > /scratch/f && cat /scratch/f",
        |c| {
            push_mount(
                c,
                json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=1m", "mode=700"] }),
            );
        },
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["700", "x"]);
}

#[test]
fn tmpfs_tmpcopyup_keeps_content() {
    let env = Env::new();
    let out = env.sh(
        "cat /etc/passwd; echo new > /etc/new && cat /etc/new; grep ' /etc ' /proc/self/mountinfo",
        |c| {
            push_mount(
                c,
                json!({ "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["tmpcopyup", "size=1m"] }),
            );
        },
    );
    assert!(out.starts_with(PASSWD), "{out}");
    let rest = &out[PASSWD.len()..];
    let l: Vec<&str> = rest.lines().collect();
    assert_eq!(l[0], "new");
    assert!(l[1].contains(" - tmpfs "), "/etc is a tmpfs: {out}");
}

#[test]
fn rro_is_recursive() {
    let env = Env::new();
    let host = env.tempdir("rro");
    let sub = host.join("sub");
    fs::create_dir(&sub).unwrap();
    // A host submount under the bind source (removed by Env's cleanup).
    host_mount_tmpfs(&sub);
    let h = host.to_str().unwrap().to_string();
    let out = env.run_with(
        &[
            "sh",
            "-c",
            "touch /data/top 2>&1; touch /data/sub/inner 2>&1; grep ' /data' /proc/self/mountinfo",
        ],
        |c| {
            push_mount(
                c,
                json!({ "destination": "/data", "type": "bind", "source": h,
                                  "options": ["rbind", "rro"] }),
            );
        },
    );
    unmount(&sub);
    out.success();
    let l: Vec<&str> = out.lines();
    assert!(l[0].contains("Read-only file system"), "{out:#?}");
    assert!(
        l[1].contains("Read-only file system"),
        "submount must be ro too: {out:#?}"
    );
    let ms = parse_mountinfo(&l[2..].join("\n"));
    assert_eq!(ms.len(), 2, "{out:#?}");
    for m in &ms {
        assert!(m.opts.contains(&"ro".to_string()), "{m:?}");
    }
    assert!(!sub.join("inner").exists());
}

fn host_mount_tmpfs(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let t = std::ffi::CString::new("tmpfs").unwrap();
    let o = std::ffi::CString::new("size=1m").unwrap();
    let r = unsafe {
        libc::mount(
            t.as_ptr(),
            c.as_ptr(),
            t.as_ptr(),
            0,
            o.as_ptr() as *const libc::c_void,
        )
    };
    assert_eq!(r, 0, "mount tmpfs on {}", p.display());
}

fn unmount(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

#[test]
fn mount_destination_symlinks_stay_inside_rootfs() {
    let env = Env::new();
    // Victims live in this env's scratch dir on the host.
    let victim_rel = env.tempdir("victim-rel");
    let victim_abs = env.tempdir("victim-abs");
    let b = env.bundle_with(&["sleep", "1000"], |c| {
        push_mount(
            c,
            json!({ "destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=1m"] }),
        );
        push_mount(
            c,
            json!({ "destination": "/evil2", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=2m"] }),
        );
        push_mount(
            c,
            json!({ "destination": "/evil3/x", "type": "tmpfs", "source": "tmpfs",
                              "options": ["size=3m"] }),
        );
    });
    let r = b.rootfs();
    // /evil -> /  (so /evil/sub must become <rootfs>/sub, not host /sub)
    std::os::unix::fs::symlink("/", r.join("evil")).unwrap();
    // /evil2 -> ../../../../../../../..<victim_rel>
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", victim_rel.display()),
        r.join("evil2"),
    )
    .unwrap();
    // /evil3 -> <victim_abs> (absolute host path)
    std::os::unix::fs::symlink(&victim_abs, r.join("evil3")).unwrap();

    let id = env.id("c");
    let host_sub_before = Path::new("/sub").exists();
    env.create(&b, &id);
    let pid = env.state(&id)["pid"].as_i64().unwrap();

    // Nothing was mounted on (or created in) the host paths.
    assert!(mounts_under(&victim_rel).is_empty());
    assert!(mounts_under(&victim_abs).is_empty());
    assert!(host_mountinfo_mentioning(" /sub ").is_empty());
    assert_eq!(Path::new("/sub").exists(), host_sub_before);
    assert_eq!(fs::read_dir(&victim_rel).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&victim_abs).unwrap().count(), 0);

    // Inside, the mounts landed at the in-rootfs resolution of the links.
    let ms = parse_mountinfo(&fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap());
    let sizes: Vec<(String, String)> = ms
        .iter()
        .filter(|m| m.fstype == "tmpfs")
        .filter_map(|m| {
            m.super_opts
                .iter()
                .find(|o| o.starts_with("size=") && o.ends_with("k") && o.len() <= 10)
                .map(|o| (m.mount_point.clone(), o.clone()))
        })
        .filter(|(_, s)| ["size=1024k", "size=2048k", "size=3072k"].contains(&s.as_str()))
        .collect();
    assert!(
        sizes.contains(&("/sub".into(), "size=1024k".into())),
        "{sizes:?}"
    );
    assert!(
        sizes.contains(&(
            victim_rel.to_string_lossy().into_owned(),
            "size=2048k".into()
        )),
        "{sizes:?}"
    );
    assert!(
        sizes.contains(&(format!("{}/x", victim_abs.display()), "size=3072k".into())),
        "{sizes:?}"
    );

    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn no_pivot() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        "cat /etc/passwd; ls /; readlink /proc/self/root",
    ]);
    let id = env.id("c");
    let out = env.rt(&["run", "--no-pivot", "--bundle", b.path(), &id]);
    out.success();
    assert!(out.stdout.starts_with(PASSWD), "{out:#?}");
    let entries: Vec<&str> = out.stdout[PASSWD.len()..].lines().collect();
    assert!(
        entries.contains(&"bin") && entries.contains(&"home"),
        "{out:#?}"
    );
    assert!(
        !entries.contains(&"work"),
        "host / is not visible: {out:#?}"
    );
    assert_eq!(entries.last(), Some(&"/"));
    env.assert_nothing_left(&id);
}

#[test]
fn rootfs_propagation_values() {
    let env = Env::new();
    for p in [
        "shared", "slave", "private", "rshared", "rslave", "rprivate",
    ] {
        let out = env.sh("echo ok", |c| c["linux"]["rootfsPropagation"] = json!(p));
        assert_eq!(out, "ok\n", "rootfsPropagation={p}");
    }
}

/// Beyond runc 1.1.5, which fails to bind the rootfs under an unbindable `/`: tong binds it
/// under a private one and makes the new root unbindable after, as crun does.
#[test]
fn rootfs_propagation_unbindable() {
    let env = Env::new();
    for p in ["unbindable", "runbindable"] {
        if is_runc() {
            continue;
        }
        let info = env.sh("cat /proc/self/mountinfo", |c| {
            c["linux"]["rootfsPropagation"] = json!(p)
        });
        let root = info
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .rfind(|f| f.get(4) == Some(&"/"))
            .unwrap_or_else(|| panic!("no / in {info}"));
        let dash = root.iter().position(|f| *f == "-").unwrap();
        assert!(
            root[6..dash].contains(&"unbindable"),
            "{p}: / is not unbindable: {root:?}"
        );
    }
    // The control: the default root is a slave, not unbindable.
    let info = env.sh("cat /proc/self/mountinfo", |_| {});
    let root = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(!root.contains("unbindable"), "{root}");
}

/// A read-only /dev still gets its device nodes and /dev/pts (made before the remount), as
/// runc does.
#[test]
fn read_only_dev_mount() {
    let env = Env::new();
    let script = "grep -E ' /dev(/pts)? ' /proc/self/mountinfo; echo x >/dev/null && echo null-ok; \
                  test -c /dev/zero && echo zero-ok; touch /dev/new 2>/dev/null || echo dev-ro";
    let out = env.sh(script, |c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    let ms = parse_mountinfo(&out);
    let dev = find_mount(&ms, "/dev");
    assert!(dev.opts.contains(&"ro".to_string()), "{out}");
    assert!(
        dev.opts.contains(&"nosuid".to_string()),
        "options kept: {out}"
    );
    let pts = find_mount(&ms, "/dev/pts");
    assert!(pts.opts.contains(&"rw".to_string()), "{out}");
    for l in ["null-ok", "zero-ok", "dev-ro"] {
        assert!(out.lines().any(|x| x == l), "{l} missing: {out}");
    }
}

#[test]
fn relative_rootfs_path_and_absolute_rootfs_path() {
    let env = Env::new();
    let b = env.bundle(&["cat", "/etc/group"]);
    let id = env.id("rel");
    assert_eq!(env.run(&b, &id).success().stdout, GROUP);
    let abs = b.rootfs().to_str().unwrap().to_string();
    b.edit_config(|c| c["root"]["path"] = json!(abs));
    let id = env.id("abs");
    assert_eq!(env.run(&b, &id).success().stdout, GROUP);
    env.assert_nothing_left(&id);
}
