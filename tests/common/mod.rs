//! Shared helpers for tong's integration tests.
//!
//! Every test runs real containers as root. The runtime under test is
//! `$TONG_TEST_RUNTIME` when set (e.g. `/usr/sbin/runc`, the reference
//! implementation), otherwise the `tong` binary cargo just built.
//!
//! Isolation: each [`Env`] owns a unique name `tong-test-<pid>-<n>-`; its
//! `--root` state dir is `/run/<name>`, its bundles live under `/tmp/<name>`,
//! and every bundle's `linux.cgroupsPath` is the absolute `/<name>b<k>`, so
//! tests can run in parallel and clean up after themselves precisely.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Generous upper bound for any single runtime invocation; only there so a
/// broken runtime fails the test instead of hanging it.
pub const CMD_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound when polling for a state transition.
pub const STATE_DEADLINE: Duration = Duration::from_secs(10);

/// The runtime binary under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("TONG_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_tong")),
    }
}

/// True when the suite runs against runc as the reference implementation.
/// Assertions about deliberate tong/runc differences are gated on this.
pub fn is_runc() -> bool {
    runtime()
        .file_name()
        .map(|n| n.to_string_lossy().contains("runc"))
        .unwrap_or(false)
}

/// The program name the runtime prints in its messages (`tong`/`runc`).
pub fn runtime_name() -> &'static str {
    if is_runc() { "runc" } else { "tong" }
}

/// Whether cgroup v2 alone is mounted at /sys/fs/cgroup (a pure v2 host, as in hack/vmtest).
pub fn pure_cgroup2_host() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// runc 1.1's `runc spec` output; tong's `spec` must produce the same
/// (hostname aside). Embedded so bundle setup does not depend on the
/// runtime's own `spec` working.
pub const DEFAULT_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": { "uid": 0, "gid": 0 },
		"args": [ "sh" ],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
		},
		"rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
		"noNewPrivileges": true
	},
	"root": { "path": "rootfs", "readonly": true },
	"hostname": "runc",
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		  "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
		{ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
		  "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
		{ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		  "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
		{ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
		  "options": [ "nosuid", "noexec", "nodev" ] },
		{ "destination": "/sys", "type": "sysfs", "source": "sysfs",
		  "options": [ "nosuid", "noexec", "nodev", "ro" ] },
		{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
		  "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
	],
	"linux": {
		"resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
		"namespaces": [
			{ "type": "pid" }, { "type": "network" }, { "type": "ipc" },
			{ "type": "uts" }, { "type": "mount" }
		],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/sys/firmware", "/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
		]
	}
}"#;

pub fn default_spec() -> Value {
    serde_json::from_str(DEFAULT_SPEC).expect("embedded default spec parses")
}

/// Result of one runtime (or helper) invocation.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command line, for failure messages.
    pub cmd: String,
    /// Exit code; `128 + signal` when the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panics with the full output unless the command exited 0.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Panics unless the command failed (non-zero exit).
    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert_ne!(self.code, 0, "command unexpectedly succeeded: {self:#?}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}: {self:#?}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}: {self:#?}"
        );
        self
    }

    /// Non-empty stdout lines, trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The error lines on stderr (empty lines dropped).
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

pub fn exit_code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A started runtime process whose stdout/stderr go to files (not pipes:
/// container processes inherit the runtime's stdio, and a pipe held open by
/// a detached container would never reach EOF).
pub struct Spawned {
    child: Child,
    out_path: PathBuf,
    err_path: PathBuf,
    what: String,
}

impl Drop for Spawned {
    /// A runtime process dropped while still running is handed to the
    /// reaper thread (see [`start_reaper`]) so it never lingers as a zombie.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            abandoned().lock().unwrap().insert(self.child.id() as i32);
        }
    }
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Option<i32> {
        self.child.try_wait().expect("try_wait").map(exit_code)
    }

    /// Waits up to `deadline` (then kills it and panics).
    pub fn wait_timeout(mut self, deadline: Duration) -> Out {
        let start = Instant::now();
        let code = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break exit_code(st);
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = read_lossy(&self.out_path);
                let err = read_lossy(&self.err_path);
                panic!(
                    "`{}` did not finish within {deadline:?}\nstdout: {out}\nstderr: {err}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = Out {
            cmd: self.what.clone(),
            code,
            stdout: read_lossy(&self.out_path),
            stderr: read_lossy(&self.err_path),
        };
        let _ = fs::remove_file(&self.out_path);
        let _ = fs::remove_file(&self.err_path);
        out
    }

    pub fn wait(self) -> Out {
        self.wait_timeout(CMD_DEADLINE)
    }
}

/// Makes `files` the fds 3, 4, ... of the process `cmd` spawns (the parent keeps its own
/// copies; the caller drops them after the spawn).
pub fn pass_fds_from_3(cmd: &mut Command, files: &[fs::File]) {
    let fds: Vec<i32> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    if fds.is_empty() {
        return;
    }
    // SAFETY (test harness): only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources out of the way first so dup2 targets do not clobber a source
            // that sits at a low number.
            let mut tmp = Vec::new();
            for &fd in &fds {
                let t = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                tmp.push(t);
            }
            for (i, &t) in tmp.iter().enumerate() {
                if libc::dup2(t, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

pub fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Options for one invocation.
#[derive(Default)]
pub struct Opts<'a> {
    /// Working directory of the runtime process.
    pub cwd: Option<&'a Path>,
    /// Host files to hand to the runtime as fds 3, 4, ... (for --preserve-fds).
    pub extra_fds: Vec<fs::File>,
    /// Extra environment variables.
    pub envs: Vec<(&'a str, &'a str)>,
    /// Data written to stdin (via a temp file).
    pub stdin: Option<&'a [u8]>,
}

/// A per-test sandbox: a unique `--root`, a scratch dir for bundles and the
/// cgroup name prefix. Dropping it force-deletes every container in its root,
/// kills stray processes in its cgroups, unmounts leftovers under its dirs,
/// removes its dirs and rmdirs its cgroups.
pub struct Env {
    /// `tong-test-<pid>-<n>-`; prefix of every cgroup this env creates.
    pub name: String,
    /// `--root` state directory.
    pub root: PathBuf,
    /// Scratch directory holding the bundles and any host files.
    pub base: PathBuf,
    nbundles: AtomicUsize,
    nfiles: AtomicUsize,
    ids: std::sync::Mutex<Vec<String>>,
    /// The leak-audit snapshot taken when the env was made (see
    /// [`Env::leak_audit`]).
    before: Snapshot,
    /// Leak-audit entries containing one of these strings are ignored
    /// (see [`Env::allow_leftover`]).
    allowed: Mutex<Vec<String>>,
}

impl Env {
    pub fn new() -> Env {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the integration tests need root"
        );
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("tong-test-{}-{}-", std::process::id(), n);
        let root = PathBuf::from(format!("/run/{name}root"));
        let base = PathBuf::from(format!("/tmp/{name}base"));
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&base);
        // The runtime must create the root itself when missing; we only make
        // the scratch dir.
        fs::create_dir_all(&base).unwrap();
        start_reaper();
        let before = Snapshot::take(&name, &base, &root);
        Env {
            name,
            root,
            base,
            nbundles: AtomicUsize::new(0),
            nfiles: AtomicUsize::new(0),
            ids: Default::default(),
            before,
            allowed: Default::default(),
        }
    }

    /// A container id unique to this env (also remembered for cleanup).
    pub fn id(&self, tag: &str) -> String {
        let id = format!("{}{}", self.name, tag);
        self.track(&id);
        id
    }

    /// Remember an id so Drop force-deletes it.
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    /// A fresh, empty host directory under this env's scratch dir.
    pub fn tempdir(&self, tag: &str) -> PathBuf {
        let k = self.nfiles.fetch_add(1, Ordering::SeqCst);
        let p = self.base.join(format!("{tag}{k}"));
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Builds a bundle whose process runs `args`; `edit` may change the
    /// config (a serde_json::Value) before it is written.
    pub fn bundle_with(&self, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let k = self.nbundles.fetch_add(1, Ordering::SeqCst);
        let dir = self.base.join(format!("b{k}"));
        let cgroup = format!("/{}b{}", self.name, k);
        let hostname = format!("{}h{}", self.name, k);
        make_rootfs(&dir.join("rootfs"));
        let mut cfg = default_spec();
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(args);
        cfg["hostname"] = json!(hostname);
        cfg["linux"]["cgroupsPath"] = json!(cgroup);
        edit(&mut cfg);
        let b = Bundle {
            dir,
            cgroup,
            hostname,
        };
        b.write_config(&cfg);
        b
    }

    pub fn bundle(&self, args: &[&str]) -> Bundle {
        self.bundle_with(args, |_| {})
    }

    /// The `--root` argument pair.
    fn root_args(&self) -> Vec<String> {
        vec!["--root".into(), self.root.to_string_lossy().into_owned()]
    }

    /// Starts `runtime --root R args...` without waiting.
    pub fn spawn_opts(&self, args: &[&str], opts: Opts) -> Spawned {
        let mut full = self.root_args();
        full.extend(args.iter().map(|s| s.to_string()));
        spawn_cmd(&runtime(), &full, opts, &self.base)
    }

    pub fn spawn(&self, args: &[&str]) -> Spawned {
        self.spawn_opts(args, Opts::default())
    }

    /// Like [`Env::rt`] with raw (possibly non-UTF-8) arguments.
    pub fn rt_os(&self, args: &[&OsStr]) -> Out {
        let mut full: Vec<OsString> = self.root_args().into_iter().map(OsString::from).collect();
        full.extend(args.iter().map(|a| a.to_os_string()));
        spawn_cmd_os(&runtime(), &full, Opts::default(), &self.base).wait()
    }

    /// Runs `runtime --root ROOT args...` with another state root than this
    /// env's (e.g. a full or read-only file system), with extra `envs`.
    pub fn rt_with_root(&self, root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Out {
        let mut full: Vec<OsString> = vec!["--root".into(), root.as_os_str().to_os_string()];
        full.extend(args.iter().map(OsString::from));
        let opts = Opts {
            envs: envs.to_vec(),
            ..Default::default()
        };
        spawn_cmd_os(&runtime(), &full, opts, &self.base).wait()
    }

    /// Runs another runtime binary `prog --root R args...` on this env's root (an older
    /// tong, say) to completion.
    pub fn rt_prog(&self, prog: &Path, args: &[&str]) -> Out {
        let mut full = self.root_args();
        full.extend(args.iter().map(|s| s.to_string()));
        spawn_cmd(prog, &full, Opts::default(), &self.base).wait()
    }

    /// Runs `runtime --root R args...` to completion.
    pub fn rt(&self, args: &[&str]) -> Out {
        self.spawn(args).wait()
    }

    pub fn rt_opts(&self, args: &[&str], opts: Opts) -> Out {
        self.spawn_opts(args, opts).wait()
    }

    /// `run --bundle B ID` in the foreground; returns the container's
    /// output (its stdio is the runtime's).
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        self.rt(&["run", "--bundle", b.path(), id])
    }

    /// Builds a bundle for `args`, runs it in the foreground and returns its
    /// output. The container is gone afterwards (run removes it).
    pub fn run_with(&self, args: &[&str], edit: impl FnOnce(&mut Value)) -> Out {
        let b = self.bundle_with(args, edit);
        let id = self.id(&format!("run{}", self.nbundles.load(Ordering::SeqCst)));
        self.run(&b, &id)
    }

    /// Runs `sh -c script` with the given config edit; panics unless it
    /// exits 0, and returns stdout.
    #[track_caller]
    pub fn sh(&self, script: &str, edit: impl FnOnce(&mut Value)) -> String {
        let out = self.run_with(&["sh", "-c", script], edit);
        out.success();
        out.stdout
    }

    /// `create --bundle B ID`, panicking on failure.
    #[track_caller]
    pub fn create(&self, b: &Bundle, id: &str) {
        self.rt(&["create", "--bundle", b.path(), id]).success();
    }

    /// `state ID` parsed; panics if the command fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        out.success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {out:#?}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// Polls `state ID` until its status is `want`; panics after
    /// [`STATE_DEADLINE`].
    /// A container that does not exist yet (e.g. `run` still setting it
    /// up) is waited for too.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let start = Instant::now();
        loop {
            let out = self.rt(&["state", id]);
            let st: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
            if out.ok() && st["status"] == want {
                return st;
            }
            if start.elapsed() > STATE_DEADLINE {
                panic!("container {id} never reached status {want:?}; last state: {out:#?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Path of the state directory the runtime keeps for `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Every cgroup directory (in any hierarchy) whose name starts with this
    /// env's prefix.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_dirs_with_prefix(&self.name)
    }

    /// Asserts that nothing of container `id` survived: no state dir, no
    /// cgroup of this env, no mount under this env's scratch dir, no process
    /// running inside one of this env's bundles or cgroups.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str) {
        let sd = self.state_dir(id);
        assert!(!sd.exists(), "state dir {} left behind", sd.display());

        // Processes take a moment to be reaped after a kill; poll a little
        // for the cgroup dirs to become removable/removed.
        let start = Instant::now();
        loop {
            let cg = self.cgroup_dirs();
            let procs = self.processes_inside();
            if cg.is_empty() && procs.is_empty() {
                break;
            }
            if start.elapsed() > STATE_DEADLINE {
                panic!("left behind: cgroups {cg:?}, processes {procs:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }

        let mounts = mounts_under(&self.base);
        assert!(mounts.is_empty(), "mounts left behind: {mounts:#?}");
    }

    /// Pids of processes whose cgroup mentions this env's prefix or whose
    /// root directory lies under this env's scratch dir.
    pub fn processes_inside(&self) -> Vec<u32> {
        let base = self.base.to_string_lossy().into_owned();
        let mut v = Vec::new();
        let me = std::process::id();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let root = fs::read_link(e.path().join("root"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cg = fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            if root.starts_with(&base) || cg.contains(&format!("/{}", self.name)) {
                // Zombies are not "running"; ignore them.
                let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                if let Some(rest) = stat.rsplit_once(')')
                    && rest.1.trim_start().starts_with('Z')
                {
                    continue;
                }
                v.push(pid);
            }
        }
        v
    }

    /// All ids the runtime lists under this env's root (empty if `list`
    /// fails).
    pub fn list_ids(&self) -> Vec<String> {
        let out = self
            .spawn(&["list", "-q"])
            .wait_timeout(Duration::from_secs(20));
        if !out.ok() {
            return vec![];
        }
        out.lines().iter().map(|s| s.to_string()).collect()
    }
}

impl Drop for Env {
    /// Force-deletes (with the runtime under test) every container still in
    /// this env's root, runs the leak audit, then cleans up by brute force
    /// (kill, unmount, rmdir) and finally panics if the audit found leaks.
    /// The audit runs after the runtime's own `delete --force`, so a test
    /// may leave its containers to Drop, but before the brute-force cleanup,
    /// which would otherwise hide what the runtime left behind.
    fn drop(&mut self) {
        let unwinding = std::thread::panicking();
        self.delete_all();
        let leaks = if unwinding || audit_mode() == AuditMode::Off {
            Vec::new()
        } else {
            self.leak_audit_settled(Duration::from_secs(5))
        };
        cleanup_prefix(&self.name, &self.base, &self.root);
        if !leaks.is_empty() {
            let msg = format!(
                "leak audit of {}: the test (or the runtime) left {} thing(s) behind:\n  {}",
                self.name,
                leaks.len(),
                leaks.join("\n  ")
            );
            if audit_mode() == AuditMode::Fail {
                panic!("{msg}");
            }
            eprintln!("warning: {msg}");
        }
    }
}

impl Env {
    /// Best effort, never panics (we may already be unwinding):
    /// `delete --force` of every id tracked or found in the root.
    fn delete_all(&self) {
        let mut ids = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        ids.extend(self.list_ids());
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        ids.dedup();
        for id in &ids {
            // `seccomp@cache` is tong's program cache, not a container.
            if id.is_empty() || id.contains('/') || id.starts_with('.') || id.contains('@') {
                continue;
            }
            let mut full = self.root_args();
            full.extend(["delete".into(), "--force".into(), id.clone()]);
            let sp = spawn_cmd(&runtime(), &full, Opts::default(), Path::new("/tmp"));
            let mut sp = sp;
            let start = Instant::now();
            while sp.try_wait().is_none() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = sp.child.kill();
            let _ = sp.child.wait();
            let _ = fs::remove_file(&sp.out_path);
            let _ = fs::remove_file(&sp.err_path);
        }
    }

    /// The leak audit: what is tied to this env now and was not when it was
    /// made (processes, host mounts, cgroup dirs, state files, fds of the
    /// test process), as one line per leftover. Empty when nothing leaked.
    /// One look, no waiting; see [`Snapshot`] for what is compared.
    pub fn leak_audit(&self) -> Vec<String> {
        let now = Snapshot::take(&self.name, &self.base, &self.root);
        let allowed = self.allowed.lock().map(|a| a.clone()).unwrap_or_default();
        self.before
            .leaks_in(&now)
            .into_iter()
            .filter(|l| !allowed.iter().any(|a| l.contains(a.as_str())))
            .collect()
    }

    /// [`Env::leak_audit`] polled until it is empty or `grace` has passed
    /// (killed processes take a moment to disappear); returns the last look.
    pub fn leak_audit_settled(&self, grace: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let leaks = self.leak_audit();
            if leaks.is_empty() || start.elapsed() > grace {
                return leaks;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Escape hatch for a test that deliberately leaves something behind:
    /// leak-audit lines containing `needle` are ignored for this env.
    pub fn allow_leftover(&self, needle: &str) {
        self.allowed.lock().unwrap().push(needle.to_string());
    }
}

/// Kills stray processes in cgroups named `prefix*`, detaches mounts under
/// `base`, removes `base` and `root`, and rmdirs the cgroups.
pub fn cleanup_prefix(prefix: &str, base: &Path, root: &Path) {
    assert!(prefix.starts_with("tong-test-"));
    // Stray processes: in our cgroups, or rooted in our scratch dir.
    for round in 0..50 {
        let mut any = false;
        for dir in cgroup_dirs_with_prefix(prefix) {
            for pid in read_pids(&dir.join("cgroup.procs")) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                any = true;
            }
        }
        let b = base.to_string_lossy().into_owned();
        if let Ok(rd) = fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if pid as u32 == std::process::id() {
                    continue;
                }
                if let Ok(r) = fs::read_link(e.path().join("root"))
                    && r.to_string_lossy().starts_with(&b)
                {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    any = true;
                }
            }
        }
        if !any || round == 49 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Leftover mounts (deepest first) so removing the dirs never walks into
    // a host directory that was bind-mounted.
    for _ in 0..5 {
        let mut ms = mounts_under(base);
        ms.extend(mounts_under(root));
        if ms.is_empty() {
            break;
        }
        ms.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ms {
            if let Ok(c) = std::ffi::CString::new(m) {
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
    if mounts_under(base).is_empty() {
        let _ = fs::remove_dir_all(base);
    }
    if mounts_under(root).is_empty() {
        let _ = fs::remove_dir_all(root);
    }
    for _ in 0..100 {
        let dirs = cgroup_dirs_with_prefix(prefix);
        if dirs.is_empty() {
            break;
        }
        for d in dirs {
            rmdir_tree(&d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// rmdir a cgroup dir and its child cgroups (children first).
fn rmdir_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}

fn read_pids(p: &Path) -> Vec<u32> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `/sys/fs/cgroup/<hierarchy>/<prefix>*` for every hierarchy (v1
/// controllers and the cgroup2 mount at /sys/fs/cgroup/unified).
pub fn cgroup_dirs_with_prefix(prefix: &str) -> Vec<PathBuf> {
    assert!(prefix.starts_with("tong-test-"));
    let mut v = Vec::new();
    let mut hier = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            // Symlinks like cpu -> cpu,cpuacct would just repeat entries.
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                hier.push(e.path());
            }
        }
    }
    for h in hier {
        if let Ok(rd) = fs::read_dir(&h) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix)
                    && e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                {
                    v.push(e.path());
                }
            }
        }
    }
    v
}

/// Mount points (from this process's mountinfo, i.e. the host's mount
/// namespace) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .filter(|mp| mp == &d || mp.starts_with(&format!("{d}/")))
        .collect()
}

/// Every line of the host's mountinfo mentioning `needle` anywhere.
pub fn host_mountinfo_mentioning(needle: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| unescape_mountinfo(l).contains(needle))
        .map(String::from)
        .collect()
}

pub fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn spawn_cmd(prog: &Path, args: &[String], opts: Opts, scratch: &Path) -> Spawned {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    spawn_cmd_os(prog, &args, opts, scratch)
}

fn spawn_cmd_os(prog: &Path, args: &[OsString], opts: Opts, scratch: &Path) -> Spawned {
    let k = SEQ.fetch_add(1, Ordering::SeqCst);
    let dir = if scratch.is_dir() {
        scratch.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    };
    let tag = format!("tong-test-io-{}-{}", std::process::id(), k);
    let out_path = dir.join(format!("{tag}.out"));
    let err_path = dir.join(format!("{tag}.err"));
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .current_dir(opts.cwd.unwrap_or(Path::new("/")));
    match opts.stdin {
        Some(data) => {
            let in_path = dir.join(format!("{tag}.in"));
            fs::write(&in_path, data).unwrap();
            cmd.stdin(fs::File::open(&in_path).unwrap());
            let _ = fs::remove_file(&in_path);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    for (k, v) in &opts.envs {
        cmd.env(k, v);
    }
    pass_fds_from_3(&mut cmd, &opts.extra_fds);
    let what = format!(
        "{} {}",
        prog.display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    drop(opts.extra_fds);
    Spawned {
        child,
        out_path,
        err_path,
        what,
    }
}

/// Runs an arbitrary host command to completion (for `ip`, `sh`, ...).
pub fn host(prog: &str, args: &[&str]) -> Out {
    let full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    spawn_cmd(Path::new(prog), &full, Opts::default(), Path::new("/tmp")).wait()
}

/// A bundle directory: `dir/config.json` and `dir/rootfs`.
pub struct Bundle {
    pub dir: PathBuf,
    /// The absolute `linux.cgroupsPath` set in its config.
    pub cgroup: String,
    /// The hostname set in its config.
    pub hostname: String,
}

impl Bundle {
    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    pub fn write_config(&self, cfg: &Value) {
        fs::write(
            self.config_path(),
            serde_json::to_string_pretty(cfg).unwrap(),
        )
        .unwrap();
    }

    pub fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        edit(&mut c);
        self.write_config(&c);
    }

    /// Writes a file inside the rootfs (creating parent dirs) with `mode`.
    pub fn put_file(&self, rel: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.rootfs().join(rel.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

fn applets() -> &'static Vec<String> {
    static A: OnceLock<Vec<String>> = OnceLock::new();
    A.get_or_init(|| {
        assert!(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox missing: apt-get install busybox-static"
        );
        let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "busybox")
            .collect()
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

pub const GROUP: &str =
    "root:x:0:\ntty:x:5:\ntester:x:1000:\nextra:x:2000:tester\nnogroup:x:65534:\n";

/// Same layout as hack/mkbundle.sh: static busybox plus applet symlinks in
/// /bin, the usual empty dirs, /etc/passwd and /etc/group.
pub fn make_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "home/tester",
        "var",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(rootfs.join("home/tester"), Some(1000), Some(1000)).unwrap();
    let bb = rootfs.join("bin/busybox");
    fs::copy("/bin/busybox", &bb).unwrap();
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).unwrap();
    for a in applets() {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
    fs::write(rootfs.join("etc/group"), GROUP).unwrap();
}

// ---- config editing helpers -------------------------------------------------

/// Replaces `linux.namespaces` with the given types (no paths).
pub fn set_namespaces(cfg: &mut Value, types: &[&str]) {
    cfg["linux"]["namespaces"] = Value::Array(types.iter().map(|t| json!({ "type": t })).collect());
}

/// Sets all five capability sets (bounding, effective, permitted, ambient,
/// inheritable) to `caps`.
pub fn set_all_caps(cfg: &mut Value, caps: &[&str]) {
    cfg["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps,
        "ambient": caps, "inheritable": caps,
    });
}

pub fn push_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().unwrap().push(m);
}

// ---- inspection helpers -------------------------------------------------------

/// Parses `/proc/*/mountinfo` text into (mount point, fs type, per-mount
/// options, super options) tuples.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let lf: Vec<&str> = left.split(' ').collect();
            let rf: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                mount_point: unescape_mountinfo(lf.get(4)?),
                root: unescape_mountinfo(lf.get(3)?),
                opts: lf.get(5)?.split(',').map(String::from).collect(),
                fstype: rf.first()?.to_string(),
                source: rf.get(1).map(|s| unescape_mountinfo(s)).unwrap_or_default(),
                super_opts: rf
                    .get(2)
                    .map(|s| s.split(',').map(String::from).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub root: String,
    pub opts: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_opts: Vec<String>,
}

impl MountInfo {
    pub fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o) || self.super_opts.iter().any(|x| x == o)
    }
}

/// The last mount at `mp` (the visible one).
#[track_caller]
pub fn find_mount<'a>(ms: &'a [MountInfo], mp: &str) -> &'a MountInfo {
    ms.iter()
        .rev()
        .find(|m| m.mount_point == mp)
        .unwrap_or_else(|| panic!("no mount at {mp} in {ms:#?}"))
}

/// Reads a `Key:\tvalue` field of a /proc/PID/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || unsafe { libc::kill(pid as i32, 0) } != 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rsplit_once(')') {
            Some((_, rest)) => !rest.trim_start().starts_with(['Z', 'X']),
            None => true,
        },
        Err(_) => false,
    }
}

/// Polls until `pid` is gone (or a zombie); panics after STATE_DEADLINE.
#[track_caller]
pub fn wait_pid_gone(pid: i64) {
    let start = Instant::now();
    while pid_alive(pid) {
        assert!(start.elapsed() < STATE_DEADLINE, "pid {pid} still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// sha256 of a host file via coreutils (avoids a dev-dependency).
pub fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Whether `p` is a char device with the given major/minor.
pub fn is_chardev(p: &Path, major: u32, minor: u32) -> bool {
    match fs::metadata(p) {
        Ok(m) => {
            m.file_type().is_char_device()
                && libc::major(m.rdev()) == major
                && libc::minor(m.rdev()) == minor
        }
        Err(_) => false,
    }
}

// ---- leak audit -------------------------------------------------------------
//
// Every `Env` snapshots the host when it is made and again when it is dropped
// (after the runtime's own `delete --force` of whatever the test left, before
// the brute-force cleanup) and fails the test on any difference. Tests run
// two at a time in one process and several test binaries may run at once, so
// the snapshot is scoped to the env: only what carries its unique name
// (`tong-test-<pid>-<n>-`), lives under its scratch dir or state root, or
// sits in one of its cgroups is looked at.

/// What the leak audit does on a leak: `TONG_LEAK_AUDIT=off|warn|fail`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuditMode {
    Off,
    Warn,
    Fail,
}

/// Defaults to `fail` for tong and to `warn` against runc (the reference is
/// not under test here, and runc 1.1 forgets e.g. the cgroups of a
/// container whose create was killed before it wrote its state).
pub fn audit_mode() -> AuditMode {
    match std::env::var("TONG_LEAK_AUDIT").as_deref() {
        Ok("off") | Ok("0") => AuditMode::Off,
        Ok("warn") => AuditMode::Warn,
        Ok("fail") | Ok("1") => AuditMode::Fail,
        _ if is_runc() => AuditMode::Warn,
        _ => AuditMode::Fail,
    }
}

/// The part of the host tied to one env, each entry keyed (for the diff)
/// and described (for the report):
///
/// * `processes`: every live (non-zombie) process, found by scanning /proc,
///   whose root directory is under the env's scratch dir (a container's
///   rootfs), whose cgroup path (in any hierarchy) is one of the env's, or
///   whose command line carries the env's name (a runtime invocation on its
///   `--root`, a hook or helper working on its files). Orphans that would
///   otherwise escape to pid 1 come back to the test process, which is a
///   child subreaper (see [`start_reaper`]), so the scan sees them and they
///   do not pile up as zombies.
/// * `mounts`: lines of the host's /proc/self/mountinfo mentioning the
///   env's name (its scratch dir, its state root, its bundles' rootfs).
/// * `cgroups`: dirs named with the env's prefix under every mounted
///   hierarchy (each v1 controller and the cgroup2 mount).
/// * `state_files`: every file and dir under the env's `--root`, except
///   tong's compiled-seccomp cache `seccomp@cache` and its contents.
/// * `fds`: open fds of the test process itself (the one long-lived process
///   of the suite; the runtime has no daemon) whose target names the env:
///   a leaked fd into a bundle, a state dir, an exec FIFO or console socket.
///   The raw fd count is shared by the tests running in parallel in the
///   same process, so only fds attributable to this env are compared.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub processes: BTreeMap<String, String>,
    pub mounts: BTreeMap<String, String>,
    pub cgroups: BTreeMap<String, String>,
    pub state_files: BTreeMap<String, String>,
    pub fds: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn take(name: &str, base: &Path, root: &Path) -> Snapshot {
        assert!(name.starts_with("tong-test-"));
        let mut s = Snapshot::default();
        let me = std::process::id() as i32;
        let base_s = base.to_string_lossy().into_owned();
        let base_dir = format!("{base_s}/");
        let cg_needle = format!("/{name}");

        for e in proc_table() {
            if e.pid == me || matches!(e.state, 'Z' | 'X') {
                continue;
            }
            let dir = PathBuf::from(format!("/proc/{}", e.pid));
            let proot = fs::read_link(dir.join("root"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cg = fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
            let cmdline = fs::read(dir.join("cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            let mut why = Vec::new();
            if proot == base_s || proot.starts_with(&base_dir) {
                why.push(format!("root {proot}"));
            }
            if let Some(l) = cg.lines().find(|l| l.contains(&cg_needle)) {
                why.push(format!("cgroup {l}"));
            }
            if cmdline.contains(name) {
                why.push("command line names the env".to_string());
            }
            if !why.is_empty() {
                s.processes.insert(
                    format!("{}:{}", e.pid, e.start),
                    format!(
                        "process {} ({}, parent {}) `{cmdline}`: {}",
                        e.pid,
                        e.comm,
                        e.ppid,
                        why.join(", ")
                    ),
                );
            }
        }

        for l in fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if unescape_mountinfo(l).contains(name) {
                s.mounts.insert(l.to_string(), format!("mount {l}"));
            }
        }

        for d in cgroup_dirs_with_prefix(name) {
            let d = d.to_string_lossy().into_owned();
            s.cgroups.insert(d.clone(), format!("cgroup dir {d}"));
        }

        fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                if e.file_name() == "seccomp@cache" {
                    continue;
                }
                let p = e.path();
                let ps = p.to_string_lossy().into_owned();
                out.insert(ps.clone(), format!("state file {ps}"));
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&p, out);
                }
            }
        }
        walk(root, &mut s.state_files);

        if let Ok(rd) = fs::read_dir("/proc/self/fd") {
            for e in rd.flatten() {
                if let Ok(t) = fs::read_link(e.path()) {
                    let t = t.to_string_lossy().into_owned();
                    if t.contains(name) {
                        let fd = e.file_name().to_string_lossy().into_owned();
                        s.fds.insert(
                            format!("{fd}->{t}"),
                            format!("fd {fd} of the test process -> {t}"),
                        );
                    }
                }
            }
        }
        s
    }

    /// Descriptions of everything in `now` that is not in `self`.
    pub fn leaks_in(&self, now: &Snapshot) -> Vec<String> {
        let mut v = Vec::new();
        for (a, b) in [
            (&self.processes, &now.processes),
            (&self.mounts, &now.mounts),
            (&self.cgroups, &now.cgroups),
            (&self.state_files, &now.state_files),
            (&self.fds, &now.fds),
        ] {
            v.extend(
                b.iter()
                    .filter(|(k, _)| !a.contains_key(*k))
                    .map(|(_, d)| d.clone()),
            );
        }
        v
    }
}

/// One line of /proc/PID/stat.
#[derive(Debug, Clone)]
pub struct ProcEntry {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks since boot: with the pid, identifies a
    /// process across pid reuse.
    pub start: u64,
}

/// Every process (thread-group leader) in /proc.
pub fn proc_table() -> Vec<ProcEntry> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(state), Some(ppid), Some(start)) = (
            f.first().and_then(|s| s.chars().next()),
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(19).and_then(|s| s.parse().ok()),
        ) else {
            continue;
        };
        v.push(ProcEntry {
            pid,
            comm,
            state,
            ppid,
            start,
        });
    }
    v
}

/// Pids of harness-spawned runtime processes dropped while still running;
/// the reaper thread waits for them.
fn abandoned() -> &'static Mutex<HashSet<i32>> {
    static A: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    A.get_or_init(Default::default)
}

/// Makes the test process a child subreaper (PR_SET_CHILD_SUBREAPER), once,
/// and starts the thread that reaps what that brings back.
///
/// As a subreaper, every orphaned descendant of the test process (the init
/// of a detached container once `create`/`run -d` exits, a hook left behind
/// by a killed runtime, ...) is reparented to the test process instead of
/// pid 1, so the leak audit's /proc scan finds it and nothing escapes.
///
/// The reaper must never steal an exit status a test waits for with its own
/// `Child` (a test may `Command::spawn` a helper and even move it into a
/// cgroup). So it only reaps zombies it has seen alive with another parent
/// than the test process (a grandchild, hence reparented since: never a
/// `Child` of anyone in this process), matched by pid and start time, plus
/// children rooted in a bundle or in an env's cgroup (container processes),
/// plus
/// harness-spawned runtimes whose [`Spawned`] was dropped unwaited.
pub fn start_reaper() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            rc,
            0,
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reaper_loop)
            .expect("spawn the reaper thread");
    });
}

fn reaper_loop() {
    let me = std::process::id() as i32;
    // pid -> start time of every descendant seen with another parent.
    let mut grandchildren: HashMap<i32, u64> = HashMap::new();
    // Every env of this process names its cgroups `/tong-test-<pid>-<n>-...`.
    let env_cgroup = format!("/tong-test-{me}-");
    loop {
        let table = proc_table();
        let parent: HashMap<i32, i32> = table.iter().map(|e| (e.pid, e.ppid)).collect();
        for e in &table {
            if e.ppid != me && descends_from(e.pid, me, &parent) {
                grandchildren.insert(e.pid, e.start);
            } else if e.ppid == me && !grandchildren.contains_key(&e.pid) {
                // A child rooted in a bundle or living in an env's cgroup is
                // a container process whose runtime exited before it was
                // seen as a grandchild (no test chroots a helper of its own
                // into a bundle or moves one into an env's cgroup; runc's
                // containers read as rooted at `/`).
                let root = fs::read_link(format!("/proc/{}/root", e.pid)).unwrap_or_default();
                let cg = fs::read_to_string(format!("/proc/{}/cgroup", e.pid)).unwrap_or_default();
                if root.to_string_lossy().starts_with("/tmp/tong-test-") || cg.contains(&env_cgroup)
                {
                    grandchildren.insert(e.pid, e.start);
                }
            }
        }
        for e in &table {
            if e.ppid == me
                && matches!(e.state, 'Z' | 'X')
                && grandchildren.get(&e.pid) == Some(&e.start)
            {
                let mut st = 0;
                unsafe { libc::waitpid(e.pid, &mut st, libc::WNOHANG) };
                grandchildren.remove(&e.pid);
            }
        }
        grandchildren.retain(|p, _| parent.contains_key(p));
        if let Ok(mut ab) = abandoned().lock() {
            ab.retain(|&p| {
                let mut st = 0;
                unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) == 0 }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn descends_from(pid: i32, ancestor: i32, parent: &HashMap<i32, i32>) -> bool {
    let mut cur = pid;
    for _ in 0..64 {
        match parent.get(&cur) {
            Some(&p) if p == ancestor => return true,
            Some(&p) if p > 1 => cur = p,
            _ => return false,
        }
    }
    false
}

/// A unix socket listening where `--console-socket` points (the terminal tests and the
/// /dev/console attacks).
pub struct ConsoleSocket {
    listener: std::os::unix::net::UnixListener,
    pub path: PathBuf,
}

impl ConsoleSocket {
    pub fn new(env: &Env) -> ConsoleSocket {
        let path = env.tempdir("console").join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { listener, path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Accepts the runtime's connection and receives its message: (bytes, fds passed over
    /// SCM_RIGHTS). None when the runtime exits without connecting, or the receive fails.
    pub fn receive(&self, sp: &mut Spawned) -> Option<(usize, Vec<std::os::fd::OwnedFd>)> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
        let start = Instant::now();
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if sp.try_wait().is_some() {
                        // It may have connected just before exiting.
                        match self.listener.accept() {
                            Ok((s, _)) => break s,
                            Err(_) => return None,
                        }
                    }
                    assert!(
                        start.elapsed() < CMD_DEADLINE,
                        "runtime never connected to the console socket"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(CMD_DEADLINE)).unwrap();
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let msg = nix::sys::socket::recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().into_iter().flatten() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
                // SAFETY (test harness): fresh fds from SCM_RIGHTS, owned from here on.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        Some((msg.bytes, fds))
    }
}
