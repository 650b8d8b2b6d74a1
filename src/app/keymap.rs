//! Keys to commands, per mode: the defaults from [`Command::default_keys`], changed by the
//! config's `[keys]`. A table of data; [`Keymap::lookup`] is the only way a key press
//! becomes a [`Command`], and the help overlay, the hint bar and the README table read
//! the same table, so what they say is what the keys do.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::command::{Command, Mode};

/// A key with its modifiers, normalised: a character carries no SHIFT (`K` is `K`), a
/// control character is its lower-case letter with CONTROL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

/// The modifiers a binding may use.
const MODS: KeyModifiers = KeyModifiers::CONTROL
    .union(KeyModifiers::ALT)
    .union(KeyModifiers::SHIFT);

impl Key {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> Key {
        Key { code, mods }
    }

    /// The key of a terminal key press (None for a release).
    pub fn of(event: &KeyEvent) -> Option<Key> {
        if event.kind == KeyEventKind::Release {
            return None;
        }
        Some(Key::normalised(event.code, event.modifiers))
    }

    fn normalised(code: KeyCode, mods: KeyModifiers) -> Key {
        let mut mods = mods.intersection(MODS);
        let code = match code {
            KeyCode::Char(c) => {
                // The case of a character already says whether shift was held.
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    // Ctrl-K and Ctrl-k are the same byte on a terminal.
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            KeyCode::Tab if mods.contains(KeyModifiers::SHIFT) => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        Key { code, mods }
    }

    /// Parses a key as written under `[keys]`: a character (`"t"`, `"K"`, `"/"`), a
    /// name (`"up"`, `"enter"`, `"pgdn"`, `"f5"`, `"space"` …), either after modifiers
    /// (`"ctrl-k"`, `"alt-x"`, `"shift-tab"`, `"ctrl+alt+d"`).
    pub fn parse(text: &str) -> Result<Key, String> {
        if text.is_empty() {
            return Err("an empty key".into());
        }
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        // A lone "-" or "+" is a character, not a separator.
        while rest.chars().count() > 1 {
            let Some((prefix, after)) = split_modifier(rest) else {
                break;
            };
            let modifier = match prefix.to_ascii_lowercase().as_str() {
                "ctrl" | "control" | "c" => KeyModifiers::CONTROL,
                "alt" | "meta" | "m" | "a" => KeyModifiers::ALT,
                "shift" | "s" => KeyModifiers::SHIFT,
                _ => {
                    return Err(format!(
                        "unknown modifier `{prefix}` (expected ctrl, alt or shift)"
                    ));
                }
            };
            mods.insert(modifier);
            rest = after;
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                if c.is_control() {
                    return Err("a control character (write e.g. \"ctrl-k\")".into());
                }
                KeyCode::Char(c)
            }
            _ => named(rest).ok_or_else(|| format!("unknown key name `{rest}`"))?,
        };
        // shift-k is K (a terminal sends the capital).
        let code = match code {
            KeyCode::Char(c)
                if mods.contains(KeyModifiers::SHIFT) && !mods.contains(KeyModifiers::CONTROL) =>
            {
                KeyCode::Char(c.to_ascii_uppercase())
            }
            other => other,
        };
        if mods.contains(KeyModifiers::CONTROL)
            && let KeyCode::Char(c) = code
            && !c.is_ascii_alphabetic()
        {
            return Err(format!(
                "ctrl-{c} cannot be told apart on a terminal (ctrl works with letters)"
            ));
        }
        Ok(Key::normalised(code, mods))
    }

    /// As the help and the hint bar show it: `t`, `K`, `↑`, `PgDn`, `Ctrl-C`.
    pub fn label(self) -> String {
        let mut out = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            out.push_str("Ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            out.push_str("Alt-");
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            out.push_str("Shift-");
        }
        let name = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                c.to_ascii_uppercase().to_string()
            }
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "Shift-Tab".into(),
            KeyCode::Backspace => "Backspace".into(),
            KeyCode::Delete => "Delete".into(),
            KeyCode::Insert => "Insert".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        out.push_str(&name);
        out
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `ctrl-x` / `ctrl+x` → (`ctrl`, `x`).
fn split_modifier(text: &str) -> Option<(&str, &str)> {
    let at = text.find(['-', '+'])?;
    (at > 0 && at + 1 < text.len()).then(|| (&text[..at], &text[at + 1..]))
}

fn named(name: &str) -> Option<KeyCode> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "backspace" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "pgup" | "pageup" => KeyCode::PageUp,
        "pgdn" | "pagedown" => KeyCode::PageDown,
        "space" => KeyCode::Char(' '),
        "minus" => KeyCode::Char('-'),
        "plus" => KeyCode::Char('+'),
        f if f.starts_with('f') => {
            let n: u8 = f[1..].parse().ok()?;
            if !(1..=12).contains(&n) {
                return None;
            }
            KeyCode::F(n)
        }
        _ => return None,
    })
}

/// A `[keys]` entry: the command and the keys that replace its defaults (none unbinds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub command: Command,
    pub keys: Vec<Key>,
}

/// Why a keymap cannot be built from the overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeymapError {
    /// The same key for two commands in one mode. `first` is the command that already had
    /// it; `second` (the override at `index`) came later.
    Conflict {
        key: Key,
        mode: Mode,
        first: Command,
        second: Command,
        index: usize,
    },
    /// A key the mode keeps for itself (text in a prompt, a number in the signal menu).
    Reserved {
        key: Key,
        mode: Mode,
        command: Command,
        index: usize,
    },
}

impl KeymapError {
    /// Which override (position in the list) is at fault.
    pub fn index(&self) -> usize {
        match self {
            KeymapError::Conflict { index, .. } | KeymapError::Reserved { index, .. } => *index,
        }
    }
}

impl fmt::Display for KeymapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeymapError::Conflict {
                key,
                mode,
                first,
                second,
                ..
            } => write!(
                f,
                "key {key} is bound to both `{}` and `{}` in {} (give one of them other keys)",
                first.name(),
                second.name(),
                mode.label()
            ),
            KeymapError::Reserved {
                key, mode, command, ..
            } => write!(
                f,
                "key {key} cannot be bound to `{}`: in {} it is {}",
                command.name(),
                mode.label(),
                match mode {
                    Mode::SignalMenu => "a signal's number",
                    _ => "typed text",
                }
            ),
        }
    }
}

/// Every binding: (mode, key) → command, and each command's keys in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    /// (mode, key, command), keys of one command in their order.
    bindings: Vec<(Mode, Key, Command)>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut bindings = Vec::new();
        for &command in Command::ALL {
            for (mode, keys) in command.default_keys() {
                bindings.extend(keys.iter().map(|key| (*mode, *key, command)));
            }
        }
        Keymap { bindings }
    }
}

impl Keymap {
    /// The defaults with `overrides` applied: each one replaces its command's keys in
    /// every mode the command exists in. A key left on two commands in one mode, or a
    /// key a mode reserves, is an error.
    pub fn with_overrides(overrides: &[Override]) -> Result<Keymap, KeymapError> {
        let mut keymap = Keymap::default();
        for (index, o) in overrides.iter().enumerate() {
            keymap.bindings.retain(|(_, _, c)| *c != o.command);
            for mode in o.command.modes() {
                for key in &o.keys {
                    if mode.reserves(*key) {
                        return Err(KeymapError::Reserved {
                            key: *key,
                            mode,
                            command: o.command,
                            index,
                        });
                    }
                    keymap.bindings.push((mode, *key, o.command));
                }
            }
        }
        // Report a conflict at the override that made it (the later one in the file).
        let position = |c: Command| overrides.iter().rposition(|o| o.command == c);
        for (i, (mode, key, command)) in keymap.bindings.iter().enumerate() {
            let Some((_, _, other)) = keymap.bindings[..i]
                .iter()
                .find(|(m, k, c)| m == mode && k == key && c != command)
            else {
                continue;
            };
            let (first, second) = match (position(*other), position(*command)) {
                (Some(a), Some(b)) if a > b => (*command, *other),
                (Some(_), None) => (*command, *other),
                _ => (*other, *command),
            };
            return Err(KeymapError::Conflict {
                key: *key,
                mode: *mode,
                first,
                second,
                index: position(second).or(position(first)).unwrap_or(0),
            });
        }
        Ok(keymap)
    }

    /// The command a key means in `mode`.
    pub fn lookup(&self, mode: Mode, key: Key) -> Option<Command> {
        self.bindings
            .iter()
            .find(|(m, k, _)| *m == mode && *k == key)
            .map(|(_, _, c)| *c)
    }

    /// The keys of `command` in `mode`, in order (the first one is the one hints show).
    pub fn keys(&self, mode: Mode, command: Command) -> impl Iterator<Item = Key> + '_ {
        self.bindings
            .iter()
            .filter(move |(m, _, c)| *m == mode && *c == command)
            .map(|(_, k, _)| *k)
    }

    pub fn first_key(&self, mode: Mode, command: Command) -> Option<Key> {
        self.keys(mode, command).next()
    }

    /// `↑ k` : the keys of a command in a mode, as the help shows them.
    pub fn keys_label(&self, mode: Mode, command: Command) -> String {
        self.keys(mode, command)
            .map(Key::label)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The main screen's commands with their keys, then the commands of dialogs, menus
    /// and prompts (with the keys of their first mode): what the help overlay lists.
    pub fn help_entries(&self) -> Vec<HelpEntry> {
        let mut entries = Vec::new();
        for &command in Command::ALL {
            let mode = if command.modes().any(|m| m == Mode::Normal) {
                Mode::Normal
            } else {
                match command.modes().next() {
                    Some(mode) => mode,
                    None => continue,
                }
            };
            entries.push(HelpEntry {
                command,
                mode,
                keys: self.keys_label(mode, command),
            });
        }
        entries
    }
}

/// One line of the help: a command, where it applies, its keys (may be empty: unbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpEntry {
    pub command: Command,
    pub mode: Mode,
    pub keys: String,
}

/// The README's table of keys and command names, generated from the defaults (a test
/// keeps the README's copy equal to this). Modes that share a command's keys share a
/// cell; the main screen's keys come first and need no "in …".
pub fn readme_table() -> String {
    let keymap = Keymap::default();
    let mut out = String::from("| keys | `[keys]` name | what it does |\n|---|---|---|\n");
    for &command in Command::ALL {
        let mut groups: Vec<(String, Vec<Mode>)> = Vec::new();
        for mode in command.modes() {
            let keys: Vec<String> = keymap
                .keys(mode, command)
                .map(|k| format!("`{}`", k.label()))
                .collect();
            let keys = keys.join(" ");
            match groups.iter_mut().find(|(k, _)| *k == keys) {
                Some((_, modes)) => modes.push(mode),
                None => groups.push((keys, vec![mode])),
            }
        }
        let cells: Vec<String> = groups
            .iter()
            .map(|(keys, modes)| {
                if modes.contains(&Mode::Normal) || groups.len() == 1 {
                    keys.clone()
                } else {
                    let places: Vec<&str> = modes.iter().map(|m| m.label()).collect();
                    format!("{keys} in {}", places.join(", "))
                }
            })
            .collect();
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            cells.join("; "),
            command.name(),
            command.about()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_command_has_a_name_a_description_and_a_default_key() {
        let keymap = Keymap::default();
        let mut names = std::collections::HashSet::new();
        for &command in Command::ALL {
            assert!(names.insert(command.name()), "{} twice", command.name());
            assert_eq!(Command::from_name(command.name()), Some(command));
            assert!(
                command
                    .name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                command.name()
            );
            assert!(
                command.about().len() > 10,
                "{command:?} needs a description"
            );
            assert!(!command.hint().is_empty());
            assert!(command.modes().count() > 0, "{command:?} is in no mode");
            for mode in command.modes() {
                assert!(
                    keymap.first_key(mode, command).is_some(),
                    "{command:?} has no key in {mode:?}"
                );
            }
        }
    }

    #[test]
    fn the_defaults_have_no_conflicts_and_respect_reserved_keys() {
        assert_eq!(Keymap::with_overrides(&[]), Ok(Keymap::default()));
        let keymap = Keymap::default();
        for (mode, key, command) in &keymap.bindings {
            assert_eq!(keymap.lookup(*mode, *key), Some(*command), "{mode:?} {key}");
            assert!(!mode.reserves(*key), "{key} in {mode:?}");
        }
    }

    #[test]
    fn keys_parse_normalise_and_print() {
        assert_eq!(key("t"), Key::new(KeyCode::Char('t'), KeyModifiers::NONE));
        assert_eq!(key("K"), Key::new(KeyCode::Char('K'), KeyModifiers::NONE));
        assert_eq!(key("ctrl-k"), key("Ctrl+K"));
        assert_eq!(key("ctrl-k").label(), "Ctrl-K");
        assert_eq!(key("shift-tab"), key("backtab"));
        assert_eq!(key("shift-k"), key("K"));
        assert_eq!(key("-"), Key::new(KeyCode::Char('-'), KeyModifiers::NONE));
        assert_eq!(key("alt--").label(), "Alt--");
        assert_eq!(key("PgDn").label(), "PgDn");
        assert_eq!(key("space").label(), "Space");
        assert_eq!(key("f12").code, KeyCode::F(12));
        assert_eq!(key("up").label(), "↑");
        for bad in ["", "hyper-k", "f13", "upp", "ctrl-1", "\u{1b}", "tt"] {
            assert!(Key::parse(bad).is_err(), "{bad:?} parsed");
        }
        // A terminal's K arrives with SHIFT; the binding is K without it.
        let event = KeyEvent::new(KeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(Key::of(&event), Some(key("K")));
        let event = KeyEvent::new(KeyCode::Tab, KeyModifiers::SHIFT);
        assert_eq!(Key::of(&event), Some(key("backtab")));
    }

    #[test]
    fn an_override_replaces_the_defaults_in_every_mode_of_the_command() {
        let keymap = Keymap::with_overrides(&[
            Override {
                command: Command::Stop,
                keys: vec![key("O"), key("ctrl-t")],
            },
            Override {
                command: Command::SelectNext,
                keys: vec![key("down"), key("ctrl-n")],
            },
            Override {
                command: Command::Kill,
                keys: vec![],
            },
        ])
        .expect("keymap");
        assert_eq!(keymap.lookup(Mode::Normal, key("t")), None);
        assert_eq!(keymap.lookup(Mode::Normal, key("O")), Some(Command::Stop));
        assert_eq!(
            keymap.lookup(Mode::Normal, key("ctrl-t")),
            Some(Command::Stop)
        );
        assert_eq!(keymap.keys_label(Mode::Normal, Command::Stop), "O Ctrl-T");
        assert_eq!(keymap.lookup(Mode::Normal, key("K")), None);
        assert_eq!(keymap.first_key(Mode::Normal, Command::Kill), None);
        // select_next exists in the help and the menu too: the new keys apply there.
        for mode in [Mode::Normal, Mode::Help, Mode::SignalMenu] {
            assert_eq!(
                keymap.lookup(mode, key("ctrl-n")),
                Some(Command::SelectNext)
            );
            assert_eq!(keymap.lookup(mode, key("j")), None);
        }
        // The help lists the user's keys.
        let help = keymap.help_entries();
        let stop = help.iter().find(|e| e.command == Command::Stop);
        assert_eq!(stop.map(|e| e.keys.as_str()), Some("O Ctrl-T"));
    }

    #[test]
    fn a_key_on_two_commands_in_one_mode_names_both() {
        // Against a default.
        let err = Keymap::with_overrides(&[Override {
            command: Command::Stop,
            keys: vec![key("k")],
        }])
        .expect_err("conflict");
        assert_eq!(
            err,
            KeymapError::Conflict {
                key: key("k"),
                mode: Mode::Normal,
                first: Command::SelectPrev,
                second: Command::Stop,
                index: 0,
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("`select_prev`") && text.contains("`stop`"),
            "{text}"
        );
        // Between two overrides: the later one is at fault.
        let err = Keymap::with_overrides(&[
            Override {
                command: Command::Stop,
                keys: vec![key("u")],
            },
            Override {
                command: Command::Kill,
                keys: vec![key("u")],
            },
        ])
        .expect_err("conflict");
        assert!(
            matches!(
                err,
                KeymapError::Conflict {
                    first: Command::Stop,
                    second: Command::Kill,
                    index: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        // Moving a default away first makes room.
        let ok = Keymap::with_overrides(&[
            Override {
                command: Command::SelectPrev,
                keys: vec![key("up")],
            },
            Override {
                command: Command::Stop,
                keys: vec![key("k")],
            },
        ]);
        assert!(ok.is_ok(), "{ok:?}");
        // The same key in different modes is fine (q quits, and closes the help).
        assert!(
            Keymap::with_overrides(&[Override {
                command: Command::Quit,
                keys: vec![key("e")],
            }])
            .is_ok()
        );
    }

    #[test]
    fn prompt_text_and_menu_numbers_cannot_be_bound() {
        let err = Keymap::with_overrides(&[Override {
            command: Command::PromptSubmit,
            keys: vec![key("o")],
        }])
        .expect_err("reserved");
        assert!(err.to_string().contains("typed text"), "{err}");
        let err = Keymap::with_overrides(&[Override {
            command: Command::Confirm,
            keys: vec![key("1")],
        }])
        .expect_err("reserved");
        assert!(err.to_string().contains("signal's number"), "{err}");
        assert!(
            Keymap::with_overrides(&[Override {
                command: Command::PromptSubmit,
                keys: vec![key("ctrl-j")],
            }])
            .is_ok()
        );
    }

    #[test]
    fn readme_lists_every_command_with_its_keys() {
        let table = readme_table();
        for &command in Command::ALL {
            assert!(
                table.contains(&format!("`{}`", command.name())),
                "{}",
                command.name()
            );
        }
        assert!(table.contains("| `↑` `k` | `select_prev` |"), "{table}");
        assert!(table.contains("| `Ctrl-C` | `interrupt` |"), "{table}");
    }
}
