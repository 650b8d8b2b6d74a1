//! The interactive terminal UI. [`run`] sets up the terminal and the supervisor, and the
//! shell ([`Shell::run`]) selects on terminal input, supervisor events, output activity,
//! signals, the end of a shutdown and a frame deadline, hands each to the pure
//! [`State::step`](state::State::step), and carries out the effects it returns. The
//! terminal, its input and the signals are passed in, so the whole loop runs on
//! ratatui's `TestBackend` in tests.
//!
//! Every exit path stops and reaps the children: quit (graceful, countdown visible),
//! quit-now (SIGKILL), an ending signal (INT TERM HUP QUIT USR1 USR2 ALRM: 128+N), a lost
//! terminal (a failed read or write: like SIGHUP, 129); a panic anywhere restores the
//! terminal first, then runs the supervisor's hook, which kills every job group.

pub mod command;
mod decode;
pub mod encode;
pub mod input;
pub mod keymap;
mod mouse;
mod reading;
pub mod state;
pub mod terminal;
pub mod tree;
pub(crate) mod update;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures_util::future::OptionFuture;
use nix::sys::signal::Signal;
use ratatui::layout::Rect;
use ratatui::{Frame, Terminal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::output::SharedBuffer;
use crate::supervisor::pty::{self, JobIo};
use crate::supervisor::{Controller, Event, Supervisor, SupervisorOptions};
use crate::ui::{self, Model};

use input::TerminalInput;
use keymap::Keymap;
use state::{Effect, Input, State};

pub use state::FRAME_INTERVAL;

/// What the status bar suggests first in the built-in demo (the default keys: the demo
/// has no `[keys]`).
const DEMO_WELCOME: &str =
    "welcome to the demo: ↓ to tree, t stops it; r restarts service; ? every key";
const DEMO_WELCOME_TTL: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// `-j N`: overrides `settings.max_parallel`.
    pub max_parallel: Option<usize>,
    /// `--report FILE`: the JSON report of the last run, written when the TUI exits.
    pub report: Option<PathBuf>,
    /// `--timestamps`: start with the lines' arrival times shown.
    pub timestamps: bool,
    /// Log files, open already.
    pub logs: Option<crate::logs::Logs>,
    /// Where the logs' problems (a full disk) queue up for the status bar.
    pub log_problems: crate::logs::ProblemQueue,
}

/// Runs the TUI until the user quits (or a signal arrives, or the terminal goes away)
/// and every child is reaped. Returns the exit code: 0 if no job had failed when
/// quitting, 1 if one had, 128+N when stopped by signal N (129 for a lost terminal).
pub async fn run(config: Config, options: TuiOptions) -> anyhow::Result<i32> {
    // Listen before anything starts, so an early signal still stops the children.
    let signals = crate::run::Signals::listen().context("cannot listen for signals")?;
    // Validated with the config already; an error here would be a bug, not a typo.
    let keymap = Keymap::with_overrides(&config.keys.overrides)
        .map_err(|err| anyhow::anyhow!("the config's [keys]: {err}"))?;
    let tty = input::Tty::open().context("cannot read the terminal")?;
    let (width, height) = tty.size().context("cannot read the terminal's size")?;
    let session = terminal::enter((width, height)).context("cannot set up the terminal")?;

    let mut shell = Shell::start(
        config,
        &options,
        session,
        tty,
        signals,
        Rect::new(0, 0, width, height),
    )?;
    shell.state.model.keymap = Arc::new(keymap);
    shell.state.model.theme = ui::theme::Theme::detect();
    shell.run().await;
    // Leave the alternate screen before printing anything.
    shell.screen = None;
    terminal::restore();
    let code = shell.state.exit_code();
    shell.finish(options.report.as_deref());
    Ok(code)
}

/// Where frames go: a terminal session (restored when dropped) or, in tests, a bare
/// `Terminal` on `TestBackend`.
pub trait Screen {
    /// Draws one frame.
    fn draw(&mut self, render: &mut dyn FnMut(&mut Frame)) -> io::Result<()>;
    /// Follows a resize of the terminal to `width`×`height`.
    fn resize(&mut self, width: u16, height: u16) -> io::Result<()>;
    /// Writes an OSC 52 sequence (built by forkyard: see `reading::osc52`), which puts
    /// text on the terminal's clipboard. A screen without a terminal behind it (tests)
    /// has nowhere to put it.
    fn clipboard(&mut self, sequence: &[u8]) -> io::Result<()> {
        let _ = sequence;
        Ok(())
    }
}

impl Screen for terminal::Session {
    fn draw(&mut self, render: &mut dyn FnMut(&mut Frame)) -> io::Result<()> {
        self.terminal.draw(|frame| render(frame)).map(|_| ())
    }

    fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.terminal.resize(Rect::new(0, 0, width, height))
    }

    fn clipboard(&mut self, sequence: &[u8]) -> io::Result<()> {
        self.write_raw(sequence)
    }
}

/// A bare terminal (tests: `TestBackend`, whose buffer follows resizes).
impl Screen for Terminal<ratatui::backend::TestBackend> {
    fn draw(&mut self, render: &mut dyn FnMut(&mut Frame)) -> io::Result<()> {
        let Ok(_) = Terminal::draw(self, |frame| render(frame));
        Ok(())
    }

    fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.backend_mut().resize(width, height);
        let Ok(()) = Terminal::resize(self, Rect::new(0, 0, width, height));
        Ok(())
    }
}

/// Where ending signals come from: [`crate::run::Signals`], or a channel in tests.
pub trait SignalSource {
    fn recv(&mut self) -> impl Future<Output = Signal> + Send;
}

impl SignalSource for crate::run::Signals {
    async fn recv(&mut self) -> Signal {
        crate::run::Signals::recv(self).await
    }
}

impl SignalSource for mpsc::UnboundedReceiver<Signal> {
    async fn recv(&mut self) -> Signal {
        match mpsc::UnboundedReceiver::recv(self).await {
            Some(signal) => signal,
            // No more signals can come.
            None => std::future::pending().await,
        }
    }
}

/// The loop around [`State`]: owns the terminal, the input, the signals and the current
/// supervisor, and does what the state's effects say.
pub struct Shell<S: Screen, I: TerminalInput, G: SignalSource> {
    pub state: State,
    /// None once the terminal is gone.
    pub screen: Option<S>,
    input: Option<I>,
    signals: G,
    config: Config,
    /// Taken when a shutdown starts.
    supervisor: Option<Supervisor>,
    controller: Controller,
    /// The current supervisor's events; replaced (the old one dropped) by a rerun, so
    /// nothing from an earlier run reaches the new tracker.
    events: mpsc::UnboundedReceiver<Event>,
    events_open: bool,
    shutdown: Option<JoinHandle<()>>,
    activity: Arc<Notify>,
    /// The sampler finished a tick: the clock frame, with fresh samples.
    sampled: Arc<Notify>,
    /// The `-j` of the current run.
    max_parallel: usize,
    rerun_error: Option<anyhow::Error>,
    /// Per job of the current run: its input endpoint (PTY jobs, `stdin = "pipe"`).
    ios: Vec<Option<Arc<JobIo>>>,
    /// The size the PTY jobs were last given (the output pane's body).
    pty_size: Option<pty::Size>,
    /// Log files (every run of the set writes to the same ones).
    logs: Option<crate::logs::Logs>,
    log_problems: crate::logs::ProblemQueue,
}

impl<S: Screen, I: TerminalInput, G: SignalSource> Shell<S, I, G> {
    /// Starts the jobs and the state for a screen of `size`.
    pub fn start(
        config: Config,
        options: &TuiOptions,
        screen: S,
        input: I,
        signals: G,
        size: Rect,
    ) -> anyhow::Result<Self> {
        let activity = Arc::new(Notify::new());
        let sampled = Arc::new(Notify::new());
        let max_parallel = options.max_parallel.unwrap_or(config.settings.max_parallel);
        let pty_size = first_pane_size(&config, size);
        let tap = options.logs.as_ref().map(crate::logs::Logs::tap);
        let (supervisor, events) =
            start_supervisor(&config, max_parallel, &activity, &sampled, pty_size, tap)?;
        let origin = std::path::Path::new(&config.origin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| config.origin.clone());
        let mut model = Model::new(crate::run::tracker_for(&supervisor), origin);
        model.max_parallel = max_parallel;
        model.clocks_follow_samples = true;
        model.timestamps = options.timestamps;
        if let Some(logs) = &options.logs {
            model.log_paths = (0..config.jobs.len())
                .map(|id| logs.path(id).map(std::path::Path::to_path_buf))
                .collect();
        }
        if config.origin == crate::config::BUILTIN_DEMO_NAME {
            // The tour's first hint; its guide is the selected job's output.
            model.set_sticky_message(
                DEMO_WELCOME,
                crate::ui::model::MessageKind::Info,
                Instant::now(),
                DEMO_WELCOME_TTL,
            );
        }
        let buffers = buffers_of(&supervisor);
        let ios = ios_of(&supervisor);
        model.inputs = ios
            .iter()
            .map(|io| io.as_ref().map(|io| io.kind()))
            .collect();
        let mut state = State::new(model, buffers, size);
        state.set_terminals(terminals_of(&ios));
        Ok(Shell {
            state,
            screen: Some(screen),
            input: Some(input),
            signals,
            controller: supervisor.controller(),
            supervisor: Some(supervisor),
            events,
            events_open: true,
            shutdown: None,
            activity,
            sampled,
            max_parallel,
            config,
            rerun_error: None,
            ios,
            pty_size,
            logs: options.logs.clone(),
            log_problems: options.log_problems.clone(),
        })
    }

    /// Runs until every child of the last run is stopped and reaped.
    pub async fn run(&mut self) {
        let activity = self.activity.clone();
        let sampled = self.sampled.clone();
        let problems = self.log_problems.clone();
        while !self.state.is_done() {
            let now = Instant::now();
            if self.state.frame_due(now) {
                self.draw(now);
                continue;
            }
            let wake = self.state.wake_at(now);
            if self.state.frame_due(now) {
                continue;
            }
            let shutting_down = self.shutdown.is_some();
            let shutdown: OptionFuture<_> = self.shutdown.as_mut().into();
            let sleep = tokio::time::sleep_until(wake.unwrap_or(now).into());
            let reading = self.input.is_some();
            // A frame is already due: more output changes nothing until it is drawn.
            let watch_activity = !self.state.is_dirty();
            let input: OptionFuture<_> = self.input.as_mut().map(|i| i.next()).into();
            let input = tokio::select! {
                biased;
                _ = shutdown, if shutting_down => {
                    self.shutdown = None;
                    Input::ShutdownDone
                }
                signal = self.signals.recv() => Input::Signal(signal),
                read = input, if reading => match read {
                    Some(Ok(events)) => {
                        for event in events {
                            let effects = self.state.step(Input::Terminal(event), Instant::now());
                            self.apply(effects);
                        }
                        continue;
                    }
                    Some(Err(err)) => {
                        self.input = None;
                        let error = (err.kind() != io::ErrorKind::UnexpectedEof).then_some(err);
                        Input::TerminalLost(error)
                    }
                    None => continue,
                },
                event = self.events.recv(), if self.events_open => match event {
                    Some(event) => {
                        self.supervisor_event(event);
                        // A sampler tick sends one event per job: take the whole burst
                        // in this wake-up rather than one loop turn each.
                        while let Ok(event) = self.events.try_recv() {
                            self.supervisor_event(event);
                        }
                        continue;
                    }
                    None => {
                        self.events_open = false;
                        Input::EventsClosed
                    }
                },
                _ = sampled.notified() => {
                    // The tick's samples were sent before this: apply them, then draw.
                    while let Ok(event) = self.events.try_recv() {
                        self.supervisor_event(event);
                    }
                    Input::Sampled
                }
                _ = problems.ready() => {
                    for problem in problems.take() {
                        let event = Event::Notice(crate::supervisor::Notice {
                            job: problem.job,
                            level: crate::supervisor::Level::Warn,
                            text: problem.text,
                        });
                        self.state.step(Input::Supervisor(event), Instant::now());
                    }
                    continue;
                }
                _ = activity.notified(), if watch_activity => Input::Activity,
                _ = sleep, if wake.is_some() => Input::Tick,
            };
            let effects = self.state.step(input, Instant::now());
            self.apply(effects);
        }
        // The last status changes (every job finished) are worth applying for the
        // summary and the report, even though nobody will see another frame.
        while let Ok(event) = self.events.try_recv() {
            if let Some(logs) = &self.logs {
                logs.event(&event);
            }
            self.state.model.tracker.apply(&event);
        }
    }

    /// One supervisor event: into the log files' own lines, then the state.
    fn supervisor_event(&mut self, event: Event) {
        if let Some(logs) = &self.logs {
            logs.event(&event);
        }
        self.state.step(Input::Supervisor(event), Instant::now());
    }

    fn draw(&mut self, now: Instant) {
        self.state.begin_frame(now);
        let Some(screen) = self.screen.as_mut() else {
            return;
        };
        let (model, buffers) = (&self.state.model, &self.state.buffers);
        let terminals = &self.state.terminals;
        let drawn = screen.draw(&mut |frame| ui::draw_with(frame, model, buffers, terminals));
        self.state.end_frame();
        self.follow_pane_size();
        if let Err(err) = drawn {
            let effects = self
                .state
                .step(Input::TerminalLost(Some(err)), Instant::now());
            self.apply(effects);
        }
    }

    /// PTY jobs are as large as the output pane: after a frame whose layout changed it
    /// (a resize, a pipeline expanded), their terminals follow.
    fn follow_pane_size(&mut self) {
        let Some(areas) = self
            .state
            .size
            .and_then(|s| ui::layout(s, &self.state.model))
        else {
            return;
        };
        let size = pty::Size {
            rows: areas.output_body.height,
            cols: areas.output_body.width,
        };
        if self.pty_size != Some(size) {
            self.pty_size = Some(size);
            for io in self.ios.iter().flatten().filter(|io| io.is_pty()) {
                io.resize(size);
            }
        }
    }

    /// Sends what the user typed to job `id`, encoded for its terminal's modes.
    fn send_input(&mut self, id: usize, input: update::JobInput) {
        let Some(Some(io)) = self.ios.get(id) else {
            self.state
                .input_failed(id, "it takes no input", Instant::now());
            return;
        };
        let modes = io
            .terminal()
            .map(|t| pty::lock(t).input_modes())
            .unwrap_or_default();
        let result = match input {
            update::JobInput::Eof => io.close(),
            update::JobInput::Line(line) => io.send(line.into_bytes()),
            update::JobInput::Key(key) => io.send(encode::key(key, modes)),
            update::JobInput::Paste(text) => io.send(encode::paste(&text, modes)),
            update::JobInput::Mouse(kind, mods, col, row) => {
                match encode::mouse(kind, mods, col, row, modes) {
                    Some(bytes) => io.send(bytes),
                    None => Ok(()),
                }
            }
        };
        if let Err(err) = result {
            self.state
                .input_failed(id, &err.to_string(), Instant::now());
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Clipboard(text) => {
                    let sequence = reading::osc52(&text);
                    let written = self.screen.as_mut().map(|s| s.clipboard(&sequence));
                    if let Some(Err(err)) = written {
                        let effects = self
                            .state
                            .step(Input::TerminalLost(Some(err)), Instant::now());
                        self.apply(effects);
                    }
                }
                Effect::Save {
                    path,
                    text,
                    lines,
                    replace,
                } => {
                    let result = save(&path, text.as_bytes(), replace);
                    self.state.saved(&path, lines, result);
                }
                Effect::Control(id, control) => self.controller.control(id, control),
                Effect::Input(id, input) => self.send_input(id, input),
                Effect::ControlAll(control) => self.controller.control_all(control),
                Effect::Tree(request) => match request {
                    tree::TreeAction::Watch(job) => self.controller.watch_tree(job),
                    tree::TreeAction::Process {
                        job,
                        pid,
                        action,
                        reach,
                    } => self.controller.act_on_process(job, pid, action, reach),
                    tree::TreeAction::Pause { job, paused } => self.controller.pause(job, paused),
                },
                Effect::Shutdown => {
                    if let Some(supervisor) = self.supervisor.take() {
                        self.shutdown = Some(tokio::spawn(supervisor.shutdown()));
                    }
                }
                Effect::StartRun(limit) => {
                    if let Err(err) = self.start_run(limit) {
                        self.rerun_error = Some(err);
                        self.state.rerun_failed();
                    }
                }
                Effect::ReleaseTerminal => {
                    // Dropping a session restores the terminal; its input goes with it.
                    self.screen = None;
                    self.input = None;
                    terminal::restore();
                }
                Effect::Resize(width, height) => {
                    let resized = self.screen.as_mut().map(|s| s.resize(width, height));
                    if let Some(Err(err)) = resized {
                        let effects = self
                            .state
                            .step(Input::TerminalLost(Some(err)), Instant::now());
                        self.apply(effects);
                    }
                }
            }
        }
    }

    /// The previous run is over: start the set again with `-j limit`.
    fn start_run(&mut self, limit: usize) -> anyhow::Result<()> {
        // Its last events still belong to it (the final statuses).
        while let Ok(event) = self.events.try_recv() {
            if let Some(logs) = &self.logs {
                logs.event(&event);
            }
            self.state.model.tracker.apply(&event);
        }
        let tap = self.logs.as_ref().map(crate::logs::Logs::tap);
        let (supervisor, events) = start_supervisor(
            &self.config,
            limit,
            &self.activity,
            &self.sampled,
            self.pty_size,
            tap,
        )
        .context("cannot start the jobs again")?;
        let buffers = buffers_of(&supervisor);
        self.state
            .start_run(crate::run::tracker_for(&supervisor), buffers, limit);
        self.ios = ios_of(&supervisor);
        self.state.model.inputs = self
            .ios
            .iter()
            .map(|io| io.as_ref().map(|io| io.kind()))
            .collect();
        self.state.set_terminals(terminals_of(&self.ios));
        self.controller = supervisor.controller();
        self.supervisor = Some(supervisor);
        // The old receiver is dropped here: a late event of the old run has nowhere to go.
        self.events = events;
        self.events_open = true;
        self.max_parallel = limit;
        Ok(())
    }

    /// After the loop, on the normal screen: the summary table and the last lines of each
    /// failed job (stdout), the closing lines (stderr) and the report (`--report`).
    pub fn finish(&mut self, report: Option<&std::path::Path>) {
        // Every job is over: the logs are complete once the writer has written its queue.
        let log_reports = self.logs.as_ref().map(crate::logs::Logs::finish);
        let tracker = &self.state.model.tracker;

        let end = tracker.settled_at.unwrap_or_else(Instant::now);
        let dropped: Vec<u64> = self
            .state
            .buffers
            .iter()
            .map(|b| crate::output::lock(b).dropped())
            .collect();
        let mut text = crate::report::summary::render(tracker, Some(&dropped), end);
        text.push_str(&failed_tails(
            &self.state.model,
            &self.state.buffers,
            self.config.settings.failed_tail,
        ));
        // Nowhere else to say it when stdout is gone.
        let _ = crate::stdio::print(&text);
        match log_reports {
            Some(Ok(reports)) => {
                for problem in reports.iter().filter_map(crate::logs::LogReport::describe) {
                    crate::say!("{problem}");
                }
            }
            Some(Err(stuck)) => crate::say!("{stuck}"),
            None => {}
        }
        let tracker = &self.state.model.tracker;
        let mut model = self.state.model.clone();
        model.now = Instant::now();
        let complete = match self.state.lifecycle {
            state::Lifecycle::Done(ending) | state::Lifecycle::Stopping(ending) => ending.complete,
            _ => true,
        };
        if !complete {
            // Stopping it settled every job, but the run was cut short.
            model.tracker.settled_at = None;
        }
        if let Some(runs) = ui::runs_text(&model) {
            crate::say!("{runs}");
        }
        if let Some(err) = &self.state.draw_error {
            crate::say!("the terminal failed: {err}");
        }
        if let Some(err) = &self.rerun_error {
            crate::say!("cannot rerun: {err:#}");
        }
        if let Some(path) = report {
            let counts: Vec<_> = self
                .state
                .buffers
                .iter()
                .map(crate::report::counts_of)
                .collect();
            let report = crate::report::build(tracker, &counts, self.max_parallel, end);
            if let Err(err) = crate::report::write(&report, path) {
                crate::say!("{err:#}");
            }
        }
    }
}

/// Writes a save: a new file unless `replace`.
fn save(path: &std::path::Path, bytes: &[u8], replace: bool) -> io::Result<u64> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    Ok(bytes.len() as u64)
}

/// The last `lines` lines of each failed job's output, headed by its result and its log
/// file, for the normal screen after the TUI is gone. Child text is sanitised (no
/// escape sequence gets through), names made visible.
pub fn failed_tails(model: &Model, buffers: &[SharedBuffer], lines: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if lines == 0 {
        return out;
    }
    for (id, job) in model.jobs().iter().enumerate() {
        if !job.failed() {
            continue;
        }
        let Some(buffer) = buffers.get(id) else {
            continue;
        };
        let name = crate::stdio::visible_inline(&job.name).into_owned();
        let pipeline = model.is_pipeline(id);
        let (tail, total): (Vec<String>, usize) = {
            let buf = crate::output::lock(buffer);
            let mut tail: Vec<String> = buf
                .iter()
                .rev()
                .take(lines)
                .map(|line| {
                    let label = if pipeline {
                        format!("{name}[{}]", line.stage + 1)
                    } else {
                        name.clone()
                    };
                    let mark = match line.stream {
                        crate::output::Stream::Stdout => '|',
                        crate::output::Stream::Stderr => '!',
                    };
                    format!(
                        "{label} {mark} {}",
                        crate::output::sanitize::plain_text(line.text)
                    )
                })
                .collect();
            tail.reverse();
            (tail, buf.len())
        };
        let mut head = format!(
            "\n── {name}: {}",
            crate::stdio::visible_inline(&crate::fmt::result_text(job))
        );
        if total == 0 {
            head.push_str(" · no output");
        } else if tail.len() < total {
            let _ = write!(head, " · last {} of {total} lines", tail.len());
        }
        if let Some(path) = model.log_paths.get(id).and_then(|p| p.as_ref()) {
            let _ = write!(
                head,
                " · log {}",
                crate::stdio::visible_inline(&path.display().to_string())
            );
        }
        let _ = writeln!(out, "{head} ──");
        for line in tail {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn buffers_of(supervisor: &Supervisor) -> Vec<SharedBuffer> {
    supervisor.jobs().iter().map(|j| j.buffer.clone()).collect()
}

fn ios_of(supervisor: &Supervisor) -> Vec<Option<Arc<JobIo>>> {
    supervisor.jobs().iter().map(|j| j.io.clone()).collect()
}

fn terminals_of(ios: &[Option<Arc<JobIo>>]) -> Vec<Option<pty::SharedTerminal>> {
    ios.iter()
        .map(|io| io.as_ref().and_then(|io| io.terminal().cloned()))
        .collect()
}

/// The output pane's body on the first frame, so PTY jobs start at the size they are
/// shown at (`stty size` right at the start is already right).
fn first_pane_size(config: &Config, size: Rect) -> Option<pty::Size> {
    let jobs = config.jobs.iter().map(|job| {
        let argvs = job.stages().iter().map(|s| s.argv()).collect();
        let state = crate::supervisor::JobState::Pending(crate::supervisor::PendingReason::Queued);
        (
            job.name.clone(),
            crate::supervisor::JobStatus::new(state, argvs),
        )
    });
    let model = Model::from_statuses(jobs, "");
    ui::layout(size, &model).map(|areas| pty::Size {
        rows: areas.output_body.height,
        cols: areas.output_body.width,
    })
}

fn start_supervisor(
    config: &Config,
    max_parallel: usize,
    activity: &Arc<Notify>,
    sampled: &Arc<Notify>,
    pty_size: Option<pty::Size>,
    log_tap: Option<crate::logs::Tap>,
) -> anyhow::Result<(Supervisor, mpsc::UnboundedReceiver<Event>)> {
    Supervisor::start(
        config,
        SupervisorOptions {
            max_parallel: Some(max_parallel),
            activity: Some(activity.clone()),
            sampled: Some(sampled.clone()),
            pty_size,
            log_tap,
            ..SupervisorOptions::default()
        },
    )
}
