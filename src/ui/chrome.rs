//! Everything around the table and the output: header, status bar, prompts, overlays.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use crate::app::command::{Command, Mode};
use crate::supervisor::signals::COMMON_SIGNALS;

use super::format;
use super::model::{Focus, Model, Overlay, Prompt, PromptKind, Quitting, WaitTarget, counts};
use super::theme::{self, ACCENT, DIM, KEY};

/// Lines of the header: counts, figures, and the runs line once `p` reran the set (when
/// the terminal is tall enough for it).
pub fn header_height(model: &Model, height: u16) -> u16 {
    if !model.runs.is_empty() && height >= 14 {
        3
    } else {
        2
    }
}

fn span_width(spans: &[Span]) -> usize {
    spans
        .iter()
        .map(|s| s.content.chars().count())
        .sum::<usize>()
}

/// The header: counts and `-j` on the first line, the run's figures on the second, the
/// earlier runs (`p`) on the third.
pub fn header(frame: &mut Frame, model: &Model, area: Rect) {
    let line = |n: u16| Rect {
        y: area.y + n,
        height: 1,
        ..area
    };
    if area.height == 0 {
        return;
    }
    counts_line(frame, model, line(0));
    if area.height >= 2 {
        let line2 = figures_line(model, area.width as usize);
        super::render_lines(frame.buffer_mut(), line(1), std::slice::from_ref(&line2));
    }
    if area.height >= 3 {
        let line3 = runs_line(model, area.width as usize);
        super::render_lines(frame.buffer_mut(), line(2), std::slice::from_ref(&line3));
    }
}

fn counts_line(frame: &mut Frame, model: &Model, area: Rect) {
    let c = counts(model.jobs());
    let width = area.width as usize;
    let failed_style = if c.failed > 0 { theme::FAILED } else { DIM };
    let build = |compact: bool| -> Vec<Span<'static>> {
        let (running, done, failed, pending) = if compact {
            ("", "", "", "")
        } else {
            (" running", " done", " failed", " pending")
        };
        let mut spans = vec![
            Span::styled(if compact { " fy " } else { " forkyard " }, theme::BADGE),
            Span::raw(" "),
            Span::styled(format!("● {}{running}", c.running), theme::GOOD),
            Span::raw("  "),
            Span::styled(format!("✔ {}{done}", c.done), theme::GOOD),
            Span::raw("  "),
            Span::styled(format!("✘ {}{failed}", c.failed), failed_style),
        ];
        let (waiting, stopped, skipped) = if compact {
            ("", "", "")
        } else {
            (" waiting", " stopped", " skipped")
        };
        if c.waiting > 0 {
            spans.push(Span::styled(
                format!("  ◌ {}{waiting}", c.waiting),
                theme::WAITING,
            ));
        }
        if c.stopped > 0 {
            spans.push(Span::styled(format!("  ■ {}{stopped}", c.stopped), DIM));
        }
        if c.skipped > 0 {
            spans.push(Span::styled(format!("  ⊘ {}{skipped}", c.skipped), DIM));
        }
        if c.pending > 0 {
            spans.push(Span::styled(format!("  ○ {}{pending}", c.pending), DIM));
        }
        spans
    };
    let mut spans = build(false);
    if span_width(&spans) + 24 > width {
        spans = build(true);
    }
    // The limit matters more than the file name: it is what `p` changes.
    let room = width.saturating_sub(span_width(&spans) + 1);
    let rest = format!("  {} cores  {} ", model.cores, model.origin);
    let full = format!("-j {}", crate::fmt::limit_label(model.max_parallel, false));
    let compact = format!("-j {}", crate::fmt::limit_label(model.max_parallel, true));
    let fits = |limit: &String| limit.chars().count() + rest.chars().count() <= room;
    let limit = if fits(&full) { full } else { compact };
    if room > limit.chars().count() {
        let rest = format::fit(&rest, room - limit.chars().count());
        let used = limit.chars().count() + rest.chars().count();
        spans.push(Span::raw(" ".repeat(room - used + 1)));
        spans.push(Span::styled(limit, ACCENT));
        spans.push(Span::styled(rest, DIM));
    }
    // Not a Paragraph (no per-frame grapheme buffering), and the gap is not drawn.
    super::render_lines(frame.buffer_mut(), area, &[Line::from(spans)]);
}

/// A ratio with as many decimals as are worth reading.
pub fn ratio(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The run's wall time: a live clock, or the exact figure once every job has settled.
fn wall_text(model: &Model) -> String {
    match model.tracker.settled_at {
        Some(end) => crate::fmt::duration(end.saturating_duration_since(model.tracker.started)),
        None => crate::fmt::clock(
            model
                .clock_now()
                .saturating_duration_since(model.tracker.started),
        ),
    }
}

/// concurrency, parallelism of N cores, Σ CPU, wall: the widest form that fits.
fn figures_line(model: &Model, width: usize) -> Line<'static> {
    let f = model.tracker.figures(model.now);
    let cores = model.cores.max(1);
    let wall = wall_text(model);
    let conc = ratio(f.concurrency);
    let par = ratio(f.parallelism);
    let cpu = crate::fmt::duration(f.sum_cpu);
    let wait = crate::fmt::duration(f.sum_cpu_wait);
    let jobs = crate::fmt::duration(f.sum_elapsed);
    let efficiency = (f.parallelism / cores as f64 * 100.0).round();
    let variants: [Vec<(&str, String)>; 5] = [
        vec![
            ("concurrency ", conc.clone()),
            (
                "parallelism ",
                format!("{par} of {cores} cores ({efficiency:.0}%)"),
            ),
            ("Σ CPU ", cpu.clone()),
            ("Σ job time ", jobs),
            ("wall ", wall.clone()),
        ],
        vec![
            ("concurrency ", conc.clone()),
            ("parallelism ", format!("{par} of {cores} cores")),
            ("Σ CPU ", cpu.clone()),
            ("wall ", wall.clone()),
        ],
        vec![
            ("conc ", conc.clone()),
            ("par ", format!("{par}/{cores}")),
            ("cpu ", cpu.clone()),
            ("wall ", wall.clone()),
        ],
        vec![
            ("conc ", conc.clone()),
            ("par ", format!("{par}/{cores}")),
            ("wall ", wall),
        ],
        vec![("conc ", conc), ("par ", format!("{par}/{cores}"))],
    ];
    // Widest first: the time jobs waited for a CPU (after Σ CPU), then the machine's
    // own load, when known and when there is room for them.
    let mut variants: Vec<Vec<(&str, String)>> = variants.into();
    let mut widest = variants[0].clone();
    widest.insert(3, ("Σ CPU wait ", wait));
    variants.insert(0, widest);
    if let Some(machine) = model.tracker.machine {
        let mut widest = variants[0].clone();
        widest.push(("machine ", format!("{:.0}% CPU", machine.cpu_percent)));
        variants.insert(0, widest);
    }
    let value = theme::BOLD;
    let build = |parts: &[(&str, String)]| {
        let mut spans = vec![Span::raw(" ")];
        for (i, (label, text)) in parts.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw("  "));
            }
            spans.push(Span::styled(label.to_string(), DIM));
            spans.push(Span::styled(text.clone(), value));
        }
        spans
    };
    let mut spans = Vec::new();
    for parts in &variants {
        spans = build(parts);
        if span_width(&spans) < width {
            break;
        }
    }
    Line::from(spans)
}

/// Earlier runs and the current one: `-j 1: 10.03s · -j unlimited: 1.02s (9.8× faster)`.
/// Speedups are relative to the latest complete sequential (`-j 1`) run shown, else to
/// the first complete one, like `--compare`.
pub fn runs_line(model: &Model, width: usize) -> Line<'static> {
    let current = model.current_run(model.now);
    let mut all: Vec<_> = model.runs.clone();
    all.push(current);
    let entry = |run: &super::model::PastRun, base: Option<f64>, compact: bool, last: bool| {
        let mut text = format!(
            "-j {}{}",
            crate::fmt::limit_label(run.limit, compact),
            if compact { " " } else { ": " }
        );
        let wall = if last && !run.complete {
            crate::fmt::clock(run.wall)
        } else {
            crate::fmt::duration(run.wall)
        };
        text.push_str(&wall);
        if !run.complete {
            let stopped = !last || model.quitting.is_some();
            text.push_str(if stopped { " (stopped)" } else { "…" });
        } else if let Some(base) = base {
            let secs = run.wall.as_secs_f64();
            if secs > 0.0 && base > 0.0 {
                let r = base / secs;
                text.push_str(&if compact {
                    format!(" ×{r:.1}")
                } else if (r - 1.0).abs() < 0.05 {
                    " (same)".to_string()
                } else if r >= 1.0 {
                    format!(" ({r:.1}× faster)")
                } else {
                    format!(" ({:.1}× slower)", 1.0 / r)
                });
            }
        }
        text
    };
    let build = |runs: &[super::model::PastRun], compact: bool| {
        // Speedup over a sequential run when there is one, else over the first.
        let base_index = runs
            .iter()
            .rposition(|r| r.complete && r.limit == 1)
            .or_else(|| runs.iter().position(|r| r.complete));
        let base = base_index.map(|i| runs[i].wall.as_secs_f64());
        let mut spans = vec![Span::styled(" runs  ", DIM)];
        for (i, run) in runs.iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" · ", DIM));
            }
            let last = i + 1 == runs.len();
            let shown_base = base.filter(|_| base_index.is_some_and(|b| b != i));
            let style = if last { ACCENT } else { Style::new() };
            spans.push(Span::styled(entry(run, shown_base, compact, last), style));
        }
        spans
    };
    // Drop the oldest runs until it fits.
    let mut from = 0;
    loop {
        for compact in [false, true] {
            let spans = build(&all[from..], compact);
            if span_width(&spans) <= width || from + 1 >= all.len() && compact {
                return Line::from(spans);
            }
        }
        from += 1;
    }
}

/// The first key of `command` in `mode`, as shown (None when unbound).
fn key_of(model: &Model, mode: Mode, command: Command) -> Option<String> {
    model.keymap.first_key(mode, command).map(|k| k.label())
}

/// A hint: a key as shown and what it does.
type Hint = (String, &'static str);

/// Keys that apply now, most useful first; then those the hint bar drops last: help and
/// quit (or, in a dialog, its answers).
fn hints(model: &Model) -> (Vec<Hint>, Vec<Hint>) {
    let mode = model.mode();
    let mut hints: Vec<Hint> = Vec::new();
    let add = |command: Command, label: &'static str, hints: &mut Vec<_>| {
        if let Some(key) = key_of(model, mode, command) {
            hints.push((key, label));
        }
    };
    let up_down = |label: &'static str| -> Option<Hint> {
        let up = key_of(model, mode, Command::SelectPrev)?;
        let down = key_of(model, mode, Command::SelectNext)?;
        Some((format!("{up}{down}"), label))
    };
    match mode {
        Mode::Help => {
            hints.extend(up_down("scroll"));
            add(Command::PageDown, "page", &mut hints);
            let mut last = Vec::new();
            add(Command::Cancel, "close", &mut last);
            return (hints, last);
        }
        Mode::ConfirmQuit | Mode::ConfirmRerun => {
            let mut last = Vec::new();
            if mode == Mode::ConfirmRerun {
                add(Command::Rerun, "other -j", &mut hints);
            }
            add(Command::Confirm, "yes", &mut last);
            add(Command::Cancel, "no", &mut last);
            return (hints, last);
        }
        Mode::SignalMenu => {
            hints.extend(up_down("choose"));
            hints.push(("0-9".into(), "pick"));
            let mut last = Vec::new();
            add(Command::Confirm, "send", &mut last);
            add(Command::Cancel, "close", &mut last);
            return (hints, last);
        }
        Mode::Input => {
            let mut last = Vec::new();
            add(Command::InputLeave, "leave", &mut last);
            return (hints, last);
        }
        Mode::Copy => {
            hints.extend(up_down("move"));
            let marked = model.copy.is_some_and(|c| c.anchor.is_some());
            add(
                Command::CopyMark,
                if marked { "unmark" } else { "mark" },
                &mut hints,
            );
            add(Command::Copy, "copy", &mut hints);
            add(Command::SaveSelection, "save", &mut hints);
            add(Command::Save, "save all", &mut hints);
            let mut last = Vec::new();
            add(Command::Cancel, "leave", &mut last);
            return (hints, last);
        }
        Mode::Tree => {
            let live = model
                .tree
                .is_some_and(|view| super::tree::shown_tree(model, view.job).1);
            hints.extend(up_down("process"));
            if live {
                let subtree = model
                    .tree
                    .is_some_and(|v| v.reach == crate::supervisor::Reach::Subtree);
                add(Command::Stop, "stop", &mut hints);
                add(Command::Kill, "kill", &mut hints);
                add(Command::Signal, "signal", &mut hints);
                add(
                    Command::TreeReach,
                    if subtree { "one process" } else { "subtree" },
                    &mut hints,
                );
                let paused = model.tree.is_some_and(|v| model.paused(v.job));
                add(
                    Command::Pause,
                    if paused { "resume" } else { "pause" },
                    &mut hints,
                );
            }
            let mut last = Vec::new();
            add(Command::Help, "help", &mut last);
            add(Command::Cancel, "close", &mut last);
            return (hints, last);
        }
        Mode::Prompt | Mode::Normal => {}
    }
    if model.merged_selected() {
        hints.extend(up_down(match model.focus {
            Focus::Jobs => "select",
            Focus::Output => "scroll",
        }));
        for (command, label) in [
            (Command::Search, "search all"),
            (Command::Filter, "jobs"),
            (Command::StreamFilter, "stream"),
            (Command::CopyMode, "copy"),
            (Command::Timestamps, "times"),
            (Command::Wrap, "wrap"),
            (Command::Save, "save"),
        ] {
            add(command, label, &mut hints);
        }
        if model.search.is_some()
            && let (Some(next), Some(prev)) = (
                key_of(model, mode, Command::SearchNext),
                key_of(model, mode, Command::SearchPrev),
            )
        {
            hints.push((format!("{next}/{prev}"), "next/prev"));
        }
        if !model.merged.follow {
            add(Command::Follow, "follow", &mut hints);
        }
        let mut last = Vec::new();
        add(Command::Help, "help", &mut last);
        add(Command::Quit, "quit", &mut last);
        return (hints, last);
    }
    let id = model.selected_job();
    let quit = if model.attached.is_some() {
        "detach"
    } else {
        "quit"
    };
    let Some(job) = model.job(id) else {
        let mut last = Vec::new();
        add(Command::Quit, quit, &mut last);
        return (hints, last);
    };
    hints.extend(up_down(match model.focus {
        Focus::Jobs => "select",
        Focus::Output => "scroll",
    }));
    if model.is_pipeline(id) {
        if model.is_expanded(id) {
            add(Command::Collapse, "collapse", &mut hints);
        } else {
            add(Command::Expand, "expand", &mut hints);
        }
    }
    let job_keys: &[Command] = if job.status.is_active() {
        &[
            Command::Stop,
            Command::Kill,
            Command::Wait,
            Command::Restart,
            Command::Signal,
        ]
    } else {
        &[Command::Start, Command::Restart]
    };
    for &command in job_keys {
        add(command, command.hint(), &mut hints);
    }
    if job.status.is_active() && model.input_kind(id).is_some() {
        add(Command::Input, Command::Input.hint(), &mut hints);
    }
    add(Command::Search, "search", &mut hints);
    if model.search.is_some()
        && let (Some(next), Some(prev)) = (
            key_of(model, mode, Command::SearchNext),
            key_of(model, mode, Command::SearchPrev),
        )
    {
        hints.push((format!("{next}/{prev}"), "next/prev"));
    }
    if !model.view(id).follow {
        add(Command::Follow, "follow", &mut hints);
    }
    let view = if model.timeline { "output" } else { "timeline" };
    add(Command::Timeline, view, &mut hints);
    if job.status.is_active() || job.status.tree_at_stop.is_some() {
        add(Command::Tree, "tree", &mut hints);
    }
    if matches!(job.status.state, crate::supervisor::JobState::Running) {
        let paused = model.paused(id);
        add(
            Command::Pause,
            if paused { "resume" } else { "pause" },
            &mut hints,
        );
    }
    add(Command::Rerun, Command::Rerun.hint(), &mut hints);
    if !model.timeline {
        add(Command::Focus, "focus", &mut hints);
        add(Command::CopyMode, "copy", &mut hints);
    }
    let mut last = Vec::new();
    add(Command::Help, "help", &mut last);
    add(Command::Quit, quit, &mut last);
    (hints, last)
}

fn hint_width((key, label): &Hint) -> usize {
    key.chars().count() + label.chars().count() + 3
}

/// The hints that fit in `width`: `last` (help and quit) are kept until nothing else is
/// left, and of those the final one (quit) goes last.
fn hint_spans(hints: &[Hint], last: &[Hint], width: usize) -> Vec<Span<'static>> {
    let mut kept_last: Vec<&Hint> = last.iter().collect();
    let mut budget = width.saturating_sub(1);
    while kept_last.iter().map(|h| hint_width(h)).sum::<usize>() > budget && !kept_last.is_empty() {
        kept_last.remove(0);
    }
    budget -= kept_last.iter().map(|h| hint_width(h)).sum::<usize>();
    let mut shown: Vec<&Hint> = Vec::new();
    for hint in hints {
        let need = hint_width(hint);
        if need > budget {
            break;
        }
        budget -= need;
        shown.push(hint);
    }
    let mut spans = vec![Span::raw(" ")];
    for (key, label) in shown.into_iter().chain(kept_last) {
        spans.push(Span::styled(key.clone(), KEY));
        spans.push(Span::styled(format!(" {label}  "), DIM));
    }
    spans
}

/// The keys of `command` in `mode` joined with " or " (`Q or Ctrl-C`), for sentences.
fn keys_or(model: &Model, mode: Mode, commands: &[Command]) -> Option<String> {
    let keys: Vec<String> = commands
        .iter()
        .filter_map(|c| key_of(model, mode, *c))
        .collect();
    (!keys.is_empty()).then(|| keys.join(" or "))
}

/// The bottom line: a prompt, a quit notice, a message or the key hints.
pub fn status_bar(frame: &mut Frame, model: &Model, area: Rect) {
    let width = area.width as usize;
    let active = model.active_count() as u64;
    let line = if let Some(prompt) = &model.prompt {
        prompt_line(model, prompt)
    } else if let (Some(limit), None) = (model.rerun, model.quitting) {
        let what = if active > 0 {
            format!("stopping {}", format::count(active, "job", "jobs"))
        } else {
            "ending the run".to_string()
        };
        let mut text = format!(
            " {what}, then rerunning with -j {}…",
            crate::fmt::limit_label(limit, false)
        );
        if let Some(keys) = keys_or(model, Mode::Normal, &[Command::QuitNow]) {
            text.push_str(&format!("  {keys}: quit now"));
        }
        Line::from(Span::styled(text, theme::BUSY))
    } else if let Some(quitting) = model.quitting {
        let text = match quitting {
            Quitting::Graceful if active > 0 => {
                let mut text = format!(" stopping {}…", format::count(active, "job", "jobs"));
                let keys = keys_or(model, Mode::Normal, &[Command::QuitNow, Command::Interrupt]);
                if let Some(keys) = keys {
                    text.push_str(&format!("  {keys}: kill them now"));
                }
                text
            }
            Quitting::Killing if active > 0 => {
                format!(" killing {}…", format::count(active, "job", "jobs"))
            }
            _ if model.attached.is_some() => " detaching…".to_string(),
            _ => " quitting…".to_string(),
        };
        Line::from(Span::styled(text, theme::BUSY))
    } else if let Some(message) = &model.message
        && matches!(model.mode(), Mode::Normal | Mode::Tree)
    {
        Line::from(Span::styled(
            format!(" {}", message.text),
            theme::message(message.kind),
        ))
    } else {
        let (hints, last) = hints(model);
        Line::from(hint_spans(&hints, &last, width))
    };
    // The bar's background first, then its text without a Paragraph's per-frame
    // grapheme buffering (this line is redrawn with every clock frame).
    let buf = frame.buffer_mut();
    buf.set_style(area, theme::STATUS_BAR);
    super::render_lines(buf, area, &[line]);
}

fn prompt_line(model: &Model, prompt: &Prompt) -> Line<'static> {
    let label = match prompt.kind {
        PromptKind::Wait(WaitTarget::Job(id)) => format!(
            " wait for {}, then stop it: ",
            model.job(id).map(|j| j.name.as_str()).unwrap_or("?")
        ),
        PromptKind::Wait(WaitTarget::All) => " wait for every job, then stop them: ".to_string(),
        PromptKind::Search => " /".to_string(),
        PromptKind::Input(id) => format!(
            " line to {}'s stdin: ",
            model.job(id).map(|j| j.name.as_str()).unwrap_or("?")
        ),
        PromptKind::Filter => {
            " all: jobs to show (names, * matches any text; empty: all): ".to_string()
        }
        PromptKind::Save(crate::ui::model::SaveWhat::Selection) => {
            " save the selection to: ".to_string()
        }
        PromptKind::Save(crate::ui::model::SaveWhat::Scrollback) => {
            " save the whole output to: ".to_string()
        }
    };
    let input_style = if prompt.fresh {
        theme::REVERSED
    } else {
        theme::BOLD
    };
    let mut spans = vec![
        Span::styled(label, theme::PROMPT_LABEL),
        Span::styled(prompt.input.clone(), input_style),
        Span::styled(" ", theme::REVERSED),
    ];
    match &prompt.error {
        Some(error) => spans.push(Span::styled(format!("  {error}"), theme::FAILED)),
        None => {
            let submit = key_of(model, Mode::Prompt, Command::PromptSubmit);
            let cancel = key_of(model, Mode::Prompt, Command::PromptCancel);
            let mut help = String::from(" ");
            if let Some(key) = submit {
                let what = match prompt.kind {
                    PromptKind::Wait(_) | PromptKind::Filter => "ok",
                    PromptKind::Search => "find",
                    PromptKind::Input(_) => "send",
                    PromptKind::Save(_) => "save",
                };
                help.push_str(&format!(" {key} {what} ·"));
            }
            if let (PromptKind::Input(_), Some(key)) =
                (prompt.kind, key_of(model, Mode::Prompt, Command::InputEof))
            {
                help.push_str(&format!(" {key} close stdin ·"));
            }
            if let Some(key) = cancel {
                help.push_str(&format!(" {key} cancel"));
            }
            if matches!(prompt.kind, PromptKind::Wait(_)) {
                help.push_str(" · 30, 500ms, 2m");
            }
            spans.push(Span::styled(help.trim_end_matches(" ·").to_string(), DIM));
        }
    }
    Line::from(spans)
}

/// A box of `width`×`height` centred in `area` (clamped to it).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn popup(title: &str) -> Block<'static> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme::POPUP_BORDER)
        .title(Span::styled(format!(" {title} "), theme::BOLD))
}

pub fn overlay(frame: &mut Frame, model: &Model, overlay: Overlay, area: Rect) {
    match overlay {
        Overlay::Help { scroll } => help(frame, model, area, scroll),
        Overlay::Signals { selected } => signals(frame, model, selected, area),
        Overlay::ConfirmQuit => confirm_quit(frame, model, area),
        Overlay::ConfirmRerun { limit } => confirm_rerun(frame, model, limit, area),
    }
}

/// The help's lines: every command with its keys (from the keymap in use: the user's
/// `[keys]` show), the main screen's first, then those of dialogs, menus and prompts.
fn help_lines(model: &Model) -> Vec<Line<'static>> {
    let entries = model.keymap.help_entries();
    let key_width = entries
        .iter()
        .map(|e| e.keys.chars().count())
        .max()
        .unwrap_or(0)
        .min(18);
    let mut lines = Vec::with_capacity(entries.len() + 4);
    let mut in_dialogs = false;
    for entry in entries {
        if entry.mode != Mode::Normal && !in_dialogs {
            in_dialogs = true;
            lines.push(Line::from(Span::styled(
                " in dialogs, menus and prompts:",
                DIM,
            )));
        }
        let keys = if entry.keys.is_empty() {
            "(unbound)".to_string()
        } else {
            entry.keys
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<key_width$}  ", format::fit(&keys, 18)), KEY),
            Span::raw(entry.command.about()),
        ]));
    }
    lines.push(Line::from(Span::styled(
        " stderr is tinted red; [2 sh│ tags mark each pipeline stage's output",
        DIM,
    )));
    if let Some(keys) = keys_or(model, Mode::Help, &[Command::Cancel, Command::Help]) {
        lines.push(Line::from(Span::styled(
            format!(" {keys} closes this help"),
            DIM,
        )));
    }
    lines
}

/// Lines of the help overlay (the commands plus its notes).
pub fn help_line_count(model: &Model) -> usize {
    help_lines(model).len()
}

/// The keys, in a box as tall as the terminal allows; when it cuts the list, ↑ ↓ scroll
/// it and the bottom border says what is hidden.
fn help(frame: &mut Frame, model: &Model, area: Rect, scroll: usize) {
    let lines = help_lines(model);
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let rect = centered(area, width, lines.len() as u16 + 2);
    let shown = usize::from(rect.height.saturating_sub(2));
    let scroll = scroll.min(lines.len().saturating_sub(shown));
    let below = lines.len().saturating_sub(scroll + shown);
    let mut block = popup("keys");
    if scroll > 0 || below > 0 {
        let hint = match (scroll, below) {
            (0, below) => format!(" ↓ {below} more "),
            (above, 0) => format!(" ↑ {above} more "),
            (above, below) => format!(" ↑ {above} · ↓ {below} "),
        };
        block = block.title_bottom(Line::from(Span::styled(hint, DIM)).right_aligned());
    }
    frame.render_widget(Clear, rect);
    let visible: Vec<Line> = lines.into_iter().skip(scroll).collect();
    frame.render_widget(Paragraph::new(visible).block(block), rect);
}

fn signals(frame: &mut Frame, model: &Model, selected: usize, area: Rect) {
    let name = model
        .job(model.selected_job())
        .map(|j| j.name.clone())
        .unwrap_or_default();
    let mut lines: Vec<Line> = COMMON_SIGNALS
        .iter()
        .enumerate()
        .map(|(i, signal)| {
            let text = format!(
                " {} {:<9} {:>2} ",
                (i + 1) % 10,
                signal.as_str(),
                *signal as i32
            );
            if i == selected {
                Line::from(Span::styled(text, theme::MENU_SELECTED))
            } else {
                Line::from(text)
            }
        })
        .collect();
    let mode = Mode::SignalMenu;
    let mut help = Vec::new();
    if let Some(key) = key_of(model, mode, Command::Confirm) {
        help.push(format!("{key} send"));
    }
    if let Some(key) = key_of(model, mode, Command::Cancel) {
        help.push(format!("{key} cancel"));
    }
    lines.push(Line::from(Span::styled(
        format!(" {}", help.join(" · ")),
        DIM,
    )));
    let title = format!("signal {}", format::fit(&name, 16));
    let width = (lines.iter().map(Line::width).max().unwrap_or(0) as u16)
        .max(title.chars().count() as u16 + 4)
        + 2;
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(popup(&title)), rect);
}

/// ` y / Enter quit   n / Esc cancel`: a dialog's answers with their keys.
fn answers(model: &Model, mode: Mode, choices: &[(Command, &'static str)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (command, what) in choices {
        let keys: Vec<String> = model
            .keymap
            .keys(mode, *command)
            .map(|k| k.label())
            .collect();
        if keys.is_empty() {
            continue;
        }
        spans.push(Span::raw(" "));
        for (i, key) in keys.into_iter().take(2).enumerate() {
            if i > 0 {
                spans.push(Span::styled(" / ", DIM));
            }
            spans.push(Span::styled(key, KEY));
        }
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

fn confirm_quit(frame: &mut Frame, model: &Model, area: Rect) {
    let n = model.unsettled_count();
    let question = if n > 0 {
        " Stop them all (SIGKILL after grace) and quit?"
    } else {
        " Quit?"
    };
    let lines = vec![
        still_running(n),
        Line::from(question),
        Line::from(""),
        answers(
            model,
            Mode::ConfirmQuit,
            &[(Command::Confirm, "quit"), (Command::Cancel, "cancel")],
        ),
    ];
    dialog(frame, area, "quit?", lines);
}

fn confirm_rerun(frame: &mut Frame, model: &Model, limit: usize, area: Rect) {
    let n = model.unsettled_count();
    let what = match limit {
        0 => "unlimited".to_string(),
        1 => "1 (one job at a time)".to_string(),
        n if n == model.cores => format!("{n} (one job per core)"),
        n => n.to_string(),
    };
    let question = if n > 0 {
        " Stop them all and rerun everything with"
    } else {
        " Rerun everything with"
    };
    let lines = vec![
        still_running(n),
        Line::from(question),
        Line::from(vec![
            Span::raw("   -j "),
            Span::styled(what, ACCENT),
            Span::raw("?"),
        ]),
        Line::from(""),
        answers(
            model,
            Mode::ConfirmRerun,
            &[
                (Command::Confirm, "rerun"),
                (Command::Rerun, "other -j"),
                (Command::Cancel, "cancel"),
            ],
        ),
    ];
    dialog(frame, area, "rerun?", lines);
}

/// "3 jobs are still running or waiting to run." (or that none is any more).
fn still_running(n: usize) -> Line<'static> {
    match n {
        0 => Line::from(" Every job has finished."),
        1 => Line::from(" 1 job is still running or waiting to run."),
        n => Line::from(format!(" {n} jobs are still running or waiting to run.")),
    }
}

/// A bordered dialog sized to its lines, centred over everything else.
fn dialog(frame: &mut Frame, area: Rect, title: &'static str, lines: Vec<Line<'static>>) {
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(popup(title)), rect);
}

/// Shown instead of everything else below the minimum size.
pub fn too_small(frame: &mut Frame, area: Rect, min: (u16, u16)) {
    let lines = vec![
        Line::from("terminal too small"),
        Line::from(format!(
            "{}×{}, need {}×{}",
            area.width, area.height, min.0, min.1
        )),
    ];
    let y = area.height.saturating_sub(2) / 2;
    let rect = Rect {
        x: area.x,
        y: area.y + y,
        width: area.width,
        height: area.height.saturating_sub(y).min(2),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Center)
            .style(theme::TOO_SMALL),
        rect,
    );
}
