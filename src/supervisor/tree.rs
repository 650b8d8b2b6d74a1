//! A job's live process tree, for finding the one process that hangs and dealing with
//! exactly that one.
//!
//! A [`Tree`] lists every process of a run — its cgroup's members where it has one, else
//! the stages' descendants and whatever is in its process group — in tree order, each
//! with its state in words, what it waits on (`wchan`, and the system call it is in),
//! CPU %, time waiting for a CPU, RSS, threads, age and command line, marked where it left
//! the job's process group or session. [`Desk`] takes such snapshots for the one job a
//! consumer watches (the TUI's tree pane), and signals one process or its subtree —
//! only if it belongs to the job, through a pidfd so a recycled pid is never hit — with
//! the job's stop signal, then SIGKILL after its grace.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc};

use super::procfs::{self, ProcStat};
use super::status::{Event, JobId, Level, Notice};

/// A process's scheduling state, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running,
    Sleeping,
    DiskWait,
    Stopped,
    Traced,
    Zombie,
    Idle,
    Other(char),
}

impl ProcState {
    pub fn from_letter(letter: char) -> Self {
        match letter {
            'R' => ProcState::Running,
            'S' => ProcState::Sleeping,
            'D' => ProcState::DiskWait,
            'T' => ProcState::Stopped,
            't' => ProcState::Traced,
            'Z' | 'X' => ProcState::Zombie,
            'I' => ProcState::Idle,
            other => ProcState::Other(other),
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Sleeping => "sleeping",
            ProcState::DiskWait => "disk wait",
            ProcState::Stopped => "stopped",
            ProcState::Traced => "traced",
            ProcState::Zombie => "zombie",
            ProcState::Idle => "idle",
            ProcState::Other(_) => "other",
        }
    }
}

/// One process of a job's tree.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: u32,
    /// Its depth in the tree (0: a stage, or a process whose parent is not the job's).
    pub depth: usize,
    pub state: ProcState,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), when it sleeps.
    pub wchan: Option<String>,
    /// The system call it is blocked in (`/proc/PID/syscall`), where readable.
    pub syscall: Option<String>,
    pub cpu: Duration,
    /// Since the previous snapshot (None in the first one).
    pub cpu_percent: Option<f32>,
    /// Run-queue delay of its main thread: runnable, but waiting for a CPU.
    pub cpu_wait: Duration,
    pub rss_bytes: u64,
    pub threads: u64,
    pub age: Duration,
    /// Its command line, as the process has it (untrusted: sanitise before display).
    pub cmdline: String,
    /// It is not in the job's process group (a `setsid` daemon, a double fork).
    pub left_group: bool,
    /// The moment SIGKILL follows a stop sent to this process alone.
    pub kill_at: Option<Instant>,
    /// In a post-mortem: it was still there when the grace period ran out (SIGKILL).
    pub outlived_grace: bool,
}

/// A job's processes at one moment, in tree order (a parent before its children).
#[derive(Debug, Clone)]
pub struct Tree {
    pub job: JobId,
    pub taken: Instant,
    pub rows: Vec<ProcessRow>,
}

/// Trees are compared by the moment they were taken: two snapshots of one instant are
/// the same snapshot (a job status carrying one stays comparable).
impl PartialEq for Tree {
    fn eq(&self, other: &Self) -> bool {
        self.job == other.job && self.taken == other.taken
    }
}

impl Eq for Tree {}

/// A job's tree as it was when forkyard had to stop it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postmortem {
    /// "timed out", "stalled", "not alive", "outlived its grace period".
    pub why: String,
    pub tree: Tree,
}

/// What a run is, for finding its processes.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub pgid: u32,
    pub stage_pids: Vec<u32>,
    pub cgroup: Option<PathBuf>,
}

/// The run's processes, each with the stage (pid) whose subtree it is in.
pub fn members(scope: &Scope) -> Vec<(u32, Option<u32>)> {
    match &scope.cgroup {
        Some(dir) => {
            let pids = super::contain::members_of(dir);
            attribute(&scope.stage_pids, &pids)
        }
        None => tree_members(scope, &procfs::scan()),
    }
}

/// Every live process of a job: the stages, their descendants, and its process group,
/// each with the stage (pid) whose subtree it is in. Group members outside every
/// stage's subtree (orphans re-parented to forkyard) count for the job only.
pub fn tree_members(scope: &Scope, entries: &[ProcStat]) -> Vec<(u32, Option<u32>)> {
    let mut found: HashMap<u32, Option<u32>> = HashMap::new();
    // Descendants that moved to another group are still found through their parents.
    let adopt = |found: &mut HashMap<u32, Option<u32>>, roots: Vec<u32>, stage| {
        let mut frontier = roots;
        while let Some(parent) = frontier.pop() {
            for entry in entries.iter().filter(|e| e.ppid == parent) {
                if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(entry.pid) {
                    slot.insert(stage);
                    frontier.push(entry.pid);
                }
            }
        }
    };
    for &stage in &scope.stage_pids {
        found.insert(stage, Some(stage));
    }
    for &stage in &scope.stage_pids {
        adopt(&mut found, vec![stage], Some(stage));
    }
    let strays: Vec<u32> = entries
        .iter()
        .filter(|e| e.pgid == scope.pgid && !found.contains_key(&e.pid))
        .map(|e| e.pid)
        .collect();
    for &pid in &strays {
        found.insert(pid, None);
    }
    adopt(&mut found, strays, None);
    found.into_iter().collect()
}

/// The members of a run's cgroup, each with the stage whose subtree it is in (found by
/// walking parents within the cgroup).
pub fn attribute(stage_pids: &[u32], pids: &[u32]) -> Vec<(u32, Option<u32>)> {
    let parents: HashMap<u32, u32> = pids
        .iter()
        .filter_map(|&pid| Some((pid, procfs::stat_of(pid)?.ppid)))
        .collect();
    pids.iter()
        .map(|&pid| {
            let mut at = pid;
            for _ in 0..pids.len() + 1 {
                if stage_pids.contains(&at) {
                    return (pid, Some(at));
                }
                match parents.get(&at) {
                    Some(&parent) => at = parent,
                    None => break,
                }
            }
            (pid, None)
        })
        .collect()
}

/// A snapshot of the run's tree now. `previous` (an earlier snapshot of the same job)
/// gives each process its CPU %.
pub fn snapshot(
    job: JobId,
    scope: &Scope,
    previous: Option<&Tree>,
    kill_at: &HashMap<u32, Instant>,
) -> Tree {
    let taken = Instant::now();
    let uptime = uptime();
    let ticks = procfs::ticks_per_second();
    let mut buf = Vec::with_capacity(1024);
    let mut stats: Vec<ProcStat> = members(scope)
        .into_iter()
        .filter_map(|(pid, _)| procfs::StatReader::open(pid)?.read(&mut buf))
        .collect();
    stats.sort_by_key(|s| s.pid);
    let known: HashMap<u32, &ProcStat> = stats.iter().map(|s| (s.pid, s)).collect();
    // Tree order: roots (no parent in the tree) first, each followed by its children.
    let mut order = Vec::with_capacity(stats.len());
    let mut stack: Vec<(u32, usize)> = stats
        .iter()
        .filter(|s| !known.contains_key(&s.ppid))
        .map(|s| (s.pid, 0))
        .rev()
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some((pid, depth)) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        order.push((pid, depth));
        let mut children: Vec<u32> = stats
            .iter()
            .filter(|s| s.ppid == pid)
            .map(|s| s.pid)
            .collect();
        children.sort_unstable();
        stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
    }
    let wall = previous.map(|p| taken.saturating_duration_since(p.taken).as_secs_f64());
    let rows = order
        .into_iter()
        .filter_map(|(pid, depth)| {
            let stat = known.get(&pid)?;
            let before = previous.and_then(|p| p.rows.iter().find(|r| r.pid == pid));
            let cpu_percent = match (before, wall) {
                (Some(before), Some(wall)) if wall > 0.0 => {
                    Some((stat.cpu.saturating_sub(before.cpu).as_secs_f64() / wall * 100.0) as f32)
                }
                _ => None,
            };
            let state = ProcState::from_letter(stat.state);
            Some(ProcessRow {
                pid,
                ppid: stat.ppid,
                depth,
                state,
                wchan: wchan(pid),
                syscall: (state != ProcState::Running)
                    .then(|| syscall(pid))
                    .flatten(),
                cpu: stat.cpu,
                cpu_percent,
                cpu_wait: stat.cpu_wait,
                rss_bytes: stat.rss_bytes,
                threads: stat.threads,
                age: uptime.saturating_sub(Duration::from_secs_f64(
                    stat.start_ticks as f64 / ticks as f64,
                )),
                cmdline: cmdline(pid),
                left_group: stat.pgid != scope.pgid,
                kill_at: kill_at.get(&pid).copied(),
                outlived_grace: false,
            })
        })
        .collect();
    Tree { job, taken, rows }
}

fn uptime() -> Duration {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_ascii_whitespace().next()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or_default()
}

fn wchan(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
    let text = text.trim();
    (!text.is_empty() && text != "0").then(|| text.to_string())
}

/// The system call `pid` is blocked in, by name (`read`, `wait4`, …), from
/// `/proc/PID/syscall` (readable where forkyard may trace the process).
fn syscall(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let first = text.split_ascii_whitespace().next()?;
    let number: i64 = first.parse().ok()?;
    Some(syscall_name(number).map_or_else(|| format!("syscall {number}"), str::to_string))
}

/// Names of the system calls a waiting process is usually in.
fn syscall_name(number: i64) -> Option<&'static str> {
    const NAMES: &[(i64, &str)] = &[
        (libc::SYS_read, "read"),
        (libc::SYS_write, "write"),
        (libc::SYS_readv, "readv"),
        (libc::SYS_writev, "writev"),
        (libc::SYS_pread64, "pread"),
        (libc::SYS_pwrite64, "pwrite"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_close, "close"),
        (libc::SYS_wait4, "wait4"),
        (libc::SYS_waitid, "waitid"),
        (libc::SYS_futex, "futex"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_pselect6, "pselect6"),
        (libc::SYS_epoll_pwait, "epoll_pwait"),
        (libc::SYS_epoll_pwait2, "epoll_pwait2"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_recvfrom, "recvfrom"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_sendto, "sendto"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
        (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
        (libc::SYS_flock, "flock"),
        (libc::SYS_fsync, "fsync"),
        (libc::SYS_fdatasync, "fdatasync"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_splice, "splice"),
        (libc::SYS_sendfile, "sendfile"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_exit_group, "exit_group"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_poll, "poll"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_select, "select"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_epoll_wait, "epoll_wait"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_accept, "accept"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_pause, "pause"),
        #[cfg(target_arch = "x86_64")]
        (libc::SYS_open, "open"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if parts.is_empty() {
        // A kernel thread or a zombie: its name, as `ps` shows it.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        parts.push(format!("[{}]", comm.trim()));
    }
    let mut text = parts.join(" ");
    if text.len() > 512 {
        let mut cut = 512;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// What to do to one process of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessAction {
    /// The job's stop signal, then SIGKILL after its grace.
    Stop,
    Kill,
    Signal(Signal),
}

/// Which processes an action reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The process alone.
    Process,
    /// The process and every descendant of it in the job.
    Subtree,
}

/// What the desk knows of each job (from its spec).
#[derive(Debug, Clone)]
pub struct JobFacts {
    pub name: String,
    pub stop_signal: Signal,
    pub grace: Duration,
}

/// Process-level views and controls of the jobs: the watched job's tree, and signals to
/// single processes. Shared by the sampler (which takes the snapshots) and the
/// controller.
pub struct Desk {
    /// By job id; grows when a reload adds jobs.
    jobs: Mutex<Vec<JobFacts>>,
    live: super::job::LiveTrees,
    watched: Mutex<Option<JobId>>,
    kill_at: Mutex<HashMap<u32, Instant>>,
    last: Mutex<Option<Tree>>,
    events: mpsc::UnboundedSender<Event>,
    look_now: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Desk {
    pub fn new(
        live: super::job::LiveTrees,
        events: mpsc::UnboundedSender<Event>,
        look_now: Arc<Notify>,
    ) -> Self {
        Desk {
            jobs: Mutex::new(Vec::new()),
            live,
            watched: Mutex::new(None),
            kill_at: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
            events,
            look_now,
        }
    }

    /// What it needs to know of job `id` (each job is added once, in id order).
    pub fn add(&self, id: JobId, facts: JobFacts) {
        let mut jobs = lock(&self.jobs);
        if id >= jobs.len() {
            jobs.resize(id + 1, facts.clone());
        }
        jobs[id] = facts;
    }

    fn facts(&self, job: JobId) -> Option<JobFacts> {
        lock(&self.jobs).get(job).cloned()
    }

    /// The scope of a running job's current run.
    fn scope(&self, job: JobId) -> Option<Scope> {
        let live = super::lock_live(&self.live);
        let tree = live.get(&job)?;
        Some(Scope {
            pgid: tree.pgid,
            stage_pids: tree.stage_pids.clone(),
            cgroup: tree.cgroup.clone(),
        })
    }

    /// The job whose tree is wanted (None: nobody looks). Taken at once, then with every
    /// sampling tick.
    pub fn watch(&self, job: Option<JobId>) {
        *lock(&self.watched) = job;
        if lock(&self.last).as_ref().map(|t| t.job) != job {
            *lock(&self.last) = None;
        }
        if job.is_some() {
            self.look_now.notify_one();
        }
    }

    pub fn watched(&self) -> Option<JobId> {
        *lock(&self.watched)
    }

    /// Takes the watched job's tree and sends it (for the sampler's tick).
    pub fn send_snapshot(&self) {
        let Some(job) = self.watched() else {
            return;
        };
        let Some(scope) = self.scope(job) else {
            return;
        };
        let kill_at = {
            let mut kill_at = lock(&self.kill_at);
            let now = Instant::now();
            kill_at.retain(|pid, at| *at + Duration::from_secs(5) > now && procfs::running(*pid));
            kill_at.clone()
        };
        let previous = lock(&self.last).clone();
        let tree = snapshot(job, &scope, previous.as_ref(), &kill_at);
        *lock(&self.last) = Some(tree.clone());
        let _ = self.events.send(Event::Tree(Arc::new(tree)));
    }

    /// `action` to `pid` (or its subtree) of `job`, if `pid` is one of the job's
    /// processes now. Every signal goes through a pidfd opened after that check, so a
    /// pid recycled in between is never signalled.
    pub fn act(&self, job: JobId, pid: u32, action: ProcessAction, reach: Reach) {
        let Some(facts) = self.facts(job) else {
            return;
        };
        let scope = self.scope(job);
        let members: Vec<u32> = scope
            .as_ref()
            .map(|s| members(s).into_iter().map(|(p, _)| p).collect())
            .unwrap_or_default();
        if !members.contains(&pid) {
            self.say(
                job,
                Level::Warn,
                format!("pid {pid} is not a process of {} (any more)", facts.name),
            );
            return;
        }
        let targets = match reach {
            Reach::Process => vec![pid],
            Reach::Subtree => subtree(pid, &members),
        };
        let signal = match action {
            ProcessAction::Stop => facts.stop_signal,
            ProcessAction::Kill => Signal::SIGKILL,
            ProcessAction::Signal(signal) => signal,
        };
        let mut sent = 0;
        for target in &targets {
            let Some(fd) = pidfd(*target) else {
                continue;
            };
            if send(&fd, signal).is_ok() {
                sent += 1;
            }
            if action == ProcessAction::Stop && signal != Signal::SIGKILL {
                let kill_at = Instant::now() + facts.grace;
                lock(&self.kill_at).insert(*target, kill_at);
                tokio::spawn(kill_after(fd, facts.grace));
            }
        }
        let whom = match reach {
            Reach::Process => format!("pid {pid}"),
            Reach::Subtree => format!("pid {pid} and its {} descendants", targets.len() - 1),
        };
        let then = if action == ProcessAction::Stop && signal != Signal::SIGKILL {
            format!(
                ", SIGKILL after {}",
                humantime::format_duration(facts.grace)
            )
        } else {
            String::new()
        };
        if sent > 0 {
            self.say(
                job,
                Level::Info,
                format!("sent {} to {whom} of {}{then}", signal.as_str(), facts.name),
            );
        } else {
            self.say(
                job,
                Level::Error,
                format!(
                    "could not send {} to {whom} of {}",
                    signal.as_str(),
                    facts.name
                ),
            );
        }
        // The tree shows the effect at once, not at the next tick.
        self.look_now.notify_one();
    }

    /// Pauses (or resumes) a running job: its cgroup frozen where it has one (nothing in
    /// it can run, whatever it does with signals), else SIGSTOP (SIGCONT) to its group.
    pub fn pause(&self, job: JobId, paused: bool) {
        let Some(facts) = self.facts(job) else {
            return;
        };
        let Some(scope) = self.scope(job) else {
            self.say(
                job,
                Level::Warn,
                format!(
                    "cannot {} `{}`: not running",
                    if paused { "pause" } else { "resume" },
                    facts.name
                ),
            );
            return;
        };
        let how = match &scope.cgroup {
            Some(dir) => std::fs::write(dir.join("cgroup.freeze"), if paused { "1" } else { "0" })
                .map(|()| {
                    if paused {
                        "froze its cgroup"
                    } else {
                        "thawed its cgroup"
                    }
                })
                .map_err(|e| e.to_string()),
            None => super::signals::signal_group(
                scope.pgid,
                if paused {
                    Signal::SIGSTOP
                } else {
                    Signal::SIGCONT
                },
            )
            .map(|()| {
                if paused {
                    "sent SIGSTOP to its group"
                } else {
                    "sent SIGCONT to its group"
                }
            })
            .map_err(|e| e.desc().to_string()),
        };
        match how {
            Ok(how) => self.say(
                job,
                Level::Info,
                format!(
                    "{} {}: {how}",
                    if paused { "paused" } else { "resumed" },
                    facts.name
                ),
            ),
            Err(err) => self.say(
                job,
                Level::Error,
                format!(
                    "could not {} {}: {err}",
                    if paused { "pause" } else { "resume" },
                    facts.name
                ),
            ),
        }
        self.look_now.notify_one();
    }

    fn say(&self, job: JobId, level: Level, text: String) {
        let _ = self.events.send(Event::Notice(Notice {
            job: Some(job),
            level,
            text,
        }));
    }
}

/// `pid` and its descendants among `members`, parents first.
fn subtree(pid: u32, members: &[u32]) -> Vec<u32> {
    let parents: HashMap<u32, u32> = members
        .iter()
        .filter_map(|&p| Some((p, procfs::stat_of(p)?.ppid)))
        .collect();
    let mut found = vec![pid];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        let mut children: Vec<u32> = parents
            .iter()
            .filter(|(_, pp)| **pp == parent)
            .map(|(p, _)| *p)
            .collect();
        children.sort_unstable();
        found.extend(children);
        index += 1;
    }
    found
}

fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the descriptor was just returned to us and belongs to nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn send(fd: &OwnedFd, signal: Signal) -> std::io::Result<()> {
    // SAFETY: plain syscall on a pidfd we own; no siginfo.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILL for a process that is still there once `grace` is over.
async fn kill_after(fd: OwnedFd, grace: Duration) {
    // SAFETY: the AsyncFd owns the pidfd, so it stays open while registered.
    let Ok(exited) = (unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }) else {
        return;
    };
    tokio::select! {
        // A pidfd is readable once its process has exited.
        _ = exited.readable() => {}
        _ = tokio::time::sleep(grace) => {
            let _ = send(exited.get_ref(), Signal::SIGKILL);
        }
    }
}
