//! Minimal /proc reading: which processes exist, their parent, process group, CPU time
//! and resident memory, all from `/proc/PID/stat`.
//!
//! [`scan`] walks every process (to find a job's tree); [`StatReader`] keeps one process's
//! stat file open and re-reads it with `pread`, which costs a fraction of an
//! open/read/close cycle: the sampler reads each known process that way once a second,
//! and skips even that for a process whose run time (schedstat) has not moved.
//! An open stat file stays bound to its process: once the process is gone, reads fail
//! instead of describing a newcomer that reused the pid.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// One letter (proc(5)): R running, S sleeping, D disk wait, T stopped, t traced,
    /// Z zombie, X dead, I idle.
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    /// utime + stime, plus cutime + cstime (children it already waited for).
    pub cpu: Duration,
    pub rss_bytes: u64,
    /// When the process started, in clock ticks after boot: with the pid, it names one
    /// process even after the pid has been recycled.
    pub start_ticks: u64,
    pub threads: u64,
    /// Time its main thread spent runnable but waiting for a CPU (the run-queue delay,
    /// second field of `/proc/PID/schedstat`); zero where that file was not read.
    pub cpu_wait: Duration,
}

/// Every process visible in /proc. Processes vanishing mid-scan are skipped.
pub fn scan() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut entries = Vec::with_capacity(256);
    let mut buf = Vec::with_capacity(512);
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(reader) = StatReader::open(pid)
            && let Some(stat) = reader.read(&mut buf)
        {
            entries.push(stat);
        }
    }
    entries
}

/// One process's figures right now (None once it is gone).
pub fn stat_of(pid: u32) -> Option<ProcStat> {
    StatReader::open(pid)?.read(&mut Vec::with_capacity(512))
}

/// When `pid` started (clock ticks after boot): with the pid, names one process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_of(pid).map(|stat| stat.start_ticks)
}

/// Whether `pid` is a process that has not exited (a zombie has: it only waits to be
/// reaped).
pub fn running(pid: u32) -> bool {
    stat_of(pid).is_some_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

/// Who holds the write end of the pipes with these inode numbers, other than this
/// process: whoever can still write to a job's output, which therefore cannot reach
/// end-of-file while they live. Reads `/proc/*/fd`, so it is for the rare moment a run's
/// processes are all gone and its pipes are still open.
///
/// A child of this process that has not called `exec` yet (another job's spawn) holds
/// copies of every descriptor for an instant: it is in `.1`, to be looked at again
/// rather than taken for a writer.
pub fn pipe_writers(inodes: &[u64]) -> (Vec<u32>, bool) {
    if inodes.is_empty() {
        return (Vec::new(), false);
    }
    let my_exe = std::fs::read_link("/proc/self/exe").ok();
    let names: Vec<String> = inodes
        .iter()
        .map(|key| match key & super::pty::PTY_KEY {
            0 => format!("pipe:[{key}]"),
            // A PTY master's: whoever holds its slave (see `pty::holder_key`).
            _ => format!("/dev/pts/{}", key & !super::pty::PTY_KEY),
        })
        .collect();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (Vec::new(), false);
    };
    let mut writers = Vec::new();
    let mut spawning = false;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let writes = fds.flatten().any(|fd| {
            let ours = std::fs::read_link(fd.path())
                .is_ok_and(|target| names.iter().any(|n| target.as_os_str() == n.as_str()));
            ours && opened_for_writing(&entry.path(), &fd.file_name())
        });
        if !writes {
            continue;
        }
        let not_execed = stat_of(pid).is_some_and(|s| s.ppid == me)
            && my_exe.is_some()
            && std::fs::read_link(entry.path().join("exe")).ok() == my_exe;
        if not_execed {
            spawning = true;
        } else {
            writers.push(pid);
        }
    }
    (writers, spawning)
}

/// `/proc/PID/fdinfo/FD` says whether the descriptor was opened for writing.
fn opened_for_writing(proc_dir: &std::path::Path, fd: &std::ffi::OsStr) -> bool {
    let Ok(info) = std::fs::read_to_string(proc_dir.join("fdinfo").join(fd)) else {
        // Unreadable: count it, rather than wait forever for an end-of-file.
        return true;
    };
    info.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_none_or(|flags| flags & 0o3 != 0)
}

/// An open `/proc/PID/stat`, re-read in place.
#[derive(Debug)]
pub struct StatReader {
    pid: u32,
    file: File,
    /// `/proc/PID/schedstat`: the leader thread's run time, much cheaper to produce than
    /// `stat`. While it does not move, a single-threaded process has not run, so its last
    /// figures still hold.
    schedstat: Option<File>,
    last: Option<LastRead>,
    /// Whether the process may have run between the last two samples (false only when
    /// schedstat shows a single-threaded process did not).
    ran: bool,
}

#[derive(Debug, Clone, Copy)]
struct LastRead {
    run_time: u64,
    stat: ProcStat,
    single_threaded: bool,
    reused: u32,
}

/// Re-read `stat` after reusing figures this many times anyway (RSS can shrink while a
/// process sleeps, when the kernel reclaims its pages).
const MAX_REUSE: u32 = 4;

impl StatReader {
    pub fn open(pid: u32) -> Option<Self> {
        let file = File::open(format!("/proc/{pid}/stat")).ok()?;
        let schedstat = File::open(format!("/proc/{pid}/schedstat")).ok();
        Some(StatReader {
            pid,
            file,
            schedstat,
            last: None,
            ran: true,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process may have run (and so forked) between the last two samples.
    pub fn ran(&self) -> bool {
        self.ran
    }

    /// Like [`read`](Self::read), but skips `stat` while the process has not run since
    /// the last call. None once the process is gone.
    pub fn sample(&mut self, buf: &mut Vec<u8>) -> Option<ProcStat> {
        let sched = self
            .schedstat
            .as_ref()
            .and_then(|file| read_schedstat(file, buf));
        let run_delay = sched.map_or(Duration::ZERO, |(_, delay)| delay);
        self.ran = match (sched, &self.last) {
            (Some((run_time, _)), Some(last)) if last.single_threaded => last.run_time != run_time,
            _ => true,
        };
        if let (Some((run_time, _)), Some(last)) = (sched, self.last.as_mut())
            && last.single_threaded
            && last.run_time == run_time
            && last.reused < MAX_REUSE
        {
            // It has not run; it may still have waited for a CPU all along.
            last.reused += 1;
            last.stat.cpu_wait = run_delay;
            return Some(last.stat);
        }
        let (mut stat, threads) = self.read_with_threads(buf)?;
        stat.cpu_wait = run_delay;
        self.last = sched.map(|(run_time, _)| LastRead {
            run_time,
            stat,
            single_threaded: threads == 1,
            reused: 0,
        });
        Some(stat)
    }

    /// The current figures; None once the process is gone.
    pub fn read(&self, buf: &mut Vec<u8>) -> Option<ProcStat> {
        let (mut stat, _) = self.read_with_threads(buf)?;
        if let Some((_, delay)) = self.schedstat.as_ref().and_then(|f| read_schedstat(f, buf)) {
            stat.cpu_wait = delay;
        }
        Some(stat)
    }

    fn read_with_threads(&self, buf: &mut Vec<u8>) -> Option<(ProcStat, u64)> {
        buf.clear();
        buf.resize(1024, 0);
        let len = self.file.read_at(buf, 0).ok()?;
        parse_stat(self.pid, buf.get(..len)?)
    }
}

/// `/proc/PID/schedstat`: run time and run-queue delay of the main thread.
fn read_schedstat(file: &File, buf: &mut Vec<u8>) -> Option<(u64, Duration)> {
    buf.clear();
    buf.resize(128, 0);
    let len = file.read_at(buf, 0).ok()?;
    let mut fields = std::str::from_utf8(buf.get(..len)?)
        .ok()?
        .split_ascii_whitespace();
    let run_time = fields.next()?.parse::<u64>().ok()?;
    let delay = fields.next()?.parse::<u64>().ok()?;
    Some((run_time, Duration::from_nanos(delay)))
}

/// The run-queue delay of a process (a zombie's too, until it is reaped).
pub fn cpu_wait_of(pid: u32) -> Option<Duration> {
    let file = File::open(format!("/proc/{pid}/schedstat")).ok()?;
    read_schedstat(&file, &mut Vec::with_capacity(128)).map(|(_, delay)| delay)
}

/// The figures, and the number of threads.
fn parse_stat(pid: u32, stat: &[u8]) -> Option<(ProcStat, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // Index = proc(5)'s field number minus 3: 0 is the state, 1 the ppid, 2 the pgrp.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(23).collect();
    let number = |index: usize| -> Option<u64> { fields.get(index)?.parse().ok() };
    let ticks = number(11)? + number(12)? + number(13)? + number(14)?;
    let (ticks_per_second, page_size) = system_units();
    let stat = ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: u32::try_from(number(1)?).ok()?,
        pgid: u32::try_from(number(2)?).ok()?,
        cpu: Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / ticks_per_second),
        rss_bytes: number(21)?.saturating_mul(page_size),
        start_ticks: number(19)?,
        threads: number(17)?,
        cpu_wait: Duration::ZERO,
    };
    Some((stat, number(17)?))
}

/// Clock ticks per second (the unit of start times in `stat`).
pub fn ticks_per_second() -> u64 {
    system_units().0
}

/// Clock ticks per second and the page size, asked once.
fn system_units() -> (u64, u64) {
    static UNITS: OnceLock<(u64, u64)> = OnceLock::new();
    *UNITS.get_or_init(|| {
        use nix::unistd::{SysconfVar, sysconf};
        let positive = |var| match sysconf(var) {
            Ok(Some(value)) if value > 0 => Some(value as u64),
            _ => None,
        };
        (
            positive(SysconfVar::CLK_TCK).unwrap_or(100),
            positive(SysconfVar::PAGE_SIZE).unwrap_or(4096),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = b"4211 (my (odd) cmd) S 4200 4211 4100 0 -1 4194560 100 0 0 0 \
            250 50 100 0 20 0 1 0 12345 1000000 300 18446744073709551615";
        let (parsed, threads) = parse_stat(4211, stat).expect("parses");
        assert_eq!(threads, 1);
        let (ticks, page) = system_units();
        assert_eq!((parsed.ppid, parsed.pgid), (4200, 4211));
        assert_eq!(
            parsed.cpu,
            Duration::from_nanos(400 * 1_000_000_000 / ticks)
        );
        assert_eq!(parsed.rss_bytes, 300 * page);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat(1, b"1 (init) S 0 1"), None);
        assert_eq!(parse_stat(1, b"garbage"), None);
    }

    #[test]
    fn scan_finds_this_process_and_reader_rereads_it() {
        let me = std::process::id();
        assert!(scan().iter().any(|e| e.pid == me));
        let reader = StatReader::open(me).expect("own stat");
        let mut buf = Vec::new();
        let mut reader = reader;
        let first = reader.sample(&mut buf).expect("read");
        // Burn a little CPU; a re-read of the same open file sees it.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let second = reader.sample(&mut buf).expect("read again");
        assert!(second.cpu >= first.cpu, "{x}");
        assert!(second.rss_bytes > 0);
    }
}
