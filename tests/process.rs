//! What the container process sees: identity, capabilities, rlimits, env,
//! cwd, fds, and how a bad executable is reported.
mod common;
use common::*;
use serde_json::json;
use std::fs;

fn cap_mask(status: &str, key: &str) -> u64 {
    let v = status_field(status, key).unwrap_or_else(|| panic!("{key} missing in {status}"));
    u64::from_str_radix(v, 16).unwrap()
}

#[test]
fn hostname_and_domainname() {
    let env = Env::new();
    let b = env.bundle_with(
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
        |c| c["domainname"] = json!("tong.example"),
    );
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    let l = out.lines();
    assert_eq!(l[0], b.hostname);
    // runc 1.1 ignores `domainname` (it arrived in runc 1.2); tong sets it.
    if !is_runc() {
        assert_eq!(l[1], "tong.example");
    }
    env.assert_nothing_left(&id);
}

#[test]
fn default_capabilities() {
    let env = Env::new();
    let status = env.sh("cat /proc/self/status", |_| {});
    // CAP_AUDIT_WRITE | CAP_KILL | CAP_NET_BIND_SERVICE
    let want = (1u64 << 29) | (1 << 5) | (1 << 10);
    assert_eq!(want, 0x20000420);
    assert_eq!(cap_mask(&status, "CapEff"), want, "{status}");
    assert_eq!(cap_mask(&status, "CapPrm"), want);
    assert_eq!(cap_mask(&status, "CapBnd"), want);
    assert_eq!(cap_mask(&status, "CapInh"), 0);
    // The default spec lists ambient caps but no inheritable ones; the kernel
    // only allows ambient caps that are also inheritable, so none stick.
    assert_eq!(cap_mask(&status, "CapAmb"), 0);
}

#[test]
fn single_capability_in_all_sets() {
    let env = Env::new();
    let status = env.sh("cat /proc/self/status", |c| set_all_caps(c, &["CAP_CHOWN"]));
    for k in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(cap_mask(&status, k), 0x1, "{k}: {status}");
    }
}

#[test]
fn no_capabilities_at_all() {
    let env = Env::new();
    let status = env.sh("cat /proc/self/status", |c| {
        c["process"]["capabilities"] = json!({});
    });
    for k in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(cap_mask(&status, k), 0, "{k}: {status}");
    }
}

#[test]
fn unknown_capability_is_a_warning_not_an_error() {
    let env = Env::new();
    let b = env.bundle_with(&["sh", "-c", "grep CapEff /proc/self/status"], |c| {
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FOO_BAR"));
        c["process"]["capabilities"]["effective"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FOO_BAR"));
    });
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    assert!(out.stdout.contains("0000000020000420"), "{out:#?}");
    // runc's words: one warning, each name once.
    out.stderr_has("ignoring unknown or unavailable capabilities: [CAP_FOO_BAR]");
    assert_eq!(out.stderr_lines().len(), 1, "{out:#?}");
    env.assert_nothing_left(&id);
}

#[test]
fn rlimits() {
    let env = Env::new();
    let out = env.sh("ulimit -n; ulimit -Hn", |_| {});
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1024", "1024"]);

    let limits = env.sh("cat /proc/self/limits", |c| {
        c["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024 },
            { "type": "RLIMIT_NPROC", "soft": 300, "hard": 400 },
        ]);
    });
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {limits}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let nofile = line("Max open files");
    assert_eq!(&nofile[3..5], ["512", "1024"], "{limits}");
    let nproc = line("Max processes");
    assert_eq!(&nproc[2..4], ["300", "400"], "{limits}");
}

#[test]
fn user_groups_and_home() {
    let env = Env::new();
    let out = env.sh(
        "id -u; id -g; id -G; echo HOME=$HOME; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        |c| {
            c["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [2000] });
        },
    );
    let l: Vec<&str> = out.lines().collect::<Vec<_>>();
    assert_eq!(l[0], "1000", "{out}");
    assert_eq!(l[1], "1000", "{out}");
    let groups: Vec<&str> = l[2].split_whitespace().collect();
    assert!(groups.contains(&"2000"), "supplementary group 2000: {out}");
    assert_eq!(l[3], "HOME=/home/tester", "HOME comes from /etc/passwd");
    let status = out.clone();
    assert_eq!(
        status_field(&status, "Uid")
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        status_field(&status, "Gid")
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(status_field(&status, "Groups").unwrap(), "2000");
}

#[test]
fn root_gets_home_from_passwd_and_env_home_wins() {
    let env = Env::new();
    let out = env.sh("echo $HOME", |_| {});
    assert_eq!(out.trim(), "/root");
    let out = env.sh("echo $HOME", |c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("HOME=/elsewhere"));
    });
    assert_eq!(out.trim(), "/elsewhere");
}

#[test]
fn unknown_uid_runs_with_numeric_ids() {
    let env = Env::new();
    let out = env.sh("id -u; id -g; echo HOME=$HOME", |c| {
        c["process"]["user"] = json!({ "uid": 4242, "gid": 4343 });
    });
    let l = out.lines().collect::<Vec<_>>();
    assert_eq!(l[0], "4242");
    assert_eq!(l[1], "4343");
    // runc falls back to HOME=/ when the uid has no passwd entry.
    assert_eq!(l[2], "HOME=/", "{out}");
}

#[test]
fn umask() {
    let env = Env::new();
    let out = env.sh("umask", |c| c["process"]["user"]["umask"] = json!(0o077));
    assert_eq!(out.trim(), "0077");
    // Default is 0022.
    let out = env.sh("umask", |_| {});
    assert_eq!(out.trim(), "0022");
}

#[test]
fn environment_variables() {
    let env = Env::new();
    let out = env.sh("echo \"$FOO|$WITH_EQ|$SPACE|$PATH|$TERM\"", |c| {
        let e = c["process"]["env"].as_array_mut().unwrap();
        e.push(json!("FOO=bar"));
        e.push(json!("WITH_EQ=a=b"));
        e.push(json!("SPACE=x y"));
    });
    assert_eq!(
        out.trim(),
        "bar|a=b|x y|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|xterm"
    );
    // Nothing from the runtime's own environment leaks in.
    let env2 = Env::new();
    let b = env2.bundle(&["env"]);
    let id = env2.id("c");
    let out = env2.rt_opts(
        &["run", "--bundle", b.path(), &id],
        Opts {
            envs: vec![("TONG_TEST_LEAK", "leaked")],
            ..Default::default()
        },
    );
    out.success();
    assert!(!out.stdout.contains("TONG_TEST_LEAK"), "{out:#?}");
    assert!(out.stdout.contains("HOME=/root"), "{out:#?}");
}

#[test]
fn cwd() {
    let env = Env::new();
    let out = env.sh("pwd; readlink /proc/self/cwd", |c| {
        c["process"]["cwd"] = json!("/home/tester");
    });
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["/home/tester", "/home/tester"]
    );
    // Default cwd is "/", never the host directory the runtime ran in.
    let out = env.sh("readlink /proc/self/cwd", |_| {});
    assert_eq!(out.trim(), "/");
}

/// docker run --user 1000 --workdir /root: the init enters a root-only directory while it is
/// still root, and the CVE-2024-21626 check that follows must not need the user's access.
#[test]
fn root_only_cwd_works_for_another_user() {
    let env = Env::new();
    let script = "pwd; ls . >/dev/null 2>&1 && echo readable || echo unreadable";
    let as_tester = |c: &mut serde_json::Value| {
        c["process"]["cwd"] = json!("/root");
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    };
    // The user really has no access (the control): ls fails where pwd works.
    assert_eq!(
        env.sh(script, as_tester).lines().collect::<Vec<_>>(),
        ["/root", "unreadable"]
    );
    // The same with getcwd refused by the profile, where tong checks by walking up.
    if !is_runc() {
        let out = env.sh(script, |c| {
            as_tester(c);
            c["process"]["noNewPrivileges"] = json!(false);
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]});
        });
        // busybox's pwd prints $PWD-less getcwd: refused, so only the ls line is certain.
        assert!(out.lines().any(|l| l == "unreadable"), "{out}");
    }
    // And as the container's root the directory is readable.
    let out = env.sh(script, |c| c["process"]["cwd"] = json!("/root"));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["/root", "readable"]);
}

#[test]
fn cwd_is_created_when_missing() {
    let env = Env::new();
    let out = env.sh("pwd", |c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["cwd"] = json!("/does/not/exist");
    });
    assert_eq!(out.trim(), "/does/not/exist");
}

#[test]
fn no_new_privileges() {
    let env = Env::new();
    let out = env.sh("grep NoNewPrivs /proc/self/status", |_| {});
    assert_eq!(out.split_whitespace().last(), Some("1"));
    let out = env.sh("grep NoNewPrivs /proc/self/status", |c| {
        c["process"]["noNewPrivileges"] = json!(false);
    });
    assert_eq!(out.split_whitespace().last(), Some("0"));
}

#[test]
fn oom_score_adj() {
    let env = Env::new();
    let out = env.sh("cat /proc/self/oom_score_adj", |c| {
        c["process"]["oomScoreAdj"] = json!(500);
    });
    assert_eq!(out.trim(), "500");
}

#[test]
fn sysctls() {
    let env = Env::new();
    let out = env.sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced",
        |c| {
            c["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": "1",
                "kernel.shm_rmid_forced": "1",
            });
        },
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1", "1"]);
    // The host's values are untouched (new net and ipc namespaces).
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let _ = host_fwd; // may legitimately be 1 on the host; nothing to compare
}

#[test]
fn only_stdio_fds_are_inherited() {
    let env = Env::new();
    // `ls` itself opens /proc/self/fd as a directory; everything else must
    // be 0, 1 and 2.
    let out = env.sh("ls -l /proc/self/fd", |_| {});
    let mut fds = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(pos) = f.iter().position(|x| *x == "->") else {
            continue;
        };
        let fd = f[pos - 1];
        let target = f[pos + 1];
        if target.starts_with("/proc/") && target.ends_with("/fd") {
            continue;
        }
        fds.push(fd.to_string());
    }
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "leaked fds: {out}");
}

#[test]
fn preserve_fds_passes_fd_3() {
    let env = Env::new();
    let host_file = env.base.join("fd3.txt");
    fs::write(&host_file, "hello through fd 3\n").unwrap();
    let b = env.bundle(&["sh", "-c", "cat <&3; ls /proc/self/fd"]);
    let id = env.id("c");
    let out = env.rt_opts(
        &["run", "--preserve-fds", "1", "--bundle", b.path(), &id],
        Opts {
            extra_fds: vec![fs::File::open(&host_file).unwrap()],
            ..Default::default()
        },
    );
    out.success();
    assert!(out.stdout.starts_with("hello through fd 3\n"), "{out:#?}");
    let fds: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert!(fds.contains(&"3"), "{out:#?}");
    assert!(
        !fds.contains(&"5"),
        "only one extra fd (plus ls's own): {out:#?}"
    );
    env.assert_nothing_left(&id);

    // Without --preserve-fds the same fd is not passed.
    let b = env.bundle(&["sh", "-c", "cat <&3 && echo LEAKED"]);
    let id = env.id("c2");
    let out = env.rt_opts(
        &["run", "--bundle", b.path(), &id],
        Opts {
            extra_fds: vec![fs::File::open(&host_file).unwrap()],
            ..Default::default()
        },
    );
    assert!(!out.stdout.contains("LEAKED"), "{out:#?}");
    env.assert_nothing_left(&id);
}

#[test]
fn stdin_reaches_the_container() {
    let env = Env::new();
    let b = env.bundle(&["sh", "-c", "read line; echo got:$line"]);
    let id = env.id("c");
    let out = env.rt_opts(
        &["run", "--bundle", b.path(), &id],
        Opts {
            stdin: Some(b"ping\n"),
            ..Default::default()
        },
    );
    out.success();
    assert_eq!(out.stdout, "got:ping\n");
}

#[test]
fn process_is_pid_1_in_its_pid_namespace() {
    let env = Env::new();
    let out = env.sh("echo $$; cat /proc/self/stat | cut -d' ' -f4", |_| {});
    assert_eq!(out.lines().collect::<Vec<_>>()[0], "1");
}

#[test]
fn executable_not_found_in_path() {
    let env = Env::new();
    for cmd in ["create", "run"] {
        let b = env.bundle(&["nonexistent-cmd"]);
        let id = env.id(cmd);
        let out = env.rt(&[cmd, "--bundle", b.path(), &id]);
        assert_ne!(out.code, 0, "{out:#?}");
        out.stderr_has("executable file not found in $PATH");
        out.stderr_has("nonexistent-cmd");
        env.assert_nothing_left(&id);
    }
}

#[test]
fn absolute_executable_missing() {
    let env = Env::new();
    let b = env.bundle(&["/bin/nonexistent-cmd"]);
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_ne!(out.code, 0, "{out:#?}");
    out.stderr_has("/bin/nonexistent-cmd");
    out.stderr_has("no such file or directory");
    env.assert_nothing_left(&id);
}

#[test]
fn non_executable_file() {
    let env = Env::new();
    let b = env.bundle(&["/bin/noexec"]);
    b.put_file("bin/noexec", "#!/bin/sh\necho should not run\n", 0o644);
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_ne!(out.code, 0, "{out:#?}");
    out.stderr_has("permission denied");
    out.stderr_has("/bin/noexec");
    env.assert_nothing_left(&id);

    // Looked up through $PATH: runc (Go's LookPath) skips non-executable
    // files and says "executable file not found in $PATH"; execvp-style
    // lookup reports "permission denied". Either way it must fail.
    let b = env.bundle(&["noexec"]);
    b.put_file("bin/noexec", "#!/bin/sh\necho should not run\n", 0o644);
    let id = env.id("c2");
    let out = env.rt(&["run", "--bundle", b.path(), &id]);
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(!out.stdout.contains("should not run"));
    out.stderr_has("noexec");
    // Go's LookPath (runc) skips non-executables found through $PATH.
    out.stderr_has("executable file not found in $PATH");
    env.assert_nothing_left(&id);
}

#[test]
fn args_run_through_path_and_scripts() {
    let env = Env::new();
    let b = env.bundle(&["hello.sh", "a b", "c"]);
    b.put_file(
        "usr/bin/hello.sh",
        "#!/bin/sh\necho \"argc=$# 1=$1 2=$2\"\n",
        0o755,
    );
    let id = env.id("c");
    let out = env.run(&b, &id);
    out.success();
    assert_eq!(out.stdout, "argc=2 1=a b 2=c\n");
}

#[test]
fn error_output_is_one_line() {
    // A failing create prints one error line, in runc's logrus format
    // `time="..." level=error msg="..."`.
    let env = Env::new();
    let b = env.bundle(&["nonexistent-cmd"]);
    let id = env.id("c");
    let out = env.rt(&["create", "--bundle", b.path(), &id]);
    assert_eq!(out.code, 1, "{out:#?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:#?}");
    assert!(lines[0].starts_with("time=\""), "{out:#?}");
    assert!(lines[0].contains("level=error"), "{out:#?}");
    assert!(
        lines[0].contains("executable file not found in $PATH"),
        "{out:#?}"
    );
}
