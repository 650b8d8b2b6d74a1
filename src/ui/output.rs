//! Turning the visible rows of the output pane (only those) into styled, escape-free
//! text: sanitised, stderr tinted, stage-tagged, search matches highlighted. Which rows
//! are visible is `pane.rs`.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::output::sanitize::{self, StyledSpan, TextStyle};
use crate::output::{OutputBuffer, Stream};

use super::pane::{Item, match_ranges};
use super::theme::{self, Theme};

/// One visible row, copied out of the buffer so the lock is released before styling.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub item: Item,
    pub stage: usize,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// Copies the bytes of the visible rows (call under the buffer lock).
pub fn copy_rows(buf: &OutputBuffer, items: &[Item]) -> Vec<RawRow> {
    let partials: Vec<(usize, Stream, &[u8])> = buf.partials().collect();
    items
        .iter()
        .map(|item| match item {
            Item::Dropped => RawRow {
                item: *item,
                stage: 0,
                stream: Stream::Stdout,
                bytes: Vec::new(),
            },
            Item::Line(seq) => match buf.get_seq(*seq) {
                Some(line) => RawRow {
                    item: *item,
                    stage: line.stage,
                    stream: line.stream,
                    bytes: truncate(line.text).to_vec(),
                },
                None => RawRow {
                    item: *item,
                    stage: 0,
                    stream: Stream::Stdout,
                    bytes: Vec::new(),
                },
            },
            Item::Partial(i) => {
                let (stage, stream, bytes) =
                    partials
                        .get(*i)
                        .copied()
                        .unwrap_or((0, Stream::Stdout, &[][..]));
                RawRow {
                    item: *item,
                    stage,
                    stream,
                    bytes: truncate(bytes).to_vec(),
                }
            }
        })
        .collect()
}

fn truncate(bytes: &[u8]) -> &[u8] {
    bytes.get(..sanitize::MAX_INPUT_BYTES).unwrap_or(bytes)
}

/// Stage tags for a pipeline's output: a label and a colour per stage.
pub struct Tags {
    pub labels: Vec<String>,
    pub width: usize,
}

pub fn convert_style(style: &TextStyle) -> Style {
    let color = |c: sanitize::Color| match c {
        sanitize::Color::Indexed(n) => Color::Indexed(n),
        sanitize::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    };
    let mut out = Style::new();
    if let Some(fg) = style.fg {
        out = out.fg(color(fg));
    }
    if let Some(bg) = style.bg {
        out = out.bg(color(bg));
    }
    let flags = [
        (style.bold, Modifier::BOLD),
        (style.dim, Modifier::DIM),
        (style.italic, Modifier::ITALIC),
        (style.underline, Modifier::UNDERLINED),
        (style.reverse, Modifier::REVERSED),
        (style.strikethrough, Modifier::CROSSED_OUT),
    ];
    for (on, modifier) in flags {
        if on {
            out = out.add_modifier(modifier);
        }
    }
    out
}

/// Splits styled spans so the byte ranges `ranges` (over their concatenated text) get
/// `highlight` on top of their own style.
fn highlight(
    spans: Vec<StyledSpan>,
    ranges: &[(usize, usize)],
    highlight: Style,
    base: Style,
) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for span in spans {
        let style = base.patch(convert_style(&span.style));
        let start = offset;
        let end = offset + span.text.len();
        offset = end;
        let mut cut = start;
        for &(s, e) in ranges {
            if e <= cut || s >= end {
                continue;
            }
            let s = s.max(cut);
            let e = e.min(end);
            if s > cut {
                out.push(Span::styled(
                    span.text[cut - start..s - start].to_string(),
                    style,
                ));
            }
            out.push(Span::styled(
                span.text[s - start..e - start].to_string(),
                style.patch(highlight),
            ));
            cut = e;
        }
        if cut < end {
            out.push(Span::styled(span.text[cut - start..].to_string(), style));
        }
    }
    out
}

/// Styling inputs for [`render_row`].
pub struct RowStyle<'a> {
    pub tags: Option<&'a Tags>,
    pub query: Option<&'a str>,
    pub current: Option<u64>,
    pub dropped: u64,
    pub theme: Theme,
}

/// Turns one copied row into a styled line: sanitised, stderr tinted, tagged, matches
/// highlighted.
pub fn render_row(row: &RawRow, style: &RowStyle<'_>) -> Line<'static> {
    if row.item == Item::Dropped {
        let text = if style.dropped > 0 {
            format!("··· {} older lines dropped ···", style.dropped)
        } else {
            "··· older lines cleared ···".to_string()
        };
        return Line::from(Span::styled(text, theme::DROPPED_MARKER));
    }
    let base = match row.stream {
        Stream::Stdout => Style::new(),
        Stream::Stderr => Style::new().fg(theme::STDERR_TINT),
    };
    let mut spans = Vec::new();
    if let Some(tags) = style.tags {
        let label = tags
            .labels
            .get(row.stage)
            .map(String::as_str)
            .unwrap_or("?");
        spans.push(Span::styled(
            format!("{label:<w$}│", w = tags.width),
            theme::stage_tag(row.stage),
        ));
    }
    let styled = sanitize::styled_line(&row.bytes);
    let ranges = match style.query {
        Some(query) => {
            let plain: String = styled.iter().map(|s| s.text.as_str()).collect();
            match_ranges(&plain, query)
        }
        None => Vec::new(),
    };
    let is_current = matches!(row.item, Item::Line(seq) if style.current == Some(seq));
    let hl = style.theme.search_match(is_current);
    spans.extend(highlight(styled, &ranges, hl, base));
    if matches!(row.item, Item::Partial(_)) {
        // Still being written (no newline yet): a progress bar, a prompt.
        spans.push(Span::styled("▏", theme::DIM));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlight_splits_styled_spans() {
        let row = RawRow {
            item: Item::Line(3),
            stage: 0,
            stream: Stream::Stdout,
            bytes: b"ab\x1b[1mcd\x1b[0mef".to_vec(),
        };
        let line = render_row(
            &row,
            &RowStyle {
                tags: None,
                query: Some("bcd"),
                current: None,
                dropped: 0,
                theme: Theme::default(),
            },
        );
        let texts: Vec<&str> = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts, ["a", "b", "cd", "ef"]);
        assert_eq!(line.spans[1].style.bg, Some(Color::Yellow));
        assert!(line.spans[2].style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(line.spans[2].style.bg, Some(Color::Yellow));
    }
}
