//! Every claim `features` makes is exercised: the tests below parse the
//! runtime's own `features` JSON and drive one check per listed entry, so a
//! new claim without a check here (or without support in the runtime) fails.
//!
//! - `mountOptions`: each option is used on a tmpfs (or a bind mount for the
//!   bind-only ones) and, where the kernel shows it in mountinfo, seen there.
//! - `linux.namespaces`: each kind gives the container a namespace that is
//!   not the host's.
//! - `linux.capabilities`: a container granted only that capability has
//!   exactly that bit in CapEff/CapPrm/CapBnd.
//! - `linux.seccomp`: every action behaves, every operator compares, every
//!   architecture is recognised, every supported flag loads.
//! - `hooks`, `linux.cgroup`, `apparmor`/`selinux`/`intelRdt`,
//!   `mountExtensions.idmap`, `ociVersionMin`/`ociVersionMax`.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

// ---- helpers ------------------------------------------------------------------

/// The runtime's `features` output, parsed.
fn features() -> Value {
    let out = host(runtime().to_str().unwrap(), &["features"]);
    out.success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features output is not JSON ({e}): {out:#?}"))
}

/// A string array at `v`, panicking with the whole document if it is not one.
fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("features: {what} is not an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what}: {s} is not a string"))
                .to_string()
        })
        .collect()
}

/// Like [`strings`], but an absent or null property (the spec's "unknown")
/// is an empty list.
fn strings_or_empty(v: &Value, what: &str) -> Vec<String> {
    if v.is_null() {
        Vec::new()
    } else {
        strings(v, what)
    }
}

/// Panics listing every failure collected by a per-entry loop.
#[track_caller]
fn no_failures(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of the {what} claimed by `features` failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

/// mount(2) as the test process (host namespace); panics on error.
fn host_mount(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let src = c(src);
    let tgt = c(target.to_str().unwrap());
    let fst = fstype.map(c);
    let dat = data.map(c);
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fst.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            dat.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr() as *const libc::c_void),
        )
    };
    assert_eq!(
        r,
        0,
        "mount on {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// Host mounts made by a test, lazily unmounted (deepest first) on drop.
#[derive(Default)]
struct HostMounts(Vec<PathBuf>);

impl HostMounts {
    fn tmpfs(&mut self, at: &Path, flags: libc::c_ulong) {
        fs::create_dir_all(at).unwrap();
        host_mount("tmpfs", at, Some("tmpfs"), flags, Some("size=1m"));
        self.0.push(at.to_path_buf());
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Raw mountinfo lines of a container, with their optional fields.
#[derive(Debug, Clone)]
struct RawMount {
    mount_point: String,
    opts: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    super_opts: Vec<String>,
}

impl RawMount {
    fn has(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    fn super_has(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    fn tagged(&self, tag: &str) -> bool {
        self.optional
            .iter()
            .any(|x| x == tag || x.starts_with(&format!("{tag}:")))
    }
}

fn parse_raw(text: &str) -> Vec<RawMount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let lf: Vec<&str> = left.split(' ').collect();
            let rf: Vec<&str> = right.split(' ').collect();
            Some(RawMount {
                mount_point: unescape_mountinfo(lf.get(4)?),
                opts: lf.get(5)?.split(',').map(String::from).collect(),
                optional: lf[6..].iter().map(|s| s.to_string()).collect(),
                fstype: rf.first()?.to_string(),
                super_opts: rf
                    .get(2)
                    .map(|s| s.split(',').map(String::from).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn last_at<'a>(ms: &'a [RawMount], mp: &str) -> Option<&'a RawMount> {
    ms.iter().rev().find(|m| m.mount_point == mp)
}

// ---- mountOptions ---------------------------------------------------------------

/// What to assert about a mount after using an option.
#[derive(Clone, Copy)]
enum Expect {
    /// The per-mount options show it.
    Has(&'static str),
    /// The per-mount options do not show it.
    Lacks(&'static str),
    /// The superblock options show it.
    SuperHas(&'static str),
    /// The superblock options do not show it.
    SuperLacks(&'static str),
    /// A mountinfo optional field (`shared`, `master`, `unbindable`) is there.
    Tagged(&'static str),
    /// ... is not there.
    Untagged(&'static str),
}

fn check(m: &RawMount, e: Expect) -> Result<(), String> {
    let ok = match e {
        Expect::Has(o) => m.has(o),
        Expect::Lacks(o) => !m.has(o),
        Expect::SuperHas(o) => m.super_has(o),
        Expect::SuperLacks(o) => !m.super_has(o),
        Expect::Tagged(t) => m.tagged(t),
        Expect::Untagged(t) => !m.tagged(t),
    };
    let what = match e {
        Expect::Has(o) => format!("has {o}"),
        Expect::Lacks(o) => format!("lacks {o}"),
        Expect::SuperHas(o) => format!("superblock has {o}"),
        Expect::SuperLacks(o) => format!("superblock lacks {o}"),
        Expect::Tagged(t) => format!("propagation field {t}"),
        Expect::Untagged(t) => format!("no propagation field {t}"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} should be: {what}; it is {m:?}", m.mount_point))
    }
}

/// How an option is exercised.
enum Case {
    /// A tmpfs at /m with `options`; expectations on /m.
    Tmpfs(&'static [&'static str], &'static [Expect]),
    /// A bind of the host tree (see `mount_option_claims`) at /data with
    /// `options`; expectations on /data, /data/plain, /data/flagged.
    Bind(
        &'static [&'static str],
        &'static [Expect],
        &'static [Expect],
        &'static [Expect],
    ),
    /// A bind of the host's shared tree at /data; expectations on /data and /data/sub.
    Propagation(
        &'static [&'static str],
        &'static [Expect],
        &'static [Expect],
    ),
    /// Checked by its own scenario below.
    Special,
}

fn case_for(opt: &str) -> Option<Case> {
    use Expect::*;
    Some(match opt {
        // Per-mount flags: set, or cleared after being set (later wins).
        "ro" => Case::Tmpfs(&["ro"], &[Has("ro")]),
        "rw" => Case::Tmpfs(&["ro", "rw"], &[Has("rw"), Lacks("ro")]),
        "nosuid" => Case::Tmpfs(&["nosuid"], &[Has("nosuid")]),
        "suid" => Case::Tmpfs(&["nosuid", "suid"], &[Lacks("nosuid")]),
        "nodev" => Case::Tmpfs(&["nodev"], &[Has("nodev")]),
        "dev" => Case::Tmpfs(&["nodev", "dev"], &[Lacks("nodev")]),
        "noexec" => Case::Tmpfs(&["noexec"], &[Has("noexec")]),
        "exec" => Case::Tmpfs(&["noexec", "exec"], &[Lacks("noexec")]),
        "nosymfollow" => Case::Tmpfs(&["nosymfollow"], &[Has("nosymfollow")]),
        "symfollow" => Case::Tmpfs(&["nosymfollow", "symfollow"], &[Lacks("nosymfollow")]),
        "noatime" => Case::Tmpfs(&["noatime"], &[Has("noatime"), Lacks("relatime")]),
        "atime" => Case::Tmpfs(&["noatime", "atime"], &[Lacks("noatime")]),
        // (MS_NOATIME wins over MS_RELATIME in mount(2) and in libmount, so
        // "relatime" cannot undo "noatime"; it is the kernel default anyway.)
        "relatime" => Case::Tmpfs(&["relatime"], &[Has("relatime"), Lacks("noatime")]),
        "strictatime" => Case::Tmpfs(&["strictatime"], &[Lacks("relatime"), Lacks("noatime")]),
        "nodiratime" => Case::Tmpfs(&["nodiratime"], &[Has("nodiratime")]),
        "diratime" => Case::Tmpfs(&["nodiratime", "diratime"], &[Lacks("nodiratime")]),
        // mount(8) semantics are "kernel default": only that they are accepted.
        "norelatime" | "nostrictatime" => Case::Tmpfs(&["noatime", "__OPT__"], &[]),
        // Superblock flags (shown after the fs type).
        "sync" => Case::Tmpfs(&["sync"], &[SuperHas("sync")]),
        "async" => Case::Tmpfs(&["sync", "async"], &[SuperLacks("sync")]),
        "dirsync" => Case::Tmpfs(&["dirsync"], &[SuperHas("dirsync")]),
        "lazytime" => Case::Tmpfs(&["lazytime"], &[SuperHas("lazytime")]),
        "nolazytime" => Case::Tmpfs(&["lazytime", "nolazytime"], &[SuperLacks("lazytime")]),
        // Not shown in mountinfo for tmpfs (or ignored by this kernel: mand).
        "mand" | "nomand" | "iversion" | "noiversion" | "acl" | "noacl" | "silent" | "loud" => {
            Case::Tmpfs(&["__OPT__"], &[])
        }
        "defaults" => Case::Tmpfs(
            &["defaults"],
            &[Has("rw"), Lacks("nosuid"), Lacks("noexec")],
        ),
        // Bind-only options. /data/plain is a host tmpfs with default
        // flags, /data/flagged one with every flag set (ro, nosuid, ...).
        "bind" => Case::Special,
        "rbind" => Case::Special,
        "remount" => Case::Special,
        "tmpcopyup" => Case::Special,
        "idmap" | "ridmap" => Case::Special,
        "rro" => Case::Bind(&["rbind", "rro"], &[Has("ro")], &[Has("ro")], &[]),
        "rrw" => Case::Bind(
            &["rbind", "rrw"],
            &[Has("rw")],
            &[],
            &[Has("rw"), Lacks("ro")],
        ),
        "rnosuid" => Case::Bind(
            &["rbind", "rnosuid"],
            &[Has("nosuid")],
            &[Has("nosuid")],
            &[],
        ),
        "rsuid" => Case::Bind(&["rbind", "rsuid"], &[], &[], &[Lacks("nosuid")]),
        "rnodev" => Case::Bind(&["rbind", "rnodev"], &[Has("nodev")], &[Has("nodev")], &[]),
        "rdev" => Case::Bind(&["rbind", "rdev"], &[], &[], &[Lacks("nodev")]),
        "rnoexec" => Case::Bind(
            &["rbind", "rnoexec"],
            &[Has("noexec")],
            &[Has("noexec")],
            &[],
        ),
        "rexec" => Case::Bind(&["rbind", "rexec"], &[], &[], &[Lacks("noexec")]),
        "rnosymfollow" => Case::Bind(
            &["rbind", "rnosymfollow"],
            &[Has("nosymfollow")],
            &[Has("nosymfollow")],
            &[],
        ),
        "rsymfollow" => Case::Bind(&["rbind", "rsymfollow"], &[], &[], &[Lacks("nosymfollow")]),
        "rnoatime" => Case::Bind(
            &["rbind", "rnoatime"],
            &[Has("noatime")],
            &[Has("noatime")],
            &[],
        ),
        "ratime" => Case::Bind(&["rbind", "ratime"], &[], &[], &[Lacks("noatime")]),
        "rrelatime" => Case::Bind(
            &["rbind", "rrelatime"],
            &[],
            &[Has("relatime")],
            &[Has("relatime"), Lacks("noatime")],
        ),
        "rstrictatime" => Case::Bind(
            &["rbind", "rstrictatime"],
            &[Lacks("relatime"), Lacks("noatime")],
            &[Lacks("relatime"), Lacks("noatime")],
            &[Lacks("relatime"), Lacks("noatime")],
        ),
        "rnorelatime" | "rnostrictatime" => Case::Bind(&["rbind", "__OPT__"], &[], &[], &[]),
        "rnodiratime" => Case::Bind(
            &["rbind", "rnodiratime"],
            &[Has("nodiratime")],
            &[Has("nodiratime")],
            &[],
        ),
        "rdiratime" => Case::Bind(&["rbind", "rdiratime"], &[], &[], &[Lacks("nodiratime")]),
        // Propagation, on a bind of a host tree that is shared: the
        // container's copy (default rootfsPropagation: rslave) is its slave.
        "shared" => Case::Propagation(
            &["rbind", "shared"],
            &[Tagged("shared")],
            &[Untagged("shared")],
        ),
        "rshared" => Case::Propagation(
            &["rbind", "rshared"],
            &[Tagged("shared")],
            &[Tagged("shared")],
        ),
        "slave" => Case::Propagation(
            &["rbind", "slave"],
            &[Tagged("master"), Untagged("shared")],
            &[Tagged("master")],
        ),
        "rslave" => Case::Propagation(
            &["rbind", "rslave"],
            &[Tagged("master"), Untagged("shared")],
            &[Tagged("master"), Untagged("shared")],
        ),
        "private" => Case::Propagation(
            &["rbind", "private"],
            &[
                Untagged("master"),
                Untagged("shared"),
                Untagged("unbindable"),
            ],
            &[Tagged("master")],
        ),
        "rprivate" => Case::Propagation(
            &["rbind", "rprivate"],
            &[Untagged("master"), Untagged("shared")],
            &[Untagged("master"), Untagged("shared")],
        ),
        "unbindable" => Case::Propagation(
            &["rbind", "unbindable"],
            &[Tagged("unbindable")],
            &[Untagged("unbindable")],
        ),
        "runbindable" => Case::Propagation(
            &["rbind", "runbindable"],
            &[Tagged("unbindable")],
            &[Tagged("unbindable")],
        ),
        _ => return None,
    })
}

fn opts_json(opts: &[&str], opt: &str) -> Value {
    json!(
        opts.iter()
            .map(|o| if *o == "__OPT__" { opt } else { o })
            .collect::<Vec<_>>()
    )
}

/// Runs `cat /proc/self/mountinfo` with `edit`; Err carries the output.
fn mountinfo_with(env: &Env, edit: impl FnOnce(&mut Value)) -> Result<Vec<RawMount>, String> {
    let out = env.run_with(&["cat", "/proc/self/mountinfo"], edit);
    if !out.ok() {
        return Err(format!("container failed: {out:#?}"));
    }
    Ok(parse_raw(&out.stdout))
}

fn expect_all(ms: &[RawMount], mp: &str, es: &[Expect]) -> Result<(), String> {
    let m = last_at(ms, mp).ok_or_else(|| format!("no mount at {mp}"))?;
    for e in es {
        check(m, *e)?;
    }
    Ok(())
}

#[test]
fn mount_option_claims() {
    let f = features();
    let opts = strings(&f["mountOptions"], "mountOptions");
    assert!(!opts.is_empty());
    let env = Env::new();
    let mut hm = HostMounts::default();

    // The bind source: a plain dir with two host tmpfs submounts.
    let tree = env.tempdir("tree");
    let plain = tree.join("plain");
    let flagged = tree.join("flagged");
    hm.tmpfs(&plain, 0);
    fs::write(plain.join("marker"), "plain\n").unwrap();
    let all = libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_NOSYMFOLLOW;
    hm.tmpfs(&flagged, all);
    host_mount(
        "none",
        &flagged,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | all,
        None,
    );
    // Sanity: the host sees the flags we rely on.
    let hostinfo = parse_raw(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let fl = last_at(&hostinfo, flagged.to_str().unwrap()).unwrap();
    for o in [
        "ro",
        "nosuid",
        "nodev",
        "noexec",
        "noatime",
        "nodiratime",
        "nosymfollow",
    ] {
        assert!(fl.has(o), "host setup: {o} missing on {fl:?}");
    }

    // A shared host tree for the propagation options.
    let shared = env.tempdir("shared");
    hm.tmpfs(&shared, 0);
    host_mount("none", &shared, None, libc::MS_SHARED, None);
    hm.tmpfs(&shared.join("sub"), 0);
    let hostinfo = parse_raw(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert!(
        last_at(&hostinfo, shared.join("sub").to_str().unwrap())
            .unwrap()
            .tagged("shared")
    );

    let tree_s = tree.to_str().unwrap().to_string();
    let shared_s = shared.to_str().unwrap().to_string();
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for opt in &opts {
        if is_runc() && ["defaults", "ratime", "rnostrictatime"].contains(&opt.as_str()) {
            // runc 1.1.5 bugs: "defaults" goes to tmpfs as data (EINVAL);
            // ratime/rnostrictatime clear only part of MOUNT_ATTR__ATIME (EINVAL).
            continue;
        }
        let Some(case) = case_for(opt) else {
            failures.push(format!(
                "{opt}: `features` lists it but this test has no check for it (add one)"
            ));
            continue;
        };
        let r = match case {
            Case::Tmpfs(o, es) => {
                let o = opts_json(o, opt);
                mountinfo_with(&env, |c| {
                    push_mount(c, json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": o}));
                })
                .and_then(|ms| {
                    let m = last_at(&ms, "/m").ok_or("no mount at /m")?;
                    if m.fstype != "tmpfs" {
                        return Err(format!("/m is not a tmpfs: {m:?}"));
                    }
                    expect_all(&ms, "/m", es)
                })
            }
            Case::Bind(o, top, p, fl) => {
                let o = opts_json(o, opt);
                mountinfo_with(&env, |c| {
                    push_mount(c, json!({"destination": "/data", "type": "bind", "source": tree_s, "options": o}));
                })
                .and_then(|ms| {
                    expect_all(&ms, "/data", top)?;
                    expect_all(&ms, "/data/plain", p)?;
                    expect_all(&ms, "/data/flagged", fl)
                })
            }
            Case::Propagation(o, top, sub) => mountinfo_with(&env, |c| {
                push_mount(c, json!({"destination": "/data", "type": "bind", "source": shared_s, "options": o}));
            })
            .and_then(|ms| {
                expect_all(&ms, "/data", top)?;
                expect_all(&ms, "/data/sub", sub)
            }),
            Case::Special => special_option(&env, &f, opt, &tree_s),
        };
        match r {
            Ok(()) => checked.push(opt.clone()),
            Err(e) => failures.push(format!("mount option {opt:?}: {e}")),
        }
    }
    drop(hm);
    no_failures("mount options", failures);
    assert_eq!(checked.len(), opts.len() - if is_runc() { 3 } else { 0 });
}

/// The options that need a scenario of their own.
fn special_option(env: &Env, f: &Value, opt: &str, tree: &str) -> Result<(), String> {
    match opt {
        // bind: the tree without its submounts; rbind: with them.
        "bind" | "rbind" => {
            let out = env.run_with(
                &["sh", "-c", "cat /data/plain/marker 2>/dev/null || echo none; grep -c ' /data' /proc/self/mountinfo"],
                |c| {
                    push_mount(c, json!({"destination": "/data", "type": "bind", "source": tree, "options": [opt]}));
                },
            );
            if !out.ok() {
                return Err(format!("container failed: {out:#?}"));
            }
            let want: &[&str] = if opt == "bind" {
                &["none", "1"]
            } else {
                &["plain", "3"]
            };
            if out.lines() != want {
                return Err(format!("expected {want:?}: {out:#?}"));
            }
            Ok(())
        }
        // remount: a second entry for the same destination changes the
        // first mount instead of stacking a new one.
        "remount" => {
            let ms = mountinfo_with(env, |c| {
                push_mount(
                    c,
                    json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
                );
                push_mount(
                    c,
                    json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                                     "options": ["remount", "ro", "size=2m"]}),
                );
            })?;
            let at: Vec<&RawMount> = ms.iter().filter(|m| m.mount_point == "/m").collect();
            if at.len() != 1 {
                return Err(format!("remount stacked a second mount at /m: {at:#?}"));
            }
            check(at[0], Expect::Has("ro"))?;
            check(at[0], Expect::SuperHas("size=2048k"))
        }
        // tmpcopyup: the tmpfs starts with the rootfs content it covers.
        "tmpcopyup" => {
            let out = env.run_with(
                &[
                    "sh",
                    "-c",
                    "cat /etc/group; grep ' /etc ' /proc/self/mountinfo",
                ],
                |c| {
                    push_mount(
                        c,
                        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                     "options": ["tmpcopyup", "size=1m"]}),
                    );
                },
            );
            if !out.ok() || !out.stdout.starts_with(GROUP) || !out.stdout.contains(" - tmpfs ") {
                return Err(format!(
                    "/etc should be a tmpfs holding the rootfs's /etc/group: {out:#?}"
                ));
            }
            Ok(())
        }
        "idmap" | "ridmap" => idmap_scenario(env, f, opt),
        _ => unreachable!("{opt}"),
    }
}

// ---- mountExtensions.idmap ------------------------------------------------------------

const MAP: [(u32, u32, u32); 1] = [(0, 100000, 65536)];

fn mapping_json() -> Value {
    json!(
        MAP.iter()
            .map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s}))
            .collect::<Vec<_>>()
    )
}

fn add_userns(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = mapping_json();
    c["linux"]["gidMappings"] = mapping_json();
}

/// With idmap enabled: a bind mount with `opt` (idmap/ridmap) and the
/// container's mapping shows host-owned files with their on-disk ids inside
/// (host uid 0 as 0, host uid 1 as 1) instead of the overflow id, and files
/// the container's root creates land on disk as uid 0. Without idmap the
/// same config is refused with an error naming idmap.
fn idmap_scenario(env: &Env, f: &Value, opt: &str) -> Result<(), String> {
    let enabled = &f["linux"]["mountExtensions"]["idmap"]["enabled"];
    if enabled.is_null() {
        return Ok(()); // "unknown" (runc 1.1 predates the property)
    }
    let enabled = enabled == &json!(true);
    let dir = env.tempdir("idmap");
    fs::write(dir.join("root-owned"), "r\n").unwrap();
    fs::write(dir.join("one-owned"), "1\n").unwrap();
    std::os::unix::fs::chown(dir.join("one-owned"), Some(1), Some(1)).unwrap();
    let src = dir.to_str().unwrap().to_string();
    let script = "stat -c %u:%g /m/root-owned /m/one-owned; touch /m/made-inside && echo made";
    let out = run_userns_with_m(env, script, |c| {
        push_mount(
            c,
            json!({"destination": "/m", "type": "bind", "source": src,
                             "options": ["rbind", opt], "uidMappings": mapping_json(), "gidMappings": mapping_json()}),
        );
    });
    if !enabled {
        if out.ok() {
            return Err(format!(
                "idmap is claimed disabled but an {opt} mount was accepted: {out:#?}"
            ));
        }
        if !out.stderr.contains("idmap") {
            return Err(format!(
                "refusal of an {opt} mount should name idmap: {out:#?}"
            ));
        }
        return Ok(());
    }
    // Support is per filesystem (tmpfs only since Linux 6.3; the test VM's /tmp is a tmpfs on
    // 6.1): a filesystem that cannot be idmapped must be named as such, and the claim is then
    // checked no further here.
    if !is_runc() && !out.ok() && out.stderr.contains("does not support idmapped mounts") {
        eprintln!(
            "skipped: {src} is on a filesystem without idmapped mounts: {}",
            out.stderr.trim()
        );
        return Ok(());
    }
    if !out.ok() || out.lines() != ["0:0", "1:1", "made"] {
        return Err(format!(
            "expected on-disk ids 0:0 and 1:1 inside and a file made: {out:#?}"
        ));
    }
    let md = fs::metadata(dir.join("made-inside")).map_err(|e| e.to_string())?;
    if (md.uid(), md.gid()) != (0, 0) {
        return Err(format!(
            "a file made by the container's root through an idmapped mount is owned by {}:{} on disk, not 0:0",
            md.uid(),
            md.gid()
        ));
    }
    Ok(())
}

/// Runs `sh -c script` in a user namespace (0 -> 100000, 65536 ids) with
/// /m already in the rootfs: the container's root (host uid 100000) cannot
/// create mount points in a rootfs owned by host root.
fn run_userns_with_m(env: &Env, script: &str, edit: impl FnOnce(&mut Value)) -> Out {
    let b = env.bundle_with(&["sh", "-c", script], |c| {
        add_userns(c);
        edit(c);
    });
    fs::create_dir(b.rootfs().join("m")).unwrap();
    let id = env.id(&format!(
        "u{}",
        b.dir.file_name().unwrap().to_string_lossy()
    ));
    env.run(&b, &id)
}

#[test]
fn mount_extension_idmap_claim() {
    let f = features();
    let enabled = &f["linux"]["mountExtensions"]["idmap"]["enabled"];
    if is_runc() && enabled.is_null() {
        return; // runc 1.1 predates mountExtensions
    }
    assert!(enabled.is_boolean(), "mountExtensions.idmap.enabled: {f}");
    let env = Env::new();
    // Negative control: without idmap, host-owned files show as the
    // overflow id inside the user namespace.
    let dir = env.tempdir("plain");
    fs::write(dir.join("root-owned"), "r\n").unwrap();
    let src = dir.to_str().unwrap().to_string();
    let out = run_userns_with_m(&env, "stat -c %u /m/root-owned", |c| {
        push_mount(
            c,
            json!({"destination": "/m", "type": "bind", "source": src, "options": ["rbind"]}),
        );
    });
    out.success();
    assert_eq!(out.stdout.trim(), "65534");
    idmap_scenario(&env, &f, "idmap").unwrap();
}

// ---- linux.namespaces -----------------------------------------------------------

fn ns_file(kind: &str) -> &'static str {
    match kind {
        "cgroup" => "cgroup",
        "ipc" => "ipc",
        "mount" => "mnt",
        "network" => "net",
        "pid" => "pid",
        "time" => "time",
        "user" => "user",
        "uts" => "uts",
        other => panic!(
            "`features` lists namespace {other:?}: this test does not know its /proc/PID/ns file"
        ),
    }
}

const ALL_NS: [&str; 8] = [
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

#[test]
fn namespace_claims() {
    let f = features();
    let kinds = strings(&f["linux"]["namespaces"], "linux.namespaces");
    assert!(kinds.contains(&"mount".to_string()));
    let env = Env::new();
    let me = std::process::id();
    let host_ns = |k: &str| fs::read_link(format!("/proc/{me}/ns/{}", ns_file(k))).unwrap();
    let mut failures = Vec::new();
    for kind in &kinds {
        let file = ns_file(kind);
        // The container gets exactly mount + this kind, so every other kind
        // must still be the host's. A user namespace needs the default set
        // (mounting proc, sysfs and mqueue needs pid, net and ipc owned by it).
        let set: Vec<&str> = if kind == "user" {
            vec!["pid", "network", "ipc", "uts", "mount", "user"]
        } else if kind == "mount" {
            vec!["mount"]
        } else {
            vec!["mount", kind.as_str()]
        };
        let script = ALL_NS
            .iter()
            .map(|k| format!("readlink /proc/$$/ns/{}", ns_file(k)))
            .collect::<Vec<_>>()
            .join("; ");
        let out = env.run_with(&["sh", "-c", &script], |c| {
            set_namespaces(c, &set);
            if !set.contains(&"uts") {
                c.as_object_mut().unwrap().remove("hostname");
            }
            if kind == "user" {
                c["linux"]["uidMappings"] = mapping_json();
                c["linux"]["gidMappings"] = mapping_json();
            }
        });
        if !out.ok() {
            failures.push(format!("namespace {kind}: container failed: {out:#?}"));
            continue;
        }
        let lines = out.lines();
        if lines.len() != ALL_NS.len() {
            failures.push(format!("namespace {kind}: unexpected output {out:#?}"));
            continue;
        }
        for (k, inside) in ALL_NS.iter().zip(lines) {
            let host = host_ns(k);
            let host = host.to_str().unwrap();
            if *k == kind.as_str() && inside == host {
                failures.push(format!(
                    "namespace {kind}: the container's {file} namespace is the host's ({inside})"
                ));
            }
            if !set.contains(k) && inside != host {
                failures.push(format!("namespace {kind}: {k} was not asked for but differs from the host's ({inside} vs {host})"));
            }
        }
    }
    no_failures("namespaces", failures);
}

// ---- linux.capabilities ---------------------------------------------------------

/// Bit numbers from linux/capability.h.
fn cap_bit(name: &str) -> Option<u32> {
    const CAPS: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    CAPS.iter().position(|c| *c == name).map(|p| p as u32)
}

#[test]
fn capability_claims() {
    let f = features();
    let caps = strings(&f["linux"]["capabilities"], "linux.capabilities");
    let last_cap: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // This test's own bounding set: a capability outside it cannot be
    // granted by any runtime (the sandbox may lack e.g. CAP_SYS_RESOURCE);
    // asking for it must then fail cleanly.
    let own_bnd = u64::from_str_radix(
        status_field(&fs::read_to_string("/proc/self/status").unwrap(), "CapBnd").unwrap(),
        16,
    )
    .unwrap();
    let env = Env::new();
    let mut failures = Vec::new();
    let mut bits = Vec::new();
    for cap in &caps {
        let Some(bit) = cap_bit(cap) else {
            failures.push(format!(
                "{cap}: not a capability this test knows (linux/capability.h)"
            ));
            continue;
        };
        bits.push(bit);
        if bit > last_cap {
            failures.push(format!(
                "{cap} (bit {bit}) is claimed but this kernel's last capability is {last_cap}"
            ));
            continue;
        }
        let out = env.run_with(
            &[
                "sh",
                "-c",
                "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb):' /proc/$$/status",
            ],
            |c| {
                c["process"]["capabilities"] =
                    json!({"bounding": [cap], "effective": [cap], "permitted": [cap]});
            },
        );
        if own_bnd & (1 << bit) == 0 {
            eprintln!("{cap} is not in this test's bounding set: only checking that it is refused");
            if out.ok() {
                failures.push(format!(
                    "{cap}: granted although the caller does not have it?! {out:#?}"
                ));
            }
            continue;
        }
        if !out.ok() {
            failures.push(format!("{cap}: container failed: {out:#?}"));
            continue;
        }
        let want = format!("{:016x}", 1u64 << bit);
        for (key, v) in [
            ("CapEff", &want[..]),
            ("CapPrm", &want),
            ("CapBnd", &want),
            ("CapInh", "0000000000000000"),
            ("CapAmb", "0000000000000000"),
        ] {
            let got = status_field(&out.stdout, key).unwrap_or("missing");
            if got != v {
                failures.push(format!("{cap}: {key} is {got}, want {v}"));
            }
        }
    }
    // Every capability this kernel has is claimed (and nothing twice).
    bits.sort_unstable();
    let n = bits.len();
    bits.dedup();
    assert_eq!(bits.len(), n, "a capability is listed twice: {caps:?}");
    if !is_runc() {
        assert_eq!(
            bits,
            (0..=last_cap).collect::<Vec<_>>(),
            "claimed capabilities vs the kernel's 0..={last_cap}"
        );
    }
    no_failures("capabilities", failures);
}

// ---- linux.seccomp -----------------------------------------------------------------

fn native_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "SCMP_ARCH_X86_64"
    } else if cfg!(target_arch = "aarch64") {
        "SCMP_ARCH_AARCH64"
    } else {
        panic!("add this host's SCMP_ARCH name")
    }
}

const MKDIR_SCRIPT: &str = "mkdir /dev/shm/x; echo rc=$?";

/// A profile allowing everything but mkdir/mkdirat, which get `rule`.
fn mkdir_profile(rule: Value) -> Value {
    let mut r = rule;
    r["names"] = json!(["mkdir", "mkdirat"]);
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [r]})
}

/// Answers one seccomp notification on the listener socket with `errno`,
/// returning the syscall number it saw.
fn answer_one_notification(
    listener: UnixListener,
    errno: i32,
) -> std::thread::JoinHandle<Result<i32, String>> {
    std::thread::spawn(move || -> Result<i32, String> {
        let (s, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let r = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| e.to_string())?;
        let mut fds = Vec::new();
        for c in r.cmsgs().map_err(|e| e.to_string())? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        let fd = *fds.first().ok_or("no fd received")?;
        // struct seccomp_notif: id u64, pid u32, flags u32, seccomp_data
        // (nr i32, arch u32, ip u64, args [u64; 6]) = 80 bytes.
        #[repr(C)]
        struct Notif {
            id: u64,
            pid: u32,
            flags: u32,
            nr: i32,
            arch: u32,
            ip: u64,
            args: [u64; 6],
        }
        #[repr(C)]
        struct Resp {
            id: u64,
            val: i64,
            error: i32,
            flags: u32,
        }
        const RECV: libc::c_ulong = 0xc050_2100; // _IOWR('!', 0, struct seccomp_notif)
        const SEND: libc::c_ulong = 0xc018_2101; // _IOWR('!', 1, struct seccomp_notif_resp)
        let mut n: Notif = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, RECV as _, &mut n as *mut Notif) } != 0 {
            return Err(format!("NOTIF_RECV: {}", std::io::Error::last_os_error()));
        }
        let resp = Resp {
            id: n.id,
            val: 0,
            error: -errno,
            flags: 0,
        };
        if unsafe { libc::ioctl(fd, SEND as _, &resp as *const Resp) } != 0 {
            return Err(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
        }
        unsafe { libc::close(fd) };
        Ok(n.nr)
    })
}

#[test]
fn seccomp_action_claims() {
    let f = features();
    let sc = &f["linux"]["seccomp"];
    assert_eq!(sc["enabled"], json!(true), "{sc}");
    let actions = strings(&sc["actions"], "linux.seccomp.actions");
    let env = Env::new();
    let mut failures = Vec::new();
    for action in &actions {
        // (profile edit, expected output of MKDIR_SCRIPT run in a child sh,
        // expected stderr fragment)
        let mut listener = None;
        let (profile, want, msg): (Value, &str, &str) = match action.as_str() {
            "SCMP_ACT_ERRNO" => (
                mkdir_profile(json!({"action": action, "errnoRet": 18})),
                "rc=1",
                "Invalid cross-device link",
            ),
            "SCMP_ACT_KILL"
            | "SCMP_ACT_KILL_THREAD"
            | "SCMP_ACT_KILL_PROCESS"
            | "SCMP_ACT_TRAP" => (mkdir_profile(json!({"action": action})), "rc=159", ""),
            "SCMP_ACT_TRACE" => (
                mkdir_profile(json!({"action": action})),
                "rc=1",
                "Function not implemented",
            ),
            "SCMP_ACT_LOG" => (mkdir_profile(json!({"action": action})), "rc=0", ""),
            // ALLOW as a rule in a deny-by-default profile: mkdir passes,
            // while rmdir (not listed) is refused with the default errno.
            "SCMP_ACT_ALLOW" => {
                let mut p: Value = serde_json::from_str(
                    &fs::read_to_string(repo_dir().join("tests/data/docker-seccomp.json")).unwrap(),
                )
                .unwrap();
                for r in p["syscalls"].as_array_mut().unwrap() {
                    r["names"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|n| !["mkdir", "mkdirat", "rmdir"].contains(&n.as_str().unwrap()));
                }
                p["syscalls"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ALLOW"}));
                (p, "rc=0 rmdir=1", "")
            }
            "SCMP_ACT_NOTIFY" => {
                let sock = env.tempdir("listener").join("l.sock");
                let l = UnixListener::bind(&sock).unwrap();
                listener = Some(answer_one_notification(l, libc::EXDEV));
                let mut p = mkdir_profile(json!({"action": action}));
                p["listenerPath"] = json!(sock.to_str().unwrap());
                (p, "rc=1", "Invalid cross-device link")
            }
            other => {
                failures.push(format!(
                    "{other}: `features` lists it but this test has no check for it (add one)"
                ));
                continue;
            }
        };
        let script = if action == "SCMP_ACT_ALLOW" {
            "mkdir /dev/shm/x; echo rc=$?; rmdir /dev/shm/x; echo rmdir=$?"
        } else {
            "sh -c 'mkdir /dev/shm/x'; echo rc=$?"
        };
        let out = env.run_with(&["sh", "-c", script], |c| c["linux"]["seccomp"] = profile);
        if let Some(h) = listener {
            match h.join().unwrap() {
                Ok(nr) if nr == libc::SYS_mkdir as i32 || nr == libc::SYS_mkdirat as i32 => {}
                Ok(nr) => failures.push(format!(
                    "{action}: the listener saw syscall {nr}, not mkdir"
                )),
                Err(e) => failures.push(format!("{action}: listener: {e}")),
            }
        }
        if !out.ok() || out.lines().join(" ") != want || !out.stderr.contains(msg) {
            failures.push(format!(
                "{action}: expected {want:?} and stderr with {msg:?}: {out:#?}"
            ));
        }
    }
    no_failures("seccomp actions", failures);
}

#[test]
fn seccomp_operator_claims() {
    let f = features();
    let ops = strings(
        &f["linux"]["seccomp"]["operators"],
        "linux.seccomp.operators",
    );
    let env = Env::new();
    // chmod(path, mode): busybox `chmod 750 f` passes the mode as arg 1.
    // Each rule compares it with 0755; the modes tried are 700 750 755 777.
    let modes = [0o700u64, 0o750, 0o755, 0o777];
    let mut failures = Vec::new();
    for op in &ops {
        let (arg, denied): (Value, &[u64]) = match op.as_str() {
            "SCMP_CMP_EQ" => (json!({"index": 1, "value": 0o755, "op": op}), &[0o755]),
            "SCMP_CMP_NE" => (
                json!({"index": 1, "value": 0o755, "op": op}),
                &[0o700, 0o750, 0o777],
            ),
            "SCMP_CMP_LT" => (
                json!({"index": 1, "value": 0o755, "op": op}),
                &[0o700, 0o750],
            ),
            "SCMP_CMP_LE" => (
                json!({"index": 1, "value": 0o755, "op": op}),
                &[0o700, 0o750, 0o755],
            ),
            "SCMP_CMP_GT" => (json!({"index": 1, "value": 0o755, "op": op}), &[0o777]),
            "SCMP_CMP_GE" => (
                json!({"index": 1, "value": 0o755, "op": op}),
                &[0o755, 0o777],
            ),
            // group bits == 5
            "SCMP_CMP_MASKED_EQ" => (
                json!({"index": 1, "value": 0o070, "valueTwo": 0o050, "op": op}),
                &[0o750, 0o755],
            ),
            other => {
                failures.push(format!(
                    "{other}: `features` lists it but this test has no check for it (add one)"
                ));
                continue;
            }
        };
        let script = "touch /dev/shm/f; for m in 700 750 755 777; do chmod $m /dev/shm/f 2>/dev/null && echo $m:ok || echo $m:denied; done";
        let out = env.run_with(&["sh", "-c", script], |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [arg]}]
            });
        });
        let want: Vec<String> = modes
            .iter()
            .map(|m| format!("{m:o}:{}", if denied.contains(m) { "denied" } else { "ok" }))
            .collect();
        if !out.ok() || out.lines() != want {
            failures.push(format!("{op}: expected {want:?}: {out:#?}"));
        }
    }
    no_failures("seccomp operators", failures);
}

/// Architectures whose byte order differs from x86/arm/riscv hosts'.
const BIG_ENDIAN: [&str; 7] = [
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
];

#[test]
fn seccomp_arch_claims() {
    const {
        assert!(
            cfg!(target_endian = "little"),
            "BIG_ENDIAN below assumes a little-endian host"
        )
    };
    let f = features();
    let archs = strings(&f["linux"]["seccomp"]["archs"], "linux.seccomp.archs");
    assert!(
        archs.iter().any(|a| a == native_arch()),
        "the host's own arch is not claimed: {archs:?}"
    );
    let env = Env::new();
    let mut failures = Vec::new();
    for arch in &archs {
        let b = env.bundle_with(&["sh", "-c", MKDIR_SCRIPT], |c| {
            let mut p = mkdir_profile(json!({"action": "SCMP_ACT_ERRNO"}));
            p["architectures"] = json!([native_arch(), arch]);
            c["linux"]["seccomp"] = p;
        });
        let id = env.id(&format!("arch{}", arch.to_lowercase()));
        let out = env.run(&b, &id);
        if BIG_ENDIAN.contains(&arch.as_str()) {
            // libseccomp cannot put a foreign byte order in one filter with
            // the native arch: recognised, but refused cleanly.
            if out.ok() {
                failures.push(format!("{arch}: a mixed-endian filter loaded?! {out:#?}"));
            } else if !is_runc() && !out.stderr.contains(arch.as_str()) {
                failures.push(format!(
                    "{arch}: the refusal should name the architecture: {out:#?}"
                ));
            }
            if env.state_dir(&id).exists() {
                failures.push(format!("{arch}: state left behind after the refusal"));
            }
        } else if !out.ok()
            || out.lines() != ["rc=1"]
            || !out.stderr.contains("Operation not permitted")
        {
            failures.push(format!(
                "{arch}: the profile should load and deny mkdir: {out:#?}"
            ));
        }
    }
    no_failures("seccomp architectures", failures);
}

#[test]
fn seccomp_flag_claims() {
    let f = features();
    let sc = &f["linux"]["seccomp"];
    let known = strings_or_empty(&sc["knownFlags"], "linux.seccomp.knownFlags");
    let flags = strings_or_empty(&sc["supportedFlags"], "linux.seccomp.supportedFlags");
    for fl in &flags {
        assert!(
            known.contains(fl),
            "supported flag {fl} is not in knownFlags"
        );
    }
    let env = Env::new();
    let mut failures = Vec::new();
    for flag in &flags {
        let mut listener = None;
        let mut p = mkdir_profile(json!({"action": "SCMP_ACT_ERRNO"}));
        let (want, msg) = if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" {
            // Only valid together with a listener (SECCOMP_FILTER_FLAG_NEW_LISTENER).
            let sock = env.tempdir("listener").join("l.sock");
            let l = UnixListener::bind(&sock).unwrap();
            listener = Some(answer_one_notification(l, libc::EXDEV));
            p = mkdir_profile(json!({"action": "SCMP_ACT_NOTIFY"}));
            p["listenerPath"] = json!(sock.to_str().unwrap());
            ("rc=1", "Invalid cross-device link")
        } else {
            ("rc=1", "Operation not permitted")
        };
        p["flags"] = json!([flag]);
        let out = env.run_with(&["sh", "-c", MKDIR_SCRIPT], |c| c["linux"]["seccomp"] = p);
        if let Some(h) = listener
            && let Err(e) = h.join().unwrap()
        {
            failures.push(format!("{flag}: listener: {e}"));
        }
        if !out.ok() || out.lines() != [want] || !out.stderr.contains(msg) {
            failures.push(format!("{flag}: expected {want:?} with {msg:?}: {out:#?}"));
        }
    }
    no_failures("seccomp flags", failures);
}

// ---- hooks ------------------------------------------------------------------------

#[test]
fn hook_claims() {
    let f = features();
    let hooks = strings(&f["hooks"], "hooks");
    let env = Env::new();
    let log = env.base.join("hooks.log");
    let mut failures = Vec::new();
    let b = env.bundle_with(&["true"], |c| {
        c["root"]["readonly"] = json!(false);
        let mut m = serde_json::Map::new();
        for h in &hooks {
            // startContainer runs inside the container: its log is there.
            let target = if h == "startContainer" {
                "/tmp/hooks.log".to_string()
            } else {
                log.display().to_string()
            };
            m.insert(
                h.clone(),
                json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {h} >> {target}")]}]),
            );
        }
        c["hooks"] = Value::Object(m);
    });
    let id = env.id("c");
    env.create(&b, &id);
    env.rt(&["start", &id]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
    let mut ran: Vec<String> = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    ran.extend(
        fs::read_to_string(b.rootfs().join("tmp/hooks.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from),
    );
    for h in &hooks {
        let n = ran.iter().filter(|r| *r == h).count();
        if n != 1 {
            failures.push(format!("hook {h} ran {n} times (log: {ran:?})"));
        }
    }
    env.assert_nothing_left(&id);
    no_failures("hooks", failures);
}

// ---- linux.cgroup -------------------------------------------------------------------

/// (the host has cgroup v1 hierarchies, the host's cgroup2 mount point)
fn host_cgroups() -> (bool, Option<String>) {
    let ms = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let v1 = ms
        .iter()
        .any(|m| m.fstype == "cgroup" && m.mount_point.starts_with("/sys/fs/cgroup/"));
    let v2 = ms
        .iter()
        .find(|m| m.fstype == "cgroup2" && m.mount_point.starts_with("/sys/fs/cgroup"))
        .map(|m| m.mount_point.clone());
    (v1, v2)
}

#[test]
fn cgroup_claims_match_the_host() {
    let f = features();
    let cg = &f["linux"]["cgroup"];
    let (v1, v2) = host_cgroups();
    let env = Env::new();
    // A claimed version is used when the host has it: the container lands
    // in its configured path there and the pids limit is written.
    let b = env.bundle_with(&["cat", "/proc/self/cgroup"], |c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 42});
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    if v1 {
        assert_eq!(
            cg["v1"],
            json!(true),
            "this host has cgroup v1 hierarchies: {cg}"
        );
        let line = out
            .lines()
            .into_iter()
            .find(|l| l.split(':').nth(1) == Some("pids"))
            .map(String::from);
        assert_eq!(
            line.as_deref()
                .map(|l| l.ends_with(&format!(":pids:{}", b.cgroup))),
            Some(true),
            "{out:#?}"
        );
    }
    if let Some(mp) = &v2 {
        assert_eq!(cg["v2"], json!(true), "this host has cgroup2 at {mp}: {cg}");
        let line = out
            .lines()
            .into_iter()
            .find(|l| l.starts_with("0::"))
            .map(String::from);
        assert_eq!(
            line,
            Some(format!("0::{}", b.cgroup)),
            "joined the cgroup2 hierarchy too: {out:#?}"
        );
    }
    env.assert_nothing_left(&id);
    // The limit itself, while the container lives.
    let b = env.bundle_with(&["sleep", "100"], |c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 42});
    });
    let id = env.id("d");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let dir = if v1 {
        PathBuf::from(format!("/sys/fs/cgroup/pids{}", b.cgroup))
    } else {
        PathBuf::from(format!("{}{}", v2.clone().unwrap(), b.cgroup))
    };
    assert_eq!(
        fs::read_to_string(dir.join("pids.max")).unwrap().trim(),
        "42",
        "{}",
        dir.display()
    );
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

/// `features` claims the systemd driver (as runc does). Where it cannot work (no systemd
/// running, as on this host, or a v1/hybrid host), `--systemd-cgroup` is one clear line
/// naming the flag, and nothing is left. tests/systemd.rs checks the driver where it works.
#[test]
fn systemd_cgroup_claim() {
    let f = features();
    let cg = &f["linux"]["cgroup"];
    assert_eq!(cg["systemd"], json!(true), "{cg}");
    if Path::new("/run/systemd/system").is_dir()
        && Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        eprintln!("skipped: systemd runs this cgroup v2 host (tests/systemd.rs covers the driver)");
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("c");
    for cmd in ["run", "create"] {
        let out = env.rt(&["--systemd-cgroup", cmd, "--bundle", b.path(), &id]);
        out.failure();
        if !is_runc() {
            out.stderr_has("--systemd-cgroup");
            assert!(
                out.stderr.contains("cgroupfs") || out.stderr.contains("cgroup v2"),
                "the error should say what to do instead: {out:#?}"
            );
        }
        assert_eq!(out.stderr_lines().len(), 1, "one clear line: {out:#?}");
        env.assert_nothing_left(&id);
    }
}

// ---- apparmor / selinux / intelRdt -------------------------------------------------------

#[test]
fn security_modules_claimed_disabled() {
    let f = features();
    for k in ["apparmor", "selinux", "intelRdt"] {
        if is_runc() && f["linux"][k].is_null() {
            continue; // runc 1.1 has no intelRdt property
        }
        assert!(
            f["linux"][k]["enabled"].is_boolean(),
            "linux.{k}.enabled: {f}"
        );
    }
    if !is_runc() {
        for k in ["selinux", "intelRdt"] {
            assert_eq!(
                f["linux"][k]["enabled"],
                json!(false),
                "tong has no {k} support: {f}"
            );
        }
    }
}

/// AppArmor: `features` says tong supports it (compiled in, as runc says); a
/// profile on a host where AppArmor does not run cannot be applied, and the
/// container is refused rather than run unconfined (runc 1.1 fails the start
/// writing /proc/self/attr/exec; tong refuses at create, naming the field).
#[test]
fn apparmor_profile_on_a_host_without_apparmor() {
    let aa_on = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    if aa_on {
        return; // this test is about hosts without AppArmor
    }
    let env = Env::new();
    let out = env.run_with(&["echo", "ran"], |c| {
        c["process"]["apparmorProfile"] = json!("tong-test-profile")
    });
    out.failure();
    assert!(!out.stdout.contains("ran"), "{out:#?}");
    if !is_runc() {
        out.stderr_has("process.apparmorProfile")
            .stderr_has("AppArmor is not enabled");
    }
}

/// SELinux: features says it is not supported, so a config asking for a
/// process or mount label cannot be honoured and is refused (as runc 1.1
/// refuses both: "selinux label is specified in config, but selinux is
/// disabled or not supported", and the mount's context= fails), rather than
/// the container silently running unconfined.
#[test]
fn selinux_labels_are_refused_without_selinux() {
    let f = features();
    if f["linux"]["selinux"]["enabled"] == json!(true)
        && std::path::Path::new("/sys/fs/selinux/enforce").exists()
    {
        return;
    }
    let env = Env::new();
    let mut failures = Vec::new();
    for (what, edit) in [
        (
            "process.selinuxLabel",
            json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
        ),
        (
            "linux.mountLabel",
            json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
        ),
    ] {
        let b = env.bundle_with(&["echo", "ran"], |c| {
            for (k, v) in edit.as_object().unwrap() {
                for (k2, v2) in v.as_object().unwrap() {
                    c[k][k2] = v2.clone();
                }
            }
        });
        let id = env.id(&format!("se{}", failures.len()));
        let out = env.run(&b, &id);
        if out.ok() {
            failures.push(format!(
                "{what} on a host without SELinux ran the container unlabelled: {out:#?}"
            ));
        } else if !is_runc()
            && !out.stderr.to_lowercase().contains("selinux")
            && !out.stderr.contains(what)
        {
            failures.push(format!("{what}: the refusal should say why: {out:#?}"));
        }
        if env.state_dir(&id).exists() {
            failures.push(format!("{what}: state left behind"));
        }
    }
    no_failures("selinux configs", failures);
}

/// Intel RDT: with intelRdt.enabled false (and no resctrl here), a schema
/// the runtime-spec says MUST be written to resctrl cannot be applied: the
/// config is refused (runc 1.1: "intelRdt.l3CacheSchema is specified in
/// config, but Intel RDT/CAT is not enabled"). An empty intelRdt is fine.
#[test]
fn intel_rdt_schemas_are_refused_without_rdt() {
    let resctrl = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    if resctrl {
        return;
    }
    let env = Env::new();
    env.run_with(&["true"], |c| c["linux"]["intelRdt"] = json!({}))
        .success();
    let mut failures = Vec::new();
    for (k, rdt) in [
        (
            "l3CacheSchema",
            json!({"closID": "tong-test", "l3CacheSchema": "L3:0=f"}),
        ),
        ("memBwSchema", json!({"memBwSchema": "MB:0=50"})),
    ] {
        let b = env.bundle_with(&["echo", "ran"], |c| c["linux"]["intelRdt"] = rdt);
        let id = env.id(&format!("rdt{k}"));
        let out = env.run(&b, &id);
        if out.ok() {
            failures.push(format!(
                "intelRdt.{k} without RDT support ran the container without it: {out:#?}"
            ));
        } else if !is_runc() && !out.stderr.contains("intelRdt") {
            failures.push(format!(
                "intelRdt.{k}: the refusal should name intelRdt: {out:#?}"
            ));
        }
        if env.state_dir(&id).exists() {
            failures.push(format!("intelRdt.{k}: state left behind"));
        }
    }
    no_failures("intelRdt configs", failures);
}

// ---- ociVersionMin / ociVersionMax --------------------------------------------------

#[test]
fn oci_version_bounds() {
    let f = features();
    let min = f["ociVersionMin"]
        .as_str()
        .expect("ociVersionMin")
        .to_string();
    let max = f["ociVersionMax"]
        .as_str()
        .expect("ociVersionMax")
        .to_string();
    let parse = |v: &str| -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect()
    };
    assert!(parse(&min) <= parse(&max), "{min} > {max}");
    let env = Env::new();
    for v in [&min, &max] {
        let out = env.run_with(&["echo", "ran"], |c| c["ociVersion"] = json!(v));
        assert!(
            out.ok() && out.stdout.contains("ran"),
            "ociVersion {v} (a claimed bound) must be accepted: {out:#?}"
        );
    }
    if is_runc() {
        return; // runc 1.1 accepts any ociVersion
    }
    // The next major version above the maximum, and one below the minimum.
    let above = format!("{}.0.0", parse(&max)[0] + 1);
    let below = "0.9.0".to_string();
    for v in [above, below] {
        let b = env.bundle_with(&["echo", "ran"], |c| c["ociVersion"] = json!(v));
        let id = env.id(&format!("v{}", v.replace('.', "")));
        let out = env.rt(&["create", "--bundle", b.path(), &id]);
        out.failure().stderr_has("ociVersion");
        assert!(out.stderr.contains(&v), "{out:#?}");
        env.assert_nothing_left(&id);
    }
}

/// A bind mount's own "shared" option wins over the recursive
/// rootfsPropagation: runc 1.1 applies rootfsPropagation before the mounts,
/// so with "rslave" the mount is still `shared:N master:M` inside.
#[test]
fn shared_mount_survives_rootfs_propagation_rslave() {
    let env = Env::new();
    let mut hm = HostMounts::default();
    let shared = env.tempdir("shared");
    hm.tmpfs(&shared, 0);
    host_mount("none", &shared, None, libc::MS_SHARED, None);
    let src = shared.to_str().unwrap().to_string();
    for rp in ["rslave", "slave", "rprivate", "private"] {
        let ms = mountinfo_with(&env, |c| {
            c["linux"]["rootfsPropagation"] = json!(rp);
            push_mount(c, json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "shared"]}));
        })
        .unwrap();
        let m = last_at(&ms, "/data").expect("/data");
        assert!(
            m.tagged("shared"),
            "rootfsPropagation {rp}: /data lost its \"shared\" option: {m:?}"
        );
    }
}
