//! Running without a terminal: prefixed output, a summary table, a meaningful exit code.
//!
//! Drives the same [`Supervisor`] as the TUI. Output reaches stdout through a bounded tee
//! (back-pressure instead of unbounded memory) and is not kept anywhere else: the jobs'
//! buffers only count bytes ([`SupervisorOptions::discard_output`]), since nothing in a
//! headless run reads a scrollback back. Status changes go to a [`Tracker`].
//!
//! However the run ends, it ends the same way: every job is stopped (stop signal, grace,
//! SIGKILL) and reaped before the exit status is decided. An ending signal gives 128 + N;
//! stdout failing gives what a Unix tool gives ([`stdio::exit_status`]: a reader gone is
//! 141 and quiet, a terminal gone is 129, a full disk is said and is 1).

pub mod compare;
mod printer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::config::{CommandSpec, Config};
use crate::report::{self, summary};
use crate::run::{Signals, exit_code, tracker_for};
use crate::stdio::{self, visible_inline};
use crate::supervisor::{
    Control, Controller, Event, JobState, OutputTee, Supervisor, SupervisorOptions,
};
use crate::tracker::Tracker;
use crate::{fmt, say};

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
    /// `--exit-with NAME`: overrides `settings.exit_with`.
    pub exit_with: Option<String>,
    /// Each output line starts with its arrival time (`--timestamps`).
    pub timestamps: bool,
    /// Log files (opened before the run: see [`crate::logs::Logs::open`]).
    pub logs: Option<crate::logs::Logs>,
    /// The control socket.
    pub serve: crate::control::ServeOptions,
    /// The session of `forkyard up`: keep the jobs' scrollback, print no job output, and
    /// stay up after every job settled, until `down` or an ending signal.
    pub session: bool,
    /// `up` waits on this descriptor until the socket serves.
    pub ready_fd: Option<i32>,
}

/// The result of a headless run.
pub struct RunResult {
    pub tracker: Tracker,
    pub report: report::Report,
    /// 0 when nothing failed (stops and skips are not failures), 1 any failed, 128+N
    /// when stopped by signal N, 141/129/1 when stdout failed (see
    /// [`stdio::exit_status`]); with `exit_with`, that job's status.
    pub exit_code: i32,
}

/// Output chunks queued for the printer.
const TEE_CHUNKS: usize = 32;

/// Why a run ended before every job settled by itself.
enum Cut {
    /// An ending signal arrived.
    Signal(Signal),
    /// Writing to stdout failed; the exit status it maps to (the message, if any, is
    /// already said).
    Output(i32),
}

/// Runs the config to completion, printing to stdout. Returns the process exit code.
pub async fn run(config: &Config, options: &HeadlessOptions) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let is_tty = stdout.is_terminal();
    let style = PrintStyle {
        color: is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        sanitize: is_tty,
        timestamps: options.timestamps,
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
    // Listen before anything starts, so an early signal still stops the children.
    let mut signals = Signals::listen().context("cannot listen for signals")?;
    // Bound before any job starts: a taken name is an error, not a run without a socket.
    let (mut server, warning) = crate::control::Server::start_or_warn(&options.serve, config)?;
    if let Some(warning) = warning {
        say!("warning: {}", visible_inline(&warning));
    }

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
    // Chunks are up to 256 KiB: 32 of them keep the printer busy while bounding what
    // waits in the queue to 8 MiB, however many jobs flood at once.
    let (tee, chunks) = OutputTee::new(TEE_CHUNKS);
    let output = tee.handle();
    let printer = Printer::new(out, &jobs, style);
    // The printer only ends early when stdout fails (`forkyard | head`, a full disk, a
    // terminal that hung up); it hands the error over at once so the jobs stop at once.
    let (failed_tx, mut failed_rx) = oneshot::channel::<std::io::Error>();
    let printer_thread = std::thread::Builder::new()
        .name("forkyard-printer".into())
        .spawn(move || match printer.run(chunks) {
            Ok(out) => Some(out),
            Err(err) => {
                let _ = failed_tx.send(err);
                None
            }
        })
        .context("cannot start the output thread")?;

    let max_parallel = options.max_parallel.unwrap_or(config.settings.max_parallel);
    let exit_with = match options
        .exit_with
        .as_ref()
        .or(config.settings.exit_with.as_ref())
    {
        Some(name) => Some(
            config
                .jobs
                .iter()
                .position(|j| j.name == *name)
                .ok_or_else(|| anyhow::anyhow!("--exit-with: no job named {:?}", name))?,
        ),
        None => None,
    };
    let (mut supervisor, mut events) = Supervisor::start(
        config,
        SupervisorOptions {
            max_parallel: Some(max_parallel),
            // A session prints nothing: its jobs' output is in their scrollback.
            tee: (!options.session).then_some(tee),
            discard_output: !options.session,
            log_tap: options.logs.as_ref().map(crate::logs::Logs::tap),
            ..SupervisorOptions::default()
        },
    )?;
    let mut controller = supervisor.controller();
    let mut buffers: Vec<_> = supervisor.jobs().iter().map(|j| j.buffer.clone()).collect();
    let mut tracker = tracker_for(&supervisor);
    if let Some(server) = &server {
        server.set_run(crate::control::hub::RunView::of(
            &supervisor,
            &tracker,
            max_parallel,
            options.session,
            config.settings.scrollback,
        ));
        if let Some(fd) = options.ready_fd {
            crate::control::daemon::report_ready(fd, server.name(), server.path());
        }
    }
    let expiry = config
        .settings
        .headless_timeout
        .map(|after| (after, tracker.started + after));
    let mut expired = false;
    let mut cut: Option<Cut> = None;
    let mut printer_alive = true;
    let mut stopped_others = false;
    // The status to exit with, once the `exit_with` job has ended.
    let mut ended_with: Option<i32> = None;

    while options.session || !tracker.all_settled() {
        if let Some(id) = exit_with
            && tracker.jobs[id].status.is_settled()
        {
            let record = &tracker.jobs[id];
            ended_with = Some(match record.status.outcome() {
                Some(outcome) => outcome.exit_status(),
                // Never started (it waits on jobs that need a command).
                None => 1,
            });
            say!(
                "{} ended ({}): stopping the other jobs (exit_with)",
                visible_inline(&record.name),
                visible_inline(&fmt::result_text(record))
            );
            break;
        }
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                observe(&server, &event);
                tracker.apply(&event);
                log_event(options, &event);
                if !options.quiet {
                    report_event(&tracker, &event);
                }
                if options.kill_others_on_fail && !stopped_others && failed_for_good(&event) {
                    stopped_others = true;
                    say!("a job failed; stopping the others (--kill-others-on-fail)");
                    controller.control_all(Control::StopBecauseOtherFailed);
                }
            }
            _ = tokio::time::sleep_until(expiry.map_or_else(far_future, |(_, at)| at).into()),
                if expiry.is_some() && !expired =>
            {
                expired = true;
                if let Some((after, _)) = expiry {
                    expire_all(&tracker, &controller, after);
                }
            }
            signal = signals.recv() => {
                cut = Some(Cut::Signal(signal));
                break;
            }
            request = next_request(&mut server) => match request {
                crate::control::FrontRequest::Quit => {
                    say!("stopping every job (forkyard down)");
                    break;
                }
                crate::control::FrontRequest::Reload(reply) => {
                    let outcome = if options.session {
                        reload(&mut supervisor, config, server.as_ref(), &mut tracker, &mut buffers)
                    } else {
                        Err("reload needs a session that stays up (`forkyard up`, or the TUI): \
                             this headless run ends when its jobs do".into())
                    };
                    controller = supervisor.controller();
                    let _ = reply.send(outcome);
                }
            },
            failed = &mut failed_rx, if printer_alive => {
                printer_alive = false;
                if let Ok(err) = failed {
                    cut = Some(Cut::Output(stdio::exit_status(&err, "job output")));
                    break;
                }
            }
        }
    }
    if let Some(Cut::Signal(signal)) = &cut {
        say!(
            "{} received: stopping every job (send it again to kill them now)",
            signal.as_str()
        );
    }

    // Stop what is left (everything has settled unless the run was cut) and reap it all.
    let shutdown = supervisor.shutdown();
    tokio::pin!(shutdown);
    let mut killing = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events.recv() => {
                observe(&server, &event);
                tracker.apply(&event);
                log_event(options, &event);
                if !options.quiet {
                    report_event(&tracker, &event);
                }
            }
            signal = signals.recv() => {
                cut.get_or_insert(Cut::Signal(signal));
                if !killing {
                    killing = true;
                    say!("killing every job now (SIGKILL)");
                }
                controller.control_all(Control::Kill);
                // Told twice: a stdout that takes nothing (a terminal stopped with ^S)
                // must not hold the end of the runs either.
                output.abandon();
            }
        }
    }
    while let Ok(event) = events.try_recv() {
        observe(&server, &event);
        tracker.apply(&event);
        log_event(options, &event);
        if !options.quiet {
            report_event(&tracker, &event);
        }
    }
    let now = Instant::now();

    // Every tee sender is gone with the job tasks, so the printer finishes and flushes:
    // however slow the reader, every line is delivered. Only a signal (another one, or
    // the first one after a run that was not cut by one) gives up on a reader that does
    // not read at all, such as a terminal stopped with ^S.
    let joined = tokio::task::spawn_blocking(move || printer_thread.join());
    tokio::pin!(joined);
    let printed = tokio::select! {
        joined = &mut joined => joined
            .context("output thread")?
            .map_err(|_| anyhow::anyhow!("the output thread panicked"))?,
        // Told twice already: what stdout took is all it gets.
        _ = tokio::time::sleep(Duration::from_millis(200)), if killing => None,
        signal = signals.recv(), if !killing => {
            say!(
                "{} received: giving up on the output that stdout has not taken",
                signal.as_str()
            );
            cut = Some(Cut::Signal(signal));
            output.abandon();
            None
        }
    };
    if let Some(logs) = &options.logs {
        // Every job is over: what the writer holds is all there will be.
        match logs.finish() {
            Ok(reports) => {
                for problem in reports.iter().filter_map(crate::logs::LogReport::describe) {
                    say!("{problem}");
                }
            }
            Err(stuck) => say!("{stuck}"),
        }
    }
    let undelivered = output.undelivered_bytes();
    if undelivered > 0 {
        say!(
            "{} of job output were not delivered: stdout took none after forkyard was told to stop",
            fmt::bytes(undelivered)
        );
    }
    let mut out = match printed {
        Some(out) => Some(out),
        None => {
            // Failed while flushing the last lines: say so unless already said.
            if let (None, Ok(err)) = (&cut, failed_rx.try_recv()) {
                cut = Some(Cut::Output(stdio::exit_status(&err, "job output")));
            }
            None
        }
    };

    if let Some(server) = server.take() {
        server.close().await;
    }
    let counts: Vec<report::OutputCounts> = buffers.iter().map(report::counts_of).collect();
    let report = report::build(&tracker, &counts, max_parallel, now);
    if let Some(out) = out.as_mut().filter(|_| !options.no_summary) {
        // No DROPPED column: headless keeps no scrollback, so nothing is dropped from one.
        let table = summary::render(&tracker, None, now);
        if let Err(err) = out.write_all(table.as_bytes()).and_then(|()| out.flush()) {
            cut.get_or_insert(Cut::Output(stdio::exit_status(&err, "the summary")));
        }
    }
    if let Some(id) = exit_with
        && ended_with.is_none()
        && cut.is_none()
    {
        // Everything settled at once, the `exit_with` job with it.
        ended_with = Some(
            tracker.jobs[id]
                .status
                .outcome()
                .map_or(1, |outcome| outcome.exit_status()),
        );
    }
    let exit_code = match cut {
        Some(Cut::Signal(signal)) => exit_code(Some(signal), tracker.any_failed()),
        Some(Cut::Output(code)) => code,
        None => match ended_with {
            // A stopped `exit_with` job (another one failed) says nothing itself.
            Some(0) if tracker.jobs.iter().any(|j| j.failed()) => 1,
            Some(status) => status,
            None => exit_code(None, tracker.any_failed()),
        },
    };
    Ok(RunResult {
        tracker,
        report,
        exit_code,
    })
}

fn log_event(options: &HeadlessOptions, event: &Event) {
    if let Some(logs) = &options.logs {
        logs.event(event);
    }
}

fn observe(server: &Option<crate::control::Server>, event: &Event) {
    if let Some(server) = server {
        server.observe(event);
    }
}

/// The next request from the control socket; pending forever without one.
async fn next_request(server: &mut Option<crate::control::Server>) -> crate::control::FrontRequest {
    match server {
        Some(server) => server.next_request().await,
        None => std::future::pending().await,
    }
}

/// `reload` from the control socket: the config read again and applied.
fn reload(
    supervisor: &mut Supervisor,
    config: &Config,
    server: Option<&crate::control::Server>,
    tracker: &mut Tracker,
    buffers: &mut Vec<crate::output::SharedBuffer>,
) -> Result<crate::control::ReloadOutcome, String> {
    let reloaded = crate::control::reload(supervisor, config, server, tracker)?;
    buffers.extend(reloaded.buffers);
    say!("{}", visible_inline(&reloaded.summary));
    Ok(reloaded.outcome)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// `settings.headless_timeout` ran out: every job that has not settled is stopped as if
/// its own `timeout` had expired (queued ones are not started at all).
fn expire_all(tracker: &Tracker, controller: &Controller, after: Duration) {
    let active: Vec<usize> = (0..tracker.jobs.len())
        .filter(|&id| !tracker.jobs[id].status.is_settled())
        .collect();
    if active.is_empty() {
        return;
    }
    say!(
        "headless_timeout ({}) expired: stopping {} job{} still running",
        fmt::config_duration(after),
        active.len(),
        if active.len() == 1 { "" } else { "s" }
    );
    for id in active {
        controller.control(id, Control::Expire);
    }
}

/// A run failed and the job will not be restarted by its policy (a stop or a skip is not
/// a failure).
fn failed_for_good(event: &Event) -> bool {
    matches!(event, Event::Job { status, .. }
        if !status.restart_pending
            && matches!(&status.state, JobState::Finished(outcome) if outcome.is_failure()))
}

/// One line on stderr per notable change, so CI logs show what happened and when. Text
/// from the config or a child (names, reasons) is made visible and kept on one line.
fn report_event(tracker: &Tracker, event: &Event) {
    match event {
        Event::Notice(notice) => say!("{}", visible_inline(&notice.text)),
        Event::Job { id, status } => {
            if let JobState::Finished(_) = &status.state
                && let Some(record) = tracker.jobs.get(*id)
            {
                let elapsed = status
                    .started_at
                    .zip(status.ended_at)
                    .map(|(s, e)| e.saturating_duration_since(s))
                    .unwrap_or_default();
                say!(
                    "{} {} after {}",
                    visible_inline(&record.name),
                    visible_inline(&fmt::result_text(record)),
                    fmt::duration(elapsed)
                );
                if let Some(postmortem) = &status.tree_at_stop {
                    // What hung, so a CI log says it without a rerun.
                    say!(
                        "  its processes when it {}:",
                        postmortem.why.replace("outlived", "had outlived")
                    );
                    for row in &postmortem.tree.rows {
                        say!(
                            "  {:>7} {:<9} {:<16} {}{}{}{}",
                            row.pid,
                            row.state.words(),
                            row.syscall
                                .as_deref()
                                .or(row.wchan.as_deref())
                                .unwrap_or("-"),
                            "  ".repeat(row.depth.min(20)),
                            visible_inline(&row.cmdline),
                            if row.left_group {
                                "  (left the group)"
                            } else {
                                ""
                            },
                            if row.outlived_grace {
                                "  (needed SIGKILL)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
        }
        Event::Sample { .. } | Event::Machine(_) | Event::Tree(_) => {}
    }
}
