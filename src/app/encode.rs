//! What a key, a paste or a mouse event typed into a PTY job becomes on its terminal:
//! the bytes an xterm sends, in the modes the program set (application cursor keys,
//! bracketed paste, the mouse protocol it asked for). Pure; the shell writes the result.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEventKind};

use crate::output::emulator::{InputModes, MouseMode};

/// xterm's modifier parameter: 1 + shift 1 + alt 2 + ctrl 4 (None: no modifier).
fn modifier_param(mods: KeyModifiers) -> Option<u8> {
    let mut bits = 0;
    if mods.contains(KeyModifiers::SHIFT) {
        bits |= 1;
    }
    if mods.contains(KeyModifiers::ALT) {
        bits |= 2;
    }
    if mods.contains(KeyModifiers::CONTROL) {
        bits |= 4;
    }
    (bits != 0).then_some(1 + bits)
}

/// The control character Ctrl+`c` sends, if any.
fn control_byte(c: char) -> Option<u8> {
    Some(match c.to_ascii_lowercase() {
        c @ 'a'..='z' => c as u8 - b'a' + 1,
        '@' | ' ' | '2' => 0,
        '[' | '3' => 0x1b,
        '\\' | '4' => 0x1c,
        ']' | '5' => 0x1d,
        '^' | '6' => 0x1e,
        '_' | '7' | '/' => 0x1f,
        '?' | '8' => 0x7f,
        _ => return None,
    })
}

/// A cursor key: `ESC [ A`, `ESC O A` in application mode, `ESC [ 1 ; m A` modified.
fn cursor(final_byte: char, mods: KeyModifiers, modes: InputModes) -> Vec<u8> {
    match modifier_param(mods) {
        Some(m) => format!("\x1b[1;{m}{final_byte}").into_bytes(),
        None if modes.application_cursor => format!("\x1bO{final_byte}").into_bytes(),
        None => format!("\x1b[{final_byte}").into_bytes(),
    }
}

/// `ESC [ n ~`, or `ESC [ n ; m ~` modified.
fn tilde(n: u8, mods: KeyModifiers) -> Vec<u8> {
    match modifier_param(mods) {
        Some(m) => format!("\x1b[{n};{m}~").into_bytes(),
        None => format!("\x1b[{n}~").into_bytes(),
    }
}

/// The bytes for one key press (empty for keys a terminal sends nothing for).
pub fn key(event: KeyEvent, modes: InputModes) -> Vec<u8> {
    let mods = event.modifiers;
    let alt = mods.contains(KeyModifiers::ALT);
    let with_alt = |mut bytes: Vec<u8>| {
        if alt {
            bytes.insert(0, 0x1b);
        }
        bytes
    };
    match event.code {
        KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
            control_byte(c).map_or_else(Vec::new, |b| with_alt(vec![b]))
        }
        KeyCode::Char(c) => with_alt(c.to_string().into_bytes()),
        KeyCode::Enter => with_alt(b"\r".to_vec()),
        KeyCode::Tab => with_alt(b"\t".to_vec()),
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Backspace => with_alt(b"\x7f".to_vec()),
        KeyCode::Esc => with_alt(b"\x1b".to_vec()),
        KeyCode::Up => cursor('A', mods, modes),
        KeyCode::Down => cursor('B', mods, modes),
        KeyCode::Right => cursor('C', mods, modes),
        KeyCode::Left => cursor('D', mods, modes),
        KeyCode::Home => cursor('H', mods, modes),
        KeyCode::End => cursor('F', mods, modes),
        KeyCode::Insert => tilde(2, mods),
        KeyCode::Delete => tilde(3, mods),
        KeyCode::PageUp => tilde(5, mods),
        KeyCode::PageDown => tilde(6, mods),
        KeyCode::F(n @ 1..=4) => {
            let final_byte = char::from(b'P' + n - 1);
            match modifier_param(mods) {
                Some(m) => format!("\x1b[1;{m}{final_byte}").into_bytes(),
                None => format!("\x1bO{final_byte}").into_bytes(),
            }
        }
        KeyCode::F(n @ 5..=12) => {
            let code = [15, 17, 18, 19, 20, 21, 23, 24][usize::from(n - 5)];
            tilde(code, mods)
        }
        _ => Vec::new(),
    }
}

/// A paste as a terminal sends it: newlines as Enter (`\r`), wrapped in bracketed-paste
/// markers when the program asked for them (an end marker inside the text is dropped,
/// so a paste cannot end itself early and type the rest as keys).
pub fn paste(text: &str, modes: InputModes) -> Vec<u8> {
    let text = text.replace("\r\n", "\r").replace('\n', "\r");
    if !modes.bracketed_paste {
        return text.into_bytes();
    }
    let mut out = b"\x1b[200~".to_vec();
    out.extend_from_slice(text.replace("\x1b[201~", "").as_bytes());
    out.extend_from_slice(b"\x1b[201~");
    out
}

/// A mouse event at (`col`, `row`) of the job's screen, if the program asked for that
/// kind of event; None otherwise (the event is not the program's).
pub fn mouse(
    kind: MouseEventKind,
    mods: KeyModifiers,
    col: u16,
    row: u16,
    modes: InputModes,
) -> Option<Vec<u8>> {
    let button = |b: MouseButton| match b {
        MouseButton::Left => 0u16,
        MouseButton::Middle => 1,
        MouseButton::Right => 2,
    };
    let (code, release) = match (kind, modes.mouse) {
        (_, MouseMode::Off) => return None,
        (MouseEventKind::Down(b), _) => (button(b), false),
        (MouseEventKind::ScrollUp, _) => (64, false),
        (MouseEventKind::ScrollDown, _) => (65, false),
        (MouseEventKind::ScrollLeft, _) => (66, false),
        (MouseEventKind::ScrollRight, _) => (67, false),
        (MouseEventKind::Up(b), m) if m != MouseMode::Press => (button(b), true),
        (MouseEventKind::Drag(b), MouseMode::ButtonMotion | MouseMode::AnyMotion) => {
            (button(b) + 32, false)
        }
        (MouseEventKind::Moved, MouseMode::AnyMotion) => (35, false),
        _ => return None,
    };
    let mut code = code;
    if mods.contains(KeyModifiers::SHIFT) {
        code += 4;
    }
    if mods.contains(KeyModifiers::ALT) {
        code += 8;
    }
    if mods.contains(KeyModifiers::CONTROL) {
        code += 16;
    }
    let (x, y) = (col + 1, row + 1);
    if modes.mouse_sgr {
        let end = if release { 'm' } else { 'M' };
        return Some(format!("\x1b[<{code};{x};{y}{end}").into_bytes());
    }
    // The legacy encoding: one byte each, 32 + value; a release has no button.
    let code = if release { 3 + (code & !3) } else { code };
    let byte = |v: u16| u8::try_from(32 + v).unwrap_or(255);
    Some(vec![0x1b, b'[', b'M', byte(code), byte(x), byte(y)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode, mods: KeyModifiers) -> Vec<u8> {
        key(KeyEvent::new(code, mods), InputModes::default())
    }

    #[test]
    fn keys_are_what_an_xterm_sends() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(k(KeyCode::Char('a'), none), b"a");
        assert_eq!(k(KeyCode::Char('é'), none), "é".as_bytes());
        assert_eq!(k(KeyCode::Char('c'), ctrl), [3]);
        assert_eq!(k(KeyCode::Char('d'), ctrl), [4]);
        assert_eq!(k(KeyCode::Char('x'), KeyModifiers::ALT), b"\x1bx");
        assert_eq!(k(KeyCode::Enter, none), b"\r");
        assert_eq!(k(KeyCode::Backspace, none), b"\x7f");
        assert_eq!(k(KeyCode::Up, none), b"\x1b[A");
        assert_eq!(k(KeyCode::Left, ctrl), b"\x1b[1;5D");
        assert_eq!(k(KeyCode::F(1), none), b"\x1bOP");
        assert_eq!(k(KeyCode::F(5), none), b"\x1b[15~");
        assert_eq!(k(KeyCode::F(12), none), b"\x1b[24~");
        assert_eq!(k(KeyCode::PageDown, none), b"\x1b[6~");
        let app = InputModes {
            application_cursor: true,
            ..InputModes::default()
        };
        assert_eq!(key(KeyEvent::new(KeyCode::Down, none), app), b"\x1bOB");
    }

    #[test]
    fn pastes_are_bracketed_only_when_asked_and_cannot_end_early() {
        assert_eq!(paste("a\nb", InputModes::default()), b"a\rb");
        let bracketed = InputModes {
            bracketed_paste: true,
            ..InputModes::default()
        };
        assert_eq!(
            paste("x\x1b[201~rm -rf\n", bracketed),
            b"\x1b[200~xrm -rf\r\x1b[201~"
        );
    }

    #[test]
    fn mouse_only_as_the_program_asked() {
        let none = KeyModifiers::NONE;
        let down = MouseEventKind::Down(MouseButton::Left);
        assert_eq!(mouse(down, none, 4, 2, InputModes::default()), None);
        let sgr = InputModes {
            mouse: MouseMode::PressRelease,
            mouse_sgr: true,
            ..InputModes::default()
        };
        assert_eq!(mouse(down, none, 4, 2, sgr), Some(b"\x1b[<0;5;3M".to_vec()));
        let up = MouseEventKind::Up(MouseButton::Left);
        assert_eq!(mouse(up, none, 4, 2, sgr), Some(b"\x1b[<0;5;3m".to_vec()));
        let drag = MouseEventKind::Drag(MouseButton::Left);
        assert_eq!(mouse(drag, none, 4, 2, sgr), None);
        let legacy = InputModes {
            mouse: MouseMode::Press,
            ..InputModes::default()
        };
        assert_eq!(
            mouse(MouseEventKind::ScrollUp, none, 0, 0, legacy),
            Some(vec![0x1b, b'[', b'M', 96, 33, 33])
        );
    }
}
