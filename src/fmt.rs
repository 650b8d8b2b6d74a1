//! One vocabulary for what forkyard shows: durations, sizes, states, results and `-j`
//! labels. The TUI, the headless summary, `--compare` and the report all say things the
//! same way because they all say them through here.

use std::time::{Duration, Instant};

use crate::supervisor::{
    JobState, JobStatus, Outcome, PendingReason, Readiness, ResultClass, StageState, WaitingFor,
};
use crate::tracker::{Figures, JobRecord};

/// Result column text of one job.
pub fn result_text(record: &JobRecord) -> String {
    match &record.status.state {
        JobState::Finished(outcome) => outcome.describe(),
        JobState::Pending(_) if record.status.is_waiting() => {
            format!("not started ({})", waiting_text(&record.status.waiting_for))
        }
        JobState::Pending(PendingReason::Manual) => "not started".into(),
        JobState::Pending(_) => "pending".into(),
        JobState::Running => "running".into(),
        JobState::Stopping { .. } => "stopping".into(),
    }
}

/// A duration as a config writes it and `forkyard check` shows it: `3s`, `1s 500ms`,
/// `1m 30s` (humantime syntax, which the config parser reads back).
pub fn config_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A short duration for notices and markers: `400ms`, `3.2s`, `1m05s`.
pub fn brief(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        clock(d)
    }
}

/// `waiting for db (ready), migrate (succeeded)`.
pub fn waiting_text(waiting: &[WaitingFor]) -> String {
    let list: Vec<String> = waiting
        .iter()
        .map(|w| format!("{} ({})", w.name, w.condition.as_str()))
        .collect();
    format!("waiting for {}", list.join(", "))
}

/// The counts of a run's results, for the summary line: `3 succeeded, 1 failed (1 timed
/// out), 2 stopped, 1 skipped` (stopped and skipped only when there are some).
pub fn result_counts<'a>(statuses: impl IntoIterator<Item = &'a JobStatus>) -> String {
    let (mut ok, mut failed, mut timed_out, mut stopped, mut skipped) = (0, 0, 0, 0, 0);
    for status in statuses {
        match status.result() {
            Some(ResultClass::Succeeded) => ok += 1,
            Some(ResultClass::Failed) => failed += 1,
            Some(ResultClass::TimedOut) => {
                failed += 1;
                timed_out += 1;
            }
            Some(ResultClass::Stopped) => stopped += 1,
            Some(ResultClass::Skipped) => skipped += 1,
            None => {}
        }
    }
    let mut out = format!("{ok} succeeded, {failed} failed");
    if timed_out > 0 {
        out.push_str(&format!(" ({timed_out} timed out)"));
    }
    if stopped > 0 {
        out.push_str(&format!(", {stopped} stopped"));
    }
    if skipped > 0 {
        out.push_str(&format!(", {skipped} skipped"));
    }
    out
}

/// A finished duration: hundredths below a minute.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The figures line: wall, Σ job time, Σ CPU, Σ CPU wait, concurrency, parallelism.
pub fn figures_line(figures: &Figures) -> String {
    format!(
        "wall {} · Σ job time {} · Σ CPU {} · Σ CPU wait {} · concurrency {:.2} · parallelism {:.2} of {} cores ({:.0}% efficiency)",
        duration(figures.wall),
        duration(figures.sum_elapsed),
        duration(figures.sum_cpu),
        duration(figures.sum_cpu_wait),
        figures.concurrency,
        figures.parallelism,
        figures.cores,
        figures.efficiency * 100.0,
    )
}

/// Elapsed time of a running job: whole seconds, so the clock ticks once a second.
pub fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Time left on a countdown, rounded up: tenths below 10 s.
pub fn countdown(d: Duration) -> String {
    let tenths = d.as_millis().div_ceil(100);
    if tenths < 100 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        clock(Duration::from_secs(
            d.as_secs() + u64::from(d.subsec_nanos() > 0),
        ))
    }
}

/// Compact memory size: `512K`, `12.3M`, `1.2G`.
pub fn rss(bytes: u64) -> String {
    const K: f64 = 1024.0;
    let b = bytes as f64;
    if b < K * K {
        format!("{:.0}K", b / K)
    } else if b < K * K * K {
        format!("{:.1}M", b / (K * K))
    } else {
        format!("{:.1}G", b / (K * K * K))
    }
}

/// `-j` as shown: `1`, `4`, `unlimited` (`∞` when compact).
pub fn limit_label(limit: usize, compact: bool) -> String {
    match limit {
        0 if compact => "∞".into(),
        0 => "unlimited".into(),
        n => n.to_string(),
    }
}

/// `-j` with what it means, for `--compare`'s rows: `1 (sequential)`, `4`, `unlimited`.
pub fn limit_meaning(limit: usize) -> String {
    match limit {
        1 => "1 (sequential)".into(),
        n => limit_label(n, false),
    }
}

/// The STATE column of a job at `now`.
pub fn job_state(status: &JobStatus, now: Instant) -> String {
    match &status.state {
        JobState::Pending(_) if status.is_waiting() => waiting_text(&status.waiting_for),
        JobState::Pending(PendingReason::Manual) => "not started".into(),
        JobState::Pending(PendingReason::Queued) => "queued".into(),
        JobState::Pending(PendingReason::Backoff { until }) => {
            format!(
                "restart in {}",
                countdown(until.saturating_duration_since(now))
            )
        }
        JobState::Running => match running_deadline(status) {
            Some((label, at)) => {
                format!("{label} {}", countdown(at.saturating_duration_since(now)))
            }
            None if status.left_group > 0 => {
                format!("stopping {} that left its group", status.left_group)
            }
            None if status.quiet_since.is_some() => format!(
                "quiet {}",
                clock(now.saturating_duration_since(status.quiet_since.unwrap_or(now)))
            ),
            None if status.stragglers => "running (orphans)".into(),
            None if status.stopping_after_dependents => "stopping after its dependents".into(),
            None => match status.readiness {
                Readiness::Immediate => "running".into(),
                Readiness::Starting => "starting".into(),
                Readiness::Ready { after } => format!("ready ({})", brief(after)),
            },
        },
        JobState::Stopping {
            signal, kill_at, ..
        } => {
            if *signal == nix::sys::signal::Signal::SIGKILL || *kill_at <= now {
                "killing".into()
            } else {
                format!(
                    "stopping {}",
                    countdown(kill_at.saturating_duration_since(now))
                )
            }
        }
        JobState::Finished(outcome) => outcome_state(outcome),
    }
}

/// The STATE column of a job row: [`job_state`], or `paused (frozen)` / `paused
/// (SIGSTOP)` for a running job whose latest sample found it paused.
pub fn record_state(record: &JobRecord, now: Instant) -> String {
    let paused = record
        .sample
        .as_ref()
        .and_then(|s| s.paused)
        .filter(|_| matches!(record.status.state, JobState::Running));
    match paused {
        Some(crate::supervisor::Pause::Frozen) => "paused (frozen)".into(),
        Some(crate::supervisor::Pause::Stopped) => "paused (SIGSTOP)".into(),
        None => job_state(&record.status, now),
    }
}

/// The nearer of a pending `wait` deadline and the job's timeout, with its label.
pub fn running_deadline(status: &JobStatus) -> Option<(&'static str, Instant)> {
    match (status.wait_deadline, status.timeout_at) {
        (Some(wait), Some(timeout)) if timeout < wait => Some(("timeout", timeout)),
        (Some(wait), _) => Some(("wait", wait)),
        (None, Some(timeout)) => Some(("timeout", timeout)),
        (None, None) => None,
    }
}

pub fn outcome_state(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited { code } => format!("exited {code}"),
        Outcome::Killed { signal } => signal.as_str().to_string(),
        Outcome::TimedOut { .. } => "timed out".into(),
        Outcome::FailedToStart { .. } => "failed to start".into(),
        Outcome::Stopped { .. } => "stopped".into(),
        Outcome::Unhealthy { .. } => "unhealthy".into(),
        Outcome::Skipped { .. } => "skipped".into(),
    }
}

/// The EXIT column: code or signal of a finished job.
pub fn exit_text(status: &JobStatus) -> String {
    match status.outcome() {
        Some(outcome) => match (outcome.exit_code(), outcome.signal()) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => signal.as_str().to_string(),
            (None, None) => "—".into(),
        },
        None => String::new(),
    }
}

pub fn stage_state(state: &StageState) -> String {
    match state {
        StageState::NotStarted => "not started".into(),
        StageState::Running => "running".into(),
        StageState::Exited(code) => format!("exited {code}"),
        StageState::Killed(signal) => signal.as_str().into(),
        StageState::FailedToStart(_) => "failed to start".into(),
    }
}

pub fn stage_exit(state: &StageState) -> String {
    match state {
        StageState::Exited(code) => code.to_string(),
        StageState::Killed(signal) => signal.as_str().into(),
        StageState::FailedToStart(_) => "—".into(),
        StageState::NotStarted | StageState::Running => String::new(),
    }
}

/// ELAPSED column: a live clock while running, the final time once finished.
pub fn elapsed(record: &JobRecord, now: Instant) -> String {
    let status = &record.status;
    match (status.started_at, status.ended_at) {
        (None, _) => String::new(),
        (Some(start), None) => clock(now.saturating_duration_since(start)),
        (Some(start), Some(end)) => duration(end.saturating_duration_since(start)),
    }
}

/// CPU column: percent of one core from the latest sample while the job runs.
pub fn cpu(record: &JobRecord) -> String {
    if !record.status.is_active() || record.host.is_some() {
        return String::new();
    }
    match record.sample.as_ref().and_then(|s| s.cpu_percent) {
        Some(p) => format!("{p:.0}%"),
        None => String::new(),
    }
}

/// RSS column: current tree RSS while running, the peak afterwards.
pub fn rss_text(record: &JobRecord) -> String {
    // A remote job's processes are on its host: not sampled.
    if record.host.is_some() {
        "remote".into()
    } else if record.status.is_active() {
        record
            .sample
            .as_ref()
            .map(|s| rss(s.rss_bytes))
            .unwrap_or_default()
    } else if record.peak_rss_bytes > 0 {
        rss(record.peak_rss_bytes)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_round_up_to_tenths() {
        assert_eq!(countdown(Duration::from_millis(2010)), "2.1s");
        assert_eq!(countdown(Duration::from_millis(2000)), "2.0s");
        assert_eq!(countdown(Duration::ZERO), "0.0s");
        assert_eq!(countdown(Duration::from_millis(12_300)), "13s");
        assert_eq!(countdown(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn clocks_and_sizes() {
        assert_eq!(clock(Duration::from_millis(59_999)), "59s");
        assert_eq!(clock(Duration::from_secs(3723)), "1h02m");
        assert_eq!(rss(512 * 1024), "512K");
        assert_eq!(rss(3 * 1024 * 1024 / 2), "1.5M");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(config_duration(Duration::from_millis(1500)), "1s 500ms");
    }

    #[test]
    fn limits() {
        assert_eq!(limit_label(0, true), "∞");
        assert_eq!(limit_meaning(1), "1 (sequential)");
        assert_eq!(limit_meaning(0), "unlimited");
    }
}
