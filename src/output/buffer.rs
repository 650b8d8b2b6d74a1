//! One job's bounded ring of output lines.
//!
//! Layout: line text lives in a queue of large byte blocks (each line contiguous inside one
//! block, appended at the back, blocks recycled from the front once every line in them has
//! been evicted) and a `VecDeque` of small fixed-size metadata records. Pushing a line is a
//! `memcpy` plus a 32-byte record; there is no allocation per line.

use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{LineSplitter, MAX_LINE_BYTES, Stream};

/// A buffer shared between the drain tasks that fill it and the UI that reads it.
///
/// A std `Mutex`: the lock is only ever held briefly and never across an `.await`.
pub type SharedBuffer = Arc<Mutex<OutputBuffer>>;

/// Largest text block; a block is never smaller than the line stored in it.
const MAX_BLOCK_BYTES: usize = 256 * 1024;
/// Smallest text block (for tiny byte bounds).
const MIN_BLOCK_BYTES: usize = 4 * 1024;

/// One retained line, borrowed from an [`OutputBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    /// Absolute sequence number: 0-based position in push order over the buffer's life.
    pub seq: u64,
    /// Pipeline stage the line came from.
    pub stage: usize,
    pub stream: Stream,
    /// When the chunk containing the line's end arrived.
    pub at: Instant,
    /// Raw line bytes without the terminator; untrusted (see [`super::sanitize`]).
    pub text: &'a [u8],
}

/// Per-line record, 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Meta {
    /// Nanoseconds relative to `OutputBuffer::epoch` (may be negative).
    at: i64,
    /// Which block holds the text (wrapping id, see `Store::front_block`).
    block: u32,
    start: u32,
    len: u32,
    stage: u32,
    stream: Stream,
}

/// The retained lines and their text; separate from the splitters so both can be borrowed
/// mutably at once.
struct Store {
    metas: VecDeque<Meta>,
    blocks: VecDeque<Vec<u8>>,
    /// Id of `blocks[0]`; block `id` lives at index `id - front_block` (wrapping).
    front_block: u32,
    /// One emptied block kept for reuse.
    spare: Option<Vec<u8>>,
    block_size: usize,
    max_lines: usize,
    max_bytes: usize,
    bytes: usize,
    total: u64,
    dropped: u64,
}

impl Store {
    #[inline]
    fn push(&mut self, stage: u32, stream: Stream, at: i64, text: &[u8]) {
        let fits = self
            .blocks
            .back()
            .is_some_and(|b| b.capacity() - b.len() >= text.len());
        if !fits {
            self.new_block(text.len());
        }
        let back_id = self.back_block_id();
        let Some(block) = self.blocks.back_mut() else {
            return; // unreachable: `new_block` pushed one
        };
        let start = block.len();
        block.extend_from_slice(text);
        self.metas.push_back(Meta {
            at,
            block: back_id,
            // Blocks are at most max(MAX_BLOCK_BYTES, MAX_LINE_BYTES) long, so these fit.
            start: u32::try_from(start).unwrap_or(u32::MAX),
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
            stage,
            stream,
        });
        self.bytes += text.len();
        self.total += 1;
        if self.metas.len() > self.max_lines || self.bytes > self.max_bytes {
            self.evict();
        }
    }

    fn back_block_id(&self) -> u32 {
        let n = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX);
        self.front_block.wrapping_add(n).wrapping_sub(1)
    }

    #[cold]
    fn new_block(&mut self, need: usize) {
        let block = match self.spare.take() {
            Some(b) if b.capacity() >= need => b,
            _ => Vec::with_capacity(self.block_size.max(need)),
        };
        self.blocks.push_back(block);
    }

    /// Drop the oldest lines until within bounds; the newest line is always kept.
    fn evict(&mut self) {
        while self.metas.len() > self.max_lines
            || (self.bytes > self.max_bytes && self.metas.len() > 1)
        {
            let Some(m) = self.metas.pop_front() else {
                break;
            };
            self.bytes -= m.len as usize;
            self.dropped += 1;
        }
        // Release blocks that no retained line points into.
        let keep_from = match self.metas.front() {
            Some(m) => m.block,
            None => self.back_block_id(),
        };
        while self.front_block != keep_from && self.blocks.len() > 1 {
            if let Some(mut b) = self.blocks.pop_front() {
                b.clear();
                if self
                    .spare
                    .as_ref()
                    .is_none_or(|s| s.capacity() < b.capacity())
                {
                    self.spare = Some(b);
                }
            }
            self.front_block = self.front_block.wrapping_add(1);
        }
    }

    /// `skipped` lines arrived and were dropped at once, and so is every retained line:
    /// a chunk with more lines than the buffer keeps replaces all of it.
    fn drop_all_and_skip(&mut self, skipped: u64) {
        self.total += skipped;
        self.dropped += skipped + self.metas.len() as u64;
        self.clear();
    }

    fn clear(&mut self) {
        self.metas.clear();
        self.bytes = 0;
        // Keep one (emptied) block; the rest goes.
        while self.blocks.len() > 1 {
            self.blocks.pop_front();
            self.front_block = self.front_block.wrapping_add(1);
        }
        if let Some(b) = self.blocks.front_mut() {
            b.clear();
        }
    }

    #[inline]
    fn text(&self, m: &Meta) -> &[u8] {
        let idx = m.block.wrapping_sub(self.front_block) as usize;
        let start = m.start as usize;
        self.blocks
            .get(idx)
            .and_then(|b| b.get(start..start.saturating_add(m.len as usize)))
            .unwrap_or(&[])
    }
}

struct SplitterEntry {
    stage: usize,
    stream: Stream,
    splitter: LineSplitter,
}

/// One job's bounded ring of output lines: text in a few large recycled blocks plus a
/// 32-byte record per line, so pushing a line never allocates per line.
pub struct OutputBuffer {
    store: Store,
    splitters: Vec<SplitterEntry>,
    /// Reference point for the compact per-line timestamps.
    epoch: Instant,
    received: [u64; 2],
}

impl fmt::Debug for OutputBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputBuffer")
            .field("len", &self.len())
            .field("first_seq", &self.first_seq())
            .field("total_lines", &self.total_lines())
            .field("dropped", &self.dropped())
            .field("bytes_stored", &self.bytes_stored())
            .field("max_lines", &self.store.max_lines)
            .field("max_bytes", &self.store.max_bytes)
            .finish_non_exhaustive()
    }
}

impl OutputBuffer {
    /// A buffer keeping at most `max_lines` lines (at least 1) and about `max_bytes` bytes of
    /// line text. The newest line is always kept, so the text may exceed `max_bytes` by
    /// less than one line.
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            store: Store {
                metas: VecDeque::new(),
                blocks: VecDeque::new(),
                front_block: 0,
                spare: None,
                block_size: (max_bytes / 8).clamp(MIN_BLOCK_BYTES, MAX_BLOCK_BYTES),
                max_lines: max_lines.max(1),
                max_bytes,
                bytes: 0,
                total: 0,
                dropped: 0,
            },
            splitters: Vec::new(),
            epoch: Instant::now(),
            received: [0; 2],
        }
    }

    /// Feed a raw chunk read from `stream` of pipeline `stage`; complete lines are appended
    /// with arrival time `at`, an incomplete tail waits for the next chunk.
    pub fn push_chunk(&mut self, stage: usize, stream: Stream, at: Instant, chunk: &[u8]) {
        self.received[stream_index(stream)] += chunk.len() as u64;
        let at = self.encode_at(at);
        let stage32 = encode_stage(stage);
        let idx = self.splitter_index(stage, stream);
        let store = &mut self.store;
        let Some(entry) = self.splitters.get_mut(idx) else {
            return;
        };
        // A flood: of a chunk holding more lines than the buffer keeps, only the last
        // `max_lines` can survive. The earlier ones are split (so they are counted exactly)
        // but never stored, which would only evict them again.
        let chunk = match memchr::memrchr_iter(b'\n', chunk).nth(store.max_lines) {
            Some(cut) => {
                let (early, recent) = chunk.split_at(cut + 1);
                let mut skipped = 0u64;
                entry.splitter.feed(early, |_| skipped += 1);
                store.drop_all_and_skip(skipped);
                recent
            }
            None => chunk,
        };
        entry
            .splitter
            .feed(chunk, |line| store.push(stage32, stream, at, line));
    }

    /// End of `stream` of `stage`: its incomplete last line (if any) becomes a line.
    pub fn finish_stream(&mut self, stage: usize, stream: Stream, at: Instant) {
        let Some(idx) = self
            .splitters
            .iter()
            .position(|e| e.stage == stage && e.stream == stream)
        else {
            return;
        };
        let mut entry = self.splitters.swap_remove(idx);
        let at = self.encode_at(at);
        let store = &mut self.store;
        entry
            .splitter
            .finish(|line| store.push(encode_stage(stage), stream, at, line));
    }

    /// Append one complete line (no terminator expected; a `\n` inside is kept as text).
    /// A line longer than [`MAX_LINE_BYTES`] is stored in pieces of that size.
    pub fn push_line(&mut self, stage: usize, stream: Stream, at: Instant, line: &[u8]) {
        let at = self.encode_at(at);
        let stage = encode_stage(stage);
        if line.len() <= MAX_LINE_BYTES {
            self.store.push(stage, stream, at, line);
        } else {
            for piece in line.chunks(MAX_LINE_BYTES) {
                self.store.push(stage, stream, at, piece);
            }
        }
    }

    /// Lines currently being assembled (no newline yet), e.g. a progress bar:
    /// `(stage, stream, bytes so far)`. Empty tails are skipped.
    pub fn partials(&self) -> impl Iterator<Item = (usize, Stream, &[u8])> + '_ {
        self.splitters
            .iter()
            .filter(|e| !e.splitter.partial().is_empty())
            .map(|e| (e.stage, e.stream, e.splitter.partial()))
    }

    /// Remove all retained lines. Not counted as dropped; sequence numbers keep increasing.
    /// Incomplete lines still being assembled are kept.
    pub fn clear(&mut self) {
        self.store.clear();
    }

    /// Number of retained lines.
    pub fn len(&self) -> usize {
        self.store.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.metas.is_empty()
    }

    /// Complete lines ever pushed (retained, evicted and cleared).
    pub fn total_lines(&self) -> u64 {
        self.store.total
    }

    /// Lines evicted to stay within the bounds.
    pub fn dropped(&self) -> u64 {
        self.store.dropped
    }

    /// Sequence number of the oldest retained line (equals `total_lines()` when empty).
    pub fn first_seq(&self) -> u64 {
        self.store.total - self.store.metas.len() as u64
    }

    /// Bytes of retained line text.
    pub fn bytes_stored(&self) -> usize {
        self.store.bytes
    }

    /// Raw bytes fed through [`push_chunk`](Self::push_chunk) for `stream` (all stages).
    pub fn bytes_received(&self, stream: Stream) -> u64 {
        self.received[stream_index(stream)]
    }

    /// The line bound given to [`new`](Self::new) (at least 1).
    pub fn max_lines(&self) -> usize {
        self.store.max_lines
    }

    /// The byte bound given to [`new`](Self::new).
    pub fn max_bytes(&self) -> usize {
        self.store.max_bytes
    }

    /// The `idx`-th retained line, 0 being the oldest.
    pub fn get(&self, idx: usize) -> Option<LineRef<'_>> {
        let m = self.store.metas.get(idx)?;
        Some(self.line_ref(idx, m))
    }

    /// The line with absolute sequence number `seq`, if still retained.
    pub fn get_seq(&self, seq: u64) -> Option<LineRef<'_>> {
        let idx = usize::try_from(seq.checked_sub(self.first_seq())?).ok()?;
        self.get(idx)
    }

    /// All retained lines, oldest first (`.rev()` for newest first; `skip`/`nth` are O(1)).
    pub fn iter(&self) -> LineIter<'_> {
        LineIter {
            buf: self,
            front: 0,
            back: self.len(),
        }
    }

    fn line_ref(&self, idx: usize, m: &Meta) -> LineRef<'_> {
        LineRef {
            seq: self.first_seq() + idx as u64,
            stage: m.stage as usize,
            stream: m.stream,
            at: self.decode_at(m.at),
            text: self.store.text(m),
        }
    }

    fn splitter_index(&mut self, stage: usize, stream: Stream) -> usize {
        if let Some(i) = self
            .splitters
            .iter()
            .position(|e| e.stage == stage && e.stream == stream)
        {
            return i;
        }
        self.splitters.push(SplitterEntry {
            stage,
            stream,
            splitter: LineSplitter::new(MAX_LINE_BYTES),
        });
        self.splitters.len() - 1
    }

    fn encode_at(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => {
                let d = self.epoch.saturating_duration_since(at);
                i64::try_from(d.as_nanos()).map_or(i64::MIN, |n| -n)
            }
        }
    }

    fn decode_at(&self, nanos: i64) -> Instant {
        let d = Duration::from_nanos(nanos.unsigned_abs());
        let t = if nanos >= 0 {
            self.epoch.checked_add(d)
        } else {
            self.epoch.checked_sub(d)
        };
        t.unwrap_or(self.epoch)
    }

    /// Approximate heap usage, for the memory-bound tests.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let blocks: usize = self.store.blocks.iter().map(Vec::capacity).sum();
        let spare = self.store.spare.as_ref().map_or(0, Vec::capacity);
        let partials: usize = self
            .splitters
            .iter()
            .map(|e| e.splitter.partial().len())
            .sum();
        blocks + spare + partials + self.store.metas.capacity() * std::mem::size_of::<Meta>()
    }
}

/// Stages are stored as `u32`; absurdly large stage ids saturate.
fn encode_stage(stage: usize) -> u32 {
    u32::try_from(stage).unwrap_or(u32::MAX)
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// Iterator over retained lines; see [`OutputBuffer::iter`].
#[derive(Debug, Clone)]
pub struct LineIter<'a> {
    buf: &'a OutputBuffer,
    front: usize,
    back: usize,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = LineRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let line = self.buf.get(self.front);
        self.front += 1;
        line
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back.saturating_sub(self.front);
        (n, Some(n))
    }

    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.front = self.front.saturating_add(n).min(self.back);
        self.next()
    }
}

impl DoubleEndedIterator for LineIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.buf.get(self.back)
    }

    fn nth_back(&mut self, n: usize) -> Option<Self::Item> {
        self.back = self.back.saturating_sub(n).max(self.front);
        self.next_back()
    }
}

impl ExactSizeIterator for LineIter<'_> {}
impl FusedIterator for LineIter<'_> {}

impl<'a> IntoIterator for &'a OutputBuffer {
    type Item = LineRef<'a>;
    type IntoIter = LineIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::DEFAULT_MAX_BUFFER_BYTES;
    use crate::output::testutil::seq_output;

    fn texts(buf: &OutputBuffer) -> Vec<String> {
        buf.iter()
            .map(|l| String::from_utf8_lossy(l.text).into_owned())
            .collect()
    }

    #[test]
    fn meta_is_compact() {
        assert_eq!(std::mem::size_of::<Meta>(), 32);
    }

    #[test]
    fn flood_chunk_keeps_what_line_by_line_keeps() {
        let t = Instant::now();
        let data: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .chain(b"tail".iter().copied())
            .collect();
        let mut big = OutputBuffer::new(100, 1 << 20);
        let mut small = OutputBuffer::new(100, 1 << 20);
        for b in [&mut big, &mut small] {
            b.push_line(0, Stream::Stdout, t, b"before");
            // A partial line that the flood completes.
            b.push_chunk(0, Stream::Stdout, t, b"par");
        }
        big.push_chunk(0, Stream::Stdout, t, &data);
        for piece in data.chunks(7) {
            small.push_chunk(0, Stream::Stdout, t, piece);
        }
        assert_eq!(texts(&big), texts(&small));
        assert_eq!(texts(&big).first().map(String::as_str), Some("4900"));
        let figures = |b: &OutputBuffer| (b.total_lines(), b.dropped(), b.first_seq(), b.len());
        assert_eq!(figures(&big), figures(&small));
        assert_eq!(figures(&big), (5001, 4901, 4901, 100));
        let partial = |b: &OutputBuffer| b.partials().map(|p| p.2.to_vec()).collect::<Vec<_>>();
        assert_eq!(partial(&big), vec![b"tail".to_vec()]);
        assert_eq!(partial(&big), partial(&small));
    }

    #[test]
    fn push_chunk_splits_and_tags() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let mut b = OutputBuffer::new(100, 1 << 20);
        b.push_chunk(0, Stream::Stdout, t0, b"hello\nwor");
        b.push_chunk(0, Stream::Stdout, t1, b"ld\r\n");
        assert_eq!(texts(&b), ["hello", "world"]);
        let l = b.get(1).expect("line");
        assert_eq!((l.seq, l.stage, l.stream, l.at), (1, 0, Stream::Stdout, t1));
        assert_eq!(b.get(0).expect("line").at, t0);
        assert_eq!(b.bytes_received(Stream::Stdout), 13);
        assert_eq!(b.bytes_received(Stream::Stderr), 0);
        assert_eq!(b.bytes_stored(), 10);
        assert!(b.get(2).is_none());
    }

    #[test]
    fn timestamps_before_creation_round_trip() {
        let early = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let mut b = OutputBuffer::new(10, 1000);
        b.push_line(0, Stream::Stdout, early, b"x");
        assert_eq!(b.get(0).expect("line").at, early);
    }

    #[test]
    fn interleaved_stages_and_streams_keep_order() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(100, 1 << 20);
        b.push_chunk(0, Stream::Stdout, t, b"a1\na");
        b.push_chunk(0, Stream::Stderr, t, b"e1\ne");
        b.push_chunk(1, Stream::Stdout, t, b"b1\nb");
        b.push_chunk(0, Stream::Stdout, t, b"2\n");
        b.push_chunk(1, Stream::Stdout, t, b"2\n");
        b.push_chunk(0, Stream::Stderr, t, b"2\n");
        let got: Vec<_> = b
            .iter()
            .map(|l| {
                (
                    l.stage,
                    l.stream,
                    String::from_utf8_lossy(l.text).into_owned(),
                )
            })
            .collect();
        let want = [
            (0, Stream::Stdout, "a1"),
            (0, Stream::Stderr, "e1"),
            (1, Stream::Stdout, "b1"),
            (0, Stream::Stdout, "a2"),
            (1, Stream::Stdout, "b2"),
            (0, Stream::Stderr, "e2"),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0, g.1, g.2.as_str()), w);
        }
        let seqs: Vec<u64> = b.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn partials_and_finish_stream() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(100, 1 << 20);
        b.push_chunk(0, Stream::Stdout, t, b"done\n[###   ] 50%");
        b.push_chunk(2, Stream::Stderr, t, b"warn");
        b.push_chunk(1, Stream::Stdout, t, b"complete\n");
        let mut p: Vec<_> = b.partials().map(|(s, st, x)| (s, st, x.to_vec())).collect();
        p.sort_by_key(|x| x.0);
        assert_eq!(
            p,
            [
                (0, Stream::Stdout, b"[###   ] 50%".to_vec()),
                (2, Stream::Stderr, b"warn".to_vec())
            ]
        );
        b.finish_stream(0, Stream::Stdout, t);
        b.finish_stream(2, Stream::Stderr, t);
        b.finish_stream(5, Stream::Stderr, t); // unknown: no-op
        assert_eq!(b.partials().count(), 0);
        assert_eq!(texts(&b), ["done", "complete", "[###   ] 50%", "warn"]);
        // A finished stream can start again (e.g. a restarted job).
        b.push_chunk(0, Stream::Stdout, t, b"again\n");
        assert_eq!(b.total_lines(), 5);
    }

    #[test]
    fn line_bound_evicts_oldest() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(10_000, usize::MAX);
        let mut chunk = Vec::new();
        for i in 0..1_000_000u32 {
            chunk.extend_from_slice(i.to_string().as_bytes());
            chunk.push(b'\n');
            if chunk.len() > 60_000 {
                b.push_chunk(0, Stream::Stdout, t, &chunk);
                chunk.clear();
            }
        }
        b.push_chunk(0, Stream::Stdout, t, &chunk);
        assert_eq!(b.len(), 10_000);
        assert_eq!(b.dropped(), 990_000);
        assert_eq!(b.total_lines(), 1_000_000);
        assert_eq!(b.first_seq(), 990_000);
        let first = b.get(0).expect("first");
        assert_eq!((first.seq, first.text), (990_000, &b"990000"[..]));
        let last = b.iter().next_back().expect("last");
        assert_eq!((last.seq, last.text), (999_999, &b"999999"[..]));
        assert_eq!(b.get_seq(995_000).expect("seq").text, b"995000");
        assert!(b.get_seq(10).is_none());
        assert!(b.get_seq(1_000_000).is_none());
        // Only blocks holding retained lines are kept.
        assert!(b.heap_bytes() < 10_000 * 64 + 4 * MAX_BLOCK_BYTES);
    }

    #[test]
    fn byte_bound_evicts_oldest() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(1000, 100);
        for i in 0..50 {
            b.push_line(0, Stream::Stdout, t, format!("line-{i:04}").as_bytes()); // 9 bytes
        }
        assert_eq!(b.len(), 11);
        assert!(b.bytes_stored() <= 100);
        assert_eq!(b.dropped(), 39);
        assert_eq!(b.get(0).expect("line").text, b"line-0039");
        // A single line larger than the bound is kept alone.
        b.push_line(0, Stream::Stdout, t, &[b'x'; 500]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.bytes_stored(), 500);
        b.push_line(0, Stream::Stdout, t, b"y");
        assert_eq!(texts(&b), ["y"]);
    }

    #[test]
    fn huge_stream_without_newline_stays_bounded() {
        let t = Instant::now();
        let max_bytes = DEFAULT_MAX_BUFFER_BYTES;
        let mut b = OutputBuffer::new(100_000, max_bytes);
        let chunk = vec![b'z'; 64 * 1024];
        let total: usize = 256 << 20;
        let mut peak = 0;
        for _ in 0..total / chunk.len() {
            b.push_chunk(0, Stream::Stdout, t, &chunk);
            assert!(b.bytes_stored() <= max_bytes + MAX_LINE_BYTES);
            peak = peak.max(b.heap_bytes());
        }
        b.finish_stream(0, Stream::Stdout, t);
        assert!(b.iter().all(|l| l.text.len() <= MAX_LINE_BYTES));
        assert_eq!(b.bytes_received(Stream::Stdout), total as u64);
        assert_eq!(
            (b.dropped() + b.len() as u64) * MAX_LINE_BYTES as u64,
            total as u64
        );
        assert!(
            peak <= max_bytes + max_bytes / 2,
            "peak heap {peak} for a {max_bytes} byte bound"
        );
    }

    #[test]
    fn push_line_caps_long_lines() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(100, usize::MAX);
        b.push_line(3, Stream::Stderr, t, &vec![b'q'; MAX_LINE_BYTES * 2 + 1]);
        let lens: Vec<usize> = b.iter().map(|l| l.text.len()).collect();
        assert_eq!(lens, [MAX_LINE_BYTES, MAX_LINE_BYTES, 1]);
        assert!(b.iter().all(|l| l.stage == 3 && l.stream == Stream::Stderr));
    }

    #[test]
    fn clear_keeps_seq_monotonic() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(100, 1 << 20);
        b.push_chunk(0, Stream::Stdout, t, b"a\nb\npart");
        b.clear();
        assert!(b.is_empty());
        assert_eq!((b.len(), b.bytes_stored(), b.dropped()), (0, 0, 0));
        assert_eq!((b.total_lines(), b.first_seq()), (2, 2));
        assert!(b.get(0).is_none());
        assert_eq!(b.iter().count(), 0);
        b.push_chunk(0, Stream::Stdout, t, b"ial\nc\n");
        assert_eq!(texts(&b), ["partial", "c"]);
        assert_eq!(b.get(0).expect("line").seq, 2);
        assert_eq!(b.first_seq(), 2);
    }

    #[test]
    fn iterator_is_exact_and_double_ended() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(5, 1 << 20);
        for i in 0..8 {
            b.push_line(0, Stream::Stdout, t, format!("{i}").as_bytes());
        }
        let it = b.iter();
        assert_eq!(it.len(), 5);
        assert_eq!(texts(&b), ["3", "4", "5", "6", "7"]);
        let rev: Vec<u64> = b.iter().rev().map(|l| l.seq).collect();
        assert_eq!(rev, [7, 6, 5, 4, 3]);
        let mut it = b.iter();
        assert_eq!(it.nth(3).map(|l| l.seq), Some(6));
        assert_eq!(it.len(), 1);
        assert_eq!(it.nth_back(5).map(|l| l.seq), None);
        assert_eq!(it.next(), None);
        let tail: Vec<u64> = b.iter().skip(3).map(|l| l.seq).collect();
        assert_eq!(tail, [6, 7]);
        let mut it = b.iter();
        assert_eq!(it.nth(100), None);
        assert_eq!(it.next_back(), None);
    }

    #[test]
    fn zero_bounds_do_not_panic() {
        let t = Instant::now();
        let mut b = OutputBuffer::new(0, 0);
        b.push_chunk(0, Stream::Stdout, t, b"a\nb\n\n");
        assert_eq!(b.len(), 1);
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.get(0).expect("line").text, b"");
        b.push_line(usize::MAX, Stream::Stdout, t, b"big stage");
        assert_eq!(b.get(0).expect("line").stage, u32::MAX as usize);
    }

    /// Reference check: random pushes against a simple Vec model.
    #[test]
    fn matches_simple_model() {
        let t = Instant::now();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..50 {
            let max_lines = 1 + rnd(40);
            let max_bytes = rnd(20_000);
            let mut b = OutputBuffer::new(max_lines, max_bytes);
            let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
            let mut bytes = 0;
            for seq in 0..300u64 {
                let len = if rnd(10) == 0 { rnd(9000) } else { rnd(50) };
                let line = vec![b'a' + (seq % 26) as u8; len];
                b.push_line(0, Stream::Stdout, t, &line);
                bytes += len;
                model.push_back((seq, line));
                while model.len() > max_lines || (bytes > max_bytes && model.len() > 1) {
                    if let Some((_, l)) = model.pop_front() {
                        bytes -= l.len();
                    }
                }
                if rnd(50) == 0 {
                    b.clear();
                    model.clear();
                    bytes = 0;
                }
                assert_eq!(b.len(), model.len());
                assert_eq!(b.bytes_stored(), bytes);
                for (l, (s, m)) in b.iter().zip(&model) {
                    assert_eq!((l.seq, l.text), (*s, &m[..]));
                }
            }
        }
    }

    #[test]
    fn keeps_the_tail_of_seq_output() {
        let n = 500_000;
        let data = seq_output(n);
        let t = Instant::now();
        let mut b = OutputBuffer::new(100_000, DEFAULT_MAX_BUFFER_BYTES);
        for chunk in data.chunks(64 * 1024) {
            b.push_chunk(0, Stream::Stdout, t, chunk);
        }
        b.finish_stream(0, Stream::Stdout, t);
        assert_eq!(b.total_lines(), n);
        assert_eq!(b.len(), 100_000);
        assert_eq!(b.iter().next_back().map(|l| l.text), Some(&b"500000"[..]));
    }
}
