//! Breakout classes 2, 4 and 5 of issue #6: each attack beside a negative
//! control that performs the same technique naively (in a private mount
//! namespace on the host, so nothing escapes) and shows it landing on the
//! scratch target, so the attack is known to work.
//!
//! - Class 2 (CVE-2021-30465 and kin): mount destinations that are, or run
//!   through, symlinks to `/`, `..` or a host scratch dir, statically and
//!   while a host thread flips a directory to a symlink and back.
//! - Class 4: masked paths and a /dev/null that is not the null device
//!   (CVE-2025-31133); /dev/console and /dev/pts as symlinks
//!   (CVE-2025-52565); procfs files covered by a container-chosen mount
//!   (CVE-2025-52881).
//! - Class 5: ids that try to leave the state root, a symlink planted in the
//!   state root, the root's mode, --pid-file and hooks through
//!   container-controlled symlinks.
//!
//! Every target is a scratch path under the env's base dir.
mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---- helpers ------------------------------------------------------------------

/// Climbs far above any bundle's rootfs (`/tmp/<env>/b<k>/rootfs` is 4 deep).
const UP: &str = "../../../../../../../..";

/// Runs `sh -c script` in a private mount namespace on the host (every
/// mount it makes disappears with it); `set -e` so a failed step stops it.
fn private_ns(script: &str) -> Out {
    host(
        "/usr/bin/unshare",
        &[
            "-m",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &format!("set -e\n{script}"),
        ],
    )
}

/// Same, with a private network namespace too (for procfs writes).
fn private_ns_net(script: &str) -> Out {
    host(
        "/usr/bin/unshare",
        &[
            "-m",
            "-n",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &format!("set -e\n{script}"),
        ],
    )
}

/// Every entry below `dir` (relative path -> kind and content), to show a
/// scratch target is untouched.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("link {}", fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                out.insert(rel, format!("dir {:o}", m.mode() & 0o7777));
                walk(base, &p, out);
            } else if ft.is_file() {
                out.insert(rel, format!("file {}", read_lossy(&p)));
            } else {
                out.insert(rel, format!("other {:o} {}", m.mode(), m.rdev()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A scratch victim dir holding one file, and its snapshot.
fn victim_dir(env: &Env, tag: &str) -> (PathBuf, BTreeMap<String, String>) {
    let v = env.tempdir(tag);
    fs::write(v.join("keep"), "KEEP\n").unwrap();
    let snap = snapshot(&v);
    (v, snap)
}

#[track_caller]
fn assert_untouched(dir: &Path, before: &BTreeMap<String, String>) {
    assert_eq!(
        &snapshot(dir),
        before,
        "scratch target {} was changed",
        dir.display()
    );
    let ms = mounts_under(dir);
    assert!(
        ms.is_empty(),
        "host mounts on scratch target {}: {ms:#?}",
        dir.display()
    );
}

/// A source dir for bind mounts with a marker file.
fn marked_dir(env: &Env, tag: &str) -> PathBuf {
    let d = env.tempdir(tag);
    fs::write(d.join("MARK"), format!("MARK-{tag}\n")).unwrap();
    d
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let _ = fs::remove_file(p);
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn container_mounts(pid: i64) -> Vec<MountInfo> {
    parse_mountinfo(&fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap())
}

fn init_pid(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

fn drop_dev_mounts(cfg: &mut Value, keep: &[&str]) {
    cfg["mounts"].as_array_mut().unwrap().retain(|m| {
        let d = m["destination"].as_str().unwrap_or("");
        !(d == "/dev" || d.starts_with("/dev/")) || keep.contains(&d)
    });
}

fn p(s: &Path) -> &str {
    s.to_str().unwrap()
}

/// Whether a mountinfo `root` field is `src`: the field is relative to the source's own
/// filesystem, so where /tmp is a mount of its own (the test VM) it lacks the "/tmp" prefix.
fn same_source(root: &str, src: &Path) -> bool {
    root.len() > 1 && p(src).ends_with(root)
}

/// Flips `a` and `b` (a dir and a symlink) with RENAME_EXCHANGE until told
/// to stop (or a large count, so it can never spin forever).
struct Flipper {
    stop: Arc<AtomicBool>,
    flips: Arc<AtomicUsize>,
    th: Option<std::thread::JoinHandle<()>>,
}

impl Flipper {
    fn start(a: &Path, b: &Path) -> Flipper {
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), flips.clone());
        let a = std::ffi::CString::new(p(a)).unwrap();
        let b = std::ffi::CString::new(p(b)).unwrap();
        let th = std::thread::spawn(move || {
            for _ in 0..200_000_000u64 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                // The raw syscall: musl's libc has no renameat2 wrapper.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if r == 0 {
                    f.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Flipper {
            stop,
            flips,
            th: Some(th),
        }
    }

    /// Stops flipping; returns the number of flips done.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.th.take() {
            t.join().unwrap();
        }
        self.flips.load(Ordering::SeqCst)
    }
}

impl Drop for Flipper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.th.take() {
            let _ = t.join();
        }
    }
}

/// Creates `id` with a console socket, starts it and waits until it stopped.
/// Returns Err(create's output) when create fails.
fn run_with_console(env: &Env, b: &Bundle, id: &str) -> Result<(), Out> {
    let cs = ConsoleSocket::new(env);
    let mut sp = env.spawn(&[
        "create",
        "--console-socket",
        p(&cs.path),
        "--bundle",
        b.path(),
        id,
    ]);
    let master = cs
        .receive(&mut sp)
        .and_then(|(_, fds)| fds.into_iter().next());
    let out = sp.wait();
    if !out.ok() {
        return Err(out);
    }
    assert!(
        master.is_some(),
        "create succeeded without sending a pty master: {out:#?}"
    );
    env.rt(&["start", id]).success();
    // The process never reads its terminal; it must end on its own.
    let start = Instant::now();
    while env.status(id) != "stopped" {
        if start.elapsed() > STATE_DEADLINE {
            env.rt(&["delete", "--force", id]);
            if is_runc() {
                return Ok(());
            }
            panic!("container {id} did not stop: it is blocked (on a decoy console?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(master);
    env.rt(&["delete", id]).success();
    Ok(())
}

// ---- class 2: symlinked mount destinations (CVE-2021-30465 and kin) -------------

/// The symlinks of the class-2 rootfs and the config destinations through
/// them; every one would reach `victim` on the host if followed naively.
/// Returns (destination, in-root path it must land on).
fn plant_dest_links(rootfs: &Path, victim: &Path) -> Vec<(String, String)> {
    let v = victim.to_str().unwrap();
    // /mnt -> /   (so /mnt<victim>/t1 is <victim>/t1 if followed on the host)
    symlink("/", rootfs.join("mnt")).unwrap();
    // /up -> ../../..  (above the rootfs when followed on the host)
    symlink(UP, rootfs.join("up")).unwrap();
    // /m3 -> ../../../..<victim>
    symlink(format!("{UP}{v}"), rootfs.join("m3")).unwrap();
    // /a -> <victim> (absolute), used as /a/b/c
    symlink(v, rootfs.join("a")).unwrap();
    vec![
        (format!("/mnt{v}/t1"), format!("{v}/t1")),
        (format!("/up{v}/b2"), format!("{v}/b2")),
        ("/m3/t3".to_string(), format!("{v}/t3")),
        ("/a/b/c".to_string(), format!("{v}/b/c")),
    ]
}

#[test]
fn c2_symlinked_mount_destinations_land_inside_the_rootfs() {
    let env = Env::new();
    let (victim, before) = victim_dir(&env, "victim");
    let src_b2 = marked_dir(&env, "srcb2");
    let src_bc = marked_dir(&env, "srcbc");
    let b = env.bundle(&["sleep", "1000"]);
    let dests = plant_dest_links(&b.rootfs(), &victim);
    b.edit_config(|c| {
        push_mount(c, json!({ "destination": dests[0].0, "type": "tmpfs", "source": "tmpfs", "options": ["size=2048k"] }));
        push_mount(c, json!({ "destination": dests[1].0, "type": "bind", "source": p(&src_b2), "options": ["bind"] }));
        push_mount(c, json!({ "destination": dests[2].0, "type": "tmpfs", "source": "tmpfs", "options": ["size=3072k"] }));
        push_mount(c, json!({ "destination": dests[3].0, "type": "bind", "source": p(&src_bc), "options": ["rbind"] }));
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    // Refusing is safe too; landing outside is not.
    if out.ok() {
        let pid = init_pid(&env, &id);
        let ms = container_mounts(pid);
        let at = |mp: &str| ms.iter().rev().find(|m| m.mount_point == mp).cloned();
        let t1 =
            at(&dests[0].1).unwrap_or_else(|| panic!("no mount at {} inside: {ms:#?}", dests[0].1));
        assert!(t1.fstype == "tmpfs" && t1.has_opt("size=2048k"), "{t1:?}");
        let t3 =
            at(&dests[2].1).unwrap_or_else(|| panic!("no mount at {} inside: {ms:#?}", dests[2].1));
        assert!(t3.fstype == "tmpfs" && t3.has_opt("size=3072k"), "{t3:?}");
        for (dest, src, tag) in [
            (&dests[1].1, &src_b2, "srcb2"),
            (&dests[3].1, &src_bc, "srcbc"),
        ] {
            let m = at(dest).unwrap_or_else(|| panic!("no bind at {dest} inside: {ms:#?}"));
            assert!(
                same_source(&m.root, src),
                "{m:?} is not a bind of {}",
                src.display()
            );
            // The marker is visible at the in-root path, through the container's root.
            let mark = fs::read_to_string(format!("/proc/{pid}/root{dest}/MARK")).unwrap();
            assert!(mark.starts_with(&format!("MARK-{tag}")), "{mark}");
        }
        // The mount points were made inside the bundle's rootfs.
        for (_, inroot) in &dests {
            assert!(
                b.rootfs().join(&inroot[1..]).is_dir(),
                "{inroot} not created inside the rootfs"
            );
        }
        // The links themselves are intact.
        assert_eq!(
            fs::read_link(b.rootfs().join("mnt")).unwrap(),
            Path::new("/")
        );
        env.rt(&["delete", "--force", &id]).success();
    } else {
        eprintln!("create refused symlinked destinations: {}", out.stderr);
    }
    assert_untouched(&victim, &before);
    assert!(host_mountinfo_mentioning(p(&victim)).is_empty());
    assert!(host_mountinfo_mentioning(p(&src_b2)).is_empty());
    env.assert_nothing_left(&id);
}

/// Negative control: the same rootfs, the same destinations, mounted by
/// following the path string (mkdir -p + mount) lands on the host victim.
#[test]
fn c2_control_naive_mount_follows_the_links_onto_the_host() {
    let env = Env::new();
    let (victim, _) = victim_dir(&env, "victim");
    let src = marked_dir(&env, "src");
    let b = env.bundle(&["true"]);
    let r = b.rootfs();
    let dests = plant_dest_links(&r, &victim);
    let mut script = String::new();
    for (i, (dest, _)) in dests.iter().enumerate() {
        let t = format!("{}{}", p(&r), dest);
        if i % 2 == 0 {
            script += &format!("mkdir -p '{t}'; mount -t tmpfs -o size={i}77k tmpfs '{t}'\n");
        } else {
            script += &format!("mkdir -p '{t}'; mount --bind '{}' '{t}'\n", p(&src));
        }
    }
    script += "cat /proc/self/mountinfo\n";
    for (_, inroot) in &dests {
        // inroot == the host victim path: the naive mount is visible there.
        script += &format!("cat '{inroot}/MARK' 2>/dev/null || true\n");
    }
    let out = private_ns(&script);
    out.success();
    let ms = parse_mountinfo(&out.stdout);
    for (i, (_, hostpath)) in dests.iter().enumerate() {
        // The naive mount point is the host victim path itself.
        let m = ms.iter().find(|m| &m.mount_point == hostpath);
        assert!(
            m.is_some(),
            "control: naive mount {i} did not land on {hostpath}: {out:#?}"
        );
    }
    assert_eq!(out.stdout.matches("MARK-src").count(), 2, "{out:#?}");
    // The naive mkdir -p created the mount points in the host victim...
    for (_, hostpath) in &dests {
        assert!(
            Path::new(hostpath).is_dir(),
            "control: {hostpath} not created on the host"
        );
    }
    // ...but the private namespace kept the mounts from the host.
    assert!(mounts_under(&victim).is_empty());
}

/// CVE-2021-30465 proper: a host thread swaps a rootfs directory and a
/// symlink to the victim while containers mount below it.
fn race_setup(env: &Env, victim: &Path) -> Bundle {
    let b = env.bundle(&["cat", "/proc/self/mountinfo"]);
    let r = b.rootfs();
    fs::create_dir(r.join("race")).unwrap();
    fs::create_dir(r.join("race/sub")).unwrap();
    symlink(format!("{UP}{}", p(victim)), r.join("race.alt")).unwrap();
    b
}

#[test]
fn c2_race_flipping_a_destination_to_a_symlink_never_mounts_outside() {
    const RUNS: usize = 30;
    const MAX_RUNS: usize = 150;
    let env = Env::new();
    let (victim, before) = victim_dir(&env, "victim");
    let src = marked_dir(&env, "src");
    let b = race_setup(&env, &victim);
    b.edit_config(|c| {
        push_mount(c, json!({ "destination": "/race/sub/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=5120k"] }));
        push_mount(c, json!({ "destination": "/race/bsub", "type": "bind", "source": p(&src), "options": ["bind"] }));
    });
    let v = p(&victim).to_string();
    let flipper = Flipper::start(&b.rootfs().join("race"), &b.rootfs().join("race.alt"));
    let (mut ok, mut refused) = (0, Vec::new());
    // Runs that resolved the destination through the symlink (into <victim>
    // inside the rootfs) and through the dir; keep going (up to MAX_RUNS)
    // until both were seen, so the symlink state was really raced.
    let (mut via_link, mut via_dir) = (0, 0);
    for i in 0..MAX_RUNS {
        if i >= RUNS && via_link > 0 && via_dir > 0 {
            break;
        }
        let id = env.id(&format!("r{i}"));
        let out = env.run(&b, &id);
        if !out.ok() {
            refused.push(out.stderr.clone());
            env.rt(&["delete", "--force", &id]);
            continue;
        }
        ok += 1;
        let ms = parse_mountinfo(&out.stdout);
        let t = ms
            .iter()
            .find(|m| m.fstype == "tmpfs" && m.has_opt("size=5120k"));
        let t =
            t.unwrap_or_else(|| panic!("run {i}: the tmpfs is not inside the container: {out:#?}"));
        // Inside the rootfs: the dir (under either of the names it takes
        // while flipping) or the in-root resolution of the symlink.
        let inside = |mp: &str, leaf: &str| {
            [
                format!("/race/{leaf}"),
                format!("/race.alt/{leaf}"),
                format!("{v}/{leaf}"),
            ]
            .iter()
            .any(|x| x == mp)
        };
        assert!(
            inside(&t.mount_point, "sub/t"),
            "run {i}: tmpfs at {:?}",
            t.mount_point
        );
        if t.mount_point.starts_with(&v) {
            via_link += 1;
        } else {
            via_dir += 1;
        }
        let bm = ms.iter().find(|m| same_source(&m.root, &src));
        let bm =
            bm.unwrap_or_else(|| panic!("run {i}: the bind is not inside the container: {out:#?}"));
        assert!(
            inside(&bm.mount_point, "bsub"),
            "run {i}: bind at {:?}",
            bm.mount_point
        );
        if !is_runc() {
            assert_untouched(&victim, &before);
        }
    }
    let flips = flipper.finish();
    eprintln!(
        "race: {ok} runs succeeded ({via_link} through the symlink, {via_dir} through the dir), \
         {flips} flips; refusals: {refused:?}"
    );
    assert!(
        via_link > 0 && via_dir > 0,
        "the race never hit both states ({via_link}/{via_dir}, {flips} flips)"
    );
    assert!(ok > 0, "every run failed under the race: {refused:#?}");
    if is_runc() && snapshot(&victim) != before {
        // runc 1.1.5 creates the mount points on the host under this race
        // (CVE-2024-45310, fixed in runc 1.1.14); its mounts stay inside.
        eprintln!("runc created host dirs: {:?}", snapshot(&victim));
        assert!(mounts_under(&victim).is_empty());
    } else {
        assert_untouched(&victim, &before);
    }
    assert!(host_mountinfo_mentioning(p(&src)).is_empty());
    for id in env.list_ids() {
        env.rt(&["delete", "--force", &id]);
    }
    assert!(mounts_under(&env.base).is_empty());
}

/// Negative control for the race: the same flipping makes a path-following
/// mkdir and mount land in the host victim within a bounded number of tries.
#[test]
fn c2_control_race_lands_naive_mkdir_and_mount_on_the_host() {
    let env = Env::new();
    let (victim, _) = victim_dir(&env, "victim");
    let b = race_setup(&env, &victim);
    let r = b.rootfs();
    let flipper = Flipper::start(&r.join("race"), &r.join("race.alt"));
    let mut landed = false;
    for _ in 0..2_000_000 {
        let _ = fs::create_dir_all(r.join("race/sub"));
        if victim.join("sub").is_dir() {
            landed = true;
            break;
        }
    }
    assert!(landed, "control: naive mkdir never landed in the victim");
    // mount(8) resolves the path, then mounts: it lands on the victim too.
    let script = format!(
        "i=0\nwhile [ $i -lt 3000 ]; do\n\
         mount -t tmpfs -o size=77k tmpfs '{r}/race/sub' 2>/dev/null || true\n\
         if grep -q ' {v}/sub ' /proc/self/mountinfo; then echo LANDED $i; exit 0; fi\n\
         i=$((i+1))\ndone\necho NEVER",
        r = p(&r),
        v = p(&victim)
    );
    let out = private_ns(&script);
    let flips = flipper.finish();
    out.success();
    assert!(
        out.stdout.contains("LANDED"),
        "control: naive mount never landed ({flips} flips): {out:#?}"
    );
    assert!(mounts_under(&victim).is_empty());
}

// ---- class 4a: masked paths and /dev/null (CVE-2025-31133) ----------------------

// `timeout` only keeps a zero device or a fifo (runc 1.1 binds them) from
// hanging the script.
const MASK_SCRIPT: &str = "stat -c '%F %t:%T' /proc/keys; timeout 5 head -c 4096 /proc/keys | wc -c; timeout 5 head -c 64 /proc/keys";

/// /dev is the image's own /dev, bind mounted (so the runtime creates no
/// devices), and /dev/null in it is something other than the null device.
#[test]
fn c4_masking_refuses_a_dev_null_that_is_not_the_null_device() {
    type Plant = fn(&Path);
    let variants: [(&str, Plant); 4] = [
        ("symlink", |d: &Path| {
            symlink("../decoy-null", d.join("null")).unwrap()
        }),
        ("regular file", |d: &Path| {
            fs::write(d.join("null"), "DECOY-FILE\n").unwrap()
        }),
        ("zero device", |d: &Path| {
            mknod(&d.join("null"), libc::S_IFCHR, 1, 5)
        }),
        ("fifo", |d: &Path| {
            mknod(&d.join("null"), libc::S_IFIFO, 0, 0)
        }),
    ];
    for (what, plant) in variants {
        let env = Env::new();
        let b = env.bundle(&["sh", "-c", MASK_SCRIPT]);
        let r = b.rootfs();
        fs::write(r.join("decoy-null"), "DECOY\n").unwrap();
        plant(&r.join("dev"));
        b.edit_config(|c| {
            drop_dev_mounts(c, &[]);
            push_mount(c, json!({ "destination": "/dev", "type": "bind", "source": p(&r.join("dev")), "options": ["rbind"] }));
        });
        let id = env.id("c");
        let out = env.run(&b, &id);
        if is_runc() {
            // runc 1.1 binds whatever /dev/null is (fixed in 1.2.8/1.3.3).
            eprintln!("runc, /dev/null as {what}: {out:#?}");
        } else {
            out.failure().stderr_has("/dev/null");
        }
        if !is_runc() {
            assert!(
                !out.stdout.contains("DECOY"),
                "{what}: a masked path shows the decoy: {out:#?}"
            );
        }
        assert_eq!(fs::read_to_string(r.join("decoy-null")).unwrap(), "DECOY\n");
        assert!(host_mountinfo_mentioning("decoy-null").is_empty());
        env.rt(&["delete", "--force", &id]);
        env.assert_nothing_left(&id);
    }
}

/// The same bound /dev holding a real null device: masking works, so the
/// refusals above are about the device, not about a bound /dev.
#[test]
fn c4_masking_with_a_genuine_null_device_in_a_bound_dev() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", MASK_SCRIPT]);
    let r = b.rootfs();
    mknod(&r.join("dev/null"), libc::S_IFCHR, 1, 3);
    b.edit_config(|c| {
        drop_dev_mounts(c, &[]);
        push_mount(c, json!({ "destination": "/dev", "type": "bind", "source": p(&r.join("dev")), "options": ["rbind"] }));
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    let l = out.lines();
    assert_eq!(l[0], "character special file 1:3", "{out:#?}");
    assert_eq!(l[1], "0", "{out:#?}");
    env.assert_nothing_left(&id);
}

/// The image's /dev (no /dev mount at all) with /dev/null a symlink: the
/// runtime makes its own devices, so masking binds a real null device and
/// the link's target is never used.
#[test]
fn c4_image_dev_null_symlink_is_replaced_by_a_real_device() {
    let env = Env::new();
    let b = env.bundle(&[
        "sh",
        "-c",
        &format!("stat -c '%F %t:%T' /dev/null; {MASK_SCRIPT}"),
    ]);
    let r = b.rootfs();
    fs::write(r.join("decoy-null"), "DECOY\n").unwrap();
    symlink("../decoy-null", r.join("dev/null")).unwrap();
    b.edit_config(|c| drop_dev_mounts(c, &[]));
    let id = env.id("c");
    let out = env.run(&b, &id);
    if out.ok() {
        let l = out.lines();
        assert_eq!(l[0], "character special file 1:3", "/dev/null: {out:#?}");
        assert_eq!(l[1], "character special file 1:3", "/proc/keys: {out:#?}");
        assert_eq!(l[2], "0", "{out:#?}");
    } else {
        eprintln!("refused: {}", out.stderr);
    }
    assert!(!out.stdout.contains("DECOY"), "{out:#?}");
    assert_eq!(fs::read_to_string(r.join("decoy-null")).unwrap(), "DECOY\n");
    assert!(host_mountinfo_mentioning("decoy-null").is_empty());
    env.assert_nothing_left(&id);
}

/// Negative control: binding the path "/dev/null" over a masked file by
/// following it puts the decoy there.
#[test]
fn c4_control_naive_dev_null_bind_puts_the_decoy_on_the_masked_path() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let r = b.rootfs();
    fs::write(r.join("decoy-null"), "DECOY\n").unwrap();
    symlink("../decoy-null", r.join("dev/null")).unwrap();
    let masked = env.tempdir("masked").join("keys");
    fs::write(&masked, "SECRET\n").unwrap();
    let out = private_ns(&format!(
        "mount --bind '{r}/dev/null' '{m}'\ncat '{m}'",
        r = p(&r),
        m = p(&masked)
    ));
    out.success();
    assert_eq!(
        out.stdout, "DECOY\n",
        "control: the naive bind did not use the link's target: {out:#?}"
    );
    assert_eq!(fs::read_to_string(&masked).unwrap(), "SECRET\n");
    assert!(host_mountinfo_mentioning(p(&masked)).is_empty());
}

// ---- class 4b: /dev/console (CVE-2025-52565) -----------------------------------

const CONSOLE_SCRIPT: &str = "exec >/result 2>&1; stat -c '%F %t:%T' /dev/console; stat -L -c '%F %t:%T' /proc/self/fd/0; \
     cat /decoy-pts/0 2>/dev/null; stat -c '%F' /decoy-console 2>/dev/null; true";

fn console_result(b: &Bundle) -> Vec<String> {
    read_lossy(&b.rootfs().join("result"))
        .lines()
        .map(|s| s.trim().to_string())
        .collect()
}

/// /dev/console in the image is a symlink to a decoy file: the runtime must
/// not bind the pty onto the decoy (nor truncate it); it refuses or puts the
/// pty itself at /dev/console.
#[test]
fn c4_dev_console_symlink_is_not_followed() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", CONSOLE_SCRIPT], |c| {
        c["process"]["terminal"] = json!(true);
        c["root"]["readonly"] = json!(false);
        drop_dev_mounts(c, &["/dev/pts"]);
    });
    let r = b.rootfs();
    fs::write(r.join("decoy-console"), "DECOY-CONSOLE\n").unwrap();
    symlink("../decoy-console", r.join("dev/console")).unwrap();
    let id = env.id("c");
    match run_with_console(&env, &b, &id) {
        Ok(()) if is_runc() => {
            // runc 1.1.5 creates (truncating) and binds the link's target.
            eprintln!(
                "runc: {:?}, decoy now {:?}",
                console_result(&b),
                read_lossy(&r.join("decoy-console"))
            );
            return;
        }
        Ok(()) => {
            let l = console_result(&b);
            assert!(
                l[0].starts_with("character special file 88:"),
                "/dev/console is not a pts: {l:?}"
            );
            assert_eq!(
                l[0], l[1],
                "/dev/console is not the process's terminal: {l:?}"
            );
            assert_eq!(
                l.last().map(String::as_str),
                Some("regular file"),
                "the decoy is covered: {l:?}"
            );
        }
        Err(out) => {
            eprintln!("refused: {}", out.stderr.trim());
            out.stderr_has("/dev/console");
        }
    }
    assert_eq!(
        fs::read_to_string(r.join("decoy-console")).unwrap(),
        "DECOY-CONSOLE\n"
    );
    assert!(host_mountinfo_mentioning("decoy-console").is_empty());
    env.assert_nothing_left(&id);
}

/// /dev/pts in the image is a symlink to a dir of decoy files (its ptmx
/// leads to a real devpts elsewhere): opening the slave by its name
/// (/dev/pts/N) would pick a decoy; the console must be the master's peer.
#[test]
fn c4_console_is_the_pty_peer_not_a_dev_pts_path() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", CONSOLE_SCRIPT], |c| {
        c["process"]["terminal"] = json!(true);
        c["root"]["readonly"] = json!(false);
        drop_dev_mounts(c, &[]);
        push_mount(c, json!({ "destination": "/realpts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }));
    });
    let r = b.rootfs();
    let decoys = r.join("decoy-pts");
    fs::create_dir(&decoys).unwrap();
    for n in 0..8 {
        fs::write(decoys.join(n.to_string()), "DECOY-PTS\n").unwrap();
    }
    symlink("/realpts/ptmx", decoys.join("ptmx")).unwrap();
    symlink("../decoy-pts", r.join("dev/pts")).unwrap();
    let before = snapshot(&decoys);
    let id = env.id("c");
    match run_with_console(&env, &b, &id) {
        Ok(()) => {
            let l = console_result(&b);
            if is_runc() {
                eprintln!("runc: {l:?}");
            } else {
                assert!(
                    l[0].starts_with("character special file 88:"),
                    "/dev/console is not a pts: {l:?}"
                );
                assert_eq!(
                    l[0], l[1],
                    "/dev/console is not the process's terminal: {l:?}"
                );
            }
        }
        Err(out) => {
            assert!(
                is_runc(),
                "tong refused a console whose /dev/pts is a symlink: {out:#?}"
            );
            eprintln!("runc refused: {}", out.stderr);
        }
    }
    assert_eq!(snapshot(&decoys), before, "decoy pts files changed");
    assert!(host_mountinfo_mentioning("decoy-pts").is_empty());
    env.assert_nothing_left(&id);
}

/// Negative control: a path-following console setup binds the decoys.
#[test]
fn c4_control_naive_console_setup_binds_the_decoys() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let r = b.rootfs();
    let standin = env.tempdir("pty").join("pts-standin");
    fs::write(&standin, "THE-PTY\n").unwrap();
    fs::write(r.join("decoy-console"), "DECOY-CONSOLE\n").unwrap();
    symlink("../decoy-console", r.join("dev/console")).unwrap();
    fs::create_dir(r.join("decoy-pts")).unwrap();
    fs::write(r.join("decoy-pts/0"), "DECOY-PTS\n").unwrap();
    symlink("../decoy-pts", r.join("dev/pts")).unwrap();
    fs::write(r.join("dev/console2"), "").unwrap();
    let out = private_ns(&format!(
        // 1. "bind the pty at /dev/console" lands on the console link's target;
        // 2. "open /dev/pts/0 and bind it at the console" binds a decoy.
        "mount --bind '{s}' '{r}/dev/console'\ncat '{r}/decoy-console'\n\
         mount --bind '{r}/dev/pts/0' '{r}/dev/console2'\ncat '{r}/dev/console2'",
        s = p(&standin),
        r = p(&r)
    ));
    out.success();
    assert_eq!(
        out.lines(),
        vec!["THE-PTY", "DECOY-PTS"],
        "control: {out:#?}"
    );
    assert_eq!(
        fs::read_to_string(r.join("decoy-console")).unwrap(),
        "DECOY-CONSOLE\n"
    );
    assert!(mounts_under(&env.base).is_empty());
}

// ---- class 4c: procfs behind a container-chosen mount (CVE-2025-52881) -----------

const CAPS_SCRIPT: &str =
    "cat /proc/sys/kernel/cap_last_cap; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status";

fn no_caps(c: &mut Value, nnp: bool) {
    c["process"]["capabilities"] = json!({ "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": [] });
    c["process"]["noNewPrivileges"] = json!(nnp);
}

/// The process's capability sets from CAPS_SCRIPT output.
fn cap_sets(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn check_no_caps(what: &str, out: &Out, decoy: &Path) {
    if out.ok() {
        let s = cap_sets(&out.stdout);
        for k in ["CapPrm", "CapEff", "CapBnd"] {
            assert_eq!(
                s.get(k).map(String::as_str),
                Some("0000000000000000"),
                "{what}: a container configured with no capabilities has {k} {:?}: {out:#?}",
                s.get(k)
            );
        }
    } else {
        // runc refuses any mount inside /proc.
        eprintln!("{what}: refused: {}", out.stderr);
    }
    assert_eq!(fs::read_to_string(decoy).unwrap(), "0\n");
}

/// A config bind puts a decoy over /proc/sys/kernel/cap_last_cap; the
/// runtime must not read the decoy when it drops capabilities.
#[test]
fn c4_procfs_decoy_over_cap_last_cap_does_not_keep_capabilities() {
    for nnp in [false, true] {
        let env = Env::new();
        let decoy = env.tempdir("decoy").join("cap_last_cap");
        fs::write(&decoy, "0\n").unwrap();
        let out = env.run_with(&["sh", "-c", CAPS_SCRIPT], |c| {
            no_caps(c, nnp);
            push_mount(
                c,
                json!({ "destination": "/proc/sys/kernel/cap_last_cap", "type": "bind",
                                  "source": p(&decoy), "options": ["bind"] }),
            );
        });
        check_no_caps(
            &format!("decoy in config, noNewPrivileges {nnp}"),
            &out,
            &decoy,
        );
        for id in env.list_ids() {
            env.rt(&["delete", "--force", &id]);
        }
    }
}

/// The image turns an innocent volume destination (/vol) into a symlink to
/// a procfs file: the volume lands on /proc/sys/kernel/cap_last_cap.
#[test]
fn c4_procfs_decoy_through_an_image_symlink_does_not_keep_capabilities() {
    let env = Env::new();
    let decoy = env.tempdir("decoy").join("cap_last_cap");
    fs::write(&decoy, "0\n").unwrap();
    let b = env.bundle_with(&["sh", "-c", CAPS_SCRIPT], |c| {
        no_caps(c, false);
        push_mount(c, json!({ "destination": "/vol", "type": "bind", "source": p(&decoy), "options": ["bind"] }));
    });
    symlink("/proc/sys/kernel/cap_last_cap", b.rootfs().join("vol")).unwrap();
    let id = env.id("c");
    let out = env.run(&b, &id);
    check_no_caps(
        "image symlink /vol -> /proc/sys/kernel/cap_last_cap",
        &out,
        &decoy,
    );
    env.assert_nothing_left(&id);
}

/// linux.sysctl with a decoy bound over the same /proc/sys file: the value
/// goes to the container's real sysctl, never into the decoy.
#[test]
fn c4_sysctl_is_written_to_the_real_procfs_not_a_decoy() {
    let env = Env::new();
    let decoy = env.tempdir("decoy").join("ip_forward");
    fs::write(&decoy, "0\n").unwrap();
    let out = env.run_with(
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward /proc2/sys/net/ipv4/ip_forward",
        ],
        |c| {
            c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
            push_mount(
                c,
                json!({ "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
                              "source": p(&decoy), "options": ["bind"] }),
            );
            push_mount(
                c,
                json!({ "destination": "/proc2", "type": "proc", "source": "proc" }),
            );
        },
    );
    if out.ok() {
        // The decoy is what the path shows; the real (container) sysctl is set.
        assert_eq!(out.lines(), vec!["0", "1"], "{out:#?}");
    } else {
        eprintln!("refused: {}", out.stderr);
    }
    assert_eq!(
        fs::read_to_string(&decoy).unwrap(),
        "0\n",
        "the sysctl was written into the decoy"
    );
    assert!(mounts_under(&env.base).is_empty());
}

/// Negative control: on a procfs, a bind (direct or through a symlink)
/// redirects path-based reads and writes of a /proc/sys file to the decoy.
#[test]
fn c4_control_procfs_paths_are_redirected_by_a_bind() {
    let env = Env::new();
    let s = env.tempdir("scratch");
    fs::write(s.join("decoy-cap"), "0\n").unwrap();
    fs::write(s.join("decoy-fwd"), "DECOY\n").unwrap();
    fs::create_dir(s.join("p")).unwrap();
    symlink("p/sys/net/ipv4/ip_forward", s.join("vol")).unwrap();
    // A fresh procfs in the scratch dir, in private mount and net namespaces:
    // nothing of the host's /proc is involved.
    let out = private_ns_net(&format!(
        "mount -t proc proc '{s}/p'\n\
         mount --bind '{s}/decoy-cap' '{s}/p/sys/kernel/cap_last_cap'\n\
         cat '{s}/p/sys/kernel/cap_last_cap'\n\
         cat /proc/sys/net/ipv4/ip_forward\n\
         mount --bind '{s}/decoy-fwd' '{s}/vol'\n\
         echo 1 > '{s}/p/sys/net/ipv4/ip_forward'\n\
         cat /proc/sys/net/ipv4/ip_forward",
        s = p(&s)
    ));
    out.success();
    let l = out.lines();
    assert_eq!(l.len(), 3, "control: {out:#?}");
    assert_eq!(
        l[0], "0",
        "control: the read did not see the decoy: {out:#?}"
    );
    assert_eq!(l[1], l[2], "control: the real sysctl changed: {out:#?}");
    assert_eq!(
        fs::read_to_string(s.join("decoy-fwd")).unwrap(),
        "1\n",
        "control: the write did not reach the decoy"
    );
    assert!(mounts_under(&env.base).is_empty());
}

// ---- class 5: ids, the state root, --pid-file, hooks ------------------------------

#[test]
fn c5_ids_cannot_leave_the_state_root() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    // A victim reachable by `<root>/<id>` if the id were used as a path: it
    // looks like a container's state dir.
    let (victim, _) = victim_dir(&env, "victim");
    let real = env.id("real");
    env.create(&b, &real);
    fs::copy(
        env.state_dir(&real).join("state.json"),
        victim.join("state.json"),
    )
    .unwrap();
    env.rt(&["delete", "--force", &real]).success();
    let before = snapshot(&victim);
    // Ids that would reach the scratch victim or fresh test-owned names if
    // used as paths get every command, delete included.
    let rel_victim = format!("../..{}", p(&victim));
    let outside = format!("../{}escape", env.name);
    let up_y = format!("x/../../{}y", env.name);
    let abs = format!("{}/absid", p(&env.base));
    let abs_victim = p(&victim).to_string();
    // `.` and `..` would name the state root itself or /run: only the
    // commands that cannot remove anything are tried with them.
    let ids: [(&str, bool); 8] = [
        (rel_victim.as_str(), true),
        (abs_victim.as_str(), true),
        (outside.as_str(), true),
        (up_y.as_str(), true),
        (abs.as_str(), true),
        ("a/b", true),
        (".", false),
        ("..", false),
    ];
    for (id, destructive) in ids {
        let out = env.rt(&["create", "--bundle", b.path(), id]);
        out.failure().stderr_has("invalid container ID format");
        env.rt(&["run", "-d", "--bundle", b.path(), id]).failure();
        env.rt(&["state", id]).failure();
        if destructive {
            for cmd in [
                vec!["start", id],
                vec!["kill", id, "KILL"],
                vec!["pause", id],
                vec!["exec", id, "true"],
                vec!["delete", id],
            ] {
                env.rt(&cmd).failure();
            }
            // runc answers success for --force on a container that does not
            // exist; either way nothing may be touched.
            env.rt(&["delete", "--force", id]);
        }
        assert_eq!(snapshot(&victim), before, "id {id:?} reached the victim");
    }
    assert!(!Path::new(&format!("/run/{}escape", env.name)).exists());
    assert!(!Path::new(&format!("/run/{}y", env.name)).exists());
    assert!(!Path::new(&abs).exists());
    // Only state dirs of valid ids ever appear in the root.
    let left: Vec<_> = fs::read_dir(&env.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| n.to_string_lossy().contains('@') || n.to_string_lossy().starts_with('.')),
        "{left:?}"
    );
    env.assert_nothing_left(&real);
}

/// A symlink planted in the state root under a container's name: no command
/// follows it to delete or overwrite what it points at.
#[test]
fn c5_symlink_in_the_state_root_is_not_followed() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let real = env.id("real");
    env.create(&b, &real);
    let (victim, _) = victim_dir(&env, "victim");
    fs::copy(
        env.state_dir(&real).join("state.json"),
        victim.join("state.json"),
    )
    .unwrap();
    env.rt(&["delete", "--force", &real]).success();
    let before = snapshot(&victim);
    let name = format!("{}victim", env.name);
    symlink(&victim, env.root.join(&name)).unwrap();
    for cmd in [
        vec!["state", name.as_str()],
        vec!["kill", name.as_str(), "KILL"],
        vec!["delete", name.as_str()],
        vec!["delete", "--force", name.as_str()],
    ] {
        let out = env.rt(&cmd);
        eprintln!("{cmd:?}: {} {}", out.code, out.stderr.trim());
        assert_eq!(
            snapshot(&victim),
            before,
            "`{}` changed the symlink's target",
            cmd.join(" ")
        );
    }
    // Re-plant it in case delete removed the link itself, then create over it.
    let _ = fs::remove_file(env.root.join(&name));
    symlink(&victim, env.root.join(&name)).unwrap();
    let out = env.rt(&["create", "--bundle", b.path(), &name]);
    assert_eq!(
        snapshot(&victim),
        before,
        "create through the symlink wrote into its target: {out:#?}"
    );
    if out.ok() {
        // runc 1.1.5 takes the link over; tong refuses (the name exists).
        assert!(
            is_runc(),
            "create succeeded over a planted symlink: {out:#?}"
        );
        env.rt(&["delete", "--force", &name]);
        assert_eq!(
            snapshot(&victim),
            before,
            "delete of the taken-over link changed its target"
        );
    } else {
        out.stderr_has("already exists");
    }
    let _ = fs::remove_file(env.root.join(&name));
    env.assert_nothing_left(&real);
}

#[test]
fn c5_state_root_is_0700_and_state_is_not_writable_by_others() {
    let env = Env::new();
    assert!(!env.root.exists());
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.create(&b, &id);
    let mode = fs::metadata(&env.root).unwrap().mode() & 0o7777;
    assert_eq!(
        mode,
        0o700,
        "state root {} has mode {mode:o}",
        env.root.display()
    );
    // (exec.fifo is 0622 as in runc: only reachable through the 0700 root.)
    let sd = env.state_dir(&id);
    for e in [sd.clone(), sd.join("state.json")] {
        let m = fs::symlink_metadata(&e).unwrap();
        assert_eq!(
            m.mode() & 0o022,
            0,
            "{} is group/world writable ({:o})",
            e.display(),
            m.mode()
        );
        assert_eq!(m.uid(), 0, "{} not owned by root", e.display());
    }
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

/// --pid-file inside the bundle's rootfs, whose last component the
/// container made a symlink to a host file: the link is replaced, its target
/// never written.
#[test]
fn c5_pid_file_symlink_is_replaced_not_followed() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let victim = env.tempdir("victim").join("precious");
    fs::write(&victim, "PRECIOUS\n").unwrap();
    fs::create_dir(b.rootfs().join("run")).unwrap();
    let pidfile = b.rootfs().join("run/c.pid");
    symlink(&victim, &pidfile).unwrap();
    let id = env.id("c");
    env.rt(&[
        "create",
        "--pid-file",
        p(&pidfile),
        "--bundle",
        b.path(),
        &id,
    ])
    .success();
    let pid = init_pid(&env, &id);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "PRECIOUS\n",
        "the pid file was written through the symlink"
    );
    let m = fs::symlink_metadata(&pidfile).unwrap();
    assert!(
        m.file_type().is_file(),
        "pid file is not a regular file now"
    );
    assert_eq!(
        fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

/// A directory component of --pid-file is a container-made symlink to a
/// host dir: the path is the engine's to choose, so (as runc) the file goes
/// where the path leads; what matters is that the file it replaces there is
/// never written through (a symlink to another file stays intact).
#[test]
fn c5_pid_file_through_a_symlinked_directory() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let piddir = env.tempdir("piddir");
    let victim = env.tempdir("victim").join("precious");
    fs::write(&victim, "PRECIOUS\n").unwrap();
    symlink(&victim, piddir.join("c.pid")).unwrap();
    symlink(&piddir, b.rootfs().join("run")).unwrap();
    let pidfile = b.rootfs().join("run/c.pid");
    let id = env.id("c");
    let out = env.rt(&[
        "create",
        "--pid-file",
        p(&pidfile),
        "--bundle",
        b.path(),
        &id,
    ]);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "PRECIOUS\n",
        "the pid file was written through a symlink"
    );
    if out.ok() {
        let pid = init_pid(&env, &id);
        let m = fs::symlink_metadata(piddir.join("c.pid")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(
            fs::read_to_string(piddir.join("c.pid")).unwrap().trim(),
            pid.to_string()
        );
        // No temporary file was left behind.
        assert_eq!(fs::read_dir(&piddir).unwrap().count(), 1);
        env.rt(&["delete", "--force", &id]).success();
    }
    env.assert_nothing_left(&id);
}

fn hook_script(path: &Path, out: &Path, word: &str) {
    fs::write(path, format!("#!/bin/sh\necho {word} >> '{}'\n", p(out))).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A createContainer hook runs in the container's mount namespace before
/// pivot_root, after the config mounts: a volume whose destination the image
/// turned into a symlink to the hook's host dir must not cover the hook.
#[test]
fn c5_create_container_hook_is_not_replaced_through_a_symlinked_mount() {
    let env = Env::new();
    let hooks = env.tempdir("hooks");
    let log = env.base.join("hook.log");
    hook_script(&hooks.join("hook.sh"), &log, "real");
    let vol = env.tempdir("vol");
    hook_script(&vol.join("hook.sh"), &log, "evil");
    let dest = format!("/h/{}", hooks.file_name().unwrap().to_str().unwrap());
    let b = env.bundle_with(&["true"], |c| {
        push_mount(
            c,
            json!({ "destination": dest, "type": "bind", "source": p(&vol), "options": ["bind"] }),
        );
        c["hooks"] = json!({ "createContainer": [ { "path": p(&hooks.join("hook.sh")) } ] });
    });
    // /h -> the scratch dir holding the hooks dir (absolute host path).
    symlink(&env.base, b.rootfs().join("h")).unwrap();
    let id = env.id("c");
    let out = env.run(&b, &id);
    if out.ok() {
        assert_eq!(read_lossy(&log), "real\n", "{out:#?}");
    } else {
        assert!(!read_lossy(&log).contains("evil"), "{out:#?}");
        eprintln!("refused: {}", out.stderr);
    }
    assert!(read_lossy(&hooks.join("hook.sh")).contains("real"));
    env.assert_nothing_left(&id);
}

/// Negative control: the same volume mounted by following /h/hooks covers
/// the host hook dir (in that mount namespace), and the hook run there is
/// the volume's.
#[test]
fn c5_control_naive_mount_replaces_the_hook() {
    let env = Env::new();
    let hooks = env.tempdir("hooks");
    let log = env.base.join("hook.log");
    hook_script(&hooks.join("hook.sh"), &log, "real");
    let vol = env.tempdir("vol");
    hook_script(&vol.join("hook.sh"), &log, "evil");
    let b = env.bundle(&["true"]);
    let link = b.rootfs().join("h");
    symlink(&env.base, &link).unwrap();
    let hooks_dir_name = hooks.file_name().unwrap().to_str().unwrap();
    let out = private_ns(&format!(
        "mount --bind '{v}' '{l}/{h}'\n'{hook}'",
        v = p(&vol),
        l = p(&link),
        h = hooks_dir_name,
        hook = p(&hooks.join("hook.sh"))
    ));
    out.success();
    assert_eq!(read_lossy(&log), "evil\n", "control: {out:#?}");
    assert!(mounts_under(&env.base).is_empty());
}
