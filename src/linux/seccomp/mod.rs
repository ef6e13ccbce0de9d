//! seccomp: `linux.seccomp` compiled to BPF with libseccomp in tong (before any clone, so
//! errors surface at `create`), loaded by the container's process with seccomp(2).
//!
//! As runc: unknown syscall names are skipped; rules whose action is the default action are
//! dropped; several conditions on one argument become one rule each; libseccomp's own
//! no_new_privs default is cleared (the config decides no_new_privs); syscalls newer than the
//! newest one the profile names return ENOSYS (a stub before libseccomp's program, as
//! runc's). runc's NOTIFY rules: never on `write`, never the default, always a listenerPath.

pub mod cache;
mod link_shim;
mod stub;
pub use stub::enosys_stub;

use std::io::{Read, Seek};
use std::path::Path;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Context, Error, Result};
use crate::linux::sys;

/// A compiled filter: the BPF program and the flags to load it with.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub bpf: Vec<u8>,
    pub flags: u32,
    /// Rules with SCMP_ACT_NOTIFY: loading returns a notify fd for `listener_path`.
    pub listener: Option<(std::path::PathBuf, String)>,
    /// Which of the syscalls tong makes after loading (AFTER_LOAD) the profile does not allow
    /// unconditionally, to name in an error.
    pub refused: Vec<&'static str>,
}

/// What tong's init and `exec` may call once a filter is loaded: the last steps before
/// execve (fd marking and its /proc/self/fd fallback, the working-directory check, the
/// sync channel, the exec FIFO) and the startContainer hooks' spawn.
pub const AFTER_LOAD: &[&str] = &[
    "close_range",
    "openat",
    "getdents64",
    "fcntl",
    "close",
    "newfstatat",
    "fstat",
    "chdir",
    "read",
    "write",
    "recvmsg",
    "sendmsg",
    "clone",
    "clone3",
    "vfork",
    "wait4",
    "pipe2",
    "poll",
    "pidfd_open",
    "execve",
    "rt_sigprocmask",
    "rt_sigaction",
    "dup2",
    "dup3",
    "mmap",
    "munmap",
    "brk",
    "exit_group",
];

fn refused(s: &LinuxSeccomp) -> Vec<&'static str> {
    AFTER_LOAD
        .iter()
        .copied()
        .filter(|n| !allows_unconditionally(s, &[n]))
        .collect()
}

const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

fn op(a: &oci_spec::runtime::LinuxSeccompArg) -> ScmpArgCompare {
    let (op, datum) = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
        // (arg & value) == valueTwo
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
    };
    ScmpArgCompare::new(a.index() as u32, op, datum)
}

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::config(format!("linux.seccomp: {what}: {e}"))
}

/// Compiles the profile, through the program cache under the state root `cache_root` when
/// given. Profiles with notify rules are always compiled (their load also asks for a
/// listener fd, which the cache does not represent).
pub fn compile(s: &LinuxSeccomp, cache_root: Option<&Path>) -> Result<Compiled> {
    let (flags, listener) = flags_and_listener(s)?;
    let cached = cache_root
        .filter(|_| listener.is_none())
        .and_then(|root| Some((root, cache::key(s)?)));
    if let Some((root, key)) = &cached
        && let Some(bpf) = cache::lookup(root, key)
    {
        crate::logging::debug("seccomp: program taken from the cache");
        return Ok(Compiled {
            bpf,
            flags,
            listener,
            refused: refused(s),
        });
    }
    let bpf = export(s)?;
    if let Some((root, key)) = &cached {
        cache::store(root, key, &bpf);
    }
    Ok(Compiled {
        bpf,
        flags,
        listener,
        refused: refused(s),
    })
}

/// The load flags and the notify listener a profile asks for.
fn flags_and_listener(s: &LinuxSeccomp) -> Result<(u32, Option<(std::path::PathBuf, String)>)> {
    let notify = s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify);
    // runc's checks and words. The init reports over its sync channel with write(2), so a
    // notified write would wait for an agent that has not got the fd yet.
    for (i, c) in s.syscalls().iter().flatten().enumerate() {
        if c.action() == LinuxSeccompAction::ScmpActNotify && c.names().iter().any(|n| n == "write")
        {
            return Err(Error::config(format!(
                "linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
            )));
        }
    }
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::config(
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    let listener = match (notify, s.listener_path()) {
        (true, Some(p)) => Some((p.clone(), s.listener_metadata().clone().unwrap_or_default())),
        (true, None) => {
            return Err(Error::config(
                "linux.seccomp.listenerPath: listenerPath is not set (SCMP_ACT_NOTIFY needs one)",
            ));
        }
        (false, _) => None,
    };
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        };
    }
    if listener.is_some() {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    Ok((flags, listener))
}

/// The BPF program libseccomp generates for a profile (uncached).
pub fn export(s: &LinuxSeccomp) -> Result<Vec<u8>> {
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("creating the filter", e))?;
    ctx.set_ctl_nnp(false)
        .map_err(|e| err("clearing no_new_privs", e))?;
    // A syscall from another architecture than the filter's fails rather than kills.
    let _ = ctx.set_act_badarch(ScmpAction::KillThread);
    for a in s.architectures().iter().flatten() {
        let name = serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let arch =
            ScmpArch::from_str(&name).map_err(|e| err(&format!("architecture {name}"), e))?;
        ctx.add_arch(arch)
            .map_err(|e| err(&format!("architecture {name}"), e))?;
    }
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        let act = action(call.action(), call.errno_ret());
        if act == default {
            continue;
        }
        let args = call.args().clone().unwrap_or_default();
        let mut per_index = [0u32; 6];
        for a in &args {
            if a.index() >= 6 {
                return Err(err(
                    &format!("syscalls[{i}].args"),
                    format!("index {} is out of range", a.index()),
                ));
            }
            per_index[a.index()] += 1;
        }
        let conds: Vec<ScmpArgCompare> = args.iter().map(op).collect();
        for name in call.names() {
            // runc skips names this libseccomp does not know (newer or foreign syscalls).
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if per_index.iter().any(|n| *n > 1) {
                // Several conditions on one argument: one rule per condition (runc's rule).
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            r.map_err(|e| err(&format!("syscalls[{i}] {name}"), e))?;
        }
    }
    let mut f =
        std::fs::File::from(sys::memfd_sealable("tong-seccomp").ctx(|| "memfd_create".into())?);
    ctx.export_bpf(&f).map_err(|e| err("exporting BPF", e))?;
    let mut bpf = Vec::new();
    f.rewind().ctx(|| "reading the BPF program".into())?;
    f.read_to_end(&mut bpf)
        .ctx(|| "reading the BPF program".into())?;
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) {
        return Err(err("exporting BPF", "libseccomp produced no program"));
    }
    let mut program = enosys_stub(s, default);
    program.extend_from_slice(&bpf);
    Ok(program)
}

/// Whether the filter `export` builds from `s` lets each of `names` through on the native
/// architecture whatever the arguments: no rule names it with another action, or allows it
/// only under conditions, and it is allowed by the default action or by name (the ENOSYS
/// stubs cover only syscalls no rule names, and only when the default is not to allow).
pub fn allows_unconditionally(s: &LinuxSeccomp, names: &[&str]) -> bool {
    let default_allow = s.default_action() == LinuxSeccompAction::ScmpActAllow;
    names.iter().all(|n| {
        let mut by_name = false;
        for call in s
            .syscalls()
            .iter()
            .flatten()
            .filter(|c| c.names().iter().any(|x| x == n))
        {
            let conditional = call.args().as_ref().is_some_and(|a| !a.is_empty());
            if call.action() != LinuxSeccompAction::ScmpActAllow || (conditional && !default_allow)
            {
                return false;
            }
            by_name = true;
        }
        default_allow || by_name
    })
}

/// Loads a compiled filter into this process (the caller has no_new_privs or CAP_SYS_ADMIN).
/// With notify rules, returns the notify fd.
pub fn load(c: &Compiled) -> Result<Option<std::os::fd::OwnedFd>> {
    let fd =
        sys::seccomp_set_filter(&c.bpf, c.flags).ctx(|| "loading the seccomp filter".into())?;
    Ok(fd)
}

/// Sends a notify fd to the profile's listener, with runc's message: the container state
/// and metadata as JSON, the fd over SCM_RIGHTS.
pub fn send_to_listener(
    c: &Compiled,
    fd: std::os::fd::BorrowedFd<'_>,
    pid: i32,
    state: &serde_json::Value,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let Some((path, metadata)) = &c.listener else {
        return Ok(());
    };
    let sock = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        Error::path(
            "linux.seccomp.listenerPath: failed to connect with seccomp agent",
            path,
            e,
        )
    })?;
    let msg = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    })
    .to_string();
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    let fds = [fd.as_raw_fd()];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("sending the seccomp fd to the listener", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stub::{ARCH, JGT, LD_ABS, RET, RET_ERRNO};
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn unconditional_allows() {
        let podman: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_str(include_str!("../../../tests/data/podman-seccomp.json")).unwrap();
        assert!(allows_unconditionally(
            &podman,
            &["write", "openat", "close_range", "execve"]
        ));
        assert!(!allows_unconditionally(&podman, &["write", "sethostname"]));
        assert!(!allows_unconditionally(&podman, &["personality"]));
        let deny = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["write"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(!allows_unconditionally(&deny, &["write"]));
        assert!(allows_unconditionally(&deny, &["openat"]));
        let cond = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["write"],"action":"SCMP_ACT_ALLOW",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},{"names":["close"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(!allows_unconditionally(&cond, &["write"]));
        assert!(allows_unconditionally(&cond, &["close"]));
        assert!(!allows_unconditionally(&cond, &["openat"]));
        let cond_allow = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["write"],"action":"SCMP_ACT_ALLOW",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(allows_unconditionally(&cond_allow, &["write"]));
    }

    #[test]
    fn compiles_a_deny_mkdir_profile() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir","mkdirat","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let c = compile(&p, None).unwrap();
        assert!(c.bpf.len() >= 8 * 4);
        assert_eq!(c.flags, 0);
    }

    #[test]
    fn masked_eq_and_flags() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW",
              "args":[{"index":0,"value":4294967295,"valueTwo":8,"op":"SCMP_CMP_MASKED_EQ"}]},
              {"names":["clone"],"action":"SCMP_ACT_ALLOW",
              "args":[{"index":0,"value":1,"op":"SCMP_CMP_NE"},{"index":0,"value":2,"op":"SCMP_CMP_NE"}]}]}"#,
        );
        let c = compile(&p, None).unwrap();
        assert_eq!(c.flags, 2);
    }

    fn decode(stub: &[u8]) -> Vec<(u16, u8, u8, u32)> {
        stub.chunks(8)
            .map(|i| {
                (
                    u16::from_ne_bytes([i[0], i[1]]),
                    i[2],
                    i[3],
                    u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
                )
            })
            .collect()
    }

    #[test]
    fn enosys_stub_shape() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","faccessat2","no_such_syscall"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let stub = decode(&enosys_stub(&p, ScmpAction::Errno(libc::EPERM)));
        // ld arch; x86_64 block (jeq, ld nr, jset x32, x32: none named → program, jgt 439 →
        // ENOSYS at 9 else the program at 10); x86 block; ret ENOSYS.
        assert_eq!(stub[0], (LD_ABS, 0, 0, ARCH));
        assert_eq!(stub[1].3, 0xC000_003E);
        assert_eq!(stub[5], (JGT, 3, 4, 439), "{stub:?}");
        assert_eq!(stub[6].3, 0x4000_0003);
        // faccessat2 is 439 on i386 too; the jump past the stub on no match lands on the program.
        assert_eq!(stub[8], (JGT, 0, 1, 439), "{stub:?}");
        assert_eq!(stub[6].2 as usize, stub.len() - 7);
        assert_eq!(
            *stub.last().unwrap(),
            (RET, 0, 0, RET_ERRNO | libc::ENOSYS as u32)
        );
        for none in [
            ScmpAction::Allow,
            ScmpAction::Log,
            ScmpAction::Errno(libc::ENOSYS),
        ] {
            assert!(enosys_stub(&p, none).is_empty());
        }
    }

    #[test]
    fn notify_needs_a_listener() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(compile(&p, None).is_err());
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock",
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert_eq!(
            compile(&p, None).unwrap().flags & SECCOMP_FILTER_FLAG_NEW_LISTENER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER
        );
    }
}
