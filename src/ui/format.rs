//! Short, fixed-width texts for table cells and status lines.

use std::time::Duration;

use ratatui::style::Color;

use crate::supervisor::{JobState, JobStatus, Outcome, PendingReason, StageState};
use crate::tracker::JobRecord;

/// Elapsed time of a running job: whole seconds, so the clock ticks once a second.
pub fn running_clock(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// A finished duration: hundredths below a minute.
pub fn finished_duration(d: Duration) -> String {
    crate::headless::summary::format_duration(d)
}

/// Time left on a countdown, rounded up: tenths below 10 s.
pub fn countdown(d: Duration) -> String {
    let tenths = d.as_millis().div_ceil(100);
    if tenths < 100 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        running_clock(Duration::from_secs(
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

/// Status glyph and colour of a job.
pub fn job_glyph(status: &JobStatus) -> (&'static str, Color) {
    match &status.state {
        JobState::Pending(PendingReason::Manual) => ("○", Color::DarkGray),
        JobState::Pending(PendingReason::Queued) => ("◌", Color::DarkGray),
        JobState::Pending(PendingReason::Backoff { .. }) => ("↻", Color::Yellow),
        JobState::Running => ("●", Color::Green),
        JobState::Stopping { .. } => ("◐", Color::Yellow),
        JobState::Finished(Outcome::Exited { code: 0 }) => ("✔", Color::Green),
        JobState::Finished(Outcome::TimedOut { .. }) => ("✘", Color::Magenta),
        JobState::Finished(_) => ("✘", Color::Red),
    }
}

pub fn stage_glyph(state: &StageState) -> (&'static str, Color) {
    match state {
        StageState::NotStarted => ("○", Color::DarkGray),
        StageState::Running => ("●", Color::Green),
        StageState::Exited(0) => ("✔", Color::Green),
        StageState::Exited(_) | StageState::Killed(_) | StageState::FailedToStart(_) => {
            ("✘", Color::Red)
        }
    }
}

/// The STATE column of a job at `now`.
pub fn job_state(status: &JobStatus, now: std::time::Instant) -> String {
    match &status.state {
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
            None if status.stragglers => "running (orphans)".into(),
            None => "running".into(),
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

/// The nearer of a pending `wait` deadline and the job's timeout, with its label.
pub fn running_deadline(status: &JobStatus) -> Option<(&'static str, std::time::Instant)> {
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
pub fn elapsed(record: &JobRecord, now: std::time::Instant) -> String {
    let status = &record.status;
    match (status.started_at, status.ended_at) {
        (None, _) => String::new(),
        (Some(start), None) => running_clock(now.saturating_duration_since(start)),
        (Some(start), Some(end)) => finished_duration(end.saturating_duration_since(start)),
    }
}

/// CPU column: percent of one core from the latest sample while the job runs.
pub fn cpu(record: &JobRecord) -> String {
    if !record.status.is_active() {
        return String::new();
    }
    match record.sample.as_ref().and_then(|s| s.cpu_percent) {
        Some(p) => format!("{p:.0}%"),
        None => String::new(),
    }
}

/// RSS column: current tree RSS while running, the peak afterwards.
pub fn rss_text(record: &JobRecord) -> String {
    if record.status.is_active() {
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

/// Truncates to `width` columns (one column per char), marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Pads or truncates to exactly `width` columns.
/// Built in one allocation: every visible cell goes through here every clock second.
pub fn cell(text: &str, width: usize, right: bool) -> String {
    let count = text.chars().count();
    if count > width {
        return fit(text, width);
    }
    let mut out = String::with_capacity(text.len() + (width - count));
    let pad = |out: &mut String| out.extend(std::iter::repeat_n(' ', width - count));
    if right {
        pad(&mut out);
        out.push_str(text);
    } else {
        out.push_str(text);
        pad(&mut out);
    }
    out
}

/// Short name of a pipeline stage for output tags: the program's file name.
pub fn stage_label(argv: &[String]) -> String {
    let program = argv.first().map(String::as_str).unwrap_or("?");
    program.rsplit('/').next().unwrap_or(program).to_string()
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
        assert_eq!(running_clock(Duration::from_millis(59_999)), "59s");
        assert_eq!(running_clock(Duration::from_secs(3723)), "1h02m");
        assert_eq!(rss(512 * 1024), "512K");
        assert_eq!(rss(3 * 1024 * 1024 / 2), "1.5M");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(cell("ab", 4, true), "  ab");
    }
}
