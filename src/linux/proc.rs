//! Reading facts about processes from /proc.

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).and_then(|f| f.get(19).and_then(|s| s.parse().ok()))
}

/// Whether `pid` is a live (not zombie) process that started at `start_time`, from one read
/// of its stat file: two reads could straddle its reaping and see a start time, then nothing.
pub fn alive_since(pid: i32, start_time: u64) -> bool {
    pid > 0
        && stat_fields(pid).is_some_and(|f| {
            live(&f) && f.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(start_time)
        })
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    pid > 0 && stat_fields(pid).is_some_and(|f| live(&f))
}

/// The state letter (field 3) is not Z (zombie) or X (dead).
fn live(f: &[String]) -> bool {
    f.first()
        .and_then(|s| s.chars().next())
        .is_some_and(|c| c != 'Z' && c != 'X')
}

/// Fields after the command name (which may contain spaces and parentheses): index 0 is field 3.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &data[data.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
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
}
