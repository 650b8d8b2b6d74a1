//! Containment: which processes belong to a run of a job, however they daemonised.
//!
//! Where a writable cgroup v2 hierarchy is available, every run gets a cgroup of its own
//! below `forkyard.<pid>` in forkyard's own cgroup. Each stage joins it between `fork`
//! and `exec` (so nothing it starts can be outside), and then the kernel keeps the books:
//! `cgroup.procs` lists exactly the run's processes (whatever their group, session or
//! environment), `cgroup.events` says when the last one is gone (a notification, no
//! polling), and `cgroup.kill` ends them all at once (on kernels without it: freeze, kill
//! every member, thaw). The watchdog uses the same directory after forkyard's own death.
//!
//! Elsewhere (no cgroup v2, not writable, a container that forbids it) runs are
//! contained by their process group, and what left the group is found by ancestry: the
//! sampler's walk of the job's tree, processes re-parented to forkyard (a child
//! subreaper), and the processes still holding a job's pipes.
//!
//! Owns the cgroup files; knows nothing of jobs, states or events.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// How this process contains its jobs' processes.
#[derive(Debug)]
pub enum Containment {
    /// One cgroup v2 per run, below `base`.
    Cgroup {
        base: PathBuf,
        /// `cgroup.kill` exists (Linux 5.14+); else freeze-and-kill.
        kill_file: bool,
    },
    /// Process groups and ancestry; `why` says why cgroups are not used.
    Groups { why: String },
}

static CONTAINMENT: OnceLock<Containment> = OnceLock::new();
/// Numbers the cgroups this process creates.
static NEXT_CGROUP: AtomicU64 = AtomicU64::new(1);

/// Set to any value to force the process-group fallback (for tests of it, and for users
/// whose cgroup tree is managed by something that must not see forkyard's sub-groups).
pub const NO_CGROUP_ENV: &str = "FORKYARD_NO_CGROUP";

/// The containment of this process, found (and its cgroup directory made) on first use.
pub fn containment() -> &'static Containment {
    CONTAINMENT.get_or_init(|| {
        let found = detect();
        if let Containment::Cgroup { base, .. } = &found {
            super::watchdog::cgroup_base(base);
        }
        found
    })
}

/// The containment if it was already found (for exit paths that must not create it).
pub fn initialized() -> Option<&'static Containment> {
    CONTAINMENT.get()
}

impl Containment {
    /// One line for `forkyard check` and the docs: which containment is active, and why.
    pub fn describe(&self) -> String {
        match self {
            Containment::Cgroup { base, kill_file } => format!(
                "cgroup v2 per job run under {} ({})",
                base.display(),
                if *kill_file {
                    "cgroup.kill"
                } else {
                    "freeze and kill: no cgroup.kill on this kernel"
                }
            ),
            Containment::Groups { why } => {
                format!("process groups and ancestry (no cgroup: {why})")
            }
        }
    }

    pub fn base(&self) -> Option<&Path> {
        match self {
            Containment::Cgroup { base, .. } => Some(base),
            Containment::Groups { .. } => None,
        }
    }

    /// A fresh cgroup for one run, or None (fallback, or it could not be made).
    pub fn new_run(&self) -> Option<RunCgroup> {
        let Containment::Cgroup { base, kill_file } = self else {
            return None;
        };
        let n = NEXT_CGROUP.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("run{n}"));
        if let Err(err) = std::fs::create_dir(&dir) {
            // The base goes when the last supervisor of a process ends (see
            // `remove_base_if_empty`); a later one makes it again.
            if err.kind() != io::ErrorKind::NotFound {
                return None;
            }
            std::fs::create_dir(base).ok()?;
            std::fs::create_dir(&dir).ok()?;
        }
        let procs = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dir.join("cgroup.procs"))
            .ok()?;
        Some(RunCgroup {
            dir,
            procs: OwnedFd::from(procs),
            kill_file: *kill_file,
            events: None,
        })
    }
}

/// The cgroup of one run. Removed (once empty) when dropped.
#[derive(Debug)]
pub struct RunCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, open for writing: a child writes its own pid here before `exec`.
    procs: OwnedFd,
    kill_file: bool,
    events: Option<AsyncFd<File>>,
}

impl RunCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The descriptor a child writes its pid to (see [`join_from_child`]).
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Every process of the run, as the kernel lists them.
    pub fn members(&self) -> Vec<u32> {
        members_of(&self.dir)
    }

    /// Whether any process is left in the run (`cgroup.events`: `populated 1`). An
    /// unreadable file counts as populated, so a run is never ended early by an error.
    pub fn populated(&self) -> bool {
        populated(&self.dir).unwrap_or(true)
    }

    /// Waits until `cgroup.events` changes (the kernel notifies every change of
    /// `populated` or `frozen`). Cancel safe. Registers the file on first use.
    pub async fn changed(&mut self) {
        if self.events.is_none() {
            let opened = File::open(self.dir.join("cgroup.events"))
                // SAFETY: the AsyncFd owns the file, so its descriptor stays open while
                // registered.
                .and_then(|file| {
                    unsafe { AsyncFd::register_with_interest(file, Interest::PRIORITY) }
                        .map_err(io::Error::from)
                });
            match opened {
                Ok(fd) => self.events = Some(fd),
                // Cannot watch it: look again a little later rather than never.
                Err(_) => return tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let Some(events) = &mut self.events else {
            return;
        };
        match events.ready_mut(Interest::PRIORITY).await {
            Ok(mut guard) => {
                // kernfs re-arms the notification when the file is read again.
                let _ = guard.get_inner_mut().rewind();
                let _ = guard.get_inner_mut().read(&mut [0u8; 64]);
                guard.clear_ready();
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    /// SIGKILL to every process of the run at once, wherever it moved in the process
    /// tree, whatever its group or session.
    pub fn kill(&self) {
        kill_cgroup(&self.dir, self.kill_file);
    }

    /// `signal` to every member (the stop signal reaches what left the group too).
    pub fn signal(&self, signal: Signal) {
        for pid in self.members() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
    }

    /// Freezes (`true`) or thaws the whole run (`cgroup.freeze`).
    pub fn freeze(&self, frozen: bool) -> io::Result<()> {
        std::fs::write(
            self.dir.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )
    }

    /// CPU time of every process that ever ran in it (`cpu.stat` usage_usec).
    pub fn cpu_usage(&self) -> Option<Duration> {
        let text = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let usec = text
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(Duration::from_micros(usec))
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can go; one that is not empty is left to the sweep at exit.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// For `Command::pre_exec`: moves the calling process (the child, between `fork` and
/// `exec`) into the cgroup whose `cgroup.procs` is open as `procs_fd`.
///
/// Only async-signal-safe calls: `getpid` and `write` on a stack buffer.
pub fn join_from_child(procs_fd: RawFd) -> io::Result<()> {
    // SAFETY: getpid cannot fail and touches no memory.
    let pid = unsafe { libc::getpid() };
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut n = pid as u64;
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let text = &digits[start..];
    // SAFETY: a valid fd and a live buffer of `text.len()` bytes.
    let written = unsafe { libc::write(procs_fd, text.as_ptr().cast(), text.len()) };
    if written < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The pids in a cgroup directory.
pub fn members_of(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| pids_in(&text))
        .unwrap_or_default()
}

/// `cgroup.procs`' text: one pid a line.
fn pids_in(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// A flag of `cgroup.events`' text (`populated 1`, `frozen 0`).
fn event_flag(text: &str, key: &str) -> Option<bool> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .map(|v| v.trim() == "1")
}

/// A run's `cgroup.procs` and `cgroup.events`, held open and read again with `pread`:
/// the sampler looks every tick, and opening a cgroup file (a path walk through kernfs)
/// costs several times reading it.
pub struct CgroupFiles {
    procs: File,
    events: File,
    buf: Vec<u8>,
}

impl CgroupFiles {
    pub fn open(dir: &Path) -> Option<CgroupFiles> {
        Some(CgroupFiles {
            procs: File::open(dir.join("cgroup.procs")).ok()?,
            events: File::open(dir.join("cgroup.events")).ok()?,
            buf: Vec::with_capacity(256),
        })
    }

    /// The pids in the cgroup now (none if it cannot be read).
    pub fn members(&mut self) -> Vec<u32> {
        read_again(&self.procs, &mut self.buf)
            .map(pids_in)
            .unwrap_or_default()
    }

    /// Whether the cgroup is frozen (`cgroup.events`: `frozen 1`).
    pub fn frozen(&mut self) -> bool {
        read_again(&self.events, &mut self.buf)
            .and_then(|text| event_flag(text, "frozen"))
            .unwrap_or(false)
    }
}

/// The whole of a kernfs file as it is now: reading from offset 0 regenerates it.
///
/// A read of a seq_file stops at the end of the file or once its page-sized buffer is
/// full (these files' records are a dozen bytes at most), so a read that returns well
/// under a page has reached the end: asking again would generate the file once more.
fn read_again<'a>(file: &File, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 4096;
    buf.clear();
    let mut len = 0;
    loop {
        if buf.len() < len + CHUNK {
            buf.resize(len + CHUNK, 0);
        }
        match file.read_at(&mut buf[len..len + CHUNK], len as u64) {
            Ok(0) => break,
            Ok(n) if n < CHUNK / 2 => {
                len += n;
                break;
            }
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    std::str::from_utf8(&buf[..len]).ok()
}

fn populated(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    event_flag(&text, "populated")
}

fn kill_cgroup(dir: &Path, kill_file: bool) {
    if kill_file && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // No cgroup.kill: frozen processes cannot fork new ones while we kill the members.
    let _ = std::fs::write(dir.join("cgroup.freeze"), "1");
    for _ in 0..100 {
        let members = members_of(dir);
        if members.is_empty() {
            break;
        }
        for pid in members {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
}

/// Removes this process's cgroup directory if no run uses it any more (a library user
/// that starts and ends supervisors leaves nothing behind; a run still in use keeps it).
pub fn remove_base_if_empty() {
    if let Some(base) = initialized().and_then(Containment::base) {
        let _ = std::fs::remove_dir(base);
    }
}

/// Kills every process in every cgroup below `base`, waits (up to `patience`) for them
/// to be gone, and removes the directories, `base` included. For the end of forkyard and
/// for its watchdog; safe to call when `base` does not exist.
pub fn kill_and_remove_all(base: &Path, patience: Duration) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let kill_file = base.join("cgroup.kill").exists();
    let dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    for dir in &dirs {
        kill_cgroup(dir, kill_file);
    }
    let deadline = Instant::now() + patience;
    for dir in &dirs {
        while populated(dir).unwrap_or(false) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir(dir);
    }
    let _ = std::fs::remove_dir(base);
}

/// Finds forkyard's own cgroup v2, makes `forkyard.<pid>` below it and proves that a
/// child can join it.
fn detect() -> Containment {
    if std::env::var_os(NO_CGROUP_ENV).is_some() {
        return Containment::Groups {
            why: format!("{NO_CGROUP_ENV} is set"),
        };
    }
    match try_cgroup() {
        Ok(containment) => containment,
        Err(why) => Containment::Groups { why },
    }
}

fn try_cgroup() -> Result<Containment, String> {
    let mount = cgroup2_mount().ok_or("no cgroup2 file system is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let relative = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2")?
        .trim()
        .trim_start_matches('/')
        .to_string();
    let own_dir = mount.join(relative);
    let pid = std::process::id();
    let base = own_dir.join(format!("forkyard.{pid}"));
    if base.exists() {
        // A previous process with this pid did not clean up (it was killed with its
        // watchdog): whatever is left there is not ours, but it is in our way.
        kill_and_remove_all(&base, Duration::from_millis(500));
    }
    std::fs::create_dir(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let probe = base.join("probe");
    let result = std::fs::create_dir(&probe)
        .map_err(|e| format!("cannot create {}: {e}", probe.display()))
        .and_then(|()| probe_join(&probe));
    let _ = std::fs::remove_dir(&probe);
    if let Err(why) = result {
        let _ = std::fs::remove_dir(&base);
        return Err(why);
    }
    let kill_file = base.join("cgroup.kill").exists();
    Ok(Containment::Cgroup { base, kill_file })
}

/// Forks a child that joins `dir` and exits: the only sure test that moving our children
/// there is allowed (delegation, `nsdelegate`, "no internal processes" all get a say).
fn probe_join(dir: &Path) -> Result<(), String> {
    let procs = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))
        .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", dir.display()))?;
    let fd = procs.as_raw_fd();
    // SAFETY: the child only calls async-signal-safe functions (getpid, write, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = if join_from_child(fd).is_ok() { 0 } else { 1 };
        // SAFETY: _exit never returns and runs no destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked; `status` is a live local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    if waited != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "a child cannot join {} (not delegated to this user?)",
            dir.display()
        ));
    }
    Ok(())
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, or in hybrid setups a
/// sub-folder such as `/sys/fs/cgroup/unified`).
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_ascii_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = before.split_ascii_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mount(mount_point)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal (`\040`).
fn unescape_mount(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_are_parsed() {
        assert_eq!(pids_in("12\n345\n\n"), vec![12, 345]);
        let events = "populated 1\nfrozen 0\n";
        assert_eq!(event_flag(events, "populated"), Some(true));
        assert_eq!(event_flag(events, "frozen"), Some(false));
        assert_eq!(event_flag("populatedx 1\n", "populated"), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/trailing\\"), "/trailing\\");
    }

    #[test]
    fn pid_digits_are_written_whole() {
        let (reader, writer) = std::io::pipe().expect("pipe");
        join_from_child(writer.as_raw_fd()).expect("write");
        drop(writer);
        let mut text = String::new();
        let mut reader = reader;
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(text, std::process::id().to_string());
    }
}
