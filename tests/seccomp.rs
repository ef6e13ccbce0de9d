//! seccomp: a profile's rules hold inside the container, for the init and for exec.

mod common;

use std::os::unix::net::UnixListener;

use common::*;
use serde_json::json;

fn deny_mkdir(c: &mut serde_json::Value) {
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
}

#[test]
fn deny_mkdir_with_eperm_while_ls_works() {
    let env = Env::new();
    let out = env.run_with(
        &[
            "sh",
            "-c",
            "mkdir /tmp/x; echo mkdir=$?; ls / >/dev/null && echo ls-ok",
        ],
        deny_mkdir,
    );
    out.success();
    assert_eq!(out.lines(), ["mkdir=1", "ls-ok"], "{out:#?}");
    out.stderr_has("Operation not permitted");
}

#[test]
fn filter_holds_without_no_new_privileges_too() {
    let env = Env::new();
    let out = env.run_with(&["sh", "-c", "mkdir /tmp/x; echo mkdir=$?"], |c| {
        deny_mkdir(c);
        c["process"]["noNewPrivileges"] = json!(false);
    });
    out.success();
    assert_eq!(out.lines(), ["mkdir=1"], "{out:#?}");
}

#[test]
fn exec_gets_the_containers_filter() {
    let env = Env::new();
    let b = env.bundle_with(&["sleep", "1000"], deny_mkdir);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let out = env.rt(&["exec", &id, "sh", "-c", "mkdir /tmp/y; echo mkdir=$?"]);
    out.success();
    assert_eq!(out.lines(), ["mkdir=1"], "{out:#?}");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

#[test]
fn errno_default_blocks_unlisted_syscalls() {
    if is_runc() {
        return; // runc's own Go code needs more syscalls after loading the filter than listed here
    }
    let env = Env::new();
    // Only what busybox sh and echo need is allowed; mkdir is not.
    let out = env.run_with(&["sh", "-c", "echo alive; mkdir /tmp/q; echo mkdir=$?"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "exit", "exit_group", "execve", "brk", "mmap", "munmap",
                "mprotect", "arch_prctl", "set_tid_address", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
                "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "open", "openat", "close", "fstat",
                "newfstatat", "stat", "ioctl", "fcntl", "wait4", "clone", "vfork", "fork", "dup2", "dup3", "getcwd",
                "prlimit64", "set_robust_list", "rseq", "access", "faccessat", "faccessat2", "statx", "lseek",
                "gettid", "tgkill", "kill", "setpgid", "getpgid", "getpgrp", "futex", "readlink"],
                "action": "SCMP_ACT_ALLOW"}]
        });
    });
    assert_eq!(out.code, 0, "{out:#?}");
    let l = out.lines();
    assert_eq!(l.first(), Some(&"alive"), "{out:#?}");
    assert_eq!(l.last(), Some(&"mkdir=1"), "mkdir is refused: {out:#?}");
    out.stderr_has("Operation not permitted");
}

#[test]
fn notify_fd_reaches_the_listener() {
    if is_runc() {
        return; // runc 1.1 supports it too, but the message shape checked here is tong's
    }
    let env = Env::new();
    let sock = env.tempdir("listener").join("l.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let sock_path = sock.to_str().unwrap().to_string();
    let recv = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let r = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in r.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        let n = r.bytes;
        let msg: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fds[0])).unwrap();
        // Closing the notify fd makes the pending and later mkdir fail with ENOSYS.
        let _ = nix::unistd::close(fds[0]);
        (msg, link)
    });
    let out = env.run_with(&["sh", "-c", "mkdir /tmp/z; echo mkdir=$?"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_path,
            "listenerMetadata": "meta-1",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let (msg, link) = recv.join().unwrap();
    assert_eq!(msg["fds"], json!(["seccompFd"]));
    assert_eq!(msg["metadata"], "meta-1");
    assert!(msg["pid"].as_i64().unwrap() > 0);
    assert!(link.to_string_lossy().contains("seccomp"), "{link:?}");
    out.success();
    assert_eq!(out.lines(), ["mkdir=1"], "{out:#?}");
}

#[test]
fn unknown_action_is_refused_cleanly() {
    let env = Env::new();
    let b = env.bundle_with(&["true"], |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"});
    });
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    if !is_runc() {
        out.stderr_has("linux.seccomp.defaultAction");
    }
    env.assert_nothing_left(&id);
}
