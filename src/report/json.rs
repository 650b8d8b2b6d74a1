//! `--report FILE`: the run as JSON, for scripts and CI dashboards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::output::Stream;
use crate::supervisor::{JobState, PendingReason, StageState};
use crate::tracker::Tracker;

#[derive(Debug, Serialize)]
pub struct Report {
    pub wall_ms: u64,
    pub cores: usize,
    pub max_parallel: usize,
    pub sum_elapsed_ms: u64,
    pub sum_cpu_ms: u64,
    /// Σ time the jobs' processes were runnable but waiting for a CPU.
    pub sum_cpu_wait_ms: u64,
    pub concurrency: f64,
    pub parallelism: f64,
    pub efficiency: f64,
    pub jobs: Vec<JobReport>,
}

#[derive(Debug, Serialize)]
pub struct JobReport {
    pub name: String,
    /// How it ended: exited | killed | timed_out | failed_to_start | stopped | unhealthy |
    /// skipped, or not_started | running
    pub result: String,
    /// What that amounts to: succeeded | failed | timed_out | stopped | skipped, or
    /// not_started | running. Only failed and timed_out make the run fail.
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// Why it failed to start, was unhealthy, was skipped, or still waits.
    pub reason: Option<String>,
    /// How long its last run took to become ready (its `ready` probe passed).
    pub ready_ms: Option<u64>,
    pub elapsed_ms: u64,
    pub cpu_ms: u64,
    /// Time the job's processes were runnable but waiting for a CPU.
    pub cpu_wait_ms: u64,
    pub max_rss_kb: u64,
    pub restarts: u32,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub lines_dropped: u64,
    pub stages: Vec<StageReport>,
    /// The job's process tree at the moment forkyard had to stop it (a timeout, a
    /// stall, a failed liveness check, SIGKILL after its grace): what hung.
    pub tree_at_stop: Option<TreeReport>,
}

#[derive(Debug, Serialize)]
pub struct TreeReport {
    /// timed out | stalled | not alive | outlived its grace period
    pub why: String,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    /// Its depth in the tree (0: a stage, or a process whose parent is not the job's).
    pub depth: usize,
    /// running | sleeping | disk wait | stopped | traced | zombie | idle
    pub state: String,
    /// The system call it was in, else the kernel function it slept in.
    pub waits_on: Option<String>,
    pub cpu_ms: u64,
    pub cpu_wait_ms: u64,
    pub rss_kb: u64,
    pub cmdline: String,
    pub left_group: bool,
    /// It was still there when the grace period ran out (SIGKILL).
    pub outlived_grace: bool,
}

fn tree_report(postmortem: &crate::supervisor::tree::Postmortem) -> TreeReport {
    TreeReport {
        why: postmortem.why.clone(),
        processes: postmortem
            .tree
            .rows
            .iter()
            .map(|row| ProcessReport {
                pid: row.pid,
                ppid: row.ppid,
                depth: row.depth,
                state: row.state.words().to_string(),
                waits_on: row.syscall.clone().or_else(|| row.wchan.clone()),
                cpu_ms: row.cpu.as_millis() as u64,
                cpu_wait_ms: row.cpu_wait.as_millis() as u64,
                rss_kb: row.rss_bytes / 1024,
                cmdline: row.cmdline.clone(),
                left_group: row.left_group,
                outlived_grace: row.outlived_grace,
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
}

/// Per job: (stdout bytes, stderr bytes, lines dropped), read from its buffer.
pub type OutputCounts = (u64, u64, u64);

pub fn build(
    tracker: &Tracker,
    counts: &[OutputCounts],
    max_parallel: usize,
    now: Instant,
) -> Report {
    let figures = tracker.figures(now);
    let ms = |d: Duration| d.as_millis() as u64;
    let jobs = tracker
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let (stdout_bytes, stderr_bytes, lines_dropped) =
                counts.get(i).copied().unwrap_or_default();
            let (result, exit_code, signal, reason) = match &job.status.state {
                JobState::Finished(outcome) => (
                    outcome.kind().to_string(),
                    outcome.exit_code(),
                    outcome.signal().map(|s| s.as_str().to_string()),
                    outcome.reason().map(str::to_string),
                ),
                JobState::Pending(_) if job.status.is_waiting() => (
                    "not_started".into(),
                    None,
                    None,
                    Some(crate::fmt::waiting_text(&job.status.waiting_for)),
                ),
                JobState::Pending(PendingReason::Manual) => {
                    ("not_started".into(), None, None, None)
                }
                _ => ("running".into(), None, None, None),
            };
            let status = match job.status.result() {
                Some(class) => class.as_str().to_string(),
                None => result.clone(),
            };
            let ready_ms = match job.status.readiness {
                crate::supervisor::Readiness::Ready { after } => Some(ms(after)),
                _ => None,
            };
            JobReport {
                name: job.name.clone(),
                result,
                status,
                exit_code,
                signal,
                reason,
                ready_ms,
                elapsed_ms: ms(job.elapsed(now)),
                cpu_ms: ms(job.cpu_time()),
                cpu_wait_ms: ms(job.cpu_wait()),
                max_rss_kb: job.peak_rss_bytes / 1024,
                restarts: job.status.restarts,
                stdout_bytes,
                stderr_bytes,
                lines_dropped,
                stages: job
                    .status
                    .stages
                    .iter()
                    .map(|stage| StageReport {
                        argv: stage.argv.clone(),
                        pid: stage.pid,
                        exit_code: match stage.state {
                            StageState::Exited(code) => Some(code),
                            _ => None,
                        },
                        signal: match stage.state {
                            StageState::Killed(signal) => Some(signal.as_str().to_string()),
                            _ => None,
                        },
                    })
                    .collect(),
                tree_at_stop: job.status.tree_at_stop.as_deref().map(tree_report),
            }
        })
        .collect();
    Report {
        wall_ms: ms(figures.wall),
        cores: figures.cores,
        max_parallel,
        sum_elapsed_ms: ms(figures.sum_elapsed),
        sum_cpu_ms: ms(figures.sum_cpu),
        sum_cpu_wait_ms: ms(figures.sum_cpu_wait),
        concurrency: round2(figures.concurrency),
        parallelism: round2(figures.parallelism),
        efficiency: round2(figures.efficiency),
        jobs,
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write report {}", path.display()))
}

/// Reads (stdout bytes, stderr bytes, dropped lines) from a job's buffer.
pub fn counts_of(buffer: &crate::output::SharedBuffer) -> OutputCounts {
    let buffer = crate::output::lock(buffer);
    (
        buffer.bytes_received(Stream::Stdout),
        buffer.bytes_received(Stream::Stderr),
        buffer.dropped(),
    )
}
