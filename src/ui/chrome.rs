//! Everything around the table and the output: header, status bar, prompts, overlays.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use crate::supervisor::signals::COMMON_SIGNALS;

use super::format;
use super::model::{
    Focus, MessageKind, Model, Overlay, Prompt, PromptKind, Quitting, WaitTarget, counts,
};

const KEY: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);

/// Every key, as the help overlay lists it.
pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "select a job (output pane: scroll)"),
    ("Enter  →  ←", "expand / collapse a pipeline"),
    ("Tab", "switch focus: jobs / output"),
    ("PgUp PgDn", "scroll the output a page"),
    ("g  G", "output: top / bottom (follow)"),
    ("mouse", "wheel scrolls, click selects"),
    ("t", "terminate: stop signal, SIGKILL after grace"),
    ("K", "kill now (SIGKILL to the group)"),
    ("w  W", "wait for the job / all, then stop it"),
    ("r  R", "restart the job / all jobs"),
    ("s", "start a pending or finished job"),
    ("x", "send a signal (menu)"),
    ("/  n  N", "search the output, next / previous"),
    ("f", "toggle follow (tail) mode"),
    ("v", "timeline: when each job ran, shaded by CPU"),
    ("p", "rerun all with -j 1 / cores / unlimited"),
    ("c", "clear the job's output"),
    ("?", "this help"),
    ("q", "quit (confirms, then stops every job)"),
    ("Q  Ctrl-C Ctrl-C", "quit now (kills and reaps every job)"),
];

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
    let failed_style = if c.failed > 0 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        DIM
    };
    let build = |compact: bool| -> Vec<Span<'static>> {
        let (running, done, failed, pending) = if compact {
            ("", "", "", "")
        } else {
            (" running", " done", " failed", " pending")
        };
        let mut spans = vec![
            Span::styled(
                if compact { " fy " } else { " forkyard " },
                Style::new()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(" "),
            Span::styled(
                format!("● {}{running}", c.running),
                Style::new().fg(Color::Green),
            ),
            Span::raw("  "),
            Span::styled(format!("✔ {}{done}", c.done), Style::new().fg(Color::Green)),
            Span::raw("  "),
            Span::styled(format!("✘ {}{failed}", c.failed), failed_style),
        ];
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
        spans.push(Span::styled(
            limit,
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ));
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
        None => crate::fmt::clock(model.now.saturating_duration_since(model.tracker.started)),
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
    // Widest first: the machine's own load, when known and when there is room for it.
    let mut variants: Vec<Vec<(&str, String)>> = variants.into();
    if let Some(machine) = model.tracker.machine {
        let mut widest = variants[0].clone();
        widest.push(("machine ", format!("{:.0}% CPU", machine.cpu_percent)));
        variants.insert(0, widest);
    }
    let value = Style::new().add_modifier(Modifier::BOLD);
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
            let style = if last {
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
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

/// Keys that apply to the current state, as (key, label).
fn hints(model: &Model) -> Vec<(&'static str, &'static str)> {
    let mut hints = Vec::new();
    let id = model.selected_job();
    let Some(job) = model.job(id) else {
        return vec![("q", "quit")];
    };
    match model.focus {
        Focus::Jobs => hints.push(("↑↓", "select")),
        Focus::Output => hints.push(("↑↓", "scroll")),
    }
    if model.is_pipeline(id) {
        if model.is_expanded(id) {
            hints.push(("←", "collapse"));
        } else {
            hints.push(("→", "expand"));
        }
    }
    if job.status.is_active() {
        hints.extend([
            ("t", "stop"),
            ("K", "kill"),
            ("w", "wait"),
            ("r", "restart"),
            ("x", "signal"),
        ]);
    } else {
        hints.extend([("s", "start"), ("r", "restart")]);
    }
    hints.push(("/", "search"));
    if model.search.is_some() {
        hints.push(("n/N", "next/prev"));
    }
    if !model.view(id).follow {
        hints.push(("f", "follow"));
    }
    hints.extend([
        ("v", if model.timeline { "output" } else { "timeline" }),
        ("p", "rerun -j"),
    ]);
    if !model.timeline {
        hints.push(("Tab", "focus"));
    }
    hints.extend([("?", "help"), ("q", "quit")]);
    hints
}

fn hint_spans(hints: &[(&str, &str)], width: usize) -> Vec<Span<'static>> {
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (key, label) in hints {
        let need = key.chars().count() + label.chars().count() + 3;
        if used + need > width {
            break;
        }
        spans.push(Span::styled(key.to_string(), KEY));
        spans.push(Span::styled(format!(" {label}  "), DIM));
        used += need;
    }
    spans
}

/// The bottom line: a prompt, a quit notice, a message or the key hints.
pub fn status_bar(frame: &mut Frame, model: &Model, area: Rect) {
    let width = area.width as usize;
    let line = if let Some(prompt) = &model.prompt {
        prompt_line(model, prompt)
    } else if let (Some(limit), None) = (model.rerun, model.quitting) {
        Line::from(Span::styled(
            format!(
                " stopping {} job(s), then rerunning with -j {}…  Q: quit now",
                model.active_count(),
                crate::fmt::limit_label(limit, false)
            ),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(quitting) = model.quitting {
        let text = match quitting {
            Quitting::Graceful => format!(
                " stopping {} job(s)…  Q or Ctrl-C: kill them now",
                model.active_count()
            ),
            Quitting::Killing => format!(" killing {} job(s)…", model.active_count()),
        };
        Line::from(Span::styled(
            text,
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(message) = &model.message {
        let style = match message.kind {
            MessageKind::Info => Style::new().fg(Color::White),
            MessageKind::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        };
        Line::from(Span::styled(format!(" {}", message.text), style))
    } else {
        Line::from(hint_spans(&hints(model), width))
    };
    // The bar's background first, then its text without a Paragraph's per-frame
    // grapheme buffering (this line is redrawn with every clock frame).
    let buf = frame.buffer_mut();
    buf.set_style(area, Style::new().bg(Color::Indexed(236)));
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
    };
    let input_style = if prompt.fresh {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let mut spans = vec![
        Span::styled(label, Style::new().fg(Color::Yellow)),
        Span::styled(prompt.input.clone(), input_style),
        Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
    ];
    match &prompt.error {
        Some(error) => spans.push(Span::styled(
            format!("  {error}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        None => {
            let help = match prompt.kind {
                PromptKind::Wait(_) => "  Enter ok · Esc cancel · 30, 500ms, 2m",
                PromptKind::Search => "  Enter find · Esc cancel",
            };
            spans.push(Span::styled(help, DIM));
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
        .border_style(Style::new().fg(Color::Cyan))
        .title(Span::styled(
            format!(" {title} "),
            Style::new().add_modifier(Modifier::BOLD),
        ))
}

pub fn overlay(frame: &mut Frame, model: &Model, overlay: Overlay, area: Rect) {
    match overlay {
        Overlay::Help { scroll } => help(frame, area, scroll),
        Overlay::Signals { selected } => signals(frame, model, selected, area),
        Overlay::ConfirmQuit => confirm_quit(frame, model, area),
        Overlay::ConfirmRerun { limit } => confirm_rerun(frame, model, limit, area),
    }
}

/// Lines of the help overlay (keys plus two notes).
pub fn help_line_count() -> usize {
    HELP.len() + 2
}

/// The keys, in a box as tall as the terminal allows; when it cuts the list, ↑ ↓ scroll
/// it and the bottom border says what is hidden.
fn help(frame: &mut Frame, area: Rect, scroll: usize) {
    let key_width = HELP
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<key_width$}  "), KEY),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        " stderr is tinted red; [stage│ tags mark pipeline output",
        DIM,
    )));
    lines.push(Line::from(Span::styled(" Esc or ? closes this help", DIM)));
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
                Line::from(Span::styled(
                    text,
                    Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
                ))
            } else {
                Line::from(text)
            }
        })
        .collect();
    lines.push(Line::from(Span::styled(" Enter send · Esc cancel", DIM)));
    let title = format!("signal {}", format::fit(&name, 16));
    let width = (lines.iter().map(Line::width).max().unwrap_or(0) as u16)
        .max(title.chars().count() as u16 + 4)
        + 2;
    let rect = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(popup(&title)), rect);
}

fn confirm_quit(frame: &mut Frame, model: &Model, area: Rect) {
    let n = model.unsettled_count();
    let lines = vec![
        still_running(n),
        Line::from(" Stop them all (SIGKILL after grace) and quit?"),
        Line::from(""),
        Line::from(vec![
            Span::styled(" y", KEY),
            Span::styled(" / ", DIM),
            Span::styled("Enter", KEY),
            Span::raw(" quit   "),
            Span::styled("n", KEY),
            Span::styled(" / ", DIM),
            Span::styled("Esc", KEY),
            Span::raw(" cancel"),
        ]),
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
    let lines = vec![
        still_running(n),
        Line::from(" Stop them all and rerun everything with"),
        Line::from(vec![
            Span::raw("   -j "),
            Span::styled(
                what,
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ),
            Span::raw("?"),
        ]),
        Line::from(""),
        Line::from(vec![
            Span::styled(" y", KEY),
            Span::styled(" / ", DIM),
            Span::styled("Enter", KEY),
            Span::raw(" rerun   "),
            Span::styled("p", KEY),
            Span::raw(" other -j   "),
            Span::styled("n", KEY),
            Span::styled(" / ", DIM),
            Span::styled("Esc", KEY),
            Span::raw(" cancel"),
        ]),
    ];
    dialog(frame, area, "rerun?", lines);
}

/// "3 jobs are still running or waiting to run."
fn still_running(n: usize) -> Line<'static> {
    Line::from(format!(
        " {n} job{} still running or waiting to run.",
        if n == 1 { " is" } else { "s are" }
    ))
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
            .style(Style::new().fg(Color::Yellow)),
        rect,
    );
}
