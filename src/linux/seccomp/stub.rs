//! The ENOSYS stub in front of a compiled filter: system calls newer than any the profile
//! names return ENOSYS, not the default action (runc's and crun's patch), so a program falls
//! back instead of failing on EPERM.

use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};
use oci_spec::runtime::LinuxSeccomp;

/// seccomp_data offsets and classic BPF opcodes for the stub.
const NR: u32 = 0;
pub(super) const ARCH: u32 = 4;
pub(super) const LD_ABS: u16 = 0x20;
const JEQ: u16 = 0x15;
pub(super) const JGT: u16 = 0x25;
const JSET: u16 = 0x45;
pub(super) const RET: u16 = 0x06;
pub(super) const RET_ERRNO: u32 = 0x0005_0000;
const X32_BIT: u32 = 0x4000_0000;

/// The kernel's AUDIT_ARCH value for an architecture (x32 shares x86_64's, with X32_BIT set
/// in the syscall number).
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 | ScmpArch::X32 => 0xC000_003E,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Riscv64 => 0xC000_00F3,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::S390X => 0x8000_0016,
        _ => return None,
    })
}

/// The highest syscall number on `arch` that any rule of the profile names (names this
/// libseccomp does not know are left out), without x32's bit.
fn highest_named(s: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    let nrs = s.syscalls().iter().flatten().flat_map(|c| c.names().iter());
    nrs.filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        .map(|sc| sc.as_raw_syscall())
        .filter(|nr| *nr >= 0)
        .map(|nr| nr as u32 & !X32_BIT)
        .max()
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&code.to_ne_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..8].copy_from_slice(&k.to_ne_bytes());
    b
}

/// runc's ENOSYS stub, put before libseccomp's program: on each architecture of the profile
/// (and the native one), a syscall numbered above the highest one the profile names fails
/// with ENOSYS, not the default action, so that libc falls back to an older call (glibc's
/// clone3 → clone). Below that, the profile decides. No stub when the default already lets
/// syscalls through (ALLOW, LOG, TRACE) or already is ENOSYS.
pub fn enosys_stub(s: &LinuxSeccomp, default: ScmpAction) -> Vec<u8> {
    if matches!(
        default,
        ScmpAction::Allow
            | ScmpAction::Log
            | ScmpAction::Trace(_)
            | ScmpAction::Errno(libc::ENOSYS)
    ) {
        return Vec::new();
    }
    let mut arches: Vec<ScmpArch> = vec![ScmpArch::native()];
    for a in s.architectures().iter().flatten() {
        let name = serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if let Ok(arch) = ScmpArch::from_str(&name)
            && !arches.contains(&arch)
        {
            arches.push(arch);
        }
    }
    // One block per AUDIT_ARCH value: (token, max of the native numbering, max of x32's).
    let mut blocks: Vec<(u32, Option<u32>, Option<u32>)> = Vec::new();
    for arch in arches {
        let Some(token) = audit_arch(arch) else {
            continue;
        };
        let max = highest_named(s, arch);
        let i = match blocks.iter().position(|b| b.0 == token) {
            Some(i) => i,
            None => {
                blocks.push((token, None, None));
                blocks.len() - 1
            }
        };
        if arch == ScmpArch::X32 {
            blocks[i].2 = max;
        } else {
            blocks[i].1 = max;
        }
    }
    blocks.retain(|b| b.1.is_some() || b.2.is_some());
    if blocks.is_empty() {
        return Vec::new();
    }
    // Layout: ld arch; per block [jeq token; ld nr; (jset x32 → x32 check); jgt max]; then
    // `ret ENOSYS`, then the original program. Jumps are relative to the next instruction;
    // each block's length is known, so the offsets to ENOSYS and to the program are too.
    let block_len = |b: &(u32, Option<u32>, Option<u32>)| if b.0 == 0xC000_003E { 5 } else { 3 };
    let total: usize = 1 + blocks.iter().map(block_len).sum::<usize>() + 1;
    if total > 200 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(total * 8);
    out.extend_from_slice(&insn(LD_ABS, 0, 0, ARCH));
    let mut pc = 1usize;
    let enosys_at = total - 1;
    let program_at = total;
    // Offset from the instruction at `from` to `to`.
    let off = |from: usize, to: usize| (to - from - 1) as u8;
    for b in &blocks {
        let len = block_len(b);
        let next = pc + len;
        // Another architecture: the next block, or after the last one the program itself.
        let other = if next == enosys_at { program_at } else { next };
        out.extend_from_slice(&insn(JEQ, 0, off(pc, other), b.0));
        out.extend_from_slice(&insn(LD_ABS, 0, 0, NR));
        // The highest named number; with none named in one numbering, let the program decide.
        let cmp = |at: usize, max: Option<u32>| match max {
            Some(m) => insn(JGT, off(at, enosys_at), off(at, program_at), m),
            None => insn(JEQ, off(at, program_at), off(at, program_at), 0),
        };
        if len == 5 {
            // x86_64: numbers with X32_BIT are x32's.
            out.extend_from_slice(&insn(JSET, 0, 1, X32_BIT));
            out.extend_from_slice(&cmp(pc + 3, b.2.map(|m| m | X32_BIT)));
            out.extend_from_slice(&cmp(pc + 4, b.1));
        } else {
            out.extend_from_slice(&cmp(pc + 2, b.1));
        }
        pc = next;
    }
    out.extend_from_slice(&insn(RET, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    out
}
