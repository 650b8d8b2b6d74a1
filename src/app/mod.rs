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
use crate::control::attach::{Link, News};
use crate::control::{FrontRequest, Server};
use crate::output::SharedBuffer;
use crate::supervisor::pty::{self, JobIo};
use crate::supervisor::{Controller, Event, Level, Notice, Supervisor, SupervisorOptions};
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
    /// The control socket the TUI serves.
    pub serve: crate::control::ServeOptions,
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
    if let Some(server) = shell.server.take() {
        server.close().await;
    }
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
    /// This process's supervisor, or a session attached through its socket.
    backend: Backend,
    /// The control socket this TUI serves (local runs).
    server: Option<Server>,
    /// Why the attached session's link ended, if it did.
    link_ended: Option<String>,
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

/// Where the jobs run.
// One per TUI, never moved around: boxing the supervisor would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// Here: the supervisor (taken when a shutdown starts) and its controller.
    Local {
        supervisor: Option<Supervisor>,
        controller: Controller,
    },
    /// In a session elsewhere (`forkyard attach`).
    Attached(Link),
}

impl<S: Screen, I: TerminalInput, G: SignalSource> Shell<S, I, G> {
    /// The TUI on an attached session.
    pub fn attached(
        mut link: Link,
        activity: Arc<Notify>,
        screen: S,
        input: I,
        signals: G,
        size: Rect,
    ) -> Self {
        let origin = std::path::Path::new(&link.origin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| link.origin.clone());
        let mut model = Model::new(
            link.tracker.clone(),
            format!("{origin} · session {}", link.name),
        );
        model.max_parallel = link.max_parallel;
        model.attached = Some(link.name.clone());
        if !link.keeps_output {
            model.set_sticky_message(
                "this headless run keeps no scrollback: its jobs' output cannot be shown here",
                crate::ui::model::MessageKind::Warn,
                Instant::now(),
                std::time::Duration::from_secs(3600),
            );
        }
        let n = model.tracker.jobs.len();
        model.views.resize(n, Default::default());
        let buffers = link.buffers.clone();
        let events = link
            .events
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let max_parallel = link.max_parallel;
        Shell {
            state: State::new(model, buffers, size),
            screen: Some(screen),
            input: Some(input),
            signals,
            config: Config {
                origin: link.origin.clone(),
                settings: Default::default(),
                jobs: Vec::new(),
                keys: Default::default(),
            },
            backend: Backend::Attached(link),
            server: None,
            link_ended: None,
            events,
            events_open: true,
            shutdown: None,
            activity,
            sampled: Arc::new(Notify::new()),
            max_parallel,
            rerun_error: None,
            // The session's jobs take their input there.
            ios: Vec::new(),
            pty_size: None,
            logs: None,
            log_problems: Default::default(),
        }
    }

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
        // Bound before any job starts: a taken name is an error, not a run without it.
        let (server, warning) = Server::start_or_warn(&options.serve, &config)?;
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
        if let Some(warning) = warning {
            model.set_message(warning, crate::ui::model::MessageKind::Warn, Instant::now());
        }
        let buffers = buffers_of(&supervisor);
        if let Some(server) = &server {
            server.set_run(crate::control::hub::RunView::of(
                &supervisor,
                &model.tracker,
                max_parallel,
                true,
                config.settings.scrollback,
            ));
        }
        let ios = ios_of(&supervisor);
        let mut state = State::new(model, buffers, size);
        state.set_ios(&ios);
        Ok(Shell {
            state,
            screen: Some(screen),
            input: Some(input),
            signals,
            backend: Backend::Local {
                controller: supervisor.controller(),
                supervisor: Some(supervisor),
            },
            server,
            link_ended: None,
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
                        // An attached session's link says why before its events end.
                        self.take_news();
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
                request = next_request(&mut self.server) => {
                    self.front_request(request);
                    continue;
                }
                news = next_news(&mut self.backend) => match self.on_news(news) {
                    Some(input) => input,
                    None => continue,
                },
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
            if let Some(server) = &self.server {
                server.observe(&event);
            }
            self.state.model.tracker.apply(&event);
        }
    }

    /// One event of the supervisor (or of the attached session): into the log files'
    /// own lines, to the socket's watchers, then the state.
    fn supervisor_event(&mut self, event: Event) {
        if let Some(logs) = &self.logs {
            logs.event(&event);
        }
        if let Some(server) = &self.server {
            server.observe(&event);
        }
        // The link sends its news before the events that follow it (a job a reload added
        // gets its status right after): whatever news is there is older than this event.
        self.take_news();
        self.state.step(Input::Supervisor(event), Instant::now());
    }

    /// The attached session's news that has arrived, in order.
    fn take_news(&mut self) {
        loop {
            let Backend::Attached(link) = &mut self.backend else {
                return;
            };
            let Ok(news) = link.news.try_recv() else {
                return;
            };
            if let Some(input) = self.on_news(news) {
                let effects = self.state.step(input, Instant::now());
                self.apply(effects);
            }
        }
    }

    /// A request from the control socket that only this loop can carry out.
    fn front_request(&mut self, request: FrontRequest) {
        match request {
            FrontRequest::Quit => {
                let effects = self.state.step(Input::Quit, Instant::now());
                self.apply(effects);
            }
            FrontRequest::Reload(reply) => {
                let _ = reply.send(self.reload());
            }
        }
    }

    fn reload(&mut self) -> Result<crate::control::ReloadOutcome, String> {
        let Backend::Local {
            supervisor: Some(supervisor),
            controller,
        } = &mut self.backend
        else {
            return Err("the run is stopping".into());
        };
        if self.state.lifecycle != state::Lifecycle::Running {
            return Err("the run is stopping".into());
        }
        let reloaded = crate::control::reload(
            supervisor,
            &self.config,
            self.server.as_ref(),
            &mut self.state.model.tracker,
        )?;
        *controller = supervisor.controller();
        self.ios = ios_of(supervisor);
        self.config = reloaded.config;
        self.state.buffers.extend(reloaded.buffers);
        self.state.model.sync_jobs();
        self.state.set_ios(&self.ios);
        self.notice(reloaded.summary);
        Ok(reloaded.outcome)
    }

    fn notice(&mut self, text: String) {
        self.supervisor_event(Event::Notice(Notice {
            job: None,
            level: Level::Info,
            text,
        }));
    }

    /// What the attached session's link says besides events.
    fn on_news(&mut self, news: News) -> Option<Input> {
        let ended = matches!(news, News::Ended(_));
        let said = crate::control::attach::absorb(news, &mut self.state);
        if let Some(text) = &said {
            self.notice(text.clone());
        }
        if ended {
            self.link_ended = said;
            return Some(Input::Quit);
        }
        None
    }

    fn draw(&mut self, now: Instant) {
        if let Backend::Attached(link) = &mut self.backend {
            // The session sends the output of the job on screen only.
            link.watch(Some(self.state.model.selected_job()));
        }
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
            match (effect, &mut self.backend) {
                (Effect::Clipboard(text), _) => {
                    let sequence = reading::osc52(&text);
                    let written = self.screen.as_mut().map(|s| s.clipboard(&sequence));
                    if let Some(Err(err)) = written {
                        let effects = self
                            .state
                            .step(Input::TerminalLost(Some(err)), Instant::now());
                        self.apply(effects);
                    }
                }
                (
                    Effect::Save {
                        path,
                        text,
                        lines,
                        replace,
                    },
                    _,
                ) => {
                    let result = save(&path, text.as_bytes(), replace);
                    self.state.saved(&path, lines, result);
                }
                (Effect::Input(id, input), _) => self.send_input(id, input),
                (Effect::Control(id, control), Backend::Local { controller, .. }) => {
                    controller.control(id, control)
                }
                (Effect::Control(id, control), Backend::Attached(link)) => {
                    link.control(id, control)
                }
                (Effect::ControlAll(control), Backend::Local { controller, .. }) => {
                    controller.control_all(control)
                }
                // Only quitting sends every job a control (SIGKILL): detaching never
                // touches the session's jobs.
                (Effect::ControlAll(_), Backend::Attached(_)) => {}
                (Effect::Tree(request), Backend::Local { controller, .. }) => match request {
                    tree::TreeAction::Watch(job) => controller.watch_tree(job),
                    tree::TreeAction::Process {
                        job,
                        pid,
                        action,
                        reach,
                    } => controller.act_on_process(job, pid, action, reach),
                    tree::TreeAction::Pause { job, paused } => controller.pause(job, paused),
                },
                // Refused at the key (`tree::open`, `tree::pause`): the session's process
                // trees are not carried over its socket.
                (Effect::Tree(_), Backend::Attached(_)) => {}
                (Effect::Shutdown, Backend::Local { supervisor, .. }) => {
                    if let Some(supervisor) = supervisor.take() {
                        self.shutdown = Some(tokio::spawn(supervisor.shutdown()));
                    }
                }
                (Effect::Shutdown, Backend::Attached(link)) => {
                    link.detach();
                    self.shutdown = Some(tokio::spawn(async {}));
                }
                (Effect::StartRun(_), Backend::Attached(_)) => {
                    self.rerun_error = Some(anyhow::anyhow!("an attached TUI cannot rerun"));
                    self.state.rerun_failed();
                }
                (Effect::StartRun(limit), Backend::Local { .. }) => {
                    if let Err(err) = self.start_run(limit) {
                        self.rerun_error = Some(err);
                        self.state.rerun_failed();
                    }
                }
                (Effect::ReleaseTerminal, _) => {
                    // Dropping a session restores the terminal; its input goes with it.
                    self.screen = None;
                    self.input = None;
                    terminal::restore();
                }
                (Effect::Resize(width, height), _) => {
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
        self.state.set_ios(&self.ios);
        if let Some(server) = &self.server {
            server.set_run(crate::control::hub::RunView::of(
                &supervisor,
                &self.state.model.tracker,
                limit,
                true,
                self.config.settings.scrollback,
            ));
        }
        self.backend = Backend::Local {
            controller: supervisor.controller(),
            supervisor: Some(supervisor),
        };
        // The old receiver is dropped here: a late event of the old run has nowhere to go.
        self.events = events;
        self.events_open = true;
        self.max_parallel = limit;
        Ok(())
    }

    /// After the loop, on the normal screen: the summary table and the last lines of each
    /// failed job (stdout), the closing lines (stderr) and the report (`--report`).
    pub fn finish(&mut self, report: Option<&std::path::Path>) {
        if let Backend::Attached(link) = &self.backend {
            let name = crate::stdio::visible_inline(&link.name).into_owned();
            match &self.link_ended {
                Some(why) => crate::say!("{}", crate::stdio::visible_inline(why)),
                None => crate::say!(
                    "detached from session `{name}`; its jobs keep running (`forkyard attach \
                     {name}` again, `forkyard down {name}` stops it)"
                ),
            }
            return;
        }
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

async fn next_request(server: &mut Option<Server>) -> FrontRequest {
    match server {
        Some(server) => server.next_request().await,
        None => std::future::pending().await,
    }
}

async fn next_news(backend: &mut Backend) -> News {
    match backend {
        Backend::Attached(link) => match link.news.recv().await {
            Some(news) => news,
            None => std::future::pending().await,
        },
        Backend::Local { .. } => std::future::pending().await,
    }
}

fn buffers_of(supervisor: &Supervisor) -> Vec<SharedBuffer> {
    supervisor.jobs().iter().map(|j| j.buffer.clone()).collect()
}

fn ios_of(supervisor: &Supervisor) -> Vec<Option<Arc<JobIo>>> {
    supervisor.jobs().iter().map(|j| j.io.clone()).collect()
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
