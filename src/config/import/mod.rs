//! Other tools' configs -> forkyard's: Procfile, `mprocs.yaml`, `process-compose.yaml`,
//! `package.json` scripts, and commands typed on the command line.
//!
//! Every importer builds a [`Draft`]: the jobs and settings as forkyard keys, each with
//! the place in the source it came from, plus a warning (and a comment) for every key it
//! could not map. A draft is rendered as `forkyard.toml` text and that text goes through
//! the one config parser, so what `forkyard import` prints and what forkyard runs from
//! the original file are the same by construction. An error the parser finds in the
//! rendered text is moved back to the place in the source the offending line came from.

pub mod mprocs;
pub mod npm;
pub mod process_compose;
pub mod procfile;
mod yaml;

use std::collections::HashSet;
use std::path::Path;

use toml::Value;

use super::{Config, ConfigError};
use crate::stdio::visible_inline;

/// A place in a source file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn new(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }
}

/// The kinds of file forkyard reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Procfile,
    Mprocs,
    ProcessCompose,
    PackageJson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Toml => "forkyard.toml",
            Format::Procfile => "Procfile",
            Format::Mprocs => "mprocs.yaml",
            Format::ProcessCompose => "process-compose.yaml",
            Format::PackageJson => "package.json",
        }
    }

    /// The format of `path`, from its name and, for YAML, its top-level keys: `procs`
    /// is mprocs, `processes` is process-compose. Anything else is TOML.
    pub fn detect(path: &Path, text: &str) -> Format {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".toml") {
            return Format::Toml;
        }
        if name == "Procfile" || name.starts_with("Procfile.") || lower.ends_with(".procfile") {
            return Format::Procfile;
        }
        if lower == "package.json" {
            return Format::PackageJson;
        }
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            if lower.starts_with("mprocs") {
                return Format::Mprocs;
            }
            if lower.starts_with("process-compose") {
                return Format::ProcessCompose;
            }
            let top_key = |key: &str| {
                text.lines().any(|l| {
                    l.strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with(':'))
                })
            };
            return if top_key("procs") && !top_key("processes") {
                Format::Mprocs
            } else {
                Format::ProcessCompose
            };
        }
        Format::Toml
    }
}

/// One `key = value` line of the rendered TOML.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub at: Pos,
    /// Said in a comment after the line.
    pub note: Option<String>,
}

/// One `[[job]]` of a draft.
#[derive(Debug, Clone)]
pub struct DraftJob {
    pub name: String,
    pub at: Pos,
    pub entries: Vec<Entry>,
    /// Comment lines at the end of the job (keys that did not map, descriptions).
    pub notes: Vec<String>,
    /// What the job waits for: `(job, condition)` from `depends_on` (process-compose) or
    /// `deps` (mprocs). Kept for the services track's `depends_on` key: until it lands,
    /// each is only a "not mapped yet" warning and comment.
    pub depends_on: Vec<(String, String)>,
}

impl DraftJob {
    pub fn new(name: String, at: Pos) -> DraftJob {
        DraftJob {
            name,
            at,
            entries: Vec::new(),
            notes: Vec::new(),
            depends_on: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>, at: Pos) {
        self.set_noted(key, value, at, None);
    }

    pub fn set_noted(&mut self, key: &str, value: impl Into<Value>, at: Pos, note: Option<String>) {
        self.entries.retain(|e| e.key != key);
        self.entries.push(Entry {
            key: key.to_string(),
            value: value.into(),
            at,
            note,
        });
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }
}

/// A key that did not map, said on stderr when the file is run and as a comment in
/// `forkyard import`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Pos,
    pub text: String,
}

/// A config in forkyard's terms, before rendering.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The source as named (a path, or `<command line>`).
    pub origin: String,
    pub format: Format,
    /// Comment lines at the top.
    pub notes: Vec<String>,
    pub settings: Vec<Entry>,
    pub jobs: Vec<DraftJob>,
    pub warnings: Vec<Warning>,
    names: HashSet<String>,
}

impl Draft {
    pub fn new(origin: &str, format: Format) -> Draft {
        Draft {
            origin: origin.to_string(),
            format,
            notes: Vec::new(),
            settings: Vec::new(),
            jobs: Vec::new(),
            warnings: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// Records a key that did not map: a warning, and a comment in the job it is about
    /// (or at the top).
    pub fn warn(&mut self, job: Option<usize>, at: Pos, text: impl Into<String>) {
        let text = text.into();
        let comment = format!("line {}: {text}", at.line);
        match job.and_then(|j| self.jobs.get_mut(j)) {
            Some(job) => job.notes.push(comment),
            None => self.notes.push(comment),
        }
        self.warnings.push(Warning { at, text });
    }

    pub fn setting(&mut self, key: &str, value: impl Into<Value>, at: Pos) {
        self.settings.retain(|e| e.key != key);
        self.settings.push(Entry {
            key: key.to_string(),
            value: value.into(),
            at,
            note: None,
        });
    }

    /// A valid, unused job name for `wanted`: characters forkyard does not allow in a
    /// name become `-`, and a name already taken gets `-2`, `-3`... A change is warned.
    pub fn job_name(&mut self, wanted: &str, at: Pos) -> String {
        let mut name: String = wanted
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if name.trim_matches('-').is_empty() {
            name = "job".into();
        }
        if self.names.contains(&name) {
            let base = name.clone();
            let mut n = 2;
            while self.names.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
        }
        if name != wanted {
            let shown = visible_inline(wanted).into_owned();
            self.warnings.push(Warning {
                at,
                text: format!(
                    "{shown:?} is named {name:?} (a job name is made of letters, digits, \
                     `_`, `.` and `-`, and is unique)"
                ),
            });
        }
        self.names.insert(name.clone());
        name
    }

    /// The `forkyard.toml` text, and for each of its lines the place in the source it
    /// came from.
    pub fn render(&self) -> (String, Vec<Pos>) {
        let mut out = Renderer::default();
        let base = Path::new(&self.origin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let kind = if base.as_deref() == Some(self.format.name()) {
            String::new()
        } else {
            format!(" ({})", self.format.name())
        };
        out.comment(
            &format!(
                "forkyard.toml made by `forkyard import` from {}{kind}",
                self.origin
            ),
            Pos::default(),
        );
        for note in &self.notes {
            out.comment(note, Pos::default());
        }
        if !self.settings.is_empty() {
            out.line(String::new(), Pos::default());
            out.line("[settings]".into(), Pos::default());
            for entry in &self.settings {
                out.entry(entry);
            }
        }
        for job in &self.jobs {
            out.line(String::new(), job.at);
            out.line("[[job]]".into(), job.at);
            out.line(format!("name = {}", Value::from(job.name.clone())), job.at);
            for entry in &job.entries {
                out.entry(entry);
            }
            for note in &job.notes {
                out.comment(note, job.at);
            }
        }
        (out.text, out.map)
    }

    /// Renders and parses the draft: the config forkyard runs from the source, with
    /// errors located in the source.
    pub fn config(&self, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, map) = self.render();
        super::parse(&text, &self.origin, base_dir).map_err(|err| relocate(err, &map))
    }

    /// The warnings as forkyard says them: `FILE:LINE:COLUMN: text`.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| {
                if w.at.line == 0 {
                    format!("{}: {}", self.origin, w.text)
                } else {
                    format!("{}:{}:{}: {}", self.origin, w.at.line, w.at.column, w.text)
                }
            })
            .collect()
    }
}

#[derive(Default)]
struct Renderer {
    text: String,
    map: Vec<Pos>,
}

impl Renderer {
    fn line(&mut self, line: String, at: Pos) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.map.push(at);
    }

    /// A comment: one line each, control characters made visible so that nothing from
    /// the source can end the comment early.
    fn comment(&mut self, text: &str, at: Pos) {
        for line in text.lines() {
            self.line(format!("# {}", visible_inline(line)), at);
        }
    }

    fn entry(&mut self, entry: &Entry) {
        let mut line = format!("{} = {}", entry.key, inline(&entry.value));
        if let Some(note) = &entry.note {
            line.push_str(&format!("  # {}", visible_inline(note)));
        }
        self.line(line, entry.at);
    }
}

/// A value on one line (tables inline), as TOML writes it.
fn inline(value: &Value) -> String {
    match value {
        Value::Table(table) if table.is_empty() => "{}".into(),
        Value::Table(table) => {
            let items: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A key, bare when TOML allows it, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        k.to_string()
    } else {
        Value::from(k.to_string()).to_string()
    }
}

/// Moves a parse error of the rendered text to the source place its line came from.
fn relocate(err: ConfigError, map: &[Pos]) -> ConfigError {
    let place = |line: usize| {
        map.get(line.wrapping_sub(1))
            .copied()
            .filter(|p| p.line > 0)
    };
    match err {
        ConfigError::Invalid {
            file,
            line,
            column,
            job,
            key,
            message,
        } => {
            let at = place(line).unwrap_or(Pos::new(line, column));
            ConfigError::Invalid {
                file,
                line: at.line,
                column: at.column,
                job,
                key,
                message,
            }
        }
        ConfigError::Syntax {
            file,
            line,
            column,
            message,
        } => {
            let at = place(line).unwrap_or(Pos::new(line, column));
            ConfigError::Syntax {
                file,
                line: at.line,
                column: at.column,
                message,
            }
        }
        other => other,
    }
}

/// `text` written so that forkyard's `${VAR}` expansion gives it back unchanged (for
/// values the source tool passes on literally): every `${` becomes `$${`.
pub fn literal(text: &str) -> String {
    text.replace("${", "$${")
}

/// What a file is read into: the config and the warnings to say before running it.
pub struct Loaded {
    pub config: Config,
    pub format: Format,
    pub warnings: Vec<String>,
}

/// Reads a config of any format forkyard knows (see [`Format::detect`]).
pub fn load_any(path: &Path) -> Result<Loaded, ConfigError> {
    let text = super::read(path)?;
    let format = Format::detect(path, &text);
    if format == Format::Toml {
        let config = super::parse(&text, &path.display().to_string(), path.parent())?;
        return Ok(Loaded {
            config,
            format,
            warnings: Vec::new(),
        });
    }
    let draft = draft(path, &text, format)?;
    Ok(Loaded {
        config: draft.config(path.parent())?,
        format,
        warnings: draft.warning_lines(),
    })
}

/// The draft of a file that is not forkyard's own TOML.
pub fn draft(path: &Path, text: &str, format: Format) -> Result<Draft, ConfigError> {
    let origin = path.display().to_string();
    match format {
        Format::Procfile => procfile::draft(text, &origin, path.parent()),
        Format::Mprocs => mprocs::draft(text, &origin),
        Format::ProcessCompose => process_compose::draft(text, &origin),
        Format::PackageJson => npm::draft_all(path, text),
        Format::Toml => Err(ConfigError::Invalid {
            file: origin,
            line: 1,
            column: 1,
            job: None,
            key: None,
            message: "this is already a forkyard config (TOML); `forkyard import` reads a \
                      Procfile, mprocs.yaml, process-compose.yaml or package.json"
                .into(),
        }),
    }
}

/// An error at a place in a source file.
pub(crate) fn error_at(
    origin: &str,
    at: Pos,
    key: Option<&str>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        file: origin.to_string(),
        line: at.line.max(1),
        column: at.column.max(1),
        job: None,
        key: key.map(str::to_string),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_toml() {
        assert_eq!(inline(&Value::from("a\"b\x1b")), r#""a\"b\u001B""#);
        let mut table = toml::Table::new();
        table.insert("A B".into(), Value::from("1"));
        table.insert("PORT".into(), Value::from("5000"));
        assert_eq!(
            inline(&Value::Table(table)),
            r#"{ "A B" = "1", PORT = "5000" }"#
        );
    }

    #[test]
    fn literal_survives_expansion() {
        assert_eq!(literal("$HOME"), "$HOME");
        assert_eq!(literal("${HOME} $$"), "$${HOME} $$");
        assert_eq!(literal("$${X}"), "$$${X}");
    }

    #[test]
    fn names_are_made_valid_and_unique() {
        let mut d = Draft::new("x", Format::Mprocs);
        assert_eq!(d.job_name("web", Pos::new(1, 1)), "web");
        assert_eq!(d.job_name("web", Pos::new(2, 1)), "web-2");
        assert_eq!(d.job_name("my server", Pos::new(3, 1)), "my-server");
        assert_eq!(d.job_name("", Pos::new(4, 1)), "job");
        assert_eq!(d.warnings.len(), 3);
    }

    #[test]
    fn detects_formats() {
        let f = |name: &str, text: &str| Format::detect(Path::new(name), text);
        assert_eq!(f("Procfile", ""), Format::Procfile);
        assert_eq!(f("dir/Procfile.dev", ""), Format::Procfile);
        assert_eq!(f("mprocs.yaml", ""), Format::Mprocs);
        assert_eq!(f("process-compose.yml", ""), Format::ProcessCompose);
        assert_eq!(f("dev.yaml", "procs:\n  a: {}\n"), Format::Mprocs);
        assert_eq!(
            f("dev.yaml", "processes:\n  a: {}\n"),
            Format::ProcessCompose
        );
        assert_eq!(f("package.json", ""), Format::PackageJson);
        assert_eq!(f("x.toml", ""), Format::Toml);
        assert_eq!(f("Procfile.imported.toml", ""), Format::Toml);
        assert_eq!(f("config", ""), Format::Toml);
    }
}
