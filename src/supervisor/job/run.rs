//! One run of a job at the process level: its stages' exits, the processes it left
//! behind, its pipes, and when it is over.
//!
//! A run is over when every stage has been reaped, its process group is empty, whatever
//! left the group (a `setsid` daemon, a double fork) has been stopped, and every pipe
//! has reached end-of-file — never after a timer, so no byte a child wrote is dropped
//! however slowly the consumer reads. What left the group is found exactly where the
//! run has a cgroup (its members), and otherwise by ancestry (descendants of the stages)
//! and by who still holds the run's pipes (`/proc/*/fd`). Those processes get the job's
//! stop signal, and SIGKILL after its grace, like a stop: a job is not finished while
//! something it started still runs.

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use nix::sys::signal::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::supervisor::contain::RunCgroup;
use crate::supervisor::procfs;
use crate::supervisor::reaper::{ExitInfo, Reaper};
use crate::supervisor::signals::{group_alive, signal_group};

/// Re-check a group with stragglers this often even without a reaped orphan (a straggler
/// whose parent is not forkyard is reaped by that parent, which tells us nothing).
const STRAGGLER_RECHECK: Duration = Duration::from_millis(250);

/// How long a run's pipes may stay open after its last process is gone before forkyard
/// looks for who holds them. Not a limit: data keeps flowing however long it takes.
const HOLDERS_AFTER: Duration = Duration::from_millis(100);

type ExitFuture = Pin<Box<dyn Future<Output = (usize, Option<ExitInfo>)> + Send>>;

/// Where a run is on its way to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Some stage has not been reaped.
    Stages,
    /// Every stage is reaped; other members of its process group still run.
    Stragglers,
    /// The group is empty; processes that left it are being stopped.
    Leftovers,
    /// Every process is gone; the drains are reading what is left in the pipes.
    Draining,
    Over,
}

/// What woke the run up.
pub enum Wake {
    Exit(usize, Option<ExitInfo>),
    /// Something may have changed (an orphan reaped, the cgroup emptied, a drain ended,
    /// a deadline of the leftovers' sweep): look again.
    Changed,
}

/// Processes of the run that left its group, being stopped.
struct Sweep {
    pids: Vec<u32>,
    /// SIGKILL for whatever is left at this instant (None: sent).
    kill_at: Option<Instant>,
    /// A pidfd per pid where there is no cgroup to watch: readable once it exits.
    exits: Vec<(u32, AsyncFd<OwnedFd>)>,
}

/// The pipes (and PTY masters) a run's drains read.
pub struct Pipes {
    /// What identifies each to [`procfs::pipe_writers`]: who holds them can still write.
    inodes: Vec<u64>,
    /// Copies of the read ends, to ask the kernel whether any writer is left (None: a
    /// copy could not be made, so the kernel cannot be asked).
    read_ends: Option<Vec<OwnedFd>>,
}

impl Default for Pipes {
    fn default() -> Pipes {
        Pipes::new()
    }
}

impl Pipes {
    pub fn new() -> Pipes {
        Pipes {
            inodes: Vec::new(),
            read_ends: Some(Vec::new()),
        }
    }

    pub fn watch(&mut self, fd: BorrowedFd<'_>) {
        self.inodes.extend(crate::supervisor::pty::holder_key(fd));
        match (fd.try_clone_to_owned(), &mut self.read_ends) {
            (Ok(copy), Some(ends)) => ends.push(copy),
            _ => self.read_ends = None,
        }
    }

    /// Whether some process still holds a write end (or a PTY's slave): the kernel
    /// reports `POLLHUP` on a read end once none does. One `poll`, where finding who
    /// holds it walks every process's descriptors. True when it cannot tell.
    fn writers_remain(&self) -> bool {
        let Some(ends) = &self.read_ends else {
            return true;
        };
        let mut fds: Vec<libc::pollfd> = ends
            .iter()
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let Ok(count) = libc::nfds_t::try_from(fds.len()) else {
            return true;
        };
        // SAFETY: `fds` is a live array of `count` pollfd; a zero timeout never blocks.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, 0) };
        ready < 0 || fds.iter().any(|p| p.revents & libc::POLLHUP == 0)
    }
}

pub struct Run {
    pub pgid: u32,
    exits: FuturesUnordered<ExitFuture>,
    drains: JoinSet<u64>,
    cgroup: Option<RunCgroup>,
    pipes: Pipes,
    orphans: watch::Receiver<u64>,
    sweep: Option<Sweep>,
    /// Whether the pipes' writers were looked for since the last sweep.
    holders_checked: bool,
    /// Look for them again at this instant (a sibling's spawn held them a moment).
    recheck_holders_at: Option<Instant>,
    reaper: Reaper,
    /// SIGKILL went to the whole run (a stage's exit may then never come if its status
    /// was taken by someone else: see [`Run::stages_vanished`]).
    pub killed: bool,
    /// The stage pids still running, for the vanished check.
    stage_pids: Vec<Option<u32>>,
}

impl Run {
    pub fn new(
        pgid: u32,
        stages: Vec<(usize, u32, tokio::sync::oneshot::Receiver<ExitInfo>)>,
        drains: JoinSet<u64>,
        pipes: Pipes,
        cgroup: Option<RunCgroup>,
        reaper: Reaper,
        stage_count: usize,
    ) -> Self {
        let orphans = reaper.orphans_reaped();
        let mut stage_pids = vec![None; stage_count];
        let exits = FuturesUnordered::new();
        for (index, pid, exit) in stages {
            if let Some(slot) = stage_pids.get_mut(index) {
                *slot = Some(pid);
            }
            exits.push(Box::pin(async move { (index, exit.await.ok()) }) as ExitFuture);
        }
        Run {
            pgid,
            exits,
            drains,
            cgroup,
            pipes,
            orphans,
            sweep: None,
            holders_checked: false,
            recheck_holders_at: None,
            reaper,
            killed: false,
            stage_pids,
        }
    }

    /// What the run is, for a snapshot of its tree.
    pub fn scope(&self) -> crate::supervisor::tree::Scope {
        crate::supervisor::tree::Scope {
            pgid: self.pgid,
            stage_pids: self.stage_pids.iter().flatten().copied().collect(),
            cgroup: self.cgroup_dir(),
        }
    }

    /// The run's cgroup directory, if it has one.
    pub fn cgroup_dir(&self) -> Option<std::path::PathBuf> {
        self.cgroup.as_ref().map(|c| c.dir().to_path_buf())
    }

    pub fn take_cgroup(&mut self) -> Option<RunCgroup> {
        self.cgroup.take()
    }

    /// A stage was reaped (or lost): it is no longer waited for.
    pub fn stage_done(&mut self, index: usize) {
        if let Some(slot) = self.stage_pids.get_mut(index) {
            *slot = None;
        }
    }

    /// Where the run is, after doing what the moment needs: starting the sweep of
    /// leftovers once the group is empty, SIGKILL when their grace is over, looking for
    /// the holders of still-open pipes. `left_group` is set to the number of processes
    /// being swept.
    pub fn phase(&mut self, stop_signal: Signal, grace: Duration, left_group: &mut usize) -> Phase {
        if !self.exits.is_empty() {
            return Phase::Stages;
        }
        if group_alive(self.pgid) {
            return Phase::Stragglers;
        }
        if let Some(sweep) = &mut self.sweep {
            let reaper = &self.reaper;
            sweep.pids.retain(|pid| {
                let running = procfs::running(*pid);
                if !running {
                    // A zombie re-parented to us (we are a child subreaper): collect it.
                    reaper.reap_escaped(*pid);
                }
                running
            });
            sweep.exits.retain(|(pid, _)| sweep.pids.contains(pid));
            let still =
                !sweep.pids.is_empty() || self.cgroup.as_ref().is_some_and(|c| c.populated());
            if still {
                if sweep.kill_at.is_some_and(|at| at <= Instant::now()) {
                    sweep.kill_at = None;
                    if let Some(cgroup) = &self.cgroup {
                        cgroup.kill();
                    }
                    for pid in &sweep.pids {
                        kill(*pid, Signal::SIGKILL);
                    }
                }
                let members = self.cgroup.as_ref().map_or(0, |c| c.members().len());
                *left_group = sweep.pids.len().max(members);
                return Phase::Leftovers;
            }
            self.sweep = None;
            self.holders_checked = false;
        }
        // The group is empty: what is left of the run left it.
        let mut left: Vec<u32> = match &self.cgroup {
            Some(cgroup) => cgroup.members(),
            None => Vec::new(),
        };
        if left.is_empty()
            && !self.drains.is_empty()
            && self.recheck_holders_at.is_none()
            && !self.holders_checked
        {
            if self.pipes.writers_remain() {
                // Only if the pipes stay open a while is anyone looked for (a walk of
                // every process's fds is not free, and a thousand jobs end at once).
                self.recheck_holders_at = Some(Instant::now() + HOLDERS_AFTER);
            } else {
                // No writer is left anywhere: the drains read what remains and reach
                // end-of-file by themselves, however long the runtime takes to get to
                // them.
                self.holders_checked = true;
            }
        }
        let recheck_due = self
            .recheck_holders_at
            .is_some_and(|at| at <= Instant::now());
        if left.is_empty() && !self.drains.is_empty() && recheck_due {
            // The pipes are still open: either data is on its way (EOF follows by
            // itself) or someone outside the group holds a write end.
            self.holders_checked = true;
            let (writers, spawning) = procfs::pipe_writers(&self.pipes.inodes);
            self.recheck_holders_at = spawning.then(|| Instant::now() + Duration::from_millis(20));
            left = writers
                .into_iter()
                .filter(|pid| Some(*pid) != super::super::watchdog::pid())
                .collect();
        }
        if !left.is_empty() {
            for pid in &left {
                kill(*pid, stop_signal);
            }
            let exits = if self.cgroup.is_some() {
                Vec::new()
            } else {
                left.iter()
                    .filter_map(|pid| Some((*pid, pidfd(*pid)?)))
                    .collect()
            };
            *left_group = left.len();
            self.sweep = Some(Sweep {
                pids: left,
                kill_at: Some(super::state::deadline_after(Instant::now(), grace)),
                exits,
            });
            return Phase::Leftovers;
        }
        *left_group = 0;
        if !self.drains.is_empty() {
            return Phase::Draining;
        }
        Phase::Over
    }

    /// Waits for the next thing that matters in `phase`. Cancel safe.
    pub async fn wake(&mut self, phase: Phase) -> Wake {
        match phase {
            Phase::Stages => {
                let recheck = self.killed;
                tokio::select! {
                    Some((index, exit)) = self.exits.next() => Wake::Exit(index, exit),
                    // Safety net: SIGKILL was sent, yet a stage's exit has not come; its
                    // pid may be gone (its status taken by someone else).
                    _ = tokio::time::sleep(STRAGGLER_RECHECK), if recheck => Wake::Changed,
                }
            }
            Phase::Stragglers => {
                tokio::select! {
                    _ = self.orphans.changed() => {}
                    _ = tokio::time::sleep(STRAGGLER_RECHECK) => {}
                }
                Wake::Changed
            }
            Phase::Leftovers => {
                let kill_at = self.sweep.as_ref().and_then(|s| s.kill_at);
                let sleep = tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now).into());
                let exits = self.sweep.as_mut().map(|s| &mut s.exits);
                tokio::select! {
                    _ = sleep, if kill_at.is_some() => {}
                    _ = cgroup_changed(self.cgroup.as_mut()) => {}
                    _ = any_readable(exits) => {}
                }
                Wake::Changed
            }
            Phase::Draining => {
                let recheck = self.recheck_holders_at;
                let sleep = tokio::time::sleep_until(recheck.unwrap_or_else(Instant::now).into());
                tokio::select! {
                    _ = self.drains.join_next() => {}
                    _ = sleep, if recheck.is_some() => {}
                }
                Wake::Changed
            }
            Phase::Over => std::future::pending().await,
        }
    }

    /// Every stage still waited for has no process left, not even a zombie.
    pub fn stages_vanished(&self) -> bool {
        self.stage_pids.iter().flatten().all(|pid| !exists(*pid))
    }

    /// Gives up on the stages still waited for (their exit statuses were lost).
    pub fn forget_stages(&mut self) -> Vec<usize> {
        self.exits = FuturesUnordered::new();
        let lost = self
            .stage_pids
            .iter()
            .enumerate()
            .filter(|(_, pid)| pid.is_some())
            .map(|(index, _)| index)
            .collect();
        self.stage_pids.iter_mut().for_each(|pid| *pid = None);
        lost
    }

    /// `signal` to the process group only (the `x` menu).
    pub fn signal_group(&self, signal: Signal) -> Result<(), nix::errno::Errno> {
        signal_group(self.pgid, signal)
    }

    /// The stop signal to the group and, once each, to every process of the run outside
    /// it (so a second SIGINT never reaches a group member: some programs take that as
    /// "force quit").
    pub fn stop_all(&self, signal: Signal) -> Result<(), nix::errno::Errno> {
        // A paused job must be able to act on its stop signal: thawed, and (as systemd
        // does) SIGCONT after the signal for processes stopped by SIGSTOP.
        if let Some(cgroup) = &self.cgroup {
            let _ = cgroup.freeze(false);
        }
        let result = signal_group(self.pgid, signal);
        let _ = signal_group(self.pgid, Signal::SIGCONT);
        for pid in self.outside_group() {
            kill(pid, signal);
        }
        if let Some(sweep) = &self.sweep {
            for pid in &sweep.pids {
                kill(*pid, signal);
            }
        }
        result
    }

    /// SIGKILL to every process of the run.
    pub fn kill_all(&mut self) -> Result<(), nix::errno::Errno> {
        self.killed = true;
        let result = signal_group(self.pgid, Signal::SIGKILL);
        match &self.cgroup {
            Some(cgroup) => cgroup.kill(),
            None => {
                for pid in self.outside_group() {
                    kill(pid, Signal::SIGKILL);
                }
            }
        }
        if let Some(sweep) = &mut self.sweep {
            sweep.kill_at = None;
            for pid in &sweep.pids {
                kill(*pid, Signal::SIGKILL);
            }
        }
        result
    }

    /// Processes of the run that are not in its group: the cgroup's other members, or
    /// (without a cgroup) the stages' descendants in other groups.
    fn outside_group(&self) -> Vec<u32> {
        let pgid = self.pgid;
        match &self.cgroup {
            Some(cgroup) => cgroup
                .members()
                .into_iter()
                .filter(|pid| procfs::stat_of(*pid).is_some_and(|s| s.pgid != pgid))
                .collect(),
            None => {
                let roots: Vec<u32> = self.stage_pids.iter().flatten().copied().collect();
                if roots.is_empty() {
                    return Vec::new();
                }
                let entries = procfs::scan();
                let mut tree = roots;
                let mut index = 0;
                while index < tree.len() {
                    let parent = tree[index];
                    tree.extend(entries.iter().filter(|e| e.ppid == parent).map(|e| e.pid));
                    index += 1;
                }
                tree.into_iter()
                    .filter(|pid| entries.iter().any(|e| e.pid == *pid && e.pgid != pgid))
                    .collect()
            }
        }
    }
}

fn exists(pid: u32) -> bool {
    // Signal 0: existence check (a zombie still exists until reaped).
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

fn kill(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// A pidfd for `pid` (readable once the process exits), if the kernel has them.
fn pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by pidfd_open and belongs to nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
    unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.ok()
}

async fn cgroup_changed(cgroup: Option<&mut RunCgroup>) {
    match cgroup {
        Some(cgroup) => cgroup.changed().await,
        None => std::future::pending().await,
    }
}

/// Resolves when any of the pidfds is readable (its process exited); never without any
/// (a pid whose pidfd could not be opened is found by the next look instead).
async fn any_readable(fds: Option<&mut Vec<(u32, AsyncFd<OwnedFd>)>>) {
    let Some(fds) = fds.filter(|fds| !fds.is_empty()) else {
        // No pidfd to wait on: look again a little later.
        return tokio::time::sleep(STRAGGLER_RECHECK).await;
    };
    let waits = fds.iter().map(|(_, fd)| Box::pin(fd.readable()));
    let _ = futures_util::future::select_all(waits).await;
}
