//! Keys and mouse: how input changes the model, and which commands it sends.
//!
//! Handlers mutate only the model (and clear a buffer on `c`); anything for the
//! supervisor comes back as an [`Action`] for the loop to send.

use std::time::{Duration, Instant};

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use crate::output::SharedBuffer;
use crate::supervisor::signals::COMMON_SIGNALS;
use crate::supervisor::{Control, JobId};
use crate::ui::Areas;
use crate::ui::model::{
    Focus, MessageKind, Model, Overlay, Prompt, PromptKind, RowRef, Search, WaitTarget,
};
use crate::ui::output;

/// The `w` prompt's suggestion.
pub const DEFAULT_WAIT: &str = "5s";
/// Rows moved per mouse wheel notch.
const WHEEL_ROWS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Control(JobId, Control),
    /// Stop every job and exit; `kill` sends SIGKILL to all first (or, when already
    /// quitting, escalates to it).
    Quit {
        kill: bool,
    },
    /// Stop the current run and run the whole set again with this `-j` (0 = unlimited).
    Rerun {
        max_parallel: usize,
    },
}

/// What a handler may look at besides the model.
pub struct Ctx<'a> {
    pub buffers: &'a [SharedBuffer],
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
/// (`500ms`, `2m`, `1m30s`).
pub fn parse_deadline(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("enter a duration, e.g. 30, 500ms, 2m".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("not a duration: {text}"));
    }
    humantime::parse_duration(text).map_err(|_| format!("not a duration: {text}"))
}

pub fn on_key(model: &mut Model, key: KeyEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        // First Ctrl-C: stop everything gracefully; a second one kills.
        return vec![Action::Quit {
            kill: model.quitting.is_some(),
        }];
    }
    if model.quitting.is_some() || model.rerun.is_some() {
        return match key.code {
            KeyCode::Char('Q') => vec![Action::Quit { kill: true }],
            // While a run stops before the next one, q still quits (gracefully).
            KeyCode::Char('q') if model.quitting.is_none() => vec![Action::Quit { kill: false }],
            _ => {
                navigate(model, key, ctx);
                Vec::new()
            }
        };
    }
    if model.prompt.is_some() {
        return prompt_key(model, key, ctx);
    }
    if let Some(overlay) = model.overlay {
        return overlay_key(model, overlay, key);
    }
    main_key(model, key, ctx)
}

fn main_key(model: &mut Model, key: KeyEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let id = model.selected_job();
    let name = model.job(id).map(|j| j.name.clone()).unwrap_or_default();
    let active = model.job(id).is_some_and(|j| j.status.is_active());
    let now = ctx.now;
    match key.code {
        KeyCode::Char('q') => {
            if model.unsettled_count() > 0 {
                model.overlay = Some(Overlay::ConfirmQuit);
                Vec::new()
            } else {
                vec![Action::Quit { kill: false }]
            }
        }
        KeyCode::Char('Q') => vec![Action::Quit { kill: true }],
        KeyCode::Char('?') => {
            model.overlay = Some(Overlay::Help { scroll: 0 });
            Vec::new()
        }
        KeyCode::Char('p') => {
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
        KeyCode::Char('t') => vec![Action::Control(id, Control::Stop)],
        KeyCode::Char('K') => vec![Action::Control(id, Control::Kill)],
        KeyCode::Char('r') => {
            model.set_message(format!("restarting {name}"), MessageKind::Info, now);
            vec![Action::Control(id, Control::Restart)]
        }
        KeyCode::Char('R') => {
            model.set_message("restarting every job", MessageKind::Info, now);
            (0..model.jobs().len())
                .map(|id| Action::Control(id, Control::Restart))
                .collect()
        }
        KeyCode::Char('s') => {
            if active {
                model.set_message(format!("{name} is already running"), MessageKind::Info, now);
                Vec::new()
            } else {
                model.set_message(format!("starting {name}"), MessageKind::Info, now);
                vec![Action::Control(id, Control::Start)]
            }
        }
        KeyCode::Char('w') => {
            if active {
                model.prompt = Some(Prompt::new(
                    PromptKind::Wait(WaitTarget::Job(id)),
                    DEFAULT_WAIT,
                ));
            } else {
                model.set_message(format!("{name} is not running"), MessageKind::Error, now);
            }
            Vec::new()
        }
        KeyCode::Char('W') => {
            if model.active_count() > 0 {
                model.prompt = Some(Prompt::new(PromptKind::Wait(WaitTarget::All), DEFAULT_WAIT));
            } else {
                model.set_message("no job is running", MessageKind::Error, now);
            }
            Vec::new()
        }
        KeyCode::Char('x') => {
            if active {
                model.overlay = Some(Overlay::Signals { selected: 0 });
            } else {
                model.set_message(format!("{name} is not running"), MessageKind::Error, now);
            }
            Vec::new()
        }
        KeyCode::Char('/') => {
            let current = model
                .search
                .as_ref()
                .map(|s| s.query.clone())
                .unwrap_or_default();
            // The last query is offered selected: typing replaces it, → edits it.
            model.prompt = Some(Prompt::new(PromptKind::Search, &current));
            Vec::new()
        }
        KeyCode::Char('n') => {
            search_step(model, ctx, true);
            Vec::new()
        }
        KeyCode::Char('N') => {
            search_step(model, ctx, false);
            Vec::new()
        }
        KeyCode::Char('f') => {
            toggle_follow(model, ctx);
            Vec::new()
        }
        KeyCode::Char('c') => {
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
        KeyCode::Esc => {
            // Esc drops a finished search's highlights.
            model.search = None;
            Vec::new()
        }
        _ => {
            navigate(model, key, ctx);
            Vec::new()
        }
    }
}

/// Selection, expansion, focus and scrolling: allowed at any time (even while quitting).
fn navigate(model: &mut Model, key: KeyEvent, ctx: &Ctx<'_>) {
    let rows = ctx.output_rows();
    let page = rows.saturating_sub(1).max(1);
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => match model.focus {
            Focus::Jobs => select(model, -1),
            Focus::Output => scroll(model, ctx, -1),
        },
        KeyCode::Down | KeyCode::Char('j') => match model.focus {
            Focus::Jobs => select(model, 1),
            Focus::Output => scroll(model, ctx, 1),
        },
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
            model.set_expanded(true);
        }
        KeyCode::Left | KeyCode::Char('h') => collapse(model),
        // The timeline has no output pane to focus.
        KeyCode::Tab | KeyCode::BackTab if !model.timeline => {
            model.focus = match model.focus {
                Focus::Jobs => Focus::Output,
                Focus::Output => Focus::Jobs,
            };
        }
        KeyCode::Char('v') => {
            model.timeline = !model.timeline;
            if model.timeline {
                model.focus = Focus::Jobs;
            }
        }
        KeyCode::PageUp => scroll(model, ctx, -(page as isize)),
        KeyCode::PageDown => scroll(model, ctx, page as isize),
        KeyCode::Char('g') | KeyCode::Home => with_buffer(model, ctx, |buf, _, view, _| {
            output::scroll_to_top(buf, view);
        }),
        KeyCode::Char('G') | KeyCode::End => {
            let id = model.selected_job();
            if let Some(view) = model.view_mut(id) {
                view.follow = true;
            }
        }
        _ => {}
    }
}

fn collapse(model: &mut Model) {
    // Collapsing may move the selection from a stage row to its job.
    if model.set_expanded(false) {
        clear_current_match(model);
    }
}

fn select(model: &mut Model, delta: isize) {
    let before = model.selected;
    model.select_relative(delta);
    if model.selected != before {
        clear_current_match(model);
    }
}

/// The current match refers to a line of the previously shown output.
fn clear_current_match(model: &mut Model) {
    if let Some(search) = &mut model.search {
        search.current = None;
    }
}

/// Runs `f` on the selected job's buffer (locked) and view.
fn with_buffer(
    model: &mut Model,
    ctx: &Ctx<'_>,
    f: impl FnOnce(
        &crate::output::OutputBuffer,
        Option<usize>,
        &mut crate::ui::model::OutputView,
        usize,
    ),
) {
    let id = model.selected_job();
    let stage = model.selected.stage();
    let rows = ctx.output_rows();
    let (Some(buffer), Some(view)) = (ctx.buffers.get(id), model.views.get_mut(id)) else {
        return;
    };
    let buf = crate::output::lock(buffer);
    f(&buf, stage, view, rows);
}

/// Scrolls the output by `delta` rows (negative: up).
fn scroll(model: &mut Model, ctx: &Ctx<'_>, delta: isize) {
    with_buffer(model, ctx, |buf, stage, view, rows| {
        if delta < 0 {
            output::scroll_up(buf, stage, view, rows, delta.unsigned_abs());
        } else {
            output::scroll_down(buf, stage, view, rows, delta.unsigned_abs());
        }
    });
}

fn toggle_follow(model: &mut Model, ctx: &Ctx<'_>) {
    let id = model.selected_job();
    if model.view(id).follow {
        // Pause where we are: scrolling up zero rows freezes the current page.
        with_buffer(model, ctx, |buf, stage, view, rows| {
            output::scroll_up(buf, stage, view, rows, 0);
        });
        if model.view(id).follow {
            // Everything fits on one page: still pause, at the first row.
            with_buffer(model, ctx, |buf, _, view, _| {
                output::scroll_to_top(buf, view)
            });
        }
    } else if let Some(view) = model.view_mut(id) {
        view.follow = true;
    }
}

/// `n` / `N`: the next match below / above the current one, wrapping around.
fn search_step(model: &mut Model, ctx: &Ctx<'_>, forward: bool) {
    let Some(search) = model.search.clone() else {
        model.set_message("no search: press / to search", MessageKind::Error, ctx.now);
        return;
    };
    let id = model.selected_job();
    let view = model.view(id);
    let mut wrapped = false;
    let mut found = None;
    with_buffer(model, ctx, |buf, stage, _, _| {
        let from = match (search.current, forward) {
            (Some(seq), _) => Some(seq),
            (None, _) if view.follow => None,
            (None, true) => view.top.checked_sub(1),
            (None, false) => Some(view.top),
        };
        let mut hit = output::find(buf, stage, &search.query, from, forward);
        if hit.is_none() && from.is_some() {
            hit = output::find(buf, stage, &search.query, None, forward);
            wrapped = hit.is_some();
        }
        found = hit;
    });
    if let Some(seq) = found {
        with_buffer(model, ctx, |buf, stage, view_mut, rows| {
            output::reveal(buf, stage, view_mut, rows, seq);
        });
    }
    match found {
        Some(seq) => {
            if let Some(s) = &mut model.search {
                s.current = Some(seq);
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

fn prompt_key(model: &mut Model, key: KeyEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(prompt) = model.prompt.as_mut() else {
        return Vec::new();
    };
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => {
            model.prompt = None;
        }
        KeyCode::Enter => return submit_prompt(model, ctx),
        KeyCode::Backspace => {
            if prompt.fresh {
                prompt.input.clear();
            } else {
                prompt.input.pop();
            }
            prompt.fresh = false;
            prompt.error = None;
        }
        KeyCode::Char('u') if ctrl => {
            prompt.input.clear();
            prompt.fresh = false;
            prompt.error = None;
        }
        KeyCode::Char(c) if !ctrl => {
            if prompt.fresh {
                prompt.input.clear();
                prompt.fresh = false;
            }
            if prompt.input.chars().count() < 200 {
                prompt.input.push(c);
            }
            prompt.error = None;
        }
        KeyCode::Left | KeyCode::Right | KeyCode::End | KeyCode::Home => {
            // Keep the suggestion but edit it instead of replacing it.
            prompt.fresh = false;
        }
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
            let within = match parse_deadline(&prompt.input) {
                Ok(d) => d,
                Err(error) => {
                    if let Some(p) = model.prompt.as_mut() {
                        p.error = Some(error);
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
            });
            // From a followed tail, the newest match; from a paused page, the first one
            // at or below its top.
            let forward = !model.view(model.selected_job()).follow;
            search_step(model, ctx, forward);
            Vec::new()
        }
    }
}

fn overlay_key(model: &mut Model, overlay: Overlay, key: KeyEvent) -> Vec<Action> {
    match overlay {
        Overlay::Help { scroll } => {
            // The view clamps the scroll to what the terminal shows; this only keeps it
            // from running off.
            let last = crate::ui::help_line_count();
            match key.code {
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter => {
                    model.overlay = None;
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    let scroll = (scroll + 1).min(last);
                    model.overlay = Some(Overlay::Help { scroll });
                }
                KeyCode::PageDown | KeyCode::Char(' ') => {
                    let scroll = (scroll + 5).min(last);
                    model.overlay = Some(Overlay::Help { scroll });
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    let scroll = scroll.saturating_sub(1);
                    model.overlay = Some(Overlay::Help { scroll });
                }
                KeyCode::PageUp => {
                    let scroll = scroll.saturating_sub(5);
                    model.overlay = Some(Overlay::Help { scroll });
                }
                _ => {}
            }
            Vec::new()
        }
        Overlay::ConfirmQuit => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter | KeyCode::Char('q') => {
                model.overlay = None;
                vec![Action::Quit { kill: false }]
            }
            KeyCode::Char('Q') => {
                model.overlay = None;
                vec![Action::Quit { kill: true }]
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                model.overlay = None;
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::ConfirmRerun { limit } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                model.overlay = None;
                vec![Action::Rerun {
                    max_parallel: limit,
                }]
            }
            // Cycle the offered limit in place.
            KeyCode::Char('p') => {
                model.overlay = Some(Overlay::ConfirmRerun {
                    limit: model.next_limit(limit),
                });
                Vec::new()
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                model.overlay = None;
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::Signals { selected } => {
            let n = COMMON_SIGNALS.len();
            let pick = |index: usize, model: &mut Model| {
                model.overlay = None;
                match COMMON_SIGNALS.get(index) {
                    Some(signal) => vec![Action::Control(
                        model.selected_job(),
                        Control::Signal(*signal),
                    )],
                    None => Vec::new(),
                }
            };
            match key.code {
                KeyCode::Esc | KeyCode::Char('x') | KeyCode::Char('q') => {
                    model.overlay = None;
                    Vec::new()
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    model.overlay = Some(Overlay::Signals {
                        selected: (selected + n - 1) % n,
                    });
                    Vec::new()
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    model.overlay = Some(Overlay::Signals {
                        selected: (selected + 1) % n,
                    });
                    Vec::new()
                }
                KeyCode::Enter => pick(selected, model),
                // The menu numbers its entries 1..9, 0.
                KeyCode::Char(c @ '0'..='9') => {
                    let digit = c as usize - '0' as usize;
                    pick((digit + 9) % 10, model)
                }
                _ => Vec::new(),
            }
        }
    }
}

pub fn on_mouse(model: &mut Model, mouse: MouseEvent, ctx: &Ctx<'_>) -> Vec<Action> {
    let Some(areas) = ctx.areas else {
        return Vec::new();
    };
    if model.overlay.is_some() || model.prompt.is_some() {
        return Vec::new();
    }
    let inside = |r: ratatui::layout::Rect| {
        mouse.column >= r.x
            && mouse.column < r.x + r.width
            && mouse.row >= r.y
            && mouse.row < r.y + r.height
    };
    // In the timeline every row is a job row; the wheel moves the selection anywhere.
    let over_table = inside(areas.table) || model.timeline;
    match mouse.kind {
        MouseEventKind::ScrollUp if over_table => select(model, -1),
        MouseEventKind::ScrollDown if over_table => select(model, 1),
        MouseEventKind::ScrollUp => scroll(model, ctx, -(WHEEL_ROWS as isize)),
        MouseEventKind::ScrollDown => scroll(model, ctx, WHEEL_ROWS as isize),
        MouseEventKind::Down(MouseButton::Left) if inside(areas.table) => {
            let Some(line) = (mouse.row - areas.table.y).checked_sub(1) else {
                return Vec::new(); // the column titles
            };
            let index = model.visible_offset(areas.table_rows()) + line as usize;
            let before = model.selected;
            if model.select_row(index) {
                model.focus = Focus::Jobs;
                if model.selected != before {
                    clear_current_match(model);
                } else if mouse.column < areas.table.x + 2
                    && let RowRef::Job(id) = model.selected
                {
                    // A click on the ▸/▾ marker of the selected pipeline toggles it.
                    let expanded = model.is_expanded(id);
                    model.set_expanded(!expanded);
                }
            }
        }
        MouseEventKind::Down(MouseButton::Left) if inside(areas.output) && !model.timeline => {
            model.focus = Focus::Output;
        }
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crossterm::event::KeyEventState;
    use nix::sys::signal::Signal;
    use ratatui::layout::Rect;

    use super::*;
    use crate::output::{OutputBuffer, Stream};
    use crate::supervisor::{JobState, JobStatus};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    fn ctrl_c() -> KeyEvent {
        KeyEvent {
            modifiers: KeyModifiers::CONTROL,
            ..key(KeyCode::Char('c'))
        }
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

    fn press(model: &mut Model, buffers: &[SharedBuffer], codes: &[KeyCode]) -> Vec<Action> {
        let areas = crate::ui::layout(Rect::new(0, 0, 100, 30), model);
        let ctx = Ctx {
            buffers,
            areas,
            now: Instant::now(),
        };
        codes
            .iter()
            .flat_map(|c| on_key(model, key(*c), &ctx))
            .collect()
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
                scroll: crate::ui::help_line_count()
            })
        );
        press(&mut model, &buffers, &[KeyCode::Esc]);
        assert_eq!(model.overlay, None);
    }

    #[test]
    fn deadlines_parse_bare_seconds_and_humantime() {
        assert_eq!(parse_deadline("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_deadline(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_deadline("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_deadline("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_deadline("soon").is_err());
        assert!(parse_deadline("-1").is_err());
        assert!(parse_deadline("").is_err());
    }

    #[test]
    fn wait_prompt_replaces_the_suggestion_and_sends_the_deadline() {
        let (mut model, buffers) = setup();
        let chars = |s: &str| s.chars().map(KeyCode::Char).collect::<Vec<_>>();
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

        let ctx = Ctx {
            buffers: &buffers,
            areas: None,
            now: Instant::now(),
        };
        let (mut model, _) = setup();
        assert_eq!(
            on_key(&mut model, ctrl_c(), &ctx),
            [Action::Quit { kill: false }]
        );
        model.quitting = Some(crate::ui::model::Quitting::Graceful);
        assert_eq!(
            on_key(&mut model, ctrl_c(), &ctx),
            [Action::Quit { kill: true }]
        );
        // While quitting, job commands are ignored.
        assert!(on_key(&mut model, key(KeyCode::Char('r')), &ctx).is_empty());
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
        press(&mut model, &buffers, &[KeyCode::PageUp]);
        assert!(!model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::Char('G')]);
        assert!(model.view(1).follow);
        press(&mut model, &buffers, &[KeyCode::Char('c')]);
        assert!(crate::output::lock(&buffers[1]).is_empty());
        assert!(!crate::output::lock(&buffers[0]).is_empty());
    }

    #[test]
    fn search_jumps_to_matches_and_wraps() {
        let (mut model, buffers) = setup();
        let mut keys = vec![KeyCode::Char('/')];
        keys.extend("l9".chars().map(KeyCode::Char));
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
        for job in &mut model.tracker.jobs {
            job.status.state = JobState::Finished(crate::supervisor::Outcome::Exited { code: 0 });
        }
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
    fn mouse_selects_rows_and_scrolls_output() {
        let (mut model, buffers) = setup();
        let areas = crate::ui::layout(Rect::new(0, 0, 100, 30), &model);
        let ctx = Ctx {
            buffers: &buffers,
            areas,
            now: Instant::now(),
        };
        let areas = areas.expect("layout");
        let mouse = |kind, row| MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        };
        // The second row of the table (below the column titles).
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Down(MouseButton::Left), areas.table.y + 2),
            &ctx,
        );
        assert_eq!(model.selected, RowRef::Job(1));
        on_mouse(
            &mut model,
            mouse(MouseEventKind::ScrollUp, areas.output_body.y + 1),
            &ctx,
        );
        assert!(!model.view(1).follow);
        on_mouse(
            &mut model,
            mouse(MouseEventKind::Down(MouseButton::Left), areas.output_body.y),
            &ctx,
        );
        assert_eq!(model.focus, Focus::Output);
    }
}
