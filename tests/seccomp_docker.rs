//! Docker's default seccomp profile blocks `unshare` and `keyctl`.
//!
//! tests/data/docker-seccomp.json is `linux.seccomp` exactly as dockerd
//! 20.10.24+dfsg1 (Debian 12's docker.io) wrote it into config.json for a
//! default container (`docker run --rm --network none IMG sh -c ...`, default
//! capabilities, no --security-opt). Captured with a private dockerd started
//! the way hack/e2e/docker.sh starts one (own data-root, exec-root, socket
//! and cgroup parent under a temp dir, `--bridge none --iptables=false`),
//! whose default runtime was a wrapper script that copied `<bundle>/config.json`
//! away on `create` and then exec'd /usr/sbin/runc; then
//! `jq .linux.seccomp config.json > tests/data/docker-seccomp.json`. The
//! daemon and its temp dir were removed afterwards. dockerd resolves the
//! profile for the container's capabilities; DOCKER_CAPS below are the ones
//! it granted that container (its bounding set, in its order).
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn docker_profile() -> Value {
    let p = repo_dir().join("tests/data/docker-seccomp.json");
    serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap()
}

/// Docker's default capabilities, and its profile when `seccomp`.
fn docker_like(c: &mut Value, seccomp: bool) {
    c["process"]["capabilities"] = json!({
        "bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS,
    });
    if seccomp {
        c["linux"]["seccomp"] = docker_profile();
    }
}

#[test]
fn the_captured_profile_is_dockers_default_shape() {
    let p = docker_profile();
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    let listed = |name: &str| {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
    };
    // The allow list is there, and neither syscall is on it.
    for s in ["read", "write", "execve", "mkdir", "clone"] {
        assert!(listed(s), "{s} should be allowed by docker's profile");
    }
    for s in ["unshare", "keyctl", "add_key", "request_key"] {
        assert!(
            !listed(s),
            "{s} should not be in docker's default-capabilities profile"
        );
    }
}

#[test]
fn docker_profile_blocks_unshare() {
    let env = Env::new();
    let script = "unshare -U true; echo rc=$?; mkdir /dev/shm/d && echo mkdir-ok";
    // Negative control: same capabilities, no profile: an unprivileged
    // user namespace can be made.
    let out = env.run_with(&["sh", "-c", script], |c| docker_like(c, false));
    out.success();
    assert_eq!(
        out.lines(),
        ["rc=0", "mkdir-ok"],
        "without seccomp unshare -U works: {out:#?}"
    );
    let out = env.run_with(&["sh", "-c", script], |c| docker_like(c, true));
    out.success();
    assert_eq!(
        out.lines(),
        ["rc=1", "mkdir-ok"],
        "docker's profile refuses unshare: {out:#?}"
    );
    out.stderr_has("Operation not permitted");
}

/// A static program calling keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1):
/// prints `keyctl=ok` or `keyctl=errno:N`. busybox has no keyctl applet.
const KEYCTL_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4 /* KEY_SPEC_USER_KEYRING */, 1);
    if (r >= 0) printf("keyctl=ok\n"); else printf("keyctl=errno:%d\n", errno);
    return 0;
}
"#;

/// Compiled once per test process with `gcc -static`.
fn keyctl_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tong-test-keyctl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let src = dir.join("keyctl.c");
        let bin = dir.join("keyctl");
        fs::write(&src, KEYCTL_C).unwrap();
        let out = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("this test needs gcc (apt-get install gcc libc6-dev): {e}"));
        assert!(
            out.status.success(),
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

#[test]
fn docker_profile_blocks_keyctl() {
    let bin = keyctl_binary().clone();
    let env = Env::new();
    let mut outs = Vec::new();
    for seccomp in [false, true] {
        let b = env.bundle_with(&["/bin/keyctl"], |c| docker_like(c, seccomp));
        fs::copy(&bin, b.rootfs().join("bin/keyctl")).unwrap();
        let id = env.id(&format!("k{seccomp}"));
        let out = env.run(&b, &id);
        out.success();
        outs.push(out);
    }
    let _ = fs::remove_dir_all(bin.parent().unwrap());
    assert_eq!(
        outs[0].lines(),
        ["keyctl=ok"],
        "without seccomp keyctl works: {:#?}",
        outs[0]
    );
    assert_eq!(
        outs[1].lines(),
        ["keyctl=errno:1"],
        "docker's profile refuses keyctl with EPERM: {:#?}",
        outs[1]
    );
}
