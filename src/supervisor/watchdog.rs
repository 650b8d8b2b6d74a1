//! The watchdog: a small process that outlives forkyard to clean up after it.
//!
//! Nothing inside a process runs after SIGKILL (or the OOM killer), so every job would be
//! left running, re-parented to init. The forkyard binary therefore forks this watchdog
//! first, while it is still single-threaded. forkyard tells it, over a pipe, what to
//! clean: its cgroup directory, each job process group while it may have members, each
//! process known to have left its group (where there is no cgroup), and whether the TUI
//! holds the terminal. When the pipe reaches end-of-file — forkyard exited, however it
//! exited — the watchdog restores the terminal if the TUI had it, kills every cgroup,
//! group and process it was told about, removes the cgroup directories and exits.
//!
//! It runs in a session of its own (no terminal signals reach it), ignores the signals
//! that end forkyard, and holds no descriptor of forkyard's but the pipe and, for the
//! restore, the terminal.
//!
//! Messages are one line each, written without blocking (a stalled watchdog must never
//! stall forkyard): `C<path>` cgroup base, `G<pgid>`/`g<pgid>` a group is live/released,
//! `P<pid> <start>`/`p<pid>` a process outside any group, `T`/`t` the TUI has/left the
//! terminal.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The write end of the pipe and the watchdog's pid, once started.
struct Link {
    pipe: File,
    pid: libc::pid_t,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// Forks the watchdog. Call first thing in `main`, before any thread exists: the child
/// of a multi-threaded `fork` may only make async-signal-safe calls, and the watchdog
/// does more than that. Failure is not fatal (forkyard still cleans up on every exit it
/// lives through).
pub fn start() {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let terminal = Terminal::find();
    // SAFETY: the process is single-threaded here (see above).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return;
    }
    if pid == 0 {
        drop(writer);
        watch(reader, terminal);
    }
    drop(reader);
    drop(terminal);
    // A full pipe (a watchdog that stopped reading) must not block forkyard.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(writer.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    if let Ok(mut link) = LINK.lock() {
        *link = Some(Link {
            pipe: File::from(writer),
            pid,
        });
    }
}

/// The watchdog's pid, if one runs: the final sweep must not kill it.
pub fn pid() -> Option<u32> {
    LINK.lock().ok()?.as_ref().map(|link| link.pid as u32)
}

/// Ends the watchdog after a clean exit: closes the pipe and waits (briefly) until it has
/// checked that nothing is left and gone, so no forkyard process outlives the command.
pub fn finish() {
    let Some(link) = LINK.lock().ok().and_then(|mut link| link.take()) else {
        return;
    };
    drop(link.pipe);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is a live local.
        let reaped = unsafe { libc::waitpid(link.pid, &mut status, libc::WNOHANG) };
        // Reaped now, or already (ECHILD: the reaper took it).
        if reaped != 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn tell(message: &str) {
    if let Ok(mut link) = LINK.lock()
        && let Some(link) = link.as_mut()
    {
        // Lines are far below PIPE_BUF, so each write is whole or not at all.
        let _ = link.pipe.write_all(message.as_bytes());
    }
}

pub fn cgroup_base(path: &std::path::Path) {
    tell(&format!("C{}\n", path.display()));
}

pub fn group_live(pgid: u32) {
    tell(&format!("G{pgid}\n"));
}

pub fn group_released(pgid: u32) {
    tell(&format!("g{pgid}\n"));
}

pub fn escaped(pid: u32, start_ticks: u64) {
    tell(&format!("P{pid} {start_ticks}\n"));
}

pub fn escaped_gone(pid: u32) {
    tell(&format!("p{pid}\n"));
}

/// The TUI took (`true`) or gave back the terminal.
pub fn terminal_taken(taken: bool) {
    tell(if taken { "T\n" } else { "t\n" });
}

/// The terminal as it was when forkyard started: where to write the restore sequences,
/// and its settings (cooked mode) to put back.
struct Terminal {
    fd: OwnedFd,
    settings: Option<libc::termios>,
}

impl Terminal {
    fn find() -> Option<Terminal> {
        for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO, libc::STDERR_FILENO] {
            // SAFETY: isatty only inspects the descriptor.
            if unsafe { libc::isatty(fd) } == 1 {
                // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
                let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
                if copy < 0 {
                    return None;
                }
                // SAFETY: `copy` is a fresh descriptor owned by nobody else.
                let fd = unsafe { OwnedFd::from_raw_fd(copy) };
                // SAFETY: a zeroed termios is a valid value for tcgetattr to fill.
                let mut settings: libc::termios = unsafe { std::mem::zeroed() };
                // SAFETY: a valid descriptor and a live termios.
                let ok = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut settings) } == 0;
                return Some(Terminal {
                    fd,
                    settings: ok.then_some(settings),
                });
            }
        }
        None
    }

    /// What the TUI's own restore does: mouse reporting off, bracketed paste off, main
    /// screen, cursor shown, the saved settings back.
    fn restore(&self) {
        const RESET: &[u8] = b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\
            \x1b[?2004l\x1b[?1049l\x1b[?25h\x1b[0m\r\n";
        // SAFETY: a valid descriptor and a live buffer.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), RESET.as_ptr().cast(), RESET.len()) };
        if let Some(settings) = &self.settings {
            // SAFETY: a valid descriptor and the settings read from it at start.
            let _ = unsafe { libc::tcsetattr(self.fd.as_raw_fd(), libc::TCSANOW, settings) };
        }
    }
}

/// What the watchdog has been told to clean.
#[derive(Default)]
struct Duties {
    cgroup_base: Option<PathBuf>,
    groups: HashSet<i32>,
    escaped: HashMap<i32, u64>,
    terminal_taken: bool,
}

impl Duties {
    fn apply(&mut self, line: &str) {
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "C" => self.cgroup_base = Some(PathBuf::from(rest)),
            "G" => {
                if let Ok(pgid) = rest.parse() {
                    self.groups.insert(pgid);
                }
            }
            "g" => {
                if let Ok(pgid) = rest.parse::<i32>() {
                    self.groups.remove(&pgid);
                }
            }
            "P" => {
                let mut parts = rest.split(' ');
                if let (Some(Ok(pid)), Some(Ok(start))) = (
                    parts.next().map(str::parse::<i32>),
                    parts.next().map(str::parse::<u64>),
                ) {
                    self.escaped.insert(pid, start);
                }
            }
            "p" => {
                if let Ok(pid) = rest.parse::<i32>() {
                    self.escaped.remove(&pid);
                }
            }
            "T" => self.terminal_taken = true,
            "t" => self.terminal_taken = false,
            _ => {}
        }
    }
}

/// The watchdog's whole life: read duties until forkyard is gone, then clean up.
fn watch(pipe: OwnedFd, terminal: Option<Terminal>) -> ! {
    detach(&pipe, terminal.as_ref().map(|t| t.fd.as_raw_fd()));
    let mut duties = Duties::default();
    let mut reader = File::from(pipe);
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    duties.apply(String::from_utf8_lossy(&line[..end]).as_ref());
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    clean_up(&duties, terminal.as_ref());
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // flushing buffers copied from it.
    unsafe { libc::_exit(0) }
}

fn clean_up(duties: &Duties, terminal: Option<&Terminal>) {
    if duties.terminal_taken
        && let Some(terminal) = terminal
    {
        terminal.restore();
    }
    for &pgid in &duties.groups {
        // SAFETY: plain syscall; a gone group is ESRCH, ignored.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    for (&pid, &start) in &duties.escaped {
        // Only the process that was reported: a recycled pid has another start time.
        if super::procfs::start_ticks(pid as u32) == Some(start) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    if let Some(base) = &duties.cgroup_base {
        super::contain::kill_and_remove_all(base, Duration::from_secs(2));
    }
}

/// A session of its own, the ending signals ignored, every descriptor but `keep` closed
/// and the standard ones on /dev/null (holding forkyard's stdout would delay the EOF a
/// reader of forkyard's output waits for).
fn detach(pipe: &OwnedFd, tty: Option<RawFd>) {
    // SAFETY: plain syscalls on our own process; failures leave things as they were.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_NAME, c"forkyard-watch".as_ptr());
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    let keep = [Some(pipe.as_raw_fd()), tty];
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open: Vec<RawFd> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        for fd in open {
            if fd > 2 && !keep.contains(&Some(fd)) {
                // SAFETY: closing a descriptor this process inherited and will not use
                // (the directory's own descriptor just fails with EBADF later).
                unsafe { libc::close(fd) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duties_follow_the_messages() {
        let mut duties = Duties::default();
        for line in [
            "C/sys/fs/cgroup/x y",
            "G12",
            "G13",
            "g12",
            "P40 777",
            "P41 1",
            "p41",
            "T",
        ] {
            duties.apply(line);
        }
        assert_eq!(
            duties.cgroup_base,
            Some(PathBuf::from("/sys/fs/cgroup/x y"))
        );
        assert_eq!(duties.groups, HashSet::from([13]));
        assert_eq!(duties.escaped, HashMap::from([(40, 777)]));
        assert!(duties.terminal_taken);
        duties.apply("t");
        duties.apply("garbage");
        duties.apply("");
        assert!(!duties.terminal_taken);
    }
}
