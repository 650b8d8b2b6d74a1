//! Stateful line splitting for one byte stream.
//!
//! [`LineSplitter::feed`] takes raw chunks as they come off a pipe and emits every complete
//! line without its terminator (`\n`, or `\r\n`). Lines that lie wholly inside a chunk are
//! emitted as borrowed slices of that chunk; only an incomplete tail is copied into the
//! splitter, and that copy never exceeds the configured maximum line length: a longer line
//! is emitted in pieces of exactly `max_line` bytes (the last piece may be shorter).
//!
//! The output does not depend on how the stream was cut into chunks.

use memchr::memchr_iter;

/// Splits one byte stream into lines of at most `max_line` bytes, without copying lines
/// that lie wholly inside a chunk; output does not depend on how the stream was chunked.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_line: usize,
    /// The incomplete tail; never longer than `max_line`.
    partial: Vec<u8>,
    /// `partial` is full (`max_line` bytes) and a `\r` followed it. Whether that `\r` is
    /// content or part of a `\r\n` terminator is decided by the next byte.
    pending_cr: bool,
}

impl LineSplitter {
    /// A splitter that emits lines of at most `max_line` bytes (a value of 0 is treated as 1).
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(1),
            partial: Vec::new(),
            pending_cr: false,
        }
    }

    /// The maximum length of an emitted line.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Feed the next chunk of the stream, calling `emit` for each complete line (without
    /// its `\n` and without a `\r` right before the `\n`).
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut start = 0;
        for nl in memchr_iter(b'\n', chunk) {
            // `start <= nl < chunk.len()` always holds; `get` keeps this panic-free anyway.
            if let Some(content) = chunk.get(start..nl) {
                self.content(content, true, &mut emit);
            }
            start = nl + 1;
        }
        if let Some(tail) = chunk.get(start..)
            && !tail.is_empty()
        {
            self.content(tail, false, &mut emit);
        }
    }

    /// The incomplete line being assembled (without a possibly pending `\r`).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// Nothing buffered: the next byte starts a new line.
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && !self.pending_cr
    }

    /// End of stream: emit the incomplete tail, if any, as a final line (a trailing `\r` is
    /// stripped as if a `\n` followed). Afterwards the splitter is empty and reusable.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.pending_cr || !self.partial.is_empty() {
            self.content(&[], true, &mut emit);
        }
        self.partial.clear();
        self.pending_cr = false;
    }

    /// Handle `data` (which contains no `\n`), followed by a `\n` if `terminated`.
    #[inline]
    fn content(&mut self, data: &[u8], terminated: bool, emit: &mut impl FnMut(&[u8])) {
        if self.partial.is_empty() && !self.pending_cr {
            // Hot path: nothing buffered.
            if terminated {
                self.emit_terminated(data, emit);
            } else {
                self.store_tail(data, emit);
            }
            return;
        }
        self.content_slow(data, terminated, emit);
    }

    /// `data` is a whole line (terminator already removed, `\r` not yet stripped).
    #[inline]
    fn emit_terminated(&self, data: &[u8], emit: &mut impl FnMut(&[u8])) {
        let mut line = strip_cr(data);
        if line.len() <= self.max_line {
            emit(line);
            return;
        }
        while line.len() > self.max_line {
            let (piece, rest) = line.split_at(self.max_line);
            emit(piece);
            line = rest;
        }
        emit(line);
    }

    /// `data` is the start of a line whose end is not known yet; nothing is buffered.
    fn store_tail(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while data.len() > self.max_line {
            let (piece, rest) = data.split_at(self.max_line);
            if rest == b"\r" {
                // The `\r` may belong to a `\r\n`: keep it as a flag, not as a byte.
                self.partial.extend_from_slice(piece);
                self.pending_cr = true;
                return;
            }
            emit(piece);
            data = rest;
        }
        self.partial.extend_from_slice(data);
    }

    #[cold]
    fn content_slow(&mut self, mut data: &[u8], terminated: bool, emit: &mut impl FnMut(&[u8])) {
        if self.pending_cr {
            if data.is_empty() {
                if terminated {
                    // `<full partial>\r\n`: the `\r` was the terminator's.
                    emit(&self.partial);
                    self.partial.clear();
                    self.pending_cr = false;
                }
                return;
            }
            // More content follows, so the full partial is a piece and `\r` is content.
            emit(&self.partial);
            self.partial.clear();
            self.partial.push(b'\r');
            self.pending_cr = false;
        }

        let room = self.max_line.saturating_sub(self.partial.len());
        let (head, rest) = data.split_at(room.min(data.len()));
        self.partial.extend_from_slice(head);
        data = rest;

        if data.is_empty() {
            if terminated {
                emit(strip_cr(&self.partial));
                self.partial.clear();
            }
            return;
        }
        // `partial` is full and more bytes follow.
        if data == b"\r" {
            if terminated {
                emit(&self.partial);
                self.partial.clear();
            } else {
                self.pending_cr = true;
            }
            return;
        }
        emit(&self.partial);
        self.partial.clear();
        if terminated {
            self.emit_terminated(data, emit);
        } else {
            self.store_tail(data, emit);
        }
    }
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testutil::{XorShift, seq_output};

    fn split_all(max: usize, chunks: &[&[u8]], finish: bool) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l.to_vec()));
            assert!(s.partial().len() <= s.max_line());
        }
        let partial = s.partial().to_vec();
        if finish {
            s.finish(|l| out.push(l.to_vec()));
            assert!(s.partial().is_empty());
        }
        (out, partial)
    }

    fn lines(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn basic_lines_and_partial() {
        let (out, partial) = split_all(100, &[b"a\nbb\n\nccc"], false);
        assert_eq!(out, lines(&["a", "bb", ""]));
        assert_eq!(partial, b"ccc");
    }

    #[test]
    fn crlf_is_stripped_once() {
        let (out, _) = split_all(100, &[b"a\r\nb\r\r\nc\rd\n"], true);
        assert_eq!(out, lines(&["a", "b\r", "c\rd"]));
    }

    #[test]
    fn crlf_split_across_chunks() {
        let (out, _) = split_all(100, &[b"abc\r", b"\ndef\r", b"", b"\n"], true);
        assert_eq!(out, lines(&["abc", "def"]));
    }

    #[test]
    fn partial_joined_across_chunks() {
        let (out, partial) = split_all(100, &[b"hel", b"lo wo", b"rld\nnext"], false);
        assert_eq!(out, lines(&["hello world"]));
        assert_eq!(partial, b"next");
    }

    #[test]
    fn finish_flushes_last_line_without_newline() {
        let (out, _) = split_all(100, &[b"one\ntwo"], true);
        assert_eq!(out, lines(&["one", "two"]));
        let (out, _) = split_all(100, &[b"one\n"], true);
        assert_eq!(out, lines(&["one"]));
        let (out, _) = split_all(100, &[b"progress\r"], true);
        assert_eq!(out, lines(&["progress"]));
        let (out, _) = split_all(100, &[], true);
        assert!(out.is_empty());
    }

    #[test]
    fn finish_makes_splitter_reusable() {
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        s.feed(b"abc", |l| out.push(l.to_vec()));
        s.finish(|l| out.push(l.to_vec()));
        s.feed(b"x\n", |l| out.push(l.to_vec()));
        assert_eq!(out, lines(&["abc", "x"]));
    }

    #[test]
    fn long_lines_are_cut_into_max_pieces() {
        let (out, partial) = split_all(4, &[b"abcdefghij\n"], true);
        assert_eq!(out, lines(&["abcd", "efgh", "ij"]));
        assert!(partial.is_empty());

        // Exactly max: one line, no empty trailing piece.
        let (out, _) = split_all(4, &[b"abcd\nabcdefgh\n"], true);
        assert_eq!(out, lines(&["abcd", "abcd", "efgh"]));

        // Exactly max followed by CRLF.
        let (out, _) = split_all(4, &[b"abcd\r\n"], true);
        assert_eq!(out, lines(&["abcd"]));
        let (out, _) = split_all(4, &[b"abcd\r", b"\n"], true);
        assert_eq!(out, lines(&["abcd"]));
        let (out, _) = split_all(4, &[b"ab", b"cd\r", b"\nx"], true);
        assert_eq!(out, lines(&["abcd", "x"]));
        // A `\r` after a full piece that is not followed by `\n` is content.
        let (out, _) = split_all(4, &[b"abcd\r", b"x\n"], true);
        assert_eq!(out, lines(&["abcd", "\rx"]));
    }

    #[test]
    fn partial_never_exceeds_max() {
        let mut s = LineSplitter::new(16);
        let mut n = 0usize;
        let mut total = 0usize;
        for _ in 0..1000 {
            s.feed(&[b'x'; 7], |l| {
                assert_eq!(l.len(), 16);
                n += 1;
                total += l.len();
            });
            assert!(s.partial().len() <= 16);
        }
        s.finish(|l| total += l.len());
        assert_eq!(total, 7000);
        assert_eq!(n, 7000 / 16);
    }

    #[test]
    fn zero_max_is_treated_as_one() {
        let (out, _) = split_all(0, &[b"ab\n"], true);
        assert_eq!(out, lines(&["a", "b"]));
    }

    #[test]
    fn whole_lines_are_not_copied() {
        let chunk = b"first\nsecond\nthi";
        let mut s = LineSplitter::new(64);
        let range = chunk.as_ptr_range();
        s.feed(chunk, |l| assert!(range.contains(&l.as_ptr())));
        assert_eq!(s.partial(), b"thi");
    }

    /// Reference model: split the whole stream at once, the obvious way.
    fn reference(data: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let last = parts.pop().unwrap_or(&[]);
        let mut push = |line: &[u8]| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                out.push(Vec::new());
            }
            for piece in line.chunks(max) {
                out.push(piece.to_vec());
            }
        };
        for p in parts {
            push(p);
        }
        if !last.is_empty() {
            push(last);
        }
        out
    }

    #[test]
    fn chunking_does_not_change_output() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"ab\r\n\n\r\r";
        for round in 0..2000 {
            let max = 1 + rng.below(6);
            let len = rng.below(60);
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let expected = reference(&data, max);

            let mut chunks = Vec::new();
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                let n = rng.below(rest.len() + 1);
                let (a, b) = rest.split_at(n);
                chunks.push(a);
                rest = b;
            }
            let (out, _) = split_all(max, &chunks, true);
            assert_eq!(
                out, expected,
                "round {round} max {max} data {data:?} chunks {chunks:?}"
            );
        }
    }

    #[test]
    fn splits_every_line_of_seq_output() {
        let n = 500_000;
        let data = seq_output(n);
        let mut s = LineSplitter::new(crate::output::MAX_LINE_BYTES);
        let (mut count, mut bytes) = (0u64, 0usize);
        for chunk in data.chunks(64 * 1024) {
            s.feed(chunk, |l| {
                count += 1;
                bytes += l.len();
            });
        }
        s.finish(|_| count += 1);
        assert_eq!(count, n);
        assert_eq!(bytes + n as usize, data.len());
    }
}
