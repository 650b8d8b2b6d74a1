//! Configuration: TOML text -> validated, resolved job specs.
//!
//! `parse` turns text into [`Config`]; every error carries the file, line, column and key
//! so a user can jump straight to the mistake. Nothing downstream re-validates: a `Config`
//! that exists is runnable.

mod error;
pub mod import;
pub mod keys;
pub mod lookup;
mod parse;
pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

pub use error::{ConfigError, JobRef};
pub use parse::{parse, resolve_path};

/// The demo compiled into the binary; runs when no config is given or found.
pub const BUILTIN_DEMO: &str = include_str!("../../assets/demo.toml");
/// Name shown for the built-in demo in errors and headers.
pub const BUILTIN_DEMO_NAME: &str = "<built-in demo>";

pub const DEFAULT_SCROLLBACK: usize = 10_000;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_RESTARTS: u32 = 5;

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from (a path, or [`BUILTIN_DEMO_NAME`]), for headers and errors.
    pub origin: String,
    pub settings: Settings,
    /// Jobs in file order, replicas already expanded (`name.1` .. `name.N`).
    pub jobs: Vec<JobSpec>,
    /// `[keys]`: the TUI's key bindings that differ from the defaults.
    pub keys: keys::Keys,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Lines kept per job in its ring buffer.
    pub scrollback: usize,
    pub grace: Duration,
    pub stop_signal: Signal,
    /// 0 = unlimited.
    pub max_parallel: usize,
    /// Headless only: once this long has passed, every job still running is stopped as
    /// if its `timeout` had expired, and the run ends. The TUI ignores it.
    pub headless_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scrollback: DEFAULT_SCROLLBACK,
            grace: DEFAULT_GRACE,
            stop_signal: Signal::SIGTERM,
            max_parallel: 0,
            headless_timeout: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub name: String,
    pub command: CommandSpec,
    /// Added to (and overriding) the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Absolute, or relative to the process cwd when the config has no folder (the demo).
    pub cwd: Option<PathBuf>,
    pub stdin: StdinSpec,
    pub timeout: Option<Duration>,
    pub stop_signal: Signal,
    pub grace: Duration,
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    pub autostart: bool,
    pub pipefail: bool,
    /// `host = "user@host"`: the job runs there, through `ssh -tt` (its command is
    /// already the ssh command; see `control::remote`). Shown in its row.
    pub host: Option<String>,
}

impl JobSpec {
    /// A job with defaults, for tests and programmatic use.
    pub fn new(name: impl Into<String>, command: CommandSpec) -> Self {
        let settings = Settings::default();
        JobSpec {
            name: name.into(),
            command,
            env: BTreeMap::new(),
            cwd: None,
            stdin: StdinSpec::Null,
            timeout: None,
            stop_signal: settings.stop_signal,
            grace: settings.grace,
            restart: RestartPolicy::No,
            max_restarts: DEFAULT_MAX_RESTARTS,
            autostart: true,
            pipefail: false,
            host: None,
        }
    }

    /// The stages this job runs: one for `cmd`/`shell`, several for `pipeline`.
    pub fn stages(&self) -> Vec<Stage> {
        match &self.command {
            CommandSpec::Argv(argv) => vec![Stage::Argv(argv.clone())],
            CommandSpec::Shell(script) => vec![Stage::Shell(script.clone())],
            CommandSpec::Pipeline(stages) => stages.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandSpec {
    /// `cmd = [...]`: argv, no shell.
    Argv(Vec<String>),
    /// `shell = "..."`: run as `/bin/sh -c`.
    Shell(String),
    /// `pipeline = [...]`: stages wired by forkyard with OS pipes.
    Pipeline(Vec<Stage>),
}

/// One process of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Argv(Vec<String>),
    Shell(String),
}

impl Stage {
    /// The argv actually executed (`/bin/sh -c ...` for shell stages).
    pub fn argv(&self) -> Vec<String> {
        match self {
            Stage::Argv(argv) => argv.clone(),
            Stage::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }

    /// Human-readable form for tables and headers.
    pub fn display(&self) -> String {
        match self {
            Stage::Argv(argv) => argv
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
            Stage::Shell(script) => script.clone(),
        }
    }
}

impl CommandSpec {
    pub fn display(&self) -> String {
        match self {
            CommandSpec::Argv(argv) => Stage::Argv(argv.clone()).display(),
            CommandSpec::Shell(script) => script.clone(),
            CommandSpec::Pipeline(stages) => stages
                .iter()
                .map(Stage::display)
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StdinSpec {
    /// `/dev/null` (the default).
    Null,
    /// Fed from this text, then closed.
    Text(String),
    /// Read from this file (resolved like `cwd`).
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

impl RestartPolicy {
    /// As written in a config: `no`, `on-failure`, `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// The most forkyard reads of a config file: 4 MiB, a thousand times a large config.
/// Anything longer (or endless, like `/dev/zero`) is refused without reading further.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// Reads and validates a config file (at most [`MAX_CONFIG_BYTES`], UTF-8).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    parse(&text, &path.display().to_string(), path.parent())
}

/// The text of a config file: at most [`MAX_CONFIG_BYTES`], UTF-8 (errors located).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let file = path.display().to_string();
    let io_error = |source| ConfigError::Io {
        file: file.clone(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(io_error)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            file,
            limit: crate::fmt::bytes(MAX_CONFIG_BYTES as u64),
        });
    }
    parse::decode(&bytes, &file).map(str::to_string)
}

/// The built-in demo, parsed. Its paths resolve against the current directory.
pub fn builtin_demo() -> Result<Config, ConfigError> {
    parse(BUILTIN_DEMO, BUILTIN_DEMO_NAME, None)
}
