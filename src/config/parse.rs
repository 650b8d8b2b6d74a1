//! TOML text -> validated [`Config`].
//!
//! Two layers: serde (with `deny_unknown_fields` and [`toml::Spanned`]) checks the shape
//! of the document and keeps byte spans; then every value is validated here, with errors
//! that name the file, line, column, job and key (see [`ConfigError`]). Serde's own errors
//! (unknown keys, wrong types) only carry a span, so the key path is recovered by looking
//! the span up in the spanned document tree ([`toml::de::DeTable`]).
//!
//! Limits chosen to keep downstream code free of overflow/allocation surprises:
//! `replicas <= 10000`, `scrollback <= 10_000_000`, durations `<= 365 days`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;
use toml::Spanned;
use toml::Value;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, JobRef};
use super::services::{self, KeyError, RawDependsOn, RawProbe};

// `env_file` and `${VAR}` expansion have their own file; it is a child of this module
// so that it can read the spanned raw job and locate its errors like the rest.
#[path = "env.rs"]
mod env;
use super::{
    CommandSpec, Config, DEFAULT_MAX_RESTARTS, JobSpec, LogFormat, LogTarget, RestartPolicy,
    Settings, Stage, StdinSpec,
};
pub(super) use env::read_env_file;

/// Highest accepted `replicas`.
pub const MAX_REPLICAS: i64 = 10_000;
/// Highest accepted `settings.scrollback`.
pub const MAX_SCROLLBACK: i64 = 10_000_000;
/// Smallest and largest accepted `settings.log_max_size`.
pub const MIN_LOG_SIZE: u64 = 1024;
pub const MAX_LOG_SIZE: u64 = 1 << 40;
/// Most rotated files kept (`settings.log_keep`) and lines shown (`settings.failed_tail`).
pub const MAX_LOG_KEEP: i64 = 1000;
pub const MAX_FAILED_TAIL: i64 = 10_000;
/// Longest accepted `grace` / `timeout`.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

const DURATION_EXAMPLES: &str = r#"expected e.g. "500ms", "3s", "2m""#;
const SIGNAL_EXAMPLES: &str =
    r#"expected e.g. "TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2", or a number like 15"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    settings: Option<Spanned<RawSettings>>,
    job: Option<Spanned<Vec<Spanned<RawJob>>>>,
    keys: Option<super::keys::RawKeys>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    scrollback: Option<Spanned<i64>>,
    grace: Option<Spanned<Value>>,
    stop_signal: Option<Spanned<Value>>,
    max_parallel: Option<Spanned<i64>>,
    headless_timeout: Option<Spanned<Value>>,
    env_file: Option<Spanned<Value>>,
    stall: Option<Spanned<Value>>,
    on_stall: Option<Spanned<String>>,
    // Service keys, read in `services.rs`.
    exit_with: Option<Spanned<String>>,
    backoff_max: Option<Spanned<Value>>,
    backoff_reset: Option<Spanned<Value>>,
    pty: Option<Spanned<bool>>,
    log_dir: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    log_max_size: Option<Spanned<Value>>,
    log_keep: Option<Spanned<i64>>,
    failed_tail: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Option<Spanned<String>>,
    cmd: Option<Spanned<Vec<Spanned<String>>>>,
    shell: Option<Spanned<String>>,
    pipeline: Option<Spanned<Vec<Spanned<Value>>>>,
    env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    cwd: Option<Spanned<String>>,
    stdin: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    stop_signal: Option<Spanned<Value>>,
    grace: Option<Spanned<Value>>,
    restart: Option<Spanned<String>>,
    max_restarts: Option<Spanned<i64>>,
    replicas: Option<Spanned<Value>>,
    autostart: Option<Spanned<bool>>,
    pipefail: Option<Spanned<bool>>,
    env_file: Option<Spanned<Value>>,
    stall: Option<Spanned<Value>>,
    on_stall: Option<Spanned<String>>,
    // Service keys, read in `services.rs`.
    depends_on: Option<Spanned<RawDependsOn>>,
    ready: Option<Spanned<RawProbe>>,
    alive: Option<Spanned<RawProbe>>,
    backoff_max: Option<Spanned<Value>>,
    backoff_reset: Option<Spanned<Value>>,
    pty: Option<Spanned<bool>>,
    log: Option<Spanned<Value>>,
    host: Option<Spanned<String>>,
}

/// Parses and validates a config.
///
/// `origin` names the source in errors (a path, or `<built-in demo>`); `base_dir` is the
/// folder relative `cwd` and `stdin = { file = ... }` paths resolve against (see
/// [`resolve_path`]).
pub fn parse(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let cx = Cx {
        text,
        origin,
        base_dir,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;

    let settings = match &raw.settings {
        Some(s) => cx.settings(s.get_ref())?,
        None => Settings::default(),
    };
    let shared_env = cx.settings_env_file(raw.settings.as_ref())?;

    let raw_jobs: &[Spanned<RawJob>] = raw.job.as_ref().map_or(&[], |j| j.get_ref().as_slice());
    if raw_jobs.is_empty() {
        let span = raw.job.as_ref().map_or(0..0, |j| j.span());
        return Err(cx.err(
            span,
            None,
            Some("job".into()),
            r#"no [[job]] defined (add e.g. `[[job]]` with `name = "hello"` and `cmd = ["echo", "hi"]`)"#,
        ));
    }

    let mut jobs = Vec::new();
    let mut written = Vec::new();
    // expanded name -> (line of the defining job's name, its written name, its replicas)
    let mut seen: HashMap<String, (usize, String, i64)> = HashMap::new();
    for (index, raw_job) in raw_jobs.iter().enumerate() {
        let parsed = cx.job(index, raw_job, &settings, &shared_env)?;
        let line = cx.line_col(parsed.name_span.start).0;
        for spec in &parsed.specs {
            if let Some((first_line, first_name, first_replicas)) = seen.get(&spec.name) {
                let mut message = format!("duplicate job name {:?}", spec.name);
                if *first_replicas == 1 && parsed.replicas == 1 {
                    message.push_str(&format!(" (first defined at line {first_line})"));
                } else {
                    message.push_str(&format!(
                        " after replica expansion (already used by job {first_name:?} at line \
                         {first_line}{})",
                        if *first_replicas > 1 {
                            format!(" with replicas = {first_replicas}")
                        } else {
                            String::new()
                        }
                    ));
                    if parsed.replicas > 1 {
                        message.push_str(&format!(
                            "; this job's replicas = {} expand to {}.1 .. {}.{}",
                            parsed.replicas, parsed.name, parsed.name, parsed.replicas
                        ));
                    }
                }
                return Err(cx.err(
                    parsed.name_span.clone(),
                    Some(JobRef::Name(parsed.name.clone())),
                    Some("name".into()),
                    message,
                ));
            }
            seen.insert(
                spec.name.clone(),
                (line, parsed.name.clone(), parsed.replicas),
            );
        }
        written.push(super::graph::WrittenJob {
            name: parsed.name.clone(),
            first: jobs.len(),
            count: parsed.specs.len(),
            depends_on: parsed.depends_on,
        });
        jobs.extend(parsed.specs);
    }
    super::graph::resolve(&written, &mut jobs).map_err(|e| {
        let job = written.get(e.job).map(|w| JobRef::Name(w.name.clone()));
        cx.err(e.span, job, Some(e.key), e.message)
    })?;
    let settings = cx.exit_with(raw.settings.as_ref(), settings, &jobs)?;

    let keys = match &raw.keys {
        Some(keys) => super::keys::parse(keys, &|span, key, m| cx.err(span, None, Some(key), m))?,
        None => Default::default(),
    };
    Ok(Config {
        origin: origin.to_string(),
        settings,
        jobs,
        keys,
    })
}

/// Resolves a path from the config against the config file's folder.
///
/// Absolute paths are kept. With `base_dir = None` (e.g. the built-in demo) relative paths
/// stay relative to the process's current directory. An empty `base_dir` (what
/// `Path::new("forkyard.toml").parent()` returns) means `.`.
pub fn resolve_path(base_dir: Option<&Path>, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match base_dir {
        None => path.to_path_buf(),
        Some(base) if base.as_os_str().is_empty() => Path::new(".").join(path),
        Some(base) => base.join(path),
    }
}

/// One `[[job]]` entry, validated and expanded.
struct ParsedJob {
    name: String,
    name_span: Range<usize>,
    replicas: i64,
    specs: Vec<JobSpec>,
    /// `depends_on` as written, resolved once every job is known.
    depends_on: Vec<services::WrittenDependency>,
}

/// Parsing context: the text (for line/column), its origin and the base folder.
struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
    base_dir: Option<&'a Path>,
}

/// 1-based line and column (in characters) of a byte offset into `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = memchr::memchr_iter(b'\n', before.as_bytes()).count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The bytes of a config file as text, or an error at the line and column of the first
/// byte that is not UTF-8.
pub(super) fn decode<'a>(bytes: &'a [u8], origin: &str) -> Result<&'a str, ConfigError> {
    let err = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(err) => err,
    };
    let at = err.valid_up_to();
    // The valid prefix locates the bad byte; it is valid UTF-8 by definition.
    let before = std::str::from_utf8(bytes.get(..at).unwrap_or_default()).unwrap_or_default();
    let (line, column) = line_col(before, before.len());
    let shown: Vec<String> = bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        // No error length: a character cut short by the end of the file (at most 3 bytes).
        .take(err.error_len().unwrap_or(4))
        .map(|b| format!("0x{b:02x}"))
        .collect();
    let message = if at == 0 && matches!(bytes, [0xff, 0xfe, ..] | [0xfe, 0xff, ..]) {
        "not UTF-8: the file starts with a UTF-16 byte order mark (save it as UTF-8)".to_string()
    } else if err.error_len().is_none() {
        format!(
            "not UTF-8: the file ends inside a character (byte {}); a config must be UTF-8 text",
            shown.join(" ")
        )
    } else {
        format!(
            "not UTF-8: byte {} is not valid here; a config must be UTF-8 text",
            shown.join(" ")
        )
    };
    Err(ConfigError::Encoding {
        file: origin.to_string(),
        line,
        column,
        message,
    })
}

/// Where a dotted key with the most dots starts (the first one with 80 or more dots,
/// where toml gives up with a "recursion limit" that carries no position).
fn deepest_dotted_key(text: &str) -> Option<usize> {
    use toml_parser::lexer::TokenKind;
    const TOML_KEY_DEPTH: usize = 80;
    let mut best: Option<(usize, usize)> = None; // (dots, start)
    let mut run: Option<(usize, usize)> = None; // (dots, start) of the key being read
    let mut after_dot = false;
    for token in toml_parser::Source::new(text).lex() {
        match token.kind() {
            TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString => {
                if !after_dot {
                    run = Some((0, token.span().start()));
                }
                after_dot = false;
            }
            TokenKind::Dot if run.is_some() && !after_dot => {
                after_dot = true;
                if let Some((dots, start)) = run.as_mut() {
                    *dots += 1;
                    if best.is_none_or(|(most, _)| *dots > most) {
                        best = Some((*dots, *start));
                    }
                    if *dots >= TOML_KEY_DEPTH {
                        return Some(*start);
                    }
                }
            }
            TokenKind::Whitespace => {}
            _ => {
                run = None;
                after_dot = false;
            }
        }
    }
    best.map(|(_, start)| start)
}

impl Cx<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    fn err(
        &self,
        span: Range<usize>,
        job: Option<JobRef>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError::Invalid {
            file: self.origin.to_string(),
            line,
            column,
            job,
            key,
            message: message.into(),
        }
    }

    /// Turns a toml/serde error into a located [`ConfigError`].
    fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let doc = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(syntax) => {
                // toml's "recursion limit" for a too-deep dotted key has no position.
                let deep_key = syntax.span().is_none() && syntax.message() == "recursion limit";
                let span = syntax
                    .span()
                    .or_else(|| error.span())
                    .or_else(|| {
                        deep_key
                            .then(|| deepest_dotted_key(self.text))
                            .flatten()
                            .map(|start| start..start)
                    })
                    .unwrap_or(0..0);
                let message = if deep_key {
                    "recursion limit: this dotted key has too many parts (toml reads fewer than 80)"
                        .to_string()
                } else {
                    one_line(syntax.message())
                };
                let (line, column) = self.line_col(span.start);
                return ConfigError::Syntax {
                    file: self.origin.to_string(),
                    line,
                    column,
                    message,
                };
            }
        };
        let span = error.span().unwrap_or(0..0);
        let mut path = Vec::new();
        locate(doc.get_ref(), &span, &mut path);

        let (job, rest): (Option<JobRef>, &[Seg]) = match path.as_slice() {
            [Seg::Key(k), Seg::Index(i), rest @ ..] if k == "job" => {
                (Some(job_ref_in_doc(doc.get_ref(), *i)), rest)
            }
            all => (None, all),
        };
        let key = if rest.is_empty() {
            None
        } else {
            Some(format_path(rest))
        };
        self.err(span, job, key, serde_message(error.message()))
    }

    fn settings(&self, raw: &RawSettings) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        let key = |k: &str| Some(format!("settings.{k}"));
        if let Some(v) = &raw.scrollback {
            let n = int_in(v, 1, MAX_SCROLLBACK)
                .map_err(|m| self.err(v.span(), None, key("scrollback"), m))?;
            settings.scrollback = to_usize(n);
        }
        if let Some(v) = &raw.grace {
            settings.grace =
                duration(v, true).map_err(|m| self.err(v.span(), None, key("grace"), m))?;
        }
        if let Some(v) = &raw.stop_signal {
            settings.stop_signal =
                signal(v.get_ref()).map_err(|m| self.err(v.span(), None, key("stop_signal"), m))?;
        }
        if let Some(v) = &raw.max_parallel {
            let n = int_in(v, 0, i64::MAX)
                .map_err(|m| self.err(v.span(), None, key("max_parallel"), m))?;
            settings.max_parallel = to_usize(n);
        }
        if let Some(v) = &raw.headless_timeout {
            settings.headless_timeout = Some(
                duration(v, false)
                    .map_err(|m| self.err(v.span(), None, key("headless_timeout"), m))?,
            );
        }
        if let Some(v) = &raw.stall {
            settings.stall =
                Some(duration(v, false).map_err(|m| self.err(v.span(), None, key("stall"), m))?);
        }
        if let Some(v) = &raw.on_stall {
            settings.on_stall =
                on_stall(v.get_ref()).map_err(|m| self.err(v.span(), None, key("on_stall"), m))?;
        }
        let located = |e: KeyError| self.err(e.span, None, Some(e.key), e.message);
        settings.backoff_max = services::backoff(
            &raw.backoff_max,
            "settings.backoff_max",
            settings.backoff_max,
        )
        .map_err(located)?;
        settings.backoff_reset = services::backoff(
            &raw.backoff_reset,
            "settings.backoff_reset",
            settings.backoff_reset,
        )
        .map_err(located)?;
        if let Some(v) = &raw.pty {
            settings.pty = *v.get_ref();
        }
        if let Some(v) = &raw.log_dir {
            let dir = v.get_ref();
            if dir.is_empty() || dir.contains('\0') {
                return Err(self.err(
                    v.span(),
                    None,
                    key("log_dir"),
                    "must be a non-empty path without NUL",
                ));
            }
            settings.log_dir = Some(resolve_path(self.base_dir, dir));
        }
        if let Some(v) = &raw.log_format {
            settings.log_format = LogFormat::parse(v.get_ref()).ok_or_else(|| {
                self.err(
                    v.span(),
                    None,
                    key("log_format"),
                    format!(
                        r#"invalid log format {:?} (expected "plain" or "jsonl")"#,
                        v.get_ref()
                    ),
                )
            })?;
        }
        if let Some(v) = &raw.log_max_size {
            settings.log_max_size = Some(
                size(v.get_ref()).map_err(|m| self.err(v.span(), None, key("log_max_size"), m))?,
            );
        }
        if let Some(v) = &raw.log_keep {
            let n = int_in(v, 0, MAX_LOG_KEEP)
                .map_err(|m| self.err(v.span(), None, key("log_keep"), m))?;
            settings.log_keep = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(v) = &raw.failed_tail {
            let n = int_in(v, 0, MAX_FAILED_TAIL)
                .map_err(|m| self.err(v.span(), None, key("failed_tail"), m))?;
            settings.failed_tail = to_usize(n);
        }
        Ok(settings)
    }

    /// `settings.exit_with`: the (expanded) name of a job that starts by itself.
    fn exit_with(
        &self,
        raw: Option<&Spanned<RawSettings>>,
        mut settings: Settings,
        jobs: &[JobSpec],
    ) -> Result<Settings, ConfigError> {
        let Some(v) = raw.and_then(|r| r.get_ref().exit_with.as_ref()) else {
            return Ok(settings);
        };
        let key = Some("settings.exit_with".to_string());
        let name = v.get_ref();
        match jobs.iter().find(|j| j.name == *name) {
            None => {
                let replicas = jobs
                    .iter()
                    .filter(|j| {
                        j.name
                            .strip_prefix(name.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                    })
                    .count();
                let message = if replicas > 0 {
                    format!("{name:?} has {replicas} replicas: name one of them, e.g. \"{name}.1\"")
                } else {
                    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
                    match closest(name, &names) {
                        Some(near) => format!("unknown job {name:?} (did you mean {near:?}?)"),
                        None => format!("unknown job {name:?}"),
                    }
                };
                Err(self.err(v.span(), None, key, message))
            }
            Some(job) if !job.autostart => Err(self.err(
                v.span(),
                None,
                key,
                format!(
                    "job {name:?} has autostart = false, so a headless run would never start it"
                ),
            )),
            Some(_) => {
                settings.exit_with = Some(name.clone());
                Ok(settings)
            }
        }
    }

    fn job(
        &self,
        index: usize,
        raw: &Spanned<RawJob>,
        settings: &Settings,
        shared_env: &BTreeMap<String, String>,
    ) -> Result<ParsedJob, ConfigError> {
        let header = raw.span();
        let raw = raw.get_ref();

        // The name first, so every later error can say which job it is about.
        let Some(name_v) = &raw.name else {
            return Err(self.err(
                header,
                Some(JobRef::Index(index + 1)),
                Some("name".into()),
                r#"required key is missing (e.g. name = "web")"#,
            ));
        };
        let name = name_v.get_ref().clone();
        if let Err(m) = check_name(&name) {
            return Err(self.err(
                name_v.span(),
                Some(JobRef::Index(index + 1)),
                Some("name".into()),
                m,
            ));
        }
        let job = || Some(JobRef::Name(name.clone()));
        let fail =
            |span: Range<usize>, key: &str, m: String| self.err(span, job(), Some(key.into()), m);

        let command = self.command(raw, header.clone(), &name)?;
        let host = match &raw.host {
            Some(v) => Some(
                crate::control::remote::check_host(v.get_ref())
                    .map(|()| v.get_ref().clone())
                    .map_err(|m| fail(v.span(), "host", m))?,
            ),
            None => None,
        };

        let mut env = BTreeMap::new();
        if let Some(e) = &raw.env {
            for (k, v) in e.get_ref() {
                let key = format!("env.{}", format_key(k));
                if k.is_empty() {
                    return Err(fail(
                        v.span(),
                        &key,
                        "variable name must not be empty".into(),
                    ));
                }
                if k.contains('=') || k.contains('\0') {
                    return Err(fail(
                        v.span(),
                        &key,
                        "variable name must not contain '=' or NUL".into(),
                    ));
                }
                if v.get_ref().contains('\0') {
                    return Err(fail(v.span(), &key, "value must not contain NUL".into()));
                }
                env.insert(k.clone(), v.get_ref().clone());
            }
        }

        let cwd = match &raw.cwd {
            Some(v) => {
                let s = v.get_ref();
                if s.is_empty() || s.contains('\0') {
                    return Err(fail(
                        v.span(),
                        "cwd",
                        "must be a non-empty path without NUL".into(),
                    ));
                }
                // A remote job's folder is on its host: taken as written.
                Some(match host {
                    Some(_) => PathBuf::from(s),
                    None => resolve_path(self.base_dir, s),
                })
            }
            None => None,
        };

        if let (Some(_), Some(v)) = (&host, &raw.stdin) {
            return Err(fail(
                v.span(),
                "stdin",
                "a job with `host` reads no stdin (its input is the ssh connection)".into(),
            ));
        }
        let stdin = match &raw.stdin {
            Some(v) => self
                .stdin(v.get_ref())
                .map_err(|m| fail(v.span(), "stdin", m))?,
            None => StdinSpec::Null,
        };

        let timeout = match &raw.timeout {
            Some(v) => Some(duration(v, false).map_err(|m| fail(v.span(), "timeout", m))?),
            None => None,
        };
        let stop_signal = match &raw.stop_signal {
            Some(v) => signal(v.get_ref()).map_err(|m| fail(v.span(), "stop_signal", m))?,
            None => settings.stop_signal,
        };
        let grace = match &raw.grace {
            Some(v) => duration(v, true).map_err(|m| fail(v.span(), "grace", m))?,
            None => settings.grace,
        };
        let restart = match &raw.restart {
            Some(v) => match v.get_ref().as_str() {
                "no" => RestartPolicy::No,
                "on-failure" => RestartPolicy::OnFailure,
                "always" => RestartPolicy::Always,
                other => {
                    return Err(fail(
                        v.span(),
                        "restart",
                        format!(
                            r#"invalid restart policy {other:?} (expected "no", "on-failure" or "always")"#
                        ),
                    ));
                }
            },
            None => RestartPolicy::No,
        };
        let max_restarts = match &raw.max_restarts {
            Some(v) => {
                let n = int_in(v, 0, i64::from(u32::MAX))
                    .map_err(|m| fail(v.span(), "max_restarts", m))?;
                Some(u32::try_from(n).unwrap_or(u32::MAX))
            }
            // `always` means always; a batch job that keeps failing gives up.
            None if restart == RestartPolicy::Always => None,
            None => Some(DEFAULT_MAX_RESTARTS),
        };
        let located = |e: KeyError| fail(e.span, &e.key, e.message);
        let depends_on = match &raw.depends_on {
            Some(v) => services::depends_on(v.get_ref()).map_err(located)?,
            None => Vec::new(),
        };
        let ready = raw
            .ready
            .as_ref()
            .map(|v| services::probe(v, false))
            .transpose()
            .map_err(located)?;
        let alive = raw
            .alive
            .as_ref()
            .map(|v| services::probe(v, true))
            .transpose()
            .map_err(located)?;
        let backoff_max = services::backoff(&raw.backoff_max, "backoff_max", settings.backoff_max)
            .map_err(located)?;
        let backoff_reset =
            services::backoff(&raw.backoff_reset, "backoff_reset", settings.backoff_reset)
                .map_err(located)?;
        let stall = match &raw.stall {
            Some(v) => Some(duration(v, false).map_err(|m| fail(v.span(), "stall", m))?),
            None => settings.stall,
        };
        let on_stall = match &raw.on_stall {
            Some(v) => on_stall(v.get_ref()).map_err(|m| fail(v.span(), "on_stall", m))?,
            None => settings.on_stall,
        };
        let replicas = match &raw.replicas {
            Some(v) => replicas_value(v).map_err(|m| fail(v.span(), "replicas", m))?,
            None => 1,
        };
        let autostart = raw.autostart.as_ref().is_none_or(|v| *v.get_ref());
        let pipefail = raw.pipefail.as_ref().is_some_and(|v| *v.get_ref());
        let pty = raw.pty.as_ref().map_or(settings.pty, |v| *v.get_ref());
        if pty && stdin == StdinSpec::Pipe {
            let span = raw.stdin.as_ref().map_or(header.clone(), |v| v.span());
            return Err(fail(
                span,
                "stdin",
                "stdin = \"pipe\" is for jobs without a terminal: a job with pty = true \
                 reads what is typed into its terminal (set pty = false, or drop stdin)"
                    .into(),
            ));
        }
        let log = match &raw.log {
            None => LogTarget::Default,
            Some(v) => match v.get_ref() {
                Value::Boolean(true) => LogTarget::Default,
                Value::Boolean(false) => LogTarget::Off,
                Value::String(path) if !path.is_empty() && !path.contains('\0') => {
                    if replicas > 1 {
                        return Err(fail(
                            v.span(),
                            "log",
                            format!(
                                "one file for {replicas} replicas would mix their output; \
                                 use settings.log_dir (one NAME.log per replica) or log = false"
                            ),
                        ));
                    }
                    LogTarget::File(resolve_path(self.base_dir, path))
                }
                Value::String(_) => {
                    return Err(fail(
                        v.span(),
                        "log",
                        "must be a non-empty path without NUL".into(),
                    ));
                }
                other => {
                    return Err(fail(
                        v.span(),
                        "log",
                        format!(
                            r#"expected a path ("logs/web.log") or false, got {} {other}"#,
                            type_name(other)
                        ),
                    ));
                }
            },
        };

        let mut template = JobSpec {
            name: name.clone(),
            command,
            env,
            cwd,
            stdin,
            timeout,
            stop_signal,
            grace,
            restart,
            max_restarts,
            backoff_max,
            backoff_reset,
            autostart,
            pipefail,
            // Resolved by `graph::resolve` once every job is known.
            depends_on: Vec::new(),
            ready,
            alive,
            stall,
            on_stall,
            pty,
            log,
            host: None,
        };
        self.env_and_expansion(raw, &mut template, shared_env)?;
        if let Some(host) = &host {
            crate::control::remote::wrap(&mut template, host);
        }
        let specs = if replicas == 1 {
            vec![template]
        } else {
            (1..=replicas)
                .map(|i| JobSpec {
                    name: format!("{name}.{i}"),
                    ..template.clone()
                })
                .collect()
        };
        Ok(ParsedJob {
            name,
            name_span: name_v.span(),
            replicas,
            specs,
            depends_on,
        })
    }

    /// Exactly one of `cmd`, `shell`, `pipeline`.
    fn command(
        &self,
        raw: &RawJob,
        header: Range<usize>,
        name: &str,
    ) -> Result<CommandSpec, ConfigError> {
        let job = || Some(JobRef::Name(name.to_string()));
        let mut present: Vec<(&str, Range<usize>)> = Vec::new();
        if let Some(v) = &raw.cmd {
            present.push(("cmd", v.span()));
        }
        if let Some(v) = &raw.shell {
            present.push(("shell", v.span()));
        }
        if let Some(v) = &raw.pipeline {
            present.push(("pipeline", v.span()));
        }
        present.sort_by_key(|(_, span)| span.start);
        match present.as_slice() {
            [] => {
                return Err(self.err(
                    header,
                    job(),
                    None,
                    r#"no command: set one of `cmd = ["prog", "arg"]`, `shell = "..."` or `pipeline = [...]`"#,
                ));
            }
            [_] => {}
            [(first, first_span), (second, second_span), ..] => {
                return Err(self.err(
                    second_span.clone(),
                    job(),
                    Some((*second).into()),
                    format!(
                        "a job runs exactly one of `cmd`, `shell` or `pipeline`, but `{first}` \
                         (line {}) and `{second}` (line {}) are both set",
                        self.line_col(first_span.start).0,
                        self.line_col(second_span.start).0,
                    ),
                ));
            }
        }

        if let Some(v) = &raw.cmd {
            let argv: Vec<String> = v.get_ref().iter().map(|a| a.get_ref().clone()).collect();
            return check_argv(&argv)
                .map(|()| CommandSpec::Argv(argv))
                .map_err(|m| self.err(v.span(), job(), Some("cmd".into()), m));
        }
        if let Some(v) = &raw.shell {
            return check_shell(v.get_ref())
                .map(|()| CommandSpec::Shell(v.get_ref().clone()))
                .map_err(|m| self.err(v.span(), job(), Some("shell".into()), m));
        }
        let Some(v) = &raw.pipeline else {
            // Unreachable: `present` had exactly one entry.
            return Err(self.err(header, job(), None, "no command"));
        };
        let stages = v.get_ref();
        if stages.len() < 2 {
            return Err(self.err(
                v.span(),
                job(),
                Some("pipeline".into()),
                format!(
                    "a pipeline needs at least 2 stages, got {}; for a single command use \
                     `cmd = [...]` or `shell = \"...\"` instead",
                    stages.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(stages.len());
        for (i, stage) in stages.iter().enumerate() {
            let stage_err =
                |m: String| self.err(stage.span(), job(), Some(format!("pipeline[{i}]")), m);
            match stage.get_ref() {
                Value::String(s) => {
                    check_shell(s).map_err(stage_err)?;
                    out.push(Stage::Shell(s.clone()));
                }
                Value::Array(items) => {
                    let mut argv = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::String(s) => argv.push(s.clone()),
                            other => {
                                return Err(stage_err(format!(
                                    "argv elements must be strings, got {} {}",
                                    type_name(other),
                                    other
                                )));
                            }
                        }
                    }
                    check_argv(&argv).map_err(stage_err)?;
                    out.push(Stage::Argv(argv));
                }
                other => {
                    return Err(stage_err(format!(
                        r#"each stage must be an argv array like ["sort", "-n"] or a shell string like "sort -n", got {}"#,
                        type_name(other)
                    )));
                }
            }
        }
        Ok(CommandSpec::Pipeline(out))
    }

    fn stdin(&self, v: &Value) -> Result<StdinSpec, String> {
        const EXPECTED: &str = r#"expected "pipe", a string (text fed to the job), or a table like { file = "input.txt" } or { text = "..." }"#;
        match v {
            Value::String(s) if s == "pipe" => Ok(StdinSpec::Pipe),
            Value::String(s) => Ok(StdinSpec::Text(s.clone())),
            Value::Table(t) if t.len() == 1 && t.contains_key("text") => match t.get("text") {
                Some(Value::String(s)) => Ok(StdinSpec::Text(s.clone())),
                other => Err(format!(
                    "`text` must be a string, got {}",
                    other.map_or("nothing", type_name)
                )),
            },
            Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| k.as_str() != "file") {
                    return Err(format!(
                        "unknown key `{}` in stdin table; {EXPECTED}",
                        format_key(k)
                    ));
                }
                match t.get("file") {
                    Some(Value::String(p)) if !p.is_empty() && !p.contains('\0') => {
                        Ok(StdinSpec::File(resolve_path(self.base_dir, p)))
                    }
                    Some(Value::String(_)) => {
                        Err("`file` must be a non-empty path without NUL".into())
                    }
                    Some(other) => Err(format!(
                        "`file` must be a string path, got {}",
                        type_name(other)
                    )),
                    None => Err(format!("missing `file`; {EXPECTED}")),
                }
            }
            other => Err(format!("{EXPECTED}, got {}", type_name(other))),
        }
    }
}

/// Job names: non-empty, `[A-Za-z0-9_.-]+`.
/// `on_stall`: "warn", "stop" or "restart".
fn on_stall(text: &str) -> Result<super::OnStall, String> {
    match text {
        "warn" => Ok(super::OnStall::Warn),
        "stop" => Ok(super::OnStall::Stop),
        "restart" => Ok(super::OnStall::Restart),
        other => Err(format!(
            "expected \"warn\", \"stop\" or \"restart\", got {:?}",
            one_line(other)
        )),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("job name must not be empty".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid job name {name:?}: character {bad:?} is not allowed (use only letters, \
             digits, '_', '.' and '-')"
        ));
    }
    Ok(())
}

fn check_argv(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err(r#"must not be empty (e.g. cmd = ["echo", "hi"])"#.into()),
        Some(prog) if prog.is_empty() => {
            Err("the program (first element) must not be empty".into())
        }
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Err("arguments must not contain NUL".into())
        }
        Some(_) => Ok(()),
    }
}

fn check_shell(script: &str) -> Result<(), String> {
    if script.trim().is_empty() {
        Err("shell command must not be empty".into())
    } else if script.contains('\0') {
        Err("shell command must not contain NUL".into())
    } else {
        Ok(())
    }
}

pub(super) fn int_in(v: &Spanned<i64>, min: i64, max: i64) -> Result<i64, String> {
    let n = *v.get_ref();
    if n < min {
        Err(if min == 0 {
            format!("must not be negative, got {n}")
        } else {
            format!("must be at least {min}, got {n}")
        })
    } else if n > max {
        Err(format!("must be at most {max}, got {n}"))
    } else {
        Ok(n)
    }
}

/// `replicas`: a number, or `"cores"` / `"2*cores"` (the machine's CPU count, times N),
/// so a demo of parallelism scales to the machine it runs on.
fn replicas_value(v: &Spanned<Value>) -> Result<i64, String> {
    let n = match v.get_ref() {
        Value::Integer(n) => *n,
        Value::String(text) => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let factor = match compact.as_str() {
                "cores" => Some(1),
                other => other
                    .strip_suffix("cores")
                    .and_then(|f| f.strip_suffix(['*', 'x']))
                    .and_then(|f| f.parse::<i64>().ok()),
            };
            let Some(factor) = factor else {
                return Err(format!(
                    "expected a number, \"cores\" or \"N*cores\", got {text:?}"
                ));
            };
            factor.saturating_mul(crate::sys::cores() as i64)
        }
        other => {
            return Err(format!(
                "expected a number, \"cores\" or \"N*cores\", got a {}",
                other.type_str()
            ));
        }
    };
    int_in(&Spanned::new(v.span(), n), 1, MAX_REPLICAS)
}

/// A size in bytes: an integer, or a string with a unit: `"512K"`, `"10M"`, `"1G"` and
/// `"10KiB"`, `"10MiB"`, `"1GiB"` are powers of 1024, `"10KB"`, `"10MB"`, `"1GB"` of
/// 1000, `"100B"` bytes.
fn size(v: &Value) -> Result<u64, String> {
    const EXAMPLES: &str = r#"expected e.g. 1048576, "512K", "10MiB", "1G""#;
    let n = match v {
        Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| format!("must not be negative, got {n}"))?
        }
        Value::String(text) => {
            let t = text.trim();
            let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (number, unit) = t.split_at(digits);
            let number: u64 = number
                .parse()
                .map_err(|_| format!("invalid size {text:?} ({EXAMPLES})"))?;
            let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kib" => 1 << 10,
                "m" | "mib" => 1 << 20,
                "g" | "gib" => 1 << 30,
                "kb" => 1000,
                "mb" => 1_000_000,
                "gb" => 1_000_000_000,
                _ => return Err(format!("invalid size {text:?} ({EXAMPLES})")),
            };
            number
                .checked_mul(factor)
                .ok_or_else(|| format!("must be at most 1 TiB, got {text:?}"))?
        }
        other => {
            return Err(format!(
                "expected a size ({EXAMPLES}), got {} {other}",
                type_name(other)
            ));
        }
    };
    if n < MIN_LOG_SIZE {
        return Err(format!("must be at least 1 KiB (1024), got {n}"));
    }
    if n > MAX_LOG_SIZE {
        return Err(format!("must be at most 1 TiB, got {n}"));
    }
    Ok(n)
}

/// Only called on values checked to be within `0..=i64::MAX`.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A humantime duration string; `allow_zero` for grace periods, not for timeouts.
pub(super) fn duration(v: &Spanned<Value>, allow_zero: bool) -> Result<Duration, String> {
    let Value::String(s) = v.get_ref() else {
        return Err(format!(
            "expected a duration string ({DURATION_EXAMPLES}), got {} {}",
            type_name(v.get_ref()),
            v.get_ref()
        ));
    };
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("invalid duration {s:?} ({DURATION_EXAMPLES})"))?;
    if !allow_zero && d.is_zero() {
        return Err(format!("must be longer than zero, got {s:?}"));
    }
    if d > MAX_DURATION {
        return Err(format!("must be at most 365 days, got {s:?}"));
    }
    Ok(d)
}

/// A signal to stop a job with: `"TERM"`, `"SIGTERM"`, `"term"`, `15` or `"15"`.
///
/// Any catchable or fatal signal is accepted, including `KILL` (stop immediately, no
/// grace). Signals whose default action is to *stop* (suspend) the process — `STOP`,
/// `TSTP`, `TTIN`, `TTOU` — are rejected: the job would freeze instead of exiting and only
/// the SIGKILL after the grace period would end it.
fn signal(v: &Value) -> Result<Signal, String> {
    let sig = match v {
        Value::Integer(n) => signal_number(*n)?,
        Value::String(s) => {
            let t = s.trim();
            if let Ok(n) = t.parse::<i64>() {
                signal_number(n)?
            } else {
                let upper = t.to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                Signal::from_str(&full)
                    .map_err(|_| format!("unknown signal {s:?} ({SIGNAL_EXAMPLES})"))?
            }
        }
        other => {
            return Err(format!(
                "expected a signal name or number ({SIGNAL_EXAMPLES}), got {} {}",
                type_name(other),
                other
            ));
        }
    };
    match sig {
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU => Err(format!(
            "{} suspends the process instead of ending it and cannot be a stop signal ({SIGNAL_EXAMPLES})",
            sig.as_str()
        )),
        _ => Ok(sig),
    }
}

fn signal_number(n: i64) -> Result<Signal, String> {
    i32::try_from(n)
        .ok()
        .and_then(|n| Signal::try_from(n).ok())
        .ok_or_else(|| format!("unknown signal number {n} ({SIGNAL_EXAMPLES})"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "integer",
        Value::Float(_) => "float",
        Value::Boolean(_) => "boolean",
        Value::Datetime(_) => "datetime",
        Value::Array(_) => "array",
        Value::Table(_) => "table",
    }
}

fn one_line(s: &str) -> String {
    s.trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rewords serde's messages in config terms (keys, tables, arrays, integers).
fn serde_message(message: &str) -> String {
    let message = one_line(message);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`" / "there are no fields"
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let mut out = String::from("unknown key");
        if let Some(best) = closest(field, &candidates) {
            out.push_str(&format!(" (did you mean `{best}`?)"));
        }
        if !candidates.is_empty() {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            out.push_str(&format!("; valid keys here: {}", list.join(", ")));
        }
        return out;
    }
    message
        .replace(" as i128", "")
        .replace("expected i64", "expected an integer")
        .replace("expected struct RawSettings", "expected a table")
        .replace("expected struct RawJob", "expected a table")
        .replace("expected a map", "expected a table")
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: array")
}

/// The candidate closest to `word` by edit distance, if reasonably close.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A step in a key path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn format_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if bare {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&format_key(k));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn within(inner: &Range<usize>, outer: &Range<usize>) -> bool {
    inner.start >= outer.start && inner.end <= outer.end && outer.start < outer.end
}

/// Finds the deepest key whose key or value span holds `span`, writing its path.
fn locate(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        // The key itself first: in `[[jobs]]` the element's span covers its own key.
        if within(span, &k.span())
            || locate_value(v.get_ref(), span, path)
            || within(span, &v.span())
        {
            return true;
        }
        path.pop();
    }
    false
}

/// Searches inside a value (tables and arrays), writing the path below it.
fn locate_value(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    match value {
        DeValue::Table(t) => locate(t, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                if locate_value(item.get_ref(), span, path) || within(span, &item.span()) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// How to call the `index`th job in an error: by its name if it has a string one.
fn job_ref_in_doc(doc: &DeTable<'_>, index: usize) -> JobRef {
    doc.get("job")
        .and_then(|jobs| jobs.get_ref().get(index))
        .and_then(|job| job.get_ref().get("name"))
        .and_then(|name| name.get_ref().as_str())
        .map_or(JobRef::Index(index + 1), |name| {
            JobRef::Name(name.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        match parse(text, "t.toml", Some(Path::new("/base"))) {
            Ok(c) => c,
            Err(e) => panic!("expected success, got: {e}"),
        }
    }

    fn fail(text: &str) -> ConfigError {
        match parse(text, "t.toml", Some(Path::new("/base"))) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn minimal_job_gets_defaults() {
        let c = ok("[[job]]\nname = \"a\"\ncmd = [\"echo\", \"hi\"]\n");
        assert_eq!(c.origin, "t.toml");
        assert_eq!(c.settings, Settings::default());
        assert_eq!(
            c.jobs,
            vec![JobSpec::new(
                "a",
                CommandSpec::Argv(vec!["echo".into(), "hi".into()])
            )]
        );
    }

    #[test]
    fn all_job_keys() {
        let c = ok(r#"
[settings]
scrollback = 50
grace = "1m 30s"
stop_signal = "sigint"
max_parallel = 4

[[job]]
name = "full"
pipeline = [["head", "-c", "100", "/dev/urandom"], "sha256sum | cat"]
env = { password = "x", "WITH SPACE" = "y" }
cwd = "sub"
stdin = { file = "/abs/in.txt" }
timeout = "100ms"
stop_signal = 9
grace = "0s"
restart = "on-failure"
max_restarts = 0
autostart = false
pipefail = true
"#);
        assert_eq!(c.settings.scrollback, 50);
        assert_eq!(c.settings.grace, Duration::from_secs(90));
        assert_eq!(c.settings.stop_signal, Signal::SIGINT);
        assert_eq!(c.settings.max_parallel, 4);
        let j = &c.jobs[0];
        assert_eq!(
            j.command,
            CommandSpec::Pipeline(vec![
                Stage::Argv(vec![
                    "head".into(),
                    "-c".into(),
                    "100".into(),
                    "/dev/urandom".into()
                ]),
                Stage::Shell("sha256sum | cat".into()),
            ])
        );
        assert_eq!(j.env.get("password").map(String::as_str), Some("x"));
        assert_eq!(j.env.get("WITH SPACE").map(String::as_str), Some("y"));
        assert_eq!(j.cwd, Some(PathBuf::from("/base/sub")));
        assert_eq!(j.stdin, StdinSpec::File(PathBuf::from("/abs/in.txt")));
        assert_eq!(j.timeout, Some(Duration::from_millis(100)));
        assert_eq!(j.stop_signal, Signal::SIGKILL);
        assert_eq!(j.grace, Duration::ZERO);
        assert_eq!(j.restart, RestartPolicy::OnFailure);
        assert_eq!(j.max_restarts, Some(0));
        assert!(!j.autostart);
        assert!(j.pipefail);
    }

    #[test]
    fn replicas_scale_with_cores() {
        let cores = crate::sys::cores();
        let c = ok(
            "[[job]]\nname = \"a\"\ncmd = [\"true\"]\nreplicas = \"2*cores\"\n[[job]]\nname = \"b\"\ncmd = [\"true\"]\nreplicas = \"cores\"\n",
        );
        assert_eq!(c.jobs.len(), 3 * cores);
        assert_eq!(c.jobs[0].name, if cores * 2 > 1 { "a.1" } else { "a" });
    }

    #[test]
    fn inherits_settings() {
        let c = ok(
            "[settings]\ngrace = \"7s\"\nstop_signal = \"HUP\"\n[[job]]\nname = \"a\"\nshell = \"true\"\n[[job]]\nname = \"b\"\nshell = \"true\"\ngrace = \"1s\"\n",
        );
        assert_eq!(c.jobs[0].grace, Duration::from_secs(7));
        assert_eq!(c.jobs[0].stop_signal, Signal::SIGHUP);
        assert_eq!(c.jobs[1].grace, Duration::from_secs(1));
        assert_eq!(c.jobs[1].stop_signal, Signal::SIGHUP);
    }

    #[test]
    fn replicas_expand() {
        let c = ok(
            "[[job]]\nname = \"s\"\ncmd = [\"true\"]\nreplicas = 3\n[[job]]\nname = \"one\"\ncmd = [\"true\"]\nreplicas = 1\n",
        );
        let names: Vec<_> = c.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["s.1", "s.2", "s.3", "one"]);
    }

    #[test]
    fn signal_forms() {
        for (input, want) in [
            ("\"TERM\"", Signal::SIGTERM),
            ("\"SIGTERM\"", Signal::SIGTERM),
            ("\"term\"", Signal::SIGTERM),
            ("\" usr1 \"", Signal::SIGUSR1),
            ("15", Signal::SIGTERM),
            ("\"2\"", Signal::SIGINT),
            ("\"KILL\"", Signal::SIGKILL),
        ] {
            let c = ok(&format!(
                "[settings]\nstop_signal = {input}\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n"
            ));
            assert_eq!(c.settings.stop_signal, want, "{input}");
        }
        for input in [
            "\"STOP\"",
            "\"SIGTSTP\"",
            "19",
            "\"TERMM\"",
            "0",
            "-1",
            "99999999999",
            "1.5",
            "true",
        ] {
            let e = fail(&format!(
                "[[job]]\nname = \"a\"\ncmd = [\"x\"]\nstop_signal = {input}\n"
            ));
            assert_eq!(e.line(), Some(4), "{input}: {e}");
            assert_eq!(e.key(), Some("stop_signal"), "{input}: {e}");
            assert!(e.to_string().contains("\"TERM\""), "{input}: {e}");
        }
    }

    #[test]
    fn display_format() {
        let e = fail("[[job]]\nname = \"web\"\ncmd = [\"x\"]\ntimeout = \"5 parsecs\"\n");
        assert_eq!(
            e.to_string(),
            r#"t.toml:4:11: job "web": key `timeout`: invalid duration "5 parsecs" (expected e.g. "500ms", "3s", "2m")"#
        );
        assert_eq!(e.line(), Some(4));
        assert_eq!(e.column(), Some(11));
        assert_eq!(e.job(), Some(&JobRef::Name("web".into())));
    }

    #[test]
    fn unknown_keys_are_located() {
        let e = fail("[settings]\nscrollbak = 5\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n");
        assert_eq!((e.line(), e.column()), (Some(2), Some(1)));
        assert_eq!(e.key(), Some("settings.scrollbak"));
        assert!(e.to_string().contains("did you mean `scrollback`?"), "{e}");

        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\n[[job]]\nname = \"b\"\nshel = \"x\"\n");
        assert_eq!(e.line(), Some(6));
        assert_eq!(e.key(), Some("shel"));
        assert_eq!(e.job(), Some(&JobRef::Name("b".into())));
        assert!(e.to_string().contains("did you mean `shell`?"), "{e}");

        let e = fail("[jobs]\nname = \"a\"\n");
        assert_eq!(e.key(), Some("jobs"));
        assert!(e.to_string().contains("did you mean `job`?"), "{e}");
    }

    #[test]
    fn wrong_types_are_located() {
        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\", 1]\n");
        assert_eq!(e.key(), Some("cmd[1]"));
        assert_eq!((e.line(), e.column()), (Some(3), Some(13)));

        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\nenv = { A = 1 }\n");
        assert_eq!(e.key(), Some("env.A"));

        let e = fail("[[job]]\nname = 5\ncmd = [\"x\"]\n");
        assert_eq!(e.job(), Some(&JobRef::Index(1)));
        assert_eq!(e.key(), Some("name"));

        let e = fail("[settings]\nscrollback = \"many\"\n");
        assert_eq!(e.key(), Some("settings.scrollback"));
        assert!(e.to_string().contains("expected an integer"), "{e}");

        let e = fail("job = 3\n");
        assert_eq!(e.key(), Some("job"));
        assert!(e.to_string().contains("expected an array"), "{e}");
    }

    #[test]
    fn log_keys() {
        let c = ok(r#"[settings]
log_dir = "logs"
log_format = "jsonl"
log_max_size = "10MiB"
log_keep = 0
failed_tail = 3

[[job]]
name = "a"
cmd = ["x"]
log = false

[[job]]
name = "b"
cmd = ["x"]
log = "b/out.log"

[[job]]
name = "c"
cmd = ["x"]
replicas = 2
log = true
"#);
        let s = &c.settings;
        assert_eq!(s.log_dir.as_deref(), Some(Path::new("/base/logs")));
        assert_eq!(s.log_format, LogFormat::Jsonl);
        assert_eq!(s.log_max_size, Some(10 << 20));
        assert_eq!((s.log_keep, s.failed_tail), (0, 3));
        assert_eq!(c.jobs[0].log, LogTarget::Off);
        assert_eq!(c.jobs[1].log, LogTarget::File("/base/b/out.log".into()));
        assert_eq!(c.jobs[2].log, LogTarget::Default);
        for (text, bytes) in [
            ("4096", 4096),
            ("\"2K\"", 2048),
            ("\"1 gib\"", 1 << 30),
            ("\"5MB\"", 5_000_000),
        ] {
            let c = ok(&format!(
                "[settings]\nlog_max_size = {text}\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n"
            ));
            assert_eq!(c.settings.log_max_size, Some(bytes), "{text}");
        }
        for (text, key, says) in [
            (
                "[settings]\nlog_max_size = 10\n",
                "settings.log_max_size",
                "at least 1 KiB",
            ),
            (
                "[settings]\nlog_max_size = \"10 parsecs\"\n",
                "settings.log_max_size",
                "invalid size",
            ),
            (
                "[settings]\nlog_max_size = \"2T\"\n",
                "settings.log_max_size",
                "invalid size",
            ),
            (
                "[settings]\nlog_format = \"xml\"\n",
                "settings.log_format",
                "plain",
            ),
            (
                "[settings]\nlog_keep = -1\n",
                "settings.log_keep",
                "negative",
            ),
            (
                "[settings]\nlog_dir = \"\"\n",
                "settings.log_dir",
                "non-empty",
            ),
        ] {
            let e = fail(&format!("{text}[[job]]\nname = \"a\"\ncmd = [\"x\"]\n"));
            assert_eq!(e.key(), Some(key), "{text}");
            assert!(e.to_string().contains(says), "{e}");
        }
        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\nreplicas = 3\nlog = \"a.log\"\n");
        assert_eq!(e.key(), Some("log"));
        assert!(e.to_string().contains("3 replicas"), "{e}");
        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\nlog = 3\n");
        assert_eq!((e.key(), e.line()), (Some("log"), Some(4)));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = fail("[[job]]\nname = \"a\ncmd = []\n");
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().starts_with("t.toml:2:"), "{e}");
    }

    #[test]
    fn command_count() {
        let e = fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\n\nshell = \"y\"\n");
        assert_eq!(e.line(), Some(5));
        assert_eq!(e.key(), Some("shell"));
        assert!(e.to_string().contains("line 3"), "{e}");

        let e = fail("[[job]]\nname = \"a\"\n");
        assert_eq!(e.line(), Some(1));
        assert!(e.to_string().contains("no command"), "{e}");
    }

    #[test]
    fn duplicates() {
        let e =
            fail("[[job]]\nname = \"a\"\ncmd = [\"x\"]\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n");
        assert_eq!(e.line(), Some(5));
        assert!(e.to_string().contains("first defined at line 2"), "{e}");

        let e = fail(
            "[[job]]\nname = \"a\"\ncmd = [\"x\"]\nreplicas = 2\n[[job]]\nname = \"a.2\"\ncmd = [\"x\"]\n",
        );
        assert_eq!(e.line(), Some(6));
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("replica"), "{e}");
    }

    #[test]
    fn no_jobs() {
        for text in ["", "[settings]\n", "job = []\n"] {
            let e = fail(text);
            assert!(e.to_string().contains("no [[job]] defined"), "{e}");
            assert!(e.line().is_some());
        }
    }

    #[test]
    fn numbers() {
        for (text, key) in [
            ("[settings]\nscrollback = 0\n", "settings.scrollback"),
            ("[settings]\nscrollback = -3\n", "settings.scrollback"),
            ("[settings]\nmax_parallel = -1\n", "settings.max_parallel"),
            (
                "[settings]\nscrollback = 99999999999999999999\n",
                "settings.scrollback",
            ),
        ] {
            let e = fail(text);
            assert_eq!(e.key(), Some(key), "{e}");
            assert_eq!(e.line(), Some(2), "{e}");
        }
        for (field, value) in [
            ("replicas", "0"),
            ("replicas", "100001"),
            ("max_restarts", "-1"),
            ("max_restarts", "5000000000"),
            ("timeout", "\"0s\""),
            ("timeout", "5"),
            ("grace", "\"1000 years\""),
        ] {
            let e = fail(&format!(
                "[[job]]\nname = \"a\"\ncmd = [\"x\"]\n{field} = {value}\n"
            ));
            assert_eq!(e.key(), Some(field), "{e}");
            assert_eq!(e.line(), Some(4), "{e}");
        }
    }

    #[test]
    fn pty_and_stdin_pipe() {
        let c = parse(
            "[settings]\npty = true\n[[job]]\nname = \"a\"\ncmd = [\"top\"]\n[[job]]\nname = \"b\"\ncmd = [\"cat\"]\npty = false\nstdin = \"pipe\"\n[[job]]\nname = \"c\"\ncmd = [\"cat\"]\npty = false\nstdin = { text = \"pipe\" }\n",
            "t.toml",
            None,
        )
        .expect("parses");
        assert!(c.settings.pty);
        assert!(c.jobs[0].pty);
        assert!(!c.jobs[1].pty);
        assert_eq!(c.jobs[1].stdin, StdinSpec::Pipe);
        assert_eq!(c.jobs[2].stdin, StdinSpec::Text("pipe".into()));
        let e = parse(
            "[[job]]\nname = \"a\"\ncmd = [\"cat\"]\npty = true\nstdin = \"pipe\"\n",
            "t.toml",
            None,
        )
        .expect_err("pipe and pty");
        assert_eq!(e.key(), Some("stdin"), "{e}");
        assert!(e.to_string().contains("t.toml:5:9"), "{e}");
    }

    #[test]
    fn stdin_forms() {
        let c = ok(
            "[[job]]\nname = \"a\"\ncmd = [\"cat\"]\nstdin = \"hello\"\n[[job]]\nname = \"b\"\ncmd = [\"cat\"]\nstdin = { file = \"in.txt\" }\n",
        );
        assert_eq!(c.jobs[0].stdin, StdinSpec::Text("hello".into()));
        assert_eq!(
            c.jobs[1].stdin,
            StdinSpec::File(PathBuf::from("/base/in.txt"))
        );
        for bad in [
            "{ path = \"x\" }",
            "{ }",
            "{ file = 3 }",
            "{ file = \"\" }",
            "3",
        ] {
            let e = fail(&format!(
                "[[job]]\nname = \"a\"\ncmd = [\"cat\"]\nstdin = {bad}\n"
            ));
            assert_eq!(e.key(), Some("stdin"), "{e}");
        }
    }

    #[test]
    fn resolve_path_cases() {
        assert_eq!(resolve_path(None, "x/y"), PathBuf::from("x/y"));
        assert_eq!(resolve_path(Some(Path::new("")), "x"), PathBuf::from("./x"));
        assert_eq!(
            resolve_path(Some(Path::new("/etc")), "x"),
            PathBuf::from("/etc/x")
        );
        assert_eq!(
            resolve_path(Some(Path::new("conf")), "x"),
            PathBuf::from("conf/x")
        );
        assert_eq!(
            resolve_path(Some(Path::new("/etc")), "/abs"),
            PathBuf::from("/abs")
        );
        assert_eq!(
            resolve_path(Path::new("forkyard.toml").parent(), "d"),
            PathBuf::from("./d")
        );
    }

    #[test]
    fn line_col_handles_multibyte() {
        let cx = Cx {
            text: "é = 1\nαβγ = 2",
            origin: "x",
            base_dir: None,
        };
        assert_eq!(cx.line_col(0), (1, 1));
        assert_eq!(cx.line_col(1), (1, 1)); // inside 'é'
        assert_eq!(cx.line_col(2), (1, 2));
        assert_eq!(cx.line_col(9), (2, 2));
        assert_eq!(cx.line_col(1000), (2, 8));
    }

    #[test]
    fn decode_locates_any_bad_byte() {
        let text = "[[job]]\nname = \"é\"\ncmd = [\"true\"]\n".as_bytes();
        for at in 0..text.len() {
            for bad in [0x80u8, 0xc3, 0xff] {
                let mut bytes = text.to_vec();
                bytes[at] = bad;
                match decode(&bytes, "x") {
                    Ok(_) => {}
                    Err(e) => {
                        assert!(e.line().is_some() && e.column().is_some(), "{e}");
                        assert!(e.to_string().starts_with("x:"), "{e}");
                    }
                }
            }
        }
        let e = decode(b"a = 1\nb = \"\xff\"", "x").expect_err("bad byte");
        assert_eq!((e.line(), e.column()), (Some(2), Some(6)));
    }

    #[test]
    fn headless_timeout_is_a_duration() {
        let c =
            ok("[settings]\nheadless_timeout = \"1m 30s\"\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n");
        assert_eq!(c.settings.headless_timeout, Some(Duration::from_secs(90)));
        let e = fail("[settings]\nheadless_timeout = 8\n[[job]]\nname = \"a\"\ncmd = [\"x\"]\n");
        assert_eq!(e.key(), Some("settings.headless_timeout"));
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn builtin_demo_parses() {
        let c = match crate::config::builtin_demo() {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(c.jobs.iter().any(|j| j.name == "sleep.10"));
        assert_eq!(c.settings.grace, Duration::from_secs(2));
    }
}
