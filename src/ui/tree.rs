//! The process tree pane: a job's live processes (or the snapshot taken when it was
//! stopped), indented as a tree, one row each: pid, state in words, what it waits on,
//! CPU %, time waiting for a CPU, RSS, threads, age and its command line. Processes that
//! left the job's process group are marked. Pure rendering of a [`Tree`].

use std::time::Instant;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::theme::{self, Theme};
use crate::supervisor::{ProcState, ProcessRow, Reach, Tree};

/// What the pane shows and where the cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeView {
    pub job: crate::supervisor::JobId,
    /// Index of the selected process in the tree's rows.
    pub selected: usize,
    /// Whether `t`, `K` and `x` reach the process alone or its whole subtree.
    pub reach: Reach,
}

impl TreeView {
    pub fn new(job: crate::supervisor::JobId) -> Self {
        TreeView {
            job,
            selected: 0,
            reach: Reach::Process,
        }
    }
}

struct Column {
    title: &'static str,
    width: usize,
    right: bool,
    text: fn(&ProcessRow, Instant) -> String,
}

const COLUMNS: &[Column] = &[
    Column {
        title: "PID",
        width: 7,
        right: true,
        text: |r, _| r.pid.to_string(),
    },
    Column {
        title: "STATE",
        width: 10,
        right: false,
        text: |r, now| match r.kill_at {
            Some(at) if at > now => format!(
                "stop {}",
                crate::fmt::countdown(at.saturating_duration_since(now))
            ),
            _ => r.state.words().to_string(),
        },
    },
    Column {
        title: "WAITS ON",
        width: 16,
        right: false,
        text: |r, _| match r.state {
            ProcState::Running => String::new(),
            _ => r
                .syscall
                .clone()
                .or_else(|| r.wchan.clone())
                .unwrap_or_default(),
        },
    },
    Column {
        title: "CPU",
        width: 5,
        right: true,
        text: |r, _| {
            r.cpu_percent
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_default()
        },
    },
    Column {
        title: "CPU WAIT",
        width: 8,
        right: true,
        text: |r, _| crate::fmt::duration(r.cpu_wait),
    },
    Column {
        title: "RSS",
        width: 6,
        right: true,
        text: |r, _| crate::fmt::rss(r.rss_bytes),
    },
    Column {
        title: "THR",
        width: 3,
        right: true,
        text: |r, _| r.threads.to_string(),
    },
    Column {
        title: "AGE",
        width: 6,
        right: true,
        text: |r, _| crate::fmt::clock(r.age),
    },
];

/// The pane's title: whose tree, how many processes, what the keys reach.
pub fn title(tree: Option<&Tree>, name: &str, view: &TreeView, live: bool) -> String {
    let count = tree.map_or(0, |t| t.rows.len());
    let reach = match view.reach {
        Reach::Process => "t K x: this process (a: its subtree)",
        Reach::Subtree => "t K x: this subtree (a: the process alone)",
    };
    if live {
        format!(" {name}: {count} processes · {reach} ")
    } else {
        format!(" {name}: the tree when it was stopped ({count} processes) ")
    }
}

/// Draws the tree into `area` (column titles on its first line).
pub fn draw(
    buf: &mut Buffer,
    area: Rect,
    tree: Option<&Tree>,
    view: &TreeView,
    now: Instant,
    theme: Theme,
) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let right = area.x + area.width;
    // Column titles.
    let mut x = area.x;
    for column in COLUMNS {
        x = put(
            buf,
            x,
            area.y,
            right,
            column.title,
            column.width,
            column.right,
            theme::TITLES,
        );
    }
    put(
        buf,
        x,
        area.y,
        right,
        "COMMAND",
        usize::MAX,
        false,
        theme::TITLES,
    );
    let Some(tree) = tree else {
        let y = area.y + 1;
        if y < area.y + area.height {
            put(
                buf,
                area.x,
                y,
                right,
                "(waiting for the first look at its processes)",
                usize::MAX,
                false,
                theme::DIM,
            );
        }
        return;
    };
    let rows = area.height.saturating_sub(1) as usize;
    let selected = view.selected.min(tree.rows.len().saturating_sub(1));
    let first = selected.saturating_sub(rows.saturating_sub(1));
    for (line, row) in tree.rows.iter().enumerate().skip(first).take(rows) {
        let y = area.y + 1 + (line - first) as u16;
        let chosen = line == selected;
        let style = if chosen {
            theme.selection(super::model::Focus::Output)
        } else {
            Style::new()
        };
        if chosen {
            for cx in area.x..right {
                if let Some(cell) = buf.cell_mut((cx, y)) {
                    cell.set_style(style);
                }
            }
        }
        let mut x = area.x;
        for column in COLUMNS {
            let text = (column.text)(row, now);
            let cell_style = if column.title == "STATE" && row.kill_at.is_some_and(|at| at > now) {
                style.patch(theme::BUSY)
            } else {
                style
            };
            x = put(
                buf,
                x,
                y,
                right,
                &text,
                column.width,
                column.right,
                cell_style,
            );
        }
        let mut command = format!("{}{}", "  ".repeat(row.depth.min(20)), row.cmdline);
        if row.left_group {
            command.push_str("  ⇱ left the group");
        }
        put(
            buf,
            x,
            y,
            right,
            &crate::stdio::visible_inline(&command),
            usize::MAX,
            false,
            style,
        );
    }
}

/// Writes `text` padded (or cut) to `width` columns at `x`, then a space; returns the
/// next column.
#[allow(clippy::too_many_arguments)]
fn put(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    right: u16,
    text: &str,
    width: usize,
    align_right: bool,
    style: Style,
) -> u16 {
    if x >= right {
        return x;
    }
    let room = (right - x) as usize;
    let width = width.min(room);
    let cell = if width == usize::MAX || width == room {
        super::format::fit(text, room)
    } else {
        super::format::cell(text, width, align_right)
    };
    buf.set_stringn(x, y, &cell, room, style);
    x.saturating_add(width as u16).saturating_add(1)
}
