//! Minimal /proc reading: which processes exist, their parent and process group.
//! Used to find a job's whole tree (descendants, and orphans re-parented to forkyard).

use std::fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
}

/// Every process visible in /proc. Processes vanishing mid-scan are skipped.
pub fn scan() -> Vec<ProcEntry> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut entries = Vec::with_capacity(256);
    let mut buf = String::with_capacity(512);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(found) = read_entry(pid, &mut buf) {
            entries.push(found);
        }
    }
    entries
}

/// Reads one process's parent and group from /proc/PID/stat.
pub fn read_entry(pid: u32, buf: &mut String) -> Option<ProcEntry> {
    use std::io::Read;
    buf.clear();
    fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read_to_string(buf)
        .ok()?;
    parse_stat(pid, buf)
}

fn parse_stat(pid: u32, stat: &str) -> Option<ProcEntry> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ProcEntry { pid, ppid, pgid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "4211 (my (odd) cmd) S 4200 4211 4100 0 -1";
        assert_eq!(
            parse_stat(4211, stat),
            Some(ProcEntry {
                pid: 4211,
                ppid: 4200,
                pgid: 4211
            })
        );
    }

    #[test]
    fn scan_finds_this_process() {
        let me = std::process::id();
        assert!(scan().iter().any(|e| e.pid == me));
    }
}
