//! Terminals: a pty made inside the container's devpts, its master sent to the engine's
//! `--console-socket` over SCM_RIGHTS (the protocol of runc's recvtty, containerd and conmon).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::error::{Context, Error, Result};

/// Opens a pty inside the container (after pivot_root), sends the master over `socket`, and
/// makes the slave the controlling terminal and stdio of this process. With `console`, the
/// slave is also bound at /dev/console (the container's init). The slave is opened from the
/// master (TIOCGPTPEER), never by a path the container could redirect (CVE-2025-52565).
pub fn setup(socket: RawFd, size: Option<(u16, u16)>, console: bool) -> Result<()> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx".into())?;
    nix::pty::grantpt(&master).ctx(|| "grantpt".into())?;
    nix::pty::unlockpt(&master).ctx(|| "unlockpt".into())?;
    let name = nix::pty::ptsname_r(&master).ctx(|| "ptsname".into())?;
    if let Some((h, w)) = size {
        let ws = libc::winsize {
            ws_row: h,
            ws_col: w,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY-free path: nix's ioctl wrapper is not exported for TIOCSWINSZ; use termios.
        let _ = crate::linux::sys::set_winsize(master.as_raw_fd(), &ws);
    }
    let slave: OwnedFd = crate::linux::sys::pty_peer(master.as_raw_fd())
        .ctx(|| format!("open {name} (TIOCGPTPEER)"))?;
    if console {
        bind_console(&slave)?;
    }
    send_master(socket, &master, &name)?;
    drop(master);
    for target in 0..3 {
        crate::linux::sys::dup2(slave.as_raw_fd(), target).ctx(|| "dup2 pty slave".into())?;
    }
    crate::linux::sys::set_controlling_tty(0).ctx(|| "TIOCSCTTY".into())?;
    Ok(())
}

/// Sends a pty master over a console socket, with its name as the message (runc's recvtty
/// protocol).
pub fn send_master(socket: RawFd, master: &impl AsRawFd, name: &str) -> Result<()> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("sending the pty master to the console socket", e))?;
    Ok(())
}

/// Binds the pty slave over /dev/console (an empty file made for it, never followed if it
/// is a symlink).
fn bind_console(slave: &OwnedFd) -> Result<()> {
    let target: OwnedFd = nix::fcntl::open(
        "/dev/console",
        OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .ctx(|| "creating /dev/console".into())?;
    let st = nix::sys::stat::fstat(&target).ctx(|| "fstat /dev/console".into())?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(Error::other("/dev/console is neither a file nor a device"));
    }
    let src = format!("/proc/self/fd/{}", slave.as_raw_fd());
    let dst = format!("/proc/self/fd/{}", target.as_raw_fd());
    nix::mount::mount(
        Some(src.as_str()),
        dst.as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "bind mounting the pty at /dev/console".into())
}

/// Receives a pty master sent over a unix socket (the console-socket protocol).
pub fn recv_master(socket: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let (_, fds) = crate::linux::sys::recv_with_fds(socket, &mut buf)
        .map_err(|e| Error::sys("receiving the pty master", e))?;
    fds.into_iter()
        .next()
        .ok_or_else(|| Error::other("the container sent no terminal"))
}

/// Copies the window size of `from` (tong's terminal) to `to` (the container's pty).
pub fn copy_winsize(from: RawFd, to: RawFd) {
    if let Some(ws) = crate::linux::sys::get_winsize(from) {
        let _ = crate::linux::sys::set_winsize(to, &ws);
    }
}

/// tong's own terminal in raw mode while it relays a container's pty; restored on drop.
pub struct RawMode {
    fd: std::os::fd::BorrowedFd<'static>,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// `fd` is one of tong's standard descriptors (its terminal); any other is refused.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        let bfd = crate::linux::sys::stdio(fd)?;
        let saved = nix::sys::termios::tcgetattr(bfd).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(bfd, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: bfd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ =
            nix::sys::termios::tcsetattr(self.fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}
