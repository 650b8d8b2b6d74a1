//! The merged view (the "all" row): every job's lines in one list, in arrival order.
//!
//! Nothing is copied or stored for it: each job's buffer already keeps its lines in
//! arrival order with their arrival times (a few bytes per run of lines), so the merged
//! list is a k-way merge of the buffers by [`LineKey`] (arrival time, then job, then
//! sequence number), done for the rows on screen only. Each buffer is locked on its own
//! and briefly; a buffer is searched by binary search on its arrival times and read
//! only as far as its lines can still be among the ones wanted, so a frame of the merged
//! view of a thousand jobs reads about a line per job plus the rows shown.
//!
//! Positions are [`LineKey`]s, so a paused view stays put while lines arrive and old ones
//! are evicted (a key that is gone still orders correctly among the others).

use std::collections::BinaryHeap;

use crate::output::{LineRef, OutputBuffer, SharedBuffer, Stream};
use crate::supervisor::JobId;

use super::model::{LineKey, MergedView};
use super::pane::match_ranges;

/// Which lines are in the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Per job: shown.
    pub jobs: Vec<bool>,
    pub stream: Option<Stream>,
}

impl Filter {
    fn keeps_job(&self, job: JobId) -> bool {
        self.jobs.get(job).copied().unwrap_or(false)
    }

    fn keeps(&self, line: &LineRef<'_>) -> bool {
        self.stream.is_none_or(|s| s == line.stream)
    }
}

fn key(job: JobId, line: &LineRef<'_>) -> LineKey {
    LineKey {
        at: line.at,
        job,
        seq: line.seq,
    }
}

/// Index of the first retained line of `buf` (job `job`) whose key is at least `at`.
fn lower_bound(buf: &OutputBuffer, job: JobId, at: &LineKey) -> usize {
    let (mut lo, mut hi) = (0, buf.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match buf.get(mid) {
            Some(line) if key(job, &line) < *at => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// Up to `n` lines after `from` (strictly; from the first line with None), oldest first.
pub fn after(
    buffers: &[SharedBuffer],
    filter: &Filter,
    from: Option<LineKey>,
    n: usize,
) -> Vec<LineKey> {
    forward(buffers, filter, from, n, false)
}

/// Up to `n` lines from `from` on (`from` itself included), oldest first.
pub fn from(
    buffers: &[SharedBuffer],
    filter: &Filter,
    from: Option<LineKey>,
    n: usize,
) -> Vec<LineKey> {
    forward(buffers, filter, from, n, true)
}

fn forward(
    buffers: &[SharedBuffer],
    filter: &Filter,
    start: Option<LineKey>,
    n: usize,
    inclusive: bool,
) -> Vec<LineKey> {
    if n == 0 {
        return Vec::new();
    }
    // The n smallest keys so far; the largest of them on top.
    let mut best: BinaryHeap<LineKey> = BinaryHeap::with_capacity(n + 1);
    for (job, buffer) in buffers.iter().enumerate() {
        if !filter.keeps_job(job) {
            continue;
        }
        let buf = crate::output::lock(buffer);
        let skip = start.map_or(0, |k| lower_bound(&buf, job, &k));
        for line in buf.iter().skip(skip) {
            let k = key(job, &line);
            if let Some(start) = start
                && (k < start || (!inclusive && k == start))
            {
                continue;
            }
            if best.len() == n && best.peek().is_some_and(|top| k >= *top) {
                break; // this buffer's later lines are later still
            }
            if !filter.keeps(&line) {
                continue;
            }
            best.push(k);
            if best.len() > n {
                best.pop();
            }
        }
    }
    best.into_sorted_vec()
}

/// Up to `n` lines before `until` (strictly; before the end with None), newest first.
pub fn before(
    buffers: &[SharedBuffer],
    filter: &Filter,
    until: Option<LineKey>,
    n: usize,
) -> Vec<LineKey> {
    if n == 0 {
        return Vec::new();
    }
    // The n largest keys so far; the smallest of them on top.
    let mut best: BinaryHeap<std::cmp::Reverse<LineKey>> = BinaryHeap::with_capacity(n + 1);
    for (job, buffer) in buffers.iter().enumerate() {
        if !filter.keeps_job(job) {
            continue;
        }
        let buf = crate::output::lock(buffer);
        let end = until.map_or(buf.len(), |k| lower_bound(&buf, job, &k));
        for line in buf.iter().take(end).rev() {
            let k = key(job, &line);
            if until.is_some_and(|u| k >= u) {
                continue;
            }
            if best.len() == n && best.peek().is_some_and(|top| k <= top.0) {
                break;
            }
            if !filter.keeps(&line) {
                continue;
            }
            best.push(std::cmp::Reverse(k));
            if best.len() > n {
                best.pop();
            }
        }
    }
    let mut keys: Vec<LineKey> = best.into_iter().map(|r| r.0).collect();
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys
}

/// The lines shown in a pane of `height` rows (one row per line; wrapping only changes
/// how they are drawn), oldest first.
pub fn window(
    buffers: &[SharedBuffer],
    filter: &Filter,
    view: MergedView,
    height: usize,
) -> Vec<LineKey> {
    if view.follow || view.top.is_none() {
        let mut keys = before(buffers, filter, None, height);
        keys.reverse();
        return keys;
    }
    from(buffers, filter, view.top, height)
}

/// Every line the buffers hold (to count what arrived while paused).
pub fn total(buffers: &[SharedBuffer], filter: &Filter) -> u64 {
    buffers
        .iter()
        .enumerate()
        .filter(|(job, _)| filter.keeps_job(*job))
        .map(|(_, b)| crate::output::lock(b).total_lines())
        .sum()
}

fn pause(buffers: &[SharedBuffer], filter: &Filter, view: &mut MergedView, height: usize) {
    if view.follow {
        view.top = window(buffers, filter, *view, height).first().copied();
        view.follow = false;
        view.paused_total = total(buffers, filter);
    }
}

/// Scrolls up `n` lines; pauses follow. Does nothing when everything fits.
pub fn scroll_up(
    buffers: &[SharedBuffer],
    filter: &Filter,
    view: &mut MergedView,
    height: usize,
    n: usize,
) {
    if view.follow && before(buffers, filter, None, height + 1).len() <= height {
        return;
    }
    pause(buffers, filter, view, height);
    if let Some(top) = view.top
        && let Some(up) = before(buffers, filter, Some(top), n).last()
    {
        view.top = Some(*up);
    }
}

/// Scrolls down `n` lines; follows again once the end is in view.
pub fn scroll_down(
    buffers: &[SharedBuffer],
    filter: &Filter,
    view: &mut MergedView,
    height: usize,
    n: usize,
) {
    if view.follow {
        return;
    }
    let below = from(buffers, filter, view.top, n + height + 1);
    if below.len() <= n + height {
        view.follow = true;
        return;
    }
    view.top = below.get(n).copied().or(view.top);
}

/// The first line, paused.
pub fn scroll_to_top(
    buffers: &[SharedBuffer],
    filter: &Filter,
    view: &mut MergedView,
    height: usize,
) {
    pause(buffers, filter, view, height);
    view.top = after(buffers, filter, None, 1).first().copied();
}

/// Lines that arrived since follow was paused.
pub fn new_lines(buffers: &[SharedBuffer], filter: &Filter, view: MergedView) -> u64 {
    if view.follow {
        0
    } else {
        total(buffers, filter).saturating_sub(view.paused_total)
    }
}

/// The nearest line containing `query` after (`forward`) or before `from`; with no
/// `from`, the first (forward) or last line that matches. Searches every job shown.
pub fn find(
    buffers: &[SharedBuffer],
    filter: &Filter,
    query: &str,
    from: Option<LineKey>,
    forward: bool,
) -> Option<LineKey> {
    if query.is_empty() {
        return None;
    }
    let mut best: Option<LineKey> = None;
    for (job, buffer) in buffers.iter().enumerate() {
        if !filter.keeps_job(job) {
            continue;
        }
        let buf = crate::output::lock(buffer);
        let hit = |line: &LineRef<'_>| {
            filter.keeps(line)
                && !match_ranges(&crate::output::sanitize::plain_text(line.text), query).is_empty()
        };
        // Only lines that would beat the best hit of the jobs searched so far.
        let found = if forward {
            let start = from.map_or(0, |k| lower_bound(&buf, job, &k));
            buf.iter()
                .skip(start)
                .take_while(|l| best.is_none_or(|b| key(job, l) < b))
                .filter(|l| from.is_none_or(|f| key(job, l) > f))
                .find(hit)
        } else {
            let end = from.map_or(buf.len(), |k| lower_bound(&buf, job, &k));
            buf.iter()
                .take(end)
                .rev()
                .take_while(|l| best.is_none_or(|b| key(job, l) > b))
                .filter(|l| from.is_none_or(|f| key(job, l) < f))
                .find(hit)
        };
        if let Some(line) = found {
            best = Some(key(job, &line));
        }
    }
    best
}

/// Pauses the view and scrolls so `target` shows about a third of the way down (at the
/// top when lines wrap, so it cannot be pushed off the pane).
pub fn reveal(
    buffers: &[SharedBuffer],
    filter: &Filter,
    view: &mut MergedView,
    height: usize,
    target: LineKey,
    wrap: bool,
) {
    if !view.follow && window(buffers, filter, *view, height).contains(&target) {
        return;
    }
    pause(buffers, filter, view, height);
    view.top = Some(target);
    if height > 2 && !wrap {
        scroll_up(buffers, filter, view, height, height / 3);
    }
    // Near the end, a full last page rather than blank rows below it.
    let tail = before(buffers, filter, None, height);
    if let Some(last_page) = tail.last()
        && tail.len() == height
        && view.top.is_some_and(|t| t > *last_page)
    {
        view.top = Some(*last_page);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    /// Two jobs whose lines alternate in time: a0 b0 a1 b1 …
    fn two_jobs(lines: u64) -> (Vec<SharedBuffer>, Instant) {
        let t0 = Instant::now();
        let mut a = OutputBuffer::new(10_000, 1 << 20);
        let mut b = OutputBuffer::new(10_000, 1 << 20);
        for i in 0..lines {
            let at = t0 + Duration::from_millis(2 * i);
            a.push_line(0, Stream::Stdout, at, format!("a{i}").as_bytes());
            let stream = if i % 3 == 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            b.push_line(
                0,
                stream,
                at + Duration::from_millis(1),
                format!("b{i}").as_bytes(),
            );
        }
        (vec![Arc::new(Mutex::new(a)), Arc::new(Mutex::new(b))], t0)
    }

    fn all() -> Filter {
        Filter {
            jobs: vec![true, true],
            stream: None,
        }
    }

    fn texts(buffers: &[SharedBuffer], keys: &[LineKey]) -> Vec<String> {
        keys.iter()
            .map(|k| {
                let buf = crate::output::lock(&buffers[k.job]);
                String::from_utf8_lossy(buf.get_seq(k.seq).expect("line").text).into_owned()
            })
            .collect()
    }

    #[test]
    fn lines_of_two_jobs_merge_in_arrival_order() {
        let (buffers, _) = two_jobs(50);
        let tail = window(&buffers, &all(), MergedView::default(), 4);
        assert_eq!(texts(&buffers, &tail), ["a48", "b48", "a49", "b49"]);
        let head = after(&buffers, &all(), None, 5);
        assert_eq!(texts(&buffers, &head), ["a0", "b0", "a1", "b1", "a2"]);
        let next = after(&buffers, &all(), head.last().copied(), 2);
        assert_eq!(texts(&buffers, &next), ["b2", "a3"]);
        let back = before(&buffers, &all(), Some(head[4]), 3);
        assert_eq!(texts(&buffers, &back), ["b1", "a1", "b0"]);
    }

    #[test]
    fn filters_by_job_and_stream() {
        let (buffers, _) = two_jobs(10);
        let only_b = Filter {
            jobs: vec![false, true],
            stream: None,
        };
        let keys = after(&buffers, &only_b, None, 3);
        assert_eq!(texts(&buffers, &keys), ["b0", "b1", "b2"]);
        let stderr = Filter {
            jobs: vec![true, true],
            stream: Some(Stream::Stderr),
        };
        let keys = after(&buffers, &stderr, None, 10);
        assert_eq!(texts(&buffers, &keys), ["b0", "b3", "b6", "b9"]);
        assert_eq!(total(&buffers, &only_b), 10);
    }

    #[test]
    fn scrolling_pausing_and_following_again() {
        let (buffers, _) = two_jobs(20);
        let mut view = MergedView::default();
        scroll_up(&buffers, &all(), &mut view, 4, 3);
        assert!(!view.follow);
        let shown = window(&buffers, &all(), view, 4);
        assert_eq!(texts(&buffers, &shown), ["b16", "a17", "b17", "a18"]);
        scroll_down(&buffers, &all(), &mut view, 4, 1);
        assert_eq!(
            texts(&buffers, &window(&buffers, &all(), view, 4))[0],
            "a17"
        );
        scroll_down(&buffers, &all(), &mut view, 4, 10);
        assert!(view.follow);
        scroll_to_top(&buffers, &all(), &mut view, 4);
        assert_eq!(texts(&buffers, &window(&buffers, &all(), view, 4))[0], "a0");
    }

    #[test]
    fn search_goes_across_jobs_both_ways() {
        let (buffers, _) = two_jobs(30);
        let f = all();
        let first = find(&buffers, &f, "1", None, true).expect("a match");
        assert_eq!(texts(&buffers, &[first]), ["a1"]);
        let next = find(&buffers, &f, "1", Some(first), true).expect("next");
        assert_eq!(texts(&buffers, &[next]), ["b1"]);
        let last = find(&buffers, &f, "1", None, false).expect("last");
        assert_eq!(texts(&buffers, &[last]), ["b21"]);
        let prev = find(&buffers, &f, "b2", Some(last), false).expect("prev");
        assert_eq!(texts(&buffers, &[prev]), ["b20"]);
        assert!(find(&buffers, &f, "zzz", None, true).is_none());
    }
}
