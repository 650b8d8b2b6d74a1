//! `--compare 1,cores,0`: run the same set once per parallelism limit and put the
//! figures side by side, so "sequential 10.0 s, parallel 1.0 s, speedup 9.9×" is measured,
//! not claimed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::{HeadlessOptions, PrintStyle, RunResult, run_with_output};
use crate::config::Config;
use crate::report::Report;
use crate::sys::cores;
use crate::tracker::Figures;
use crate::{fmt, say, stdio};

/// Parses `1,cores,0` (0 = unlimited).
pub fn parse_limits(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            if part.eq_ignore_ascii_case("cores") {
                Ok(cores())
            } else {
                part.parse::<usize>().map_err(|_| {
                    format!("--compare takes limits like 1,cores,0 (0 = unlimited), got {part:?}")
                })
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct CompareReport<'a> {
    runs: &'a [Report],
}

/// Runs the config once per limit; prints the comparison. Returns the exit code.
pub async fn run(config: &Config, limits: &[usize], report: Option<&Path>) -> anyhow::Result<i32> {
    let mut rows: Vec<(usize, Figures, bool)> = Vec::new();
    let mut reports = Vec::new();
    for (index, &limit) in limits.iter().enumerate() {
        say!(
            "run {}/{} with -j {} ...",
            index + 1,
            limits.len(),
            fmt::limit_meaning(limit)
        );
        let result = run_silently(config, limit).await?;
        let figures = result.tracker.figures(
            result
                .tracker
                .settled_at
                .unwrap_or_else(std::time::Instant::now),
        );
        let failed = result.exit_code != 0;
        say!(
            "  wall {}{}",
            fmt::duration(figures.wall),
            if failed { " (some jobs failed)" } else { "" }
        );
        rows.push((limit, figures, failed));
        reports.push(result.report);
        if result.exit_code > 128 {
            // Interrupted: stop comparing, show what was measured.
            return Ok(match stdio::print(&render(&rows)) {
                Ok(()) => result.exit_code,
                Err(err) => stdio::exit_status(&err, "the comparison"),
            });
        }
    }
    if let Err(err) = stdio::print(&render(&rows)) {
        return Ok(stdio::exit_status(&err, "the comparison"));
    }
    if let Some(path) = report {
        let json = serde_json::to_string_pretty(&CompareReport { runs: &reports })
            .context("cannot encode the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write report {}", path.display()))?;
    }
    Ok(if rows.iter().any(|(_, _, failed)| *failed) {
        1
    } else {
        0
    })
}

/// One run of the whole set under a parallelism limit, for its figures only: job output
/// is discarded and nothing is printed.
pub async fn run_silently(config: &Config, max_parallel: usize) -> anyhow::Result<RunResult> {
    let options = HeadlessOptions {
        max_parallel: Some(max_parallel),
        no_summary: true,
        quiet: true,
        ..HeadlessOptions::default()
    };
    let style = PrintStyle {
        color: false,
        sanitize: false,
        timestamps: false,
    };
    run_with_output(config, &options, std::io::sink(), style).await
}

/// The comparison table; speedup is relative to the first run's wall time.
pub fn render(rows: &[(usize, Figures, bool)]) -> String {
    let mut out = String::new();
    let Some((_, first, _)) = rows.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "\n{:<16} {:>9} {:>11} {:>9} {:>11} {:>11} {:>11} {:>8}",
        "-j", "WALL", "Σ JOB TIME", "Σ CPU", "Σ CPU WAIT", "CONCURRENCY", "PARALLELISM", "SPEEDUP"
    );
    for (limit, figures, failed) in rows {
        let speedup = if figures.wall.as_secs_f64() > 0.0 {
            first.wall.as_secs_f64() / figures.wall.as_secs_f64()
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>11} {:>9} {:>11} {:>11.2} {:>11.2} {:>7.2}×{}",
            fmt::limit_meaning(*limit),
            fmt::duration(figures.wall),
            fmt::duration(figures.sum_elapsed),
            fmt::duration(figures.sum_cpu),
            fmt::duration(figures.sum_cpu_wait),
            figures.concurrency,
            figures.parallelism,
            speedup,
            if *failed { "  (failures)" } else { "" }
        );
    }
    let _ = writeln!(out, "cores: {}", first.cores);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limits("1, 0"), Ok(vec![1, 0]));
        assert_eq!(parse_limits("cores"), Ok(vec![cores()]));
        assert!(parse_limits("1,x").is_err());
    }
}
