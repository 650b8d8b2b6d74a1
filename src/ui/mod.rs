//! Rendering: a pure function of the [`Model`] and the jobs' output buffers.
//!
//! `draw` does no I/O and mutates nothing; the buffers are read under a brief lock, and
//! only the visible lines are copied out and sanitised. [`next_redraw`] says when the
//! picture would change by itself (clocks, countdowns, an expiring message), so the app
//! loop can sleep until then.

mod chrome;
pub mod format;
pub mod merged;
pub mod model;
pub mod output;
pub mod pane;
mod table;
pub mod terminal_pane;
pub mod theme;
pub mod timeline;
pub mod tree;

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use crate::output::SharedBuffer;
use crate::supervisor::pty::SharedTerminal;
use crate::supervisor::{JobState, PendingReason};

pub use chrome::help_line_count;

/// The runs line as plain text (`-j 1: 10.03s · -j unlimited: 1.02s (9.8× faster)`),
/// once `p` has rerun the set.
pub fn runs_text(model: &Model) -> Option<String> {
    if model.runs.is_empty() {
        return None;
    }
    let line = chrome::runs_line(model, usize::MAX);
    let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
    Some(text.trim().to_string())
}
pub use model::Model;

/// Smallest usable terminal.
pub const MIN_SIZE: (u16, u16) = (40, 10);

/// Where each part goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    /// Column titles (or the timeline's ruler) on the first line, then one line per row.
    pub table: Rect,
    /// The output pane including its title line (the timeline's legend in that view).
    pub output: Rect,
    /// The output lines only (none in the timeline view).
    pub output_body: Rect,
    pub status: Rect,
    /// Job rows shown (the title line, and the "↓ 11 more" line when not all fit,
    /// excluded).
    pub rows: usize,
}

impl Areas {
    /// Job rows shown in the table (or the timeline).
    pub fn table_rows(&self) -> usize {
        self.rows
    }

    pub fn output_rows(&self) -> usize {
        self.output_body.height as usize
    }
}

/// The layout for `area`, or None when it is below [`MIN_SIZE`].
pub fn layout(area: Rect, model: &Model) -> Option<Areas> {
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        return None;
    }
    let header_h = chrome::header_height(model, area.height);
    let avail = area.height - header_h - 1; // header and status bar
    let table_h = if model.timeline {
        // The timeline replaces the table and the output; its legend is the last line.
        avail - 1
    } else {
        let wanted = model.rows().len() as u16 + 1;
        wanted.clamp(2, (avail / 2).max(3))
    };
    let output_h = avail - table_h;
    let header = Rect {
        height: header_h,
        ..area
    };
    let table = Rect {
        y: area.y + header_h,
        height: table_h,
        ..area
    };
    let output = Rect {
        y: table.y + table_h,
        height: output_h,
        ..area
    };
    let output_body = Rect {
        y: output.y + 1,
        height: if model.timeline {
            0
        } else {
            output_h.saturating_sub(1)
        },
        ..area
    };
    let status = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    let rows = if model.timeline {
        usize::from(table.height.saturating_sub(1))
    } else {
        table::job_rows(model, table.height)
    };
    Some(Areas {
        header,
        table,
        output,
        output_body,
        status,
        rows,
    })
}

/// Renders the whole screen. `buffers[i]` is job i's output.
pub fn draw(frame: &mut Frame, model: &Model, buffers: &[SharedBuffer]) {
    draw_with(frame, model, buffers, &[]);
}

/// Like [`draw`]; `terminals[i]` is PTY job i's screen (its pane draws that instead).
pub fn draw_with(
    frame: &mut Frame,
    model: &Model,
    buffers: &[SharedBuffer],
    terminals: &[Option<SharedTerminal>],
) {
    let area = frame.area();
    let Some(areas) = layout(area, model) else {
        chrome::too_small(frame, area, MIN_SIZE);
        return;
    };
    chrome::header(frame, model, areas.header);
    if model.timeline {
        timeline::draw(frame, model, areas.table, areas.output);
    } else {
        table::draw(frame, model, areas.table);
        let id = model.selected_job();
        if let Some(view) = model.tree {
            tree::pane(frame, model, &view, areas.output);
        } else {
            match terminals.get(id) {
                Some(Some(terminal)) => {
                    terminal_pane::draw(frame, model, buffers.get(id), terminal, areas.output);
                }
                _ => output_pane(frame, model, buffers, &areas),
            }
        }
    }
    if model.mode() == crate::app::command::Mode::Input {
        terminal_pane::input_status(frame, model, areas.status);
    } else {
        chrome::status_bar(frame, model, areas.status);
    }
    if let Some(overlay) = model.overlay {
        chrome::overlay(frame, model, overlay, area);
    }
}

/// What the output pane shows, row by row, and what its title says.
pub struct PaneView {
    /// Each screen row with the line it belongs to (None: a marker, a partial line).
    pub rows: Vec<(Option<model::LineKey>, Line<'static>)>,
    pub new_lines: u64,
    pub dropped: u64,
    pub follow: bool,
}

/// The merged view's filter, from the model: the jobs its patterns name, the stream.
pub fn merged_filter(model: &Model) -> merged::Filter {
    merged::Filter {
        jobs: model
            .jobs()
            .iter()
            .map(|j| model.merged_filter.matches(&j.name))
            .collect(),
        stream: model.stream_filter,
    }
}

/// The selected job's filter: its stage (a stage row), the stream.
pub fn pane_filter(model: &Model) -> pane::Filter {
    pane::Filter {
        stage: model.selected.stage(),
        stream: model.stream_filter,
    }
}

/// The merged view's job labels (names, `[N]` for a pipeline's stages), padded to the
/// longest shown.
pub fn job_labels(model: &Model) -> output::JobLabels {
    let filter = merged_filter(model);
    let names: Vec<String> = model
        .jobs()
        .iter()
        .map(|j| crate::stdio::visible_inline(&j.name).into_owned())
        .collect();
    let pipelines: Vec<bool> = (0..names.len()).map(|id| model.is_pipeline(id)).collect();
    let width = names
        .iter()
        .zip(&pipelines)
        .enumerate()
        .filter(|(id, _)| filter.jobs.get(*id).copied().unwrap_or(false))
        .map(|(_, (n, p))| n.chars().count() + if *p { 3 } else { 0 })
        .max()
        .unwrap_or(0)
        .min(24);
    output::JobLabels {
        names,
        pipelines,
        width,
    }
}

/// The output pane's rows for a body `width` × `height`: the selected job's lines, or
/// the merged view's.
pub fn pane_view(model: &Model, buffers: &[SharedBuffer], width: usize, height: usize) -> PaneView {
    let (raw, new_lines, dropped, follow) = if model.merged_selected() {
        let filter = merged_filter(model);
        let keys = merged::window(buffers, &filter, model.merged, height);
        (
            output::copy_merged(buffers, &keys),
            merged::new_lines(buffers, &filter, model.merged),
            0,
            model.merged.follow,
        )
    } else {
        let id = model.selected_job();
        let view = model.view(id);
        match buffers.get(id) {
            Some(buffer) => {
                // Copy the visible rows out under the lock; style them after releasing it.
                let buf = crate::output::lock(buffer);
                let items = pane::window(&buf, pane_filter(model), view, height);
                (
                    output::copy_rows(&buf, id, &items),
                    pane::new_lines(&buf, view),
                    buf.dropped(),
                    view.follow,
                )
            }
            None => (Vec::new(), 0, 0, view.follow),
        }
    };
    let labels = model.merged_selected().then(|| job_labels(model));
    let tags = model
        .job(model.selected_job())
        .filter(|r| r.status.stages.len() > 1)
        .map(|record| {
            let labels: Vec<String> = record
                .status
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| format::stage_tag(i, &s.argv, 12))
                .collect();
            let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
            output::Tags { labels, width }
        });
    // One job's view knows its current match by sequence number alone.
    let current = match &model.search {
        Some(search) if model.merged_selected() => search.current_key,
        Some(search) => search.current.map(|seq| model::LineKey {
            at: model.now,
            job: model.selected_job(),
            seq,
        }),
        None => None,
    };
    let style = output::RowStyle {
        tags: tags.as_ref(),
        jobs: labels.as_ref(),
        clock: model.timestamps.then_some(&model.clock),
        query: model.highlight_query(),
        current,
        dropped,
        theme: model.theme,
        selection: model.copy.map(|c| c.range()),
        hscroll: model.hscroll,
        wrap: model.wrap,
        width,
    };
    PaneView {
        rows: output::fit(&raw, &style, height, follow),
        new_lines,
        dropped,
        follow,
    }
}

fn output_pane(frame: &mut Frame, model: &Model, buffers: &[SharedBuffer], areas: &Areas) {
    let height = areas.output_rows();
    let width = usize::from(areas.output_body.width);
    let merged = model.merged_selected();
    let record = model.job(model.selected_job());
    if !merged && record.is_none() {
        return;
    }
    let pane = pane_view(model, buffers, width, height);

    let border = model.theme.border(model.focus == model::Focus::Output);
    let mut title = match record {
        Some(record) => vec![Span::styled(format!(" {} ", record.name), theme::BOLD)],
        None => vec![Span::styled(" all ", theme::BOLD)],
    };
    if merged && !model.merged_filter.patterns.is_empty() {
        title.push(Span::styled(
            format!(
                "{} ",
                crate::stdio::visible_inline(&model.merged_filter.text())
            ),
            theme::STAGE_NAME,
        ));
    }
    if let (Some(record), Some(stage)) = (record, model.selected.stage())
        && let Some(s) = record.status.stages.get(stage)
    {
        title.push(Span::styled(
            format!("stage {}: {} ", stage + 1, format::stage_label(&s.argv)),
            theme::STAGE_NAME,
        ));
    }
    let mut badges = Vec::new();
    match model.stream_filter {
        Some(crate::output::Stream::Stdout) => badges.push("stdout only".to_string()),
        Some(crate::output::Stream::Stderr) => badges.push("stderr only".to_string()),
        None => {}
    }
    if model.wrap {
        badges.push("wrap".to_string());
    } else if model.hscroll > 0 {
        badges.push(format!("→ col {}", model.hscroll + 1));
    }
    if model.copy.is_some() {
        badges.push("copy mode".to_string());
    }
    if !badges.is_empty() {
        title.push(Span::styled(
            format!("· {} ", badges.join(" · ")),
            theme::BUSY,
        ));
    }
    if let Some(path) = model
        .log_paths
        .get(model.selected_job())
        .and_then(|p| p.as_ref())
    {
        title.push(Span::styled(
            format!(
                "log {} ",
                crate::stdio::visible_inline(&path.display().to_string())
            ),
            theme::DIM,
        ));
    }
    let mut right = Vec::new();
    if pane.dropped > 0 {
        right.push(Span::styled(
            format!(" {} dropped ", pane.dropped),
            theme::DIM,
        ));
    }
    if pane.follow {
        right.push(Span::styled(" following ", theme::FOLLOWING));
    } else {
        let text = if pane.new_lines > 0 {
            format!(
                " paused · {} ↓ ",
                format::count(pane.new_lines, "new line", "new lines")
            )
        } else {
            " paused ".to_string()
        };
        right.push(Span::styled(text, theme::BUSY));
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(border)
        .title(Line::from(title))
        .title_top(Line::from(right).right_aligned());
    let body = block.inner(areas.output);
    frame.render_widget(block, areas.output);
    let lines: Vec<Line> = pane.rows.into_iter().map(|(_, line)| line).collect();
    render_lines(frame.buffer_mut(), body, &lines);
}

/// `lines` top to bottom in `area`, each clipped to its width: `Paragraph` without
/// wrapping, minus its per-line grapheme buffering (the table and the output are redrawn
/// every clock second, so this is most of an idle UI's drawing).
///
/// The spaces that pad a span (table cells are padded to their column) are not written
/// one grapheme at a time when they would look like any blank cell: the frame starts
/// blank, so only cells that hold something else are blanked. That halves the cells an
/// idle table writes.
pub(crate) fn render_lines(buf: &mut Buffer, area: Rect, lines: &[Line]) {
    for (i, line) in lines.iter().take(area.height as usize).enumerate() {
        let row = Rect {
            y: area.y + i as u16,
            height: 1,
            ..area
        };
        if !matches!(line.alignment, None | Some(Alignment::Left)) {
            line.render(row, buf);
            continue;
        }
        buf.set_style(row, line.style);
        let mut x = row.x;
        for span in &line.spans {
            if x >= row.right() {
                break;
            }
            let style = line.style.patch(span.style);
            let text = span.content.as_ref();
            if !blank_looks_plain(style) {
                x = buf
                    .set_stringn(x, row.y, text, usize::from(row.right() - x), style)
                    .0;
                continue;
            }
            let body = text.trim_start_matches(' ');
            x = blank(buf, x, row.y, text.len() - body.len(), row.right());
            let trailing = body.len() - body.trim_end_matches(' ').len();
            let body = body.trim_end_matches(' ');
            if !body.is_empty() && x < row.right() {
                x = buf
                    .set_stringn(x, row.y, body, usize::from(row.right() - x), style)
                    .0;
            }
            x = blank(buf, x, row.y, trailing, row.right());
        }
    }
}

/// Whether a space in `style` looks the same as a space in the default style (no
/// background, nothing drawn across the cell).
fn blank_looks_plain(style: Style) -> bool {
    let drawn_across = Modifier::UNDERLINED | Modifier::REVERSED | Modifier::CROSSED_OUT;
    style.bg.is_none()
        && !style.add_modifier.intersects(drawn_across)
        && style.sub_modifier.is_empty()
}

/// Makes `count` cells from `x` blank (clipped at `right`); returns the x after them.
fn blank(buf: &mut Buffer, x: u16, y: u16, count: usize, right: u16) -> u16 {
    let end = x
        .saturating_add(u16::try_from(count).unwrap_or(u16::MAX))
        .min(right);
    for cx in x..end {
        if let Some(cell) = buf.cell_mut((cx, y))
            && cell.symbol() != " "
        {
            cell.set_symbol(" ");
        }
    }
    end
}

/// When the picture changes by itself: countdowns (tenths) soon, running clocks at the
/// next whole second of wall time, an expiring message. None when nothing moves.
pub fn next_redraw(model: &Model) -> Option<Instant> {
    let now = model.now;
    let mut next: Option<Instant> = model.message.as_ref().map(|m| m.until);
    let mut consider = |at: Instant| {
        next = Some(next.map_or(at, |n| n.min(at)));
    };
    let tenth = now + Duration::from_millis(100);
    let mut clocks = false;
    let mut sampled = false;
    for job in model.jobs() {
        let status = &job.status;
        match &status.state {
            JobState::Stopping { .. } => consider(tenth),
            JobState::Pending(PendingReason::Backoff { .. }) => consider(tenth),
            JobState::Running => {
                clocks = true;
                sampled = true;
                if let Some((_, at)) = crate::fmt::running_deadline(status)
                    && at.saturating_duration_since(now) < Duration::from_secs(10)
                {
                    consider(tenth);
                }
            }
            JobState::Pending(PendingReason::Queued) => clocks = true,
            _ => {}
        }
    }
    if clocks || model.tracker.settled_at.is_none() {
        // Tick on whole seconds of wall time so the header clock advances evenly.
        let since = now.saturating_duration_since(model.tracker.started);
        let next_second = Duration::from_secs(since.as_secs() + 1);
        // A running job means the sampler ticks on this second too, and its tick brings
        // the frame (see `Model::clocks_follow_samples`); this timer is the backup.
        let grace = if sampled && model.clocks_follow_samples {
            model::SAMPLER_GRACE
        } else {
            Duration::ZERO
        };
        consider(model.tracker.started + next_second + grace);
    }
    next
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;

    use super::*;

    /// Padding is not drawn grapheme by grapheme, but the row still reads the same:
    /// what was under the padding is blanked, the text lands where the spans put it.
    #[test]
    fn render_lines_blanks_padding_without_drawing_it() {
        let area = Rect::new(0, 0, 12, 2);
        let mut buf = Buffer::empty(area);
        for y in 0..2 {
            buf.set_string(0, y, "xxxxxxxxxxxx", Style::new().fg(Color::Red));
        }
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let lines = [
            Line::from(vec![
                Span::styled("  ab  ", bold),
                Span::raw("c"),
                Span::styled("   ", Style::new().bg(Color::Blue)),
            ]),
            Line::from(vec![Span::raw("     "), Span::raw("right")]),
        ];
        render_lines(&mut buf, area, &lines);
        let row = |y: u16| -> String {
            (0..12)
                .map(|x| buf.cell((x, y)).map_or(" ", |c| c.symbol()).to_string())
                .collect()
        };
        assert_eq!(row(0), "  ab  c   xx");
        assert_eq!(row(1), "     rightxx");
        assert!(
            buf.cell((2, 0))
                .is_some_and(|c| c.modifier.contains(Modifier::BOLD))
        );
        // A background shows on blanks, so those are drawn with it.
        assert!((7..10).all(|x| buf.cell((x, 0)).is_some_and(|c| c.bg == Color::Blue)));
    }
}
