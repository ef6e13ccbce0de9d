//! A foreground `run` or `exec`: tong waits for its process, passes signals on, relays a
//! terminal when there is no console socket, and returns the exit status (128+N for signal N).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::linux::sys;

/// Signals passed on to the container's process.
const FORWARD: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGALRM,
    Signal::SIGWINCH,
];

pub struct Foreground {
    sfd: SignalFd,
}

impl Foreground {
    /// Call before the process exists: signals queue from here on (a child resets its mask).
    pub fn begin() -> Result<Foreground> {
        Self::begin_with(true)
    }

    /// As [`Foreground::begin`]; `subreaper` false leaves orphans to the host's init
    /// (`restore --no-subreaper`).
    pub fn begin_with(subreaper: bool) -> Result<Foreground> {
        let mut set = SigSet::empty();
        for s in FORWARD {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        set.thread_block()
            .map_err(|e| Error::sys("sigprocmask", e))?;
        // Orphans of a container without its own pid namespace come back here to be reaped.
        if subreaper {
            let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::sys("signalfd", e))?;
        Ok(Foreground { sfd })
    }

    /// Waits for `pid`, relaying `master` to stdin/stdout when given.
    pub fn wait(self, pid: i32, master: Option<OwnedFd>) -> Result<i32> {
        let _raw = master
            .as_ref()
            .and_then(|_| crate::linux::terminal::RawMode::enter(0));
        if let Some(m) = &master {
            crate::linux::terminal::copy_winsize(0, m.as_raw_fd());
        }
        let mut stdin_open = master.is_some();
        let mut master_open = master.is_some();
        let mut buf = vec![0u8; 16 * 1024];
        let mut code = None;
        loop {
            if code.is_none() {
                code = reap(pid);
            }
            if code.is_some() && !master_open {
                break;
            }
            let mut fds = vec![nix::poll::PollFd::new(
                self.sfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let stdin = std::io::stdin();
            if let Some(m) = &master {
                if master_open {
                    fds.push(nix::poll::PollFd::new(
                        m.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    ));
                }
                if stdin_open && code.is_none() {
                    fds.push(nix::poll::PollFd::new(
                        stdin.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    ));
                }
            }
            // Once the process has exited, drain what the terminal still holds, then stop.
            let timeout = if code.is_some() {
                nix::poll::PollTimeout::from(100u8)
            } else {
                nix::poll::PollTimeout::NONE
            };
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => break,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("poll", e)),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0]
                && let Ok(Some(info)) = self.sfd.read_signal()
            {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH && master.is_some() {
                    if let Some(m) = &master {
                        crate::linux::terminal::copy_winsize(0, m.as_raw_fd());
                    }
                } else if sig != libc::SIGCHLD {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
                }
            }
            let Some(m) = &master else { continue };
            let mut i = 1;
            if master_open {
                if ready.get(i).copied().unwrap_or(false) {
                    match nix::unistd::read(m, &mut buf) {
                        Ok(0) | Err(_) => master_open = false,
                        Ok(n) => {
                            let mut out = std::io::stdout();
                            let _ = out.write_all(&buf[..n]);
                            let _ = out.flush();
                        }
                    }
                }
                i += 1;
            }
            if stdin_open && code.is_none() && ready.get(i).copied().unwrap_or(false) {
                match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
        Ok(code.unwrap_or(255))
    }
}

/// Reaps every exited child; the process's exit code once it has exited.
fn reap(pid: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => result = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => result = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}
