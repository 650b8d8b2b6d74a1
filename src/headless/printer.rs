//! Prefixed output: `name | line` for stdout, `name ! line` for stderr, `name[2] | ...`
//! for pipeline stages (1-based).
//!
//! Runs on its own thread so formatting never competes with the async drains, and writes
//! through one large buffer that is flushed whenever no more output is waiting. On a
//! terminal every line is sanitized (escape sequences other than colours are dropped), so
//! child output can never drive the host terminal, and printed whole: unlike the TUI's
//! pane no column is cut, and a line over [`MAX_LINE_BYTES`] is printed as several full
//! lines of at most that size. Into a file or pipe the bytes pass through unchanged.

use std::collections::HashMap;
use std::io::{self, Write};

use tokio::sync::mpsc;

use crate::output::sanitize::{plain_text_full, styled_line_full, to_ansi};
use crate::output::{LineSplitter, MAX_LINE_BYTES, Stream};
use crate::supervisor::OutputChunk;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintStyle {
    /// Colour per job prefix (a terminal without NO_COLOR).
    pub color: bool,
    /// Strip escape sequences from child output (stdout is a terminal).
    pub sanitize: bool,
    /// Each line starts with the local time its chunk arrived (`--timestamps`).
    pub timestamps: bool,
}

/// Writes prefixed lines; remembers the first error so the splitter callback stays simple.
struct LineWriter<'a, W: Write> {
    out: &'a mut io::BufWriter<W>,
    /// The arrival time, written first (`--timestamps`).
    time: &'a [u8],
    prefix: &'a [u8],
    style: PrintStyle,
    result: io::Result<()>,
}

impl<W: Write> LineWriter<'_, W> {
    #[inline]
    fn line(&mut self, line: &[u8]) {
        if self.result.is_ok() {
            self.result = self.write(line);
        }
    }

    #[inline]
    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(self.time)?;
        self.out.write_all(self.prefix)?;
        if self.style.sanitize {
            let text = if self.style.color {
                to_ansi(&styled_line_full(line))
            } else {
                plain_text_full(line)
            };
            self.out.write_all(text.as_bytes())?;
        } else {
            self.out.write_all(line)?;
        }
        self.out.write_all(b"\n")
    }
}

const PALETTE: [&str; 6] = ["36", "33", "32", "35", "34", "96"];

pub struct Printer<W: Write> {
    out: io::BufWriter<W>,
    style: PrintStyle,
    /// Prefix bytes per (job, stage, stream), built once.
    prefixes: HashMap<(usize, usize, Stream), Vec<u8>>,
    splitters: HashMap<(usize, usize, Stream), LineSplitter>,
    labels: Vec<String>,
    width: usize,
    pipelines: Vec<bool>,
    wall: crate::logs::clock::WallClock,
    local: crate::logs::clock::LocalClock,
}

impl<W: Write> Printer<W> {
    /// `jobs`: (name, is_pipeline) in job-id order.
    pub fn new(out: W, jobs: &[(String, bool)], style: PrintStyle) -> Self {
        // Names are validated by the config, but a library caller may pass anything.
        let labels: Vec<String> = jobs
            .iter()
            .map(|(name, _)| crate::stdio::visible_inline(name).into_owned())
            .collect();
        let width = labels
            .iter()
            .zip(jobs)
            .map(|(name, (_, pipeline))| name.chars().count() + if *pipeline { 3 } else { 0 })
            .max()
            .unwrap_or(0);
        Printer {
            out: io::BufWriter::with_capacity(256 * 1024, out),
            style,
            prefixes: HashMap::new(),
            splitters: HashMap::new(),
            labels,
            width,
            pipelines: jobs.iter().map(|(_, p)| *p).collect(),
            wall: crate::logs::clock::WallClock::now(),
            local: crate::logs::clock::LocalClock::new(),
        }
    }

    /// Consumes chunks until every sender is gone, flushing whenever the queue is empty.
    pub fn run(mut self, mut chunks: mpsc::Receiver<OutputChunk>) -> io::Result<W> {
        loop {
            let chunk = match chunks.try_recv() {
                Ok(chunk) => chunk,
                Err(mpsc::error::TryRecvError::Empty) => {
                    self.out.flush()?;
                    match chunks.blocking_recv() {
                        Some(chunk) => chunk,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            self.write_chunk(&chunk)?;
        }
        self.finish_all()?;
        self.out.into_inner().map_err(|err| err.into_error())
    }

    pub fn write_chunk(&mut self, chunk: &OutputChunk) -> io::Result<()> {
        let key = (chunk.job, chunk.stage, chunk.stream);
        // Looked up once per chunk, not per line: this loop runs millions of times.
        let mut splitter = self
            .splitters
            .remove(&key)
            .unwrap_or_else(|| LineSplitter::new(MAX_LINE_BYTES));
        let prefix = match self.prefixes.remove(&key) {
            Some(prefix) => prefix,
            None => self.make_prefix(key),
        };
        let time = self.time_prefix(chunk);
        let mut writer = LineWriter {
            out: &mut self.out,
            time: &time,
            prefix: &prefix,
            style: self.style,
            result: Ok(()),
        };
        if chunk.data.is_empty() {
            splitter.finish(|line| writer.line(line));
        } else {
            splitter.feed(&chunk.data, |line| writer.line(line));
            self.splitters.insert(key, splitter);
        }
        let result = writer.result;
        self.prefixes.insert(key, prefix);
        result
    }

    fn finish_all(&mut self) -> io::Result<()> {
        let keys: Vec<_> = self.splitters.keys().copied().collect();
        for (job, stage, stream) in keys {
            self.write_chunk(&OutputChunk {
                job,
                stage,
                stream,
                at: std::time::Instant::now(),
                data: bytes::Bytes::new(),
            })?;
        }
        self.out.flush()
    }

    /// `12:34:56.789 ` (dimmed on a colour terminal), or nothing without `--timestamps`.
    fn time_prefix(&mut self, chunk: &OutputChunk) -> Vec<u8> {
        if !self.style.timestamps {
            return Vec::new();
        }
        let local = self.local.at_millis(self.wall.unix_millis(chunk.at));
        let time = local.time_of_day();
        let mut out = Vec::with_capacity(24);
        if self.style.color {
            out.extend_from_slice(b"\x1b[2m");
            out.extend_from_slice(&time);
            out.extend_from_slice(b"\x1b[0m ");
        } else {
            out.extend_from_slice(&time);
            out.push(b' ');
        }
        out
    }

    fn make_prefix(&self, (job, stage, stream): (usize, usize, Stream)) -> Vec<u8> {
        let name = self.labels.get(job).map(String::as_str).unwrap_or("?");
        let label = if self.pipelines.get(job).copied().unwrap_or(false) {
            format!("{name}[{}]", stage + 1)
        } else {
            name.to_string()
        };
        let mark = match stream {
            Stream::Stdout => '|',
            Stream::Stderr => '!',
        };
        let padded = format!("{label:<width$}", width = self.width);
        if self.style.color {
            let colour = PALETTE[job % PALETTE.len()];
            // stderr is tinted, not alarm-red: red is for failures, and many programs
            // log everything there.
            let mark_colour = if stream == Stream::Stderr {
                "90"
            } else {
                colour
            };
            format!("\x1b[{colour}m{padded}\x1b[0m \x1b[{mark_colour}m{mark}\x1b[0m ").into_bytes()
        } else {
            format!("{padded} {mark} ").into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(job: usize, stage: usize, stream: Stream, data: &'static [u8]) -> OutputChunk {
        OutputChunk {
            job,
            stage,
            stream,
            at: std::time::Instant::now(),
            data: Bytes::from_static(data),
        }
    }

    fn printed(style: PrintStyle, chunks: &[OutputChunk]) -> String {
        let jobs = vec![("web".to_string(), false), ("enc".to_string(), true)];
        let mut printer = Printer::new(Vec::new(), &jobs, style);
        for c in chunks {
            printer.write_chunk(c).expect("write to a Vec");
        }
        printer.finish_all().expect("flush to a Vec");
        let out = printer.out.into_inner().expect("into_inner");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn prefixes_streams_and_stages() {
        let plain = PrintStyle {
            color: false,
            sanitize: false,
            timestamps: false,
        };
        let out = printed(
            plain,
            &[
                chunk(0, 0, Stream::Stdout, b"hello\nwor"),
                chunk(1, 1, Stream::Stderr, b"oops\n"),
                chunk(0, 0, Stream::Stdout, b"ld\n"),
                chunk(1, 2, Stream::Stdout, b"no newline"),
            ],
        );
        assert_eq!(
            out,
            "web    | hello\nenc[2] ! oops\nweb    | world\nenc[3] | no newline\n"
        );
    }

    #[test]
    fn sanitizes_on_a_terminal() {
        let tty = PrintStyle {
            color: false,
            sanitize: true,
            timestamps: false,
        };
        let out = printed(
            tty,
            &[chunk(0, 0, Stream::Stdout, b"\x1b]0;pwned\x07a\x1b[2Jb\n")],
        );
        assert_eq!(out, "web    | ab\n");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn timestamps_come_first() {
        let style = PrintStyle {
            color: false,
            sanitize: false,
            timestamps: true,
        };
        let out = printed(style, &[chunk(0, 0, Stream::Stdout, b"one\ntwo\n")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            // `12:34:56.789 web    | one`
            let (time, rest) = line.split_at(13);
            assert!(rest.starts_with("web    | "), "{line}");
            let b = time.as_bytes();
            assert!(
                b[2] == b':' && b[5] == b':' && b[8] == b'.' && b[12] == b' ',
                "{line}"
            );
        }
    }
}
