//! The summary table printed at the end of a run (headless, and after the TUI exits).

use std::fmt::Write;
use std::time::Instant;

use crate::fmt;
use crate::stdio::visible_inline;
use crate::tracker::Tracker;

/// Renders the summary. `dropped[i]` is job i's count of lines dropped from its
/// scrollback, shown as a DROPPED column; `None` (headless, which keeps no scrollback)
/// leaves the column out. Names and results (which may quote the config, e.g. a program
/// that was not found) are made visible: the table may go to a terminal.
pub fn render(tracker: &Tracker, dropped: Option<&[u64]>, now: Instant) -> String {
    let all_headers = [
        "JOB", "RESULT", "ELAPSED", "CPU", "CPU WAIT", "PEAK RSS", "RESTARTS", "DROPPED",
    ];
    let headers = &all_headers[..if dropped.is_some() { 8 } else { 7 }];
    let rows: Vec<Vec<String>> = tracker
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let mut row = vec![
                visible_inline(&job.name).into_owned(),
                visible_inline(&fmt::result_text(job)).into_owned(),
                fmt::duration(job.elapsed(now)),
                fmt::duration(job.cpu_time()),
                fmt::duration(job.cpu_wait()),
                if job.peak_rss_bytes == 0 {
                    "-".to_string()
                } else {
                    fmt::bytes(job.peak_rss_bytes)
                },
                job.status.restarts.to_string(),
            ];
            if let Some(dropped) = dropped {
                row.push(dropped.get(i).copied().unwrap_or(0).to_string());
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
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
    let _ = writeln!(
        out,
        "\nforkyard summary: {} jobs, {}",
        tracker.jobs.len(),
        fmt::result_counts(tracker.jobs.iter().map(|j| &j.status))
    );
    line(&mut out, headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    let _ = writeln!(out, "total: {}", fmt::figures_line(&tracker.figures(now)));
    out
}
