//! `[keys]`: the user's key bindings, validated like every other key of the config.
//!
//! ```toml
//! [keys]
//! stop = "t"                 # one key
//! kill = ["K", "ctrl-k"]     # several
//! signal = []                # none: unbound
//! ```
//!
//! Each entry names a command (the names are listed in the README and by the help) and
//! replaces that command's default keys. An unknown command, a key that does not parse,
//! a key bound to two commands in the same mode, or a key a mode keeps for itself (text
//! in a prompt) is an error at its file:line:column, like any other config error.

use std::ops::Range;

use toml::{Spanned, Value};

use crate::app::command::Command;
use crate::app::keymap::{Key, Keymap, Override};

use super::ConfigError;

/// The `[keys]` table as written: entries in file order, with their spans.
pub(super) type RawKeys = std::collections::BTreeMap<Spanned<String>, Spanned<Value>>;

/// The validated `[keys]`: overrides in the order the file has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys {
    pub overrides: Vec<Override>,
}

/// Builds an error at `span` about key `keys.<name>` (the parser's locator).
pub(super) type ErrorAt<'a> = &'a dyn Fn(Range<usize>, String, String) -> ConfigError;

pub(super) fn parse(raw: &RawKeys, err: ErrorAt<'_>) -> Result<Keys, ConfigError> {
    let mut entries: Vec<(&Spanned<String>, &Spanned<Value>)> = raw.iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    let mut overrides = Vec::with_capacity(entries.len());
    let mut spans = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let key_path = format!("keys.{}", name.get_ref());
        let Some(command) = Command::from_name(name.get_ref()) else {
            let names: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
            let mut message = format!("unknown command `{}`", name.get_ref());
            if let Some(near) = super::parse::closest(name.get_ref(), &names) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            message.push_str(&format!("; commands: {}", names.join(", ")));
            return Err(err(name.span(), key_path, message));
        };
        let mut keys = Vec::new();
        let one = |text: &Spanned<String>, keys: &mut Vec<Key>| -> Result<(), ConfigError> {
            let key = Key::parse(text.get_ref()).map_err(|m| {
                err(
                    text.span(),
                    key_path.clone(),
                    format!("{m} in {:?}", text.get_ref()),
                )
            })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
            Ok(())
        };
        match value.get_ref() {
            Value::String(text) => one(&Spanned::new(value.span(), text.clone()), &mut keys)?,
            Value::Array(items) => {
                // The array's items carry no spans of their own: point at the value.
                for item in items {
                    let Value::String(text) = item else {
                        return Err(err(value.span(), key_path, expected(item)));
                    };
                    one(&Spanned::new(value.span(), text.clone()), &mut keys)?;
                }
            }
            other => return Err(err(value.span(), key_path, expected(other))),
        }
        overrides.push(Override { command, keys });
        spans.push((value.span(), key_path));
    }
    match Keymap::with_overrides(&overrides) {
        Ok(_) => Ok(Keys { overrides }),
        Err(error) => {
            let (span, key_path) = spans
                .get(error.index())
                .cloned()
                .unwrap_or((0..0, "keys".into()));
            Err(err(span, key_path, error.to_string()))
        }
    }
}

fn expected(value: &Value) -> String {
    format!(
        "expected a key like \"t\" or a list like [\"K\", \"ctrl-k\"], found {}",
        match value {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    )
}

#[cfg(test)]
mod tests {
    use crate::app::command::Command;
    use crate::app::keymap::Key;
    use crate::config::ConfigError;

    fn parse(keys: &str) -> Result<crate::config::Config, ConfigError> {
        let text = format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\n\n[keys]\n{keys}\n");
        crate::config::parse(&text, "k.toml", None)
    }

    fn fail(keys: &str) -> ConfigError {
        parse(keys).expect_err(keys)
    }

    #[test]
    fn overrides_keep_the_file_order_and_their_keys() {
        let config =
            parse("stop = \"O\"\nkill = [\"K\", \"ctrl-k\", \"K\"]\nsignal = []").expect("valid");
        let overrides = &config.keys.overrides;
        assert_eq!(overrides.len(), 3);
        assert_eq!(overrides[0].command, Command::Stop);
        assert_eq!(overrides[1].command, Command::Kill);
        assert_eq!(
            overrides[1].keys,
            [
                Key::parse("K").expect("key"),
                Key::parse("ctrl-k").expect("key")
            ]
        );
        assert!(overrides[2].keys.is_empty());
        // No [keys]: no overrides.
        let plain = crate::config::parse("[[job]]\nname = \"a\"\ncmd = [\"x\"]\n", "k.toml", None)
            .expect("valid");
        assert!(plain.keys.overrides.is_empty());
    }

    #[test]
    fn errors_name_the_place_the_key_and_the_problem() {
        let err = fail("stpo = \"t\"");
        assert_eq!((err.line(), err.column()), (Some(6), Some(1)));
        assert_eq!(err.key(), Some("keys.stpo"));
        assert!(err.message().contains("did you mean `stop`"), "{err}");
        assert!(
            err.message().contains("quit_now"),
            "lists the commands: {err}"
        );

        let err = fail("kill = [\"K\", \"ctlr-k\"]");
        assert_eq!((err.line(), err.column()), (Some(6), Some(8)));
        assert!(err.message().contains("unknown modifier `ctlr`"), "{err}");

        let err = fail("stop = \"u\"\nkill = \"u\"");
        assert_eq!(err.line(), Some(7));
        assert_eq!(err.key(), Some("keys.kill"));
        assert!(
            err.message().contains("`stop`") && err.message().contains("`kill`"),
            "{err}"
        );

        let err = fail("stop = \"k\"");
        assert!(err.message().contains("`select_prev`"), "{err}");
        let err = fail("prompt_submit = \"o\"");
        assert!(err.message().contains("typed text"), "{err}");
        let err = fail("stop = 3");
        assert!(err.message().contains("found an integer"), "{err}");
        let err = fail("stop = \"\"");
        assert!(err.message().contains("empty key"), "{err}");
    }
}
