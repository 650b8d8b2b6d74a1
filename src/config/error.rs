//! Errors from reading and validating a config.
//!
//! Every error about the file's content points at a place in it: `file:line:column: `,
//! then (when relevant) the job and the key, then what is wrong, for example
//!
//! ```text
//! forkyard.toml:12:7: job "web": key `timeout`: invalid duration "5 parsecs" (expected e.g. "500ms", "3s", "2m")
//! forkyard.toml:3:1: key `settings.scrollbak`: unknown key (expected `scrollback`)
//! forkyard.toml:4:9: TOML syntax error: invalid string, expected `"`
//! ```
//!
//! Lines and columns are 1-based; columns count characters, not bytes. A file that is not
//! UTF-8 is located at its first bad byte (`forkyard.toml:3:14: not UTF-8: ...`).

use std::fmt;

/// Which job an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    /// The job's `name` as written (before replica expansion).
    Name(String),
    /// 1-based position among the `[[job]]` entries, when the job has no usable name.
    Index(usize),
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobRef::Name(name) => write!(f, "job {name:?}"),
            JobRef::Index(index) => write!(f, "job #{index}"),
        }
    }
}

/// Everything that can go wrong turning a config file into a [`super::Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// The file is larger than [`super::MAX_CONFIG_BYTES`] (or never ends, like
    /// `/dev/zero`): it is not read further.
    #[error(
        "cannot read {file}: larger than {limit} (forkyard reads at most that much of a config; is it the right file?)"
    )]
    TooLarge { file: String, limit: String },
    /// The file is not UTF-8 text; the position is that of the first bad byte.
    #[error("{file}:{line}:{column}: {message}")]
    Encoding {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The text is not valid TOML.
    #[error("{file}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid TOML, but not a valid forkyard config (unknown key, wrong type, bad value...).
    #[error("{file}:{line}:{column}: {}{message}", context(job, key))]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        /// The job concerned, if any.
        job: Option<JobRef>,
        /// Dotted key path: relative to the job for job keys (`timeout`, `env.PATH`,
        /// `pipeline[1]`), from the document root otherwise (`settings.grace`, `job`).
        key: Option<String>,
        message: String,
    },
}

fn context(job: &Option<JobRef>, key: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(job) = job {
        out.push_str(&format!("{job}: "));
    }
    if let Some(key) = key {
        out.push_str(&format!("key `{key}`: "));
    }
    out
}

impl ConfigError {
    /// The file (path or `<built-in demo>`) the error is about.
    pub fn file(&self) -> &str {
        match self {
            ConfigError::Io { file, .. }
            | ConfigError::TooLarge { file, .. }
            | ConfigError::Encoding { file, .. }
            | ConfigError::Syntax { file, .. }
            | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// 1-based line of the offending text (`None` for I/O errors).
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
            ConfigError::Encoding { line, .. }
            | ConfigError::Syntax { line, .. }
            | ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// 1-based column (in characters) of the offending text (`None` for I/O errors).
    pub fn column(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
            ConfigError::Encoding { column, .. }
            | ConfigError::Syntax { column, .. }
            | ConfigError::Invalid { column, .. } => Some(*column),
        }
    }

    /// The key path the error is about, see [`ConfigError::Invalid::key`].
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => key.as_deref(),
            _ => None,
        }
    }

    /// The job the error is about, if any.
    pub fn job(&self) -> Option<&JobRef> {
        match self {
            ConfigError::Invalid { job, .. } => job.as_ref(),
            _ => None,
        }
    }

    /// What is wrong, without the location prefix.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Io { source, .. } => source.to_string(),
            ConfigError::TooLarge { limit, .. } => format!("larger than {limit}"),
            ConfigError::Encoding { message, .. }
            | ConfigError::Syntax { message, .. }
            | ConfigError::Invalid { message, .. } => message.clone(),
        }
    }
}
