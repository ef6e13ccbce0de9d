//! `tong exec [flags] ID [ARGS...]`

use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::Global;
use crate::container::{self, ExecOpts};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// path to the process.json
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// specify the file to write the process id to
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID (format: <uid>[:<gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<String>,
    /// add a capability to the bounding set for the process
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.
    #[arg(long, action = clap::ArgAction::Append)]
    pub cgroup: Vec<String>,
    /// the container's id
    pub id: String,
    /// the command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The process to run: `--process FILE` as given, or the container's own process with
/// runc's overrides from the flags.
fn process(g: &Global, a: &Args) -> Result<Process> {
    if let Some(path) = &a.process {
        let data =
            std::fs::read(path).map_err(|e| Error::path("cannot read process file", path, e))?;
        let mut json: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::Usage(format!("process file {}: {e}", path.display())))?;
        // As runc: a process without `user` runs as uid 0, gid 0.
        if let Some(o) = json.as_object_mut() {
            o.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        let p: Process = serde_path_to_error::deserialize(&json).map_err(|e| {
            Error::Usage(format!(
                "process file {}: {}: {}",
                path.display(),
                e.path(),
                e.inner()
            ))
        })?;
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::Usage("process file: args must not be empty".into()));
        }
        if !p.cwd().is_absolute() {
            return Err(Error::Usage(format!(
                "process file: cwd {:?} is not an absolute path",
                p.cwd().display().to_string()
            )));
        }
        return Ok(p);
    }
    if a.args.is_empty() {
        return Err(Error::Usage(
            "\"exec\" requires a minimum of 2 argument(s)".into(),
        ));
    }
    let spec = container::config(&g.root, &a.id)?;
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::config("process: missing"))?;
    p.set_args(Some(a.args.clone()));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    p.set_terminal(Some(a.tty));
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(ap) = &a.apparmor {
        p.set_apparmor_profile(Some(ap.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| Error::Usage(format!("invalid --user {u:?}: uid must be a number")))?,
        );
        if let Some(g) = gid {
            user.set_gid(g.parse().map_err(|_| {
                Error::Usage(format!("invalid --user {u:?}: gid must be a number"))
            })?);
        }
    }
    if !a.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for g in &a.additional_gids {
            gids.push(
                g.parse()
                    .map_err(|_| Error::Usage(format!("invalid --additional-gids value {g:?}")))?,
            );
        }
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let c: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
                .map_err(|_| Error::Usage(format!("unknown capability {name:?}")))?;
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            // Ambient capabilities need inheritable ones; runc adds them only then.
            if caps.inheritable().is_some() {
                caps.set_ambient(add(caps.ambient()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    super::seal(g)?;
    let opts = ExecOpts {
        process: process(g, &a)?,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        console_fd: None,
        preserve_fds: a.preserve_fds + super::create::listen_fds(),
        ignore_paused: a.ignore_paused,
        sub_cgroup: a.cgroup.clone(),
    };
    if a.detach {
        container::exec(&g.root, &a.id, &opts)?;
        return Ok(0);
    }
    container::exec_attached(&g.root, &a.id, opts)
}
