//! The table printed at the end of a headless run.

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::supervisor::{JobState, PendingReason};
use crate::tracker::{Figures, JobRecord, Tracker};

/// Result column text of one job.
pub fn result_text(record: &JobRecord) -> String {
    match &record.status.state {
        JobState::Finished(outcome) => outcome.describe(),
        JobState::Pending(PendingReason::Manual) => "not started".into(),
        JobState::Pending(_) => "pending".into(),
        JobState::Running => "running".into(),
        JobState::Stopping { .. } => "stopping".into(),
    }
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

pub fn format_bytes(bytes: u64) -> String {
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

/// The figures line: wall, Σ job time, Σ CPU, concurrency, parallelism.
pub fn figures_line(figures: &Figures) -> String {
    format!(
        "wall {} · Σ job time {} · Σ CPU {} · concurrency {:.2} · parallelism {:.2} of {} cores ({:.0}% efficiency)",
        format_duration(figures.wall),
        format_duration(figures.sum_elapsed),
        format_duration(figures.sum_cpu),
        figures.concurrency,
        figures.parallelism,
        figures.cores,
        figures.efficiency * 100.0,
    )
}

/// Renders the summary; `dropped[i]` is job i's count of lines dropped from its buffer.
pub fn render(tracker: &Tracker, dropped: &[u64], now: Instant) -> String {
    let headers = [
        "JOB", "RESULT", "ELAPSED", "CPU", "PEAK RSS", "RESTARTS", "DROPPED",
    ];
    let rows: Vec<[String; 7]> = tracker
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            [
                job.name.clone(),
                result_text(job),
                format_duration(job.elapsed(now)),
                format_duration(job.cpu_time()),
                if job.peak_rss_bytes == 0 {
                    "-".to_string()
                } else {
                    format_bytes(job.peak_rss_bytes)
                },
                job.status.restarts.to_string(),
                dropped.get(i).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            // Names and results left-aligned, figures right-aligned.
            if i < 2 {
                let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
            } else {
                let _ = write!(text, "{cell:>w$}  ", w = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    let ok = tracker
        .jobs
        .iter()
        .filter(|j| j.status.outcome().is_some_and(|o| o.is_success()))
        .count();
    let failed = tracker.jobs.iter().filter(|j| j.failed()).count();
    let _ = writeln!(
        out,
        "\nforkyard summary: {} jobs, {ok} succeeded, {failed} failed",
        tracker.jobs.len()
    );
    line(&mut out, &headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    let _ = writeln!(out, "total: {}", figures_line(&tracker.figures(now)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_and_durations() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
