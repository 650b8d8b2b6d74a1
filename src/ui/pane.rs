//! The output pane's virtual list and how it moves: which rows are visible, scrolling,
//! follow, and search. Pure functions of a job's [`OutputBuffer`] and its [`OutputView`];
//! rendering the visible rows is `output.rs`.
//!
//! Positions are absolute sequence numbers, so a paused view stays put while new lines
//! arrive and old ones are evicted. A pane shows a virtual list: an optional "older lines
//! dropped" marker, the retained lines (of one stage, when a stage row is selected), then
//! the partial lines still being assembled (e.g. a `\r` progress bar).

use memchr::memmem;

use crate::output::sanitize;
use crate::output::{LineRef, OutputBuffer, Stream};

use super::model::OutputView;

/// Which of a job's lines the pane shows: one stage's (a stage row is selected), one
/// stream's (`e`), or all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub stage: Option<usize>,
    pub stream: Option<Stream>,
}

impl Filter {
    /// Only `stage`'s lines (None: every stage's), both streams.
    pub fn stage(stage: Option<usize>) -> Filter {
        Filter {
            stage,
            stream: None,
        }
    }

    fn keeps(&self, stage: usize, stream: Stream) -> bool {
        self.stage.is_none_or(|s| s == stage) && self.stream.is_none_or(|s| s == stream)
    }
}

/// One row of the output pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// "N older lines dropped" (shown above the first retained line).
    Dropped,
    Line(u64),
    /// The `n`-th partial line (in [`OutputBuffer::partials`] order).
    Partial(usize),
}

fn keep_line(line: &LineRef<'_>, filter: Filter) -> bool {
    filter.keeps(line.stage, line.stream)
}

fn partial_indices(buf: &OutputBuffer, filter: Filter) -> Vec<usize> {
    buf.partials()
        .enumerate()
        .filter(|(_, (stage, stream, _))| filter.keeps(*stage, *stream))
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
pub fn window(buf: &OutputBuffer, filter: Filter, view: OutputView, height: usize) -> Vec<Item> {
    let mut items = Vec::with_capacity(height);
    if height == 0 {
        return items;
    }
    if view.follow {
        for p in partial_indices(buf, filter).into_iter().rev() {
            if items.len() == height {
                break;
            }
            items.push(Item::Partial(p));
        }
        for line in buf.iter().rev() {
            if items.len() == height {
                break;
            }
            if keep_line(&line, filter) {
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
        if keep_line(&line, filter) {
            items.push(Item::Line(line.seq));
        }
    }
    for p in partial_indices(buf, filter) {
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
fn current_top(buf: &OutputBuffer, filter: Filter, view: OutputView, height: usize) -> u64 {
    if !view.follow {
        return view.top;
    }
    match window(buf, filter, view, height).first() {
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
    filter: Filter,
    view: &mut OutputView,
    height: usize,
    n: usize,
) {
    if view.follow && window(buf, filter, *view, height + 1).len() <= height {
        return; // nothing above the visible rows
    }
    let top = current_top(buf, filter, *view, height);
    pause(buf, view);
    let first = buf.first_seq();
    if top < first {
        view.top = top;
        return;
    }
    let mut moved = 0;
    let mut new_top = top;
    for line in buf.iter().take(index_of(buf, top)).rev() {
        if keep_line(&line, filter) {
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
    filter: Filter,
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
        .filter(|l| keep_line(l, filter))
        .map(|l| Some(l.seq));
    let mut positions = marker.then_some(None).into_iter().chain(lines);
    for _ in 0..n {
        if positions.next().is_none() {
            break;
        }
    }
    match positions.next() {
        Some(position) => {
            let remaining = 1 + positions.take(height).count() + partial_indices(buf, filter).len();
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
    filter: Filter,
    query: &str,
    from: Option<u64>,
    forward: bool,
) -> Option<u64> {
    if query.is_empty() {
        return None;
    }
    let hit = |line: &LineRef<'_>| keep_line(line, filter) && line_matches(line, query);
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

/// Pauses the view and scrolls so `seq` shows about a third of the way down (at the
/// top when lines wrap, so it cannot be pushed off the pane).
pub fn reveal(
    buf: &OutputBuffer,
    filter: Filter,
    view: &mut OutputView,
    height: usize,
    seq: u64,
    wrap: bool,
) {
    if !view.follow && window(buf, filter, *view, height).contains(&Item::Line(seq)) {
        return; // already on screen: do not jump around
    }
    pause(buf, view);
    view.top = seq;
    if height > 2 && !wrap {
        scroll_up(buf, filter, view, height, height / 3);
    }
    // Near the end, show a full last page rather than blank rows below it.
    let tail = OutputView {
        follow: true,
        ..*view
    };
    view.top = view.top.min(current_top(buf, filter, tail, height));
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
        let items = window(&buf, Filter::default(), OutputView::default(), 3);
        assert_eq!(seqs(&items), [Some(7), Some(8), Some(9)]);
        let items = window(&buf, Filter::default(), OutputView::default(), 6);
        assert_eq!(items[0], Item::Dropped);
        assert_eq!(items.len(), 5);
    }

    #[test]
    fn scrolling_pauses_counts_and_resumes() {
        let mut buf = buffer(20, 100);
        let mut view = OutputView::default();
        scroll_up(&buf, Filter::default(), &mut view, 5, 3);
        assert!(!view.follow);
        assert_eq!(view.top, 12);
        buf.push_line(0, Stream::Stdout, Instant::now(), b"more");
        assert_eq!(new_lines(&buf, view), 1);
        // The paused view does not move when lines arrive.
        assert_eq!(window(&buf, Filter::default(), view, 5)[0], Item::Line(12));
        scroll_down(&buf, Filter::default(), &mut view, 5, 2);
        assert_eq!(view.top, 14);
        scroll_down(&buf, Filter::default(), &mut view, 5, 10);
        assert!(view.follow);
    }

    #[test]
    fn stage_filter_and_top() {
        let buf = buffer(20, 10);
        let view = OutputView::default();
        let items = window(&buf, Filter::stage(Some(1)), view, 3);
        assert_eq!(seqs(&items), [Some(15), Some(17), Some(19)]);
        let mut view = OutputView::default();
        scroll_to_top(&buf, &mut view);
        let items = window(&buf, Filter::stage(Some(0)), view, 3);
        assert_eq!(seqs(&items), [None, Some(10), Some(12)]);
    }

    #[test]
    fn nothing_to_scroll_keeps_following() {
        let buf = buffer(3, 100);
        let mut view = OutputView::default();
        scroll_up(&buf, Filter::default(), &mut view, 5, 1);
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
        assert_eq!(
            find(&buf, Filter::default(), "error", Some(0), true),
            Some(5)
        );
        assert_eq!(find(&buf, Filter::default(), "Error", None, true), None);
        assert_eq!(
            find(&buf, Filter::default(), "line 1", Some(5), false),
            Some(1)
        );
        assert_eq!(find(&buf, Filter::default(), "line", Some(4), true), None);
        assert_eq!(find(&buf, Filter::default(), "line", None, true), Some(0));
        assert_eq!(find(&buf, Filter::default(), "line", None, false), Some(4));
        assert_eq!(match_ranges("aXa xa", "xa"), [(1, 3), (4, 6)]);
    }

    #[test]
    fn stream_filter_keeps_one_stream() {
        let mut buf = buffer(6, 100);
        buf.push_line(1, Stream::Stderr, Instant::now(), b"oops");
        buf.push_chunk(0, Stream::Stderr, Instant::now(), b"partial err");
        let stderr = Filter {
            stage: None,
            stream: Some(Stream::Stderr),
        };
        let items = window(&buf, stderr, OutputView::default(), 5);
        assert_eq!(items, [Item::Line(6), Item::Partial(0)]);
        let stdout = Filter {
            stage: None,
            stream: Some(Stream::Stdout),
        };
        assert_eq!(
            window(&buf, stdout, OutputView::default(), 2),
            [Item::Line(4), Item::Line(5)]
        );
        assert_eq!(find(&buf, stderr, "line", None, true), None);
    }
}
