//! Reaping children without polling.
//!
//! One task listens for SIGCHLD and then collects exit statuses with `wait4`, which also
//! gives the rusage (CPU time, peak RSS) of each reaped process. It only ever waits for
//! pids it registered and for members of the job process groups it knows, so it never
//! steals the status of an unrelated child of this process. forkyard is a child
//! subreaper, so orphaned grandchildren are re-parented to it instead of escaping to
//! init; they are reaped here too and each one bumps `orphans_reaped` so a job waiting for
//! stragglers in its group can look again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{oneshot, watch};

/// How a reaped process ended, with its resource usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub pid: u32,
    pub how: ExitHow,
    /// User + system CPU time, including the process's own reaped children.
    pub cpu_time: Duration,
    /// Run-queue delay of its main thread (time runnable but waiting for a CPU), read
    /// from the zombie just before it was reaped: exact, where sampling would miss the
    /// last second.
    pub cpu_wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitHow {
    Code(i32),
    Signal(Signal),
}

/// Set by the forkyard binary, whose every child is a job process or a descendant that
/// escaped its job: then any waitable child may be reaped. A library user (a test) may
/// have children of its own, which are left alone.
static OWNS_ALL_CHILDREN: AtomicBool = AtomicBool::new(false);

/// Declares that every child of this process belongs to the supervisor.
pub fn own_all_children() {
    OWNS_ALL_CHILDREN.store(true, Ordering::Relaxed);
}

pub fn owns_all_children() -> bool {
    OWNS_ALL_CHILDREN.load(Ordering::Relaxed)
}

/// A child that can be reaped now (not reaped yet): its pid, and its process group and
/// start time while its /proc entry can still be read (-1 and 0 otherwise).
fn peek_waitable() -> Option<(i32, i32, Duration)> {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let pid = match waitid(Id::All, flags).ok()? {
        WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _) => pid.as_raw(),
        _ => return None,
    };
    // A zombie keeps its /proc entry, group included, until it is reaped.
    let (pgid, wait) = read_stat(pid as u32).map_or((-1, Duration::ZERO), |stat| {
        (stat.pgid as i32, stat.cpu_wait)
    });
    Some((pid, pgid, wait))
}

fn read_stat(pid: u32) -> Option<super::procfs::ProcStat> {
    let mut buf = Vec::new();
    super::procfs::StatReader::open(pid)?.read(&mut buf)
}

/// Every job process group that may still have members, across all supervisors of this
/// process: what a panic hook must kill so no child outlives forkyard.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// SIGKILLs every live job group. For the panic path: never blocks on a held lock.
pub fn kill_all_live_groups() {
    if let Ok(live) = LIVE_GROUPS.try_lock() {
        for pgid in live.iter() {
            let _ = super::signals::signal_group(*pgid as u32, Signal::SIGKILL);
        }
    }
}

#[derive(Default)]
struct Registry {
    /// Registered pids and who waits for them.
    waiters: HashMap<i32, oneshot::Sender<ExitInfo>>,
    /// Job process groups whose members (orphans included) we reap, with a use count.
    groups: HashMap<i32, usize>,
    /// CPU time and CPU wait of reaped orphans per group, so they can be credited to the
    /// job.
    orphan_cpu: HashMap<i32, (Duration, Duration)>,
    /// Single-stage spawns under way (see [`SpawnInFlight`]). While any is, a child
    /// nobody registered is left a zombie: it may be one whose `exec` failed, which
    /// `Command::spawn` reaps itself (and panics if someone else already has), or one
    /// that exited before its registration, which then collects it.
    spawning: usize,
}

impl Registry {
    /// Registers `pid`. With `collect`, a child that has exited already (it was left a
    /// zombie for this: see `spawning`) is reaped and handed over at once. A pipeline's
    /// stages are not collected here: its first stage leads the group the later ones
    /// join, and a reaped leader takes its group with it (their `setpgid` would fail).
    fn register_pid(&mut self, pid: u32, collect: bool) -> oneshot::Receiver<ExitInfo> {
        let (tx, rx) = oneshot::channel();
        if collect {
            let cpu_wait = super::procfs::cpu_wait_of(pid).unwrap_or_default();
            if let Some(info) = wait4_nohang(pid as i32) {
                let _ = tx.send(ExitInfo { cpu_wait, ..info });
                return rx;
            }
        }
        self.waiters.insert(pid as i32, tx);
        rx
    }

    fn register_group(&mut self, pgid: u32) {
        super::watchdog::group_live(pgid);
        *self.groups.entry(pgid as i32).or_insert(0) += 1;
        if let Ok(mut live) = LIVE_GROUPS.lock() {
            live.insert(pgid as i32);
        }
    }

    /// Books a reaped child nobody waits for as an orphan of its group; returns 1.
    fn credit_orphan(&mut self, pgid: i32, info: ExitInfo) -> u64 {
        let entry = self.orphan_cpu.entry(pgid).or_default();
        entry.0 += info.cpu_time;
        entry.1 += info.cpu_wait;
        1
    }
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Reaper {
    registry: Arc<Mutex<Registry>>,
    orphans_reaped: watch::Sender<u64>,
}

/// Held while spawning a pipeline: the reaper cannot run until the new pids are
/// registered, and the process group of a pipeline cannot vanish (its first stage be
/// reaped) between its stages' spawns.
pub struct SpawnGuard<'a> {
    registry: MutexGuard<'a, Registry>,
}

impl SpawnGuard<'_> {
    pub fn register_pid(&mut self, pid: u32) -> oneshot::Receiver<ExitInfo> {
        self.registry.register_pid(pid, false)
    }

    pub fn register_group(&mut self, pgid: u32) {
        self.registry.register_group(pgid);
    }
}

/// A single-process run being spawned without holding the reaper's lock, so that
/// several threads spawn at once (`spawn()` returns only after the child's `exec`, which
/// is most of its cost). Meanwhile the reaper leaves unregistered children alone (see
/// `Registry::spawning`); registration collects a child that has exited already, and
/// the end of the last spawn under way collects whatever else waited (orphans).
pub struct SpawnInFlight<'a> {
    reaper: &'a Reaper,
}

impl SpawnInFlight<'_> {
    /// Registers the new child, which leads its own process group.
    pub fn register(&self, pid: u32) -> oneshot::Receiver<ExitInfo> {
        let mut registry = lock(&self.reaper.registry);
        registry.register_group(pid);
        registry.register_pid(pid, true)
    }
}

impl Drop for SpawnInFlight<'_> {
    fn drop(&mut self) {
        let last = {
            let mut registry = lock(&self.reaper.registry);
            registry.spawning = registry.spawning.saturating_sub(1);
            registry.spawning == 0
        };
        if last {
            // Children left as zombies while spawns were under way.
            self.reaper.reap_now();
        }
    }
}

impl Reaper {
    /// Installs the SIGCHLD listener (must happen before the first spawn) and starts the
    /// reaping task on the current tokio runtime. The task must be aborted when its
    /// supervisor is done: in a process that owns all its children, a leftover reaper
    /// would take the exit statuses of the next supervisor's children.
    pub fn start() -> std::io::Result<(Self, tokio::task::JoinHandle<()>)> {
        // Orphaned grandchildren come to us, not to init (which may never reap them).
        // Failure is not fatal: group signals still reach them.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let mut sigchld = signal(SignalKind::child())?;
        let (orphans_reaped, _) = watch::channel(0u64);
        let reaper = Reaper {
            registry: Arc::new(Mutex::new(Registry::default())),
            orphans_reaped,
        };
        let task_reaper = reaper.clone();
        let task = tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                task_reaper.reap_now();
            }
        });
        Ok((reaper, task))
    }

    pub fn lock_for_spawn(&self) -> SpawnGuard<'_> {
        SpawnGuard {
            registry: lock(&self.registry),
        }
    }

    /// Announces a single-process spawn (see [`SpawnInFlight`]).
    pub fn begin_spawn(&self) -> SpawnInFlight<'_> {
        lock(&self.registry).spawning += 1;
        SpawnInFlight { reaper: self }
    }

    /// Stop reaping members of this group (its job is done with it).
    pub fn release_group(&self, pgid: u32) {
        let mut registry = lock(&self.registry);
        if let Some(count) = registry.groups.get_mut(&(pgid as i32)) {
            *count -= 1;
            if *count == 0 {
                registry.groups.remove(&(pgid as i32));
                super::watchdog::group_released(pgid);
                if let Ok(mut live) = LIVE_GROUPS.lock() {
                    live.remove(&(pgid as i32));
                }
            }
        }
    }

    /// CPU time and CPU wait of orphans reaped from this group so far (taken: counted
    /// once).
    pub fn take_orphan_cpu(&self, pgid: u32) -> (Duration, Duration) {
        lock(&self.registry)
            .orphan_cpu
            .remove(&(pgid as i32))
            .unwrap_or_default()
    }

    /// Changes whenever an orphan (a straggler) has been reaped.
    pub fn orphans_reaped(&self) -> watch::Receiver<u64> {
        self.orphans_reaped.subscribe()
    }

    /// Collects every pending status we are entitled to. Called on SIGCHLD; also safe to
    /// call at any time (it never blocks).
    ///
    /// Fast path: ask the kernel which child is waitable (`waitid(WNOWAIT)` peeks without
    /// reaping) and reap exactly that one, one list walk per exited child. Asking for
    /// every registered pid and group instead costs a walk of the whole child list per
    /// question: with a thousand jobs, millions of steps per SIGCHLD.
    pub fn reap_now(&self) {
        let mut registry = lock(&self.registry);
        let mut reaped_orphans = 0u64;
        while let Some((pid, pgid, cpu_wait)) = peek_waitable() {
            // An unregistered child waits while spawns are under way (see `spawning`).
            let ours = registry.waiters.contains_key(&pid)
                || registry.groups.contains_key(&pgid)
                || (OWNS_ALL_CHILDREN.load(Ordering::Relaxed) && registry.spawning == 0);
            if !ours {
                // Someone else's child (e.g. a test harness's) sits first in line: fall
                // back to asking for ours by name, below.
                break;
            }
            let Some(mut info) = wait4_nohang(pid) else {
                break;
            };
            info.cpu_wait = cpu_wait;
            if let Some(tx) = registry.waiters.remove(&pid) {
                let _ = tx.send(info);
            } else {
                reaped_orphans += registry.credit_orphan(pgid, info);
            }
        }
        if peek_waitable().is_some() {
            reaped_orphans += Self::reap_by_name(&mut registry);
        }
        drop(registry);
        if reaped_orphans > 0 {
            self.orphans_reaped.send_modify(|n| *n += reaped_orphans);
        }
    }

    /// Slow path: every registered pid and group, by name. Returns orphans reaped.
    fn reap_by_name(registry: &mut Registry) -> u64 {
        let mut reaped_orphans = 0u64;
        // Registered pids first: a stage may have moved to another process group.
        let pids: Vec<i32> = registry.waiters.keys().copied().collect();
        for pid in pids {
            let cpu_wait = super::procfs::cpu_wait_of(pid as u32).unwrap_or_default();
            if let Some(info) = wait4_nohang(pid).map(|info| ExitInfo { cpu_wait, ..info })
                && let Some(tx) = registry.waiters.remove(&pid)
            {
                let _ = tx.send(info);
            }
        }
        let groups: Vec<i32> = registry.groups.keys().copied().collect();
        let mut seen = HashSet::new();
        for pgid in groups {
            while let Some(info) = wait4_nohang(-pgid) {
                if !seen.insert(info.pid) {
                    break;
                }
                if let Some(tx) = registry.waiters.remove(&(info.pid as i32)) {
                    let _ = tx.send(info);
                } else {
                    reaped_orphans += registry.credit_orphan(pgid, info);
                }
            }
        }
        reaped_orphans
    }
}

impl Reaper {
    /// Reaps a process killed by the final sweep, if it is our child (it may be a
    /// grandchild whose own parent reaps it).
    pub fn reap_escaped(&self, pid: u32) {
        let _registry = lock(&self.registry);
        let target = nix::unistd::Pid::from_raw(pid as i32);
        // SIGKILL was just sent: this returns as soon as the process is gone.
        let _ = nix::sys::wait::waitpid(target, None);
    }
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic while holding this lock leaves plain data behind; keep going.
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `wait4(pid, WNOHANG)`: Some when a process was reaped.
fn wait4_nohang(pid: i32) -> Option<ExitInfo> {
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value; both pointers point to live locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
    if reaped <= 0 {
        return None;
    }
    let how = if libc::WIFSIGNALED(status) {
        match Signal::try_from(libc::WTERMSIG(status)) {
            Ok(signal) => ExitHow::Signal(signal),
            Err(_) => ExitHow::Code(128 + libc::WTERMSIG(status)),
        }
    } else {
        ExitHow::Code(libc::WEXITSTATUS(status))
    };
    let cpu_time = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    Some(ExitInfo {
        pid: reaped as u32,
        how,
        cpu_time,
        cpu_wait: Duration::ZERO,
    })
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that exited before it was registered (left a zombie while spawns were
    /// under way) is collected by its registration, with its own exit status.
    #[test]
    fn registration_collects_a_child_that_already_exited() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read_stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut registry = Registry::default();
        let mut rx = registry.register_pid(pid, true);
        assert_eq!(rx.try_recv().map(|i| i.how), Ok(ExitHow::Code(7)));
        assert!(!registry.waiters.contains_key(&(pid as i32)));
        std::mem::forget(child);
    }

    /// A live child is waited for.
    #[test]
    fn registration_of_a_live_child_waits() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let mut registry = Registry::default();
        let mut rx = registry.register_pid(child.id(), true);
        assert!(rx.try_recv().is_err());
        assert!(registry.waiters.contains_key(&(child.id() as i32)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
