//! The job table: one row per job, plus one per stage of an expanded pipeline. Columns
//! that do not fit are dropped, least useful first.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::format;
use super::model::{Model, RowRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Pid,
    State,
    Elapsed,
    Exit,
    Restarts,
    Cpu,
    Rss,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Col::Pid => "PID",
            Col::State => "STATE",
            Col::Elapsed => "ELAPSED",
            Col::Exit => "EXIT",
            Col::Restarts => "↻",
            Col::Cpu => "CPU",
            Col::Rss => "RSS",
        }
    }

    fn width(self) -> usize {
        match self {
            Col::Pid => 7,
            Col::State => 16,
            Col::Elapsed => 7,
            Col::Exit => 7,
            Col::Restarts => 2,
            Col::Cpu => 5,
            Col::Rss => 6,
        }
    }

    fn right(self) -> bool {
        !matches!(self, Col::State | Col::Exit)
    }
}

/// Display order.
const COLUMNS: [Col; 7] = [
    Col::Pid,
    Col::State,
    Col::Elapsed,
    Col::Exit,
    Col::Restarts,
    Col::Cpu,
    Col::Rss,
];
/// The order in which columns give way on narrow terminals.
const DROP_ORDER: [Col; 6] = [
    Col::Exit,
    Col::Restarts,
    Col::Rss,
    Col::Cpu,
    Col::Pid,
    Col::Elapsed,
];
/// Expand marker and status glyph, each followed by a space.
const PREFIX: usize = 4;
const MIN_NAME: usize = 8;
const MAX_NAME: usize = 40;

struct Columns {
    name: usize,
    cols: Vec<Col>,
}

fn columns(model: &Model, width: usize) -> Columns {
    // Stage rows show "├ argv…": let the column grow for them too, within reason.
    let longest = model
        .longest_row_label(|argv: &[String]| argv.join(" "))
        .clamp(MIN_NAME, MAX_NAME);
    let mut cols: Vec<Col> = COLUMNS.to_vec();
    let used = |cols: &[Col]| cols.iter().map(|c| c.width() + 1).sum::<usize>();
    for drop in DROP_ORDER {
        if PREFIX + MIN_NAME + used(&cols) <= width {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    let name = width
        .saturating_sub(PREFIX + used(&cols))
        .min(longest)
        .max(MIN_NAME.min(width.saturating_sub(PREFIX)));
    Columns { name, cols }
}

struct RowText {
    marker: &'static str,
    glyph: (&'static str, Color),
    name: String,
    cells: Vec<(Col, String)>,
    /// The pid is that of a process that has ended.
    pid_gone: bool,
}

fn row_text(model: &Model, row: RowRef, last_stage: bool) -> Option<RowText> {
    let now = model.now;
    match row {
        RowRef::Job(id) => {
            let record = model.job(id)?;
            let status = &record.status;
            let marker = if !model.is_pipeline(id) {
                " "
            } else if model.is_expanded(id) {
                "▾"
            } else {
                "▸"
            };
            let pid = match status.stages.as_slice() {
                // A pipeline's group id stands for the whole job.
                [single] => single.pid,
                _ => status.pgid,
            }
            // Kept (dimmed) after the job ends: useful to match logs and reports.
            .map(|p| p.to_string())
            .unwrap_or_default();
            let cells = vec![
                (Col::Pid, pid),
                (Col::State, crate::fmt::job_state(status, now)),
                (Col::Elapsed, crate::fmt::elapsed(record, now)),
                (Col::Exit, crate::fmt::exit_text(status)),
                (
                    Col::Restarts,
                    if status.restarts > 0 {
                        status.restarts.to_string()
                    } else {
                        String::new()
                    },
                ),
                (Col::Cpu, crate::fmt::cpu(record)),
                (Col::Rss, crate::fmt::rss_text(record)),
            ];
            Some(RowText {
                marker,
                glyph: format::job_glyph(status),
                name: record.name.clone(),
                cells,
                pid_gone: !status.is_active(),
            })
        }
        RowRef::Stage(id, index) => {
            let record = model.job(id)?;
            let stage = record.status.stages.get(index)?;
            // The stage's own share while it runs, from its subtree's samples.
            let cpu = record
                .history
                .runs
                .last()
                .filter(|run| run.end.is_none())
                .and_then(|run| run.stages.get(index)?.cpu_percent(run.start))
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_default();
            let branch = if last_stage { "└ " } else { "├ " };
            let pid = stage.pid.map(|p| p.to_string()).unwrap_or_default();
            Some(RowText {
                marker: " ",
                glyph: format::stage_glyph(&stage.state),
                name: format!("{branch}{}", stage.argv.join(" ")),
                cells: vec![
                    (Col::Pid, pid),
                    (Col::State, crate::fmt::stage_state(&stage.state)),
                    (Col::Exit, crate::fmt::stage_exit(&stage.state)),
                    (Col::Cpu, cpu),
                ],
                pid_gone: stage.state != crate::supervisor::StageState::Running,
            })
        }
    }
}

/// Draws the table into `area` (first line: column titles).
///
/// Cells are written straight into the frame's buffer at their column's position: the
/// table is redrawn every second for its clocks, and building padded strings and spans
/// for every cell was most of an idle frame.
pub fn draw(frame: &mut Frame, model: &Model, area: Rect) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let layout = columns(model, area.width as usize);
    let buf = frame.buffer_mut();
    let title_style = Style::new()
        .fg(Color::DarkGray)
        .add_modifier(Modifier::BOLD);
    let mut x = area.x.saturating_add(PREFIX as u16);
    x = put(
        buf,
        area,
        (x, area.y),
        ("NAME", layout.name, false),
        title_style,
    );
    for col in &layout.cols {
        let cell = (col.title(), col.width(), col.right());
        x = put(buf, area, (x.saturating_add(1), area.y), cell, title_style);
    }

    let rows = model.rows();
    let visible = area.height.saturating_sub(1) as usize;
    let selected = model.selected_index();
    let offset = model.visible_offset(visible);
    let mut y = area.y;
    for (index, row) in rows.iter().enumerate().skip(offset).take(visible) {
        let last_stage = match row {
            RowRef::Stage(id, s) => model
                .job(*id)
                .is_some_and(|j| *s + 1 == j.status.stages.len()),
            RowRef::Job(_) => false,
        };
        let Some(text) = row_text(model, *row, last_stage) else {
            continue;
        };
        y += 1;
        let (glyph, color) = text.glyph;
        let name_style = if matches!(row, RowRef::Stage(..)) {
            Style::new().fg(Color::Gray)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        let dim = Style::new().fg(Color::DarkGray);
        put(buf, area, (area.x, y), (text.marker, 1, false), dim);
        put(
            buf,
            area,
            (area.x.saturating_add(2), y),
            (glyph, 1, false),
            Style::new().fg(color),
        );
        let mut x = area.x.saturating_add(PREFIX as u16);
        x = put(
            buf,
            area,
            (x, y),
            (&text.name, layout.name, false),
            name_style,
        );
        for col in &layout.cols {
            let value = text
                .cells
                .iter()
                .find(|(c, _)| c == col)
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let style = match col {
                Col::State | Col::Exit => Style::new().fg(color),
                Col::Restarts if !value.is_empty() => Style::new().fg(Color::Yellow),
                Col::Pid if text.pid_gone => dim,
                _ => Style::new(),
            };
            let cell = (value, col.width(), col.right());
            x = put(buf, area, (x.saturating_add(1), y), cell, style);
        }
        if index == selected {
            // The whole width, not just the cells' text.
            let row = Rect {
                y,
                height: 1,
                ..area
            };
            buf.set_style(row, super::timeline::selection_style(model));
        }
    }
}

/// Writes `text` into a cell `width` columns wide at `at` (right-aligned if `right`,
/// truncated with `…` like [`format::cell`]), clipped to `area`. The padding is not
/// written: the frame starts blank. Returns the x after the cell.
fn put(
    buf: &mut Buffer,
    area: Rect,
    (x, y): (u16, u16),
    (text, width, right): (&str, usize, bool),
    style: Style,
) -> u16 {
    let end = x.saturating_add(u16::try_from(width).unwrap_or(u16::MAX));
    let count = text.chars().count();
    let fitted;
    let (text, count) = if count > width {
        fitted = format::fit(text, width);
        (fitted.as_str(), width)
    } else {
        (text, count)
    };
    let start = if right {
        x.saturating_add(u16::try_from(width - count).unwrap_or(u16::MAX))
    } else {
        x
    };
    if start < area.right() && !text.is_empty() {
        buf.set_stringn(start, y, text, usize::from(area.right() - start), style);
    }
    end
}
