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

use std::fmt::Write as _;
use std::num::NonZeroU16;

use vt100::capture::{BasicFormattedCaptureState, RowContents};
use vt100::{Callbacks, Screen};

use super::MAX_LINE_BYTES;

/// The smallest screen (a 0×0 pane still has a terminal behind it).
const MIN_SIZE: u16 = 1;

/// What the emulator collects besides its screen: the lines scrolled off the top, and
/// the answers a program asked for.
#[derive(Default)]
struct Collector {
    /// Complete lines, oldest first.
    lines: Vec<String>,
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
        self.lines.push(line);
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

/// One PTY job's terminal.
pub struct Emulator {
    parser: vt100::Parser<Collector>,
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
        }
    }

    /// Interprets what the program wrote.
    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    /// The lines that scrolled off the top since the last call, oldest first.
    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.parser.callbacks_mut().lines)
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
                && lines.last().is_some_and(|l| {
                    crate::output::sanitize::plain_text(l.as_bytes())
                        .trim()
                        .is_empty()
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
