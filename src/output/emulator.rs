//! A PTY job's terminal: the bytes a child writes to its pseudo-terminal, interpreted by
//! a terminal emulator (the `vt100` crate), so cursor moves, colours, `\r` progress bars
//! and full-screen programs (`top`, `less`, `vim`) end up as a screen of cells.
//!
//! Nothing the child writes is ever passed on: the TUI draws the cells (sanitised again
//! there), and every request aimed at the terminal itself — a window title, an OSC 52
//! clipboard write, a resize, the alternate screen, mouse or bracketed-paste modes —
//! changes only this emulator's state (or nothing).
//!
//! The emulator keeps no scrollback of its own: vt100 stores 32 bytes per cell, so
//! 100,000 rows of 200 columns would be 640 MB. A row that scrolls off the top of the
//! main screen is instead turned into one line of text with SGR colour codes
//! ([`Emulator::take_lines`]), which the drain stores in the job's bounded ring buffer
//! like any pipe job's line: a few bytes per line, counted when dropped, searchable.
//! Rows of a wrapped line are joined back into the line the program wrote.
//!
//! A flood of plain lines (`seq`, a log without colours) takes a shortcut: vt100 spends
//! most of its time per scrolled row on the row's every cell (a 200-column row costs
//! 200 cell comparisons to format and 200 to clear), so when a chunk holds many plain
//! ASCII lines and the terminal is in the plain state they cannot change (main screen,
//! cursor at the start of a blank bottom row, default attributes, no scroll region, no
//! escape sequence half read), all but the last screenful go to the scrollback as the
//! bytes they are ([`History::Raw`]), and only the screen's worth is drawn by vt100.
//! The result is the screen and scrollback vt100 would have produced (a test checks).

use std::fmt::Write as _;
use std::num::NonZeroU16;
use std::ops::Range;

use vt100::capture::{BasicFormattedCaptureState, RowContents};
use vt100::{Callbacks, Screen};

use super::MAX_LINE_BYTES;

/// The smallest screen (a 0×0 pane still has a terminal behind it).
const MIN_SIZE: u16 = 1;

/// Lines that left the screen, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// One line, with SGR codes for its colours.
    Line(String),
    /// Plain `TEXT\r\n` lines, as bytes of the chunk just processed.
    Raw(Range<usize>),
}

/// What the emulator collects besides its screen: the lines scrolled off the top, and
/// the answers a program asked for.
#[derive(Default)]
struct Collector {
    /// Complete lines, oldest first.
    lines: Vec<History>,
    /// The start of a line whose rows wrapped (the rest is still on screen).
    partial: String,
    /// Bytes to write back to the program (replies to status queries).
    replies: Vec<u8>,
}

/// A writer that stops at the first thing written, remembering whether it was `\n`:
/// `RowContents::write_formatted_basic` writes a newline first exactly when the row it
/// was last given did not wrap, and this learns that without formatting a row twice.
struct NewlineProbe(Option<bool>);

impl std::fmt::Write for NewlineProbe {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = Some(s.starts_with('\n'));
        Err(std::fmt::Error)
    }
}

impl Collector {
    fn push_line(&mut self, line: String) {
        self.lines.push(History::Line(line));
    }

    /// One row off the top of the main screen.
    fn row(&mut self, row: &RowContents<'_>) {
        // A fresh state per row: each row's codes start from the default style, so a
        // stored line never depends on the line before it.
        let mut state = BasicFormattedCaptureState::new();
        let start = self.partial.len();
        let _ = row.write_formatted_basic(&mut self.partial, &mut state);
        if self.partial[start..].contains('\x1b') {
            // The next row (of a wrapped line) starts from the default style too.
            self.partial.push_str("\x1b[m");
        }
        let mut probe = NewlineProbe(None);
        let _ = row.write_formatted_basic(&mut probe, &mut state);
        let wrapped = probe.0 != Some(true);
        if !wrapped || self.partial.len() >= MAX_LINE_BYTES {
            // A line never grows past the ring buffer's line cap (a 100 MB line without
            // a newline becomes pieces, as it does for a pipe job).
            let line = std::mem::take(&mut self.partial);
            self.push_line(line);
        }
    }
}

impl Callbacks for Collector {
    fn on_scroll(&mut self, contents: RowContents<'_>, alternate_screen: bool) {
        // Like a terminal, the alternate screen (a full-screen program) leaves no
        // scrollback.
        if !alternate_screen {
            self.row(&contents);
        }
    }

    /// Device status reports and device attributes: programs that ask (readline-style
    /// prompts, some full-screen programs) wait for the answer.
    fn unhandled_csi(
        &mut self,
        screen: &mut Screen,
        i1: Option<u8>,
        _i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        let first = params.first().and_then(|p| p.first()).copied().unwrap_or(0);
        match (i1, c, first) {
            (None, 'n', 5) => self.replies.extend_from_slice(b"\x1b[0n"),
            (None, 'n', 6) => {
                let (row, col) = screen.cursor_position();
                let _ = write!(Reply(&mut self.replies), "\x1b[{};{}R", row + 1, col + 1);
            }
            // Primary device attributes: a VT220 with nothing optional.
            (None, 'c', 0) => self.replies.extend_from_slice(b"\x1b[?62c"),
            _ => {}
        }
    }
}

/// `write!` into a byte vector.
struct Reply<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Reply<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The modes a program set that decide how keys, pastes and the mouse are sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputModes {
    /// DECCKM: arrows as `ESC O A` rather than `ESC [ A`.
    pub application_cursor: bool,
    /// Pastes wrapped in `ESC [ 200 ~` … `ESC [ 201 ~`.
    pub bracketed_paste: bool,
    pub mouse: MouseMode,
    /// SGR (`ESC [ < b ; x ; y M`) rather than the legacy byte encoding.
    pub mouse_sgr: bool,
}

/// Which mouse events the program asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MouseMode {
    #[default]
    Off,
    Press,
    PressRelease,
    /// Press, release and motion with a button held.
    ButtonMotion,
    /// Every motion too.
    AnyMotion,
}

/// Where the bytes fed so far leave the parser, as far as the shortcut needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escape {
    #[default]
    Ground,
    /// After ESC.
    Esc,
    /// In a CSI; `params` says whether a parameter byte came.
    Csi { params: bool },
    /// In an OSC, DCS, SOS, PM or APC string (until BEL or ST).
    Str,
    /// ESC inside a string (ST's first byte, or a new sequence).
    StrEsc,
}

/// One PTY job's terminal.
pub struct Emulator {
    parser: vt100::Parser<Collector>,
    escape: Escape,
    /// A scroll region may be set (DECSTBM with parameters since the last reset).
    region: bool,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.size();
        f.debug_struct("Emulator")
            .field("rows", &rows)
            .field("cols", &cols)
            .finish_non_exhaustive()
    }
}

fn dimension(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n.max(MIN_SIZE)).unwrap_or(NonZeroU16::MIN)
}

impl Emulator {
    /// A blank screen of `rows` × `cols` (each at least 1).
    pub fn new(rows: u16, cols: u16) -> Self {
        Emulator {
            parser: vt100::Parser::new_with_callbacks(
                dimension(rows),
                dimension(cols),
                0,
                Collector::default(),
            ),
            escape: Escape::Ground,
            region: false,
        }
    }

    /// Interprets what the program wrote. [`History::Raw`] ranges from
    /// [`Emulator::take_history`] refer to `bytes`.
    pub fn process(&mut self, bytes: &[u8]) {
        let (rows, cols) = self.size();
        // A read often ends inside a line: the next chunk's first line completes it,
        // through vt100, and leaves the cursor at the start of a blank bottom row.
        let first = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |nl| nl + 1);
        let plain = plain_lines(&bytes[first..], cols, first);
        if plain.lines() <= 2 * usize::from(rows) {
            return self.slow(bytes);
        }
        self.slow(&bytes[..plain.start]);
        let run = &bytes[plain.start..plain.end];
        if self.plain_state() {
            let ends: Vec<usize> = plain.ends.iter().map(|e| e - plain.start).collect();
            self.shortcut(run, &ends, rows, plain.start);
        } else {
            self.slow(run);
        }
        self.slow(&bytes[plain.end..]);
    }

    fn slow(&mut self, bytes: &[u8]) {
        self.track_escapes(bytes);
        self.parser.process(bytes);
    }

    /// Nothing in the terminal's state can make plain lines do anything but scroll.
    fn plain_state(&self) -> bool {
        let screen = self.parser.screen();
        let (rows, cols) = self.size();
        self.escape == Escape::Ground
            && !self.region
            && !screen.alternate_screen()
            && screen.cursor_position() == (rows - 1, 0)
            && screen.fgcolor() == vt100::Color::Default
            && screen.bgcolor() == vt100::Color::Default
            && !(screen.bold() || screen.dim() || screen.italic())
            && !(screen.underline() || screen.inverse())
            && (0..cols).all(|c| {
                screen
                    .cell(rows - 1, c)
                    .is_none_or(|cell| !cell.has_contents())
            })
            && self.parser.callbacks().partial.is_empty()
    }

    /// `block` is all plain lines (`ends[i]`: the end of line i, its `\r\n` included),
    /// more than two screenfuls: the screen's rows scroll off (through vt100), the lines
    /// but the last screenful go to the scrollback as bytes, and the last screenful is
    /// drawn from the top of the blank screen, the cursor left on the bottom row.
    /// `offset`: where `block` starts in the chunk.
    fn shortcut(&mut self, block: &[u8], ends: &[usize], rows: u16, offset: usize) {
        let keep = usize::from(rows) - 1;
        let flush = "\n".repeat(keep);
        self.parser.process(flush.as_bytes());
        let raw_end = ends[ends.len() - keep - 1];
        self.parser
            .callbacks_mut()
            .lines
            .push(History::Raw(offset..offset + raw_end));
        let mut tail = b"\x1b[H".to_vec();
        tail.extend_from_slice(&block[raw_end..]);
        self.parser.process(&tail);
    }

    /// Follows escape sequences well enough to know whether the parser is in its ground
    /// state and whether a scroll region was set.
    fn track_escapes(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            match self.escape {
                Escape::Ground => match memchr::memchr(0x1b, &bytes[at..]) {
                    Some(i) => {
                        self.escape = Escape::Esc;
                        at += i + 1;
                    }
                    None => return,
                },
                Escape::Str => match memchr::memchr2(0x07, 0x1b, &bytes[at..]) {
                    Some(i) => {
                        self.escape = if bytes[at + i] == 0x07 {
                            Escape::Ground
                        } else {
                            Escape::StrEsc
                        };
                        at += i + 1;
                    }
                    None => return,
                },
                Escape::StrEsc => {
                    // ST ends the string; anything else starts over as an escape.
                    self.escape = if bytes[at] == b'\\' {
                        at += 1;
                        Escape::Ground
                    } else {
                        Escape::Esc
                    };
                }
                Escape::Esc => {
                    let byte = bytes[at];
                    at += 1;
                    self.escape = match byte {
                        b'[' => Escape::Csi { params: false },
                        b']' | b'P' | b'X' | b'^' | b'_' => Escape::Str,
                        0x1b => Escape::Esc,
                        // Intermediates (ESC ( B …) wait for their final byte.
                        0x20..=0x2f => Escape::Esc,
                        b'c' => {
                            self.region = false;
                            Escape::Ground
                        }
                        _ => Escape::Ground,
                    };
                }
                Escape::Csi { params } => {
                    let byte = bytes[at];
                    at += 1;
                    self.escape = match byte {
                        b'0'..=b'9' | b';' | b':' => Escape::Csi { params: true },
                        0x3c..=0x3f | 0x20..=0x2f => Escape::Csi { params },
                        0x1b => Escape::Esc,
                        0x40..=0x7e => {
                            if byte == b'r' {
                                self.region = params;
                            }
                            Escape::Ground
                        }
                        // C0 controls run inside a CSI and leave it going.
                        _ => Escape::Csi { params },
                    };
                }
            }
        }
    }

    /// What scrolled off the top since the last call, oldest first.
    pub fn take_history(&mut self) -> Vec<History> {
        std::mem::take(&mut self.parser.callbacks_mut().lines)
    }

    /// Like [`Emulator::take_history`], every line as text (`chunk`: the bytes of the
    /// last [`Emulator::process`]).
    pub fn take_lines_of(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for item in self.take_history() {
            match item {
                History::Line(line) => out.push(line),
                History::Raw(range) => {
                    let raw = String::from_utf8_lossy(&chunk[range]).into_owned();
                    out.extend(raw.split_terminator("\r\n").map(str::to_string));
                }
            }
        }
        out
    }

    /// [`Emulator::take_history`] as lines, when no raw block can be in it.
    pub fn take_lines(&mut self) -> Vec<String> {
        self.take_lines_of(&[])
    }

    /// Answers to the program's status queries since the last call.
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.parser.callbacks_mut().replies)
    }

    /// (rows, columns).
    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (rows.get(), cols.get())
    }

    /// Follows the pane: rows pushed off by a smaller height become lines.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        if self.size() != (rows.max(MIN_SIZE), cols.max(MIN_SIZE)) {
            self.parser.set_size(dimension(rows), dimension(cols));
        }
    }

    pub fn screen(&self) -> &Screen {
        self.parser.screen()
    }

    /// A new run starts on a fresh terminal (modes, alternate screen and all); what the
    /// old run left on its main screen becomes lines first, so nothing is lost.
    pub fn reset(&mut self) {
        let (rows, cols) = self.size();
        // The alternate screen hides the main one; what the full-screen program showed
        // goes, as on a terminal when it exits.
        if !self.parser.screen().alternate_screen() {
            let before = self.parser.callbacks().lines.len();
            // Scroll every row off the top, through the same path as any other row.
            let mut flush = format!("\x1b[{rows};1H");
            flush.extend(std::iter::repeat_n('\n', usize::from(rows)));
            self.parser.process(flush.as_bytes());
            let lines = &mut self.parser.callbacks_mut().lines;
            // Blank rows at the bottom are not worth keeping.
            while lines.len() > before
                && lines.last().is_some_and(|l| match l {
                    History::Line(l) => crate::output::sanitize::plain_text(l.as_bytes())
                        .trim()
                        .is_empty(),
                    History::Raw(_) => false,
                })
            {
                lines.pop();
            }
        }
        let mut collector = std::mem::take(self.parser.callbacks_mut());
        if !collector.partial.is_empty() {
            let line = std::mem::take(&mut collector.partial);
            collector.push_line(line);
        }
        collector.replies.clear();
        self.parser =
            vt100::Parser::new_with_callbacks(dimension(rows), dimension(cols), 0, collector);
    }

    /// The screen's rows as plain text, top to bottom (search, tests).
    pub fn screen_lines(&self) -> Vec<String> {
        let (_, cols) = self.size();
        self.parser.screen().rows(0, cols).collect()
    }

    /// How keys, pastes and mouse events must be encoded for the program.
    pub fn input_modes(&self) -> InputModes {
        let screen = self.parser.screen();
        InputModes {
            application_cursor: screen.application_cursor(),
            bracketed_paste: screen.bracketed_paste(),
            mouse: match screen.mouse_protocol_mode() {
                vt100::MouseProtocolMode::None => MouseMode::Off,
                vt100::MouseProtocolMode::Press => MouseMode::Press,
                vt100::MouseProtocolMode::PressRelease => MouseMode::PressRelease,
                vt100::MouseProtocolMode::ButtonMotion => MouseMode::ButtonMotion,
                vt100::MouseProtocolMode::AnyMotion => MouseMode::AnyMotion,
            },
            mouse_sgr: screen.mouse_protocol_encoding() == vt100::MouseProtocolEncoding::Sgr,
        }
    }
}

/// The last run of plain lines among the complete lines of `bytes`: printable ASCII
/// shorter than the screen, each ending in `\r\n` (a terminal's newline).
struct PlainLines {
    /// Where the run starts and ends.
    start: usize,
    end: usize,
    /// The end of each of its lines.
    ends: Vec<usize>,
}

impl PlainLines {
    fn lines(&self) -> usize {
        self.ends.len()
    }
}

/// `offset`: where `bytes` starts in the chunk (the positions returned are the chunk's).
fn plain_lines(bytes: &[u8], cols: u16, offset: usize) -> PlainLines {
    let mut run = PlainLines {
        start: offset,
        end: offset,
        ends: Vec::new(),
    };
    if bytes.len() < 256 {
        // Short writes (keys echoed, a prompt) never take the shortcut anyway.
        return run;
    }
    let mut line_start = 0;
    for nl in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[line_start..nl];
        let plain = line.last() == Some(&b'\r')
            && line.len() <= usize::from(cols)
            && line[..line.len() - 1]
                .iter()
                .all(|b| (0x20..0x7f).contains(b));
        line_start = nl + 1;
        if plain {
            run.ends.push(offset + line_start);
            run.end = offset + line_start;
        } else {
            run.ends.clear();
            run.start = offset + line_start;
            run.end = offset + line_start;
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(line: &str) -> String {
        crate::output::sanitize::plain_text(line.as_bytes())
    }

    #[test]
    fn rows_scrolled_off_become_lines_with_their_colours() {
        let mut e = Emulator::new(3, 20);
        e.process(b"one\r\n\x1b[31mtwo\x1b[m\r\nthree\r\nfour\r\nfive");
        let lines = e.take_lines();
        assert_eq!(
            lines.iter().map(|l| plain(l)).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert!(lines[1].contains("\x1b[31m"), "{:?}", lines[1]);
        assert_eq!(e.screen_lines(), ["three", "four", "five"]);
        assert!(e.take_lines().is_empty());
    }

    #[test]
    fn a_progress_bar_redraws_in_place_and_leaves_one_line() {
        let mut e = Emulator::new(2, 20);
        for pct in 0..=100 {
            e.process(format!("\r{pct:3}%").as_bytes());
        }
        e.process(b"\r\ndone\r\nnext\r\n");
        let lines = e.take_lines();
        assert_eq!(
            lines.iter().map(|l| plain(l)).collect::<Vec<_>>(),
            ["100%", "done"]
        );
    }

    #[test]
    fn wrapped_rows_are_one_line_and_a_huge_line_is_cut_into_pieces() {
        let mut e = Emulator::new(2, 10);
        e.process(b"0123456789abcdefghij\r\nx\r\ny\r\n");
        let lines = e.take_lines();
        assert_eq!(lines[0], "0123456789abcdefghij");
        let mut e = Emulator::new(2, 100);
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..4 {
            e.process(&chunk);
        }
        let lines = e.take_lines();
        assert!(lines.len() >= 60, "{}", lines.len());
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE_BYTES + 100));
    }

    #[test]
    fn the_alternate_screen_leaves_no_scrollback_and_requests_stay_inside() {
        let mut e = Emulator::new(3, 20);
        e.process(b"before\r\n\x1b[?1049h\x1b]0;title\x07\x1b]52;c;aGk=\x07\x1b[?2004h\x1b[?1000h\x1b[?1006h");
        for i in 0..10 {
            e.process(format!("full {i}\r\n").as_bytes());
        }
        assert!(e.take_lines().is_empty());
        let modes = e.input_modes();
        assert!(modes.bracketed_paste && modes.mouse_sgr);
        assert_eq!(modes.mouse, MouseMode::PressRelease);
        e.process(b"\x1b[?1049l");
        assert_eq!(e.screen_lines()[0], "before");
    }

    /// The shortcut gives exactly what vt100 alone gives: the same screen, the same
    /// scrollback, whatever the chunks.
    #[test]
    fn a_flood_of_plain_lines_matches_the_slow_path() {
        let mut text = String::from("\x1b[1mbold start\x1b[m\r\nsome\r\n");
        for i in 0..5000 {
            text.push_str(&format!("line {i}\r\n"));
        }
        text.push_str("\x1b[31mred\x1b[m\r\n");
        for i in 0..300 {
            text.push_str(&format!("more {i}\r\n"));
        }
        text.push_str("partial");
        let bytes = text.as_bytes();
        let slow = {
            let mut e = Emulator::new(10, 40);
            let mut lines = Vec::new();
            for b in bytes.chunks(1) {
                e.slow(b);
                lines.extend(e.take_lines());
            }
            (lines, e.screen_lines(), e.screen().cursor_position())
        };
        for size in [7, 100, 4096, 1 << 20] {
            let mut e = Emulator::new(10, 40);
            let mut lines = Vec::new();
            let mut raw = false;
            for chunk in bytes.chunks(size) {
                e.process(chunk);
                let history = e.take_history();
                raw |= history.iter().any(|h| matches!(h, History::Raw(_)));
                e.parser.callbacks_mut().lines = history;
                lines.extend(e.take_lines_of(chunk));
            }
            assert_eq!(lines, slow.0, "chunks of {size}");
            assert_eq!(e.screen_lines(), slow.1, "chunks of {size}");
            assert_eq!(e.screen().cursor_position(), slow.2, "chunks of {size}");
            assert_eq!(raw, size >= 4096, "chunks of {size}");
        }
    }

    #[test]
    fn no_shortcut_with_a_scroll_region_or_inside_a_string() {
        let flood: String = (0..100).map(|i| format!("n{i}\r\n")).collect();
        let mut e = Emulator::new(5, 20);
        e.process(b"\x1b[1;3r\x1b[5;1H");
        e.process(flood.as_bytes());
        assert!(
            e.take_history()
                .iter()
                .all(|h| matches!(h, History::Line(_)))
        );
        let mut e = Emulator::new(5, 20);
        e.process(b"\x1b]0;title ");
        e.process(flood.as_bytes());
        assert!(
            e.take_history().is_empty(),
            "all of it is the unterminated title"
        );
    }

    #[test]
    fn status_queries_are_answered() {
        let mut e = Emulator::new(5, 20);
        e.process(b"ab\x1b[6n\x1b[c");
        assert_eq!(e.take_replies(), b"\x1b[1;3R\x1b[?62c");
    }

    #[test]
    fn reset_keeps_what_the_old_run_showed() {
        let mut e = Emulator::new(4, 20);
        e.process(b"last words\r\n\x1b[?1h");
        e.reset();
        assert_eq!(e.take_lines(), ["last words"]);
        assert!(!e.input_modes().application_cursor);
        assert!(e.screen_lines().iter().all(|l| l.is_empty()));
    }

    #[test]
    fn resize_pushes_rows_into_lines() {
        let mut e = Emulator::new(4, 20);
        e.process(b"a\r\nb\r\nc\r\nd");
        e.resize(2, 20);
        assert_eq!(e.size(), (2, 20));
        assert_eq!(e.take_lines(), ["a", "b"]);
    }
}
