//! CRIU over its RPC interface: `criu swrk FD` on a SOCK_SEQPACKET socketpair, one
//! protobuf `criu_req` per message and one `criu_resp` back, with CRIU's notifications
//! (setup-namespaces, post-restore, network-lock, orphan-pts-master, ...) answered in
//! between. The messages are those of the `rust-criu` crate (CRIU's rpc.proto); the
//! conversation, the feature check, pre-dump and the LSM options are tong's.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{MsgFlags, SockFlag, SockType, send, socketpair};
use protobuf::{EnumOrUnknown, Message};
pub use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_cg_mode, Criu_features, Criu_opts, Criu_page_server_info, Criu_req,
    Criu_req_type, Criu_resp, Ext_mount_map, Inherit_fd, Join_namespace,
};

use crate::error::{Error, Result};
use crate::linux::sys;

/// The CRIU binary to run: `--criu PATH`, else `criu` from PATH.
#[derive(Debug, Clone)]
pub struct Criu {
    pub path: String,
}

/// A CRIU version as its VERSION call gives it, as one number: 31701 for 3.17.1.
pub type Version = u32;

/// What the caller does at each point of a conversation.
pub trait Handler {
    /// CRIU is running (`pid`), before the request is sent: a restore puts it in the
    /// container's cgroups here, and may add to the request.
    fn started(&mut self, _pid: i32, _req: &mut Criu_req) -> Result<()> {
        Ok(())
    }
    /// A notification (`script` is its name), with the descriptors that came with it.
    fn notify(&mut self, _script: &str, _pid: i32, _fds: Vec<OwnedFd>) -> Result<()> {
        Ok(())
    }
}

/// A handler with nothing to do.
pub struct Quiet;
impl Handler for Quiet {}

/// How a request went.
pub struct Outcome {
    pub resp: Criu_resp,
}

impl Criu {
    pub fn new(path: Option<&str>) -> Criu {
        Criu {
            path: path.unwrap_or("criu").to_string(),
        }
    }

    /// CRIU's version (the VERSION call, CRIU 3.0 and later).
    pub fn version(&self) -> Result<Version> {
        let req = Criu_req {
            type_: Some(EnumOrUnknown::new(Criu_req_type::VERSION)),
            ..Default::default()
        };
        let out = self
            .call(req, &mut Quiet, &[], None, false)
            .map_err(|e| Error::other(format!("CRIU version check failed: {e}")))?;
        let v = out.resp.version.as_ref().ok_or_else(|| {
            Error::other("CRIU version check failed: CRIU sent no version (older than 3.0?)")
        })?;
        let n = |x: Option<i32>| x.unwrap_or(0).max(0) as u32;
        Ok(n(v.major_number) * 10000 + n(v.minor_number) * 100 + n(v.sublevel))
    }

    /// Fails unless CRIU is at least `min` (e.g. 30000 for 3.0.0), naming both.
    pub fn require(&self, min: Version) -> Result<Version> {
        let v = self.version()?;
        if v < min {
            return Err(Error::other(format!(
                "CRIU version {v} must be {min} or higher ({})",
                self.path
            )));
        }
        Ok(v)
    }

    /// CRIU's FEATURE_CHECK: the features asked for that this CRIU and kernel lack, by name.
    pub fn missing_features(&self, opts: &Criu_opts, want: &Criu_features) -> Result<Vec<String>> {
        let req = Criu_req {
            type_: Some(EnumOrUnknown::new(Criu_req_type::FEATURE_CHECK)),
            // CRIU before 2.12 crashed on a request without options.
            opts: protobuf::MessageField::some(opts.clone()),
            features: protobuf::MessageField::some(want.clone()),
            ..Default::default()
        };
        let out = self
            .call(req, &mut Quiet, &[], None, false)
            .map_err(|e| Error::other(format!("CRIU feature check failed: {e}")))?;
        let got = out.resp.features.clone().unwrap_or_default();
        let mut missing = Vec::new();
        if want.mem_track == Some(true) && got.mem_track != Some(true) {
            missing.push("memory tracking (pre-dump)".to_string());
        }
        if want.lazy_pages == Some(true) && got.lazy_pages != Some(true) {
            missing.push("lazy pages (userfaultfd)".to_string());
        }
        Ok(missing)
    }

    /// Runs one request to its end: `criu swrk`, the request, every notification through
    /// `h`, CRIU's answer. `inherit` are descriptors CRIU must see under their own numbers
    /// (inherit_fd, images and work dirs); `log` is the log CRIU writes, named in errors.
    /// With `stdio`, CRIU (and what it restores) gets tong's stdin, stdout and stderr.
    pub fn call(
        &self,
        mut req: Criu_req,
        h: &mut dyn Handler,
        inherit: &[RawFd],
        log: Option<&Path>,
        stdio: bool,
    ) -> Result<Outcome> {
        let kind = req.type_.map(|t| t.enum_value_or(Criu_req_type::EMPTY));
        let kind = kind.unwrap_or(Criu_req_type::EMPTY);
        let (ours, theirs) = socketpair(
            nix::sys::socket::AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("socketpair for criu swrk", e))?;
        let mut child = self.spawn(&theirs, inherit, stdio)?;
        drop(theirs);
        let r = converse(&ours, &mut req, h, child.id() as i32, kind);
        // CRIU ends when its side reads EOF, whatever happened above.
        let _ = nix::sys::socket::shutdown(ours.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        drop(ours);
        let status = child.wait();
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => return Err(with_log(e, log)),
        };
        // A pre-dump's CRIU waits for a final dump that never comes: its exit says nothing.
        if kind != Criu_req_type::PRE_DUMP
            && let Ok(st) = status
            && !st.success()
        {
            return Err(with_log(Error::other(format!("criu failed: {st}")), log));
        }
        Ok(Outcome { resp })
    }

    fn spawn(&self, server: &OwnedFd, inherit: &[RawFd], stdio: bool) -> Result<Child> {
        let fd = server.as_raw_fd();
        let mut keep = vec![fd];
        keep.extend_from_slice(inherit);
        for k in &keep {
            sys::clear_cloexec(*k).map_err(|e| Error::sys("fcntl for criu swrk", e))?;
        }
        let mut cmd = Command::new(&self.path);
        cmd.arg("swrk").arg(fd.to_string());
        if !stdio {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        let r = cmd.spawn();
        // Nothing else tong starts may inherit them.
        for k in &keep {
            let _ = sys::set_cloexec(*k);
        }
        r.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::other(format!(
                    "checkpoint/restore needs CRIU: {} not found (install criu, or give its path with --criu)",
                    self.path
                ))
            } else {
                Error::sys(format!("cannot run {} swrk", self.path), e)
            }
        })
    }
}

/// Sends `req` and answers notifications until CRIU's answer to it.
fn converse(
    sock: &OwnedFd,
    req: &mut Criu_req,
    h: &mut dyn Handler,
    pid: i32,
    kind: Criu_req_type,
) -> Result<Criu_resp> {
    h.started(pid, req)?;
    send_msg(sock, req)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (resp, fds) = recv_msg(sock, &mut buf)?;
        let t = resp
            .type_
            .map(|t| t.enum_value_or(Criu_req_type::EMPTY))
            .unwrap_or(Criu_req_type::EMPTY);
        if resp.success != Some(true) {
            let mut msg = format!(
                "criu failed: type {kind:?} errno {}",
                resp.cr_errno.unwrap_or(0)
            );
            if let Some(m) = resp
                .cr_errmsg
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
            {
                msg.push_str(&format!(": {m}"));
            }
            return Err(Error::other(msg));
        }
        if t != Criu_req_type::NOTIFY {
            if t != kind {
                return Err(Error::other(format!(
                    "criu answered {t:?} to a {kind:?} request"
                )));
            }
            return Ok(resp);
        }
        let n = resp.notify.clone().unwrap_or_default();
        let script = n.script.unwrap_or_default();
        let r = h.notify(&script, n.pid.unwrap_or(0), fds);
        let ack = Criu_req {
            type_: Some(EnumOrUnknown::new(Criu_req_type::NOTIFY)),
            notify_success: Some(r.is_ok()),
            ..Default::default()
        };
        send_msg(sock, &ack)?;
        r.map_err(|e| Error::other(format!("{script}: {e}")))?;
    }
}

fn send_msg(sock: &OwnedFd, m: &Criu_req) -> Result<()> {
    let data = m
        .write_to_bytes()
        .map_err(|e| Error::other(format!("encoding a CRIU request: {e}")))?;
    send(sock.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| Error::sys("sending a request to criu", e))?;
    Ok(())
}

fn recv_msg(sock: &OwnedFd, buf: &mut [u8]) -> Result<(Criu_resp, Vec<OwnedFd>)> {
    let (n, fds) = sys::recv_with_fds(sock.as_raw_fd(), buf)
        .map_err(|e| Error::sys("reading criu's answer", e))?;
    if n == 0 {
        return Err(Error::other(
            "criu ended without an answer (unexpected EOF)",
        ));
    }
    let data = buf.get(..n).unwrap_or_default();
    let resp = Criu_resp::parse_from_bytes(data)
        .map_err(|e| Error::other(format!("decoding criu's answer: {e}")))?;
    Ok((resp, fds))
}

/// `e`, with CRIU's log named and the first error CRIU wrote there quoted: the line that
/// says why.
fn with_log(e: Error, log: Option<&Path>) -> Error {
    let Some(log) = log else { return e };
    let text = e.to_string();
    let cause = first_error(log)
        .filter(|l| !text.contains(l.as_str()))
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    Error::other(format!("{e}{cause} (log file: {})", log.display()))
}

/// The first line CRIU marked as an error in `log` ("Error (file.c:NN): ..."), trimmed
/// of its timestamp.
pub fn first_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find(|l| l.contains("Error (") || l.contains("Error:"))
        .map(|l| {
            // "(00.012345) Error (criu/vdso.c:42): vdso: ..." -> "Error (criu/vdso.c:42): ..."
            let l = l.trim();
            match l.find("Error") {
                Some(i) => l[i..].to_string(),
                None => l.to_string(),
            }
        })
}

/// Where CRIU writes `file`: the work directory when given, else the image directory.
pub fn log_path(work: Option<&Path>, images: &Path, file: &str) -> PathBuf {
    work.unwrap_or(images).join(file)
}

/// `criu check`'s verdict on this host, for an error that may be the host's: None when it
/// passes, else its last line.
pub fn check(criu: &Criu) -> Option<String> {
    let out = Command::new(&criu.path)
        // Errors only, to our pipe: by default CRIU logs to a file in the working directory.
        .args(["check", "-v1", "--log-file", "/dev/stderr"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Error"))
        .map(|l| l.find("Error").map_or(l, |i| &l[i..]))
        .or_else(|| text.lines().rfind(|l| !l.trim().is_empty()))
        .unwrap_or("failed")
        .trim()
        .to_string();
    Some(line)
}

/// The cgroup mode named for CRIU.
pub fn cg_mode(m: Criu_cg_mode) -> Option<EnumOrUnknown<Criu_cg_mode>> {
    Some(EnumOrUnknown::new(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_takes_criu_error_lines() {
        let t = std::env::temp_dir().join(format!("tong-criu-log-{}", std::process::id()));
        std::fs::write(
            &t,
            "(00.000010) Version: 3.17.1\n(00.001200) Error (criu/vdso.c:123): vdso: Unexpected rt vDSO area bounds\n(00.001300) Error (criu/cr-dump.c:1): Dumping FAILED.\n",
        )
        .unwrap();
        assert_eq!(
            first_error(&t).unwrap(),
            "Error (criu/vdso.c:123): vdso: Unexpected rt vDSO area bounds"
        );
        let e = with_log(Error::other("criu failed: type DUMP errno 0"), Some(&t));
        assert!(e.to_string().contains("Unexpected rt vDSO"), "{e}");
        assert!(e.to_string().contains("log file: "), "{e}");
        std::fs::write(&t, "(00.000010) Version: 3.17.1\n").unwrap();
        assert!(first_error(&t).is_none());
        std::fs::remove_file(&t).unwrap();
    }

    #[test]
    fn a_missing_criu_is_named() {
        let c = Criu::new(Some("/nonexistent/criu"));
        let e = c.version().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/criu not found"), "{e}");
        assert!(e.contains("--criu"), "{e}");
    }
}
