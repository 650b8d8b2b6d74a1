//! Environment files (`env_file`) and `${VAR}` expansion in config values.
//!
//! `env_file` is read with dotenvy (the maintained dotenv crate): `KEY=value` lines,
//! `export KEY=value`, single and double quotes, `#` comments, and `${VAR}` substitution
//! from earlier lines and forkyard's environment. The variables are added to the job's
//! environment; `env` still wins over them.
//!
//! Expansion in `cmd`, argv stages of `pipeline`, `cwd` and `env` values:
//!
//! - `${VAR}`: the variable's value; an error if it is not set;
//! - `${VAR:-default}`: the value, or `default` (taken literally) when the variable is
//!   unset or empty;
//! - `$${`: a literal `${`.
//!
//! Any other `$` is kept as it is: `$HOME`, `a$b`, and `$$` too, so the habit of
//! `cmd = ["sh", "-c", "echo $$"]` (the shell's pid) keeps working; only `${` was given
//! a meaning. `shell` strings are not expanded: the shell expands them itself, from the
//! same environment.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::{Spanned, Value};

use super::{Cx, RawJob, RawSettings, check_argv, format_key, resolve_path, type_name};
use crate::config::error::{ConfigError, JobRef};
use crate::config::{CommandSpec, JobSpec, Stage};

/// Where an expansion went wrong, as a byte offset into the value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub offset: usize,
    pub message: String,
}

/// The variables `${VAR}` can name, in the order they are looked up.
pub struct Vars<'a> {
    /// The job's own variables (env files, then `env`), checked first.
    pub job: &'a BTreeMap<String, String>,
    /// Then forkyard's own environment (`false` in tests that must not see it).
    pub inherit: bool,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.job.get(name) {
            return Some(value.clone());
        }
        if self.inherit {
            return std::env::var(name).ok();
        }
        None
    }
}

/// `true` if `text` has anything [`expand`] would change.
pub fn has_expansion(text: &str) -> bool {
    text.contains("${")
}

/// Expands `${VAR}` and `${VAR:-default}` in `text`; `$${` is a literal `${`.
pub fn expand(text: &str, vars: &Vars<'_>) -> Result<String, ExpandError> {
    if !has_expansion(text) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            offset += at + 3;
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                return Err(ExpandError {
                    offset: offset + at,
                    message: "unterminated `${`: expected `}` (write `$${` for a literal `${`)"
                        .into(),
                });
            };
            let inner = &body[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(ExpandError {
                    offset: offset + at,
                    message: format!(
                        "`${{{inner}}}`: expected `${{NAME}}` or `${{NAME:-default}}` with NAME \
                         made of letters, digits and `_` (write `$${{` for a literal `${{`)"
                    ),
                });
            }
            match (vars.get(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ExpandError {
                        offset: offset + at,
                        message: format!(
                            "`${{{name}}}`: variable {name} is not set (write `${{{name}:-default}}` \
                             for a default, or `$${{` for a literal `${{`)"
                        ),
                    });
                }
            }
            let used = at + 2 + close + 1;
            offset += used;
            rest = &rest[used..];
        } else {
            out.push('$');
            offset += at + 1;
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a dotenv file into variables, in file order (a later line wins). The error
/// names the file, and its line when the line is what is wrong.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::config::MAX_CONFIG_BYTES as u64 + 1)
                .read_to_string(&mut text)
        })
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if text.len() > crate::config::MAX_CONFIG_BYTES {
        return Err(format!(
            "cannot read {}: larger than {}",
            path.display(),
            crate::fmt::bytes(crate::config::MAX_CONFIG_BYTES as u64)
        ));
    }
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                if value.contains('\0') {
                    let line = line_of(&text, &key).map(|l| format!(":{l}"));
                    return Err(format!(
                        "{}{}: {key}: value must not contain NUL",
                        path.display(),
                        line.unwrap_or_default()
                    ));
                }
                vars.push((key, value));
            }
            Err(dotenvy::Error::LineParse(line, index)) => {
                let at = text.find(line.as_str()).map(|start| {
                    text[..start].matches('\n').count()
                        + 1
                        + line[..index.min(line.len())].matches('\n').count()
                });
                return Err(format!(
                    "{}{}: not a `KEY=value` line: {:?}",
                    path.display(),
                    at.map(|l| format!(":{l}")).unwrap_or_default(),
                    line.trim_end()
                ));
            }
            Err(err) => {
                return Err(format!("{}: {err}", path.display()));
            }
        }
    }
    Ok(vars)
}

/// The line on which `key` is first assigned, for an error about its value.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The parser's side: reading `env_file`, expanding values, locating errors.
impl Cx<'_> {
    /// The variables of `settings.env_file`, under every job's own.
    pub(super) fn settings_env_file(
        &self,
        raw: Option<&Spanned<RawSettings>>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        match raw.and_then(|s| s.get_ref().env_file.as_ref()) {
            Some(v) => self.env_files(v, None, "settings.env_file"),
            None => Ok(BTreeMap::new()),
        }
    }

    /// `env_file = "path"` or `env_file = ["a", "b"]` (a later file wins), relative to the
    /// config's folder.
    fn env_files(
        &self,
        v: &Spanned<Value>,
        job: Option<JobRef>,
        key: &str,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let fail = |m: String| self.err(v.span(), job.clone(), Some(key.into()), m);
        const EXPECTED: &str =
            r#"expected a path like ".env" or a list like [".env", ".env.local"]"#;
        let paths: Vec<&str> = match v.get_ref() {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str().ok_or_else(|| {
                        fail(format!("{EXPECTED}, got a {} in the list", type_name(item)))
                    })
                })
                .collect::<Result<_, _>>()?,
            other => return Err(fail(format!("{EXPECTED}, got {}", type_name(other)))),
        };
        let mut vars = BTreeMap::new();
        for p in paths {
            if p.is_empty() || p.contains('\0') {
                return Err(fail("must be a non-empty path without NUL".into()));
            }
            let read = read_env_file(&resolve_path(self.base_dir, p)).map_err(fail)?;
            vars.extend(read);
        }
        Ok(vars)
    }

    /// Adds the env files' variables to `spec.env` (under `env`), and expands `${VAR}` in
    /// `env` values (from the env files and forkyard's environment), then in `cmd`, argv
    /// stages of `pipeline` and `cwd` (from the job's whole environment).
    pub(super) fn env_and_expansion(
        &self,
        raw: &RawJob,
        spec: &mut JobSpec,
        shared: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let name = spec.name.clone();
        let job = || Some(JobRef::Name(name.clone()));
        let mut base = shared.clone();
        if let Some(v) = &raw.env_file {
            base.extend(self.env_files(v, job(), "env_file")?);
        }
        let mut env = base.clone();
        if let Some(e) = &raw.env {
            let vars = Vars {
                job: &base,
                inherit: true,
            };
            for (k, v) in e.get_ref() {
                let value = expand(v.get_ref(), &vars).map_err(|e| {
                    self.expand_err(
                        v.span(),
                        v.get_ref(),
                        e,
                        job(),
                        format!("env.{}", format_key(k)),
                    )
                })?;
                env.insert(k.clone(), value);
            }
        }
        let vars = Vars {
            job: &env,
            inherit: true,
        };
        if let Some(cmd) = &raw.cmd {
            let mut argv = Vec::with_capacity(cmd.get_ref().len());
            for (i, arg) in cmd.get_ref().iter().enumerate() {
                argv.push(expand(arg.get_ref(), &vars).map_err(|e| {
                    self.expand_err(arg.span(), arg.get_ref(), e, job(), format!("cmd[{i}]"))
                })?);
            }
            check_argv(&argv).map_err(|m| {
                self.err(
                    cmd.span(),
                    job(),
                    Some("cmd".into()),
                    format!("after expansion: {m}"),
                )
            })?;
            spec.command = CommandSpec::Argv(argv);
        }
        if let (Some(raw_stages), CommandSpec::Pipeline(stages)) =
            (&raw.pipeline, &mut spec.command)
        {
            for (i, (stage, raw_stage)) in stages.iter_mut().zip(raw_stages.get_ref()).enumerate() {
                let Stage::Argv(argv) = stage else { continue };
                for arg in argv.iter_mut() {
                    *arg = expand(arg, &vars).map_err(|e| {
                        self.err(
                            raw_stage.span(),
                            job(),
                            Some(format!("pipeline[{i}]")),
                            e.message,
                        )
                    })?;
                }
                check_argv(argv).map_err(|m| {
                    self.err(
                        raw_stage.span(),
                        job(),
                        Some(format!("pipeline[{i}]")),
                        format!("after expansion: {m}"),
                    )
                })?;
            }
        }
        if let Some(v) = &raw.cwd {
            let cwd = expand(v.get_ref(), &vars)
                .map_err(|e| self.expand_err(v.span(), v.get_ref(), e, job(), "cwd".into()))?;
            if cwd.is_empty() || cwd.contains('\0') {
                return Err(self.err(
                    v.span(),
                    job(),
                    Some("cwd".into()),
                    "after expansion: must be a non-empty path without NUL",
                ));
            }
            // A remote job's folder is on its host: taken as written.
            spec.cwd = Some(match raw.host {
                Some(_) => std::path::PathBuf::from(&cwd),
                None => resolve_path(self.base_dir, &cwd),
            });
        }
        spec.env = env;
        Ok(())
    }

    /// An expansion error at the `$` it is about, when the string as written holds the
    /// value's text up to there (no escapes before it); else at the string's start.
    fn expand_err(
        &self,
        span: Range<usize>,
        value: &str,
        err: ExpandError,
        job: Option<JobRef>,
        key: String,
    ) -> ConfigError {
        let inner = span.start + 1;
        let at = match (
            self.text.get(inner..inner + err.offset),
            value.get(..err.offset),
        ) {
            (Some(written), Some(prefix)) if written == prefix => inner + err.offset,
            _ => span.start,
        };
        self.err(at..at, job, Some(key), err.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, pairs: &[(&str, &str)]) -> Result<String, ExpandError> {
        let job: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(
            text,
            &Vars {
                job: &job,
                inherit: false,
            },
        )
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        assert_eq!(ex("${A}", &[("A", "x")]).as_deref(), Ok("x"));
        assert_eq!(ex("a${A}b${A}", &[("A", "1")]).as_deref(), Ok("a1b1"));
        assert_eq!(ex("${B:-dflt}", &[]).as_deref(), Ok("dflt"));
        assert_eq!(ex("${B:-}", &[]).as_deref(), Ok(""));
        assert_eq!(ex("${B:-x}", &[("B", "")]).as_deref(), Ok("x"));
        assert_eq!(ex("${B:-x}", &[("B", "set")]).as_deref(), Ok("set"));
        assert_eq!(ex("$$", &[]).as_deref(), Ok("$$"), "the shell's pid stays");
        assert_eq!(
            ex("echo $$ ${A}", &[("A", "x")]).as_deref(),
            Ok("echo $$ x")
        );
        assert_eq!(ex("$${A}", &[("A", "x")]).as_deref(), Ok("${A}"));
        assert_eq!(ex("$$${A}", &[("A", "x")]).as_deref(), Ok("$${A}"));
        assert_eq!(ex("$HOME a$b $", &[]).as_deref(), Ok("$HOME a$b $"));
        assert_eq!(ex("é${A}é", &[("A", "ü")]).as_deref(), Ok("éüé"));
    }

    #[test]
    fn errors_name_the_place() {
        let e = ex("ab${NOPE}", &[]).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("NOPE is not set"), "{}", e.message);
        let e = ex("$${ ${", &[]).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("unterminated"), "{}", e.message);
        let e = ex("${1X}", &[]).unwrap_err();
        assert!(e.message.contains("expected `${NAME}`"), "{}", e.message);
        let e = ex("${A:=x}", &[]).unwrap_err();
        assert!(e.message.contains("expected"), "{}", e.message);
    }
}
