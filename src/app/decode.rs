//! Terminal input bytes → key and mouse events (crossterm's event types).
//!
//! forkyard reads its terminal itself (see `input.rs`) instead of through crossterm's
//! event reader, whose read loop spins forever once the terminal is gone: it retries a
//! read that returns EOF or EIO. This decoder covers what a terminal sends to a program
//! that enabled SGR mouse reporting: UTF-8 text, control keys, Alt as an ESC prefix, CSI
//! and SS3 sequences for arrows, Home/End, PgUp/PgDn, Insert/Delete, F1–F12 (with
//! modifiers), Shift-Tab, SGR mouse reports, and bracketed pastes (`ESC [ 200 ~` …
//! `ESC [ 201 ~`, one [`Event::Paste`]). Anything else is dropped.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

const ESC: u8 = 0x1b;
/// A sequence longer than this is garbage: drop it rather than wait for its end.
const MAX_SEQUENCE: usize = 64;

/// The most of one paste kept (the rest until its end marker is dropped).
const MAX_PASTE: usize = 1 << 20;
const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

/// Keeps a sequence that a read cut in two until the rest arrives.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
    /// Inside a bracketed paste: its text so far.
    paste: Option<Vec<u8>>,
}

/// What one step of decoding found.
enum Step {
    /// An event (or nothing worth reporting) and the bytes it used.
    Done(Option<Event>, usize),
    /// The bytes so far start a sequence that is not complete yet.
    Incomplete,
}

impl Decoder {
    /// Decodes `bytes` (one read's worth, after whatever an earlier read left).
    /// An ESC at the very end is the Esc key: a terminal sends a sequence in one write.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut at = 0;
        while at < self.pending.len() {
            if let Some(paste) = &mut self.paste {
                let rest = &self.pending[at..];
                match memchr::memmem::find(rest, PASTE_END) {
                    Some(end) => {
                        let room = MAX_PASTE.saturating_sub(paste.len());
                        paste.extend_from_slice(&rest[..end.min(room)]);
                        let text = String::from_utf8_lossy(paste).into_owned();
                        events.push(Event::Paste(text));
                        self.paste = None;
                        at += end + PASTE_END.len();
                        continue;
                    }
                    None => {
                        // Keep what could be the start of the end marker.
                        let keep = (1..PASTE_END.len())
                            .rev()
                            .find(|n| rest.ends_with(&PASTE_END[..*n]))
                            .unwrap_or(0);
                        let take = rest.len() - keep;
                        let room = MAX_PASTE.saturating_sub(paste.len());
                        paste.extend_from_slice(&rest[..take.min(room)]);
                        at += take;
                        break;
                    }
                }
            }
            if self.pending[at..].starts_with(PASTE_START) {
                self.paste = Some(Vec::new());
                at += PASTE_START.len();
                continue;
            }
            match step(&self.pending[at..]) {
                Step::Done(event, used) => {
                    events.extend(event);
                    at += used.max(1);
                }
                Step::Incomplete if self.pending.len() - at > MAX_SEQUENCE => at += 1,
                Step::Incomplete => break,
            }
        }
        self.pending.drain(..at);
        events
    }
}

fn key(code: KeyCode, mods: KeyModifiers) -> Option<Event> {
    Some(Event::Key(KeyEvent::new(code, mods)))
}

fn step(bytes: &[u8]) -> Step {
    let Some(&first) = bytes.first() else {
        return Step::Done(None, 0);
    };
    match first {
        ESC => escape(bytes),
        _ => match plain(bytes) {
            Some((code, mods, used)) => Step::Done(key(code, mods), used),
            None => Step::Incomplete,
        },
    }
}

/// One key that is not an escape sequence: a control byte or a UTF-8 character. None
/// when the character is cut off.
fn plain(bytes: &[u8]) -> Option<(KeyCode, KeyModifiers, usize)> {
    let first = *bytes.first()?;
    let none = KeyModifiers::NONE;
    let ctrl = KeyModifiers::CONTROL;
    Some(match first {
        b'\r' => (KeyCode::Enter, none, 1),
        b'\t' => (KeyCode::Tab, none, 1),
        0x7f | 0x08 => (KeyCode::Backspace, none, 1),
        0x00 => (KeyCode::Char(' '), ctrl, 1),
        0x01..=0x1a => (KeyCode::Char((b'a' + first - 1) as char), ctrl, 1),
        0x1c..=0x1f => (KeyCode::Char((b'4' + first - 0x1c) as char), ctrl, 1),
        ESC => (KeyCode::Esc, none, 1),
        _ => {
            let len = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                // A stray continuation byte: skip it.
                _ => return Some((KeyCode::Null, none, 1)),
            };
            if bytes.len() < len {
                return None;
            }
            match std::str::from_utf8(&bytes[..len])
                .ok()
                .and_then(|s| s.chars().next())
            {
                Some(c) if !c.is_control() => (KeyCode::Char(c), none, len),
                _ => (KeyCode::Null, none, len),
            }
        }
    })
}

fn escape(bytes: &[u8]) -> Step {
    match bytes.get(1) {
        None => Step::Done(key(KeyCode::Esc, KeyModifiers::NONE), 1),
        Some(b'[') => csi(bytes),
        Some(b'O') => match bytes.get(2) {
            // ESC O at the end: Alt-O.
            None => Step::Done(key(KeyCode::Char('O'), KeyModifiers::ALT), 2),
            Some(&b) => Step::Done(final_key(b).and_then(|c| key(c, KeyModifiers::NONE)), 3),
        },
        // ESC ESC: the first is Esc.
        Some(&ESC) => Step::Done(key(KeyCode::Esc, KeyModifiers::NONE), 1),
        Some(_) => match plain(&bytes[1..]) {
            Some((code, mods, used)) => Step::Done(key(code, mods | KeyModifiers::ALT), used + 1),
            None => Step::Incomplete,
        },
    }
}

/// The key of a CSI or SS3 sequence's final byte (arrows, Home, End, F1–F4).
fn final_key(byte: u8) -> Option<KeyCode> {
    Some(match byte {
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        b'P' => KeyCode::F(1),
        b'Q' => KeyCode::F(2),
        b'R' => KeyCode::F(3),
        b'S' => KeyCode::F(4),
        _ => return None,
    })
}

/// xterm's modifier parameter: 1 + (shift 1, alt 2, ctrl 4, meta 8).
fn modifiers(param: Option<u16>) -> KeyModifiers {
    let bits = param.unwrap_or(1).saturating_sub(1);
    let mut mods = KeyModifiers::NONE;
    if bits & 1 != 0 {
        mods |= KeyModifiers::SHIFT;
    }
    if bits & (2 | 8) != 0 {
        mods |= KeyModifiers::ALT;
    }
    if bits & 4 != 0 {
        mods |= KeyModifiers::CONTROL;
    }
    mods
}

fn csi(bytes: &[u8]) -> Step {
    // ESC [ M b x y: an X10 mouse report (not enabled; skip it whole).
    if bytes.get(2) == Some(&b'M') {
        return if bytes.len() >= 6 {
            Step::Done(None, 6)
        } else {
            Step::Incomplete
        };
    }
    // Parameter and intermediate bytes, then a final byte in 0x40..=0x7e.
    let Some(end) = bytes
        .iter()
        .skip(2)
        .position(|b| (0x40..=0x7e).contains(b))
        .map(|i| i + 2)
    else {
        return Step::Incomplete;
    };
    let body = &bytes[2..end];
    let last = bytes[end];
    let used = end + 1;
    if body.first() == Some(&b'<') {
        return Step::Done(sgr_mouse(&body[1..], last), used);
    }
    if body.iter().any(|b| !(b.is_ascii_digit() || *b == b';')) {
        return Step::Done(None, used);
    }
    let params: Vec<Option<u16>> = body
        .split(|b| *b == b';')
        .map(|p| std::str::from_utf8(p).ok()?.parse().ok())
        .collect();
    let param = |i: usize| params.get(i).copied().flatten();
    let event = match last {
        b'Z' => key(KeyCode::BackTab, KeyModifiers::NONE),
        b'~' => {
            let code = match param(0) {
                Some(1 | 7) => Some(KeyCode::Home),
                Some(2) => Some(KeyCode::Insert),
                Some(3) => Some(KeyCode::Delete),
                Some(4 | 8) => Some(KeyCode::End),
                Some(5) => Some(KeyCode::PageUp),
                Some(6) => Some(KeyCode::PageDown),
                Some(n @ 11..=15) => Some(KeyCode::F((n - 10) as u8)),
                Some(n @ 17..=21) => Some(KeyCode::F((n - 11) as u8)),
                Some(n @ 23..=24) => Some(KeyCode::F((n - 12) as u8)),
                _ => None,
            };
            code.and_then(|c| key(c, modifiers(param(1))))
        }
        b => final_key(b).and_then(|c| key(c, modifiers(param(1)))),
    };
    Step::Done(event, used)
}

/// `ESC [ < b ; x ; y M` (press, wheel, motion) or `… m` (release), 1-based cells.
fn sgr_mouse(body: &[u8], last: u8) -> Option<Event> {
    let text = std::str::from_utf8(body).ok()?;
    let mut fields = text.split(';').map(|f| f.parse::<u16>().ok());
    let (b, x, y) = (fields.next()??, fields.next()??, fields.next()??);
    let button = match b & 0b11 {
        0 => MouseButton::Left,
        1 => MouseButton::Middle,
        _ => MouseButton::Right,
    };
    let kind = if b & 64 != 0 {
        match b & 0b11 {
            0 => MouseEventKind::ScrollUp,
            1 => MouseEventKind::ScrollDown,
            2 => MouseEventKind::ScrollLeft,
            _ => MouseEventKind::ScrollRight,
        }
    } else if b & 32 != 0 {
        if b & 0b11 == 3 {
            MouseEventKind::Moved
        } else {
            MouseEventKind::Drag(button)
        }
    } else if last == b'm' {
        MouseEventKind::Up(button)
    } else {
        MouseEventKind::Down(button)
    };
    let mut modifiers = KeyModifiers::NONE;
    if b & 4 != 0 {
        modifiers |= KeyModifiers::SHIFT;
    }
    if b & 8 != 0 {
        modifiers |= KeyModifiers::ALT;
    }
    if b & 16 != 0 {
        modifiers |= KeyModifiers::CONTROL;
    }
    Some(Event::Mouse(MouseEvent {
        kind,
        column: x.saturating_sub(1),
        row: y.saturating_sub(1),
        modifiers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<(KeyCode, KeyModifiers)> {
        Decoder::default()
            .feed(bytes)
            .into_iter()
            .filter_map(|e| match e {
                Event::Key(k) if k.code != KeyCode::Null => Some((k.code, k.modifiers)),
                _ => None,
            })
            .collect()
    }

    const NONE: KeyModifiers = KeyModifiers::NONE;

    #[test]
    fn text_and_control_keys() {
        assert_eq!(
            keys(b"aK/\r\t\x7f\x03\x15"),
            [
                (KeyCode::Char('a'), NONE),
                (KeyCode::Char('K'), NONE),
                (KeyCode::Char('/'), NONE),
                (KeyCode::Enter, NONE),
                (KeyCode::Tab, NONE),
                (KeyCode::Backspace, NONE),
                (KeyCode::Char('c'), KeyModifiers::CONTROL),
                (KeyCode::Char('u'), KeyModifiers::CONTROL),
            ]
        );
        assert_eq!(
            keys("é€".as_bytes()),
            [(KeyCode::Char('é'), NONE), (KeyCode::Char('€'), NONE)]
        );
    }

    #[test]
    fn escape_sequences_as_tmux_sends_them() {
        assert_eq!(keys(b"\x1b"), [(KeyCode::Esc, NONE)]);
        assert_eq!(
            keys(b"\x1b\x1b"),
            [(KeyCode::Esc, NONE), (KeyCode::Esc, NONE)]
        );
        assert_eq!(
            keys(b"\x1b[A\x1b[B\x1bOC\x1b[D"),
            [
                (KeyCode::Up, NONE),
                (KeyCode::Down, NONE),
                (KeyCode::Right, NONE),
                (KeyCode::Left, NONE),
            ]
        );
        assert_eq!(
            keys(b"\x1b[5~\x1b[6~\x1b[1~\x1b[4~\x1b[H\x1b[F\x1b[Z\x1b[24~\x1bOP"),
            [
                (KeyCode::PageUp, NONE),
                (KeyCode::PageDown, NONE),
                (KeyCode::Home, NONE),
                (KeyCode::End, NONE),
                (KeyCode::Home, NONE),
                (KeyCode::End, NONE),
                (KeyCode::BackTab, NONE),
                (KeyCode::F(12), NONE),
                (KeyCode::F(1), NONE),
            ]
        );
        assert_eq!(keys(b"\x1b[1;5A"), [(KeyCode::Up, KeyModifiers::CONTROL)]);
        assert_eq!(keys(b"\x1bx"), [(KeyCode::Char('x'), KeyModifiers::ALT)]);
        // Focus reports and unknown sequences are dropped, the keys around them kept.
        assert_eq!(
            keys(b"a\x1b[I\x1b[?1;2cb"),
            [(KeyCode::Char('a'), NONE), (KeyCode::Char('b'), NONE)]
        );
    }

    #[test]
    fn a_sequence_cut_by_a_read_waits_for_its_end() {
        let mut decoder = Decoder::default();
        assert!(decoder.feed(b"\x1b[2").is_empty());
        let events = decoder.feed(b"4~q");
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[0], Event::Key(k) if k.code == KeyCode::F(12)));
        // A cut UTF-8 character too.
        let bytes = "é".as_bytes();
        assert!(decoder.feed(&bytes[..1]).is_empty());
        assert_eq!(decoder.feed(&bytes[1..]).len(), 1);
        // Garbage never makes it wait forever.
        let mut garbage = b"\x1b[".to_vec();
        garbage.extend([b'1'; 100]);
        decoder.feed(&garbage);
        assert_eq!(decoder.feed(b"z").len(), 1);
    }

    #[test]
    fn a_bracketed_paste_is_one_event_however_it_is_cut() {
        let mut decoder = Decoder::default();
        let mut events = decoder.feed(b"a\x1b[200~q\x1b[A\r");
        events.extend(decoder.feed(b"\xc3"));
        events.extend(decoder.feed(b"\xa9\x1b[20"));
        events.extend(decoder.feed(b"1~b"));
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[1], Event::Paste(text) if text == "q\x1b[A\ré"));
        assert!(matches!(events[2], Event::Key(k) if k.code == KeyCode::Char('b')));
    }

    #[test]
    fn sgr_mouse_reports() {
        let events = Decoder::default()
            .feed(b"\x1b[<0;11;6M\x1b[<0;11;6m\x1b[<64;3;4M\x1b[<65;3;4M\x1b[<35;1;1M");
        let kinds: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Mouse(m) => Some((m.kind, m.column, m.row)),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (MouseEventKind::Down(MouseButton::Left), 10, 5),
                (MouseEventKind::Up(MouseButton::Left), 10, 5),
                (MouseEventKind::ScrollUp, 2, 3),
                (MouseEventKind::ScrollDown, 2, 3),
                (MouseEventKind::Moved, 0, 0),
            ]
        );
    }
}
