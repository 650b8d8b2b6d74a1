//! ~1 Hz resource sampling of each running job's whole process tree.
//!
//! Membership comes from a /proc walk (descendants of the stage pids, plus anything still
//! in the job's process group, which covers orphans re-parented to forkyard). The walk
//! reads every process on the machine, so it runs only when membership may have changed
//! (a job started or lost a stage, a known member vanished) and every few seconds to find
//! new grandchildren. In between, each known member's `/proc/PID/stat` stays open and is
//! re-read with one `pread`: CPU time and RSS of 20 idle jobs cost ~0.05 ms a tick, where
//! a sysinfo process refresh (open + read of stat, statm and status per pid) cost ~0.7 ms.
//! With no job running the sampler sleeps until one starts.
//!
//! sysinfo supplies the machine-wide side each tick (all cores' busy share, from
//! /proc/stat): the context that tells "parallelism 1.0 of 2" caused by the jobs from a
//! machine that something else keeps busy.
//!
//! CPU % is the change in cumulative CPU time over the wall time between two samples, so
//! the first sample reports none rather than a bogus 0 % or 100 %.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysinfo::{CpuRefreshKind, RefreshKind, System};
use tokio::sync::{Notify, mpsc};

use super::job::{LiveTree, LiveTrees};
use super::procfs::{self, ProcStat, StatReader};
use super::status::{Event, JobId, MachineSample, Sample};

/// Delay of the early sample after a job starts: long enough for `exec` to finish, short
/// enough to catch jobs that live well under a second.
const EARLY_SAMPLE: Duration = Duration::from_millis(150);
/// Walk /proc after this many ticks in which a job used CPU, to find new descendants
/// (forking takes CPU time, so a tree that used none has not changed)...
const RESCAN_EVERY: u32 = 5;
/// ...and after this many ticks in any case.
const RESCAN_AT_LEAST_EVERY: u32 = 120;

/// A process of a job's tree.
struct Member {
    reader: StatReader,
    /// The stage (pid) whose subtree it is in (None for an orphan that only shares the
    /// job's group).
    stage: Option<u32>,
    /// Its CPU wait at the last look: counted for the job once it is gone.
    last_wait: Duration,
}

impl Member {
    fn is_stage(&self) -> bool {
        self.stage == Some(self.reader.pid())
    }
}

/// One job's members, and what is known of those that are gone.
struct JobMembers {
    /// The live tree they were found from.
    tree: LiveTree,
    members: Vec<Member>,
    /// CPU wait of members that are gone and were not stages (a stage's exact figure
    /// comes from the reaper, in `tree.reaped_wait`).
    departed_wait: Duration,
    /// The run's cgroup files, open for the tree's life (None: no cgroup).
    cgroup: Option<super::contain::CgroupFiles>,
    /// At the last tick every member was there and none had run since the one before:
    /// nothing can have forked, so the cgroup's member list need not be read again.
    quiet: bool,
}

impl JobMembers {
    /// Replaces the members with these pids, keeping the open readers (and last figures)
    /// of those that stay; what left counts as departed.
    fn set(&mut self, found: Vec<(u32, Option<u32>)>) {
        let mut old: HashMap<u32, Member> = self
            .members
            .drain(..)
            .map(|m| (m.reader.pid(), m))
            .collect();
        self.members = found
            .into_iter()
            .filter_map(|(pid, stage)| match old.remove(&pid) {
                Some(member) => Some(Member { stage, ..member }),
                None => Some(Member {
                    reader: StatReader::open(pid)?,
                    stage,
                    last_wait: Duration::ZERO,
                }),
            })
            .collect();
        for gone in old.into_values() {
            self.depart(&gone);
        }
    }

    fn depart(&mut self, member: &Member) {
        if !member.is_stage() {
            self.departed_wait += member.last_wait;
        }
    }
}

/// What the sampler knows between ticks.
#[derive(Default)]
struct Membership {
    jobs: HashMap<JobId, JobMembers>,
    ticks_since_scan: u32,
    /// Ticks since the last walk in which some job's CPU time grew.
    busy_ticks_since_scan: u32,
    /// Members outside their job's group told to the watchdog, by pid and start time.
    reported: std::collections::HashSet<(u32, u64)>,
    /// Force a walk of /proc on the next tick.
    stale: bool,
}

impl Membership {
    /// Brings the members up to date for these trees. A run with a cgroup lists its
    /// members exactly and cheaply (`cgroup.procs`), every tick; the others come from a
    /// walk of /proc, which runs only when membership may have changed.
    fn refresh(&mut self, trees: &[(JobId, LiveTree)]) {
        self.jobs
            .retain(|id, _| trees.iter().any(|(live, _)| live == id));
        for (id, tree) in trees {
            let known = self.jobs.get(id).is_some_and(|j| j.tree.pgid == tree.pgid);
            if !known {
                self.jobs.insert(
                    *id,
                    JobMembers {
                        tree: tree.clone(),
                        members: Vec::new(),
                        departed_wait: Duration::ZERO,
                        cgroup: tree
                            .cgroup
                            .as_deref()
                            .and_then(super::contain::CgroupFiles::open),
                        quiet: false,
                    },
                );
                self.stale = true;
            }
        }
        let uncontained = trees
            .iter()
            .any(|(id, _)| self.jobs.get(id).is_none_or(|j| j.cgroup.is_none()));
        let walked = uncontained && self.walk_due(trees);
        let stale = self.stale;
        let entries = if walked { procfs::scan() } else { Vec::new() };
        for (id, tree) in trees {
            let Some(job) = self.jobs.get_mut(id) else {
                continue;
            };
            match &mut job.cgroup {
                Some(_) if job.quiet && !stale && job.tree.stage_pids == tree.stage_pids => {}
                Some(files) => {
                    let pids = files.members();
                    let same = pids.len() == job.members.len()
                        && pids
                            .iter()
                            .all(|p| job.members.iter().any(|m| m.reader.pid() == *p));
                    if !same || job.tree.stage_pids != tree.stage_pids {
                        job.set(attribute(tree, &pids));
                    }
                }
                None if walked => job.set(tree_members(tree, &entries)),
                None => {}
            }
            job.tree = tree.clone();
        }
        if walked {
            self.report_escaped(trees, &entries);
            self.ticks_since_scan = 0;
            self.busy_ticks_since_scan = 0;
            self.stale = false;
        } else if !uncontained {
            // Every job's cgroup was read this tick.
            self.stale = false;
        }
    }

    /// Whether the runs without a cgroup need a walk of /proc now.
    fn walk_due(&self, trees: &[(JobId, LiveTree)]) -> bool {
        self.stale
            || self.busy_ticks_since_scan >= RESCAN_EVERY
            || self.ticks_since_scan >= RESCAN_AT_LEAST_EVERY
            || trees.iter().any(|(id, tree)| {
                tree.cgroup.is_none()
                    && self
                        .jobs
                        .get(id)
                        .is_none_or(|j| j.tree.stage_pids != tree.stage_pids)
            })
    }

    /// Without a cgroup, the watchdog knows a job's processes by their group only: it is
    /// told of every member that left its group, so that even after forkyard's SIGKILL
    /// what the walks have seen is killed. (With a cgroup it kills the cgroups.)
    fn report_escaped(&mut self, trees: &[(JobId, LiveTree)], entries: &[ProcStat]) {
        if super::contain::containment().base().is_some() {
            return;
        }
        let mut now: std::collections::HashSet<(u32, u64)> = std::collections::HashSet::new();
        for (_, tree) in trees {
            for (pid, _) in tree_members(tree, entries) {
                if let Some(entry) = entries.iter().find(|e| e.pid == pid)
                    && entry.pgid != tree.pgid
                {
                    now.insert((pid, entry.start_ticks));
                }
            }
        }
        for &(pid, start) in now.difference(&self.reported) {
            super::watchdog::escaped(pid, start);
        }
        for &(pid, _) in self.reported.difference(&now) {
            super::watchdog::escaped_gone(pid);
        }
        self.reported = now;
    }

    /// Forces a walk on the next tick.
    fn invalidate(&mut self) {
        self.stale = true;
    }
}

/// When the sampler ticks: on whole multiples of `interval` after `phase`.
///
/// The TUI redraws its clocks on whole seconds after the same instant (the supervisor's
/// start), so with the default interval both timers expire in one timer-driver turn:
/// the process wakes once a second for both instead of twice.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub phase: Instant,
    pub interval: Duration,
}

impl Schedule {
    /// The first tick after `now`.
    fn next_after(&self, now: Instant) -> Instant {
        let interval = self.interval.max(Duration::from_millis(1));
        let since = now.saturating_duration_since(self.phase);
        let ticks = since.as_nanos() / interval.as_nanos() + 1;
        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        self.phase
            .checked_add(interval.saturating_mul(ticks))
            .unwrap_or(now + interval)
    }
}

pub async fn run(
    live: LiveTrees,
    events: mpsc::UnboundedSender<Event>,
    sample_soon: Arc<Notify>,
    schedule: Schedule,
    sampled: Option<Arc<Notify>>,
    desk: Arc<super::tree::Desk>,
) {
    let mut previous: HashMap<JobId, (Instant, Duration)> = HashMap::new();
    // What the consumer was last told: an unchanged sample (an idle job) is not sent
    // again, so a quiet run does not wake the UI every second. The consumer keeps the
    // last one, which stays true.
    let mut last_sent: HashMap<JobId, Sample> = HashMap::new();
    let mut last_machine: Option<i32> = None;
    let mut membership = Membership::default();
    let mut next_tick = Instant::now();
    let mut sampled_at: Option<Instant> = None;
    let mut buf = Vec::with_capacity(1024);
    let mut machine = Machine::new();
    let mut idle = true;
    loop {
        if idle {
            // Nothing runs: no timer at all until a job starts.
            sample_soon.notified().await;
            tokio::time::sleep(EARLY_SAMPLE).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until(next_tick.into()) => {}
                _ = sample_soon.notified() => {
                    tokio::time::sleep(EARLY_SAMPLE).await;
                    membership.invalidate();
                }
            }
        }
        // Skips ticks missed while busy rather than bunching them.
        let now = Instant::now();
        next_tick = schedule.next_after(now);
        // A tick right after an early sample would measure CPU % over a few
        // milliseconds: it only reports the tick (the consumer's clock frame).
        if sampled_at.is_some_and(|at| now.saturating_duration_since(at) < schedule.interval / 4) {
            // The watched tree is no rate but a view: it is taken even here (an action
            // on a process asks for it at once).
            desk.send_snapshot();
            if let Some(sampled) = &sampled {
                sampled.notify_one();
            }
            continue;
        }
        sampled_at = Some(now);
        let trees: Vec<(JobId, LiveTree)> = super::lock_live(&live)
            .iter()
            .map(|(id, tree)| (*id, tree.clone()))
            .collect();
        previous.retain(|id, _| trees.iter().any(|(live_id, _)| live_id == id));
        last_sent.retain(|id, _| previous.contains_key(id));
        idle = trees.is_empty();
        if idle {
            membership = Membership::default();
            continue;
        }
        membership.refresh(&trees);
        membership.ticks_since_scan += 1;
        let mut invalidate = false;
        let mut busy = false;
        // Sent together at the end of the tick, so the consumer wakes once for all.
        let mut outbox = Vec::new();
        if let Some(sample) = machine.sample() {
            // Shown in whole percent: a change below that is not news.
            let shown = sample.cpu_percent.round() as i32;
            if last_machine != Some(shown) {
                last_machine = Some(shown);
                outbox.push(Event::Machine(sample));
            }
        }
        let now = Instant::now();
        for (id, tree) in &trees {
            let Some(job) = membership.jobs.get_mut(id) else {
                continue;
            };
            let mut stats: Vec<(ProcStat, Option<u32>)> = Vec::with_capacity(job.members.len());
            let mut gone = Vec::new();
            for (index, member) in job.members.iter_mut().enumerate() {
                match member.reader.sample(&mut buf) {
                    Some(stat) => {
                        member.last_wait = stat.cpu_wait;
                        stats.push((stat, member.stage));
                    }
                    None => gone.push(index),
                }
            }
            job.quiet = gone.is_empty()
                && !job.members.is_empty()
                && job.members.iter().all(|m| !m.reader.ran());
            if !gone.is_empty() {
                // Its CPU moves to the reaped total; find the rest anew.
                invalidate = true;
                for index in gone.into_iter().rev() {
                    let member = job.members.swap_remove(index);
                    job.depart(&member);
                }
            }
            let cpu_time = tree.reaped_cpu + stats.iter().map(|(s, _)| s.cpu).sum::<Duration>();
            let cpu_wait = tree.reaped_wait
                + job.departed_wait
                + stats.iter().map(|(s, _)| s.cpu_wait).sum::<Duration>();
            let stage_cpu = tree
                .stage_pids
                .iter()
                .map(|&stage| {
                    let cpu = stats
                        .iter()
                        .filter(|(_, of)| *of == Some(stage))
                        .map(|(s, _)| s.cpu)
                        .sum::<Duration>();
                    (stage, cpu)
                })
                .collect();
            let cpu_percent = previous.get(id).and_then(|(at, cpu)| {
                let wall = now.saturating_duration_since(*at).as_secs_f64();
                (wall > 0.0)
                    .then(|| (cpu_time.saturating_sub(*cpu).as_secs_f64() / wall * 100.0) as f32)
            });
            busy |= previous.get(id).is_none_or(|(_, cpu)| cpu_time > *cpu);
            // More than 1 % of a core since the last tick: not quiet (see `stall`).
            let moved = previous.get(id).is_none_or(|(at, cpu)| {
                cpu_time.saturating_sub(*cpu).as_secs_f64()
                    > 0.01 * now.saturating_duration_since(*at).as_secs_f64()
            });
            if moved && let Some(tree) = super::lock_live(&live).get_mut(id) {
                tree.cpu_moved_at = Some(now);
            }
            previous.insert(*id, (now, cpu_time));
            let sample = Sample {
                cpu_percent,
                rss_bytes: stats.iter().map(|(s, _)| s.rss_bytes).sum(),
                cpu_time,
                cpu_wait,
                processes: stats.len(),
                paused: if job.cgroup.as_mut().is_some_and(|files| files.frozen()) {
                    Some(super::status::Pause::Frozen)
                } else if !stats.is_empty()
                    && stats
                        .iter()
                        .all(|(s, _)| matches!(s.state, 'T' | 't' | 'Z'))
                    && stats.iter().any(|(s, _)| s.state != 'Z')
                {
                    Some(super::status::Pause::Stopped)
                } else {
                    None
                },
                stage_cpu,
            };
            if last_sent.get(id) == Some(&sample) {
                continue;
            }
            last_sent.insert(*id, sample.clone());
            outbox.push(Event::Sample { id: *id, sample });
        }
        if busy {
            membership.busy_ticks_since_scan += 1;
        }
        if invalidate {
            membership.invalidate();
        }
        for event in outbox {
            if events.send(event).is_err() {
                return;
            }
        }
        // The watched job's tree, at the sampler's rate (only one job's, only when a
        // consumer looks).
        desk.send_snapshot();
        if let Some(sampled) = &sampled {
            sampled.notify_one();
        }
    }
}

/// Machine-wide CPU load through sysinfo.
struct Machine {
    system: Option<System>,
    /// Global CPU usage needs two refreshes: the first one only sets the baseline.
    primed: bool,
}

impl Machine {
    fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_usage()),
        )
        .ok();
        Machine {
            system,
            primed: false,
        }
    }

    fn sample(&mut self) -> Option<MachineSample> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_usage();
        if !std::mem::replace(&mut self.primed, true) {
            return None;
        }
        Some(MachineSample {
            cpu_percent: system.global_cpu_usage(),
        })
    }
}

fn attribute(tree: &LiveTree, pids: &[u32]) -> Vec<(u32, Option<u32>)> {
    super::tree::attribute(&tree.stage_pids, pids)
}

fn tree_members(tree: &LiveTree, entries: &[ProcStat]) -> Vec<(u32, Option<u32>)> {
    super::tree::tree_members(
        &super::tree::Scope {
            pgid: tree.pgid,
            stage_pids: tree.stage_pids.clone(),
            cgroup: None,
        },
        entries,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_the_grid_after_the_phase() {
        let phase = Instant::now();
        let schedule = Schedule {
            phase,
            interval: Duration::from_secs(1),
        };
        let ms = Duration::from_millis;
        // From anywhere inside a second, the next tick is the next whole second...
        assert_eq!(schedule.next_after(phase), phase + ms(1000));
        assert_eq!(schedule.next_after(phase + ms(1)), phase + ms(1000));
        assert_eq!(schedule.next_after(phase + ms(999)), phase + ms(1000));
        // ...strictly after `now`, and ticks missed while busy are skipped, not bunched.
        assert_eq!(schedule.next_after(phase + ms(1000)), phase + ms(2000));
        assert_eq!(schedule.next_after(phase + ms(4321)), phase + ms(5000));
        // A phase in the future (a clock set by someone else) still yields a later tick.
        let early = Schedule {
            phase: phase + ms(500),
            interval: ms(250),
        };
        assert!(early.next_after(phase) > phase);
    }
}
