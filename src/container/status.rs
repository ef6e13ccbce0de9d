//! The OCI status of a container, and what each status allows: every lifecycle operation
//! asks here before it acts (runc's state transitions; youki's `ContainerStatus::can_*`).

use crate::error::{Error, Result};

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What each status allows, in runc's words when it does not. Every lifecycle operation asks
/// here before it acts.
impl Status {
    /// `start`: only a created container.
    pub fn may_start(self) -> Result<()> {
        match self {
            Status::Created => Ok(()),
            Status::Stopped => Err(Error::other("cannot start a container that has stopped")),
            Status::Running => Err(Error::other("cannot start an already running container")),
            s => Err(Error::other(format!(
                "cannot start a container in the {s} state"
            ))),
        }
    }

    /// `exec`: a created or running container; a paused one only with `--ignore-paused`.
    pub fn may_exec(self, ignore_paused: bool) -> Result<()> {
        match self {
            Status::Stopped => Err(Error::other("cannot exec in a stopped container")),
            Status::Creating => Err(Error::NotRunning),
            Status::Paused if !ignore_paused => Err(Error::other(
                "cannot exec in a paused container (use --ignore-paused to override)",
            )),
            _ => Ok(()),
        }
    }

    /// `pause`: a created or running container.
    pub fn may_pause(self) -> Result<()> {
        match self {
            Status::Running | Status::Created => Ok(()),
            Status::Paused => Err(Error::other("container already paused")),
            _ => Err(Error::NotRunning),
        }
    }

    /// `resume`: a paused container.
    pub fn may_resume(self) -> Result<()> {
        match self {
            Status::Paused => Ok(()),
            _ => Err(Error::other("container not paused")),
        }
    }

    /// `kill` of the init: it must be there. `kill --all` also reaches a stopped container's
    /// cgroup (what it still holds); only a container still being created is refused.
    pub fn may_signal(self, all: bool) -> Result<()> {
        match self {
            Status::Creating => Err(Error::NotRunning),
            Status::Stopped if !all => Err(Error::NotRunning),
            _ => Ok(()),
        }
    }

    /// `update`: anything not stopped.
    pub fn may_update(self) -> Result<()> {
        match self {
            Status::Stopped => Err(Error::NotRunning),
            _ => Ok(()),
        }
    }

    /// `delete`: a created or stopped container; anything with `--force`.
    pub fn may_delete(self, id: &str, force: bool) -> Result<()> {
        match self {
            Status::Stopped | Status::Created => Ok(()),
            _ if force => Ok(()),
            s => Err(Error::other(format!(
                "cannot delete container {id} that is not stopped: {s}"
            ))),
        }
    }

    /// `checkpoint`: a running or paused container.
    pub fn may_checkpoint(self) -> Result<()> {
        match self {
            Status::Running | Status::Paused => Ok(()),
            s => Err(Error::other(format!(
                "Container cannot be checkpointed in {s} state"
            ))),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod status_rules {
    use super::Status::{self, *};

    const ALL: [Status; 5] = [Creating, Created, Running, Paused, Stopped];

    fn allowed(f: impl Fn(Status) -> bool) -> Vec<Status> {
        ALL.into_iter().filter(|s| f(*s)).collect()
    }

    #[test]
    fn what_each_status_allows() {
        assert_eq!(allowed(|s| s.may_start().is_ok()), [Created]);
        assert_eq!(allowed(|s| s.may_exec(false).is_ok()), [Created, Running]);
        assert_eq!(
            allowed(|s| s.may_exec(true).is_ok()),
            [Created, Running, Paused]
        );
        assert_eq!(allowed(|s| s.may_pause().is_ok()), [Created, Running]);
        assert_eq!(allowed(|s| s.may_resume().is_ok()), [Paused]);
        assert_eq!(
            allowed(|s| s.may_signal(false).is_ok()),
            [Created, Running, Paused]
        );
        assert_eq!(
            allowed(|s| s.may_signal(true).is_ok()),
            [Created, Running, Paused, Stopped]
        );
        assert_eq!(
            allowed(|s| s.may_update().is_ok()),
            [Creating, Created, Running, Paused]
        );
        assert_eq!(
            allowed(|s| s.may_delete("c", false).is_ok()),
            [Created, Stopped]
        );
        assert_eq!(allowed(|s| s.may_delete("c", true).is_ok()), ALL);
        assert_eq!(allowed(|s| s.may_checkpoint().is_ok()), [Running, Paused]);
    }

    #[test]
    fn refusals_keep_runcs_words() {
        let msg = |r: crate::error::Result<()>| r.unwrap_err().to_string();
        assert_eq!(
            msg(Stopped.may_start()),
            "cannot start a container that has stopped"
        );
        assert_eq!(
            msg(Running.may_start()),
            "cannot start an already running container"
        );
        assert_eq!(msg(Stopped.may_signal(false)), "container not running");
        assert_eq!(msg(Paused.may_pause()), "container already paused");
        assert_eq!(
            msg(Running.may_delete("c", false)),
            "cannot delete container c that is not stopped: running"
        );
        assert_eq!(
            msg(Created.may_checkpoint()),
            "Container cannot be checkpointed in created state"
        );
    }
}
