//! The interactive terminal UI: one loop that selects on terminal input, supervisor
//! events, output activity, signals and a frame deadline, applies them to the
//! [`Model`](crate::ui::Model), and redraws only when something changed.
//!
//! Frame policy: a change marks the model dirty and a frame follows at most
//! [`FRAME_INTERVAL`] after the previous one, so bursts of output or keys become one
//! frame. With nothing changing, the loop sleeps until [`crate::ui::next_redraw`] (the
//! next clock second, a countdown tenth, a message expiring) or forever when every job
//! has settled. Resource samples do not trigger frames of their own: the sampler ticks on
//! the clock's whole seconds and reports each tick once its samples are sent, and that
//! report is the clock frame (the timer is a backup), so one wake-up a second shows
//! both the clocks and that second's samples.
//!
//! Every exit path stops and reaps the children: quit (graceful, countdown visible),
//! quit-now (SIGKILL), SIGTERM/SIGINT/SIGHUP, a lost terminal; a panic anywhere restores
//! the terminal and then runs the supervisor's hook, which kills every job group.

mod input;
pub mod keys;
mod terminal;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{Event as TermEvent, MouseEventKind};
use futures_util::future::OptionFuture;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::output::SharedBuffer;
use crate::supervisor::{Control, Controller, Event, Level, Supervisor, SupervisorOptions};
use crate::tracker::Tracker;
use crate::ui::model::{MessageKind, Quitting};
use crate::ui::{self, Model};

use keys::{Action, Ctx};

/// At most ~30 frames per second.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);

#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// `-j N`: overrides `settings.max_parallel`.
    pub max_parallel: Option<usize>,
}

/// Runs the TUI until the user quits (or a signal arrives) and every child is reaped.
/// Returns the exit code: 0 if no job had failed when quitting, 1 if one had, 128+N
/// when stopped by signal N.
pub async fn run(config: Config, options: TuiOptions) -> anyhow::Result<i32> {
    // Listen before anything starts, so an early signal still stops the children.
    let signals = Signals {
        int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
    };
    let guard = terminal::enter().context("cannot set up the terminal")?;

    let activity = Arc::new(Notify::new());
    let sampled = Arc::new(Notify::new());
    let max_parallel = options.max_parallel.unwrap_or(config.settings.max_parallel);
    let (supervisor, events) = start_supervisor(&config, max_parallel, &activity, &sampled)?;
    let tracker = tracker_of(&supervisor);
    let origin = std::path::Path::new(&config.origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| config.origin.clone());
    let mut model = Model::new(tracker, origin);
    model.max_parallel = max_parallel;
    model.clocks_follow_samples = true;
    let mut app = App {
        model,
        buffers: supervisor.jobs().iter().map(|j| j.buffer.clone()).collect(),
        controller: supervisor.controller(),
        supervisor: Some(supervisor),
        events,
        events_open: true,
        config,
        activity,
        sampled,
        pending_rerun: None,
        rerun_error: None,
        shutdown: None,
        guard: Some(guard),
        dirty: true,
        last_draw: None,
        tick_at: None,
        drawn_output: None,
        exit_signal: None,
        failed_at_quit: false,
        complete_at_quit: true,
        draw_error: None,
    };
    app.run(signals).await;

    // Leave the alternate screen before printing anything.
    drop(app.guard.take());
    terminal::restore();
    let tracker = &app.model.tracker;
    let ok = tracker
        .jobs
        .iter()
        .filter(|j| j.status.outcome().is_some_and(|o| o.is_success()))
        .count();
    // Not eprintln!: after a hangup stderr is gone, and that must not become a panic.
    let mut stderr = std::io::stderr();
    let _ = writeln!(
        stderr,
        "forkyard: {} jobs: {ok} succeeded, {} failed (all stopped)",
        tracker.jobs.len(),
        tracker.jobs.iter().filter(|j| j.failed()).count()
    );
    // The screen is gone: keep the measurements.
    let end = tracker.settled_at.unwrap_or_else(Instant::now);
    let _ = writeln!(
        stderr,
        "forkyard: {}",
        crate::fmt::figures_line(&tracker.figures(end))
    );
    let mut model = app.model.clone();
    model.now = Instant::now();
    if !app.complete_at_quit {
        // Stopping it settled every job, but the run was cut short.
        model.tracker.settled_at = None;
    }
    if let Some(runs) = ui::runs_text(&model) {
        let _ = writeln!(stderr, "forkyard: {runs}");
    }
    if let Some(err) = app.draw_error {
        let _ = writeln!(stderr, "forkyard: the terminal failed: {err}");
    }
    if let Some(err) = &app.rerun_error {
        let _ = writeln!(stderr, "forkyard: cannot rerun: {err:#}");
    }
    Ok(match app.exit_signal {
        Some(signal) => 128 + signal as i32,
        None if app.failed_at_quit => 1,
        None => 0,
    })
}

fn start_supervisor(
    config: &Config,
    max_parallel: usize,
    activity: &Arc<Notify>,
    sampled: &Arc<Notify>,
) -> anyhow::Result<(Supervisor, mpsc::UnboundedReceiver<Event>)> {
    Supervisor::start(
        config,
        SupervisorOptions {
            max_parallel: Some(max_parallel),
            activity: Some(activity.clone()),
            sampled: Some(sampled.clone()),
            ..SupervisorOptions::default()
        },
    )
}

fn tracker_of(supervisor: &Supervisor) -> Tracker {
    let mut tracker = Tracker::new(
        supervisor
            .jobs()
            .iter()
            .map(|j| (j.spec.name.clone(), j.initial.clone())),
    );
    // Clock ticks (whole seconds after this) then coincide with the sampler's.
    tracker.started = supervisor.started_at();
    tracker
}

/// A rerun (`p`) waiting for the current run to stop.
#[derive(Debug, Clone, Copy)]
struct PendingRerun {
    limit: usize,
    /// Every job had settled when `p` was pressed: the run's wall time is complete.
    complete: bool,
    /// A job had failed before the run was stopped (the exit code if we quit instead).
    failed: bool,
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What identifies the selected output's content: any new byte, line or clear changes it.
type OutputSignature = (usize, u64, u64, usize);

struct App {
    model: Model,
    buffers: Vec<SharedBuffer>,
    controller: Controller,
    /// Taken when quitting or rerunning starts.
    supervisor: Option<Supervisor>,
    /// The current supervisor's events; replaced (the old one dropped) by a rerun, so
    /// nothing from an earlier run reaches the new tracker.
    events: mpsc::UnboundedReceiver<Event>,
    events_open: bool,
    config: Config,
    activity: Arc<Notify>,
    /// The sampler finished a tick: the clock frame, with fresh samples.
    sampled: Arc<Notify>,
    pending_rerun: Option<PendingRerun>,
    rerun_error: Option<anyhow::Error>,
    /// The running `Supervisor::shutdown`.
    shutdown: Option<JoinHandle<()>>,
    /// None once the terminal is gone (hangup, write error).
    guard: Option<terminal::Guard>,
    dirty: bool,
    last_draw: Option<Instant>,
    /// The next time the picture changes by itself (clocks, countdowns).
    tick_at: Option<Instant>,
    /// The selected job and its output as last drawn.
    drawn_output: Option<OutputSignature>,
    exit_signal: Option<Signal>,
    failed_at_quit: bool,
    /// Every job had settled when quitting started (the run's wall time is complete).
    complete_at_quit: bool,
    draw_error: Option<std::io::Error>,
}

impl App {
    async fn run(&mut self, mut signals: Signals) {
        let (mut input, mut input_open) = match input::Input::new() {
            Ok(input) => (Some(input), true),
            Err(err) => {
                self.terminal_lost(Some(err));
                (None, false)
            }
        };
        let activity = self.activity.clone();
        let sampled = self.sampled.clone();
        loop {
            let now = Instant::now();
            self.model.now = now;
            if self.model.expire_message(now) {
                self.dirty = true;
            }
            let frame_at = self.last_draw.map_or(now, |t| t + FRAME_INTERVAL);
            if self.dirty && now >= frame_at {
                self.draw();
                continue;
            }
            // Remember the earliest tick since the last frame: recomputing it from `now`
            // after an unrelated wake-up (a sample) would skip a tick that is due.
            if let Some(at) = ui::next_redraw(&self.model) {
                self.tick_at = Some(self.tick_at.map_or(at, |t| t.min(at)));
            }
            let wake = if self.dirty {
                Some(frame_at)
            } else {
                self.tick_at
            };
            let shutting_down = self.shutdown.is_some();
            let shutdown: OptionFuture<_> = self.shutdown.as_mut().into();
            let sleep = tokio::time::sleep_until(wake.unwrap_or(now).into());
            let input_ready: OptionFuture<_> = input.as_mut().map(|i| i.wait()).into();
            tokio::select! {
                biased;
                _ = shutdown, if shutting_down => {
                    self.shutdown = None;
                    match self.pending_rerun.take() {
                        Some(rerun) => {
                            if let Err(err) = self.start_run(rerun) {
                                self.rerun_error = Some(err);
                                break;
                            }
                        }
                        None => break,
                    }
                }
                ready = input_ready, if input_open => {
                    if !matches!(ready, Some(Ok(()))) || !self.drain_input(input.as_ref()) {
                        // The terminal is gone: nobody can see or quit us, so stop everything.
                        input_open = false;
                        input = None;
                        self.terminal_lost(None);
                    }
                }
                event = self.events.recv(), if self.events_open => match event {
                    Some(event) => {
                        self.on_event(event);
                        // A sampler tick sends one event per job: take the whole burst
                        // in this wake-up rather than one loop turn each.
                        while let Ok(event) = self.events.try_recv() {
                            self.on_event(event);
                        }
                    }
                    None => {
                        self.events_open = false;
                        // A run stopping for a rerun closes its channel too.
                        if self.pending_rerun.is_none() {
                            self.quit(false);
                        }
                    }
                },
                _ = signals.int.recv() => self.on_signal(Signal::SIGINT),
                _ = signals.term.recv() => self.on_signal(Signal::SIGTERM),
                _ = signals.hup.recv() => {
                    self.terminal_lost(None);
                    self.on_signal(Signal::SIGHUP);
                }
                _ = sampled.notified() => {
                    // The tick's samples were sent before this: apply them, then draw.
                    while let Ok(event) = self.events.try_recv() {
                        self.on_event(event);
                    }
                    self.dirty = true;
                }
                _ = activity.notified(), if !self.dirty => {
                    if self.output_signature() != self.drawn_output {
                        self.dirty = true;
                    }
                }
                _ = sleep, if wake.is_some() => self.dirty = true,
            }
        }
        // The last status changes (every job finished) are worth applying for the
        // summary, even though nobody will see another frame.
        while let Ok(event) = self.events.try_recv() {
            self.model.tracker.apply(&event);
        }
    }

    /// Handles every terminal event that is ready. False when the terminal is gone.
    fn drain_input(&mut self, input: Option<&input::Input>) -> bool {
        let Some(input) = input else {
            return false;
        };
        loop {
            match input.next_ready() {
                Ok(Some(event)) => self.on_terminal_event(event),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// `p`: stop the current run; [`App::start_run`] follows once it is fully shut down
    /// (every child reaped), so two runs never compete for the CPUs.
    fn rerun(&mut self, limit: usize) {
        let Some(supervisor) = self.supervisor.take() else {
            return;
        };
        self.pending_rerun = Some(PendingRerun {
            limit,
            complete: self.model.tracker.settled_at.is_some(),
            failed: self.model.tracker.any_failed(),
        });
        self.model.rerun = Some(limit);
        self.model.overlay = None;
        self.model.prompt = None;
        self.shutdown = Some(tokio::spawn(supervisor.shutdown()));
        self.dirty = true;
    }

    /// The previous run is over: keep its figures, start the set again with `-j limit`.
    fn start_run(&mut self, rerun: PendingRerun) -> anyhow::Result<()> {
        // Its last events still belong to it (the final statuses).
        while let Ok(event) = self.events.try_recv() {
            self.model.tracker.apply(&event);
        }
        let mut previous = self.model.current_run(Instant::now());
        previous.complete = rerun.complete;
        let (supervisor, events) =
            start_supervisor(&self.config, rerun.limit, &self.activity, &self.sampled)
                .context("cannot start the jobs again")?;
        self.model
            .start_run(tracker_of(&supervisor), rerun.limit, previous);
        self.buffers = supervisor.jobs().iter().map(|j| j.buffer.clone()).collect();
        self.controller = supervisor.controller();
        self.supervisor = Some(supervisor);
        // The old receiver is dropped here: a late event of the old run has nowhere to go.
        self.events = events;
        self.events_open = true;
        self.drawn_output = None;
        self.tick_at = None;
        self.dirty = true;
        let limit = crate::fmt::limit_label(rerun.limit, false);
        self.model.set_message(
            format!("rerunning every job with -j {limit}"),
            MessageKind::Info,
            Instant::now(),
        );
        Ok(())
    }

    fn draw(&mut self) {
        let now = Instant::now();
        self.model.now = now;
        self.last_draw = Some(now);
        self.dirty = false;
        self.tick_at = None;
        // Keep the selection visible in the table the layout gives us this time.
        if let Some(areas) = self.areas() {
            self.model.scroll_table_into_view(areas.table_rows());
        }
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        let model = &self.model;
        let buffers = &self.buffers;
        if let Err(err) = guard.terminal.draw(|frame| ui::draw(frame, model, buffers)) {
            self.terminal_lost(Some(err));
        }
        self.drawn_output = self.output_signature();
    }

    fn output_signature(&self) -> Option<OutputSignature> {
        let id = self.model.selected_job();
        let buf = crate::output::lock(self.buffers.get(id)?);
        Some((
            id,
            buf.total_lines(),
            buf.bytes_received(crate::output::Stream::Stdout)
                + buf.bytes_received(crate::output::Stream::Stderr),
            buf.len(),
        ))
    }

    fn areas(&self) -> Option<ui::Areas> {
        ui::layout(self.guard.as_ref()?.size, &self.model)
    }

    fn on_terminal_event(&mut self, event: TermEvent) {
        let relevant = match &event {
            TermEvent::Key(_) | TermEvent::Resize(..) => true,
            // Motion is reported too (any-event tracking); it changes nothing, so it
            // must not cost a frame.
            TermEvent::Mouse(mouse) => !matches!(
                mouse.kind,
                MouseEventKind::Moved | MouseEventKind::Drag(_) | MouseEventKind::Up(_)
            ),
            _ => false,
        };
        if !relevant {
            return;
        }
        if let TermEvent::Resize(width, height) = event
            && let Some(guard) = self.guard.as_mut()
            && let Err(err) = guard.resize(width, height)
        {
            self.terminal_lost(Some(err));
            return;
        }
        let now = Instant::now();
        self.model.now = now;
        let ctx = Ctx {
            buffers: &self.buffers,
            areas: self.areas(),
            now,
        };
        let actions = match event {
            TermEvent::Key(key) => {
                test_panic(key);
                keys::on_key(&mut self.model, key, &ctx)
            }
            TermEvent::Mouse(mouse) => keys::on_mouse(&mut self.model, mouse, &ctx),
            _ => Vec::new(),
        };
        self.dirty = true;
        for action in actions {
            match action {
                Action::Control(id, control) => self.controller.control(id, control),
                Action::Quit { kill } => self.quit(kill),
                Action::Rerun { max_parallel } => self.rerun(max_parallel),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        self.model.tracker.apply(&event);
        match event {
            // Shown at the next clock tick; not worth a frame of its own.
            Event::Sample { .. } | Event::Machine(_) => {}
            Event::Job { .. } => self.dirty = true,
            Event::Notice(notice) => {
                let kind = match notice.level {
                    Level::Info => MessageKind::Info,
                    Level::Warn | Level::Error => MessageKind::Error,
                };
                self.model.set_message(notice.text, kind, Instant::now());
                self.dirty = true;
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        self.exit_signal.get_or_insert(signal);
        let kill = self.model.quitting.is_some();
        self.quit(kill);
        self.dirty = true;
    }

    fn terminal_lost(&mut self, error: Option<std::io::Error>) {
        if self.guard.take().is_some() {
            terminal::restore();
        }
        if error.is_some() {
            self.draw_error = error;
        }
        self.quit(false);
    }

    /// Marks the run as quitting; with `kill`, every job gets SIGKILL now.
    fn begin_quitting(&mut self, kill: bool) {
        if kill {
            self.controller.control_all(Control::Kill);
        }
        self.model.quitting = Some(if kill {
            Quitting::Killing
        } else {
            Quitting::Graceful
        });
    }

    /// Starts stopping every job (graceful, or SIGKILL with `kill`); a second request
    /// while stopping escalates to SIGKILL.
    fn quit(&mut self, kill: bool) {
        self.dirty = true;
        if let Some(rerun) = self.pending_rerun.take() {
            // The run is already stopping: it becomes the last one.
            self.model.rerun = None;
            self.failed_at_quit = rerun.failed;
            self.complete_at_quit = rerun.complete;
            self.begin_quitting(kill);
            return;
        }
        let Some(supervisor) = self.supervisor.take() else {
            if kill && self.model.quitting != Some(Quitting::Killing) {
                self.controller.control_all(Control::Kill);
                self.model.quitting = Some(Quitting::Killing);
            }
            return;
        };
        self.failed_at_quit = self.model.tracker.any_failed();
        self.complete_at_quit = self.model.tracker.settled_at.is_some();
        self.begin_quitting(kill);
        self.model.overlay = None;
        self.model.prompt = None;
        self.shutdown = Some(tokio::spawn(supervisor.shutdown()));
    }
}

/// A test hook: with `FORKYARD_TEST_PANIC` set in the environment, F12 panics in a
/// spawned task, so the end-to-end tests (which run the release binary) can check that a
/// panic anywhere restores the terminal and stops every child.
fn test_panic(key: crossterm::event::KeyEvent) {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if key.code == crossterm::event::KeyCode::F(12)
        && *ENABLED.get_or_init(|| std::env::var_os("FORKYARD_TEST_PANIC").is_some())
    {
        tokio::spawn(async { panic!("FORKYARD_TEST_PANIC: panicking on purpose") });
    }
}
