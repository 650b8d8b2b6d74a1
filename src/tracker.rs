//! The consumer side of supervisor events: what the TUI and the headless runner both
//! know about each job (latest status, latest sample, peaks), and the run's figures.
//!
//! Applying events in order is the only way this changes, so both front ends agree.

use std::time::{Duration, Instant};

use crate::supervisor::{Event, JobId, JobStatus, Sample};

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub status: JobStatus,
    pub sample: Option<Sample>,
    /// Highest tree RSS seen by sampling, in bytes. (rusage's ru_maxrss is not used: on
    /// Linux it includes the parent's RSS at exec time, which would inflate every job.)
    pub peak_rss_bytes: u64,
}

impl JobRecord {
    /// CPU time over all runs: rusage of finished runs plus the sampled current run.
    pub fn cpu_time(&self) -> Duration {
        let current = if self.status.is_active() {
            self.sample.map(|s| s.cpu_time).unwrap_or_default()
        } else {
            Duration::ZERO
        };
        self.status.total_cpu + current
    }

    /// Wall time over all runs, including the current one.
    pub fn elapsed(&self, now: Instant) -> Duration {
        let current = if self.status.ended_at.is_none() {
            self.status.elapsed(now).unwrap_or_default()
        } else {
            Duration::ZERO
        };
        self.status.total_elapsed + current
    }

    /// Did the latest finished run fail? (exit != 0, signal, timeout, failed to start)
    pub fn failed(&self) -> bool {
        self.status.outcome().is_some_and(|o| !o.is_success())
    }
}

#[derive(Debug, Clone)]
pub struct Tracker {
    pub jobs: Vec<JobRecord>,
    pub started: Instant,
    /// When every job settled (None while something runs or will run).
    pub settled_at: Option<Instant>,
}

/// Figures of a run: how much happened at once, and how much CPU was used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub wall: Duration,
    pub sum_elapsed: Duration,
    pub sum_cpu: Duration,
    pub cores: usize,
    /// Σ elapsed / wall: jobs in flight on average (also the speedup over running them
    /// one after another).
    pub concurrency: f64,
    /// Σ CPU / wall: cores busy on average.
    pub parallelism: f64,
    /// parallelism / cores.
    pub efficiency: f64,
}

impl Tracker {
    pub fn new(initial: impl IntoIterator<Item = (String, JobStatus)>) -> Self {
        let jobs = initial
            .into_iter()
            .map(|(name, status)| JobRecord {
                name,
                status,
                sample: None,
                peak_rss_bytes: 0,
            })
            .collect();
        let mut tracker = Tracker {
            jobs,
            started: Instant::now(),
            settled_at: None,
        };
        tracker.update_settled(Instant::now());
        tracker
    }

    /// Applies one event; returns the job it concerned, if any.
    pub fn apply(&mut self, event: &Event) -> Option<JobId> {
        match event {
            Event::Job { id, status } => {
                let record = self.jobs.get_mut(*id)?;
                record.status = status.clone();
                self.update_settled(Instant::now());
                Some(*id)
            }
            Event::Sample { id, sample } => {
                let record = self.jobs.get_mut(*id)?;
                record.sample = Some(*sample);
                record.peak_rss_bytes = record.peak_rss_bytes.max(sample.rss_bytes);
                Some(*id)
            }
            Event::Notice { id, .. } => *id,
        }
    }

    pub fn all_settled(&self) -> bool {
        self.jobs.iter().all(|j| j.status.is_settled())
    }

    fn update_settled(&mut self, now: Instant) {
        if self.all_settled() {
            self.settled_at.get_or_insert(now);
        } else {
            self.settled_at = None;
        }
    }

    pub fn any_failed(&self) -> bool {
        self.jobs.iter().any(JobRecord::failed)
    }

    pub fn figures(&self, now: Instant) -> Figures {
        let end = self.settled_at.unwrap_or(now);
        let wall = end.saturating_duration_since(self.started);
        let sum_elapsed: Duration = self.jobs.iter().map(|j| j.elapsed(end)).sum();
        let sum_cpu: Duration = self.jobs.iter().map(JobRecord::cpu_time).sum();
        let cores = cores();
        let wall_s = wall.as_secs_f64();
        let ratio = |d: Duration| {
            if wall_s > 0.0 {
                d.as_secs_f64() / wall_s
            } else {
                0.0
            }
        };
        let parallelism = ratio(sum_cpu);
        Figures {
            wall,
            sum_elapsed,
            sum_cpu,
            cores,
            concurrency: ratio(sum_elapsed),
            parallelism,
            efficiency: parallelism / cores as f64,
        }
    }
}

/// CPUs this process may run on.
pub fn cores() -> usize {
    // Asked once: the answer reads cgroup files, and the UI asks every frame.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}
