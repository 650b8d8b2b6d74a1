//! The app loop's decisions, without the loop: [`State::step`] takes one input (a key, a
//! supervisor event, a signal, a lost terminal, the end of a shutdown) and changes the
//! model and the [`Lifecycle`], returning the [`Effect`]s the shell must carry out
//! (controls to send, a shutdown to start, a run to start, the terminal to release).
//! The frame policy lives here too: when a frame is due, and when the loop must wake.
//!
//! Frame policy: a change marks the state dirty and a frame follows at most
//! [`FRAME_INTERVAL`] after the previous one, so bursts of output or keys become one
//! frame. With nothing changing, the loop sleeps until [`crate::ui::next_redraw`] (the
//! next clock second, a countdown tenth, a message expiring) or forever when every job
//! has settled. Resource samples do not trigger frames of their own: the sampler ticks on
//! the clock's whole seconds and reports each tick once its samples are sent, and that
//! report is the clock frame (the timer is a backup).

use std::time::{Duration, Instant};

use crossterm::event::Event as TermEvent;
use nix::sys::signal::Signal;
use ratatui::layout::Rect;

use crate::output::SharedBuffer;
use crate::supervisor::pty::SharedTerminal;
use crate::supervisor::{Control, Event, JobId, Level};
use crate::tracker::Tracker;
use crate::ui::model::{MessageKind, Quitting};
use crate::ui::{self, Model};

use super::mouse;
use super::update::{self, Action, Ctx, JobInput};

/// At most ~30 frames per second.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// How the TUI's run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// A job had failed when quitting started (exit status 1).
    pub failed: bool,
    /// Every job had settled when quitting started: the run's wall time is complete.
    pub complete: bool,
}

/// Where the TUI is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The run goes on.
    Running,
    /// The run is being stopped; a new run with `-j limit` follows (`p`).
    Rerunning { limit: usize, ending: Ending },
    /// The run is being stopped; then the TUI exits.
    Stopping(Ending),
    /// Every child is stopped and reaped: the loop ends.
    Done(Ending),
}

/// One thing that happened, for [`State::step`].
#[derive(Debug)]
// An `Input` lives for one step of the loop: boxing the supervisor's events would cost an
// allocation per event to save stack space that is never held.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// A key, a mouse report or a resize.
    Terminal(TermEvent),
    /// The terminal is gone (a read or a draw failed, or it hung up): like SIGHUP.
    TerminalLost(Option<std::io::Error>),
    Supervisor(Event),
    /// The supervisor's event channel closed.
    EventsClosed,
    /// An ending signal (INT, TERM, HUP, QUIT, USR1, USR2, ALRM).
    Signal(Signal),
    /// The running shutdown finished: every child of the run is reaped.
    ShutdownDone,
    /// Some job wrote output (a frame is due if the shown output changed).
    Activity,
    /// The sampler finished a tick (its samples were sent before): the clock frame.
    Sampled,
    /// The wake-up time the loop slept until has come.
    Tick,
    /// Asked from outside to quit, as if `q` was confirmed: `forkyard down`, or (when
    /// attached) the session went away.
    Quit,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Put this text on the host's clipboard (OSC 52, written by forkyard itself).
    Clipboard(String),
    /// Write a file (copy mode's `s`, `S`), then call [`State::saved`].
    Save {
        path: std::path::PathBuf,
        text: String,
        lines: usize,
        replace: bool,
    },
    Control(JobId, Control),
    /// Send this to the job (its terminal or its stdin pipe).
    Input(JobId, JobInput),
    ControlAll(Control),
    /// A tree pane or pause request for the supervisor.
    Tree(super::tree::TreeAction),
    /// Start stopping the current run (`Supervisor::shutdown`), answered by
    /// [`Input::ShutdownDone`].
    Shutdown,
    /// The previous run is shut down: start the set again with this `-j`, then call
    /// [`State::start_run`].
    StartRun(usize),
    /// The terminal is gone (or SIGHUP said so): restore it and draw no more.
    ReleaseTerminal,
    /// Follow a terminal resize before the next frame.
    Resize(u16, u16),
}

/// What identifies the selected output's content: any new byte, line or clear changes it.
type OutputSignature = (usize, u64, u64, usize);

pub struct State {
    pub model: Model,
    /// Job i's output, for the current run.
    pub buffers: Vec<SharedBuffer>,
    /// PTY job i's screen, for the current run (see [`State::set_ios`]).
    pub terminals: Vec<Option<SharedTerminal>>,
    pub lifecycle: Lifecycle,
    /// The first ending signal (exit status 128+N); SIGHUP when the terminal went away.
    pub ended_by: Option<Signal>,
    /// The screen size, from the start and from resize events (None once it is gone).
    pub size: Option<Rect>,
    /// Why drawing stopped, for the exit message.
    pub draw_error: Option<std::io::Error>,
    dirty: bool,
    last_draw: Option<Instant>,
    /// The next time the picture changes by itself (clocks, countdowns).
    tick_at: Option<Instant>,
    /// The selected job and its output as last drawn.
    drawn_output: Option<OutputSignature>,
}

impl State {
    pub fn new(model: Model, buffers: Vec<SharedBuffer>, size: Rect) -> State {
        State {
            model,
            buffers,
            terminals: Vec::new(),
            lifecycle: Lifecycle::Running,
            ended_by: None,
            size: Some(size),
            draw_error: None,
            dirty: true,
            last_draw: None,
            tick_at: None,
            drawn_output: None,
        }
    }

    /// The jobs' input endpoints of the current run (`ios[i]` is job i's): how each takes
    /// input, and the PTY jobs' screens.
    pub fn set_ios(&mut self, ios: &[Option<std::sync::Arc<crate::supervisor::pty::JobIo>>]) {
        self.model.inputs = ios
            .iter()
            .map(|io| io.as_ref().map(|io| io.kind()))
            .collect();
        self.terminals = ios
            .iter()
            .map(|io| io.as_ref().and_then(|io| io.terminal().cloned()))
            .collect();
        self.dirty = true;
    }

    /// Input did not reach job `id`: say why.
    pub fn input_failed(&mut self, id: JobId, why: &str, now: Instant) {
        let name = self
            .model
            .job(id)
            .map(|j| j.name.clone())
            .unwrap_or_default();
        self.model.set_message(
            format!("not sent to {name}: {why}"),
            MessageKind::Error,
            now,
        );
        self.dirty = true;
    }

    /// The exit status, once [`Lifecycle::Done`]: 128+N after signal N (129 when the
    /// terminal went away), else 1 if a job had failed when quitting started, else 0.
    pub fn exit_code(&self) -> i32 {
        let failed = match self.lifecycle {
            Lifecycle::Done(e)
            | Lifecycle::Stopping(e)
            | Lifecycle::Rerunning { ending: e, .. } => e.failed,
            Lifecycle::Running => self.model.tracker.any_failed(),
        };
        crate::run::exit_code(self.ended_by, failed)
    }

    /// Something changed since the last frame (a frame is due at the next interval).
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn is_done(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Done(_))
    }

    /// The ending of the run as it stands (quitting now would be this).
    fn ending_now(&self) -> Ending {
        Ending {
            failed: self.model.tracker.any_failed(),
            complete: self.model.tracker.settled_at.is_some(),
        }
    }

    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        self.model.now = now;
        let mut effects = Vec::new();
        match input {
            Input::Terminal(event) => self.on_terminal(event, now, &mut effects),
            Input::TerminalLost(error) => {
                if error.is_some() && self.draw_error.is_none() {
                    self.draw_error = error;
                }
                self.terminal_gone(&mut effects);
                // Nobody can see or quit us: stop everything (gracefully; the hangup is
                // the first ending signal, not a second one).
                self.ended_by.get_or_insert(Signal::SIGHUP);
                self.quit(false, &mut effects);
            }
            Input::Supervisor(event) => self.on_event(event, now),
            Input::EventsClosed => {
                // A run stopping for a rerun closes its channel too.
                if self.lifecycle == Lifecycle::Running {
                    self.quit(false, &mut effects);
                }
            }
            Input::Signal(signal) => {
                // The terminal's hangup arrives twice (the read fails, SIGHUP comes): once
                // is one request to stop, not two.
                let hangup_again =
                    signal == Signal::SIGHUP && self.ended_by == Some(Signal::SIGHUP);
                self.ended_by.get_or_insert(signal);
                if signal == Signal::SIGHUP {
                    self.terminal_gone(&mut effects);
                }
                if !hangup_again {
                    // A signal while already quitting kills at once.
                    let kill = self.model.quitting.is_some();
                    self.quit(kill, &mut effects);
                }
                self.dirty = true;
            }
            Input::ShutdownDone => match self.lifecycle {
                Lifecycle::Rerunning { limit, .. } => effects.push(Effect::StartRun(limit)),
                Lifecycle::Stopping(ending) => self.lifecycle = Lifecycle::Done(ending),
                Lifecycle::Running | Lifecycle::Done(_) => {}
            },
            Input::Activity => {
                if !self.dirty && self.output_signature() != self.drawn_output {
                    self.dirty = true;
                }
            }
            Input::Sampled | Input::Tick => self.dirty = true,
            Input::Quit => self.quit(false, &mut effects),
        }
        effects
    }

    fn terminal_gone(&mut self, effects: &mut Vec<Effect>) {
        if self.size.take().is_some() {
            effects.push(Effect::ReleaseTerminal);
        }
    }

    fn on_terminal(&mut self, event: TermEvent, now: Instant, effects: &mut Vec<Effect>) {
        let relevant = match &event {
            TermEvent::Key(_) | TermEvent::Resize(..) => true,
            // Motion is reported too (by some terminals); it changes nothing, so it must
            // not cost a frame.
            TermEvent::Mouse(m) => mouse::relevant(m, &self.model),
            TermEvent::Paste(_) => true,
            _ => false,
        };
        if !relevant || self.size.is_none() {
            return;
        }
        if let TermEvent::Resize(width, height) = event {
            self.size = Some(Rect::new(0, 0, width, height));
            effects.push(Effect::Resize(width, height));
            self.dirty = true;
            return;
        }
        let ctx = Ctx {
            buffers: &self.buffers,
            terminals: &self.terminals,
            areas: self.size.and_then(|size| ui::layout(size, &self.model)),
            now,
        };
        let actions = match event {
            TermEvent::Key(key) => {
                test_panic(key);
                self.model.unstick_message();
                update::key(&mut self.model, key, &ctx)
            }
            TermEvent::Mouse(m) if self.model.mode() == super::command::Mode::Input => {
                update::input_mouse(&self.model, m, &ctx)
            }
            TermEvent::Mouse(m) => mouse::on_mouse(&mut self.model, m, &ctx),
            TermEvent::Paste(text) => update::paste(&mut self.model, &text),
            _ => Vec::new(),
        };
        self.dirty = true;
        for action in actions {
            match action {
                Action::Control(id, control) => effects.push(Effect::Control(id, control)),
                Action::Input(id, input) => effects.push(Effect::Input(id, input)),
                Action::Quit { kill } => self.quit(kill, effects),
                Action::Rerun { max_parallel } => self.rerun(max_parallel, effects),
                Action::Clipboard(text) => effects.push(Effect::Clipboard(text)),
                Action::Tree(request) => effects.push(Effect::Tree(request)),
                Action::Save {
                    path,
                    text,
                    lines,
                    replace,
                } => effects.push(Effect::Save {
                    path,
                    text,
                    lines,
                    replace,
                }),
            }
        }
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        self.model.tracker.apply_at(&event, now);
        super::tree::on_event(&mut self.model, &event);
        if let Some(id) = self.model.input_focus
            && !self.model.job(id).is_some_and(|j| j.status.is_active())
        {
            // Its terminal is gone: the keys are forkyard's again.
            update::leave_input(&mut self.model, now);
            self.dirty = true;
        }
        match event {
            // Shown at the next clock tick; not worth a frame of its own.
            Event::Sample { .. } | Event::Machine(_) => {}
            // The tree pane follows it live.
            Event::Job { .. } | Event::Tree(_) => self.dirty = true,
            Event::Notice(notice) => {
                let kind = match notice.level {
                    Level::Info => MessageKind::Info,
                    Level::Warn => MessageKind::Warn,
                    Level::Error => MessageKind::Error,
                };
                self.model.notice(notice.text, kind, now);
                self.dirty = true;
            }
        }
    }

    /// `p`: stop the current run; [`Effect::StartRun`] follows once it is fully shut down
    /// (every child reaped), so two runs never compete for the CPUs.
    fn rerun(&mut self, limit: usize, effects: &mut Vec<Effect>) {
        if self.lifecycle != Lifecycle::Running {
            return;
        }
        self.lifecycle = Lifecycle::Rerunning {
            limit,
            ending: self.ending_now(),
        };
        self.model.rerun = Some(limit);
        self.model.overlay = None;
        self.model.prompt = None;
        effects.push(Effect::Shutdown);
        self.dirty = true;
    }

    /// The new run (after [`Effect::StartRun`]) has started: keep the previous run's
    /// figures, show the new one.
    pub fn start_run(&mut self, tracker: Tracker, buffers: Vec<SharedBuffer>, limit: usize) {
        let Lifecycle::Rerunning { ending, .. } = self.lifecycle else {
            return;
        };
        let now = Instant::now();
        let mut previous = self.model.current_run(now);
        previous.complete = ending.complete;
        self.model.start_run(tracker, limit, previous);
        self.buffers = buffers;
        self.terminals = Vec::new();
        self.lifecycle = Lifecycle::Running;
        self.drawn_output = None;
        self.tick_at = None;
        self.dirty = true;
        let limit = crate::fmt::limit_label(limit, false);
        self.model.set_message(
            format!("rerunning every job with -j {limit}"),
            MessageKind::Info,
            now,
        );
    }

    /// The shell wrote (or failed to write) a save.
    pub fn saved(&mut self, path: &std::path::Path, lines: usize, result: std::io::Result<u64>) {
        let now = Instant::now();
        super::reading::saved(&mut self.model, path, lines, result, now);
        self.dirty = true;
    }

    /// The new run could not start: the TUI ends as if the previous run was quit.
    pub fn rerun_failed(&mut self) {
        if let Lifecycle::Rerunning { ending, .. } = self.lifecycle {
            self.model.rerun = None;
            self.lifecycle = Lifecycle::Done(ending);
        }
    }

    /// Starts stopping every job (graceful, or SIGKILL with `kill`); a second request
    /// while stopping escalates to SIGKILL.
    fn quit(&mut self, kill: bool, effects: &mut Vec<Effect>) {
        self.dirty = true;
        match self.lifecycle {
            Lifecycle::Running => {
                self.lifecycle = Lifecycle::Stopping(self.ending_now());
                self.model.overlay = None;
                self.model.prompt = None;
                self.begin_quitting(kill, effects);
                effects.push(Effect::Shutdown);
            }
            Lifecycle::Rerunning { ending, .. } => {
                // The run is already stopping: it becomes the last one.
                self.model.rerun = None;
                self.lifecycle = Lifecycle::Stopping(ending);
                self.begin_quitting(kill, effects);
            }
            Lifecycle::Stopping(_) => {
                if kill && self.model.quitting != Some(Quitting::Killing) {
                    self.begin_quitting(true, effects);
                }
            }
            Lifecycle::Done(_) => {}
        }
    }

    /// Marks the run as quitting; with `kill`, every job gets SIGKILL now.
    fn begin_quitting(&mut self, kill: bool, effects: &mut Vec<Effect>) {
        if kill {
            effects.push(Effect::ControlAll(Control::Kill));
        }
        self.model.quitting = Some(if kill {
            Quitting::Killing
        } else {
            Quitting::Graceful
        });
    }

    /// When the loop must wake up by itself: the next frame when something changed, the
    /// next tick of the picture otherwise (None: only input can change anything).
    pub fn wake_at(&mut self, now: Instant) -> Option<Instant> {
        self.model.now = now;
        if self.model.expire_message(now) {
            self.dirty = true;
        }
        if self.dirty {
            return Some(self.frame_at(now));
        }
        // Remember the earliest tick since the last frame: recomputing it from `now`
        // after an unrelated wake-up (a sample) would skip a tick that is due.
        if let Some(at) = ui::next_redraw(&self.model) {
            self.tick_at = Some(self.tick_at.map_or(at, |t| t.min(at)));
        }
        self.tick_at
    }

    fn frame_at(&self, now: Instant) -> Instant {
        self.last_draw.map_or(now, |t| t + FRAME_INTERVAL)
    }

    /// A frame is due now (something changed and the last frame is old enough), and
    /// there is a terminal to draw on.
    pub fn frame_due(&self, now: Instant) -> bool {
        self.dirty && now >= self.frame_at(now)
    }

    /// Call right before drawing: the model as the frame shows it.
    pub fn begin_frame(&mut self, now: Instant) {
        self.model.now = now;
        self.last_draw = Some(now);
        self.dirty = false;
        self.tick_at = None;
        // Keep the selection visible in the table the layout gives us this time.
        if let Some(areas) = self.size.and_then(|size| ui::layout(size, &self.model)) {
            self.model.scroll_table_into_view(areas.table_rows());
        }
    }

    /// Call after drawing: what the frame showed.
    pub fn end_frame(&mut self) {
        self.drawn_output = self.output_signature();
    }

    fn output_signature(&self) -> Option<OutputSignature> {
        if self.model.merged_selected() {
            // The all row shows every job's lines: any of them changes it.
            let mut signature = (crate::ui::model::NO_JOB, 0, 0, 0);
            for buffer in &self.buffers {
                let buf = crate::output::lock(buffer);
                signature.1 += buf.total_lines();
                signature.2 += buf.bytes_received(crate::output::Stream::Stdout)
                    + buf.bytes_received(crate::output::Stream::Stderr);
                signature.3 += buf.len();
            }
            return Some(signature);
        }
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

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::supervisor::{JobState, JobStatus, Outcome};

    fn state(running: bool) -> State {
        let status = if running {
            JobStatus::new(JobState::Running, vec![vec!["sleep".to_string()]])
        } else {
            JobStatus::new(
                JobState::Finished(Outcome::Exited { code: 0 }),
                vec![vec!["true".to_string()]],
            )
        };
        let model = Model::from_statuses([("job".to_string(), status)], "test");
        State::new(model, Vec::new(), Rect::new(0, 0, 100, 30))
    }

    fn key(state: &mut State, c: char) -> Vec<Effect> {
        let event = TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        state.step(Input::Terminal(event), Instant::now())
    }

    fn step(state: &mut State, input: Input) -> Vec<Effect> {
        state.step(input, Instant::now())
    }

    #[test]
    fn quit_without_running_jobs_shuts_down_then_is_done() {
        let mut s = state(false);
        assert_eq!(key(&mut s, 'q'), [Effect::Shutdown]);
        assert!(matches!(s.lifecycle, Lifecycle::Stopping(_)));
        assert_eq!(step(&mut s, Input::ShutdownDone), []);
        assert!(s.is_done());
        assert_eq!(s.exit_code(), 0);
    }

    #[test]
    fn quit_with_running_jobs_asks_first_and_q_again_escalates_nothing() {
        let mut s = state(true);
        assert_eq!(key(&mut s, 'q'), []);
        assert_eq!(s.lifecycle, Lifecycle::Running);
        assert_eq!(key(&mut s, 'y'), [Effect::Shutdown]);
        assert_eq!(s.model.quitting, Some(Quitting::Graceful));
        // Q while stopping: SIGKILL to every job.
        assert_eq!(key(&mut s, 'Q'), [Effect::ControlAll(Control::Kill)]);
        assert_eq!(s.model.quitting, Some(Quitting::Killing));
        assert_eq!(key(&mut s, 'Q'), []);
        step(&mut s, Input::ShutdownDone);
        assert!(s.is_done());
    }

    #[test]
    fn an_ending_signal_stops_everything_and_a_second_one_kills() {
        let mut s = state(true);
        assert_eq!(
            step(&mut s, Input::Signal(Signal::SIGTERM)),
            [Effect::Shutdown]
        );
        assert_eq!(
            step(&mut s, Input::Signal(Signal::SIGUSR1)),
            [Effect::ControlAll(Control::Kill)]
        );
        step(&mut s, Input::ShutdownDone);
        // The first signal decides the status.
        assert_eq!(s.exit_code(), 143);
    }

    #[test]
    fn sighup_releases_the_terminal_and_exits_129() {
        let mut s = state(true);
        assert_eq!(
            step(&mut s, Input::Signal(Signal::SIGHUP)),
            [Effect::ReleaseTerminal, Effect::Shutdown]
        );
        assert_eq!(s.size, None);
        // Keys can no longer arrive, and would change nothing.
        assert_eq!(key(&mut s, 'Q'), []);
        step(&mut s, Input::ShutdownDone);
        assert_eq!(s.exit_code(), 129);
    }

    #[test]
    fn a_lost_terminal_is_one_hangup_however_many_ways_it_is_reported() {
        let mut s = state(true);
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(
            step(&mut s, Input::TerminalLost(Some(eio))),
            [Effect::ReleaseTerminal, Effect::Shutdown]
        );
        // The kernel's SIGHUP for the same hangup does not escalate to SIGKILL ...
        assert_eq!(step(&mut s, Input::Signal(Signal::SIGHUP)), []);
        assert_eq!(s.model.quitting, Some(Quitting::Graceful));
        // ... but another signal does.
        assert_eq!(
            step(&mut s, Input::Signal(Signal::SIGTERM)),
            [Effect::ControlAll(Control::Kill)]
        );
        step(&mut s, Input::ShutdownDone);
        assert_eq!(s.exit_code(), 129);
        assert!(s.draw_error.is_some());
    }

    #[test]
    fn rerun_shuts_down_then_starts_the_next_run() {
        let mut s = state(false);
        assert_eq!(key(&mut s, 'p'), [Effect::Shutdown]);
        assert_eq!(s.model.rerun, Some(1));
        assert_eq!(step(&mut s, Input::ShutdownDone), [Effect::StartRun(1)]);
        let tracker = s.model.tracker.clone();
        s.start_run(tracker, Vec::new(), 1);
        assert_eq!(s.lifecycle, Lifecycle::Running);
        assert_eq!(s.model.runs.len(), 1);
        assert_eq!(s.model.rerun, None);
        // Quitting while a rerun waits cancels it: the stopping run is the last.
        assert_eq!(key(&mut s, 'p'), [Effect::Shutdown]);
        assert_eq!(key(&mut s, 'q'), []);
        assert!(matches!(s.lifecycle, Lifecycle::Stopping(_)));
        assert_eq!(step(&mut s, Input::ShutdownDone), []);
        assert!(s.is_done());
    }

    #[test]
    fn output_of_any_job_redraws_the_all_row() {
        use crate::output::{OutputBuffer, Stream};
        use std::sync::{Arc, Mutex};
        let statuses = ["a", "b"].map(|name| {
            (
                name.to_string(),
                JobStatus::new(JobState::Running, vec![vec!["sleep".to_string()]]),
            )
        });
        let model = Model::from_statuses(statuses, "test");
        let buffers: Vec<SharedBuffer> = (0..2)
            .map(|_| Arc::new(Mutex::new(OutputBuffer::new(100, 1 << 20))))
            .collect();
        let mut s = State::new(model, buffers.clone(), Rect::new(0, 0, 100, 30));
        s.model.selected = crate::ui::model::RowRef::All;
        let t0 = Instant::now();
        s.begin_frame(t0);
        s.end_frame();
        step(&mut s, Input::Activity);
        assert!(!s.is_dirty(), "nothing new");
        crate::output::lock(&buffers[1]).push_line(0, Stream::Stdout, t0, b"from b");
        step(&mut s, Input::Activity);
        assert!(s.is_dirty(), "b's line shows in the all row");
    }

    #[test]
    fn frames_follow_changes_at_most_every_frame_interval() {
        let mut s = state(false);
        let t0 = Instant::now();
        assert!(s.frame_due(t0));
        s.begin_frame(t0);
        s.end_frame();
        assert!(!s.frame_due(t0));
        // A settled model has nothing to tick for.
        assert_eq!(s.wake_at(t0), None);
        key(&mut s, 'j');
        assert!(!s.frame_due(t0 + Duration::from_millis(10)));
        assert_eq!(s.wake_at(t0), Some(t0 + FRAME_INTERVAL));
        assert!(s.frame_due(t0 + FRAME_INTERVAL));
    }
}
