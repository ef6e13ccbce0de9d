//! runc-compatible logging: `--log FILE` and `--log-format text|json`.
//!
//! JSON lines are `{"level":"error","msg":"...","time":"..."}`, which containerd and podman read.
//! Text lines are logrus' text format: `time="..." level=error msg="..."`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<Mutex<File>>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up the logger once, from the global flags. A log file that cannot be opened is
/// reported on stderr and logging goes to stderr instead.
pub fn init(path: Option<&str>, format: Format, debug: bool) {
    let file = path.and_then(|p| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_CLOEXEC)
            .mode(0o640)
            .open(p)
        {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("failed to open log file {p}: {e}");
                None
            }
        }
    });
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// Formats one log line (without the trailing newline).
pub fn format_line(format: Format, level: Level, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            serde_json::json!({"level": level.name(), "msg": msg, "time": time}).to_string()
        }
        Format::Text => format!(
            "time={} level={} msg={}",
            serde_json::Value::from(time),
            level.name(),
            serde_json::Value::from(msg)
        ),
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes one line to the log file. Without a log file, warnings and debug lines go to stderr;
/// errors are printed to stderr by the caller (see [`error`]).
pub fn log(level: Level, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        if level >= Level::Warn {
            eprintln!("{}", format_line(Format::Text, level, msg, &now_rfc3339()));
        }
        return;
    };
    if level == Level::Debug && !logger.debug {
        return;
    }
    let line = format_line(logger.format, level, msg, &now_rfc3339());
    match &logger.file {
        Some(f) => {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{line}");
            }
        }
        None if level != Level::Error => eprintln!("{line}"),
        None => {}
    }
}

/// Reports a fatal error as runc does: with a log file, the formatted line goes there and
/// the plain message to stderr; without one, the formatted line goes to stderr.
pub fn error(msg: &str) {
    match LOGGER.get() {
        Some(l) if l.file.is_some() => {
            log(Level::Error, msg);
            eprintln!("{msg}");
        }
        Some(l) => eprintln!(
            "{}",
            format_line(l.format, Level::Error, msg, &now_rfc3339())
        ),
        None => eprintln!(
            "{}",
            format_line(Format::Text, Level::Error, msg, &now_rfc3339())
        ),
    }
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// The names of the steps [`phase`] marks, in launch order: the `--debug` timing lines and
/// the `TONG_FAULT` injection points (tests/reliability.rs names them from here).
pub mod phases {
    /// create: config.json read and validated, nothing made yet.
    pub const CONFIG_LOADED: &str = "config loaded";
    /// create: the state directory and its first record exist.
    pub const STATE_DIR_WRITTEN: &str = "state dir written";
    /// create: the exec FIFO and console are ready; the clone is next.
    pub const LAUNCHING: &str = "launching";
    /// create: the container's cgroups made and their limits written.
    pub const CGROUPS_CREATED: &str = "cgroups created";
    /// create: the first child exists.
    pub const CLONED: &str = "cloned";
    /// create: the init is in its cgroups.
    pub const CGROUPS_JOINED: &str = "cgroups joined";
    /// the init: the parent's Go received.
    pub const INIT_GO: &str = "init: go";
    /// the init: hostname, sysctls and the rest of the namespaces set.
    pub const INIT_NAMESPACES_CONFIGURED: &str = "init: namespaces configured";
    /// the init: the rootfs mounted, before pivot_root.
    pub const INIT_MOUNTS_DONE: &str = "init: mounts done";
    /// create: the prestart and createRuntime hooks have run.
    pub const CREATERUNTIME_HOOKS_RUN: &str = "createRuntime hooks run";
    /// the init: in its root, its process set up, about to report Ready.
    pub const INIT_PIVOTED_AND_FINALISED: &str = "init: pivoted and finalised";
    /// create: the init reported Ready.
    pub const INIT_READY: &str = "init ready";
    /// create: the record says created.
    pub const STATE_SAVED: &str = "state saved";
    /// create: the init told that the container is created.
    pub const COMMITTED: &str = "committed";
    /// the init: told that the container is created; it waits for start.
    pub const INIT_COMMITTED: &str = "init: committed";
    /// start: the record read.
    pub const START_STATE_READ: &str = "start: state read";
    /// start: the exec FIFO opened, the init on its way to execve.
    pub const START_INIT_RELEASED: &str = "start: init released";
    /// the init: start came; execve is next.
    pub const INIT_STARTED: &str = "init: started";
    /// start: done.
    pub const STARTED: &str = "started";
    /// run: the container's process exited.
    pub const EXITED: &str = "exited";
    /// delete: begins.
    pub const DESTROY: &str = "destroy";
    /// delete: every process of the container is gone.
    pub const PROCESSES_GONE: &str = "processes gone";
    /// delete: the cgroups are removed and the poststop hooks have run.
    pub const CGROUPS_REMOVED: &str = "cgroups removed";

    /// Every phase, for the tests that kill tong at each.
    pub const ALL: &[&str] = &[
        CONFIG_LOADED,
        STATE_DIR_WRITTEN,
        LAUNCHING,
        CGROUPS_CREATED,
        CLONED,
        CGROUPS_JOINED,
        INIT_GO,
        INIT_NAMESPACES_CONFIGURED,
        INIT_MOUNTS_DONE,
        CREATERUNTIME_HOOKS_RUN,
        INIT_PIVOTED_AND_FINALISED,
        INIT_READY,
        STATE_SAVED,
        COMMITTED,
        INIT_COMMITTED,
        START_STATE_READ,
        START_INIT_RELEASED,
        INIT_STARTED,
        STARTED,
        EXITED,
        DESTROY,
        PROCESSES_GONE,
        CGROUPS_REMOVED,
    ];
}

static START: OnceLock<std::time::Instant> = OnceLock::new();

/// Marks the process start for [`phase`].
pub fn start_clock() {
    let _ = START.set(std::time::Instant::now());
}

/// Under --debug, logs how long after start a step of the launch path was reached: the
/// timing breakdown the speed work reads.
///
/// Phases are also the fault-injection points the reliability tests use: with
/// `TONG_FAULT=<phase name>` in its environment, the process that reaches that phase kills
/// itself with SIGKILL there, as an engine's timeout would kill the runtime.
pub fn phase(name: &str) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    if FAULT
        .get_or_init(|| std::env::var("TONG_FAULT").ok())
        .as_deref()
        == Some(name)
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // A pid namespace's init ignores its own SIGKILL: it dies as if killed instead.
        crate::linux::sys::exit_now(137);
    }
    if debug_enabled() {
        let us = START.get().map_or(0, |s| s.elapsed().as_micros());
        log(
            Level::Debug,
            &format!("phase {name} at {us}us (pid {})", std::process::id()),
        );
    }
}
