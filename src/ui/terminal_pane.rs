//! The output pane of a PTY job: its terminal emulator's screen, cell by cell, with the
//! child's colours and attributes; scrolled up, the lines that left the top of that
//! screen (the job's ring buffer), then the screen below them.
//!
//! Every cell is drawn through ratatui, never as the child's bytes: control characters
//! that an emulator may keep in a cell (a C1 character is a printable code point to
//! UTF-8) are replaced by `�` here, so nothing the child wrote can address the host
//! terminal.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use crate::output::{OutputBuffer, sanitize};
use crate::supervisor::pty::{self, SharedTerminal};

use super::model::{Focus, Model};
use super::output::convert_style;
use super::pane::{self, Item, match_ranges};
use super::theme;

/// One cell as drawn: its text and style.
struct Cell {
    text: String,
    style: Style,
}

fn color(c: vt100::Color) -> Option<Color> {
    match c {
        vt100::Color::Default => None,
        vt100::Color::Idx(n) => Some(Color::Indexed(n)),
        vt100::Color::Rgb(r, g, b) => Some(Color::Rgb(r, g, b)),
    }
}

fn cell_style(cell: &vt100::Cell) -> Style {
    let mut style = Style::new();
    if let Some(fg) = color(cell.fgcolor()) {
        style = style.fg(fg);
    }
    if let Some(bg) = color(cell.bgcolor()) {
        style = style.bg(bg);
    }
    let flags = [
        (cell.bold(), Modifier::BOLD),
        (cell.dim(), Modifier::DIM),
        (cell.italic(), Modifier::ITALIC),
        (cell.underline(), Modifier::UNDERLINED),
        (cell.inverse(), Modifier::REVERSED),
    ];
    for (on, modifier) in flags {
        if on {
            style = style.add_modifier(modifier);
        }
    }
    style
}

/// A cell's text as it may be drawn: control characters become `�`.
fn cell_text(cell: &vt100::Cell) -> String {
    let contents = cell.contents();
    if contents.is_empty() {
        return " ".to_string();
    }
    contents
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The screen rows `rows` of `screen`, `width` columns at most; the cursor drawn in
/// reverse video when `cursor` and the program shows it.
fn screen_rows(
    screen: &vt100::Screen,
    rows: std::ops::Range<u16>,
    width: u16,
    cursor: bool,
) -> Vec<Vec<Cell>> {
    let (_, cols) = screen.size();
    let cols = cols.get().min(width);
    let cursor_at = (cursor && !screen.hide_cursor()).then(|| screen.cursor_position());
    rows.map(|row| {
        let mut cells = Vec::with_capacity(usize::from(cols));
        for col in 0..cols {
            let Some(cell) = screen.cell(row, col) else {
                break;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let mut style = cell_style(cell);
            if cursor_at == Some((row, col)) {
                style = style.add_modifier(Modifier::REVERSED);
            }
            cells.push(Cell {
                text: cell_text(cell),
                style,
            });
        }
        cells
    })
    .collect()
}

/// Merges cells into spans, with `query`'s matches highlighted.
fn cells_line(cells: Vec<Cell>, query: Option<&str>, highlight: Style) -> Line<'static> {
    let plain: String = cells.iter().map(|c| c.text.as_str()).collect();
    let ranges = query.map(|q| match_ranges(&plain, q)).unwrap_or_default();
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut offset = 0;
    for cell in cells {
        let start = offset;
        offset += cell.text.len();
        let hit = ranges.iter().any(|&(s, e)| start < e && offset > s);
        let style = if hit {
            cell.style.patch(highlight)
        } else {
            cell.style
        };
        match spans.last_mut() {
            Some(last) if last.style == style => last.content.to_mut().push_str(&cell.text),
            _ => spans.push(Span::styled(cell.text, style)),
        }
    }
    Line::from(spans)
}

/// A line of the scrollback, styled like the child wrote it.
fn history_line(bytes: &[u8], query: Option<&str>, highlight: Style) -> Line<'static> {
    let styled = sanitize::styled_line(bytes);
    let cells: Vec<Cell> = styled
        .into_iter()
        .map(|s| Cell {
            style: convert_style(&s.style),
            text: s.text,
        })
        .collect();
    cells_line(cells, query, highlight)
}

/// Matches of `query` on the terminal's screen (the status line says how many).
pub fn screen_matches(terminal: &SharedTerminal, query: &str) -> usize {
    pty::lock(terminal)
        .screen_lines()
        .iter()
        .map(|line| match_ranges(line, query).len())
        .sum()
}

/// Draws a PTY job's pane in `area` (title line included).
pub fn draw(
    frame: &mut Frame,
    model: &Model,
    buffer: Option<&crate::output::SharedBuffer>,
    terminal: &SharedTerminal,
    area: Rect,
) {
    let id = model.selected_job();
    let Some(record) = model.job(id) else {
        return;
    };
    let view = model.view(id);
    let typing = model.input_focus == Some(id);
    let query = model.highlight_query();
    let highlight = model.theme.search_match(false);
    let body = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(1),
        ..area
    };
    let height = usize::from(body.height);

    // Terminal first, then buffer: the drain takes them in the same order.
    let (lines, dropped, new_lines) = {
        let terminal = pty::lock(terminal);
        let screen = terminal.screen();
        let (screen_height, _) = screen.size();
        let screen_height = screen_height.get();
        let empty = OutputBuffer::new(1, 0);
        let guard = buffer.map(crate::output::lock);
        let buf: &OutputBuffer = guard.as_deref().unwrap_or(&empty);
        let mut lines: Vec<Line<'static>> = Vec::with_capacity(height);
        if view.follow {
            let shown = screen_height.min(body.height);
            // A screen taller than the pane (a resize on its way) shows its bottom,
            // where the cursor usually is.
            let first = screen_height - shown;
            for cells in screen_rows(screen, first..screen_height, body.width, typing) {
                lines.push(cells_line(cells, query, highlight));
            }
        } else {
            for item in pane::window(buf, pane::Filter::stage(None), view, height) {
                lines.push(match item {
                    Item::Dropped => {
                        let text = match buf.dropped() {
                            0 => "··· older lines cleared ···".to_string(),
                            n => format!("··· {n} older lines dropped ···"),
                        };
                        Line::from(Span::styled(text, theme::DROPPED_MARKER))
                    }
                    Item::Line(seq) => match buf.get_seq(seq) {
                        Some(line) => {
                            let current = model.search.as_ref().and_then(|s| s.current);
                            let hl = model.theme.search_match(current == Some(seq));
                            history_line(line.text, query, hl)
                        }
                        None => Line::default(),
                    },
                    Item::Partial(_) => Line::default(),
                });
            }
            // The end of the scrollback: the screen continues below it.
            let rest = u16::try_from(height.saturating_sub(lines.len())).unwrap_or(u16::MAX);
            for cells in screen_rows(screen, 0..rest.min(screen_height), body.width, false) {
                lines.push(cells_line(cells, query, highlight));
            }
        }
        (lines, buf.dropped(), pane::new_lines(buf, view))
    };

    let focused = typing || model.focus == Focus::Output;
    let border = model.theme.border(focused);
    let title = vec![
        Span::styled(format!(" {} ", record.name), theme::BOLD),
        Span::styled("terminal: stdout and stderr in one stream ", theme::DIM),
    ];
    let mut right = Vec::new();
    if dropped > 0 {
        right.push(Span::styled(format!(" {dropped} dropped "), theme::DIM));
    }
    if typing {
        right.push(Span::styled(" keys go to the job ", theme::BUSY));
    } else if view.follow {
        right.push(Span::styled(" live ", theme::FOLLOWING));
    } else {
        let text = if new_lines > 0 {
            format!(
                " scrollback · {} ↓ ",
                super::format::count(new_lines, "new line", "new lines")
            )
        } else {
            " scrollback ".to_string()
        };
        right.push(Span::styled(text, theme::BUSY));
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(border)
        .title(Line::from(title))
        .title_top(Line::from(right).right_aligned());
    frame.render_widget(block, area);
    super::render_lines(frame.buffer_mut(), body, &lines);
}

/// The status bar while keys go to a job: which job, and how to leave.
pub fn input_status(frame: &mut Frame, model: &Model, area: Rect) {
    let name = model
        .input_focus
        .and_then(|id| model.job(id))
        .map_or("?", |j| j.name.as_str());
    let leave = model
        .keymap
        .first_key(
            crate::app::command::Mode::Input,
            crate::app::command::Command::InputLeave,
        )
        .map(|k| k.label());
    let mut spans = vec![
        Span::styled(" TYPING ", theme::BADGE),
        Span::styled(format!(" keys go to {name}"), theme::BUSY),
    ];
    match leave {
        Some(key) => {
            spans.push(Span::styled(" · ", theme::DIM));
            spans.push(Span::styled(key, theme::KEY));
            spans.push(Span::styled(" gives them back to forkyard", theme::DIM));
        }
        None => spans.push(Span::styled(
            " · no key leaves (input_leave is unbound in [keys])",
            theme::FAILED,
        )),
    }
    let buf = frame.buffer_mut();
    buf.set_style(area, theme::STATUS_BAR);
    super::render_lines(buf, area, &[Line::from(spans)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_replaced() {
        let mut e = crate::output::Emulator::new(2, 10);
        // U+009B is CSI as a C1 character: printable to UTF-8, a command to a terminal.
        e.process("a\u{9b}31mb".as_bytes());
        let rows = screen_rows(e.screen(), 0..1, 10, false);
        let text: String = rows[0].iter().map(|c| c.text.as_str()).collect();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.starts_with('a'), "{text:?}");
    }

    #[test]
    fn cells_keep_colours_and_matches_are_highlighted() {
        let mut e = crate::output::Emulator::new(2, 20);
        e.process(b"\x1b[1;32mgreen\x1b[m plain");
        let rows = screen_rows(e.screen(), 0..1, 20, false);
        let line = cells_line(
            rows.into_iter().next().unwrap_or_default(),
            Some("pla"),
            theme::REVERSED,
        );
        let texts: Vec<&str> = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts[0], "green");
        assert_eq!(line.spans[0].style.fg, Some(Color::Indexed(2)));
        assert!(line.spans[0].style.add_modifier.contains(Modifier::BOLD));
        assert!(
            line.spans
                .iter()
                .any(|s| s.content == "pla" && s.style.add_modifier.contains(Modifier::REVERSED))
        );
    }
}
