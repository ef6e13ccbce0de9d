//! Link glue for the static libseccomp on musl (no system call, no code of tong's calls it).

/// Debian's static libseccomp was compiled against glibc, whose fortified `fprintf` it calls
/// from its PFC text export, which tong never uses. musl has no `__fprintf_chk`; this stand-in
/// lets the archive link there and fails like a write error if it is ever reached.
#[cfg(target_env = "musl")]
// SAFETY: the one definition of this symbol in the binary (musl's libc has none), with
// the signature the archive's callers use.
#[unsafe(no_mangle)]
pub extern "C" fn __fprintf_chk(
    _stream: *mut libc::c_void,
    _flag: libc::c_int,
    _format: *const libc::c_char,
) -> libc::c_int {
    -1
}
