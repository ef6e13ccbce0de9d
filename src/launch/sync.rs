//! The sync channel between tong and the container's first processes: one SOCK_SEQPACKET
//! socketpair carrying small typed messages (and file descriptors where needed).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: uid/gid maps written (and cgroups joined, unless the parent joins
    /// them while the init mounts: see launch::drive); go on.
    Go,
    /// parent → init, right after Go when the parent makes the cgroups while the init mounts
    /// (Placement::WhileMounting): they exist now, and may be bind-mounted.
    CgroupsMade,
    /// parent → child, before Go: the detached idmapped mount (attached) for `mounts[i]`.
    IdmapMount(usize),
    /// parent → child, before Go: an O_PATH fd of `mounts[i]`'s source, opened by the host's
    /// root in the child's mount namespace (attached).
    MountSource(usize),
    /// intermediate → parent: the pid of the container's init (host pid namespace).
    InitPid(i32),
    /// init → parent: mounts are ready; run the prestart and createRuntime hooks.
    RunCreateRuntimeHooks,
    /// parent → init: hooks done; the state for the hooks the init runs.
    HooksDone(crate::linux::hooks::State),
    /// init → parent: set up and about to wait for `start`.
    Ready,
    /// parent → init: the state says created; wait for `start`. (A parent killed before
    /// this leaves an init that exits instead of a live process no state describes.)
    Committed,
    /// child → parent: the seccomp notify fd (attached).
    SeccompFd,
    /// child → parent: setup failed.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

/// Makes a connected pair of channels (both ends close-on-exec).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        nix::sys::socket::AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair for sync channel", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MSG: usize = 64 * 1024;

/// One received message; nothing at all means the peer closed its end (it died).
fn decode(data: &[u8]) -> Result<Msg> {
    if data.is_empty() {
        return Err(Error::other(
            "the container's setup process exited before reporting",
        ));
    }
    serde_json::from_slice(data).map_err(|e| Error::other(format!("sync message: {e}")))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<()> {
        let mut data =
            serde_json::to_vec(msg).map_err(|e| Error::other(format!("sync message: {e}")))?;
        data.truncate(MAX_MSG);
        let iov = [IoSlice::new(&data)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(f) => {
                fds = [f];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e @ nix::errno::Errno::EPIPE) => {
                    return Err(Error::sys("sync channel send", e));
                }
                // A seccomp profile already loaded may refuse sendmsg but allow write (as
                // runc needs only read and write): a message without an fd goes that way.
                Err(e) if fd.is_some() => return Err(Error::sys("sync channel send", e)),
                Err(e) => {
                    return match nix::unistd::write(&self.fd, &data) {
                        Ok(_) => Ok(()),
                        Err(_) => Err(Error::sys("sync channel send (sendmsg, then write)", e)),
                    };
                }
            }
        }
    }

    /// Receives one message; EOF (the peer died) is an error.
    pub fn recv(&self) -> Result<Msg> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            match crate::linux::sys::recv_with_fds(self.fd.as_raw_fd(), &mut buf) {
                // One fd per message; any extra one is closed with the Vec.
                Ok((n, fds)) => return Ok((decode(&buf[..n])?, fds.into_iter().next())),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The peer died with messages of ours unread. The kernel reports that once,
                // ahead of what the peer sent before it exited (its error report, say):
                // receive again for that, or for the end of the stream.
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => continue,
                // Refused by a loaded seccomp profile (see send): read the message instead.
                Err(e) => {
                    let n = loop {
                        match nix::unistd::read(&self.fd, &mut buf) {
                            Err(nix::errno::Errno::EINTR) => continue,
                            Err(nix::errno::Errno::ECONNRESET) => continue,
                            Ok(n) => break n,
                            Err(_) => {
                                return Err(Error::sys(
                                    "sync channel receive (recvmsg, then read)",
                                    e,
                                ));
                            }
                        }
                    };
                    return Ok((decode(&buf[..n])?, None));
                }
            }
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Forks the container's process from an intermediate with CLONE_PARENT (so it becomes
/// tong's child) and reports its pid to tong. The new process runs `child` only after the
/// report has been sent, so tong always reads `InitPid` first. Returns in the intermediate.
pub fn fork_reported(ch: &Channel, child: impl FnOnce() -> i32) -> Result<()> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe", e))?;
    // With CLONE_PARENT the process inherits the intermediate's exit signal (SIGCHLD to
    // tong); clone3 refuses an explicit one.
    let pid = crate::linux::sys::fork_child(
        libc::CLONE_PARENT as u64,
        None,
        None,
        &[w.as_raw_fd()],
        || {
            let mut b = [0u8; 1];
            while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(&r, &mut b) {}
            let _ = nix::unistd::close(r.as_raw_fd());
            child()
        },
    )
    .map_err(|e| Error::sys("clone", e))?
    .pid;
    drop(r);
    ch.send(&Msg::InitPid(pid))?;
    drop(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        a.send(&Msg::Error("boom".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::InitPid(42));
        assert_eq!(b.recv().unwrap(), Msg::Error("boom".into()));
        drop(a);
        assert!(b.recv().is_err());
    }
}
