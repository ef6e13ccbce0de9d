//! OCI hooks: run a hook with the container state on stdin, honouring its timeout.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linux::sys;

/// Where a hook runs beyond its own fields: the runtime's hooks (prestart, createRuntime,
/// poststart, poststop) take tong's environment and working directory (the bundle); the
/// container's (createContainer, startContainer) take what runc's init gives them.
#[derive(Default, Clone, Copy)]
pub struct Context<'a> {
    /// fds after stdio a hook also gets (startContainer: the container's `--preserve-fds`).
    pub keep: u32,
    /// The environment of a hook without `env` (the container process's); None inherits
    /// tong's own, as Go's os/exec does for runc.
    pub env: Option<&'a [String]>,
    /// The working directory (createContainer: the container's rootfs).
    pub cwd: Option<&'a std::path::Path>,
}

/// The container's state as runc prints it for `state` and gives it to hooks on stdin: the
/// OCI state plus runc's fields, in runc's order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

impl State {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs the hooks of one kind in order; the first failure stops them.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &State) -> Result<()> {
    run_all_in(kind, hooks, state, Context::default())
}

/// As `run_all`, in `ctx`.
pub fn run_all_in(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &State,
    ctx: Context,
) -> Result<()> {
    let json = state.json();
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run(h, &json, ctx)
            .map_err(|e| Error::other(format!("error running hook #{i} ({kind}): {e}")))?;
    }
    Ok(())
}

/// Runs every hook, logging failures instead of stopping (poststart and poststop).
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state: &State) {
    let json = state.json();
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run(h, &json, Context::default()) {
            crate::logging::warn(&format!("error running hook #{i} ({kind}): {e}"));
        }
    }
}

/// A hook gets its stdin (the state), stdout and stderr, and `keep` fds after them: no fd of
/// tong's (sync channel, FIFO, /dev/null, pipes) reaches it.
fn run(h: &Hook, state_json: &str, ctx: Context) -> std::result::Result<(), String> {
    let path = h.path();
    let mut cmd = Command::new(path);
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a0);
        }
        cmd.args(args.iter().skip(1));
    }
    // A hook's own `env`, even an empty one, is all it gets; without one it inherits.
    let env = h.env().as_deref().or(ctx.env);
    if let Some(env) = env {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    if let Some(d) = ctx.cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    sys::command_only_stdio(&mut cmd, ctx.keep);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = h.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    let status = match timeout {
        None => child.wait().map_err(|e| e.to_string())?,
        Some(t) => {
            let deadline = Instant::now() + t;
            let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
            loop {
                if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                    break s;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                    let _ = child.wait();
                    return Err(format!("timeout after {} seconds", t.as_secs()));
                }
                let mut fds = [nix::poll::PollFd::new(
                    pidfd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let ms = left.as_millis().min(i32::MAX as u128) as i32;
                let _ = nix::poll::poll(
                    &mut fds,
                    nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
                );
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal: {}", signal_words(s)),
        _ => status.to_string(),
    };
    Err(format!(
        "{status}, stdout: {}, stderr: {}",
        out.trim(),
        err.trim()
    ))
}

/// How runc (Go's os/exec) words a signal that ended a hook: `signal: bad system call`.
fn signal_words(sig: i32) -> String {
    const WORDS: [&str; 31] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    match usize::try_from(sig)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| WORDS.get(i))
    {
        Some(w) => w.to_string(),
        None => format!("signal {sig}"),
    }
}
