//! The output pane: which lines are visible, scrolling, search, and turning the visible
//! lines (only those) into styled, escape-free text.
//!
//! Positions are absolute sequence numbers, so a paused view stays put while new lines
//! arrive and old ones are evicted. A pane shows a virtual list: an optional "older lines
//! dropped" marker, the retained lines (of one stage, when a stage row is selected), then
//! the partial lines still being assembled (e.g. a `\r` progress bar).

use memchr::memmem;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::output::sanitize::{self, StyledSpan, TextStyle};
use crate::output::{LineRef, OutputBuffer, Stream};

use super::model::OutputView;

/// One row of the output pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// "N older lines dropped" (shown above the first retained line).
    Dropped,
    Line(u64),
    /// The `n`-th partial line (in [`OutputBuffer::partials`] order).
    Partial(usize),
}

fn keep_line(line: &LineRef<'_>, stage: Option<usize>) -> bool {
    stage.is_none_or(|s| line.stage == s)
}

fn partial_indices(buf: &OutputBuffer, stage: Option<usize>) -> Vec<usize> {
    buf.partials()
        .enumerate()
        .filter(|(_, (s, _, _))| stage.is_none_or(|want| *s == want))
        .map(|(i, _)| i)
        .collect()
}

/// Whether a marker row sits above the first retained line.
fn has_marker(buf: &OutputBuffer) -> bool {
    buf.first_seq() > 0
}

/// Index (into the retained lines) of sequence number `seq`, clamped.
fn index_of(buf: &OutputBuffer, seq: u64) -> usize {
    usize::try_from(seq.saturating_sub(buf.first_seq()))
        .unwrap_or(usize::MAX)
        .min(buf.len())
}

/// The rows visible in a pane of `height` rows.
pub fn window(
    buf: &OutputBuffer,
    stage: Option<usize>,
    view: OutputView,
    height: usize,
) -> Vec<Item> {
    let mut items = Vec::with_capacity(height);
    if height == 0 {
        return items;
    }
    if view.follow {
        for p in partial_indices(buf, stage).into_iter().rev() {
            if items.len() == height {
                break;
            }
            items.push(Item::Partial(p));
        }
        for line in buf.iter().rev() {
            if items.len() == height {
                break;
            }
            if keep_line(&line, stage) {
                items.push(Item::Line(line.seq));
            }
        }
        if items.len() < height && has_marker(buf) {
            items.push(Item::Dropped);
        }
        items.reverse();
        return items;
    }
    if view.top < buf.first_seq() && has_marker(buf) {
        items.push(Item::Dropped);
    }
    for line in buf.iter().skip(index_of(buf, view.top)) {
        if items.len() == height {
            return items;
        }
        if keep_line(&line, stage) {
            items.push(Item::Line(line.seq));
        }
    }
    for p in partial_indices(buf, stage) {
        if items.len() == height {
            break;
        }
        items.push(Item::Partial(p));
    }
    items
}

/// Sequence number of the position above the first retained line (the marker row).
fn marker_position(buf: &OutputBuffer) -> u64 {
    buf.first_seq().saturating_sub(1)
}

/// The top position of what is shown now (for switching from follow to paused).
fn current_top(buf: &OutputBuffer, stage: Option<usize>, view: OutputView, height: usize) -> u64 {
    if !view.follow {
        return view.top;
    }
    match window(buf, stage, view, height).first() {
        Some(Item::Dropped) => marker_position(buf),
        Some(Item::Line(seq)) => *seq,
        Some(Item::Partial(_)) | None => buf.total_lines(),
    }
}

fn pause(buf: &OutputBuffer, view: &mut OutputView) {
    if view.follow {
        view.follow = false;
        view.paused_total = buf.total_lines();
    }
}

/// Scrolls up `n` rows; pauses follow. Does nothing when everything fits.
pub fn scroll_up(
    buf: &OutputBuffer,
    stage: Option<usize>,
    view: &mut OutputView,
    height: usize,
    n: usize,
) {
    if view.follow && window(buf, stage, *view, height + 1).len() <= height {
        return; // nothing above the visible rows
    }
    let top = current_top(buf, stage, *view, height);
    pause(buf, view);
    let first = buf.first_seq();
    if top < first {
        view.top = top;
        return;
    }
    let mut moved = 0;
    let mut new_top = top;
    for line in buf.iter().take(index_of(buf, top)).rev() {
        if keep_line(&line, stage) {
            moved += 1;
            new_top = line.seq;
            if moved == n {
                break;
            }
        }
    }
    if moved < n && has_marker(buf) {
        new_top = marker_position(buf);
    }
    view.top = new_top;
}

/// Scrolls down `n` rows; resumes follow once the end is in view.
pub fn scroll_down(
    buf: &OutputBuffer,
    stage: Option<usize>,
    view: &mut OutputView,
    height: usize,
    n: usize,
) {
    if view.follow {
        return;
    }
    let first = buf.first_seq();
    let marker = view.top < first && has_marker(buf);
    let lines = buf
        .iter()
        .skip(index_of(buf, view.top))
        .filter(|l| keep_line(l, stage))
        .map(|l| Some(l.seq));
    let mut positions = marker.then_some(None).into_iter().chain(lines);
    for _ in 0..n {
        if positions.next().is_none() {
            break;
        }
    }
    match positions.next() {
        Some(position) => {
            let remaining = 1 + positions.take(height).count() + partial_indices(buf, stage).len();
            if remaining <= height {
                view.follow = true;
            } else {
                view.top = position.unwrap_or_else(|| marker_position(buf));
            }
        }
        None => view.follow = true,
    }
}

/// Scrolls to the very first row (the marker, if lines were dropped).
pub fn scroll_to_top(buf: &OutputBuffer, view: &mut OutputView) {
    pause(buf, view);
    view.top = if has_marker(buf) {
        marker_position(buf)
    } else {
        buf.first_seq()
    };
}

/// Lines that arrived since follow was paused.
pub fn new_lines(buf: &OutputBuffer, view: OutputView) -> u64 {
    if view.follow {
        0
    } else {
        buf.total_lines().saturating_sub(view.paused_total)
    }
}

/// Smart case: a query without capitals matches case-insensitively.
pub fn case_insensitive(query: &str) -> bool {
    !query.chars().any(char::is_uppercase)
}

/// Byte ranges of `query` in `text`.
pub fn match_ranges(text: &str, query: &str) -> Vec<(usize, usize)> {
    if query.is_empty() {
        return Vec::new();
    }
    let ranges = |hay: &[u8], needle: &[u8]| -> Vec<(usize, usize)> {
        memmem::find_iter(hay, needle)
            .map(|start| (start, start + needle.len()))
            .collect()
    };
    let mut found = if case_insensitive(query) {
        // ASCII folding keeps byte offsets identical to the original text.
        ranges(
            text.to_ascii_lowercase().as_bytes(),
            query.to_ascii_lowercase().as_bytes(),
        )
    } else {
        ranges(text.as_bytes(), query.as_bytes())
    };
    // Overlapping hits (e.g. "aa" in "aaa") highlight as the first one only.
    let mut end = 0;
    found.retain(|(s, e)| {
        let keep = *s >= end;
        if keep {
            end = *e;
        }
        keep
    });
    found.retain(|(s, e)| text.is_char_boundary(*s) && text.is_char_boundary(*e));
    found
}

fn line_matches(line: &LineRef<'_>, query: &str) -> bool {
    !match_ranges(&sanitize::plain_text(line.text), query).is_empty()
}

/// The nearest line containing `query` after (`forward`) or before `from`; with no
/// `from`, the first (forward) or last line that matches.
pub fn find(
    buf: &OutputBuffer,
    stage: Option<usize>,
    query: &str,
    from: Option<u64>,
    forward: bool,
) -> Option<u64> {
    if query.is_empty() {
        return None;
    }
    let hit = |line: &LineRef<'_>| keep_line(line, stage) && line_matches(line, query);
    match (from, forward) {
        (None, true) => buf.iter().find(hit),
        (None, false) => buf.iter().rev().find(hit),
        (Some(from), true) => {
            let start = if from < buf.first_seq() {
                0
            } else {
                index_of(buf, from).saturating_add(1)
            };
            buf.iter().skip(start).find(hit)
        }
        (Some(from), false) => buf.iter().take(index_of(buf, from)).rev().find(hit),
    }
    .map(|l| l.seq)
}

/// Pauses the view and scrolls so `seq` shows about a third of the way down.
pub fn reveal(
    buf: &OutputBuffer,
    stage: Option<usize>,
    view: &mut OutputView,
    height: usize,
    seq: u64,
) {
    if !view.follow && window(buf, stage, *view, height).contains(&Item::Line(seq)) {
        return; // already on screen: do not jump around
    }
    pause(buf, view);
    view.top = seq;
    if height > 2 {
        scroll_up(buf, stage, view, height, height / 3);
    }
    // Near the end, show a full last page rather than blank rows below it.
    let tail = OutputView {
        follow: true,
        ..*view
    };
    view.top = view.top.min(current_top(buf, stage, tail, height));
}

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

const TAG_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::Yellow,
    Color::Green,
    Color::LightCyan,
];

/// Style of text printed on stderr without its own colour.
pub const STDERR_TINT: Color = Color::LightRed;

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

const MATCH_STYLE: Style = Style::new().fg(Color::Black).bg(Color::Yellow);
const CURRENT_MATCH_STYLE: Style = Style::new()
    .fg(Color::Black)
    .bg(Color::LightRed)
    .add_modifier(Modifier::BOLD);

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
        return Line::from(Span::styled(
            text,
            Style::new()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        ));
    }
    let base = match row.stream {
        Stream::Stdout => Style::new(),
        Stream::Stderr => Style::new().fg(STDERR_TINT),
    };
    let mut spans = Vec::new();
    if let Some(tags) = style.tags {
        let label = tags
            .labels
            .get(row.stage)
            .map(String::as_str)
            .unwrap_or("?");
        let color = TAG_COLORS[row.stage % TAG_COLORS.len()];
        spans.push(Span::styled(
            format!("{label:<w$}│", w = tags.width),
            Style::new().fg(color),
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
    let hl = if is_current {
        CURRENT_MATCH_STYLE
    } else {
        MATCH_STYLE
    };
    spans.extend(highlight(styled, &ranges, hl, base));
    if matches!(row.item, Item::Partial(_)) {
        // Still being written (no newline yet): a progress bar, a prompt.
        spans.push(Span::styled("▏", Style::new().fg(Color::DarkGray)));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn buffer(lines: usize, max: usize) -> OutputBuffer {
        let mut buf = OutputBuffer::new(max, 1 << 20);
        let now = Instant::now();
        for i in 0..lines {
            let stage = i % 2;
            buf.push_line(stage, Stream::Stdout, now, format!("line {i}").as_bytes());
        }
        buf
    }

    fn seqs(items: &[Item]) -> Vec<Option<u64>> {
        items
            .iter()
            .map(|i| match i {
                Item::Line(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn follow_shows_the_tail_and_marker_when_short() {
        let buf = buffer(10, 4);
        let items = window(&buf, None, OutputView::default(), 3);
        assert_eq!(seqs(&items), [Some(7), Some(8), Some(9)]);
        let items = window(&buf, None, OutputView::default(), 6);
        assert_eq!(items[0], Item::Dropped);
        assert_eq!(items.len(), 5);
    }

    #[test]
    fn scrolling_pauses_counts_and_resumes() {
        let mut buf = buffer(20, 100);
        let mut view = OutputView::default();
        scroll_up(&buf, None, &mut view, 5, 3);
        assert!(!view.follow);
        assert_eq!(view.top, 12);
        buf.push_line(0, Stream::Stdout, Instant::now(), b"more");
        assert_eq!(new_lines(&buf, view), 1);
        // The paused view does not move when lines arrive.
        assert_eq!(window(&buf, None, view, 5)[0], Item::Line(12));
        scroll_down(&buf, None, &mut view, 5, 2);
        assert_eq!(view.top, 14);
        scroll_down(&buf, None, &mut view, 5, 10);
        assert!(view.follow);
    }

    #[test]
    fn stage_filter_and_top() {
        let buf = buffer(20, 10);
        let view = OutputView::default();
        let items = window(&buf, Some(1), view, 3);
        assert_eq!(seqs(&items), [Some(15), Some(17), Some(19)]);
        let mut view = OutputView::default();
        scroll_to_top(&buf, &mut view);
        let items = window(&buf, Some(0), view, 3);
        assert_eq!(seqs(&items), [None, Some(10), Some(12)]);
    }

    #[test]
    fn nothing_to_scroll_keeps_following() {
        let buf = buffer(3, 100);
        let mut view = OutputView::default();
        scroll_up(&buf, None, &mut view, 5, 1);
        assert!(view.follow);
    }

    #[test]
    fn search_finds_both_ways_with_smart_case() {
        let mut buf = buffer(5, 100);
        buf.push_line(
            0,
            Stream::Stderr,
            Instant::now(),
            b"\x1b[31mERROR\x1b[0m here",
        );
        assert_eq!(find(&buf, None, "error", Some(0), true), Some(5));
        assert_eq!(find(&buf, None, "Error", None, true), None);
        assert_eq!(find(&buf, None, "line 1", Some(5), false), Some(1));
        assert_eq!(find(&buf, None, "line", Some(4), true), None);
        assert_eq!(find(&buf, None, "line", None, true), Some(0));
        assert_eq!(find(&buf, None, "line", None, false), Some(4));
        assert_eq!(match_ranges("aXa xa", "xa"), [(1, 3), (4, 6)]);
    }

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
            },
        );
        let texts: Vec<&str> = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts, ["a", "b", "cd", "ef"]);
        assert_eq!(line.spans[1].style.bg, Some(Color::Yellow));
        assert!(line.spans[2].style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(line.spans[2].style.bg, Some(Color::Yellow));
    }
}
