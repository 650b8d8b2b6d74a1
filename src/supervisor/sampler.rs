//! ~1 Hz resource sampling of each running job's whole process tree.
//!
//! Membership comes from a cheap /proc walk (descendants of the stage pids, plus anything
//! still in the job's process group, which covers orphans re-parented to forkyard);
//! sysinfo then refreshes only those pids. CPU % is the change in cumulative CPU time over
//! the wall time between two samples, so the first sample reports none rather than a
//! bogus 0 % or 100 %.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use std::sync::Arc;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use tokio::sync::{Notify, mpsc};

use super::job::{LiveTree, LiveTrees};
use super::procfs::{self, ProcEntry};
use super::status::{Event, JobId, Sample};

/// Delay of the early sample after a job starts: long enough for `exec` to finish, short
/// enough to catch jobs that live well under a second.
const EARLY_SAMPLE: Duration = Duration::from_millis(150);

pub async fn run(
    live: LiveTrees,
    events: mpsc::UnboundedSender<Event>,
    sample_soon: Arc<Notify>,
    interval: Duration,
) {
    let Ok(mut system) = System::new() else {
        return;
    };
    let mut previous: HashMap<JobId, (Instant, Duration)> = HashMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = sample_soon.notified() => tokio::time::sleep(EARLY_SAMPLE).await,
        }
        let trees: Vec<(JobId, LiveTree)> = super::lock_live(&live)
            .iter()
            .map(|(id, tree)| (*id, tree.clone()))
            .collect();
        previous.retain(|id, _| trees.iter().any(|(live_id, _)| live_id == id));
        if trees.is_empty() {
            continue;
        }
        let entries = procfs::scan();
        let members: Vec<(JobId, &LiveTree, Vec<Pid>)> = trees
            .iter()
            .map(|(id, tree)| (*id, tree, tree_members(tree, &entries)))
            .collect();
        let all: Vec<Pid> = members
            .iter()
            .flat_map(|(_, _, pids)| pids.iter().copied())
            .collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&all),
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        let now = Instant::now();
        for (id, tree, pids) in members {
            let mut rss_bytes = 0;
            let mut live_cpu_ms = 0;
            let mut processes = 0;
            for pid in &pids {
                if let Some(process) = system.process(*pid) {
                    rss_bytes += process.memory();
                    live_cpu_ms += process.accumulated_cpu_time();
                    processes += 1;
                }
            }
            let cpu_time = tree.reaped_cpu + Duration::from_millis(live_cpu_ms);
            let cpu_percent = previous.get(&id).and_then(|(at, cpu)| {
                let wall = now.saturating_duration_since(*at).as_secs_f64();
                (wall > 0.0)
                    .then(|| (cpu_time.saturating_sub(*cpu).as_secs_f64() / wall * 100.0) as f32)
            });
            previous.insert(id, (now, cpu_time));
            let sample = Sample {
                cpu_percent,
                rss_bytes,
                cpu_time,
                processes,
            };
            if events.send(Event::Sample { id, sample }).is_err() {
                return;
            }
        }
    }
}

/// Every live process of a job: the stages, their descendants, and its process group.
fn tree_members(tree: &LiveTree, entries: &[ProcEntry]) -> Vec<Pid> {
    let mut found: HashSet<u32> = tree.stage_pids.iter().copied().collect();
    found.extend(
        entries
            .iter()
            .filter(|e| e.pgid == tree.pgid)
            .map(|e| e.pid),
    );
    // Descendants that moved to another group are still found through their parents.
    let mut frontier: Vec<u32> = found.iter().copied().collect();
    while let Some(parent) = frontier.pop() {
        for entry in entries.iter().filter(|e| e.ppid == parent) {
            if found.insert(entry.pid) {
                frontier.push(entry.pid);
            }
        }
    }
    found.into_iter().map(Pid::from_u32).collect()
}
