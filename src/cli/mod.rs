//! The command line, spelled as runc spells it. One file per subcommand: each parses its
//! flags, calls the container layer and prints.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};
use crate::logging::{self, Format};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser, Debug)]
#[command(
    name = "tong",
    about = "tong: an OCI container runtime",
    disable_version_flag = true,
    // Go's flag package takes a flag given twice, the last value winning: podman 4.3
    // passes `checkpoint --leave-running --leave-running`.
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// runc's global flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// set the log file to write tong logs to (default is '/dev/stderr')
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<String>,
    /// set the log format ('text' (default), or 'json')
    #[arg(
        long = "log-format",
        global = true,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: String,
    /// root directory for storage of container state (this should be located in tmpfs)
    /// [default: /run/tong, or $XDG_RUNTIME_DIR/tong for a non-root user]
    #[arg(long, global = true, value_name = "DIR", default_value_os_t = default_root())]
    pub root: PathBuf,
    /// path to the criu binary used for checkpoint and restore
    #[arg(long, global = true, value_name = "PATH")]
    pub criu: Option<String>,
    /// enable systemd cgroup support
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// create a container
    Create(create::Args),
    /// executes the user defined process in a created container
    Start(start::Args),
    /// output the state of a container
    State(state::Args),
    /// kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill(kill::Args),
    /// delete any resources held by the container often used with detached container
    Delete(delete::Args),
    /// create and run a container
    Run(run::Args),
    /// lists containers started by tong with the given root
    #[command(alias = "ls")]
    List(list::Args),
    /// create a new specification file
    Spec(spec::Args),
    /// show the enabled features
    Features(features::Args),
    /// execute new process inside the container
    Exec(exec::Args),
    /// ps displays the processes running inside a container
    Ps(ps::Args),
    /// pause suspends all processes inside the container
    Pause(pause::Args),
    /// resumes all processes that have been previously paused
    Resume(pause::Args),
    /// display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events(events::Args),
    /// update container resource constraints
    Update(update::Args),
    /// checkpoint a running container
    Checkpoint(checkpoint::Args),
    /// restore a container from a previous checkpoint
    Restore(restore::Args),
}

/// /run/tong for root; a rootless user's state lives in $XDG_RUNTIME_DIR/tong (runc's rule).
fn default_root() -> PathBuf {
    if !nix::unistd::geteuid().is_root() {
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("tong");
        }
        return PathBuf::from(format!("/tmp/tong-{}", nix::unistd::geteuid()));
    }
    PathBuf::from("/run/tong")
}

/// Parses, dispatches, reports. Returns the process exit code.
pub fn main() -> i32 {
    logging::start_clock();
    let cli = match Cli::try_parse_from(go_style_flags(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            if matches!(
                e.kind(),
                K::DisplayHelp | K::DisplayHelpOnMissingArgumentOrSubcommand | K::DisplayVersion
            ) {
                let _ = e.print();
                return 0;
            }
            // runc exits 1 on a usage error, and logs it like any other error.
            log_usage_error(&usage_message(&e));
            return 1;
        }
    };
    let mut g = cli.global.clone();
    g.root = std::path::absolute(&g.root).unwrap_or(g.root.clone());
    let g = &g;
    if g.version {
        // runc's shape: dockerd reads the "commit:" line for `docker info`.
        println!("tong version {VERSION}");
        println!("commit: v{VERSION}");
        println!("spec: {}", crate::spec::SPEC_VERSION);
        if let Ok(v) = libseccomp::ScmpVersion::current() {
            println!("libseccomp: {}.{}.{}", v.major, v.minor, v.micro);
        }
        return 0;
    }
    let format = match g.log_format.as_str() {
        "text" => Format::Text,
        "json" => Format::Json,
        other => {
            logging::init(g.log.as_deref(), Format::Text, g.debug);
            logging::error(&format!("invalid log-format: {other}"));
            return 1;
        }
    };
    logging::init(g.log.as_deref(), format, g.debug);
    let Some(cmd) = cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return 0;
    };
    match dispatch(g, cmd) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&e.to_string());
            1
        }
    }
}

fn dispatch(g: &Global, cmd: Command) -> Result<i32> {
    if let Some(r) = &g.rootless {
        if !matches!(r.as_str(), "true" | "false" | "auto") {
            return Err(Error::Usage(format!(
                "invalid --rootless value {r:?}: use true, false or auto"
            )));
        }
        if r == "true" && nix::unistd::geteuid().is_root() {
            logging::debug(
                "--rootless=true as root: rootless mode is not implemented yet, running as root",
            );
        }
    }
    match cmd {
        Command::Create(a) => create::run(g, a),
        Command::Start(a) => start::run(g, a),
        Command::State(a) => state::run(g, a),
        Command::Kill(a) => kill::run(g, a),
        Command::Delete(a) => delete::run(g, a),
        Command::Run(a) => run::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Spec(a) => spec::run(g, a),
        Command::Features(a) => features::run(g, a),
        Command::Exec(a) => exec::run(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Pause(a) => pause::pause(g, a),
        Command::Resume(a) => pause::resume(g, a),
        Command::Events(a) => events::run(g, a),
        Command::Update(a) => update::run(g, a),
        Command::Checkpoint(a) => checkpoint::run(g, a),
        Command::Restore(a) => restore::run(g, a),
    }
}

/// runc's flags as Go's flag package reads them: a long flag may be written with one dash
/// (`-no-subreaper`: go-runc, in containerd 1.6, passes `restore -no-subreaper`). Such an
/// argument is rewritten to `--no-subreaper` when the command has that long flag; flags end
/// at the first positional argument after the command, as in Go. Nothing is built unless an
/// argument looks like one.
fn go_style_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let single_dash_long = |a: &str| a.len() > 2 && a.starts_with('-') && !a.starts_with("--");
    if !args
        .iter()
        .skip(1)
        .any(|a| a.to_str().is_some_and(single_dash_long))
    {
        return args;
    }
    let mut root = <Cli as clap::CommandFactory>::command();
    root.build();
    let find = |cmd: &clap::Command, name: &str| -> Option<bool> {
        cmd.get_arguments()
            .find(|a| {
                a.get_long() == Some(name)
                    || a.get_short()
                        .is_some_and(|s| name.len() == 1 && name.starts_with(s))
            })
            .map(|a| a.get_action().takes_values())
    };
    let mut out = Vec::with_capacity(args.len());
    let mut sub: Option<clap::Command> = None;
    let mut it = args.into_iter();
    out.extend(it.next());
    let mut skip_value = false;
    for a in it.by_ref() {
        if skip_value {
            skip_value = false;
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str().map(str::to_string) else {
            out.push(a);
            continue;
        };
        let s = s.as_str();
        let cmd = sub.as_ref().unwrap_or(&root);
        if s == "--" {
            out.push(a);
            break;
        }
        if let Some(rest) = s.strip_prefix("--") {
            let (name, has_value) = match rest.split_once('=') {
                Some((n, _)) => (n, true),
                None => (rest, false),
            };
            let takes = find(cmd, name)
                .or_else(|| find(&root, name))
                .unwrap_or(false);
            skip_value = takes && !has_value;
            out.push(a);
            continue;
        }
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.is_empty()) {
            let (name, has_value) = match rest.split_once('=') {
                Some((n, _)) => (n, true),
                None => (rest, false),
            };
            let takes = if name.len() > 1 {
                match find(cmd, name).or_else(|| find(&root, name)) {
                    Some(t) => {
                        out.push(format!("-{s}").into());
                        t
                    }
                    None => {
                        out.push(a);
                        false
                    }
                }
            } else {
                out.push(a);
                find(cmd, name)
                    .or_else(|| find(&root, name))
                    .unwrap_or(false)
            };
            skip_value = takes && !has_value;
            continue;
        }
        // A positional argument: the command's name, or the end of the flags.
        if sub.is_none()
            && let Some(c) = root.find_subcommand(s)
        {
            sub = Some(c.clone());
            out.push(a);
            continue;
        }
        out.push(a);
        break;
    }
    out.extend(it);
    out
}

/// A clap error in runc's words where engines or users know them.
fn usage_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind as K};
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cmd = args.iter().find(|a| {
        <Cli as clap::CommandFactory>::command()
            .find_subcommand(a.as_str())
            .is_some()
    });
    let invalid = match e
        .get(ContextKind::InvalidArg)
        .or(e.get(ContextKind::InvalidSubcommand))
    {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let count = |cmd: &str, too_many: bool| match cmd {
        "kill" if too_many => "\"kill\" requires a maximum of 2 argument(s)".to_string(),
        "kill" => "\"kill\" requires a minimum of 1 argument(s)".to_string(),
        "exec" => "\"exec\" requires a minimum of 2 argument(s)".to_string(),
        "list" | "spec" | "features" => format!("{cmd:?} requires exactly 0 argument(s)"),
        c => format!("{c:?} requires exactly 1 argument(s)"),
    };
    match (e.kind(), cmd) {
        (K::MissingRequiredArgument, Some(c)) => count(c, false),
        (K::UnknownArgument, Some(c)) if !invalid.starts_with('-') => count(c, true),
        (K::UnknownArgument, _) => format!(
            "flag provided but not defined: {}",
            invalid.split('=').next().unwrap_or("")
        ),
        (K::InvalidSubcommand, _) => format!("No help topic for '{invalid}'"),
        // A flag at the end without its value, in Go's flag package's words (podman probes
        // `restore --lsm-mount-context` for exactly this).
        (K::InvalidValue, _)
            if invalid.starts_with("--")
                && matches!(e.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty()) =>
        {
            let name = invalid.split([' ', '=']).next().unwrap_or("");
            format!("flag needs an argument: {}", &name[1..])
        }
        _ => {
            let text = e.render().to_string();
            text.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string()
        }
    }
}

/// A usage error before the logger is set up: find --log/--log-format by hand.
fn log_usage_error(msg: &str) {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut log = None;
    let mut format = Format::Text;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let val = |i: &mut usize| -> Option<String> {
            if let Some((_, v)) = a.split_once('=') {
                Some(v.to_string())
            } else {
                *i += 1;
                args.get(*i).cloned()
            }
        };
        if a == "--log" || a.starts_with("--log=") {
            log = val(&mut i);
        } else if (a == "--log-format" || a.starts_with("--log-format="))
            && val(&mut i).as_deref() == Some("json")
        {
            format = Format::Json;
        }
        i += 1;
    }
    logging::init(log.as_deref(), format, false);
    logging::error(msg);
}

/// Where the container's id comes from in most commands.
#[derive(clap::Args, Debug)]
pub struct IdArg {
    /// the container's id
    pub id: String,
}

/// Seals tong's binary (CVE-2019-5736) before it starts any container process.
/// The state root doubles as the overlay's second, empty-of-interest lower layer.
pub fn seal(g: &Global) -> Result<()> {
    crate::container::state::ensure_root(&g.root)?;
    crate::linux::seal::ensure_sealed(&g.root)
}

#[cfg(test)]
mod tests {
    use super::go_style_flags;

    fn go(args: &[&str]) -> Vec<String> {
        let v = std::iter::once("tong")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from)
            .collect();
        go_style_flags(v)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_are_read_as_go_reads_them() {
        // go-runc's restore, and global flags before the command.
        assert_eq!(
            go(&[
                "-root",
                "/r",
                "restore",
                "-no-subreaper",
                "-d",
                "-bundle",
                "/b",
                "id"
            ]),
            [
                "--root",
                "/r",
                "restore",
                "--no-subreaper",
                "-d",
                "--bundle",
                "/b",
                "id"
            ]
        );
        assert_eq!(
            go(&["restore", "-image-path=/x", "id"]),
            ["restore", "--image-path=/x", "id"]
        );
        // A flag's value is never rewritten, even one that looks like a flag.
        assert_eq!(
            go(&["exec", "--env", "-detach", "-cwd", "/", "id"]),
            ["exec", "--env", "-detach", "--cwd", "/", "id"]
        );
        // The process's own arguments after the id are the process's.
        assert_eq!(
            go(&["exec", "-t", "id", "ls", "-detach"]),
            ["exec", "-t", "id", "ls", "-detach"]
        );
        // Unknown names and short clusters are left for clap to judge.
        assert_eq!(go(&["kill", "-nosuch", "id"]), ["kill", "-nosuch", "id"]);
        assert_eq!(go(&["--debug", "list"]), ["--debug", "list"]);
    }
}
