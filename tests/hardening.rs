//! The container boundary where the field's suites found tong lacking: seccomp as runc
//! applies it (tong's own last steps under the filter, the ENOSYS stub, NOTIFY rules,
//! startContainer hooks), procfs and sysfs only on ordinary directories, --no-pivot without
//! the host's procfs, and no tong fd reaching a hook.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// An allow-list profile of the kind runc runs with here: default ERRNO; execve, the basic
/// memory, signal, fd, credential and capability calls, fstatfs and epoll_*. No
/// close_range and no sendmsg/recvmsg (runc needs chdir and getcwd: they are in).
fn minimal_profile() -> Value {
    let names = "execve execveat exit exit_group brk mmap munmap mprotect mremap madvise arch_prctl \
        set_tid_address set_robust_list rseq rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack kill tgkill tkill \
        read write readv writev pread64 pwrite64 close dup dup2 dup3 fcntl openat open lseek pipe pipe2 getdents64 \
        newfstatat fstat stat lstat statx ioctl access faccessat faccessat2 readlink readlinkat \
        getuid getgid geteuid getegid getresuid getresgid setuid setgid setresuid setresgid setgroups getgroups \
        capget capset prctl fstatfs epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait \
        futex nanosleep clock_nanosleep clock_gettime getpid getppid gettid sched_yield getrandom uname \
        wait4 clone vfork setsid chdir fchdir getcwd";
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names.split_whitespace().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW"}]
    })
}

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn minimal_allow_list_profile_runs_the_init_and_exec() {
    for nnp in [true, false] {
        let env = Env::new();
        let b = env.bundle_with(
            &[
                "sh",
                "-c",
                "grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status; sleep 1000",
            ],
            |c| {
                c["linux"]["seccomp"] = minimal_profile();
                c["process"]["noNewPrivileges"] = json!(nnp);
            },
        );
        let id = env.id("min");
        // Foreground run: the init reaches execve under the filter.
        let out = env.run(
            &env.bundle_with(
                &[
                    "sh",
                    "-c",
                    "grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status",
                ],
                |c| {
                    c["linux"]["seccomp"] = minimal_profile();
                    c["process"]["noNewPrivileges"] = json!(nnp);
                },
            ),
            &env.id("fg"),
        );
        out.success();
        assert_eq!(
            status_field(&out.stdout, "Seccomp:"),
            "2",
            "nnp={nnp}: {out:#?}"
        );
        assert_eq!(
            status_field(&out.stdout, "NoNewPrivs:"),
            if nnp { "1" } else { "0" },
            "{out:#?}"
        );
        // And exec into a running one.
        env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
        let out = env.rt(&["exec", &id, "grep", "Seccomp:", "/proc/self/status"]);
        out.success();
        assert_eq!(
            status_field(&out.stdout, "Seccomp:"),
            "2",
            "nnp={nnp}: {out:#?}"
        );
        env.rt(&["delete", "--force", &id]).success();
        env.assert_nothing_left(&id);
    }
}

#[test]
fn a_profile_refusing_getcwd_still_runs_and_the_cwd_is_checked() {
    // runtime-tools' linux_seccomp: everything allowed but getcwd. runc 1.1.5 fails it (its
    // CVE-2024-21626 check calls getcwd); crun passes, and so does tong.
    if is_runc() {
        return;
    }
    let env = Env::new();
    let out = env.run_with(&["sh", "-c", "cd /tmp && echo in-tmp"], |c| {
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
    });
    out.success();
    assert_eq!(out.lines(), ["in-tmp"], "{out:#?}");
    // Negative control: a working directory reached through a host fd (CVE-2024-21626's
    // /proc/self/fd/N) is still refused, by the same check.
    let leak = fs::File::open("/").unwrap();
    let b = env.bundle_with(&["true"], |c| {
        c["process"]["cwd"] = json!("/proc/self/fd/3");
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
    });
    let id = env.id("leak");
    let out = env.rt_opts(
        &["run", "--preserve-fds", "1", "--bundle", b.path(), &id],
        Opts {
            extra_fds: vec![leak],
            ..Default::default()
        },
    );
    out.failure();
    assert!(
        out.stderr.contains("process.cwd")
            || out.stderr.contains("outside the container")
            || out.stderr.contains("No such file"),
        "{out:#?}"
    );
    env.assert_nothing_left(&id);
}

#[test]
fn a_profile_refusing_what_tong_needs_is_named() {
    if is_runc() {
        return; // runc's words differ
    }
    let env = Env::new();
    let mut p = minimal_profile();
    let names: Vec<Value> = p["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            !["fstat", "newfstatat", "statx", "stat", "lstat"].contains(&n.as_str().unwrap())
        })
        .cloned()
        .collect();
    p["syscalls"][0]["names"] = json!(names);
    let b = env.bundle_with(&["true"], |c| {
        c["linux"]["seccomp"] = p;
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let id = env.id("named");
    let out = env.run(&b, &id);
    out.failure();
    out.stderr_has("seccomp profile refuses");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    env.assert_nothing_left(&id);
}

/// A static program that calls syscall numbers given on its command line and prints each
/// call's errno (0 when it succeeded).
fn syscall_prober(dir: &Path) -> PathBuf {
    let src = dir.join("probe.c");
    fs::write(
        &src,
        r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = syscall(atol(argv[i]), 0, 0, 0, 0, 0, 0);
        printf("%s=%d\n", argv[i], r < 0 ? errno : 0);
    }
    return 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("probe");
    let st = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc (gcc) is needed for this test");
    assert!(st.success());
    bin
}

#[test]
fn syscalls_above_the_profiles_highest_get_enosys_below_it_the_default_errno() {
    let env = Env::new();
    let dir = env.tempdir("probe");
    let probe = syscall_prober(&dir);
    let mut p = minimal_profile();
    p["defaultErrnoRet"] = json!(libc::EACCES);
    // The highest number named is faccessat2 (439 on x86_64); getpriority (140) is not
    // named; 440 and 1000 are above the highest.
    p["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .push(json!("faccessat2"));
    p["syscalls"][0]["names"]
        .as_array_mut()
        .unwrap()
        .push(json!("no_such_syscall_name"));
    let b = env.bundle_with(&["/probe", "140", "440", "1000"], |c| {
        c["linux"]["seccomp"] = p;
    });
    fs::copy(&probe, b.dir.join("rootfs/probe")).unwrap();
    let out = env.run(&b, &env.id("enosys"));
    out.success();
    assert_eq!(
        out.lines(),
        [
            format!("140={}", libc::EACCES),
            format!("440={}", libc::ENOSYS),
            format!("1000={}", libc::ENOSYS)
        ],
        "{out:#?}"
    );
    // Negative control: without a filter the same calls are answered by the kernel itself
    // (getpriority works; the unknown numbers are ENOSYS anyway).
    let b = env.bundle(&["/probe", "140"]);
    fs::copy(&probe, b.dir.join("rootfs/probe")).unwrap();
    let out = env.run(&b, &env.id("nofilter"));
    out.success();
    assert_eq!(out.lines(), ["140=0"], "{out:#?}");
    // With an ALLOW default there is no stub: a named ERRNO rule keeps its own errno.
    let b = env.bundle_with(&["/probe", "140", "1000"], |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]});
    });
    fs::copy(&probe, b.dir.join("rootfs/probe")).unwrap();
    let out = env.run(&b, &env.id("allow"));
    out.success();
    assert_eq!(
        out.lines(),
        [
            format!("140={}", libc::EACCES),
            format!("1000={}", libc::ENOSYS)
        ],
        "{out:#?}"
    );
}

#[test]
fn notify_rules_are_refused_as_runc_refuses_them() {
    let env = Env::new();
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/tong-test-none.sock",
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/tong-test-none.sock"}),
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath is not set",
        ),
    ];
    for (profile, words) in cases {
        let b = env.bundle_with(&["true"], |c| c["linux"]["seccomp"] = profile);
        let id = env.id("notify");
        let out = env.rt(&["create", "--bundle", b.path(), &id]);
        out.failure();
        out.stderr_has(words);
        env.assert_nothing_left(&id);
    }
}

/// A startContainer hook that records its seccomp mode, no_new_privs, uid and whether it
/// could mkdir (the profile refuses mkdir) in /hook-out inside the container.
#[test]
fn start_container_hooks_run_as_the_process_under_its_filter() {
    let env = Env::new();
    let script = "grep -E 'Seccomp:|NoNewPrivs:|CapEff:' /proc/self/status > /tmp/hook-out; id -u >> /tmp/hook-out; \
        mkdir /tmp/hook-dir 2>/dev/null; echo mkdir=$? >> /tmp/hook-out";
    let b = env.bundle_with(&["true"], |c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["noNewPrivileges"] = json!(true);
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    });
    fs::set_permissions(
        b.dir.join("rootfs/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let out = env.run(&b, &env.id("hooks"));
    out.success();
    let got = fs::read_to_string(b.dir.join("rootfs/tmp/hook-out")).unwrap();
    assert_eq!(status_field(&got, "Seccomp:"), "2", "{got}");
    assert_eq!(status_field(&got, "NoNewPrivs:"), "1", "{got}");
    assert_eq!(status_field(&got, "CapEff:"), "0000000000000000", "{got}");
    assert!(got.contains("\n1000\n"), "{got}");
    assert!(got.contains("mkdir=1"), "{got}");
    // Negative control: a createRuntime hook (tong's namespaces, no filter) can mkdir.
    let marker = env.tempdir("rt").join("made");
    let b = env.bundle_with(&["true"], |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/busybox", "args": ["mkdir", "mkdir", marker.to_str().unwrap()]}]});
    });
    env.run(&b, &env.id("ctl")).success();
    assert!(marker.is_dir());
}

#[test]
fn proc_and_sysfs_only_on_ordinary_directories() {
    let env = Env::new();
    for (dest, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let b = env.bundle(&["true"]);
        let target = b.dir.join("rootfs").join(dest);
        let _ = fs::remove_dir_all(&target);
        std::os::unix::fs::symlink("/tmp", &target).unwrap();
        let id = env.id("link");
        let out = env.run(&b, &id);
        out.failure();
        out.stderr_has("must be mounted on ordinary directory")
            .stderr_has(typ);
        env.assert_nothing_left(&id);
        // What the link would have done: the mount would land on the link's target.
        assert!(
            !b.dir.join("rootfs/tmp/self").exists() && !b.dir.join("rootfs/tmp/kernel").exists()
        );
        // A plain file is refused as well.
        fs::remove_file(&target).unwrap();
        fs::write(&target, "").unwrap();
        env.run(&b, &id)
            .failure()
            .stderr_has("must be mounted on ordinary directory");
        // Negative control: the same bundle with a directory runs.
        fs::remove_file(&target).unwrap();
        fs::create_dir(&target).unwrap();
        env.run(&b, &id).success();
    }
}

/// Inside a container: whether a user namespace can mount a fresh procfs.
/// Then how many full procfs mounts (mountinfo root `/`) its mount namespace holds.
const MOUNT_PROC: &str = "unshare -mrpf sh -c 'mount -t proc proc /proc && echo mounted || echo refused' 2>/dev/null; \
    awk '$4 == \"/\" && / - proc /' /proc/self/mountinfo | wc -l";

/// Mapping root into a new user namespace needs CAP_SETFCAP (Linux 5.12+), which the
/// default spec leaves out: grant what the attack needs, so only the mount is in question.
fn attack_caps(c: &mut Value) {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SETFCAP",
        "CAP_SYS_ADMIN",
        "CAP_KILL"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
}

#[test]
fn no_pivot_hides_the_hosts_procfs() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", MOUNT_PROC], attack_caps);
    let id = env.id("nopivot");
    let out = env.rt(&["run", "--no-pivot", "--bundle", b.path(), &id]);
    out.success();
    // Only the container's own procfs is left in its mount namespace.
    assert_eq!(out.lines().get(1), Some(&"1"), "{out:#?}");
    env.assert_nothing_left(&id);
    // --no-pivot is no weaker than pivot_root: where the kernel refuses the mount in a
    // pivoted container with the same masks (on this kernel; Debian 6.1's in the VM allows
    // it in both), it refuses it with --no-pivot too.
    let pivoted = env.run(
        &env.bundle_with(&["sh", "-c", MOUNT_PROC], attack_caps),
        &env.id("pivot"),
    );
    pivoted.success();
    assert_eq!(
        out.lines().first(),
        pivoted.lines().first(),
        "--no-pivot {out:#?} against pivot_root {pivoted:#?}"
    );

    // The host's procfs is untouched by it.
    assert!(Path::new("/proc/self/status").exists());
    // Negative control: a container whose own procfs is full (no masked or read-only
    // paths) lets the same user namespace mount one, so the probe can see the attack work.
    let b = env.bundle_with(&["sh", "-c", MOUNT_PROC], |c| {
        attack_caps(c);
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    });
    let out = env.run(&b, &env.id("full"));
    out.success();
    assert_eq!(out.lines().first(), Some(&"mounted"), "{out:#?}");
}

/// A hook that lists its fds into FILE: `ls` itself, exec'd by the shell, so the list is the
/// hook's fds plus the directory `ls` opens (the lowest free number).
fn fd_lister(file: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("exec ls /proc/self/fd > {file}")]})
}

fn fds_in(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn no_tong_fd_reaches_a_hook() {
    if is_runc() {
        return; // runc 1.1.5 leaks its init's pipes into createContainer hooks
    }
    let env = Env::new();
    let out_dir = env.tempdir("hookfds");
    let host = |n: &str| out_dir.join(n).to_string_lossy().into_owned();
    let b = env.bundle_with(&["true"], |c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({
            "prestart": [fd_lister(&host("prestart"))],
            "createRuntime": [fd_lister(&host("createRuntime"))],
            "createContainer": [fd_lister(&host("createContainer"))],
            "startContainer": [fd_lister("/start")],
            "poststart": [fd_lister(&host("poststart"))],
            "poststop": [fd_lister(&host("poststop"))],
        });
    });
    let extra = fs::File::open("/dev/null").unwrap();
    let id = env.id("fds");
    let out = env.rt_opts(
        &["run", "--preserve-fds", "1", "--bundle", b.path(), &id],
        Opts {
            extra_fds: vec![extra],
            ..Default::default()
        },
    );
    out.success();
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        assert_eq!(fds_in(&out_dir.join(kind)), ["0", "1", "2", "3"], "{kind}");
    }
    // startContainer hooks also get the preserved fds, as with runc (the negative control:
    // the listing does see an fd that is really there).
    assert_eq!(
        fds_in(&b.dir.join("rootfs/start")),
        ["0", "1", "2", "3", "4"],
        "startContainer"
    );
}

/// The syscalls each process made, in order, from an `strace -f` log: (pid, name, line).
fn traced(log: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let name = if let Some(r) = rest.strip_prefix("<... ") {
            r.split(' ').next().unwrap_or("")
        } else {
            rest.split('(').next().unwrap_or("")
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push((pid.to_string(), name.to_string(), line.to_string()));
        }
    }
    out
}

/// `load_seccomp_early` loads the filter right after Ready when the profile allows every
/// syscall in `AFTER_READY`: that list must hold all the init really calls from its Ready
/// message to the container's execve. Traced on a real init, with podman's profile and
/// no_new_privs (the early path).
#[test]
fn the_inits_calls_after_ready_are_all_in_after_ready() {
    if is_runc() {
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed for this test (Debian's strace)");
    }
    let env = Env::new();
    let podman: Value = serde_json::from_str(include_str!("data/podman-seccomp.json")).unwrap();
    let b = env.bundle_with(&["true"], |c| {
        c["linux"]["seccomp"] = podman;
        c["process"]["noNewPrivileges"] = json!(true);
    });
    let id = env.id("trace");
    let log = env.tempdir("trace").join("strace.log");
    let st = Command::new("strace")
        .args(["-f", "-qq", "-s", "64", "-o"])
        .arg(&log)
        .arg(runtime())
        .arg("--root")
        .arg(&env.root)
        .args(["run", "--bundle", b.path(), &id])
        .status()
        .unwrap();
    assert!(st.success());
    let calls = traced(&fs::read_to_string(&log).unwrap());
    let ready = calls
        .iter()
        .position(|(_, n, l)| n == "sendmsg" && l.contains("Ready"))
        .unwrap_or_else(|| panic!("no Ready message in the trace"));
    let init = calls[ready].0.clone();
    let mut seen = Vec::new();
    for (pid, name, line) in &calls[ready + 1..] {
        if *pid != init {
            continue;
        }
        if name == "execve" {
            seen.push(name.clone());
            break;
        }
        // The load itself is made before the filter holds.
        if name != "seccomp" {
            seen.push(name.clone());
        }
        let _ = line;
    }
    assert!(
        seen.last().is_some_and(|n| n == "execve"),
        "the init never reached execve: {seen:?}"
    );
    let missing: Vec<&String> = seen
        .iter()
        .filter(|n| !tong::launch::finalize::AFTER_READY.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the init calls {missing:?} after Ready, which AFTER_READY lacks (all: {seen:?})"
    );
    // Negative control: the trace does see the init's own calls (the FIFO's open and write).
    assert!(
        seen.iter().any(|n| n == "openat") && seen.iter().any(|n| n == "write"),
        "{seen:?}"
    );
}

/// A startContainer hook killed by its filter fails `run` with runc's words for the signal
/// (Go's: "bad system call"), which runc's suite and engines match.
#[test]
fn a_hook_killed_by_the_filter_is_reported_in_runcs_words() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]});
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}]});
    });
    let id = env.id("sigsys");
    let out = env.run(&b, &id);
    out.failure()
        .stderr_has("error running hook")
        .stderr_has("bad system call");
    env.rt(&["delete", "--force", &id]);
    // Negative control: without the KILL rule the same hook succeeds.
    let b = env.bundle_with(&["true"], |c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}]});
    });
    env.run(&b, &env.id("nokill")).success();
}
