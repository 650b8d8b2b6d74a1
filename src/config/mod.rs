//! Configuration: TOML text -> validated, resolved job specs.
//!
//! `parse` turns text into [`Config`]; every error carries the file, line, column and key
//! so a user can jump straight to the mistake. Nothing downstream re-validates: a `Config`
//! that exists is runnable.

mod error;
pub mod graph;
pub mod import;
pub mod keys;
pub mod lookup;
mod parse;
pub mod schema;
mod services;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

pub use error::{ConfigError, JobRef};
pub use parse::{parse, resolve_path};
pub use services::{Check, Condition, Dependency, HttpTarget, ProbeSpec};

/// The demo compiled into the binary; runs when no config is given or found.
pub const BUILTIN_DEMO: &str = include_str!("../../assets/demo.toml");
/// Name shown for the built-in demo in errors and headers.
pub const BUILTIN_DEMO_NAME: &str = "<built-in demo>";

pub const DEFAULT_SCROLLBACK: usize = 10_000;
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// `max_restarts` when not set, for `restart = "on-failure"` (`"always"` has no limit).
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// The longest restart backoff when `backoff_max` is not set.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a run must stay up for the backoff (and the `max_restarts` count) to start
/// over, when `backoff_reset` is not set.
pub const DEFAULT_BACKOFF_RESET: Duration = Duration::from_secs(10);
/// Rotated log files kept per job (`settings.log_keep`).
pub const DEFAULT_LOG_KEEP: u32 = 3;
/// Lines of each failed job's output printed after the TUI exits (`settings.failed_tail`).
pub const DEFAULT_FAILED_TAIL: usize = 10;

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
    /// Headless only: the run ends when this job (an expanded name) has ended for good;
    /// every other job is stopped and forkyard exits with that job's status.
    pub exit_with: Option<String>,
    /// Defaults for the jobs' `backoff_max` and `backoff_reset`.
    pub backoff_max: Duration,
    pub backoff_reset: Duration,
    /// Defaults for the jobs' `stall` and `on_stall`.
    pub stall: Option<Duration>,
    pub on_stall: OnStall,
    /// The default of every job's `pty`.
    pub pty: bool,
    /// `log_dir`: every job's output goes to `DIR/NAME.log` (unless its `log` says
    /// otherwise). Resolved against the config's folder; `--log-dir` overrides it.
    pub log_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Rotate a job's log file before it grows past this many bytes.
    pub log_max_size: Option<u64>,
    /// Rotated files kept (`NAME.log.1` .. `NAME.log.N`).
    pub log_keep: u32,
    /// Lines of each failed job's output printed after the TUI exits (0: none).
    pub failed_tail: usize,
}

/// What a job that stalled (no output and almost no CPU for `stall`) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStall {
    /// A notice, and `quiet 42s` in its row.
    #[default]
    Warn,
    /// Stopped like a failed liveness check; its result says it stalled.
    Stop,
    /// Stopped, then started again.
    Restart,
}

impl OnStall {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStall::Warn => "warn",
            OnStall::Stop => "stop",
            OnStall::Restart => "restart",
        }
    }
}

/// How log files are written (see `crate::logs::format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `12:34:56.789 | text`: a time, a stream mark, the line as the job wrote it.
    #[default]
    Plain,
    /// One JSON object per line, for tools.
    Jsonl,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Plain => "plain",
            LogFormat::Jsonl => "jsonl",
        }
    }

    /// `plain` or `jsonl`.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "plain" => Some(LogFormat::Plain),
            "jsonl" => Some(LogFormat::Jsonl),
            _ => None,
        }
    }
}

/// A job's `log` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// `DIR/NAME.log` when there is a log folder (`settings.log_dir`, `--log-dir`).
    #[default]
    Default,
    /// `log = false`: no log file, whatever the folder.
    Off,
    /// `log = "path"`: this file (resolved against the config's folder).
    File(PathBuf),
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scrollback: DEFAULT_SCROLLBACK,
            grace: DEFAULT_GRACE,
            stop_signal: Signal::SIGTERM,
            max_parallel: 0,
            headless_timeout: None,
            exit_with: None,
            backoff_max: DEFAULT_BACKOFF_MAX,
            backoff_reset: DEFAULT_BACKOFF_RESET,
            stall: None,
            on_stall: OnStall::Warn,
            pty: false,
            log_dir: None,
            log_format: LogFormat::Plain,
            log_max_size: None,
            log_keep: DEFAULT_LOG_KEEP,
            failed_tail: DEFAULT_FAILED_TAIL,
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
    /// Restarts in a row the policy makes before it gives up; None: no limit. A run that
    /// stayed up `backoff_reset` starts the count over.
    pub max_restarts: Option<u32>,
    /// The restart backoff doubles from 100 ms up to this.
    pub backoff_max: Duration,
    /// A run that stays up this long resets the backoff and the restart count.
    pub backoff_reset: Duration,
    pub autostart: bool,
    pub pipefail: bool,
    /// What must hold before the job starts (replicas already expanded, in config order).
    pub depends_on: Vec<Dependency>,
    /// When a running job counts as ready (None: as soon as it started).
    pub ready: Option<ProbeSpec>,
    /// Checked while the job runs; failing it stops the job (its policy may restart it).
    pub alive: Option<ProbeSpec>,
    /// A running job that wrote nothing and used (almost) no CPU this long is quiet.
    pub stall: Option<Duration>,
    pub on_stall: OnStall,
    /// Runs on a pseudo-terminal (see `supervisor::pty`): stdout and stderr are one
    /// terminal stream, and stdin is the terminal unless `stdin` says otherwise.
    pub pty: bool,
    /// Where its output is logged (`log`).
    pub log: LogTarget,
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
            max_restarts: Some(DEFAULT_MAX_RESTARTS),
            backoff_max: settings.backoff_max,
            backoff_reset: settings.backoff_reset,
            autostart: true,
            pipefail: false,
            depends_on: Vec::new(),
            ready: None,
            alive: None,
            stall: None,
            on_stall: OnStall::Warn,
            pty: false,
            log: LogTarget::Default,
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
    /// `stdin = "pipe"`: a pipe kept open, written from the TUI (`i`) until closed.
    Pipe,
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
