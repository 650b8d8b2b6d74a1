//! The job table: one row per job, plus one per stage of an expanded pipeline. Its
//! columns are one table of definitions ([`COLUMNS`]): title, width, alignment, when it
//! gives way on a narrow terminal, its text for a job and for a stage, and its style.
//! A new column is one entry there.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};

use super::format;
use super::model::{Model, RowRef};
use super::theme;
use crate::tracker::JobRecord;

/// What a cell is computed from: the row's job, the stage when it is a stage row.
struct Cx<'a> {
    model: &'a Model,
    record: &'a JobRecord,
    stage: Option<usize>,
    /// The row's state colour (its glyph's).
    color: Color,
    /// The row's pid is that of a process that has ended.
    gone: bool,
}

struct Column {
    title: &'static str,
    width: usize,
    right: bool,
    /// Narrow terminals drop columns with the lowest rank first; 0 never goes.
    rank: u8,
    text: fn(&Cx) -> String,
    style: fn(&Cx, &str) -> Style,
}

fn plain(_: &Cx, _: &str) -> Style {
    Style::new()
}

fn state_colored(cx: &Cx, _: &str) -> Style {
    Style::new().fg(cx.color)
}

/// Display order.
const COLUMNS: &[Column] = &[
    Column {
        title: "PID",
        width: 7,
        right: true,
        rank: 6,
        text: |cx| {
            let status = &cx.record.status;
            match cx.stage {
                Some(s) => status.stages.get(s).and_then(|st| st.pid),
                None => match status.stages.as_slice() {
                    [single] => single.pid,
                    // A pipeline's group id stands for the whole job.
                    _ => status.pgid,
                },
            }
            // Kept (dimmed) after the job ends: useful to match logs and reports.
            .map(|p| p.to_string())
            .unwrap_or_default()
        },
        style: |cx, _| if cx.gone { theme::DIM } else { Style::new() },
    },
    Column {
        title: "STATE",
        width: 16,
        right: false,
        rank: 0,
        text: |cx| match cx.stage {
            Some(s) => cx
                .record
                .status
                .stages
                .get(s)
                .map(|st| crate::fmt::stage_state(&st.state))
                .unwrap_or_default(),
            None => crate::fmt::record_state(cx.record, cx.model.now),
        },
        style: state_colored,
    },
    Column {
        title: "ELAPSED",
        width: 7,
        right: true,
        rank: 7,
        text: |cx| {
            let status = &cx.record.status;
            match (cx.stage, status.started_at, status.ended_at) {
                (Some(_), _, _) => String::new(),
                (None, Some(start), None) => crate::fmt::clock(cx.model.clock_since(start)),
                (None, _, _) => crate::fmt::elapsed(cx.record, cx.model.now),
            }
        },
        style: plain,
    },
    Column {
        title: "EXIT",
        width: 7,
        right: false,
        rank: 2,
        text: |cx| match cx.stage {
            Some(s) => cx
                .record
                .status
                .stages
                .get(s)
                .map(|st| crate::fmt::stage_exit(&st.state))
                .unwrap_or_default(),
            None => crate::fmt::exit_text(&cx.record.status),
        },
        style: state_colored,
    },
    Column {
        title: "↻",
        width: 2,
        right: true,
        rank: 3,
        text: |cx| match (cx.stage, cx.record.status.restarts) {
            (None, n) if n > 0 => n.to_string(),
            _ => String::new(),
        },
        style: |_, text| {
            if text.is_empty() {
                Style::new()
            } else {
                theme::RESTARTS
            }
        },
    },
    Column {
        title: "CPU",
        width: 5,
        right: true,
        rank: 5,
        text: |cx| match cx.stage {
            // The stage's own share while it runs, from its subtree's samples.
            Some(s) => cx
                .record
                .history
                .runs
                .last()
                .filter(|run| run.end.is_none())
                .and_then(|run| run.stages.get(s)?.cpu_percent(run.start))
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_default(),
            None => crate::fmt::cpu(cx.record),
        },
        style: plain,
    },
    Column {
        title: "RSS",
        width: 6,
        right: true,
        rank: 4,
        text: |cx| match cx.stage {
            Some(_) => String::new(),
            None => crate::fmt::rss_text(cx.record),
        },
        style: plain,
    },
    Column {
        // Runnable but not running: more jobs than cores show up here, not in CPU.
        title: "WAIT",
        width: 6,
        right: true,
        rank: 1,
        text: |cx| match cx.stage {
            // Blank below what the column can show: most jobs hardly ever wait.
            None if cx.record.cpu_wait() >= std::time::Duration::from_millis(5) => {
                crate::fmt::duration(cx.record.cpu_wait())
            }
            _ => String::new(),
        },
        style: plain,
    },
];

/// Expand marker and status glyph, each followed by a space.
const PREFIX: usize = 4;
const MIN_NAME: usize = 8;
const MAX_NAME: usize = 40;

struct Layout {
    name: usize,
    cols: Vec<&'static Column>,
}

fn layout(model: &Model, width: usize) -> Layout {
    // Stage rows show "├ argv…": let the column grow for them too, within reason.
    let longest = model
        .longest_row_label(|argv: &[String]| argv.join(" "))
        .clamp(MIN_NAME, MAX_NAME);
    let mut cols: Vec<&Column> = COLUMNS.iter().collect();
    let used = |cols: &[&Column]| cols.iter().map(|c| c.width + 1).sum::<usize>();
    while PREFIX + MIN_NAME + used(&cols) > width {
        let Some(drop) = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rank > 0)
            .min_by_key(|(_, c)| c.rank)
            .map(|(i, _)| i)
        else {
            break;
        };
        cols.remove(drop);
    }
    let name = width
        .saturating_sub(PREFIX + used(&cols))
        .min(longest)
        .max(MIN_NAME.min(width.saturating_sub(PREFIX)));
    Layout { name, cols }
}

/// Job rows that fit in a table `height` lines tall (its title line excluded): one
/// fewer when not every row fits, for the "↓ 11 more" line.
pub fn job_rows(model: &Model, height: u16) -> usize {
    let capacity = usize::from(height.saturating_sub(1));
    if model.rows().len() > capacity {
        capacity.saturating_sub(1).max(1.min(capacity))
    } else {
        capacity
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
    let layout = layout(model, area.width as usize);
    let buf = frame.buffer_mut();
    let mut x = area.x.saturating_add(PREFIX as u16);
    x = put(
        buf,
        area,
        (x, area.y),
        ("NAME", layout.name, false),
        theme::TITLES,
    );
    for col in &layout.cols {
        let cell = (col.title, col.width, col.right);
        x = put(
            buf,
            area,
            (x.saturating_add(1), area.y),
            cell,
            theme::TITLES,
        );
    }

    let rows = model.rows();
    let visible = job_rows(model, area.height);
    let selected = model.selected_index();
    let offset = model.visible_offset(visible);
    let mut y = area.y;
    for (index, row) in rows.iter().enumerate().skip(offset).take(visible) {
        if *row == RowRef::All {
            y += 1;
            all_row(buf, model, area, y, layout.name, index == selected);
            continue;
        }
        let Some(record) = model.job(row.job()) else {
            continue;
        };
        y += 1;
        let stage = row.stage();
        let (marker, (glyph, color), name, name_style, gone) = match *row {
            RowRef::Job(id) => {
                let marker = if !model.is_pipeline(id) {
                    " "
                } else if model.is_expanded(id) {
                    "▾"
                } else {
                    "▸"
                };
                let status = &record.status;
                (
                    marker,
                    theme::job_glyph(status),
                    record.label().into_owned(),
                    theme::BOLD,
                    !status.is_active(),
                )
            }
            RowRef::All => continue,
            RowRef::Stage(_, s) => {
                let Some(st) = record.status.stages.get(s) else {
                    continue;
                };
                let last = s + 1 == record.status.stages.len();
                let branch = if last { "└ " } else { "├ " };
                (
                    " ",
                    theme::stage_glyph(&st.state),
                    format!("{branch}{}", st.argv.join(" ")),
                    theme::STAGE_NAME,
                    st.state != crate::supervisor::StageState::Running,
                )
            }
        };
        let cx = Cx {
            model,
            record,
            stage,
            color,
            gone,
        };
        put(buf, area, (area.x, y), (marker, 1, false), theme::DIM);
        put(
            buf,
            area,
            (area.x.saturating_add(2), y),
            (glyph, 1, false),
            Style::new().fg(color),
        );
        let mut x = area.x.saturating_add(PREFIX as u16);
        x = put(buf, area, (x, y), (&name, layout.name, false), name_style);
        for col in &layout.cols {
            let value = (col.text)(&cx);
            let style = (col.style)(&cx, &value);
            let cell = (value.as_str(), col.width, col.right);
            x = put(buf, area, (x.saturating_add(1), y), cell, style);
        }
        if index == selected {
            // The whole width, not just the cells' text.
            let row = Rect {
                y,
                height: 1,
                ..area
            };
            buf.set_style(row, model.theme.selection(model.focus));
        }
    }
    let above = offset;
    let below = rows.len().saturating_sub(offset + visible);
    if (above > 0 || below > 0) && y + 1 < area.bottom() {
        let text = match (above, below) {
            (0, below) => format!("↓ {below} more"),
            (above, 0) => format!("↑ {above} more"),
            (above, below) => format!("↑ {above} · ↓ {below} more"),
        };
        let width = usize::from(area.width.saturating_sub(PREFIX as u16));
        put(
            buf,
            area,
            (area.x.saturating_add(PREFIX as u16), y + 1),
            (&text, width, false),
            theme::DIM,
        );
    }
}

/// The "all" row: every job's output in one view (`ui::merged`), and what it shows.
fn all_row(buf: &mut Buffer, model: &Model, area: Rect, y: u16, name_width: usize, selected: bool) {
    put(
        buf,
        area,
        (area.x.saturating_add(2), y),
        ("≡", 1, false),
        theme::ACCENT,
    );
    let x = area.x.saturating_add(PREFIX as u16);
    let x = put(buf, area, (x, y), ("all", name_width, false), theme::BOLD);
    let shown = super::merged_filter(model)
        .jobs
        .iter()
        .filter(|j| **j)
        .count();
    let what = if model.merged_filter.patterns.is_empty() {
        format!("every job's output, merged ({shown} jobs)")
    } else {
        format!(
            "{shown} of {} jobs: {}",
            model.jobs().len(),
            crate::stdio::visible_inline(&model.merged_filter.text())
        )
    };
    let width = usize::from(area.right().saturating_sub(x + 1));
    put(
        buf,
        area,
        (x.saturating_add(1), y),
        (&what, width, false),
        theme::DIM,
    );
    if selected {
        let row = Rect {
            y,
            height: 1,
            ..area
        };
        buf.set_style(row, model.theme.selection(model.focus));
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
    if start < area.right() && y < area.bottom() && !text.is_empty() {
        buf.set_stringn(start, y, text, usize::from(area.right() - start), style);
    }
    end
}
