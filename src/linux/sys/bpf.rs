//! bpf(2) for the v2 device controller, and seccomp(2).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::check;

const BPF_PROG_LOAD: libc::c_int = 5;

const BPF_PROG_ATTACH: libc::c_int = 8;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;

const BPF_CGROUP_DEVICE: u32 = 6;

const BPF_F_ALLOW_MULTI: u32 = 2;

/// bpf(BPF_PROG_LOAD) of a cgroup device program given as raw 64-bit instructions.
pub fn bpf_load_cgroup_device(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0 OR GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: attr is a zero-padded bpf_attr for PROG_LOAD whose pointers (instructions,
    // license) outlive the call.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            attr.len() as u32,
        )
    })?;
    // SAFETY: a fresh program fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// bpf(BPF_PROG_ATTACH) of a device program to a cgroup v2 directory.
pub fn bpf_attach_cgroup_device(cgroup_fd: RawFd, prog_fd: RawFd) -> io::Result<()> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup_fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    // SAFETY: attr is a zero-padded bpf_attr for PROG_ATTACH holding plain integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            attr.as_ptr(),
            attr.len() as u32,
        )
    })
    .map(|_| ())
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) with a program given as raw sock_filter bytes.
pub fn seccomp_set_filter(bpf: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog {
        len: (bpf.len() / 8) as u16,
        filter: bpf.as_ptr(),
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: prog points at `bpf`, a whole number of 8-byte sock_filter instructions that
    // outlives the call; the kernel copies the program.
    let rc = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const SockFprog,
        )
    })?;
    // With SECCOMP_FILTER_FLAG_NEW_LISTENER the result is the notify fd.
    // SAFETY: a fresh fd returned by the kernel.
    Ok((flags & 8 != 0 && rc > 0).then(|| unsafe { OwnedFd::from_raw_fd(rc as RawFd) }))
}
