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
    /// Text fed to the job's stdin, or `{ file = "path" }`. Default: /dev/null.
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
    /// Run the job on this host through `ssh -tt` ("user@host", or a Host of your ssh
    /// config); its env and cwd apply there. Needs forkyard on the host.
    host: Option<String>,
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
    /// Text written to the job's stdin, then closed.
    Text(String),
    /// A file read as the job's stdin.
    File(StdinFile),
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
