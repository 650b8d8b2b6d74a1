//! The two log formats, record by record.
//!
//! **plain** (the default): one record per line, in the order forkyard received the
//! output:
//!
//! ```text
//! 12:34:56.789 | a line the job wrote on stdout
//! 12:34:56.790 ! a line on stderr
//! 12:34:56.791 [2] | stdout of a pipeline's second stage (stages are 1-based)
//! 12:34:56.792 |+ a line without its newline (it continues in the next | record)
//! 12:34:56.800 # run 2 started          (forkyard's own lines: runs, exits, signals, gaps)
//! ```
//!
//! `TIME [STAGE] MARK[+] TEXT`: the local time of day the chunk holding the line's end
//! arrived, to the millisecond; `[N]` for a pipeline's stage N; `|` stdout, `!` stderr,
//! `#` forkyard; `+` when the job's line did not end there (a line longer than 64 KiB is
//! written in pieces, a line still open when its stream ended or when output around it
//! was lost); one space; then the line's bytes exactly as the job wrote them, without
//! the `\n` (a `\r` before it is kept), so the job's output is the concatenation of its
//! records' texts, each followed by `\n` unless marked `+`. The date and the UTC offset
//! are a `#` line (`# date 2025-06-01 UTC+02:00`) at the top of each file and whenever
//! the date changes.
//!
//! **jsonl**: one JSON object per line, the same records:
//! `{"time":"2025-06-01T10:34:56.789Z","stream":"stdout","text":"…"}` with `"stage":2`
//! for a pipeline's stage, `"eol":false` for a `+` record, `"base64":"…"` instead of
//! `"text"` when the line is not UTF-8, and `{"time":…,"forkyard":"run 2 started"}` for
//! forkyard's own lines. `time` is UTC (RFC 3339, milliseconds).

use memchr::memchr_iter;

use crate::config::LogFormat;
use crate::output::Stream;

use super::clock::LocalTime;

/// What a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Out(Stream),
    /// forkyard's own line.
    Note,
}

impl Mark {
    fn plain(self) -> u8 {
        match self {
            Mark::Out(Stream::Stdout) => b'|',
            Mark::Out(Stream::Stderr) => b'!',
            Mark::Note => b'#',
        }
    }
}

/// When a record's chunk arrived, in both forms the formats use.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub local: LocalTime,
    /// RFC 3339 UTC with milliseconds (jsonl).
    pub utc: String,
}

/// Where a record came from: the pipeline stage (0-based; None for a single process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub stage: Option<usize>,
    pub mark: Mark,
}

/// Appends one record: `text` is a line without its `\n`; `eol` says whether the job's
/// line ended there.
pub fn record(
    out: &mut Vec<u8>,
    format: LogFormat,
    stamp: &Stamp,
    origin: Origin,
    eol: bool,
    text: &[u8],
) {
    match format {
        LogFormat::Plain => {
            plain_prefix(out, stamp, origin, eol);
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        LogFormat::Jsonl => json_record(out, stamp, origin, eol, text),
    }
}

/// Appends one record per line of `body` (complete lines, each ending in `\n`): the
/// bulk of a log's work, so the plain prefix is built once for the chunk.
pub fn lines(out: &mut Vec<u8>, format: LogFormat, stamp: &Stamp, origin: Origin, body: &[u8]) {
    match format {
        LogFormat::Plain => {
            let mut prefix = Vec::with_capacity(24);
            plain_prefix(&mut prefix, stamp, origin, true);
            let count = memchr_iter(b'\n', body).count();
            out.reserve(body.len() + count * prefix.len());
            let mut start = 0;
            for nl in memchr_iter(b'\n', body) {
                out.extend_from_slice(&prefix);
                out.extend_from_slice(&body[start..=nl]);
                start = nl + 1;
            }
        }
        LogFormat::Jsonl => {
            let mut start = 0;
            for nl in memchr_iter(b'\n', body) {
                json_record(out, stamp, origin, true, &body[start..nl]);
                start = nl + 1;
            }
        }
    }
}

/// Bytes a plain record adds in front of its text (and the `\n` after it).
pub fn plain_overhead(origin: Origin) -> usize {
    let stage = origin.stage.map_or(0, |s| digits(s + 1) + 3);
    12 + 1 + stage + 1 + 1 + 1
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn plain_prefix(out: &mut Vec<u8>, stamp: &Stamp, origin: Origin, eol: bool) {
    out.extend_from_slice(&stamp.local.time_of_day());
    out.push(b' ');
    if let Some(stage) = origin.stage {
        out.push(b'[');
        out.extend_from_slice((stage + 1).to_string().as_bytes());
        out.extend_from_slice(b"] ");
    }
    out.push(origin.mark.plain());
    if !eol {
        out.push(b'+');
    }
    out.push(b' ');
}

fn json_record(out: &mut Vec<u8>, stamp: &Stamp, origin: Origin, eol: bool, text: &[u8]) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(stamp.utc.as_bytes());
    out.push(b'"');
    match origin.mark {
        Mark::Note => {
            out.extend_from_slice(b",\"forkyard\":");
            json_string(out, &String::from_utf8_lossy(text));
        }
        Mark::Out(stream) => {
            out.extend_from_slice(match stream {
                Stream::Stdout => b",\"stream\":\"stdout\"",
                Stream::Stderr => b",\"stream\":\"stderr\"",
            });
            if let Some(stage) = origin.stage {
                out.extend_from_slice(b",\"stage\":");
                out.extend_from_slice((stage + 1).to_string().as_bytes());
            }
            match std::str::from_utf8(text) {
                Ok(text) => {
                    out.extend_from_slice(b",\"text\":");
                    json_string(out, text);
                }
                Err(_) => {
                    out.extend_from_slice(b",\"base64\":\"");
                    out.extend_from_slice(base64(text).as_bytes());
                    out.push(b'"');
                }
            }
            if !eol {
                out.extend_from_slice(b",\"eol\":false");
            }
        }
    }
    out.extend_from_slice(b"}\n");
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648): JSON lines that are not UTF-8, and the
/// TUI's clipboard (OSC 52).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(BASE64[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            local: LocalTime {
                year: 2025,
                month: 6,
                day: 1,
                hour: 9,
                minute: 5,
                second: 3,
                millis: 42,
                offset: 0,
            },
            utc: "2025-06-01T09:05:03.042Z".into(),
        }
    }

    const OUT: Origin = Origin {
        stage: None,
        mark: Mark::Out(Stream::Stdout),
    };

    #[test]
    fn plain_records() {
        let mut out = Vec::new();
        lines(&mut out, LogFormat::Plain, &stamp(), OUT, b"a\n\nb\r\n");
        let err = Origin {
            stage: Some(1),
            mark: Mark::Out(Stream::Stderr),
        };
        record(&mut out, LogFormat::Plain, &stamp(), err, false, b"tail");
        let note = Origin {
            stage: None,
            mark: Mark::Note,
        };
        record(
            &mut out,
            LogFormat::Plain,
            &stamp(),
            note,
            true,
            b"run 1 started",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "09:05:03.042 | a\n09:05:03.042 | \n09:05:03.042 | b\r\n\
             09:05:03.042 [2] !+ tail\n09:05:03.042 # run 1 started\n"
        );
        assert_eq!(plain_overhead(OUT), "09:05:03.042 | \n".len());
        assert_eq!(plain_overhead(err), "09:05:03.042 [2] ! \n".len());
    }

    #[test]
    fn json_records() {
        let mut out = Vec::new();
        lines(
            &mut out,
            LogFormat::Jsonl,
            &stamp(),
            OUT,
            b"say \"hi\"\t\x1b[1m\n",
        );
        let err = Origin {
            stage: Some(2),
            mark: Mark::Out(Stream::Stderr),
        };
        record(
            &mut out,
            LogFormat::Jsonl,
            &stamp(),
            err,
            false,
            b"\xff\xfe",
        );
        let text = String::from_utf8(out).expect("JSON is UTF-8");
        let values: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("valid JSON"))
            .collect();
        assert_eq!(values[0]["text"], "say \"hi\"\t\x1b[1m");
        assert_eq!(values[0]["stream"], "stdout");
        assert_eq!(values[0]["time"], "2025-06-01T09:05:03.042Z");
        assert!(values[0].get("stage").is_none());
        assert_eq!(values[1]["stage"], 3);
        assert_eq!(values[1]["base64"], "//4=");
        assert_eq!(values[1]["eol"], false);
    }

    #[test]
    fn base64_matches_rfc_4648() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input), want);
        }
    }
}
