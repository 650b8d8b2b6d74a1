//! The consumer side of supervisor events: what the TUI and the headless runner both
//! know about each job (latest status, latest sample, peaks), and the run's figures.
//!
//! Applying events in order is the only way this changes, so both front ends agree.
//!
//! Each job also keeps a bounded [`History`] of its runs (start, end, CPU over time), the
//! material of the TUI's timeline: it is recorded here, from events, so a timeline is a
//! pure render of what was received.

use std::time::{Duration, Instant};

use crate::supervisor::{
    Event, JobId, JobStatus, MachineSample, Outcome, Sample, StageState, StageStatus,
};

/// CPU points kept per job (all runs together); beyond it they are thinned evenly.
pub const MAX_CPU_POINTS: usize = 1024;
/// Runs kept per job; beyond it the two closest neighbours are merged.
pub const MAX_RUNS: usize = 256;

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub status: JobStatus,
    pub sample: Option<Sample>,
    /// Highest tree RSS seen by sampling, in bytes. (rusage's ru_maxrss is not used: on
    /// Linux it includes the parent's RSS at exec time, which would inflate every job.)
    pub peak_rss_bytes: u64,
    /// Every run so far with its CPU over time (bounded).
    pub history: History,
    /// Time waiting for a CPU of the finished runs.
    pub cpu_wait_done: Duration,
    /// Of the current run, as last sampled.
    pub run_wait: Duration,
    /// Its live process tree, while a consumer watches it (`Controller::watch_tree`).
    pub tree: Option<std::sync::Arc<crate::supervisor::Tree>>,
    /// The host it runs on (`host = "user@host"`): its CPU and RSS are not sampled (the
    /// local process is only ssh), so samples are not recorded for it.
    pub host: Option<String>,
    /// A config reload removed it, or replaced it with a new version (a job of its own):
    /// its last status stays, and views leave its row out.
    pub retired: bool,
}

impl JobRecord {
    fn new(name: String, status: JobStatus) -> Self {
        JobRecord {
            name,
            status,
            sample: None,
            peak_rss_bytes: 0,
            history: History::default(),
            cpu_wait_done: Duration::ZERO,
            run_wait: Duration::ZERO,
            tree: None,
            host: None,
            retired: false,
        }
    }

    /// CPU time over all runs: rusage of finished runs plus the sampled current run.
    pub fn cpu_time(&self) -> Duration {
        let current = if self.status.is_active() {
            self.sample.as_ref().map(|s| s.cpu_time).unwrap_or_default()
        } else {
            Duration::ZERO
        };
        self.status.total_cpu + current
    }

    /// Time the job's processes spent runnable but waiting for a CPU, over all runs: the
    /// run-queue delay of each process's main thread (sampled while it lives, exact for
    /// the stages and orphans forkyard reaps).
    pub fn cpu_wait(&self) -> Duration {
        let current = if self.status.is_active() {
            self.run_wait
        } else {
            Duration::ZERO
        };
        self.cpu_wait_done + current
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

    /// Did the latest finished run fail? (exit != 0, signal, timeout, failed to start,
    /// a probe; a stop or a skip is not a failure.) A job a reload stopped (removed or
    /// replaced) did not fail: it was told to go.
    pub fn failed(&self) -> bool {
        !self.retired && self.status.outcome().is_some_and(Outcome::is_failure)
    }

    /// The name as a row shows it: with the host of a remote job, `web (user@host)`.
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        match &self.host {
            Some(host) => format!("{} ({host})", self.name).into(),
            None => self.name.as_str().into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tracker {
    pub jobs: Vec<JobRecord>,
    pub started: Instant,
    /// When every job settled (None while something runs or will run).
    pub settled_at: Option<Instant>,
    /// The latest machine-wide load (context for the figures).
    pub machine: Option<MachineSample>,
}

/// Figures of a run: how much happened at once, and how much CPU was used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub wall: Duration,
    pub sum_elapsed: Duration,
    pub sum_cpu: Duration,
    /// Σ time waiting for a CPU: where parallelism beyond the cores went.
    pub sum_cpu_wait: Duration,
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
            .map(|(name, status)| JobRecord::new(name, status))
            .collect();
        let mut tracker = Tracker {
            jobs,
            started: Instant::now(),
            settled_at: None,
            machine: None,
        };
        tracker.update_settled(Instant::now());
        tracker
    }

    /// A job added to the run (a config reload): its id, the next one.
    pub fn push_job(&mut self, name: String, status: JobStatus) -> JobId {
        self.jobs.push(JobRecord::new(name, status));
        self.update_settled(Instant::now());
        self.jobs.len() - 1
    }

    /// Applies one event; returns the job it concerned, if any.
    pub fn apply(&mut self, event: &Event) -> Option<JobId> {
        self.apply_at(event, Instant::now())
    }

    /// Applies one event received at `now` (samples carry no time of their own).
    pub fn apply_at(&mut self, event: &Event, now: Instant) -> Option<JobId> {
        match event {
            Event::Job { id, status } => {
                let record = self.jobs.get_mut(*id)?;
                record.history.on_status(status, now);
                let was_active = record.status.is_active();
                if was_active && !status.is_active() {
                    // The run ended: its figure is the larger of what was sampled and
                    // what the reaper read exactly (sampling misses the last second).
                    record.cpu_wait_done += record.run_wait.max(status.reaped_wait());
                    record.run_wait = Duration::ZERO;
                } else if !was_active && status.is_active() {
                    record.run_wait = Duration::ZERO;
                }
                record.status = status.clone();
                self.update_settled(now);
                Some(*id)
            }
            Event::Sample { id, sample } => {
                let record = self.jobs.get_mut(*id)?;
                if record.host.is_some() {
                    return Some(*id);
                }
                record.sample = Some(sample.clone());
                if record.status.is_active() {
                    record.run_wait = sample.cpu_wait;
                }
                record.peak_rss_bytes = record.peak_rss_bytes.max(sample.rss_bytes);
                // A sample that arrives after its run ended (or before the next one is
                // known) cannot be placed in time: only the current run's count.
                if record.status.is_active() {
                    record.history.on_sample(sample, &record.status.stages, now);
                }
                Some(*id)
            }
            Event::Machine(sample) => {
                self.machine = Some(*sample);
                None
            }
            Event::Notice(notice) => notice.job,
            Event::Tree(tree) => {
                let record = self.jobs.get_mut(tree.job)?;
                record.tree = Some(tree.clone());
                Some(tree.job)
            }
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
        let sum_cpu_wait: Duration = self.jobs.iter().map(JobRecord::cpu_wait).sum();
        let cores = crate::sys::cores();
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
            sum_cpu_wait,
            cores,
            concurrency: ratio(sum_elapsed),
            parallelism,
            efficiency: parallelism / cores as f64,
        }
    }
}

/// One run of a job, as recorded from events.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpan {
    pub start: Instant,
    /// None while it runs.
    pub end: Option<Instant>,
    /// Cumulative CPU of the run's process tree since `start`, at the times samples
    /// arrived; both increase.
    pub cpu: Vec<(Instant, Duration)>,
    /// CPU of the whole run (rusage of everything reaped), once it ended.
    pub final_cpu: Option<Duration>,
    /// Cumulative time the run's processes waited for a CPU since `start`, at the
    /// times samples arrived (like `cpu`).
    pub wait: Vec<(Instant, Duration)>,
    /// The exact figure of everything reaped, once it ended.
    pub final_wait: Option<Duration>,
    /// How it ended (None while it runs).
    pub outcome: Option<Outcome>,
    pub stages: Vec<StageSpan>,
}

/// One process of a pipeline run: stages start with the run and end on their own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageSpan {
    /// It was spawned (a stage that failed to start has no bar).
    pub started: bool,
    /// When its exit was seen.
    pub end: Option<Instant>,
    /// Its CPU (rusage, with its reaped descendants), once reaped.
    pub cpu: Option<Duration>,
    /// Cumulative CPU of the stage's subtree while it ran, at the times samples arrived
    /// (thinned with the run's points).
    pub samples: Vec<(Instant, Duration)>,
}

impl StageSpan {
    /// Cumulative CPU at each of `times` since the run's `start`, like
    /// [`RunSpan::cpu_at_each`]: from the samples, up to the rusage total at `end` once
    /// the stage has ended (`end` None: still running). None where nothing is known.
    pub fn cpu_at_each(
        &self,
        start: Instant,
        end: Option<Instant>,
        times: &[Instant],
    ) -> Vec<Option<Duration>> {
        if self.samples.is_empty() && self.cpu.is_none() {
            return vec![None; times.len()];
        }
        cumulative_at_each(start, &self.samples, end, self.cpu, times)
    }

    /// CPU use between the last two samples, in percent of one core, while it runs.
    pub fn cpu_percent(&self, start: Instant) -> Option<f64> {
        if self.end.is_some() {
            return None;
        }
        let n = self.samples.len();
        let (a, b) = match n {
            0 => return None,
            1 => ((start, Duration::ZERO), self.samples[0]),
            _ => (self.samples[n - 2], self.samples[n - 1]),
        };
        let wall = b.0.saturating_duration_since(a.0).as_secs_f64();
        (wall > 0.0).then(|| b.1.saturating_sub(a.1).as_secs_f64() / wall * 100.0)
    }
}

impl RunSpan {
    /// Cumulative CPU at `t` (clamped to the run), interpolated between the recorded
    /// points: the start (zero), the samples, and the end (the rusage total). After the
    /// last sample of a running run it goes on at the last known rate; None when no
    /// sample says anything yet.
    pub fn cpu_at(&self, t: Instant) -> Option<Duration> {
        self.cpu_at_each(&[t]).pop().flatten()
    }

    /// [`RunSpan::cpu_at`] for many instants in increasing order, in one pass over the
    /// points (a timeline row asks for every cell boundary).
    pub fn cpu_at_each(&self, times: &[Instant]) -> Vec<Option<Duration>> {
        cumulative_at_each(self.start, &self.cpu, self.end, self.final_cpu, times)
    }

    /// Cumulative time waiting for a CPU at each of `times`, like [`RunSpan::cpu_at_each`].
    pub fn wait_at_each(&self, times: &[Instant]) -> Vec<Option<Duration>> {
        if self.wait.is_empty() && self.final_wait.is_none() {
            return vec![None; times.len()];
        }
        cumulative_at_each(self.start, &self.wait, self.end, self.final_wait, times)
    }

    /// CPU used between `a` and `b` (within the run), in cores (1.0 = one core busy).
    pub fn cores_between(&self, a: Instant, b: Instant) -> Option<f64> {
        let secs = b.saturating_duration_since(a).as_secs_f64();
        let cpu = self.cpu_at_each(&[a, b]);
        let used = cpu.get(1).copied().flatten()?.saturating_sub(cpu[0]?);
        if secs <= 0.0 {
            return Some(0.0);
        }
        Some(used.as_secs_f64() / secs)
    }
}

/// The value at `t` on the straight line between two (time, cpu) points.
fn lerp(a: (Instant, Duration), b: (Instant, Duration), t: Instant) -> Duration {
    let span = b.0.saturating_duration_since(a.0).as_secs_f64();
    if span <= 0.0 {
        return b.1;
    }
    let f = (t.saturating_duration_since(a.0).as_secs_f64() / span).clamp(0.0, 1.0);
    a.1 + b.1.saturating_sub(a.1).mul_f64(f)
}

/// A job's runs, bounded: at most [`MAX_RUNS`] runs and about [`MAX_CPU_POINTS`] CPU
/// points. Thinning keeps cumulative points, so what remains is still exact at those
/// points, only coarser in between.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub runs: Vec<RunSpan>,
    /// `status.runs` of the latest run recorded.
    seen_runs: u32,
    /// `status.total_cpu` before the latest run: its own CPU is the difference.
    cpu_base: Duration,
    /// Samples closer than this to the previous point replace it (grows when thinning).
    min_gap: Duration,
}

impl History {
    fn on_status(&mut self, status: &JobStatus, now: Instant) {
        if status.runs > self.seen_runs
            && let Some(start) = status.started_at
        {
            // Every change is an event, so the previous run has ended; but never leave
            // one open if it somehow did not.
            if let Some(last) = self.runs.last_mut()
                && last.end.is_none()
            {
                last.end = Some(start.max(last.start));
            }
            // A run that failed to start arrives already finished and counted.
            self.cpu_base = if status.ended_at.is_some() {
                status.total_cpu.saturating_sub(status.reaped_cpu())
            } else {
                status.total_cpu
            };
            self.runs.push(RunSpan {
                start,
                end: None,
                cpu: Vec::new(),
                final_cpu: None,
                wait: Vec::new(),
                final_wait: None,
                outcome: None,
                stages: vec![StageSpan::default(); status.stages.len()],
            });
            self.seen_runs = status.runs;
            self.bound_runs();
        }
        let Some(run) = self.runs.last_mut() else {
            return;
        };
        if status.started_at != Some(run.start) {
            return;
        }
        for (span, stage) in run.stages.iter_mut().zip(&status.stages) {
            match &stage.state {
                StageState::Running => span.started = true,
                StageState::Exited(_) | StageState::Killed(_) => {
                    span.started = true;
                    if span.end.is_none() {
                        span.end = Some(status.ended_at.map_or(now, |end| end.min(now)));
                    }
                    span.cpu = Some(stage.cpu_time);
                }
                StageState::NotStarted | StageState::FailedToStart(_) => {}
            }
        }
        if let Some(end) = status.ended_at {
            run.end = Some(end.max(run.start));
            // Later events may add orphans' CPU to the total: keep it current.
            run.final_cpu = Some(status.total_cpu.saturating_sub(self.cpu_base));
            run.final_wait = Some(status.reaped_wait());
            run.outcome = status.outcome().cloned();
        }
    }

    /// Records a sample of the current run; the stages' pids tell their own figures apart.
    fn on_sample(&mut self, sample: &Sample, stages: &[StageStatus], now: Instant) {
        let min_gap = self.min_gap;
        let Some(run) = self.runs.last_mut().filter(|r| r.end.is_none()) else {
            return;
        };
        add_point(&mut run.cpu, run.start, now, sample.cpu_time, min_gap);
        add_point(&mut run.wait, run.start, now, sample.cpu_wait, min_gap);
        for (pid, cpu) in &sample.stage_cpu {
            let stage = stages.iter().position(|s| s.pid == Some(*pid));
            if let Some(span) = stage.and_then(|s| run.stages.get_mut(s))
                && span.end.is_none()
            {
                add_point(&mut span.samples, run.start, now, *cpu, min_gap);
            }
        }
        self.bound_points(now);
    }

    /// CPU points over all runs (their stages' included).
    pub fn points(&self) -> usize {
        self.runs
            .iter()
            .map(|r| {
                r.cpu.len() + r.wait.len() + r.stages.iter().map(|s| s.samples.len()).sum::<usize>()
            })
            .sum()
    }

    fn bound_points(&mut self, now: Instant) {
        if self.points() <= MAX_CPU_POINTS {
            return;
        }
        let Some(first) = self.runs.first() else {
            return;
        };
        // An even spacing that leaves a quarter of the budget (plus one point per run).
        let span = now.saturating_duration_since(first.start);
        let gap = (span / (MAX_CPU_POINTS as u32 / 4)).max(self.min_gap * 2);
        self.min_gap = gap.max(Duration::from_millis(1));
        for run in &mut self.runs {
            thin(&mut run.cpu, run.start, self.min_gap);
            thin(&mut run.wait, run.start, self.min_gap);
            for stage in &mut run.stages {
                thin(&mut stage.samples, run.start, self.min_gap);
            }
        }
    }

    fn bound_runs(&mut self) {
        while self.runs.len() > MAX_RUNS {
            // Merge the two finished neighbours with the smallest gap between them: at
            // that density they share a cell of any timeline anyway.
            let closest = (0..self.runs.len() - 2)
                .filter(|&i| self.runs[i].end.is_some() && self.runs[i + 1].end.is_some())
                .min_by_key(|&i| {
                    let end = self.runs[i].end.unwrap_or(self.runs[i].start);
                    self.runs[i + 1].start.saturating_duration_since(end)
                });
            let Some(i) = closest else {
                self.runs.remove(0);
                continue;
            };
            let later = self.runs.remove(i + 1);
            merge_runs(&mut self.runs[i], later);
        }
    }
}

/// Appends a cumulative-CPU point at `now` to `points` (which start at `start`). A point
/// closer than `min_gap` to the one before the last replaces the last one, so the latest
/// figure is always there without points piling up.
fn add_point(
    points: &mut Vec<(Instant, Duration)>,
    start: Instant,
    now: Instant,
    cpu: Duration,
    min_gap: Duration,
) {
    let last = points.last().map_or(Duration::ZERO, |p| p.1);
    // A process exiting between two samples can make the live total dip.
    let point = (now.max(start), cpu.max(last));
    let n = points.len();
    let prev_time = match n {
        0 => None,
        1 => Some(start),
        _ => Some(points[n - 2].0),
    };
    if n > 0 && prev_time.is_some_and(|t| point.0.saturating_duration_since(t) < min_gap) {
        points[n - 1] = point;
    } else {
        points.push(point);
    }
}

/// Keeps points at least `gap` apart (and always the last one).
fn thin(points: &mut Vec<(Instant, Duration)>, start: Instant, gap: Duration) {
    let Some(&last) = points.last() else {
        return;
    };
    let mut kept_at = start;
    let mut out = Vec::with_capacity(points.len() / 2 + 1);
    for &point in &points[..points.len() - 1] {
        if point.0.saturating_duration_since(kept_at) >= gap {
            out.push(point);
            kept_at = point.0;
        }
    }
    out.push(last);
    *points = out;
}

/// `run` followed by `later` become one run (the gap between them counts as idle).
/// Cumulative CPU at each of `times`, interpolated between the points: `start` (zero),
/// `samples`, and `end` (the rusage total, `final_cpu`) once known. After the last point
/// of something still running it goes on at the last known rate; None when no sample
/// says anything yet.
fn cumulative_at_each(
    start: Instant,
    samples: &[(Instant, Duration)],
    end: Option<Instant>,
    final_cpu: Option<Duration>,
    times: &[Instant],
) -> Vec<Option<Duration>> {
    let last_sampled = samples.last().map_or(Duration::ZERO, |p| p.1);
    let mut points = Vec::with_capacity(samples.len() + 2);
    points.push((start, Duration::ZERO));
    points.extend(samples.iter().copied());
    if let Some(end) = end {
        // Monotonic even if the rusage total came out below the last sample.
        points.push((end, final_cpu.unwrap_or(last_sampled).max(last_sampled)));
    }
    // The rate after the last point, for a running run (needs one sample).
    let rate = match (end, points.len()) {
        (None, n) if n >= 2 => {
            let (a, b) = (points[n - 2], points[n - 1]);
            let span = b.0.saturating_duration_since(a.0).as_secs_f64();
            Some(if span > 0.0 {
                b.1.saturating_sub(a.1).as_secs_f64() / span
            } else {
                0.0
            })
        }
        (None, _) => None,
        (Some(_), _) => Some(0.0),
    };
    let mut segment = 0;
    times
        .iter()
        .map(|&t| {
            let t = t.max(start);
            let t = end.map_or(t, |end| t.min(end));
            while segment + 1 < points.len() && points[segment + 1].0 < t {
                segment += 1;
            }
            match points.get(segment + 1) {
                Some(&next) => Some(lerp(points[segment], next, t)),
                None => {
                    let (at, cpu) = points[segment];
                    let ahead = t.saturating_duration_since(at).as_secs_f64();
                    let extra = Duration::try_from_secs_f64(rate? * ahead).unwrap_or_default();
                    Some(cpu + extra)
                }
            }
        })
        .collect()
}

fn merge_runs(run: &mut RunSpan, later: RunSpan) {
    let end = run.end.unwrap_or(run.start);
    let first_cpu = run
        .final_cpu
        .unwrap_or_else(|| run.cpu.last().map_or(Duration::ZERO, |p| p.1));
    run.cpu.push((end, first_cpu));
    run.cpu.push((later.start.max(end), first_cpu));
    run.cpu
        .extend(later.cpu.iter().map(|&(t, c)| (t, first_cpu + c)));
    let first_wait = run
        .final_wait
        .unwrap_or_else(|| run.wait.last().map_or(Duration::ZERO, |p| p.1));
    run.wait.push((end, first_wait));
    run.wait.push((later.start.max(end), first_wait));
    run.wait
        .extend(later.wait.iter().map(|&(t, c)| (t, first_wait + c)));
    run.final_wait = later.final_wait.map(|c| first_wait + c);
    run.end = later.end;
    run.final_cpu = later.final_cpu.map(|c| first_cpu + c);
    run.outcome = later.outcome;
    run.stages = later.stages;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{JobState, PendingReason};

    const S: Duration = Duration::from_secs(1);

    struct Feed {
        tracker: Tracker,
        status: JobStatus,
        t0: Instant,
    }

    impl Feed {
        fn new() -> Feed {
            let status = JobStatus::new(
                JobState::Pending(PendingReason::Queued),
                vec![vec!["a".into()]],
            );
            let tracker = Tracker::new([("job".to_string(), status.clone())]);
            Feed {
                t0: tracker.started,
                tracker,
                status,
            }
        }

        fn job(&mut self, at: Duration) {
            let event = Event::Job {
                id: 0,
                status: self.status.clone(),
            };
            self.tracker.apply_at(&event, self.t0 + at);
        }

        fn start(&mut self, at: Duration) {
            self.status.state = JobState::Running;
            self.status.started_at = Some(self.t0 + at);
            self.status.ended_at = None;
            self.status.runs += 1;
            self.status.stages[0].state = StageState::Running;
            self.job(at);
        }

        fn sample(&mut self, at: Duration, cpu: Duration) {
            let event = Event::Sample {
                id: 0,
                sample: Sample {
                    cpu_percent: None,
                    rss_bytes: 0,
                    cpu_time: cpu,
                    cpu_wait: std::time::Duration::ZERO,
                    paused: None,
                    processes: 1,
                    stage_cpu: Vec::new(),
                },
            };
            self.tracker.apply_at(&event, self.t0 + at);
        }

        fn finish(&mut self, at: Duration, cpu: Duration) {
            let start = self.status.started_at.expect("started");
            self.status.ended_at = Some(self.t0 + at);
            self.status.total_elapsed += self.t0 + at - start;
            self.status.stages[0].state = StageState::Exited(0);
            self.status.stages[0].cpu_time = cpu;
            self.status.total_cpu += cpu;
            self.status.state = JobState::Finished(Outcome::Exited { code: 0 });
            self.job(at);
        }

        fn runs(&self) -> &[RunSpan] {
            &self.tracker.jobs[0].history.runs
        }
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn cpu_is_interpolated_between_samples_and_extrapolated_while_running() {
        let mut f = Feed::new();
        f.start(Duration::ZERO);
        f.sample(S, S / 2);
        f.sample(2 * S, 3 * S / 2);
        let run = &f.runs()[0];
        assert!(close(run.cpu_at(f.t0 + S / 2).unwrap(), S / 4));
        assert!(close(run.cpu_at(f.t0 + 3 * S / 2).unwrap(), S));
        // Past the last sample: at the last rate (one core).
        assert!(close(run.cpu_at(f.t0 + 3 * S).unwrap(), 5 * S / 2));
        f.finish(5 * S / 2, 8 * S / 5);
        let run = &f.runs()[0];
        assert_eq!(run.end, Some(f.t0 + 5 * S / 2));
        assert_eq!(run.final_cpu, Some(8 * S / 5));
        // The last stretch comes from the rusage total.
        assert!(close(run.cpu_at(f.t0 + 9 * S / 4).unwrap(), 31 * S / 20));
        assert!(close(run.cpu_at(f.t0 + 10 * S).unwrap(), 8 * S / 5));
    }

    #[test]
    fn an_unsampled_run_is_shaded_by_its_average_and_late_samples_are_ignored() {
        let mut f = Feed::new();
        f.start(Duration::ZERO);
        // No sample yet: nothing is known.
        assert_eq!(f.runs()[0].cpu_at(f.t0 + S / 10), None);
        f.finish(S / 5, S / 10);
        // A sample that was on its way when the run ended has no place in time.
        f.sample(S / 4, S);
        let run = &f.runs()[0];
        assert!(run.cpu.is_empty());
        let cores = run.cores_between(f.t0, f.t0 + S / 10).unwrap();
        assert!((cores - 0.5).abs() < 1e-6, "{cores}");
    }

    #[test]
    fn restarts_are_separate_runs_with_their_own_cpu() {
        let mut f = Feed::new();
        f.start(Duration::ZERO);
        f.finish(S, S / 2);
        f.status.state = JobState::Pending(PendingReason::Backoff {
            until: f.t0 + 2 * S,
        });
        f.job(S);
        f.start(2 * S);
        f.sample(3 * S, S / 4);
        f.finish(4 * S, S / 2);
        let runs = f.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].final_cpu, Some(S / 2));
        assert_eq!(runs[1].start, f.t0 + 2 * S);
        // The second run's own CPU, not the job's total.
        assert_eq!(runs[1].final_cpu, Some(S / 2));
        assert_eq!(runs[1].cpu, vec![(f.t0 + 3 * S, S / 4)]);
    }

    #[test]
    fn history_stays_bounded_and_exact_at_the_points_it_keeps() {
        let mut f = Feed::new();
        f.start(Duration::ZERO);
        // Two hours at half a core, sampled every second.
        for s in 1..=7200u32 {
            f.sample(s * S, s * S / 2);
            assert!(f.tracker.jobs[0].history.points() <= MAX_CPU_POINTS);
        }
        let run = &f.runs()[0];
        assert!(run.cpu.len() > 100, "{}", run.cpu.len());
        assert_eq!(run.cpu.last(), Some(&(f.t0 + 7200 * S, 3600 * S)));
        // A steady rate survives thinning exactly.
        for at in [10u32, 1000, 3333, 7100] {
            assert!(close(run.cpu_at(f.t0 + at * S).unwrap(), at * S / 2));
        }

        // A crash loop: runs are merged beyond the limit, the CPU total is kept.
        let mut f = Feed::new();
        for i in 0..(MAX_RUNS as u32 + 100) {
            f.start(i * 2 * S);
            f.finish(i * 2 * S + S, S / 10);
        }
        let runs = f.runs();
        assert!(runs.len() <= MAX_RUNS);
        let total: Duration = runs.iter().filter_map(|r| r.final_cpu).sum();
        assert!(close(total, (MAX_RUNS as u32 + 100) * S / 10), "{total:?}");
        assert_eq!(runs[0].start, f.t0);
        assert_eq!(runs.last().and_then(|r| r.end), f.status.ended_at);
    }
}
