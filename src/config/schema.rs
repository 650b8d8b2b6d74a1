//! `forkyard schema`: a JSON Schema of `forkyard.toml`, for editors (taplo, Even Better
//! TOML) to complete and check a config as it is typed.
//!
//! The schema is generated (schemars) from the types below, whose doc comments become
//! its descriptions. They describe the file's shape, the same keys the parser reads
//! (`parse.rs`); the parser stays the authority on values (a duration's syntax, a
//! unique name). `tests/habits_ecosystem.rs` keeps the two in step: every fixture and
//! example the parser accepts must validate, every unknown key must fail, and the keys
//! listed here must be the keys the parser names in its "valid keys here" message. A
//! key added to the parser without being added here fails that test.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::{Value, json};

/// A forkyard config: optional `[settings]` and one or more `[[job]]`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "forkyard.toml")]
#[allow(dead_code)] // only its schema is used
struct ConfigFile {
    /// Defaults for every job and limits for the run.
    settings: Option<SettingsTable>,
    /// The jobs, in the order they are listed and started.
    #[schemars(length(min = 1))]
    job: Vec<JobTable>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SettingsTable {
    /// Lines kept per job in its ring buffer (older ones are dropped and counted). Default 10000.
    #[schemars(range(min = 1, max = 10_000_000))]
    scrollback: Option<i64>,
    /// Time from the stop signal to SIGKILL, for every job that sets none. Default "3s".
    grace: Option<Duration>,
    /// Signal that stops a job, for every job that sets none. Default "TERM".
    stop_signal: Option<SignalValue>,
    /// At most this many jobs running at once; 0 = no limit. `-j N` overrides it.
    #[schemars(range(min = 0))]
    max_parallel: Option<i64>,
    /// Headless only: after this long, stop whatever still runs and end the run.
    headless_timeout: Option<Duration>,
    /// dotenv file(s) whose variables every job gets (under its own `env_file` and `env`).
    /// Relative to the config's folder.
    env_file: Option<EnvFiles>,
    /// End the run when this job ends, stop the others, exit with its status (headless).
    exit_with: Option<String>,
    /// Longest restart backoff, for every job that sets none. Default "30s".
    backoff_max: Option<Duration>,
    /// A job that stayed up this long starts its backoff over. Default "10s".
    backoff_reset: Option<Duration>,
    /// A running job that wrote nothing and used almost no CPU this long is quiet
    /// (for every job that sets none). Default: off.
    stall: Option<Duration>,
    /// What a quiet job gets: a warning, a stop or a restart. Default "warn".
    on_stall: Option<OnStall>,
    /// Every job's default for `pty` (run on a pseudo-terminal). Default false.
    pty: Option<bool>,
    /// Write every job's output to DIR/NAME.log (stdout and stderr in arrival order, each
    /// line with its time and stream). Relative to the config's folder; `--log-dir` overrides it.
    log_dir: Option<String>,
    /// "plain" (the default: `12:34:56.789 | line`) or "jsonl" (one JSON object per line).
    log_format: Option<LogFormatValue>,
    /// Rotate a log file before it grows past this size: bytes, or "512K", "10MiB", "1G".
    log_max_size: Option<Size>,
    /// Rotated log files kept per job (NAME.log.1 .. NAME.log.N). Default 3.
    #[schemars(range(min = 0, max = 1000))]
    log_keep: Option<i64>,
    /// Lines of each failed job's output printed after the TUI exits. Default 10.
    #[schemars(range(min = 0, max = 10_000))]
    failed_tail: Option<i64>,
}

/// What a job that stalled gets.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum OnStall {
    Warn,
    Stop,
    Restart,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum LogFormatValue {
    Plain,
    Jsonl,
}

/// A size: a number of bytes, or a string such as "512K", "10MiB", "1G" (powers of
/// 1024) or "10MB" (powers of 1000).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Size {
    Bytes(#[schemars(range(min = 1024))] i64),
    Text(#[schemars(regex(pattern = r"^\s*[0-9]+\s*([kKmMgG]([iI]?[bB])?|[bB])?\s*$"))] String),
}

/// A job's log file: a path (relative to the config's folder), true for DIR/NAME.log
/// when there is a log folder, false for none.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LogValue {
    Path(String),
    Enabled(bool),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct JobTable {
    /// Unique name: letters, digits, `_`, `.` and `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    name: String,
    /// Program and arguments, run without a shell. `${VAR}`, `${VAR:-default}` and `$$` are expanded.
    #[schemars(length(min = 1))]
    cmd: Option<Vec<String>>,
    /// A command run by `/bin/sh -c` (the shell expands variables itself).
    shell: Option<String>,
    /// Two or more stages wired with pipes by forkyard: each an argv array or a shell string.
    #[schemars(length(min = 2))]
    pipeline: Option<Vec<StageValue>>,
    /// Variables added to the inherited environment. Values expand `${VAR}` (from the
    /// env files and forkyard's environment).
    env: Option<BTreeMap<String, String>>,
    /// dotenv file(s) whose variables this job gets (under `env`). Relative to the config's folder.
    env_file: Option<EnvFiles>,
    /// Working folder, relative to the config's folder. `${VAR}` is expanded.
    cwd: Option<String>,
    /// Text fed to the job's stdin, `{ file = "path" }`, `{ text = "..." }`, or "pipe"
    /// (kept open, written from the TUI with `i`). Default: /dev/null, or the terminal
    /// with `pty = true`.
    stdin: Option<StdinValue>,
    /// Stop the job (signal, grace, SIGKILL) after this long; it ends as "timed out".
    timeout: Option<Duration>,
    /// Signal that stops this job. Default: settings.stop_signal.
    stop_signal: Option<SignalValue>,
    /// Time from the stop signal to SIGKILL. Default: settings.grace.
    grace: Option<Duration>,
    /// Restart policy. Default "no".
    restart: Option<Restart>,
    /// Restarts before giving up (backoff doubles from 100 ms to 10 s). Default 5.
    #[schemars(range(min = 0, max = 4_294_967_295_i64))]
    max_restarts: Option<i64>,
    /// Copies of the job, named name.1 .. name.N: a number, "cores" or "N*cores".
    replicas: Option<Replicas>,
    /// Start with the run (true, the default) or wait to be started by hand.
    autostart: Option<bool>,
    /// A pipeline's result: the last stage's (false, the default) or the first failing stage's.
    pipefail: Option<bool>,
    /// Jobs to wait for: a list of names (each must be ready), or a table of name =
    /// condition ("started", "ready", "succeeded", "finished"). A name with replicas
    /// means every replica.
    depends_on: Option<DependsOn>,
    /// When the job counts as ready (default: when it has started).
    ready: Option<Probe>,
    /// Checked while it runs; after `failures` failed checks in a row it is restarted
    /// per its policy, or stopped.
    alive: Option<Probe>,
    /// Longest restart backoff. Default: settings.backoff_max.
    backoff_max: Option<Duration>,
    /// Staying up this long starts the backoff over. Default: settings.backoff_reset.
    backoff_reset: Option<Duration>,
    /// Quiet after this long with no output and almost no CPU. Default: settings.stall.
    stall: Option<Duration>,
    /// What it gets then. Default: settings.on_stall.
    on_stall: Option<OnStall>,
    /// Run on a pseudo-terminal, its screen drawn by a terminal emulator. Default:
    /// settings.pty.
    pty: Option<bool>,
    /// This job's log file ("logs/web.log"), or false for none (even with a log folder).
    log: Option<LogValue>,
    /// Run the job on this host through `ssh -tt` ("user@host", or a Host of your ssh
    /// config); its env and cwd apply there. Needs forkyard on the host.
    host: Option<String>,
}

/// `depends_on`: names, or names with a condition each.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DependsOn {
    /// Each of these must be ready.
    Names(Vec<String>),
    /// Each name with its condition.
    Conditions(BTreeMap<String, Condition>),
}

/// What a dependency must have done.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Condition {
    Started,
    Ready,
    Succeeded,
    Finished,
}

/// A readiness or liveness check: exactly one of `log`, `tcp`, `http`, `exec`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Probe {
    /// A regular expression a line of stdout or stderr must match.
    log: Option<String>,
    /// "host:port" that must accept a connection.
    tcp: Option<String>,
    /// An http:// URL that must answer with `status`.
    http: Option<String>,
    /// The HTTP status wanted (default 200).
    status: Option<i64>,
    /// A command that must exit 0.
    #[schemars(length(min = 1))]
    exec: Option<Vec<String>>,
    /// Time between checks.
    interval: Option<Duration>,
    /// Time a check may take.
    timeout: Option<Duration>,
    /// Time before the first check.
    initial_delay: Option<Duration>,
    /// Readiness: failed checks before the job is given up.
    retries: Option<i64>,
    /// Liveness: failed checks in a row before the job is restarted or stopped.
    failures: Option<i64>,
}

/// A duration in humantime syntax: "500ms", "3s", "2m", "1m 30s".
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Duration(String);

/// A signal name ("TERM", "SIGINT", "hup") or number (15).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SignalValue {
    Name(String),
    Number(#[schemars(range(min = 1, max = 64))] i64),
}

/// A pipeline stage.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StageValue {
    /// Program and arguments.
    Argv(#[schemars(length(min = 1))] Vec<String>),
    /// A `/bin/sh -c` command.
    Shell(String),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum StdinValue {
    /// Text written to the job's stdin, then closed; "pipe" keeps stdin open instead.
    Text(String),
    /// A file read as the job's stdin.
    File(StdinFile),
    /// Text written to the job's stdin (also when the text is "pipe").
    TextTable(StdinText),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StdinText {
    text: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StdinFile {
    /// Path, relative to the config's folder.
    file: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum Restart {
    No,
    OnFailure,
    Always,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Replicas {
    Count(#[schemars(range(min = 1, max = 10_000))] i64),
    /// "cores" or "N*cores": the machine's CPU count (times N).
    Cores(#[schemars(regex(pattern = r"^\s*([0-9]+\s*[*x]\s*)?cores\s*$"))] String),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EnvFiles {
    One(String),
    /// Read in order; a later file wins.
    Many(Vec<String>),
}

/// The schema as a JSON value (draft 7, which taplo and most editors read).
pub fn schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<ConfigFile>().to_value();
    // A job runs exactly one of `cmd`, `shell`, `pipeline`: not expressible as a type.
    if let Some(job) = schema.pointer_mut("/definitions/JobTable")
        && let Some(obj) = job.as_object_mut()
    {
        obj.insert(
            "oneOf".into(),
            json!([
                { "required": ["cmd"] },
                { "required": ["shell"] },
                { "required": ["pipeline"] }
            ]),
        );
    }
    schema
}

/// The schema as `forkyard schema` prints it: pretty JSON and a newline.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The keys the schema allows in `[settings]` and in a `[[job]]`, sorted.
pub fn keys() -> (Vec<String>, Vec<String>) {
    let schema = schema();
    let keys = |pointer: &str| {
        let mut keys: Vec<String> = schema
            .pointer(pointer)
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    (
        keys("/definitions/SettingsTable/properties"),
        keys("/definitions/JobTable/properties"),
    )
}
