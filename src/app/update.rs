//! What a command does: [`update`] changes the model for one [`Command`] in the current
//! mode and returns what the loop must tell the supervisor (or itself) as [`Action`]s.
//! [`key`] turns a key press into a command through the model's keymap first (or into
//! text, in a prompt; or a signal's number, in the menu).
//!
//! Handlers mutate only the model (and clear a buffer on `clear`); nothing here does I/O.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use crate::output::SharedBuffer;
use crate::supervisor::pty::{InputKind, SharedTerminal};
use crate::supervisor::signals::COMMON_SIGNALS;
use crate::supervisor::{Control, JobId};
use crate::ui::Areas;
use crate::ui::model::{
    Focus, MessageKind, Model, Overlay, Prompt, PromptKind, SaveWhat, Search, WaitTarget,
};
use crate::ui::pane;

use super::command::{Command, Mode};
use super::keymap::Key;

/// The `w` prompt's suggestion.
pub const DEFAULT_WAIT: &str = "5s";
/// The longest `w` deadline: past that, a typo (`1e19`) rather than a plan.
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest prompt input, in characters.
const MAX_INPUT: usize = 200;

/// Input for a job, as the user gave it; the shell encodes it for the job's terminal
/// (whose modes decide how) or pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobInput {
    Key(KeyEvent),
    Paste(String),
    /// A mouse event at (column, row) of the job's screen.
    Mouse(MouseEventKind, KeyModifiers, u16, u16),
    /// A line for a `stdin = "pipe"` job, with its `\n`.
    Line(String),
    /// Close a `stdin = "pipe"` job's stdin.
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Control(JobId, Control),
    Input(JobId, JobInput),
    /// Put this text on the host's clipboard (OSC 52).
    Clipboard(String),
    /// Write `text` (`lines` lines) to `path`; `replace` an existing file.
    Save {
        path: std::path::PathBuf,
        text: String,
        lines: usize,
        replace: bool,
    },
    /// Stop every job and exit; `kill` sends SIGKILL to all first (or, when already
    /// quitting, escalates to it).
    Quit {
        kill: bool,
    },
    /// Stop the current run and run the whole set again with this `-j` (0 = unlimited).
    Rerun {
        max_parallel: usize,
    },
    /// The process tree pane's and `z`'s requests.
    Tree(super::tree::TreeAction),
}

/// What a handler may look at besides the model.
pub struct Ctx<'a> {
    pub buffers: &'a [SharedBuffer],
    /// PTY jobs' screens (the search looks there too).
    pub terminals: &'a [Option<SharedTerminal>],
    /// The current layout (None when the terminal is too small).
    pub areas: Option<Areas>,
    pub now: Instant,
}

impl Ctx<'_> {
    fn output_rows(&self) -> usize {
        self.areas.map(|a| a.output_rows()).unwrap_or(1).max(1)
    }
}

/// Parses a wait deadline: a bare number is seconds (`30`, `1.5`); otherwise humantime
/// (`500ms`, `2m`, `1m30s`). At most [`MAX_WAIT`].
pub fn parse_deadline(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("enter a duration, e.g. 30, 500ms, 2m".into());
    }
    let too_long = || "at most 365 days".to_string();
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("not a duration: {text}"));
        }
        if secs > MAX_WAIT.as_secs_f64() {
            return Err(too_long());
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    match humantime::parse_duration(text) {
        Ok(d) if d <= MAX_WAIT => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(_) => Err(format!("not a duration: {text}")),
    }
}

/// A key press: through the keymap of the current mode to a command; in a prompt,
/// printable keys are text; in the signal menu, digits pick a signal.
pub fn key(model: &mut Model, event: KeyEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    if model.mode() == Mode::Input {
        // Every key goes to the job, but the one that leaves.
        let leave = Key::of(&event)
            .is_some_and(|k| model.keymap.lookup(Mode::Input, k) == Some(Command::InputLeave));
        if leave {
            return update(model, Command::InputLeave, ctx);
        }
        return match model.input_focus {
            Some(id) => vec![Action::Input(id, JobInput::Key(event))],
            None => Vec::new(),
        };
    }
    let Some(key) = Key::of(&event) else {
        return Vec::new();
    };
    let mode = model.mode();
    if let Some(command) = model.keymap.lookup(mode, key) {
        return update(model, command, ctx);
    }
    if key.mods.contains(KeyModifiers::ALT) {
        // A terminal sends Alt-x as ESC x, and Esc then x typed fast look the same: an
        // unbound Alt key is the two keys.
        let mut actions = self::key(model, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE), ctx);
        let rest = KeyEvent::new(key.code, key.mods.difference(KeyModifiers::ALT));
        actions.extend(self::key(model, rest, ctx));
        return actions;
    }
    if mode.reserves(key)
        && let KeyCode::Char(c) = key.code
    {
        match mode {
            Mode::Prompt => type_char(model, c),
            Mode::SignalMenu => {
                // The menu numbers its entries 1..9, 0.
                if let Some(digit) = c.to_digit(10) {
                    return pick_signal(model, (digit as usize + 9) % 10);
                }
            }
            _ => {}
        }
    }
    Vec::new()
}

/// Applies one command in the model's current mode.
pub fn update(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    if command == Command::Interrupt {
        // First: stop everything gracefully; a second time kills.
        return vec![Action::Quit {
            kill: model.quitting.is_some(),
        }];
    }
    if model.quitting.is_some() || model.rerun.is_some() {
        return ending(model, command, ctx);
    }
    match model.mode() {
        Mode::Normal => normal(model, command, ctx),
        Mode::Prompt => prompt(model, command, ctx),
        Mode::Help => help(model, command),
        Mode::ConfirmQuit => confirm_quit(model, command),
        Mode::ConfirmRerun => confirm_rerun(model, command),
        Mode::SignalMenu => signal_menu(model, command),
        Mode::Input => {
            if command == Command::InputLeave {
                leave_input(model, ctx.now);
            }
            Vec::new()
        }
        Mode::Copy => super::reading::copy_mode(model, command, ctx),
        Mode::Tree => super::tree::tree_mode(model, command, ctx),
    }
}

/// Keys are forkyard's again.
pub(crate) fn leave_input(model: &mut Model, now: Instant) {
    if let Some(id) = model.input_focus.take() {
        let name = model.job(id).map(|j| j.name.clone()).unwrap_or_default();
        model.set_message(
            format!("keys go to forkyard again (not to {name})"),
            MessageKind::Info,
            now,
        );
    }
}

/// `i`: a PTY job's terminal gets the keys; a `stdin = "pipe"` job gets a line prompt.
fn start_input(model: &mut Model, id: JobId, now: Instant) {
    let Some(job) = model.job(id) else {
        return;
    };
    let name = job.name.clone();
    let active = job.status.is_active();
    match model.input_kind(id) {
        Some(_) if !active => {
            model.set_message(format!("{name} is not running"), MessageKind::Error, now);
        }
        Some(InputKind::Terminal) => {
            model.input_focus = Some(id);
            if let Some(view) = model.view_mut(id) {
                view.follow = true;
            }
        }
        Some(InputKind::Pipe) => model.prompt = Some(Prompt::new(PromptKind::Input(id), "")),
        None => model.set_message(
            format!("{name} takes no input: give it pty = true (a terminal) or stdin = \"pipe\""),
            MessageKind::Error,
            now,
        ),
    }
}

/// A paste (the host terminal's bracketed paste): to the job's terminal while typing
/// into it; into a prompt as text (a stdin prompt sends each complete line); ignored
/// on the main screen, where it would otherwise run as keys.
pub fn paste(model: &mut Model, text: &str) -> Vec<Action> {
    match model.mode() {
        Mode::Input => match model.input_focus {
            Some(id) => vec![Action::Input(id, JobInput::Paste(text.to_string()))],
            None => Vec::new(),
        },
        Mode::Prompt => {
            let mut actions = Vec::new();
            let kind = model.prompt.as_ref().map(|p| p.kind);
            let mut lines = text.split('\n').peekable();
            while let Some(line) = lines.next() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                for c in line.chars().filter(|c| !c.is_control()) {
                    type_char(model, c);
                }
                if lines.peek().is_none() {
                    break;
                }
                match kind {
                    Some(PromptKind::Input(id)) => {
                        if let Some(prompt) = model.prompt.as_mut() {
                            let mut line = std::mem::take(&mut prompt.input);
                            line.push('\n');
                            actions.push(Action::Input(id, JobInput::Line(line)));
                        }
                    }
                    // Other prompts take one line.
                    _ => break,
                }
            }
            actions
        }
        _ => Vec::new(),
    }
}

/// A mouse event while typing into a job: inside its pane, for the job (the shell sends
/// it if the program asked for mouse reports); elsewhere nothing.
pub fn input_mouse(model: &Model, event: MouseEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let (Some(id), Some(areas)) = (model.input_focus, ctx.areas) else {
        return Vec::new();
    };
    let body = areas.output_body;
    let inside = event.column >= body.x
        && event.column < body.right()
        && event.row >= body.y
        && event.row < body.bottom();
    if !inside {
        return Vec::new();
    }
    vec![Action::Input(
        id,
        JobInput::Mouse(
            event.kind,
            event.modifiers,
            event.column - body.x,
            event.row - body.y,
        ),
    )]
}

/// While the run stops (to quit, or before a rerun): looking around is allowed, job
/// commands are not; quit still works (Q kills what is left).
fn ending(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    match command {
        Command::QuitNow => vec![Action::Quit { kill: true }],
        // While a run stops before the next one, q still quits (gracefully).
        Command::Quit if model.quitting.is_none() => vec![Action::Quit { kill: false }],
        _ if model.mode() == Mode::Tree => {
            super::tree::navigate(model, command, ctx);
            Vec::new()
        }
        _ => {
            navigate(model, command, ctx);
            Vec::new()
        }
    }
}

fn normal(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    let id = model.selected_job();
    let name = model.job(id).map(|j| j.name.clone()).unwrap_or_default();
    let active = model.job(id).is_some_and(|j| j.status.is_active());
    let now = ctx.now;
    let for_one_job = matches!(
        command,
        Command::Stop
            | Command::Kill
            | Command::Wait
            | Command::Restart
            | Command::Start
            | Command::Signal
            | Command::Clear
            | Command::Tree
            | Command::Pause
    );
    if for_one_job && model.merged_selected() {
        model.set_message(
            "the all row shows every job's output: select a job for that",
            MessageKind::Info,
            now,
        );
        return Vec::new();
    }
    match command {
        Command::CopyMode => return super::reading::enter_copy(model, ctx),
        Command::Tree => return super::tree::open(model, ctx),
        Command::Pause => return super::tree::pause(model, id, ctx),
        Command::Save => {
            super::reading::open_save(model, SaveWhat::Scrollback, ctx);
            return Vec::new();
        }
        Command::Filter => {
            if model.has_all_row() {
                model.selected = crate::ui::model::RowRef::All;
            }
            let current = model.merged_filter.text();
            model.prompt = Some(Prompt::new(PromptKind::Filter, &current));
            return Vec::new();
        }
        _ => {}
    }
    match command {
        Command::Quit => {
            // Attached, quitting only detaches: nothing to confirm.
            if model.unsettled_count() > 0 && model.attached.is_none() {
                model.overlay = Some(Overlay::ConfirmQuit);
                Vec::new()
            } else {
                vec![Action::Quit { kill: false }]
            }
        }
        Command::QuitNow => vec![Action::Quit { kill: true }],
        Command::Help => {
            model.overlay = Some(Overlay::Help { scroll: 0 });
            Vec::new()
        }
        Command::Rerun if model.attached.is_some() => {
            model.set_message(
                "an attached TUI cannot rerun the session's jobs (r restarts one)",
                MessageKind::Warn,
                now,
            );
            Vec::new()
        }
        Command::Rerun => {
            let limit = model.next_limit(model.max_parallel);
            if model.unsettled_count() > 0 {
                model.overlay = Some(Overlay::ConfirmRerun { limit });
                Vec::new()
            } else {
                vec![Action::Rerun {
                    max_parallel: limit,
                }]
            }
        }
        Command::Input => {
            start_input(model, id, now);
            Vec::new()
        }
        Command::Stop => vec![Action::Control(id, Control::Stop)],
        Command::Kill => vec![Action::Control(id, Control::Kill)],
        Command::Restart => {
            model.set_message(format!("restarting {name}"), MessageKind::Info, now);
            vec![Action::Control(id, Control::Restart)]
        }
        Command::RestartAll => {
            model.set_message("restarting every job", MessageKind::Info, now);
            (0..model.jobs().len())
                .map(|id| Action::Control(id, Control::Restart))
                .collect()
        }
        Command::Start => {
            if active {
                model.set_message(format!("{name} is already running"), MessageKind::Info, now);
                Vec::new()
            } else {
                model.set_message(format!("starting {name}"), MessageKind::Info, now);
                vec![Action::Control(id, Control::Start)]
            }
        }
        Command::Wait | Command::WaitAll => {
            // The prompt opens even when there is nothing to wait for, saying so: what
            // the user types next (a deadline) must land in it, not act as commands.
            let target = if command == Command::Wait {
                WaitTarget::Job(id)
            } else {
                WaitTarget::All
            };
            let mut prompt = Prompt::new(PromptKind::Wait(target), DEFAULT_WAIT);
            prompt.error = nothing_to_wait_for(model, target);
            model.prompt = Some(prompt);
            Vec::new()
        }
        Command::Signal => {
            if active {
                model.overlay = Some(Overlay::Signals { selected: 0 });
            } else {
                model.set_message(format!("{name} is not running"), MessageKind::Error, now);
            }
            Vec::new()
        }
        Command::Search => {
            let current = model
                .search
                .as_ref()
                .map(|s| s.query.clone())
                .unwrap_or_default();
            // The last query is offered selected: typing replaces it, → edits it.
            model.prompt = Some(Prompt::new(PromptKind::Search, &current));
            Vec::new()
        }
        Command::SearchNext => {
            search_step(model, ctx, true);
            Vec::new()
        }
        Command::SearchPrev => {
            search_step(model, ctx, false);
            Vec::new()
        }
        Command::Follow => {
            toggle_follow(model, ctx);
            Vec::new()
        }
        Command::Clear => {
            if let Some(buffer) = ctx.buffers.get(id) {
                crate::output::lock(buffer).clear();
            }
            if let Some(view) = model.view_mut(id) {
                *view = Default::default();
            }
            if let Some(search) = &mut model.search {
                search.current = None;
            }
            model.set_message(
                format!("cleared the output of {name}"),
                MessageKind::Info,
                now,
            );
            Vec::new()
        }
        Command::Dismiss => {
            model.search = None;
            Vec::new()
        }
        _ => {
            navigate(model, command, ctx);
            Vec::new()
        }
    }
}

/// Why a wait cannot start (the prompt shows it), or None.
fn nothing_to_wait_for(model: &Model, target: WaitTarget) -> Option<String> {
    match target {
        WaitTarget::Job(id) => {
            let job = model.job(id)?;
            (!job.status.is_active())
                .then(|| format!("{} is not running: nothing to wait for", job.name))
        }
        WaitTarget::All => (model.active_count() == 0)
            .then(|| "no job is running: nothing to wait for".to_string()),
    }
}

/// Selection, expansion, focus, views and scrolling: allowed at any time (even while
/// quitting).
fn navigate(model: &mut Model, command: Command, ctx: &Ctx<'_>) {
    let rows = ctx.output_rows();
    let page = rows.saturating_sub(1).max(1);
    match command {
        Command::SelectPrev => match model.focus {
            Focus::Jobs => select(model, -1),
            Focus::Output => scroll(model, ctx, -1),
        },
        Command::SelectNext => match model.focus {
            Focus::Jobs => select(model, 1),
            Focus::Output => scroll(model, ctx, 1),
        },
        Command::Expand if model.focus == Focus::Output => {
            super::reading::hscroll(model, ctx, true);
        }
        Command::Collapse if model.focus == Focus::Output => {
            super::reading::hscroll(model, ctx, false);
        }
        Command::Expand => {
            model.set_expanded(true);
        }
        Command::Collapse => collapse(model),
        Command::ScrollRight => super::reading::hscroll(model, ctx, true),
        Command::ScrollLeft => super::reading::hscroll(model, ctx, false),
        Command::Timestamps => {
            model.timestamps = !model.timestamps;
            let said = if model.timestamps {
                "timestamps on: each line's arrival time"
            } else {
                "timestamps off"
            };
            model.set_message(said, MessageKind::Info, ctx.now);
        }
        Command::Wrap => {
            model.wrap = !model.wrap;
            model.hscroll = 0;
            let said = if model.wrap {
                "long lines wrap"
            } else {
                "long lines are cut at the edge (< > scroll sideways)"
            };
            model.set_message(said, MessageKind::Info, ctx.now);
        }
        Command::StreamFilter => super::reading::cycle_stream(model, ctx),
        // The timeline has no output pane to focus.
        Command::Focus if !model.timeline => {
            model.focus = match model.focus {
                Focus::Jobs => Focus::Output,
                Focus::Output => Focus::Jobs,
            };
        }
        Command::Timeline => {
            model.timeline = !model.timeline;
            if model.timeline {
                model.focus = Focus::Jobs;
                model.copy = None;
                if model.merged_selected() {
                    // The timeline has no "all" row.
                    model.selected = crate::ui::model::RowRef::Job(0);
                }
            }
        }
        Command::PageUp => scroll(model, ctx, -(page as isize)),
        Command::PageDown => scroll(model, ctx, page as isize),
        Command::Top => super::reading::top(model, ctx),
        Command::Bottom => super::reading::bottom(model),
        _ => {}
    }
}

fn collapse(model: &mut Model) {
    // Collapsing may move the selection from a stage row to its job.
    if model.set_expanded(false) {
        clear_current_match(model);
    }
}

pub(crate) fn select(model: &mut Model, delta: isize) {
    let before = model.selected;
    model.select_relative(delta);
    if model.selected != before {
        clear_current_match(model);
    }
}

/// The current match refers to a line of the previously shown output.
pub(crate) fn clear_current_match(model: &mut Model) {
    if let Some(search) = &mut model.search {
        search.current = None;
        search.current_key = None;
    }
    // So does the copy cursor, and the sideways scroll of the old lines.
    model.copy = None;
    model.hscroll = 0;
}

/// Runs `f` on the selected job's buffer (locked), its filter and view.
pub(crate) fn with_buffer(
    model: &mut Model,
    ctx: &Ctx<'_>,
    f: impl FnOnce(&crate::output::OutputBuffer, pane::Filter, &mut crate::ui::model::OutputView, usize),
) {
    let id = model.selected_job();
    let filter = crate::ui::pane_filter(model);
    let rows = ctx.output_rows();
    let (Some(buffer), Some(view)) = (ctx.buffers.get(id), model.views.get_mut(id)) else {
        return;
    };
    let buf = crate::output::lock(buffer);
    f(&buf, filter, view, rows);
}

/// Scrolls the output by `delta` rows (negative: up).
pub(crate) fn scroll(model: &mut Model, ctx: &Ctx<'_>, delta: isize) {
    if model.merged_selected() {
        super::reading::scroll_merged(model, ctx, delta);
        return;
    }
    with_buffer(model, ctx, |buf, filter, view, rows| {
        if delta < 0 {
            pane::scroll_up(buf, filter, view, rows, delta.unsigned_abs());
        } else {
            pane::scroll_down(buf, filter, view, rows, delta.unsigned_abs());
        }
    });
}

fn toggle_follow(model: &mut Model, ctx: &Ctx<'_>) {
    if model.merged_selected() {
        super::reading::toggle_follow_merged(model, ctx);
        return;
    }
    let id = model.selected_job();
    if model.view(id).follow {
        // Pause where we are: scrolling up zero rows freezes the current page.
        with_buffer(model, ctx, |buf, filter, view, rows| {
            pane::scroll_up(buf, filter, view, rows, 0);
        });
        if model.view(id).follow {
            // Everything fits on one page: still pause, at the first row.
            with_buffer(model, ctx, |buf, _, view, _| pane::scroll_to_top(buf, view));
        }
    } else if let Some(view) = model.view_mut(id) {
        view.follow = true;
    }
}

/// `n` / `N`: the next match below / above the current one, wrapping around.
fn search_step(model: &mut Model, ctx: &Ctx<'_>, forward: bool) {
    let Some(search) = model.search.clone() else {
        let hint = match model.keymap.first_key(Mode::Normal, Command::Search) {
            Some(key) => format!("no search: press {key} to search"),
            None => "no search".to_string(),
        };
        model.set_message(hint, MessageKind::Error, ctx.now);
        return;
    };
    if model.merged_selected() {
        super::reading::search_merged(model, ctx, &search, forward);
        return;
    }
    let id = model.selected_job();
    let view = model.view(id);
    let wrap = model.wrap;
    let mut wrapped = false;
    let mut found = None;
    with_buffer(model, ctx, |buf, filter, _, _| {
        let from = match (search.current, forward) {
            (Some(seq), _) => Some(seq),
            (None, _) if view.follow => None,
            (None, true) => view.top.checked_sub(1),
            (None, false) => Some(view.top),
        };
        let mut hit = pane::find(buf, filter, &search.query, from, forward);
        if hit.is_none() && from.is_some() {
            hit = pane::find(buf, filter, &search.query, None, forward);
            wrapped = hit.is_some();
        }
        found = hit;
    });
    if let Some(seq) = found {
        with_buffer(model, ctx, |buf, filter, view_mut, rows| {
            pane::reveal(buf, filter, view_mut, rows, seq, wrap);
        });
    }
    match found {
        Some(seq) => {
            let key = ctx.buffers.get(id).and_then(|b| {
                crate::output::lock(b)
                    .get_seq(seq)
                    .map(|l| crate::ui::model::LineKey {
                        at: l.at,
                        job: id,
                        seq,
                    })
            });
            if let Some(s) = &mut model.search {
                s.current = Some(seq);
                s.current_key = key;
            }
            if wrapped {
                model.set_message("search wrapped around", MessageKind::Info, ctx.now);
            }
        }
        None => model.set_message(
            format!("no match for {:?}", search.query),
            MessageKind::Error,
            ctx.now,
        ),
    }
}

fn type_char(model: &mut Model, c: char) {
    let Some(prompt) = model.prompt.as_mut() else {
        return;
    };
    if prompt.fresh {
        prompt.input.clear();
        prompt.fresh = false;
    }
    if prompt.input.chars().count() < MAX_INPUT {
        prompt.input.push(c);
    }
    if !matches!(prompt.kind, PromptKind::Wait(_)) || !nothing_running(prompt) {
        prompt.error = None;
        prompt.replace = None;
    }
}

/// The prompt's error says there is nothing to wait for: typing does not change that.
fn nothing_running(prompt: &Prompt) -> bool {
    prompt
        .error
        .as_deref()
        .is_some_and(|e| e.ends_with("nothing to wait for"))
}

fn prompt(model: &mut Model, command: Command, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(prompt) = model.prompt.as_mut() else {
        return Vec::new();
    };
    match command {
        Command::PromptCancel => model.prompt = None,
        Command::PromptSubmit => return submit_prompt(model, ctx),
        Command::InputEof => {
            if let PromptKind::Input(id) = prompt.kind {
                model.prompt = None;
                let name = model.job(id).map(|j| j.name.clone()).unwrap_or_default();
                model.set_message(
                    format!("closed the stdin of {name}"),
                    MessageKind::Info,
                    ctx.now,
                );
                return vec![Action::Input(id, JobInput::Eof)];
            }
        }
        Command::PromptDelete | Command::PromptClear => {
            if prompt.fresh || command == Command::PromptClear {
                prompt.input.clear();
            } else {
                prompt.input.pop();
            }
            prompt.fresh = false;
            if !nothing_running(prompt) {
                prompt.error = None;
            }
        }
        // Keep the suggestion but edit it instead of replacing it.
        Command::PromptEdit => prompt.fresh = false,
        _ => {}
    }
    Vec::new()
}

fn submit_prompt(model: &mut Model, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(prompt) = model.prompt.clone() else {
        return Vec::new();
    };
    match prompt.kind {
        PromptKind::Wait(target) => {
            let error =
                nothing_to_wait_for(model, target).or_else(|| parse_deadline(&prompt.input).err());
            let within = match (error, parse_deadline(&prompt.input)) {
                (None, Ok(within)) => within,
                (error, _) => {
                    if let Some(p) = model.prompt.as_mut() {
                        p.error = error;
                    }
                    return Vec::new();
                }
            };
            model.prompt = None;
            match target {
                WaitTarget::Job(id) => vec![Action::Control(id, Control::Wait(within))],
                WaitTarget::All => {
                    model.set_message(
                        format!(
                            "waiting up to {} for every running job, then stopping it",
                            humantime::format_duration(within)
                        ),
                        MessageKind::Info,
                        ctx.now,
                    );
                    model
                        .jobs()
                        .iter()
                        .enumerate()
                        .filter(|(_, j)| j.status.is_active())
                        .map(|(id, _)| Action::Control(id, Control::Wait(within)))
                        .collect()
                }
            }
        }
        PromptKind::Input(id) => {
            // The prompt stays open for the next line.
            if let Some(p) = model.prompt.as_mut() {
                p.input.clear();
                p.fresh = false;
            }
            vec![Action::Input(
                id,
                JobInput::Line(format!("{}\n", prompt.input)),
            )]
        }
        PromptKind::Search => {
            model.prompt = None;
            let query = prompt.input;
            if query.is_empty() {
                model.search = None;
                return Vec::new();
            }
            model.search = Some(Search {
                query,
                current: None,
                current_key: None,
            });
            let id = model.selected_job();
            if model.view(id).follow
                && let Some(Some(terminal)) = ctx.terminals.get(id)
            {
                let query = model.search.as_ref().map_or("", |s| s.query.as_str());
                let on_screen = crate::ui::terminal_pane::screen_matches(terminal, query);
                if on_screen > 0 {
                    // On the live screen: highlighted there; n and N go through the
                    // scrollback.
                    model.set_message(
                        format!(
                            "{} on the screen (n: the scrollback)",
                            crate::ui::format::count(on_screen as u64, "match", "matches")
                        ),
                        MessageKind::Info,
                        ctx.now,
                    );
                    return Vec::new();
                }
            }
            // From a followed tail, the newest match; from a paused page, the first one
            // at or below its top.
            let following = if model.merged_selected() {
                model.merged.follow
            } else {
                model.view(model.selected_job()).follow
            };
            search_step(model, ctx, !following);
            Vec::new()
        }
        PromptKind::Filter => {
            model.prompt = None;
            model.merged_filter = crate::ui::model::JobFilter::parse(&prompt.input);
            model.merged = Default::default();
            clear_current_match(model);
            let shown = crate::ui::merged_filter(model)
                .jobs
                .iter()
                .filter(|j| **j)
                .count();
            let said = if model.merged_filter.patterns.is_empty() {
                "all: every job".to_string()
            } else {
                format!(
                    "all: {} ({})",
                    crate::ui::format::count(shown as u64, "job", "jobs"),
                    model.merged_filter.text()
                )
            };
            model.set_message(said, MessageKind::Info, ctx.now);
            Vec::new()
        }
        PromptKind::Save(what) => super::reading::submit_save(model, ctx, what, &prompt),
    }
}

fn help(model: &mut Model, command: Command) -> Vec<Action> {
    let Some(Overlay::Help { scroll }) = model.overlay else {
        return Vec::new();
    };
    // The view clamps the scroll to what the terminal shows; this only keeps it from
    // running off.
    let last = crate::ui::help_line_count(model);
    let scroll = match command {
        Command::Cancel | Command::Help => {
            model.overlay = None;
            return Vec::new();
        }
        Command::SelectNext => (scroll + 1).min(last),
        Command::PageDown => (scroll + 5).min(last),
        Command::SelectPrev => scroll.saturating_sub(1),
        Command::PageUp => scroll.saturating_sub(5),
        _ => scroll,
    };
    model.overlay = Some(Overlay::Help { scroll });
    Vec::new()
}

fn confirm_quit(model: &mut Model, command: Command) -> Vec<Action> {
    match command {
        Command::Confirm | Command::Quit => {
            model.overlay = None;
            vec![Action::Quit { kill: false }]
        }
        Command::QuitNow => {
            model.overlay = None;
            vec![Action::Quit { kill: true }]
        }
        Command::Cancel => {
            model.overlay = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn confirm_rerun(model: &mut Model, command: Command) -> Vec<Action> {
    let Some(Overlay::ConfirmRerun { limit }) = model.overlay else {
        return Vec::new();
    };
    match command {
        Command::Confirm => {
            model.overlay = None;
            vec![Action::Rerun {
                max_parallel: limit,
            }]
        }
        // Cycle the offered limit in place.
        Command::Rerun => {
            model.overlay = Some(Overlay::ConfirmRerun {
                limit: model.next_limit(limit),
            });
            Vec::new()
        }
        Command::Cancel => {
            model.overlay = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn signal_menu(model: &mut Model, command: Command) -> Vec<Action> {
    let Some(Overlay::Signals { selected }) = model.overlay else {
        return Vec::new();
    };
    let n = COMMON_SIGNALS.len();
    match command {
        Command::Cancel | Command::Signal => {
            model.overlay = None;
            Vec::new()
        }
        Command::SelectPrev => {
            model.overlay = Some(Overlay::Signals {
                selected: (selected + n - 1) % n,
            });
            Vec::new()
        }
        Command::SelectNext => {
            model.overlay = Some(Overlay::Signals {
                selected: (selected + 1) % n,
            });
            Vec::new()
        }
        Command::Confirm => pick_signal(model, selected),
        _ => Vec::new(),
    }
}

fn pick_signal(model: &mut Model, index: usize) -> Vec<Action> {
    model.overlay = None;
    match COMMON_SIGNALS.get(index) {
        // Over the tree pane: to the process chosen there.
        Some(signal) if model.tree.is_some() => super::tree::signal(model, *signal),
        Some(signal) => vec![Action::Control(
            model.selected_job(),
            Control::Signal(*signal),
        )],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use nix::sys::signal::Signal;
    use ratatui::layout::Rect;

    use super::*;
    use crate::app::keymap::{Keymap, Override};
    use crate::output::{OutputBuffer, Stream};
    use crate::supervisor::{JobState, JobStatus};
    use crate::ui::model::{Quitting, RowRef};

    fn press_key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl_c() -> KeyEvent {
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
    }

    /// Two running jobs (the second a pipeline) with 100 lines of output each.
    fn setup() -> (Model, Vec<SharedBuffer>) {
        let argv = |a: &str| vec![a.to_string()];
        let model = Model::from_statuses(
            [
                (
                    "one".to_string(),
                    JobStatus::new(JobState::Running, vec![argv("a")]),
                ),
                (
                    "two".to_string(),
                    JobStatus::new(JobState::Running, vec![argv("b"), argv("c")]),
                ),
            ],
            "test",
        );
        let buffers: Vec<SharedBuffer> = (0..2)
            .map(|_| {
                let mut buf = OutputBuffer::new(1000, 1 << 20);
                for i in 0..100 {
                    buf.push_line(
                        i % 2,
                        Stream::Stdout,
                        Instant::now(),
                        format!("l{i}").as_bytes(),
                    );
                }
                Arc::new(Mutex::new(buf))
            })
            .collect();
        (model, buffers)
    }

    fn ctx_for<'a>(model: &Model, buffers: &'a [SharedBuffer]) -> Ctx<'a> {
        Ctx {
            buffers,
            terminals: &[],
            areas: crate::ui::layout(Rect::new(0, 0, 100, 30), model),
            now: Instant::now(),
        }
    }

    fn press(model: &mut Model, buffers: &[SharedBuffer], codes: &[KeyCode]) -> Vec<Action> {
        let mut actions = Vec::new();
        for code in codes {
            let ctx = ctx_for(model, buffers);
            actions.extend(key(model, press_key(*code), &ctx));
        }
        actions
    }

    fn chars(s: &str) -> Vec<KeyCode> {
        s.chars().map(KeyCode::Char).collect()
    }

    fn finish_all(model: &mut Model) {
        for job in &mut model.tracker.jobs {
            job.status.state = JobState::Finished(crate::supervisor::Outcome::Exited { code: 0 });
        }
    }

    #[test]
    fn help_scrolls_with_the_usual_keys_and_closes() {
        let (mut model, buffers) = setup();
        press(&mut model, &buffers, &[KeyCode::Char('?')]);
        assert_eq!(model.overlay, Some(Overlay::Help { scroll: 0 }));
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('j'), KeyCode::Down, KeyCode::PageDown],
        );
        assert_eq!(model.overlay, Some(Overlay::Help { scroll: 7 }));
        // Keys that mean something else outside the help do nothing inside it.
        let actions = press(&mut model, &buffers, &[KeyCode::Char('K'), KeyCode::Up]);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(model.overlay, Some(Overlay::Help { scroll: 6 }));
        press(&mut model, &buffers, &[KeyCode::PageDown; 20]);
        assert_eq!(
            model.overlay,
            Some(Overlay::Help {
                scroll: crate::ui::help_line_count(&model)
            })
        );
        press(&mut model, &buffers, &[KeyCode::Esc]);
        assert_eq!(model.overlay, None);
        // ? toggles it, q closes it (and does not quit).
        press(&mut model, &buffers, &[KeyCode::Char('?')]);
        assert!(press(&mut model, &buffers, &[KeyCode::Char('q')]).is_empty());
        assert_eq!(model.overlay, None);
    }

    #[test]
    fn deadlines_parse_bare_seconds_and_humantime_up_to_a_year() {
        assert_eq!(parse_deadline("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_deadline(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_deadline("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_deadline("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_deadline("365d"), Ok(MAX_WAIT));
        for bad in ["soon", "-1", "", "NaN", "inf", "1x"] {
            let err = parse_deadline(bad).expect_err(bad);
            assert!(!err.contains("365"), "{bad}: {err}");
        }
        for huge in ["1e19", "1e300", "366d", "99999999999999999999s", "31622400"] {
            assert_eq!(
                parse_deadline(huge),
                Err("at most 365 days".to_string()),
                "{huge}"
            );
        }
    }

    #[test]
    fn wait_prompt_replaces_the_suggestion_and_sends_the_deadline() {
        let (mut model, buffers) = setup();
        press(&mut model, &buffers, &[KeyCode::Char('w')]);
        assert_eq!(model.prompt.as_ref().map(|p| p.input.as_str()), Some("5s"));
        let actions = press(
            &mut model,
            &buffers,
            &[chars("300ms"), vec![KeyCode::Enter]].concat(),
        );
        assert_eq!(
            actions,
            [Action::Control(
                0,
                Control::Wait(Duration::from_millis(300))
            )]
        );
        assert!(model.prompt.is_none());
        // A bad value keeps the prompt open with an error; Backspace edits it.
        press(
            &mut model,
            &buffers,
            &[chars("w2x"), vec![KeyCode::Enter]].concat(),
        );
        assert!(model.prompt.as_ref().is_some_and(|p| p.error.is_some()));
        let actions = press(&mut model, &buffers, &[KeyCode::Backspace, KeyCode::Enter]);
        assert_eq!(
            actions,
            [Action::Control(0, Control::Wait(Duration::from_secs(2)))]
        );
        // A deadline of 1e19 seconds is refused in the prompt, not sent.
        let actions = press(
            &mut model,
            &buffers,
            &[chars("w1e19"), vec![KeyCode::Enter]].concat(),
        );
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(
            model.prompt.as_ref().and_then(|p| p.error.as_deref()),
            Some("at most 365 days")
        );
    }

    #[test]
    fn wait_with_nothing_to_wait_for_keeps_typed_keys_in_the_prompt() {
        let (mut model, buffers) = setup();
        finish_all(&mut model);
        // `w` then `abc`: before, `c` cleared the job's output.
        let actions = press(
            &mut model,
            &buffers,
            &[vec![KeyCode::Char('w')], chars("abc")].concat(),
        );
        assert!(actions.is_empty(), "{actions:?}");
        assert!(!crate::output::lock(&buffers[0]).is_empty(), "output kept");
        let prompt = model.prompt.clone().expect("the prompt is open");
        assert_eq!(prompt.input, "abc");
        assert_eq!(
            prompt.error.as_deref(),
            Some("one is not running: nothing to wait for")
        );
        // Enter does not send a wait; Esc closes.
        assert!(press(&mut model, &buffers, &[KeyCode::Enter]).is_empty());
        assert!(model.prompt.is_some());
        press(&mut model, &buffers, &[KeyCode::Esc]);
        assert!(model.prompt.is_none());
        // W likewise.
        press(&mut model, &buffers, &[KeyCode::Char('W')]);
        assert_eq!(
            model.prompt.as_ref().and_then(|p| p.error.as_deref()),
            Some("no job is running: nothing to wait for")
        );
    }

    #[test]
    fn quit_confirms_and_ctrl_c_escalates() {
        let (mut model, buffers) = setup();
        assert!(press(&mut model, &buffers, &[KeyCode::Char('q')]).is_empty());
        assert_eq!(model.overlay, Some(Overlay::ConfirmQuit));
        assert!(press(&mut model, &buffers, &[KeyCode::Esc]).is_empty());
        assert_eq!(model.overlay, None);
        let actions = press(
            &mut model,
            &buffers,
            &[KeyCode::Char('q'), KeyCode::Char('y')],
        );
        assert_eq!(actions, [Action::Quit { kill: false }]);
        // q q quits too.
        let actions = press(
            &mut model,
            &buffers,
            &[KeyCode::Char('q'), KeyCode::Char('q')],
        );
        assert_eq!(actions, [Action::Quit { kill: false }]);

        let (mut model, _) = setup();
        let ctx = Ctx {
            buffers: &buffers,
            terminals: &[],
            areas: None,
            now: Instant::now(),
        };
        assert_eq!(
            key(&mut model, ctrl_c(), &ctx),
            [Action::Quit { kill: false }]
        );
        model.quitting = Some(Quitting::Graceful);
        assert_eq!(
            key(&mut model, ctrl_c(), &ctx),
            [Action::Quit { kill: true }]
        );
        // While quitting, job commands are ignored.
        assert!(key(&mut model, press_key(KeyCode::Char('r')), &ctx).is_empty());
        // Ctrl-C works in a prompt too.
        let (mut model, _) = setup();
        press(&mut model, &buffers, &[KeyCode::Char('/')]);
        assert_eq!(
            key(&mut model, ctrl_c(), &ctx),
            [Action::Quit { kill: false }]
        );
    }

    #[test]
    fn signal_menu_picks_by_arrow_or_digit() {
        let (mut model, buffers) = setup();
        let actions = press(
            &mut model,
            &buffers,
            &[KeyCode::Char('x'), KeyCode::Down, KeyCode::Enter],
        );
        assert_eq!(
            actions,
            [Action::Control(0, Control::Signal(Signal::SIGINT))]
        );
        let actions = press(
            &mut model,
            &buffers,
            &[KeyCode::Char('x'), KeyCode::Char('4')],
        );
        assert_eq!(
            actions,
            [Action::Control(0, Control::Signal(Signal::SIGKILL))]
        );
        assert_eq!(model.overlay, None);
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('x'), KeyCode::Char('x')],
        );
        assert_eq!(model.overlay, None);
    }

    #[test]
    fn navigation_expands_and_scrolls() {
        let (mut model, buffers) = setup();
        press(
            &mut model,
            &buffers,
            &[KeyCode::Down, KeyCode::Enter, KeyCode::Down],
        );
        assert_eq!(model.selected, RowRef::Stage(1, 0));
        press(&mut model, &buffers, &[KeyCode::Left]);
        assert_eq!(model.selected, RowRef::Job(1));
        // h and l too (the help used to miss them).
        press(&mut model, &buffers, &[KeyCode::Char('l')]);
        assert!(model.is_expanded(1));
        press(&mut model, &buffers, &[KeyCode::Char('h')]);
        assert!(!model.is_expanded(1));
        press(&mut model, &buffers, &[KeyCode::PageUp]);
        assert!(!model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::End]);
        assert!(model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::Home]);
        assert!(!model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::Char('G')]);
        assert!(model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::BackTab]);
        assert_eq!(model.focus, Focus::Output);
        press(&mut model, &buffers, &[KeyCode::Char('c')]);
        assert!(crate::output::lock(&buffers[1]).is_empty());
        assert!(!crate::output::lock(&buffers[0]).is_empty());
    }

    #[test]
    fn search_jumps_to_matches_and_wraps() {
        let (mut model, buffers) = setup();
        let mut keys = vec![KeyCode::Char('/')];
        keys.extend(chars("l9"));
        keys.push(KeyCode::Enter);
        press(&mut model, &buffers, &keys);
        // From the followed tail, the newest match first.
        assert_eq!(model.search.as_ref().and_then(|s| s.current), Some(99));
        press(&mut model, &buffers, &[KeyCode::Char('N')]);
        assert_eq!(model.search.as_ref().and_then(|s| s.current), Some(98));
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('n'), KeyCode::Char('n')],
        );
        assert_eq!(model.search.as_ref().and_then(|s| s.current), Some(9));
        assert!(!model.view(0).follow);
        // Esc drops the highlights.
        press(&mut model, &buffers, &[KeyCode::Esc]);
        assert!(model.search.is_none());
        // Esc then ? typed fast arrive as Alt-?: both happen.
        let ctx = ctx_for(&model, &buffers);
        key(
            &mut model,
            KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE),
            &ctx,
        );
        assert!(model.prompt.is_some());
        key(
            &mut model,
            KeyEvent::new(KeyCode::Char('?'), KeyModifiers::ALT),
            &ctx,
        );
        assert!(model.prompt.is_none());
        assert_eq!(model.overlay, Some(Overlay::Help { scroll: 0 }));
    }

    #[test]
    fn p_cycles_the_limit_and_confirms_while_jobs_run() {
        let (mut model, buffers) = setup();
        model.cores = 4;
        model.max_parallel = 0;
        assert!(press(&mut model, &buffers, &[KeyCode::Char('p')]).is_empty());
        assert_eq!(model.overlay, Some(Overlay::ConfirmRerun { limit: 1 }));
        // p in the dialog offers the next limit: 1 → cores → unlimited.
        press(&mut model, &buffers, &[KeyCode::Char('p')]);
        assert_eq!(model.overlay, Some(Overlay::ConfirmRerun { limit: 4 }));
        press(&mut model, &buffers, &[KeyCode::Char('p')]);
        assert_eq!(model.overlay, Some(Overlay::ConfirmRerun { limit: 0 }));
        assert!(press(&mut model, &buffers, &[KeyCode::Esc]).is_empty());
        assert_eq!(model.overlay, None);
        let actions = press(
            &mut model,
            &buffers,
            &[KeyCode::Char('p'), KeyCode::Char('y')],
        );
        assert_eq!(actions, [Action::Rerun { max_parallel: 1 }]);

        // Nothing running: no question.
        finish_all(&mut model);
        model.max_parallel = 1;
        let actions = press(&mut model, &buffers, &[KeyCode::Char('p')]);
        assert_eq!(actions, [Action::Rerun { max_parallel: 4 }]);
        // One core: the cycle is 1 → unlimited.
        model.cores = 1;
        assert_eq!(model.next_limit(1), 0);
        assert_eq!(model.next_limit(0), 1);
        assert_eq!(model.next_limit(7), 1);

        // While the run stops before the next one, q and Q quit.
        model.rerun = Some(4);
        assert_eq!(
            press(&mut model, &buffers, &[KeyCode::Char('q')]),
            [Action::Quit { kill: false }]
        );
        assert_eq!(
            press(&mut model, &buffers, &[KeyCode::Char('Q')]),
            [Action::Quit { kill: true }]
        );
        assert!(press(&mut model, &buffers, &[KeyCode::Char('r')]).is_empty());
    }

    #[test]
    fn v_toggles_the_timeline_which_has_no_output_focus() {
        let (mut model, buffers) = setup();
        press(&mut model, &buffers, &[KeyCode::Tab]);
        assert_eq!(model.focus, Focus::Output);
        press(&mut model, &buffers, &[KeyCode::Char('v')]);
        assert!(model.timeline);
        assert_eq!(model.focus, Focus::Jobs);
        press(&mut model, &buffers, &[KeyCode::Tab, KeyCode::Down]);
        assert_eq!(model.focus, Focus::Jobs);
        assert_eq!(model.selected, RowRef::Job(1));
        // The layout gives the rows the whole main area.
        let areas = crate::ui::layout(Rect::new(0, 0, 100, 30), &model).expect("layout");
        assert_eq!(areas.table.height, 30 - 2 - 1 - 1);
        assert_eq!(areas.output_rows(), 0);
        press(&mut model, &buffers, &[KeyCode::Char('v')]);
        assert!(!model.timeline);
    }

    #[test]
    fn copy_mode_selects_lines_with_the_keyboard_and_copies_them() {
        let (mut model, buffers) = setup();
        press(&mut model, &buffers, &[KeyCode::Char('y')]);
        assert_eq!(model.mode(), Mode::Copy);
        assert_eq!(model.copy.map(|c| c.cursor.seq), Some(99));
        assert!(!model.view(0).follow, "copy mode holds the view still");
        let actions = press(
            &mut model,
            &buffers,
            &[
                KeyCode::Char('v'),
                KeyCode::Up,
                KeyCode::Char('k'),
                KeyCode::Char('y'),
            ],
        );
        assert_eq!(actions, [Action::Clipboard("l97\nl98\nl99\n".into())]);
        assert_eq!(model.mode(), Mode::Normal);
        // g goes to the first line, however far; Esc leaves without copying.
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('y'), KeyCode::Char('g')],
        );
        assert_eq!(model.copy.map(|c| c.cursor.seq), Some(0));
        assert!(press(&mut model, &buffers, &[KeyCode::Esc]).is_empty());
        assert!(model.copy.is_none());
        // With timestamps shown, they are copied too.
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('G'), KeyCode::Char('@'), KeyCode::Char('y')],
        );
        let actions = press(&mut model, &buffers, &[KeyCode::Enter]);
        let [Action::Clipboard(text)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert!(
            text.ends_with(" l99\n") && text.as_bytes()[2] == b':',
            "{text}"
        );
    }

    #[test]
    fn the_all_row_merges_filters_and_refuses_job_commands() {
        let (mut model, buffers) = setup();
        press(&mut model, &buffers, &[KeyCode::Up]);
        assert_eq!(model.selected, RowRef::All);
        // A job command needs a job.
        assert!(press(&mut model, &buffers, &[KeyCode::Char('t')]).is_empty());
        assert!(
            model
                .message
                .as_ref()
                .is_some_and(|m| m.text.contains("select a job"))
        );
        // Its lines carry their job's name (a pipeline's, its stage).
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('y'), KeyCode::Char('v'), KeyCode::Up],
        );
        let actions = press(&mut model, &buffers, &[KeyCode::Char('y')]);
        assert_eq!(
            actions,
            [Action::Clipboard("two[1] | l98\ntwo[2] | l99\n".into())]
        );
        // F: only the jobs named.
        press(&mut model, &buffers, &[KeyCode::Char('F')]);
        press(
            &mut model,
            &buffers,
            &[chars("one"), vec![KeyCode::Enter]].concat(),
        );
        assert_eq!(model.merged_filter.patterns, ["one"]);
        press(&mut model, &buffers, &[KeyCode::Char('y')]);
        let actions = press(&mut model, &buffers, &[KeyCode::Char('y')]);
        assert_eq!(actions, [Action::Clipboard("one | l99\n".into())]);
        // S: everything the view holds, to a file named after it.
        press(&mut model, &buffers, &[KeyCode::Char('S')]);
        let prompt = model.prompt.clone().expect("the save prompt");
        assert!(prompt.input.starts_with("all-") && prompt.input.ends_with(".txt"));
        let actions = press(&mut model, &buffers, &[KeyCode::Enter]);
        let [
            Action::Save {
                text,
                lines,
                replace,
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!((*lines, *replace), (100, false));
        assert!(text.starts_with("one | l0\none | l1\n") && text.ends_with("one | l99\n"));
    }

    #[test]
    fn e_filters_a_stream_and_l_wraps() {
        let (mut model, buffers) = setup();
        crate::output::lock(&buffers[0]).push_line(0, Stream::Stderr, Instant::now(), b"oops");
        press(&mut model, &buffers, &[KeyCode::Char('E')]);
        assert_eq!(model.stream_filter, Some(Stream::Stderr));
        press(&mut model, &buffers, &[KeyCode::Char('y')]);
        let actions = press(&mut model, &buffers, &[KeyCode::Char('y')]);
        assert_eq!(actions, [Action::Clipboard("oops\n".into())]);
        press(
            &mut model,
            &buffers,
            &[KeyCode::Char('E'), KeyCode::Char('E')],
        );
        assert_eq!(model.stream_filter, None);
        press(&mut model, &buffers, &[KeyCode::Char('>')]);
        assert!(model.hscroll > 0);
        press(&mut model, &buffers, &[KeyCode::Char('L')]);
        assert!(model.wrap && model.hscroll == 0);
    }

    #[test]
    fn user_keys_drive_update_and_the_old_key_does_nothing() {
        let (mut model, buffers) = setup();
        let keymap = Keymap::with_overrides(&[Override {
            command: Command::Stop,
            keys: vec![Key::parse("O").expect("key")],
        }])
        .expect("keymap");
        model.keymap = Arc::new(keymap);
        assert!(press(&mut model, &buffers, &[KeyCode::Char('t')]).is_empty());
        assert_eq!(
            press(&mut model, &buffers, &[KeyCode::Char('O')]),
            [Action::Control(0, Control::Stop)]
        );
    }
}
