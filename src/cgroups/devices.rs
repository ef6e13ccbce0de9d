//! Device access rules: v1's devices.allow/devices.deny lists, or on cgroup v2 an eBPF
//! program (BPF_PROG_TYPE_CGROUP_DEVICE) that tong assembles itself, as runc and crun do.
//! runc's default allows (null, zero, full, random, urandom, tty, ptmx, pts, tun, and mknod
//! of anything) are appended after the config's rules; a later rule wins over an earlier one.

use std::os::fd::AsRawFd;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::Dirs;
use crate::error::{Error, Result};
use crate::linux::sys;

/// One rule in a uniform shape: type 'a', 'c' or 'b'; None is a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Bits: m=1, r=2, w=4.
    pub access: u32,
}

/// The access letters of a rule. As runc (its Permissions set), a letter other than r, w
/// and m is ignored, with a warning; a rule left with none is refused.
fn access_bits(s: &str) -> Result<u32> {
    let mut b = 0;
    let mut unknown = String::new();
    for c in s.chars() {
        match c {
            'm' => b |= 1,
            'r' => b |= 2,
            'w' => b |= 4,
            c => unknown.push(c),
        }
    }
    if b == 0 && !s.is_empty() {
        return Err(Error::config(format!(
            "linux.resources.devices: invalid access {s:?}"
        )));
    }
    if !unknown.is_empty() {
        crate::logging::warn(&format!(
            "linux.resources.devices: access {s:?}: ignoring {unknown:?} (only r, w and m mean something)"
        ));
    }
    Ok(b)
}

pub fn access_str(b: u32) -> String {
    let mut s = String::new();
    if b & 2 != 0 {
        s.push('r');
    }
    if b & 4 != 0 {
        s.push('w');
    }
    if b & 1 != 0 {
        s.push('m');
    }
    s
}

/// The config's rules followed by runc's default allows.
pub fn rules(config: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in config {
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::P) => {
                return Err(Error::config(
                    "linux.resources.devices: type p cannot be in a device cgroup",
                ));
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => 7,
            Some(a) => access_bits(a)?,
        };
        out.push(Rule {
            allow: d.allow(),
            kind,
            major: d.major().filter(|m| *m >= 0),
            minor: d.minor().filter(|m| *m >= 0),
            access,
        });
    }
    let dflt = |kind, major: Option<i64>, minor: Option<i64>, access| Rule {
        allow: true,
        kind,
        major,
        minor,
        access,
    };
    out.extend([
        dflt('c', None, None, 1),
        dflt('b', None, None, 1),
        dflt('c', Some(1), Some(3), 7),
        dflt('c', Some(1), Some(8), 7),
        dflt('c', Some(1), Some(7), 7),
        dflt('c', Some(5), Some(0), 7),
        dflt('c', Some(1), Some(5), 7),
        dflt('c', Some(1), Some(9), 7),
        dflt('c', Some(136), None, 7),
        dflt('c', Some(5), Some(2), 7),
        dflt('c', Some(10), Some(200), 7),
    ]);
    Ok(out)
}

pub fn apply(d: &Dirs, config: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = rules(config)?;
    if let Some(dir) = d.v1("devices") {
        for r in &rules {
            let file = if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            let line = if r.kind == 'a' && r.major.is_none() && r.minor.is_none() && r.access == 7 {
                "a".to_string()
            } else {
                let n = |v: Option<i64>| v.map_or("*".to_string(), |x| x.to_string());
                format!(
                    "{} {}:{} {}",
                    r.kind,
                    n(r.major),
                    n(r.minor),
                    access_str(r.access)
                )
            };
            let p = dir.join(file);
            std::fs::write(&p, &line).map_err(|e| {
                Error::other(format!("cannot write {line:?} to {}: {e}", p.display()))
            })?;
        }
        return Ok(());
    }
    if let Some(dir) = d.v2.as_deref() {
        let prog = program(&rules);
        let dirfd =
            std::fs::File::open(dir).map_err(|e| Error::path("cannot open cgroup", dir, e))?;
        let pfd = sys::bpf_load_cgroup_device(&prog)
            .map_err(|e| Error::sys("loading the device filter (bpf)", e))?;
        sys::bpf_attach_cgroup_device(dirfd.as_raw_fd(), pfd.as_raw_fd())
            .map_err(|e| Error::sys("attaching the device filter", e))?;
        return Ok(());
    }
    Err(Error::config(
        "linux.resources.devices: this host has neither a devices cgroup nor cgroup v2",
    ))
}

/// Assembles the device filter. Rules are checked last to first (a later rule wins); the
/// first that matches returns its verdict; no match denies.
pub fn program(rules: &[Rule]) -> Vec<u64> {
    // The registers by role: r0 the verdict, r1 the context (struct bpf_cgroup_dev_ctx),
    // r2..r6 its fields, r7 scratch.
    let (verdict, ctx, access_type, dev_type, access, major, minor, scratch) =
        (0u8, 1u8, 2u8, 3u8, 4u8, 5u8, 6u8, 7u8);
    let ins = |op: u8, dst: u8, src: u8, off: i16, imm: i32| -> u64 {
        (op as u64)
            | ((dst as u64 & 0xf) << 8)
            | ((src as u64 & 0xf) << 12)
            | ((off as u16 as u64) << 16)
            | ((imm as u32 as u64) << 32)
    };
    const LDXW: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
    const MOV64X: u8 = 0xbf;
    const MOV64K: u8 = 0xb7;
    const AND64K: u8 = 0x57;
    const RSH64K: u8 = 0x77;
    const JNEK: u8 = 0x55;
    const EXIT: u8 = 0x95;
    let mut p = vec![
        ins(LDXW, access_type, ctx, 0, 0), // access_type
        ins(MOV64X, dev_type, access_type, 0, 0),
        ins(AND64K, dev_type, 0, 0, 0xffff), // device type: block 1, char 2
        ins(MOV64X, access, access_type, 0, 0),
        ins(RSH64K, access, 0, 0, 16), // access: mknod 1, read 2, write 4
        ins(LDXW, major, ctx, 4, 0),   // major
        ins(LDXW, minor, ctx, 8, 0),   // minor
    ];
    for r in rules.iter().rev() {
        let unconditional =
            r.kind == 'a' && r.access == 7 && r.major.is_none() && r.minor.is_none();
        if unconditional {
            // Matches everything: nothing after it could run (the verifier refuses
            // unreachable code), so it ends the program.
            p.push(ins(MOV64K, verdict, 0, 0, r.allow as i32));
            p.push(ins(EXIT, 0, 0, 0, 0));
            return p;
        }
        let mut block = Vec::new();
        if r.kind != 'a' {
            block.push((JNEK, dev_type, if r.kind == 'b' { 1 } else { 2 }));
        }
        if r.access != 7 {
            block.push((0xff, 0, 0)); // placeholder for the access check (two instructions)
        }
        if let Some(m) = r.major {
            block.push((JNEK, major, m as i32));
        }
        if let Some(m) = r.minor {
            block.push((JNEK, minor, m as i32));
        }
        // Length of the block: each check is one jump, the access check two instructions,
        // then "r0 = verdict; exit".
        let len: usize = block
            .iter()
            .map(|(op, _, _)| if *op == 0xff { 3 } else { 1 })
            .sum::<usize>()
            + 2;
        let mut emitted = 0usize;
        for (op, reg, imm) in block {
            if op == 0xff {
                p.push(ins(MOV64X, scratch, access, 0, 0));
                p.push(ins(AND64K, scratch, 0, 0, (!r.access & 7) as i32));
                emitted += 2;
                let off = (len - emitted - 1) as i16;
                p.push(ins(JNEK, scratch, 0, off, 0));
                emitted += 1;
            } else {
                emitted += 1;
                let off = (len - emitted) as i16;
                p.push(ins(op, reg, 0, off, imm));
            }
        }
        p.push(ins(MOV64K, verdict, 0, 0, r.allow as i32));
        p.push(ins(EXIT, 0, 0, 0, 0));
    }
    p.push(ins(MOV64K, verdict, 0, 0, 0));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one request, as the kernel would.
    fn eval(p: &[u64], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [(access << 16) | kind, major, minor];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let op = (i & 0xff) as u8;
            let dst = ((i >> 8) & 0xf) as usize;
            let src = ((i >> 12) & 0xf) as usize;
            let off = ((i >> 16) & 0xffff) as u16 as i16;
            let imm = (i >> 32) as u32 as i32 as i64 as u64;
            pc += 1;
            match op {
                0x61 => r[dst] = ctx[(off / 4) as usize] as u64,
                0xbf => r[dst] = r[src],
                0xb7 => r[dst] = imm,
                0x57 => r[dst] &= imm,
                0x77 => r[dst] >>= imm,
                0x55 => {
                    if r[dst] != imm {
                        pc = (pc as i64 + off as i64) as usize;
                    }
                }
                0x95 => return r[0],
                _ => panic!("unknown op {op:#x}"),
            }
        }
    }

    fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: u32) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn default_deny_with_allows() {
        let mut rs = vec![rule(false, 'a', None, None, 7)];
        rs.extend(rules(&[]).unwrap());
        let p = program(&rs);
        assert_eq!(eval(&p, 2, 2, 1, 3), 1, "read /dev/null");
        assert_eq!(eval(&p, 2, 6, 1, 3), 1, "rw /dev/null");
        assert_eq!(eval(&p, 2, 2, 1, 11), 0, "read /dev/kmsg");
        assert_eq!(eval(&p, 2, 1, 1, 11), 1, "mknod anything");
        assert_eq!(eval(&p, 1, 2, 8, 0), 0, "read a block device");
        assert_eq!(eval(&p, 2, 2, 136, 7), 1, "a pts");
    }

    #[test]
    fn no_code_after_a_match_all_rule() {
        let rs = vec![
            rule(true, 'c', Some(1), Some(3), 7),
            rule(false, 'a', None, None, 7),
        ];
        let p = program(&rs);
        assert_eq!(p.len(), 7 + 2, "prologue, then the deny-all verdict only");
        assert_eq!(eval(&p, 2, 2, 1, 3), 0);
    }

    #[test]
    fn later_rules_win() {
        let rs = vec![
            rule(false, 'a', None, None, 7),
            rule(true, 'c', Some(1), Some(11), 2),
            rule(false, 'c', Some(1), Some(11), 2),
        ];
        let p = program(&rs);
        assert_eq!(eval(&p, 2, 2, 1, 11), 0);
        let p = program(&rs[..2]);
        assert_eq!(eval(&p, 2, 2, 1, 11), 1);
        assert_eq!(eval(&p, 2, 4, 1, 11), 0, "write not allowed");
    }
}
