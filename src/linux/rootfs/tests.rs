//! The mount plan, checked without root over a rootfs in a temporary directory.
use super::*;
#[test]
fn dests() {
    assert_eq!(inroot::clean(Path::new("proc")), PathBuf::from("/proc"));
    assert_eq!(
        inroot::clean(Path::new("/a/../../b/./c")),
        PathBuf::from("/b/c")
    );
}

/// The mount plan of a small config, on a rootfs in a temporary directory, without
/// root: every call in order, its target resolved inside the rootfs (shown as R/...).
#[test]
fn the_mount_plan_of_a_config_in_order() {
    let base = std::env::temp_dir().join(format!("tong-rootfs-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let rootfs = base.join("rootfs");
    let src = base.join("src");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    let rootfs = rootfs.canonicalize().unwrap();
    let src = src.canonicalize().unwrap();
    let mounts: Vec<oci_spec::runtime::Mount> = serde_json::from_value(serde_json::json!([
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "ro", "mode=755"]},
        {"destination": "/data/../data", "type": "bind", "source": src,
         "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["tmpcopyup"]}
    ]))
    .unwrap();
    let plan = mounts::plan(&mounts, &base);
    let fake = ops::testing::Fake {
        strip: Some(rootfs.clone()),
        mountinfo: "21 1 8:1 / / rw shared:1 - ext4 /dev/vda rw\n".into(),
        ..Default::default()
    };
    let c = RootfsConfig {
        ops: &fake,
        rootfs: &rootfs,
        mounts: &plan,
        propagation: Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
        devices: &[],
        cwd: Some(Path::new("/work/dir")),
        terminal: false,
        cgroups: &[],
        cgroupns: false,
        userns: false,
        idmapped: &[],
        sources: &[],
        await_cgroups: &|| Ok(()),
    };
    prepare(&c).unwrap();
    let f = |x: MsFlags| format!("{x:?}");
    assert_eq!(
        fake.calls(),
        [
            // rshared: / first, then the rootfs' parent mount private (pivot_root
            // refuses a shared one), then the rootfs bound onto itself.
            format!("mount - / - {}", f(MsFlags::MS_SHARED | MsFlags::MS_REC)),
            format!("mount - / - {}", f(MsFlags::MS_PRIVATE)),
            format!("mount R/ R/ - {}", f(MsFlags::MS_BIND | MsFlags::MS_REC)),
            format!(
                "mount proc R/proc proc {}",
                f(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV)
            ),
            // A read-only /dev is mounted writable; finalize remounts it read-only.
            format!("mount tmpfs R/dev tmpfs {}", f(MsFlags::MS_NOSUID)),
            // The destination cleaned; the bind, its read-only remount, its propagation.
            format!(
                "mount {} R/data - {}",
                src.display(),
                f(MsFlags::MS_BIND | MsFlags::MS_REC)
            ),
            format!(
                "mount - R/data - {}",
                f(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY)
            ),
            format!(
                "mount - R/data - {}",
                f(MsFlags::MS_PRIVATE | MsFlags::MS_REC)
            ),
            "tmpcopyup R/run".to_string(),
            "devices +0".to_string(),
        ]
    );
    for d in ["proc", "dev", "data", "run", "work/dir"] {
        assert!(rootfs.join(d).is_dir(), "{d} was not made in the rootfs");
    }
    std::fs::remove_dir_all(&base).unwrap();
}
