//! The timeline (`v`): one row per job (and per stage of an expanded pipeline) on a
//! shared time axis, from the run's start to now (or its end). Each run is a bar; each
//! cell is shaded by the CPU the job used in that slice of time, so a sleeping job is a
//! thin line and a CPU-bound one a solid block; a slice the job spent largely runnable
//! but waiting for a CPU (more CPU-bound jobs than cores) is drawn as [`WAITING`].
//!
//! A pure render of what the tracker recorded ([`crate::tracker::History`]): run
//! intervals and cumulative CPU points, interpolated per cell.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format;
use super::model::{Model, RowRef};
use crate::supervisor::JobState;
use crate::tracker::JobRecord;

use super::theme::{self, DIM};
/// Expand marker and status glyph, as in the table.
const PREFIX: usize = 4;
const MIN_NAME: usize = 8;
const MAX_NAME: usize = 24;
/// Bars get at least this many columns.
const MIN_BARS: usize = 10;
/// Tick spacings, in milliseconds.
const STEPS_MS: [u64; 26] = [
    10,
    20,
    50,
    100,
    200,
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
];

/// The shared time axis: `cols` cells from `origin` over `span`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub origin: Instant,
    pub span: Duration,
    pub cols: usize,
    /// Ruler spacing.
    pub step: Duration,
    /// Set while the run goes on: the "now" line, and where running bars end.
    pub now: Option<Instant>,
    /// Where running bars end (now, or the moment every job settled).
    pub end: Instant,
}

impl Axis {
    /// The axis for `cols` columns: up to the end of a finished run, or a little past
    /// now (rounded to a tick) while it goes on, so the scale does not move every frame.
    pub fn new(model: &Model, cols: usize) -> Axis {
        let origin = model.tracker.started;
        let cols = cols.max(1);
        match model.tracker.settled_at {
            Some(end) => {
                let span = end
                    .saturating_duration_since(origin)
                    .max(Duration::from_millis(10));
                Axis {
                    origin,
                    span,
                    cols,
                    step: tick_step(span, cols),
                    now: None,
                    end,
                }
            }
            None => {
                let now = model.now.max(origin);
                let elapsed = now.saturating_duration_since(origin);
                let target = (elapsed + elapsed / 8).max(Duration::from_secs(1));
                let step = tick_step(target, cols);
                let steps = target.as_nanos().div_ceil(step.as_nanos().max(1));
                let span = step * u32::try_from(steps).unwrap_or(u32::MAX);
                Axis {
                    origin,
                    span,
                    cols,
                    step: tick_step(span, cols),
                    now: Some(now),
                    end: now,
                }
            }
        }
    }

    /// The time interval of cell `col`.
    pub fn cell(&self, col: usize) -> (Instant, Instant) {
        let at = |c: usize| self.origin + self.span.mul_f64(c as f64 / self.cols as f64);
        (at(col), at(col + 1))
    }

    /// The cell holding `t` (clamped to the axis).
    pub fn col(&self, t: Instant) -> usize {
        let offset = t.saturating_duration_since(self.origin).as_secs_f64();
        let f = offset / self.span.as_secs_f64().max(f64::MIN_POSITIVE);
        ((f * self.cols as f64) as usize).min(self.cols - 1)
    }

    /// The cell holding the end of an interval ending at `t` (an end exactly on a cell
    /// boundary belongs to the cell before).
    fn end_col(&self, start: Instant, t: Instant) -> usize {
        let col = self.col(t);
        if t > start && col > 0 && self.cell(col).0 >= t {
            col - 1
        } else {
            col
        }
    }
}

/// The smallest tick spacing whose labels fit with room to spare.
fn tick_step(span: Duration, cols: usize) -> Duration {
    let span_s = span.as_secs_f64().max(1e-3);
    for ms in STEPS_MS {
        let step = Duration::from_millis(ms);
        let spacing = step.as_secs_f64() / span_s * cols as f64;
        let label = tick_label(span, step).chars().count();
        if spacing >= (label + 3).max(8) as f64 {
            return step;
        }
    }
    Duration::from_millis(STEPS_MS[STEPS_MS.len() - 1])
}

/// `0`, `0.5s`, `12s`, `1m30s`, `2h`: a tick's time, as precise as the step needs.
pub fn tick_label(t: Duration, step: Duration) -> String {
    if t.is_zero() {
        return "0".into();
    }
    let ms = t.as_millis();
    if step < Duration::from_secs(1) {
        let decimals = if step.as_millis().is_multiple_of(100) {
            1
        } else {
            2
        };
        return format!("{:.*}s", decimals, t.as_secs_f64());
    }
    let secs = t.as_secs() + u64::from(ms % 1000 >= 500);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        match secs % 60 {
            0 => format!("{}m", secs / 60),
            s => format!("{}m{s:02}s", secs / 60),
        }
    } else {
        match (secs % 3600) / 60 {
            0 => format!("{}h", secs / 3600),
            m => format!("{}h{m:02}m", secs / 3600),
        }
    }
}

/// How busy a slice was, in cores, and how it is drawn.
fn cpu_glyph(cores: Option<f64>) -> char {
    match cores {
        None => '╌',
        Some(c) if c < 0.05 => '─',
        Some(c) if c < 0.30 => '░',
        Some(c) if c < 0.60 => '▒',
        Some(c) if c < 0.85 => '▓',
        Some(_) => '█',
    }
}

/// A slice spent largely waiting for a CPU: at least [`WAIT_SHARE`] of it runnable but
/// not running, and at least half as much waiting as running.
pub const WAITING: char = '▚';
const WAIT_SHARE: f64 = 0.25;

/// Marks the first cell of a restart that touches the bar before it.
const RESTART: char = '▏';
const NOW: char = '│';
const GRID: char = '┊';

/// One cell's accumulated coverage.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    /// Seconds of the cell covered by a run.
    covered: f64,
    /// CPU seconds in those (where known).
    cpu: f64,
    /// Seconds waiting for a CPU in those (where known).
    wait: f64,
    known: bool,
    touched: bool,
    restart: bool,
    color: Option<Color>,
}

impl Acc {
    fn glyph(&self) -> Option<(char, Color)> {
        if !self.touched {
            return None;
        }
        let color = self.color.unwrap_or(theme::RUN_UNKNOWN);
        if self.restart {
            return Some((RESTART, color));
        }
        if self.known
            && self.covered > 0.0
            && self.wait / self.covered >= WAIT_SHARE
            && self.wait >= self.cpu / 2.0
        {
            return Some((WAITING, theme::CPU_WAIT));
        }
        let cores = if !self.known {
            None
        } else if self.covered > 0.0 {
            Some(self.cpu / self.covered)
        } else {
            Some(0.0)
        };
        Some((cpu_glyph(cores), color))
    }
}

/// Cumulative seconds (CPU, or waiting for one) at each of the increasing instants
/// asked about; None where nothing is known.
type Cumulative<'a> = &'a dyn Fn(&[Instant]) -> Vec<Option<f64>>;

/// Adds the interval `[a, b]` of a run to the cells. `cumulative` gives the run's CPU
/// seconds so far at each of the (increasing) instants it is asked about, `waited` its
/// seconds waiting for a CPU (None: not known for this row).
fn paint(
    cells: &mut [Acc],
    axis: &Axis,
    (a, b): (Instant, Instant),
    color: Color,
    restart: bool,
    cumulative: impl Fn(&[Instant]) -> Vec<Option<f64>>,
    waited: Option<Cumulative>,
) {
    let a = a.max(axis.origin);
    let b = b.max(a);
    let first = axis.col(a);
    let last = axis.end_col(a, b);
    // The run's part of each cell: from bounds[i] to bounds[i + 1].
    let mut bounds = Vec::with_capacity(last - first + 2);
    bounds.push(a);
    for col in first..=last {
        let end = axis.cell(col).1.min(b);
        bounds.push(end.max(*bounds.last().unwrap_or(&a)));
    }
    let cpu = cumulative(&bounds);
    let wait = waited.map(|w| w(&bounds));
    for (i, cell) in cells[first..=last].iter_mut().enumerate() {
        let secs = bounds[i + 1]
            .saturating_duration_since(bounds[i])
            .as_secs_f64();
        cell.touched = true;
        cell.color = Some(color);
        // Unknown slices (no sample yet) leave the cell dashed unless another part
        // of it is known.
        if let (Some(x), Some(y)) = (cpu[i], cpu[i + 1]) {
            cell.known = true;
            cell.covered += secs;
            cell.cpu += (y - x).max(0.0);
        }
        if let Some(wait) = &wait
            && let (Some(x), Some(y)) = (wait[i], wait[i + 1])
        {
            cell.wait += (y - x).max(0.0);
        }
        if restart && i == 0 {
            cell.restart = true;
        }
    }
}

/// The cells of a job row: every run, shaded by its recorded CPU.
fn job_cells(record: &JobRecord, axis: &Axis) -> Vec<Acc> {
    let mut cells = vec![Acc::default(); axis.cols];
    let stopping = matches!(record.status.state, JobState::Stopping { .. });
    let runs = &record.history.runs;
    for (i, run) in runs.iter().enumerate() {
        let end = run.end.unwrap_or(axis.end);
        // A restart right after the previous bar would merge with it: mark its start.
        let restart = i > 0
            && runs[i - 1]
                .end
                .is_some_and(|prev| axis.col(run.start).saturating_sub(axis.col(prev)) <= 1);
        let color = theme::run_color(run, stopping && i + 1 == runs.len());
        let seconds = |points: Vec<Option<Duration>>| -> Vec<Option<f64>> {
            points
                .into_iter()
                .map(|c| c.map(|d| d.as_secs_f64()))
                .collect()
        };
        let waited = |ts: &[Instant]| seconds(run.wait_at_each(ts));
        paint(
            &mut cells,
            axis,
            (run.start, end),
            color,
            restart,
            |ts| seconds(run.cpu_at_each(ts)),
            Some(&waited),
        );
    }
    cells
}

/// The cells of one stage's row: from the run's start to the stage's exit, shaded by its
/// own CPU: its subtree's samples while it runs, its rusage once reaped (dashed while
/// nothing is known yet).
fn stage_cells(record: &JobRecord, stage: usize, axis: &Axis) -> Vec<Acc> {
    let mut cells = vec![Acc::default(); axis.cols];
    let stopping = matches!(record.status.state, JobState::Stopping { .. });
    let runs = &record.history.runs;
    for (i, run) in runs.iter().enumerate() {
        let Some(span) = run.stages.get(stage).filter(|s| s.started) else {
            continue;
        };
        let ended = span.end.or(run.end);
        let end = ended.unwrap_or(axis.end);
        let color = theme::run_color(run, stopping && i + 1 == runs.len());
        paint(
            &mut cells,
            axis,
            (run.start, end),
            color,
            false,
            |ts| {
                span.cpu_at_each(run.start, ended, ts)
                    .into_iter()
                    .map(|cpu| cpu.map(|c| c.as_secs_f64()))
                    .collect()
            },
            None,
        );
    }
    cells
}

/// Columns of the name part of a row (marker and glyph included).
fn name_width(model: &Model, width: usize) -> usize {
    let longest = model
        .longest_row_label(format::stage_label)
        .clamp(MIN_NAME, MAX_NAME);
    longest.min(width.saturating_sub(PREFIX + 1 + MIN_BARS).max(1))
}

/// The ruler: tick labels starting at their cell; a ▾ where now is, if there is room.
fn ruler(axis: &Axis) -> Vec<Span<'static>> {
    let mut chars = vec![' '; axis.cols];
    let mut free = 0;
    let mut k: u32 = 0;
    loop {
        let t = axis.step * k;
        if t > axis.span {
            break;
        }
        let col = axis.col(axis.origin + t);
        let label = tick_label(t, axis.step);
        let len = label.chars().count();
        if col >= free && col + len <= axis.cols {
            for (i, c) in label.chars().enumerate() {
                chars[col + i] = c;
            }
            free = col + len + 1;
        }
        k += 1;
        if k > 10_000 {
            break;
        }
    }
    let now_col = axis.now.map(|now| axis.col(now));
    let mut spans = Vec::new();
    let mut text = String::new();
    for (col, c) in chars.iter().enumerate() {
        if Some(col) == now_col && *c == ' ' {
            spans.push(Span::styled(std::mem::take(&mut text), DIM));
            spans.push(Span::styled("▾", Style::new().fg(theme::NOW)));
        } else {
            text.push(*c);
        }
    }
    spans.push(Span::styled(text, DIM));
    spans
}

/// Tick columns, for the faint grid in empty cells.
fn grid_cols(axis: &Axis) -> Vec<bool> {
    let mut grid = vec![false; axis.cols];
    let mut k: u32 = 1;
    while axis.step * k < axis.span && k < 10_000 {
        grid[axis.col(axis.origin + axis.step * k)] = true;
        k += 1;
    }
    grid
}

/// A row's bar cells as spans (runs of equal style merged).
fn bar_spans(cells: &[Acc], grid: &[bool], now_col: Option<usize>) -> Vec<Span<'static>> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = Style::new();
    for (col, cell) in cells.iter().enumerate() {
        let (c, s) = match cell.glyph() {
            Some((c, color)) => (c, Style::new().fg(color)),
            None if Some(col) == now_col => (NOW, Style::new().fg(theme::NOW)),
            None if grid.get(col).copied().unwrap_or(false) => (GRID, theme::GRID),
            None => (' ', Style::new()),
        };
        if s != style && !text.is_empty() {
            spans.push(Span::styled(std::mem::take(&mut text), style));
        }
        style = s;
        text.push(c);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style));
    }
    spans
}

/// Draws the timeline into `area` (first line: the ruler) and its legend into `legend`.
pub fn draw(frame: &mut Frame, model: &Model, area: Rect, legend: Rect) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let width = area.width as usize;
    let name_w = name_width(model, width);
    let cols = width.saturating_sub(PREFIX + name_w + 1).max(1);
    let axis = Axis::new(model, cols);
    let grid = grid_cols(&axis);
    let now_col = axis.now.map(|now| axis.col(now));

    let mut lines = Vec::with_capacity(area.height as usize);
    let mut title = vec![Span::styled(
        format!("{:PREFIX$}{} ", "", format::cell("TIMELINE", name_w, false)),
        theme::TITLES,
    )];
    title.extend(ruler(&axis));
    lines.push(Line::from(title));

    let rows = model.rows();
    let visible = area.height.saturating_sub(1) as usize;
    let offset = model.visible_offset(visible);
    let selected = model.selected_index();
    let mut highlight = None;
    let mut waiting = false;
    for (index, row) in rows.iter().enumerate().skip(offset).take(visible) {
        let Some(record) = model.job(row.job()) else {
            continue;
        };
        let (marker, glyph, name, cells, name_style) = match *row {
            // Not in the timeline's rows (see `Model::has_all_row`).
            RowRef::All => continue,
            RowRef::Job(id) => {
                let marker = if !model.is_pipeline(id) {
                    " "
                } else if model.is_expanded(id) {
                    "▾"
                } else {
                    "▸"
                };
                (
                    marker,
                    theme::job_glyph(&record.status),
                    record.name.clone(),
                    job_cells(record, &axis),
                    theme::BOLD,
                )
            }
            RowRef::Stage(id, s) => {
                let Some(stage) = record.status.stages.get(s) else {
                    continue;
                };
                let last = model
                    .job(id)
                    .is_some_and(|j| s + 1 == j.status.stages.len());
                (
                    " ",
                    theme::stage_glyph(&stage.state),
                    format!(
                        "{}{}",
                        if last { "└ " } else { "├ " },
                        format::stage_label(&stage.argv)
                    ),
                    stage_cells(record, s, &axis),
                    theme::STAGE_NAME,
                )
            }
        };
        let mut spans = vec![
            Span::styled(format!("{marker} "), DIM),
            Span::styled(format!("{} ", glyph.0), Style::new().fg(glyph.1)),
            Span::styled(
                format!("{} ", format::cell(&name, name_w, false)),
                name_style,
            ),
        ];
        waiting |= cells
            .iter()
            .any(|c| c.glyph().is_some_and(|(g, _)| g == WAITING));
        spans.extend(bar_spans(&cells, &grid, now_col));
        if index == selected {
            highlight = Some(lines.len());
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
    if let Some(line) = highlight {
        let row = Rect {
            y: area.y + line as u16,
            height: 1,
            ..area
        };
        frame
            .buffer_mut()
            .set_style(row, model.theme.selection(model.focus));
    }
    draw_legend(frame, model, &axis, waiting, legend);
}

/// `waiting`: a row shows a slice spent waiting for a CPU (its key is then explained).
fn draw_legend(frame: &mut Frame, model: &Model, axis: &Axis, waiting: bool, area: Rect) {
    if area.height == 0 {
        return;
    }
    let width = area.width as usize;
    let key = |glyph: String, color: Color, what: &str| {
        vec![
            Span::styled(glyph, Style::new().fg(color)),
            Span::styled(format!(" {what}  "), DIM),
        ]
    };
    // In order of importance; each part shows only if it fits after the previous ones.
    let mut parts: Vec<Vec<Span<'static>>> = vec![
        [
            vec![Span::raw(" ")],
            key("─".into(), theme::LEGEND, "idle"),
            key("░▒▓█".into(), theme::LEGEND, "CPU (█ one core)"),
        ]
        .concat(),
    ];
    if waiting {
        parts.push(key(
            WAITING.to_string(),
            theme::CPU_WAIT,
            "waiting for a CPU",
        ));
    }
    if axis.now.is_some() {
        parts.push(key(NOW.to_string(), theme::NOW, "now"));
    }
    // The selected job's share: its CPU over its time in flight.
    if let Some(record) = model.job(model.selected_job()) {
        let elapsed = record.elapsed(axis.end);
        let cpu = record.cpu_time();
        if !elapsed.is_zero() {
            parts.push(vec![Span::styled(
                format!(
                    "{}: CPU {} in {} ({:.0}%)  ",
                    format::fit(&record.name, 16),
                    crate::fmt::duration(cpu),
                    crate::fmt::duration(elapsed),
                    cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0
                ),
                theme::STAGE_NAME,
            )]);
        }
    }
    if model.jobs().iter().any(|j| j.history.runs.len() > 1) {
        parts.push(key(RESTART.to_string(), theme::LEGEND, "restart"));
    }
    let per_col = axis.span / u32::try_from(axis.cols).unwrap_or(u32::MAX).max(1);
    parts.push(vec![Span::styled(
        format!("{}/column", tick_label_fine(per_col)),
        DIM,
    )]);
    let mut spans = Vec::new();
    let mut used = 0;
    for part in parts {
        let w: usize = part.iter().map(|s| s.content.chars().count()).sum();
        if used + w > width && used > 0 {
            continue;
        }
        used += w;
        spans.extend(part);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A short duration with a sensible precision (`20ms`, `0.25s`, `3s`, `1m30s`).
fn tick_label_fine(d: Duration) -> String {
    if d < Duration::from_millis(100) {
        format!("{}ms", d.as_millis().max(1))
    } else if d < Duration::from_secs(10) {
        let text = format!("{:.2}", d.as_secs_f64());
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    } else {
        tick_label(d, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_match_the_step() {
        let s = Duration::from_secs;
        assert_eq!(tick_label(Duration::ZERO, s(1)), "0");
        assert_eq!(
            tick_label(Duration::from_millis(500), Duration::from_millis(500)),
            "0.5s"
        );
        assert_eq!(
            tick_label(Duration::from_millis(750), Duration::from_millis(250)),
            "0.75s"
        );
        assert_eq!(tick_label(s(12), s(2)), "12s");
        assert_eq!(tick_label(s(90), s(30)), "1m30s");
        assert_eq!(tick_label(s(120), s(60)), "2m");
        assert_eq!(tick_label(s(5400), s(1800)), "1h30m");
        assert_eq!(tick_label_fine(Duration::from_millis(250)), "0.25s");
        assert_eq!(tick_label_fine(Duration::from_millis(20)), "20ms");
    }

    #[test]
    fn tick_steps_leave_room_for_labels() {
        let s = Duration::from_secs;
        // 10 s over 60 columns: 1 s would be 6 columns apart, enough for "10s" + room.
        assert_eq!(tick_step(s(10), 60), s(2));
        assert_eq!(tick_step(s(10), 200), Duration::from_millis(500));
        assert_eq!(tick_step(s(3600), 60), s(600));
        assert_eq!(
            tick_step(Duration::from_millis(300), 60),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn glyphs_by_cpu() {
        assert_eq!(cpu_glyph(Some(0.0)), '─');
        assert_eq!(cpu_glyph(Some(0.5)), '▒');
        assert_eq!(cpu_glyph(Some(1.7)), '█');
        assert_eq!(cpu_glyph(None), '╌');
    }
}
