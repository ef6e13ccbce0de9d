//! Reading facts about processes from /proc.

use std::io::Read;

/// What tong needs of /proc/PID/stat.
struct Stat {
    /// Field 3: R, S, D, Z, X...
    state: u8,
    /// Field 20: the number of threads.
    threads: usize,
    /// Field 22: the start time in clock ticks since boot.
    start_time: u64,
}

/// How many threads this process has (field 20 of /proc/self/stat).
pub fn own_threads() -> Option<usize> {
    read_stat("/proc/self/stat").map(|s| s.threads)
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// Whether `pid` is a live (not zombie) process that started at `start_time`, from one read
/// of its stat file: two reads could straddle its reaping and see a start time, then nothing.
pub fn alive_since(pid: i32, start_time: u64) -> bool {
    pid > 0 && stat(pid).is_some_and(|s| s.live() && s.start_time == start_time)
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    pid > 0 && stat(pid).is_some_and(|s| s.live())
}

impl Stat {
    /// The state is not Z (zombie) or X (dead).
    fn live(&self) -> bool {
        self.state != b'Z' && self.state != b'X'
    }
}

/// One read(2) of /proc/PID/stat into a buffer that holds any stat line (52 numeric fields
/// and a 16-byte name fit in well under 1 KiB): the standard library's read_to_string probes
/// a size-less procfs file 32 bytes at a time, a syscall per probe, and `list` does this for
/// every container.
fn stat(pid: i32) -> Option<Stat> {
    read_stat(&format!("/proc/{pid}/stat"))
}

fn read_stat(path: &str) -> Option<Stat> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 2048];
    let n = f.read(&mut buf).ok()?;
    parse_stat(&buf[..n])
}

/// Fields after the command name (which may hold spaces and parentheses: the last `)` ends
/// it).
fn parse_stat(data: &[u8]) -> Option<Stat> {
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&data[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let threads = fields.nth(16)?.parse().ok()?;
    let start_time = fields.nth(1)?.parse().ok()?;
    Some(Stat {
        state,
        threads,
        start_time,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_stat() {
        let me = std::process::id() as i32;
        assert!(super::start_time(me).is_some());
        assert!(super::alive(me));
        assert!(!super::alive(0));
        let t = super::start_time(me).unwrap();
        assert!(super::alive_since(me, t));
        assert!(!super::alive_since(me, t + 1));
        assert!(!super::alive_since(0, t));
    }

    #[test]
    fn stat_line_with_a_hostile_name() {
        let line = b"42 (a) b) (c) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                     1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = super::parse_stat(line).unwrap();
        assert_eq!(s.state, b'Z');
        assert_eq!(s.start_time, 987654);
        assert_eq!(s.threads, 1);
        assert!(!s.live());
        assert!(super::parse_stat(b"42 (no close").is_none());
        assert!(super::parse_stat(b"42 (x) R 1").is_none());
    }
}
