//! Typed errors. Messages that engines match keep runc's words.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// runc: containerd and podman look for "does not exist".
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container with given ID already exists")]
    Exists,
    #[error("invalid container ID format: {0:?}")]
    InvalidId(String),
    #[error("container id cannot be empty")]
    EmptyId,
    /// runc: containerd's shim compares this text.
    #[error("container not running")]
    NotRunning,
    /// A problem in config.json, naming the field.
    #[error("config.json: {0}")]
    Config(String),
    /// A bad command-line argument.
    #[error("{0}")]
    Usage(String),
    /// An operation on a file or path failed.
    #[error("{context} {path}: {source}")]
    Path {
        context: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        source: std::io::Error,
    },
    /// execve(2) of the container's process failed (`why`: what made it fail, when tong
    /// knows more than the errno says).
    #[error("exec {path}: {source}{why}")]
    Exec {
        path: String,
        source: std::io::Error,
        why: &'static str,
    },
    /// Reported by the container's init over the sync channel.
    #[error("{0}")]
    Child(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn path(context: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Path {
            context,
            path: path.as_ref().display().to_string(),
            source,
        }
    }
    pub fn sys(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            context: context.into(),
            source: source.into(),
        }
    }
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
}

impl Error {
    /// The exit code of an init or exec'd process that failed before its program ran, as a
    /// shell's: 127 when the program does not exist, 126 when it cannot be run.
    pub fn exec_exit_code(&self) -> i32 {
        match self {
            Error::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            _ => 126,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Sys {
            context: "system call".into(),
            source: e.into(),
        }
    }
}

/// Adds context to errors from std and nix.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    fn at(self, context: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sys {
            context: what(),
            source: e.into(),
        })
    }
    fn at(self, context: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::path(context, path, e.into()))
    }
}
