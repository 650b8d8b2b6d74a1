//! Terminal-safe rendering of untrusted child output.
//!
//! A line is run through the [`vte`] parser and drawn onto a one-row model of cells:
//! printable characters overwrite the cell under the cursor with the current style, `\r`
//! returns to column 0 (so `\r`-driven progress bars show their final state), `\t` moves
//! to the next multiple of 8, backspace moves left. SGR sequences (`CSI … m`) update the
//! style. Everything else — other C0/C1 controls, OSC (titles, hyperlinks, clipboard),
//! DCS/SOS/PM/APC strings, cursor movement, erase, mode changes — is dropped and never
//! re-emitted. Bidirectional embedding/override/isolate controls are dropped too.
//!
//! The result contains no ESC, no C0/C1 control characters and no DEL. For the TUI at
//! most [`MAX_COLUMNS`] cells are kept and at most [`MAX_INPUT_BYTES`] input bytes are
//! parsed, so a single huge line cannot make a frame slow. Headless printing to a
//! terminal must show the whole line instead: [`styled_line_full`] and [`plain_text_full`]
//! keep every cell of their input, whose size bounds the work and memory (the printer
//! hands them lines of at most [`crate::output::MAX_LINE_BYTES`]).
//!
//! One character occupies one cell (double-width and combining characters are not
//! measured), which only matters when `\r`/backspace overwrite part of a line.

use std::fmt::Write as _;

use vte::{Params, Parser, Perform};

/// Cells kept per line; anything printed beyond this column is dropped.
pub const MAX_COLUMNS: usize = 4096;
/// Input bytes parsed per line; the rest is ignored.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// A colour: 0-15 are the ANSI palette (8-15 the bright variants), 16-255 the xterm cube
/// and grey ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    Indexed(u8),
    Rgb(u8, u8, u8),
}

/// Text attributes of a run of cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TextStyle {
    pub fg: Option<Color>,
    pub bg: Option<Color>,
    pub bold: bool,
    pub dim: bool,
    pub italic: bool,
    pub underline: bool,
    pub reverse: bool,
    pub strikethrough: bool,
}

/// Sanitised text with one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyledSpan {
    pub text: String,
    pub style: TextStyle,
}

/// Render `bytes` (one line, no terminator) to styled spans; adjacent cells with equal
/// style are merged. An empty result means an empty line.
pub fn styled_line(bytes: &[u8]) -> Vec<StyledSpan> {
    styled_line_within(bytes, Limits::TUI)
}

/// Like [`styled_line`], keeping every cell however long the line is.
pub fn styled_line_full(bytes: &[u8]) -> Vec<StyledSpan> {
    styled_line_within(bytes, Limits::whole(bytes))
}

/// How much of a line is rendered.
#[derive(Debug, Clone, Copy)]
struct Limits {
    columns: usize,
    input: usize,
}

impl Limits {
    const TUI: Limits = Limits {
        columns: MAX_COLUMNS,
        input: MAX_INPUT_BYTES,
    };

    /// Enough for every cell of `bytes`: a byte makes at most one cell, except a tab,
    /// which makes at most 8.
    fn whole(bytes: &[u8]) -> Limits {
        Limits {
            columns: bytes.len().saturating_mul(8),
            input: bytes.len(),
        }
    }
}

fn styled_line_within(bytes: &[u8], limits: Limits) -> Vec<StyledSpan> {
    if let Some(text) = plain_ascii(bytes, limits.columns) {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![StyledSpan {
                text: text.to_owned(),
                style: TextStyle::default(),
            }]
        };
    }
    let cells = render(bytes, limits);
    let mut spans: Vec<StyledSpan> = Vec::new();
    for cell in cells {
        match spans.last_mut() {
            Some(last) if last.style == cell.style => last.text.push(cell.ch),
            _ => spans.push(StyledSpan {
                text: cell.ch.to_string(),
                style: cell.style,
            }),
        }
    }
    spans
}

/// Render `bytes` like [`styled_line`] but discard the styles.
pub fn plain_text(bytes: &[u8]) -> String {
    plain_text_within(bytes, Limits::TUI)
}

/// Like [`plain_text`], keeping every cell however long the line is.
pub fn plain_text_full(bytes: &[u8]) -> String {
    plain_text_within(bytes, Limits::whole(bytes))
}

fn plain_text_within(bytes: &[u8], limits: Limits) -> String {
    if let Some(text) = plain_ascii(bytes, limits.columns) {
        return text.to_owned();
    }
    render(bytes, limits).into_iter().map(|c| c.ch).collect()
}

/// Re-encode spans for a colour terminal with minimal SGR sequences, ending with a reset
/// if any style was set. Control characters in span text are dropped, so the output
/// contains ESC only as part of `ESC [ … m`.
pub fn to_ansi(spans: &[StyledSpan]) -> String {
    let cap = spans.iter().map(|s| s.text.len() + 8).sum();
    let mut out = String::with_capacity(cap);
    let mut current = TextStyle::default();
    for span in spans {
        if !span.text.chars().any(is_safe) {
            continue;
        }
        if span.style != current {
            write_transition(&mut out, &current, &span.style);
            current = span.style;
        }
        out.extend(span.text.chars().filter(|&c| is_safe(c)));
    }
    if current != TextStyle::default() {
        out.push_str("\x1b[0m");
    }
    out
}

/// Whether `c` may be shown: not a C0/C1 control or DEL, not a bidi override.
#[inline]
fn is_safe(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// Fast path: printable ASCII only (no controls at all), truncated to `columns`.
fn plain_ascii(bytes: &[u8], columns: usize) -> Option<&str> {
    let bytes = bytes.get(..columns).unwrap_or(bytes);
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    ch: char,
    style: TextStyle,
}

fn render(bytes: &[u8], limits: Limits) -> Vec<Cell> {
    let bytes = bytes.get(..limits.input).unwrap_or(bytes);
    let mut line = LineModel {
        cells: Vec::with_capacity(bytes.len().min(limits.columns)),
        cursor: 0,
        style: TextStyle::default(),
        max_columns: limits.columns,
    };
    let mut parser = Parser::new();
    parser.advance(&mut line, bytes);
    // CAN aborts any unfinished sequence and turns a truncated UTF-8 tail into U+FFFD.
    parser.advance(&mut line, &[0x18]);
    line.cells
}

/// One terminal row. Invariant: `cursor <= cells.len() <= max_columns`.
struct LineModel {
    cells: Vec<Cell>,
    cursor: usize,
    style: TextStyle,
    max_columns: usize,
}

impl Perform for LineModel {
    fn print(&mut self, ch: char) {
        if !is_safe(ch) || self.cursor >= self.max_columns {
            return;
        }
        let cell = Cell {
            ch,
            style: self.style,
        };
        match self.cells.get_mut(self.cursor) {
            Some(slot) => *slot = cell,
            None => self.cells.push(cell),
        }
        self.cursor += 1;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\r' => self.cursor = 0,
            0x08 => self.cursor = self.cursor.saturating_sub(1),
            b'\t' => {
                let next = ((self.cursor / 8 + 1) * 8).min(self.max_columns);
                while self.cells.len() < next {
                    self.cells.push(Cell {
                        ch: ' ',
                        style: TextStyle::default(),
                    });
                }
                self.cursor = next;
            }
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        // Private markers (`?`, `>` …) are collected as intermediates: `CSI > 4 m` is not SGR.
        if action == 'm' && intermediates.is_empty() && !ignore {
            apply_sgr(&mut self.style, params);
        }
    }
}

fn apply_sgr(style: &mut TextStyle, params: &Params) {
    let mut it = params.iter();
    while let Some(param) = it.next() {
        let Some(&code) = param.first() else {
            continue;
        };
        match code {
            0 => *style = TextStyle::default(),
            1 => style.bold = true,
            2 => style.dim = true,
            3 => style.italic = true,
            // `4:0` is "no underline"; `4:n` are underline styles.
            4 => style.underline = param.get(1).is_none_or(|&s| s != 0),
            7 => style.reverse = true,
            9 => style.strikethrough = true,
            21 => style.underline = true,
            22 => {
                style.bold = false;
                style.dim = false;
            }
            23 => style.italic = false,
            24 => style.underline = false,
            27 => style.reverse = false,
            29 => style.strikethrough = false,
            30..=37 => style.fg = Some(Color::Indexed((code - 30) as u8)),
            38 => {
                if let Some(c) = extended_color(param, &mut it) {
                    style.fg = Some(c);
                }
            }
            39 => style.fg = None,
            40..=47 => style.bg = Some(Color::Indexed((code - 40) as u8)),
            48 => {
                if let Some(c) = extended_color(param, &mut it) {
                    style.bg = Some(c);
                }
            }
            49 => style.bg = None,
            // Underline colour: parsed so its arguments are consumed, then ignored.
            58 => {
                let _ = extended_color(param, &mut it);
            }
            90..=97 => style.fg = Some(Color::Indexed((code - 90 + 8) as u8)),
            100..=107 => style.bg = Some(Color::Indexed((code - 100 + 8) as u8)),
            _ => {}
        }
    }
}

/// Parse the colour after a 38/48/58: colon form (`38:5:n`, `38:2:r:g:b`, `38:2:cs:r:g:b`)
/// from `param`'s subparameters, or semicolon form (`38;5;n`, `38;2;r;g;b`) by consuming
/// the following parameters. `None` if malformed or out of range.
fn extended_color<'a>(param: &[u16], rest: &mut impl Iterator<Item = &'a [u16]>) -> Option<Color> {
    if param.len() > 1 {
        return match param.get(1)? {
            5 => Some(Color::Indexed(u8::try_from(*param.get(2)?).ok()?)),
            2 => {
                let rgb = if param.len() >= 6 {
                    param.get(3..6)?
                } else {
                    param.get(2..5)?
                };
                rgb_color(rgb)
            }
            _ => None,
        };
    }
    let mut next = || rest.next().and_then(|p| p.first().copied());
    match next()? {
        5 => Some(Color::Indexed(u8::try_from(next()?).ok()?)),
        2 => {
            let rgb = [next()?, next()?, next()?];
            rgb_color(&rgb)
        }
        _ => None,
    }
}

fn rgb_color(rgb: &[u16]) -> Option<Color> {
    match rgb {
        [r, g, b, ..] => Some(Color::Rgb(
            u8::try_from(*r).ok()?,
            u8::try_from(*g).ok()?,
            u8::try_from(*b).ok()?,
        )),
        _ => None,
    }
}

/// Append the SGR sequence taking the terminal from style `from` to style `to`: the
/// shorter of an incremental change and a reset followed by `to`'s attributes.
fn write_transition(out: &mut String, from: &TextStyle, to: &TextStyle) {
    let mut incremental = String::new();
    let mut base = *from;
    if (base.bold && !to.bold) || (base.dim && !to.dim) {
        push_code(&mut incremental, "22");
        base.bold = false;
        base.dim = false;
    }
    let offs = [
        (base.italic && !to.italic, "23"),
        (base.underline && !to.underline, "24"),
        (base.reverse && !to.reverse, "27"),
        (base.strikethrough && !to.strikethrough, "29"),
        (base.fg.is_some() && to.fg.is_none(), "39"),
        (base.bg.is_some() && to.bg.is_none(), "49"),
    ];
    for (off, code) in offs {
        if off {
            push_code(&mut incremental, code);
        }
    }
    write_additions(&mut incremental, &base, to);

    let mut reset = String::from("0");
    write_additions(&mut reset, &TextStyle::default(), to);

    let params = if incremental.len() < reset.len() {
        incremental
    } else {
        reset
    };
    out.push_str("\x1b[");
    out.push_str(&params);
    out.push('m');
}

/// Codes for what `to` sets that `from` lacks (attributes and differing colours).
fn write_additions(out: &mut String, from: &TextStyle, to: &TextStyle) {
    let ons = [
        (to.bold && !from.bold, "1"),
        (to.dim && !from.dim, "2"),
        (to.italic && !from.italic, "3"),
        (to.underline && !from.underline, "4"),
        (to.reverse && !from.reverse, "7"),
        (to.strikethrough && !from.strikethrough, "9"),
    ];
    for (on, code) in ons {
        if on {
            push_code(out, code);
        }
    }
    if let Some(fg) = to.fg
        && from.fg != to.fg
    {
        push_color(out, fg, 30, 90, 38);
    }
    if let Some(bg) = to.bg
        && from.bg != to.bg
    {
        push_color(out, bg, 40, 100, 48);
    }
}

fn push_code(out: &mut String, code: &str) {
    if !out.is_empty() {
        out.push(';');
    }
    out.push_str(code);
}

fn push_color(out: &mut String, color: Color, base: u16, bright: u16, extended: u16) {
    if !out.is_empty() {
        out.push(';');
    }
    // Writing to a String cannot fail.
    let _ = match color {
        Color::Indexed(n @ 0..=7) => write!(out, "{}", base + u16::from(n)),
        Color::Indexed(n @ 8..=15) => write!(out, "{}", bright + u16::from(n - 8)),
        Color::Indexed(n) => write!(out, "{extended};5;{n}"),
        Color::Rgb(r, g, b) => write!(out, "{extended};2;{r};{g};{b}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testutil::XorShift;

    fn assert_safe(s: &str) {
        for c in s.chars() {
            assert!(
                !c.is_control(),
                "control char {:?} survived in {s:?}",
                c as u32
            );
            assert!(!('\u{80}'..='\u{9f}').contains(&c), "C1 in {s:?}");
            assert!(is_safe(c), "unsafe char {:?} in {s:?}", c as u32);
        }
    }

    /// ESC may only appear as part of `ESC [ <digits and ;> m`.
    fn assert_ansi_safe(s: &str) {
        let mut rest = s;
        while let Some(i) = rest.find('\x1b') {
            let (before, after) = rest.split_at(i);
            assert_safe(before);
            let after = &after[1..];
            assert!(after.starts_with('['), "bare ESC in {s:?}");
            let end = after.find('m').expect("unterminated SGR");
            assert!(
                after[1..end]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ';'),
                "bad SGR in {s:?}"
            );
            rest = &after[end + 1..];
        }
        assert_safe(rest);
    }

    fn plain(bytes: &[u8]) -> String {
        let text = plain_text(bytes);
        assert_safe(&text);
        let spans = styled_line(bytes);
        let joined: String = spans.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, text, "styled_line and plain_text disagree");
        assert_ansi_safe(&to_ansi(&spans));
        text
    }

    fn style_of(bytes: &[u8]) -> TextStyle {
        let spans = styled_line(bytes);
        assert_eq!(spans.len(), 1, "{spans:?}");
        spans[0].style
    }

    fn fg(c: Color) -> TextStyle {
        TextStyle {
            fg: Some(c),
            ..TextStyle::default()
        }
    }

    #[test]
    fn plain_ascii_passes_through() {
        assert_eq!(plain(b"hello world"), "hello world");
        assert_eq!(plain(b""), "");
        assert!(styled_line(b"").is_empty());
        assert_eq!(
            styled_line(b"hi"),
            [StyledSpan {
                text: "hi".into(),
                style: TextStyle::default()
            }]
        );
    }

    #[test]
    fn utf8_passes_and_invalid_becomes_replacement() {
        assert_eq!(plain("héllo ✓ 日本".as_bytes()), "héllo ✓ 日本");
        assert_eq!(plain(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(plain(b"a\xe2\x82"), "a\u{FFFD}");
        assert_eq!(plain(b"\xe2\x82\x1b[1mx"), "\u{FFFD}x");
    }

    #[test]
    fn carriage_return_overwrites() {
        assert_eq!(plain(b"abcdef\rXY"), "XYcdef");
        assert_eq!(plain(b"\r10%\r20%"), "20%");
        assert_eq!(plain(b"[##    ] 20%\r[######] 100%"), "[######] 100%");
        assert_eq!(plain(b"abc\r"), "abc");
    }

    #[test]
    fn tab_and_backspace() {
        assert_eq!(plain(b"a\tb"), "a       b");
        assert_eq!(plain(b"12345678\tx"), "12345678        x");
        assert_eq!(plain(b"abcdefghij\r\tX"), "abcdefghXj");
        assert_eq!(plain(b"abc\x08\x08X"), "aXc");
        assert_eq!(plain(b"\x08\x08a"), "a");
        assert_eq!(plain(b"ab\x08"), "ab");
    }

    #[test]
    fn hostile_sequences_are_dropped() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x1b]0;evil title\x07after", "after"),
            (b"\x1b]2;title\x1b\\after", "after"),
            (
                b"\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ here",
                "click here",
            ),
            (b"\x1b[2Jcleared", "cleared"),
            (b"\x1b[?1049halt\x1b[?1049l", "alt"),
            (b"\x1b[Hhome\x1b[10;20Hxy", "homexy"),
            (b"a\x1b[5Ab\x1b[3Cc\x1b[2Dd", "abcd"),
            (b"\x1b[?25lhidden cursor", "hidden cursor"),
            (b"\x1b[6n\x1b[c\x1b[>c", ""),
            (b"\x9b31mraw c1", "31mraw c1"),
            ("\u{9b}31mutf8 c1\u{85}\u{9d}x".as_bytes(), "31mutf8 c1x"),
            (
                b"bell\x07 nul\x00 del\x7f vt\x0b ff\x0c",
                "bell nul del vt ff",
            ),
            (b"lone esc\x1b", "lone esc"),
            (b"trunc\x1b[1;3", "trunc"),
            (b"trunc osc\x1b]0;never ends", "trunc osc"),
            (b"\x1bP1$qm\x1b\\dcs", "dcs"),
            (b"\x1b_apc payload\x1b\\apc", "apc"),
            (b"\x1b^pm\x1b\\pm", "pm"),
            (b"\x1bXsos\x1b\\sos", "sos"),
            (b"\x1b7\x1b8\x1bc\x1b(0\x1b#8esc", "esc"),
            (b"\x1b]52;c;ZXZpbA==\x07clip", "clip"),
            (b"\x1b[>4;2mkeys", "keys"),
            ("bidi\u{202E}txt\u{2066}".as_bytes(), "biditxt"),
            (b"\x1b[1;31\x18m", "m"),
        ];
        for (input, want) in cases {
            assert_eq!(plain(input), *want, "input {input:?}");
        }
        // Private-mode `m` must not change the style.
        assert_eq!(style_of(b"\x1b[>4;2mkeys"), TextStyle::default());
    }

    #[test]
    fn sgr_attributes() {
        let bold = TextStyle {
            bold: true,
            ..TextStyle::default()
        };
        assert_eq!(style_of(b"\x1b[1mx"), bold);
        let all = style_of(b"\x1b[1;2;3;4;7;9mx");
        assert!(all.bold && all.dim && all.italic && all.underline && all.reverse);
        assert!(all.strikethrough);
        assert_eq!(
            style_of(b"\x1b[1;2;3;4;7;9m\x1b[22;23;24;27;29mx"),
            TextStyle::default()
        );
        assert_eq!(style_of(b"\x1b[1;31m\x1b[mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[1;31m\x1b[0mx"), TextStyle::default());
        assert!(style_of(b"\x1b[4:3mx").underline);
        assert!(!style_of(b"\x1b[4m\x1b[4:0mx").underline);
        assert!(style_of(b"\x1b[21mx").underline);
        // Unknown codes are ignored.
        assert_eq!(style_of(b"\x1b[5;6;8;53;73mx"), TextStyle::default());
    }

    #[test]
    fn sgr_colors() {
        assert_eq!(style_of(b"\x1b[31mx"), fg(Color::Indexed(1)));
        assert_eq!(style_of(b"\x1b[97mx"), fg(Color::Indexed(15)));
        assert_eq!(style_of(b"\x1b[38;5;208mx"), fg(Color::Indexed(208)));
        assert_eq!(style_of(b"\x1b[38:5:208mx"), fg(Color::Indexed(208)));
        assert_eq!(style_of(b"\x1b[38;2;1;2;3mx"), fg(Color::Rgb(1, 2, 3)));
        assert_eq!(style_of(b"\x1b[38:2:1:2:3mx"), fg(Color::Rgb(1, 2, 3)));
        assert_eq!(style_of(b"\x1b[38:2::1:2:3mx"), fg(Color::Rgb(1, 2, 3)));
        assert_eq!(style_of(b"\x1b[38:2:0:1:2:3mx"), fg(Color::Rgb(1, 2, 3)));
        assert_eq!(style_of(b"\x1b[31;39mx"), TextStyle::default());
        let bg = style_of(b"\x1b[44mx").bg;
        assert_eq!(bg, Some(Color::Indexed(4)));
        assert_eq!(style_of(b"\x1b[103mx").bg, Some(Color::Indexed(11)));
        assert_eq!(style_of(b"\x1b[48;5;17mx").bg, Some(Color::Indexed(17)));
        assert_eq!(style_of(b"\x1b[48;2;9;8;7mx").bg, Some(Color::Rgb(9, 8, 7)));
        assert_eq!(style_of(b"\x1b[48:2:9:8:7mx").bg, Some(Color::Rgb(9, 8, 7)));
        assert_eq!(style_of(b"\x1b[44;49mx").bg, None);
        // Parameters after an extended colour still apply.
        let s = style_of(b"\x1b[38;5;1;1mx");
        assert_eq!((s.fg, s.bold), (Some(Color::Indexed(1)), true));
        let s = style_of(b"\x1b[58;5;1;3mx");
        assert_eq!((s.fg, s.italic), (None, true));
        // Malformed / out of range: ignored, no panic.
        assert_eq!(style_of(b"\x1b[38;5;300mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[38;2;1;2mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[38mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[38:2:1mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[38;7mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[38;2;999;0;0mx"), TextStyle::default());
        assert_eq!(style_of(b"\x1b[65535;99999mx"), TextStyle::default());
    }

    #[test]
    fn spans_merge_and_split_on_style() {
        let spans = styled_line(b"a\x1b[31mbc\x1b[31md\x1b[0me");
        let red = fg(Color::Indexed(1));
        assert_eq!(
            spans,
            [
                StyledSpan {
                    text: "a".into(),
                    style: TextStyle::default()
                },
                StyledSpan {
                    text: "bcd".into(),
                    style: red
                },
                StyledSpan {
                    text: "e".into(),
                    style: TextStyle::default()
                },
            ]
        );
        // Overwriting keeps the new cell's style.
        let spans = styled_line(b"\x1b[32mgreen\r\x1b[0mG");
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].text, "G");
        assert_eq!(spans[1].text, "reen");
        assert_eq!(spans[1].style, fg(Color::Indexed(2)));
    }

    #[test]
    fn columns_are_capped() {
        let long = vec![b'x'; 100_000];
        assert_eq!(plain(&long).len(), MAX_COLUMNS);
        let mut colored = b"\x1b[31m".to_vec();
        colored.extend_from_slice(&long);
        colored.extend_from_slice(b"\rSTART");
        let text = plain(&colored);
        assert_eq!(text.len(), MAX_COLUMNS);
        assert!(text.starts_with("STARTxxx"));
        let tabs = vec![b'\t'; 10_000];
        assert_eq!(plain(&tabs).len(), MAX_COLUMNS);
    }

    #[test]
    fn full_lines_keep_every_cell() {
        let long = vec![b'x'; 10_000];
        assert_eq!(plain_text_full(&long).len(), 10_000);
        // A 6000-cell colour run keeps its end, and its colour to the end.
        let mut colored = b"\x1b[31m".to_vec();
        colored.extend(std::iter::repeat_n(b'y', 6000));
        colored.extend_from_slice(b"\x1b]0;title\x07END");
        let spans = styled_line_full(&colored);
        let text: String = spans.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(text.len(), 6003);
        assert!(text.ends_with("yyyEND"), "{}", &text[5990..]);
        assert!(spans.iter().all(|s| s.style == fg(Color::Indexed(1))));
        assert_ansi_safe(&to_ansi(&spans));
        let tabs = vec![b'\t'; 10_000];
        assert_eq!(plain_text_full(&tabs).len(), 80_000);
        let mut cr = vec![b'z'; 9000];
        cr.extend_from_slice(b"\rSTART");
        let text = plain_text_full(&cr);
        assert_eq!(text.len(), 9000);
        assert!(text.starts_with("STARTzzz"));
    }

    #[test]
    fn to_ansi_round_trip() {
        let input = b"plain \x1b[1;31mbold red\x1b[22m red \x1b[0;4;38;2;1;2;3mrgb\x1b[0m end";
        let spans = styled_line(input);
        let ansi = to_ansi(&spans);
        assert_ansi_safe(&ansi);
        assert!(ansi.ends_with("end"), "{ansi:?}");
        // Parsing our own output gives the same spans back.
        assert_eq!(styled_line(ansi.as_bytes()), spans);
        assert_eq!(
            to_ansi(&styled_line(b"\x1b[1;31mhot")),
            "\x1b[1;31mhot\x1b[0m"
        );
        assert_eq!(
            to_ansi(&styled_line(b"\x1b[31ma\x1b[39mb")),
            "\x1b[31ma\x1b[0mb"
        );
        assert_eq!(
            to_ansi(&styled_line(b"\x1b[1;31ma\x1b[22mb")),
            "\x1b[1;31ma\x1b[22mb\x1b[0m"
        );
        assert_eq!(
            to_ansi(&styled_line(b"\x1b[92;48;5;200ma")),
            "\x1b[92;48;5;200ma\x1b[0m"
        );
        assert_eq!(to_ansi(&styled_line(b"no style")), "no style");
        assert_eq!(to_ansi(&[]), "");
        // Hand-built spans with control characters are cleaned.
        let evil = [StyledSpan {
            text: "a\x1b]0;x\x07b\u{9b}c".into(),
            style: TextStyle {
                bold: true,
                ..TextStyle::default()
            },
        }];
        let out = to_ansi(&evil);
        assert_ansi_safe(&out);
        assert_eq!(out, "\x1b[1ma]0;xbc\x1b[0m");
    }

    #[test]
    fn to_ansi_round_trips_random_styles() {
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..2000 {
            let mut spans: Vec<StyledSpan> = Vec::new();
            for i in 0..1 + rng.below(6) {
                let color = |rng: &mut XorShift| match rng.below(4) {
                    0 => None,
                    1 => Some(Color::Indexed(rng.below(16) as u8)),
                    2 => Some(Color::Indexed(rng.below(256) as u8)),
                    _ => Some(Color::Rgb(
                        rng.below(256) as u8,
                        rng.below(256) as u8,
                        rng.below(256) as u8,
                    )),
                };
                let style = TextStyle {
                    fg: color(&mut rng),
                    bg: color(&mut rng),
                    bold: rng.below(2) == 0,
                    dim: rng.below(2) == 0,
                    italic: rng.below(2) == 0,
                    underline: rng.below(2) == 0,
                    reverse: rng.below(2) == 0,
                    strikethrough: rng.below(2) == 0,
                };
                if spans.last().is_some_and(|s| s.style == style) {
                    continue;
                }
                spans.push(StyledSpan {
                    text: format!("s{i}"),
                    style,
                });
            }
            let ansi = to_ansi(&spans);
            assert_ansi_safe(&ansi);
            assert_eq!(styled_line(ansi.as_bytes()), spans, "{ansi:?}");
        }
    }

    #[test]
    fn random_bytes_never_leak_controls() {
        let mut rng = XorShift(0x1234_5678_9ABC_DEF1);
        // Biased towards bytes that matter to terminals.
        let interesting: &[u8] = b"\x1b\x1b[]P\\^_X;:?>0123456789mHJhl\x07\x08\t\r\n\x00\x18\x1a\x7f\x9b\x9c\x9d\x90\xc2\xe2\x80\x85\xff";
        for _ in 0..20_000 {
            let len = rng.below(80);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        rng.next() as u8
                    } else {
                        interesting[rng.below(interesting.len())]
                    }
                })
                .collect();
            let text = plain_text(&bytes);
            assert_safe(&text);
            assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'));
            let spans = styled_line(&bytes);
            for s in &spans {
                assert_safe(&s.text);
                assert!(!s.text.is_empty());
            }
            assert_ansi_safe(&to_ansi(&spans));
        }
    }

    #[test]
    fn renders_a_coloured_cargo_line_as_three_spans() {
        let line =
            b"\x1b[1;32m   Compiling\x1b[0m forkyard v0.1.0 (/work/main) \x1b[2m[12/345]\x1b[0m";
        let spans = styled_line(line);
        assert_eq!(spans.len(), 3);
        assert!(spans[0].style.bold && spans[0].text == "   Compiling");
        assert!(spans[2].style.dim);
    }
}
