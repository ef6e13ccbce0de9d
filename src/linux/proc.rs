//! Reading facts about processes from /proc.

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).and_then(|f| f.get(19).and_then(|s| s.parse().ok()))
}

/// The process state letter (field 3).
pub fn state_letter(pid: i32) -> Option<char> {
    stat_fields(pid).and_then(|f| f.first().and_then(|s| s.chars().next()))
}

pub fn is_zombie(pid: i32) -> bool {
    matches!(state_letter(pid), Some('Z') | Some('X'))
}

pub fn alive(pid: i32) -> bool {
    pid > 0 && state_letter(pid).is_some_and(|c| c != 'Z' && c != 'X')
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
    }
}
