//! Running without a terminal: prefixed output, a summary table, a meaningful exit code.
//!
//! Drives the same [`Supervisor`] as the TUI. Output reaches stdout through a bounded tee
//! (back-pressure instead of unbounded memory); status changes go to a [`Tracker`].

pub mod compare;
mod printer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{CommandSpec, Config};
use crate::report::{self, summary};
use crate::supervisor::{Control, Event, JobState, Supervisor, SupervisorOptions};
use crate::tracker::Tracker;

pub use printer::{PrintStyle, Printer};

#[derive(Debug, Clone, Default)]
pub struct HeadlessOptions {
    /// `-j N`: overrides `settings.max_parallel`.
    pub max_parallel: Option<usize>,
    /// Stop every other job at the first failure.
    pub kill_others_on_fail: bool,
    /// Write a JSON report here at the end.
    pub report: Option<PathBuf>,
    /// Print the summary table at the end (default on).
    pub no_summary: bool,
    /// No per-job lines on stderr (used by `--compare`).
    pub quiet: bool,
}

/// The result of a headless run.
pub struct RunResult {
    pub tracker: Tracker,
    pub report: report::Report,
    /// 0 all succeeded, 1 any failed, 128+N when stopped by signal N.
    pub exit_code: i32,
}

/// Runs the config to completion, printing to stdout. Returns the process exit code.
pub async fn run(config: &Config, options: &HeadlessOptions) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let is_tty = stdout.is_terminal();
    let style = PrintStyle {
        color: is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        sanitize: is_tty,
    };
    let result = run_with_output(config, options, stdout, style).await?;
    if let Some(path) = &options.report {
        report::write(&result.report, path)?;
    }
    Ok(result.exit_code)
}

/// Like [`run`], writing job output and the summary to `out`.
pub async fn run_with_output<W: std::io::Write + Send + 'static>(
    config: &Config,
    options: &HeadlessOptions,
    out: W,
    style: PrintStyle,
) -> anyhow::Result<RunResult> {
    // Listen before anything starts, so an early Ctrl-C still stops the children.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;

    let jobs: Vec<(String, bool)> = config
        .jobs
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                matches!(j.command, CommandSpec::Pipeline(_)),
            )
        })
        .collect();
    let (tee, chunks) = mpsc::channel(256);
    let printer = Printer::new(out, &jobs, style);
    // The printer only ends early when stdout fails (e.g. `forkyard | head`).
    let (printer_done_tx, mut printer_done) = tokio::sync::oneshot::channel::<()>();
    let printer_thread = std::thread::Builder::new()
        .name("forkyard-printer".into())
        .spawn(move || {
            let result = printer.run(chunks);
            let _ = printer_done_tx.send(());
            result
        })
        .context("cannot start the output thread")?;

    let max_parallel = options.max_parallel.unwrap_or(config.settings.max_parallel);
    let (supervisor, mut events) = Supervisor::start(
        config,
        SupervisorOptions {
            max_parallel: Some(max_parallel),
            tee: Some(tee),
            ..SupervisorOptions::default()
        },
    )?;
    let controller = supervisor.controller();
    let buffers: Vec<_> = supervisor.jobs().iter().map(|j| j.buffer.clone()).collect();
    let mut tracker = Tracker::new(
        supervisor
            .jobs()
            .iter()
            .map(|j| (j.spec.name.clone(), j.initial.clone())),
    );
    let mut interrupted: Option<Signal> = None;
    let mut stopped_others = false;

    while !tracker.all_settled() {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                tracker.apply(&event);
                if !options.quiet {
                    report_event(&tracker, &event);
                }
                if options.kill_others_on_fail && !stopped_others && failed_for_good(&event) {
                    stopped_others = true;
                    eprintln!("forkyard: a job failed; stopping the others (--kill-others-on-fail)");
                    controller.control_all(Control::StopBecauseOtherFailed);
                }
            }
            _ = sigint.recv() => { interrupted = Some(Signal::SIGINT); break }
            _ = sigterm.recv() => { interrupted = Some(Signal::SIGTERM); break }
            _ = sighup.recv() => { interrupted = Some(Signal::SIGHUP); break }
            // Our reader went away: behave like a program killed by SIGPIPE, but stop the
            // jobs first.
            _ = &mut printer_done => { interrupted = Some(Signal::SIGPIPE); break }
        }
    }
    if let Some(signal) = interrupted.filter(|s| *s != Signal::SIGPIPE) {
        eprintln!(
            "forkyard: {} received: stopping every job (send it again to kill them now)",
            signal.as_str()
        );
    }

    // Stop what is left (everything has settled unless interrupted) and reap it all.
    let shutdown = supervisor.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events.recv() => {
                tracker.apply(&event);
                if !options.quiet {
                    report_event(&tracker, &event);
                }
            }
            _ = sigint.recv() => kill_now(&controller),
            _ = sigterm.recv() => kill_now(&controller),
            _ = sighup.recv() => kill_now(&controller),
        }
    }
    while let Ok(event) = events.try_recv() {
        tracker.apply(&event);
    }
    let now = Instant::now();

    // Every tee sender is gone with the job tasks, so the printer finishes and flushes.
    let printed = tokio::task::spawn_blocking(move || printer_thread.join())
        .await
        .context("output thread")?
        .map_err(|_| anyhow::anyhow!("the output thread panicked"))?;
    let mut out = match printed {
        Ok(out) => Some(out),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            interrupted = Some(Signal::SIGPIPE);
            None
        }
        Err(err) => return Err(err).context("cannot write job output"),
    };

    let counts: Vec<report::OutputCounts> = buffers.iter().map(report::counts_of).collect();
    let report = report::build(&tracker, &counts, max_parallel, now);
    if let Some(out) = out.as_mut().filter(|_| !options.no_summary) {
        let dropped: Vec<u64> = report.jobs.iter().map(|j| j.lines_dropped).collect();
        let table = summary::render(&tracker, &dropped, now);
        let written = out.write_all(table.as_bytes()).and_then(|()| out.flush());
        match written {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                interrupted = Some(Signal::SIGPIPE)
            }
            other => other.context("cannot write the summary")?,
        }
    }
    let exit_code = match interrupted {
        Some(signal) => 128 + signal as i32,
        None if tracker.any_failed() => 1,
        None => 0,
    };
    Ok(RunResult {
        tracker,
        report,
        exit_code,
    })
}

fn kill_now(controller: &crate::supervisor::Controller) {
    eprintln!("forkyard: killing every job now (SIGKILL)");
    controller.control_all(Control::Kill);
}

/// A run failed and the job will not be restarted by its policy.
fn failed_for_good(event: &Event) -> bool {
    matches!(event, Event::Job { status, .. }
        if !status.restart_pending
            && matches!(&status.state, JobState::Finished(outcome) if !outcome.is_success()))
}

/// One line on stderr per notable change, so CI logs show what happened and when.
fn report_event(tracker: &Tracker, event: &Event) {
    match event {
        Event::Notice(notice) => eprintln!("forkyard: {}", notice.text),
        Event::Job { id, status } => {
            if let JobState::Finished(outcome) = &status.state
                && let Some(record) = tracker.jobs.get(*id)
            {
                let elapsed = status
                    .started_at
                    .zip(status.ended_at)
                    .map(|(s, e)| e.saturating_duration_since(s))
                    .unwrap_or_default();
                eprintln!(
                    "forkyard: {} {} after {}",
                    record.name,
                    outcome.describe(),
                    crate::fmt::duration(elapsed)
                );
            }
        }
        Event::Sample { .. } | Event::Machine(_) => {}
    }
}
