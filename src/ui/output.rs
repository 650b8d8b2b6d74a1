//! Turning the visible rows of the output pane (only those) into styled, escape-free
//! text: sanitised, stderr tinted, stage-tagged, search matches highlighted, with the
//! optional gutter in front (arrival time, the merged view's job label) and long lines
//! either wrapped or cut at the pane's edge after the horizontal scroll. Which rows are
//! visible is `pane.rs` (one job) and `merged.rs` (every job).

use std::time::Instant;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::logs::clock::{LocalClock, WallClock};
use crate::output::sanitize::{self, StyledSpan, TextStyle};
use crate::output::{OutputBuffer, SharedBuffer, Stream};
use crate::supervisor::JobId;

use super::model::LineKey;
use super::pane::{Item, match_ranges};
use super::theme::{self, Theme};

/// One visible row, copied out of the buffer so the lock is released before styling.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub item: Item,
    pub job: JobId,
    pub stage: usize,
    pub stream: Stream,
    /// When the line arrived (None: a marker, or a line still being written).
    pub at: Option<Instant>,
    pub bytes: Vec<u8>,
}

impl RawRow {
    fn empty(item: Item, job: JobId) -> RawRow {
        RawRow {
            item,
            job,
            stage: 0,
            stream: Stream::Stdout,
            at: None,
            bytes: Vec::new(),
        }
    }

    /// The row's line, when it is a complete line.
    pub fn key(&self) -> Option<LineKey> {
        match (self.item, self.at) {
            (Item::Line(seq), Some(at)) => Some(LineKey {
                at,
                job: self.job,
                seq,
            }),
            _ => None,
        }
    }
}

/// Copies the bytes of the visible rows of job `job` (call under the buffer lock).
pub fn copy_rows(buf: &OutputBuffer, job: JobId, items: &[Item]) -> Vec<RawRow> {
    let partials: Vec<(usize, Stream, &[u8])> = buf.partials().collect();
    items
        .iter()
        .map(|item| match item {
            Item::Dropped => RawRow::empty(*item, job),
            Item::Line(seq) => match buf.get_seq(*seq) {
                Some(line) => RawRow {
                    item: *item,
                    job,
                    stage: line.stage,
                    stream: line.stream,
                    at: Some(line.at),
                    bytes: truncate(line.text).to_vec(),
                },
                None => RawRow::empty(*item, job),
            },
            Item::Partial(i) => {
                let (stage, stream, bytes) =
                    partials
                        .get(*i)
                        .copied()
                        .unwrap_or((0, Stream::Stdout, &[][..]));
                RawRow {
                    item: *item,
                    job,
                    stage,
                    stream,
                    at: None,
                    bytes: truncate(bytes).to_vec(),
                }
            }
        })
        .collect()
}

/// Copies the merged view's rows: each buffer locked once, briefly.
pub fn copy_merged(buffers: &[SharedBuffer], keys: &[LineKey]) -> Vec<RawRow> {
    let mut rows: Vec<RawRow> = keys
        .iter()
        .map(|k| RawRow::empty(Item::Line(k.seq), k.job))
        .collect();
    let mut jobs: Vec<JobId> = keys.iter().map(|k| k.job).collect();
    jobs.sort_unstable();
    jobs.dedup();
    for job in jobs {
        let Some(buffer) = buffers.get(job) else {
            continue;
        };
        let buf = crate::output::lock(buffer);
        for (row, k) in rows.iter_mut().zip(keys).filter(|(_, k)| k.job == job) {
            if let Some(line) = buf.get_seq(k.seq) {
                row.stage = line.stage;
                row.stream = line.stream;
                row.at = Some(line.at);
                row.bytes = truncate(line.text).to_vec();
            }
        }
    }
    rows
}

fn truncate(bytes: &[u8]) -> &[u8] {
    bytes.get(..sanitize::MAX_INPUT_BYTES).unwrap_or(bytes)
}

/// Stage tags for a pipeline's output: a label and a colour per stage.
pub struct Tags {
    pub labels: Vec<String>,
    pub width: usize,
}

/// The merged view's job labels: `web`, `enc[2]` (a pipeline's stage), padded to one
/// width and coloured per job, like headless output.
pub struct JobLabels {
    pub names: Vec<String>,
    pub pipelines: Vec<bool>,
    pub width: usize,
}

/// Job colours in the merged view (headless uses the same six).
const JOB_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Green,
    Color::Magenta,
    Color::Blue,
    Color::LightCyan,
];

pub fn job_color(job: JobId) -> Color {
    JOB_COLORS[job % JOB_COLORS.len()]
}

impl JobLabels {
    pub fn label(&self, job: JobId, stage: usize) -> String {
        let name = self.names.get(job).map(String::as_str).unwrap_or("?");
        if self.pipelines.get(job).copied().unwrap_or(false) {
            format!("{name}[{}]", stage + 1)
        } else {
            name.to_string()
        }
    }
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
    /// The merged view: a job label in front of each line.
    pub jobs: Option<&'a JobLabels>,
    /// Timestamps on: arrival times are shown through this clock.
    pub clock: Option<&'a WallClock>,
    pub query: Option<&'a str>,
    /// The current search match (compared by sequence number in one job's view).
    pub current: Option<LineKey>,
    pub dropped: u64,
    pub theme: Theme,
    /// Copy mode's selection, first and last line.
    pub selection: Option<(LineKey, LineKey)>,
    /// Columns of text scrolled off to the left (when not wrapping).
    pub hscroll: usize,
    /// Wrap long lines at `width` instead of cutting them.
    pub wrap: bool,
    pub width: usize,
}

impl RowStyle<'_> {
    /// `key` is `other`: the same line (by sequence number in one job's view).
    fn same(&self, key: LineKey, other: LineKey) -> bool {
        if self.jobs.is_some() {
            key == other
        } else {
            key.seq == other.seq
        }
    }

    fn selected(&self, key: LineKey) -> bool {
        self.selection.is_some_and(|(first, last)| {
            if self.jobs.is_some() {
                first <= key && key <= last
            } else {
                first.seq <= key.seq && key.seq <= last.seq
            }
        })
    }
}

/// The selected lines of copy mode.
pub fn selection_style(theme: Theme) -> Style {
    if theme.plain {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().bg(Color::Indexed(24))
    }
}

/// `12:34:56.789` for a line that arrived at `at`.
pub fn time_text(clock: &WallClock, at: Instant) -> String {
    LocalClock::new()
        .at_millis(clock.unix_millis(at))
        .time_of_day_text()
}

/// The gutter in front of a row's text: time, job label (merged view), stage tag.
fn gutter(row: &RawRow, style: &RowStyle<'_>) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    if let Some(clock) = style.clock {
        let text = match row.at {
            Some(at) => time_text(clock, at),
            None => " ".repeat(12),
        };
        spans.push(Span::styled(format!("{text} "), theme::DIM));
    }
    if let Some(jobs) = style.jobs {
        let label = jobs.label(row.job, row.stage);
        let mark = match row.stream {
            Stream::Stdout => '|',
            Stream::Stderr => '!',
        };
        let color = Style::new().fg(job_color(row.job));
        spans.push(Span::styled(format!("{label:<w$} ", w = jobs.width), color));
        let mark_style = match row.stream {
            Stream::Stdout => color,
            Stream::Stderr => Style::new().fg(theme::STDERR_TINT),
        };
        spans.push(Span::styled(format!("{mark} "), mark_style));
    }
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
    spans
}

fn width_of(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| s.content.chars().count()).sum()
}

/// The spans' text from column `skip`, at most `take` columns (one character is one
/// column, as the sanitiser counts them).
fn columns(spans: &[Span<'static>], skip: usize, take: usize) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let end = skip.saturating_add(take);
    for span in spans {
        let len = span.content.chars().count();
        let (from, to) = (pos, pos + len);
        pos = to;
        if to <= skip || from >= end {
            continue;
        }
        let a = skip.saturating_sub(from);
        let b = len.min(end - from);
        let text: String = span.content.chars().skip(a).take(b - a).collect();
        out.push(Span::styled(text, span.style));
    }
    out
}

/// Turns one copied row into its screen lines: one, or several when it wraps.
pub fn render_row(row: &RawRow, style: &RowStyle<'_>) -> Vec<Line<'static>> {
    if row.item == Item::Dropped {
        let text = if style.dropped > 0 {
            format!("··· {} older lines dropped ···", style.dropped)
        } else {
            "··· older lines cleared ···".to_string()
        };
        return vec![Line::from(Span::styled(text, theme::DROPPED_MARKER))];
    }
    let base = match row.stream {
        Stream::Stdout => Style::new(),
        Stream::Stderr => Style::new().fg(theme::STDERR_TINT),
    };
    let gutter = gutter(row, style);
    let styled = sanitize::styled_line(&row.bytes);
    let ranges = match style.query {
        Some(query) => {
            let plain: String = styled.iter().map(|s| s.text.as_str()).collect();
            match_ranges(&plain, query)
        }
        None => Vec::new(),
    };
    let key = row.key();
    let is_current = matches!((key, style.current), (Some(k), Some(c)) if style.same(k, c));
    let hl = style.theme.search_match(is_current);
    let mut body = highlight(styled, &ranges, hl, base);
    if matches!(row.item, Item::Partial(_)) {
        // Still being written (no newline yet): a progress bar, a prompt.
        body.push(Span::styled("▏", theme::DIM));
    }
    let gutter_width = width_of(&gutter);
    let room = style.width.saturating_sub(gutter_width).max(1);
    let mut lines: Vec<Line<'static>> = if style.wrap {
        let total = width_of(&body);
        let rows = total.div_ceil(room).max(1);
        (0..rows)
            .map(|i| {
                let lead = if i == 0 {
                    gutter.clone()
                } else {
                    vec![Span::raw(" ".repeat(gutter_width))]
                };
                Line::from([lead, columns(&body, i * room, room)].concat())
            })
            .collect()
    } else {
        vec![Line::from(
            [gutter, columns(&body, style.hscroll, room)].concat(),
        )]
    };
    if key.is_some_and(|k| style.selected(k)) {
        let selected = selection_style(style.theme);
        for line in &mut lines {
            line.style = selected;
            for span in &mut line.spans {
                span.style = span.style.patch(selected);
            }
        }
    }
    lines
}

/// The rows' lines in a pane `height` tall: the last ones when `bottom` (following the
/// tail), the first ones otherwise. Each line's key comes along (a mouse press finds
/// its line by row).
pub fn fit(
    rows: &[RawRow],
    style: &RowStyle<'_>,
    height: usize,
    bottom: bool,
) -> Vec<(Option<LineKey>, Line<'static>)> {
    let mut out: Vec<(Option<LineKey>, Line<'static>)> = Vec::new();
    for row in rows {
        let key = row.key();
        out.extend(render_row(row, style).into_iter().map(|l| (key, l)));
    }
    if out.len() > height {
        if bottom {
            out.drain(..out.len() - height);
        } else {
            out.truncate(height);
        }
    }
    out
}

/// The plain text of lines for the clipboard or a file: sanitised (no escape sequence
/// of the job's can get out), with the time and the merged view's job label in front
/// when the view shows them.
pub fn plain_lines(rows: &[RawRow], jobs: Option<&JobLabels>, clock: Option<&WallClock>) -> String {
    let mut out = String::new();
    for row in rows {
        if let (Some(clock), Some(at)) = (clock, row.at) {
            out.push_str(&time_text(clock, at));
            out.push(' ');
        }
        if let Some(jobs) = jobs {
            let mark = match row.stream {
                Stream::Stdout => '|',
                Stream::Stderr => '!',
            };
            out.push_str(&format!(
                "{:<w$} {mark} ",
                jobs.label(row.job, row.stage),
                w = jobs.width
            ));
        }
        out.push_str(&sanitize::plain_text_full(&row.bytes));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style<'a>() -> RowStyle<'a> {
        RowStyle {
            tags: None,
            jobs: None,
            clock: None,
            query: None,
            current: None,
            dropped: 0,
            theme: Theme::default(),
            selection: None,
            hscroll: 0,
            wrap: false,
            width: 10,
        }
    }

    fn row(text: &[u8]) -> RawRow {
        RawRow {
            item: Item::Line(3),
            job: 0,
            stage: 0,
            stream: Stream::Stdout,
            at: Some(Instant::now()),
            bytes: text.to_vec(),
        }
    }

    fn text(line: &Line<'_>) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn highlight_splits_styled_spans() {
        let line = render_row(
            &row(b"ab\x1b[1mcd\x1b[0mef"),
            &RowStyle {
                query: Some("bcd"),
                ..style()
            },
        )
        .remove(0);
        let texts: Vec<&str> = line.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts, ["a", "b", "cd", "ef"]);
        assert_eq!(line.spans[1].style.bg, Some(Color::Yellow));
        assert!(line.spans[2].style.add_modifier.contains(Modifier::BOLD));
        assert_eq!(line.spans[2].style.bg, Some(Color::Yellow));
    }

    #[test]
    fn long_lines_wrap_or_scroll_sideways() {
        let long = row(b"0123456789abcdefghijKLMNO");
        let cut = render_row(&long, &style());
        assert_eq!(cut.iter().map(text).collect::<Vec<_>>(), ["0123456789"]);
        let scrolled = render_row(
            &long,
            &RowStyle {
                hscroll: 20,
                ..style()
            },
        );
        assert_eq!(text(&scrolled[0]), "KLMNO");
        let wrapped = render_row(
            &long,
            &RowStyle {
                wrap: true,
                ..style()
            },
        );
        assert_eq!(
            wrapped.iter().map(text).collect::<Vec<_>>(),
            ["0123456789", "abcdefghij", "KLMNO"]
        );
    }

    #[test]
    fn the_merged_view_labels_lines_by_job_and_stream() {
        let labels = JobLabels {
            names: vec!["web".into(), "enc".into()],
            pipelines: vec![false, true],
            width: 6,
        };
        let mut err = row(b"oops");
        err.job = 1;
        err.stage = 1;
        err.stream = Stream::Stderr;
        let lines = render_row(
            &err,
            &RowStyle {
                jobs: Some(&labels),
                width: 40,
                ..style()
            },
        );
        assert_eq!(text(&lines[0]), "enc[2] ! oops");
        let copied = plain_lines(&[row(b"\x1b[31mred\x1b[0m"), err], Some(&labels), None);
        assert_eq!(copied, "web    | red\nenc[2] ! oops\n");
    }
}
