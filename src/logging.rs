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
