//! The process tree pane: a job's live processes (or the snapshot taken when it was
//! stopped), indented as a tree, one row each: pid, state in words, what it waits on,
//! CPU %, time waiting for a CPU, RSS, threads, age and its command line. Processes that
//! left the job's process group are marked. Pure rendering of a [`Tree`].

use std::time::Instant;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use super::model::Model;
use super::theme::{self, Theme};
use crate::supervisor::{JobId, ProcState, ProcessRow, Reach, Tree};

/// What the pane shows and where the cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeView {
    pub job: crate::supervisor::JobId,
    /// The chosen process: the cursor stays on it while the tree changes around it.
    pub pid: Option<u32>,
    /// Its row when last chosen: where the cursor stays once it has gone.
    pub index: usize,
    /// Whether `t`, `K` and `x` reach the process alone or its whole subtree.
    pub reach: Reach,
}

impl TreeView {
    pub fn new(job: crate::supervisor::JobId) -> Self {
        TreeView {
            job,
            pid: None,
            index: 0,
            reach: Reach::Process,
        }
    }

    /// The cursor's row in `tree`.
    pub fn row(&self, tree: &Tree) -> usize {
        self.pid
            .and_then(|pid| tree.rows.iter().position(|r| r.pid == pid))
            .unwrap_or(self.index)
            .min(tree.rows.len().saturating_sub(1))
    }

    /// The process under the cursor.
    pub fn process<'t>(&self, tree: &'t Tree) -> Option<&'t ProcessRow> {
        tree.rows.get(self.row(tree))
    }

    /// Moves the cursor to row `index` (clamped).
    pub fn select(&mut self, tree: &Tree, index: usize) {
        let index = index.min(tree.rows.len().saturating_sub(1));
        self.index = index;
        self.pid = tree.rows.get(index).map(|r| r.pid);
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

/// The tree the pane shows for `job`, and whether it is live (the job runs) or the
/// snapshot taken when it was stopped.
pub fn shown_tree(model: &Model, job: JobId) -> (Option<&Tree>, bool) {
    let Some(record) = model.job(job) else {
        return (None, false);
    };
    if record.status.is_active() {
        (record.tree.as_deref(), true)
    } else {
        let postmortem = record.status.tree_at_stop.as_deref().map(|p| &p.tree);
        (postmortem, false)
    }
}

/// The pane's title: whose tree, how many processes, what the keys reach (live), or
/// why and when the snapshot was taken (after the job ended).
pub fn title(model: &Model, view: &TreeView) -> String {
    let (tree, live) = shown_tree(model, view.job);
    let Some(record) = model.job(view.job) else {
        return String::new();
    };
    let name = crate::stdio::visible_inline(&record.name);
    let count = tree.map_or(0, |t| t.rows.len());
    let processes = if count == 1 { "process" } else { "processes" };
    if live {
        let reach = match view.reach {
            Reach::Process => "t K x: this process",
            Reach::Subtree => "t K x: this process and its descendants",
        };
        format!(" {name}: {count} {processes} · {reach} ")
    } else {
        let why = record
            .status
            .tree_at_stop
            .as_deref()
            .map_or("stopped", |p| p.why.as_str());
        format!(" {name}: its {count} {processes} when it was stopped ({why}) ")
    }
}

/// The tree pane in `area` (the output pane's place): a title line, then the tree.
pub fn pane(frame: &mut Frame, model: &Model, view: &TreeView, area: Rect) {
    let (tree, _) = shown_tree(model, view.job);
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(model.theme.border(true))
        .title(Line::from(Span::styled(title(model, view), theme::BOLD)));
    let body = block.inner(area);
    frame.render_widget(block, area);
    draw(frame.buffer_mut(), body, tree, view, model.now, model.theme);
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
    let selected = view.row(tree);
    let first = selected.saturating_sub(rows.saturating_sub(1));
    for (line, row) in tree.rows.iter().enumerate().skip(first).take(rows) {
        let y = area.y + 1 + (line - first) as u16;
        let chosen = line == selected;
        let style = if chosen {
            theme.selection(super::model::Focus::Jobs)
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
        // Marks before the command line, which may be long and is cut at the edge.
        let mut command = "  ".repeat(row.depth.min(20));
        if row.outlived_grace {
            command.push_str("✗ outlived grace · ");
        }
        if row.left_group {
            command.push_str("⇱ left group · ");
        }
        command.push_str(&row.cmdline);
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
