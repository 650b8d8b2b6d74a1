//! The summary table printed at the end of a run (headless, and after the TUI exits).

use std::fmt::Write;
use std::time::Instant;

use crate::fmt;
use crate::tracker::Tracker;

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
                fmt::result_text(job),
                fmt::duration(job.elapsed(now)),
                fmt::duration(job.cpu_time()),
                if job.peak_rss_bytes == 0 {
                    "-".to_string()
                } else {
                    fmt::bytes(job.peak_rss_bytes)
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
    let _ = writeln!(out, "total: {}", fmt::figures_line(&tracker.figures(now)));
    out
}
