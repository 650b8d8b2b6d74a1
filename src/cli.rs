//! Command line: which config, which front end, and the exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::headless::{self, HeadlessOptions};
use crate::stdio::{self, visible_inline};
use crate::{fmt, say};

/// Exit status for a config error (bad file, unknown key, bad value).
pub const EXIT_CONFIG: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "forkyard",
    version,
    about = "Run and watch child processes and pipelines",
    long_about = "Run and watch child processes and pipelines.\n\n\
        With no CONFIG, reads ./forkyard.toml, else runs the built-in demo.\n\
        Shows a terminal UI when stdout is a terminal, else runs headless.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Config file (default: ./forkyard.toml, else the built-in demo).
    pub config: Option<PathBuf>,

    /// Run without the UI: prefixed output, summary table, exit code.
    #[arg(long, conflicts_with = "tui")]
    pub headless: bool,

    /// Force the terminal UI.
    #[arg(long)]
    pub tui: bool,

    /// At most N jobs running at once (0 = no limit); overrides settings.max_parallel.
    #[arg(short = 'j', long = "max-parallel", value_name = "N")]
    pub max_parallel: Option<usize>,

    /// Stop every other job as soon as one fails (headless).
    #[arg(long)]
    pub kill_others_on_fail: bool,

    /// Write a JSON report of the run to FILE (headless).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Do not print the summary table at the end (headless).
    #[arg(long)]
    pub no_summary: bool,

    /// End the run when job NAME ends, stop the others, exit with its status (headless;
    /// overrides settings.exit_with).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["tui", "compare"])]
    pub exit_with: Option<String>,

    /// Run the whole set once per limit (e.g. `1,cores,0`; 0 = unlimited) and print
    /// wall time, concurrency, parallelism and speedup side by side (headless).
    #[arg(long, value_name = "LIMITS", value_parser = parse_compare, conflicts_with_all = ["tui", "max_parallel"])]
    pub compare: Option<CompareLimits>,
}

/// The limits of `--compare`, one run each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareLimits(pub Vec<usize>);

fn parse_compare(text: &str) -> Result<CompareLimits, String> {
    crate::headless::compare::parse_limits(text).map(CompareLimits)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config and print the resolved jobs.
    Check {
        /// Config file (default: ./forkyard.toml, else the built-in demo).
        config: Option<PathBuf>,
    },
}

/// Parses the command line. `--help`, `--version` and usage errors are printed here
/// (through [`stdio`], so a closed or full stdout is an exit status, not a panic or a
/// silent 0) and give the status to exit with.
pub fn parse_args() -> Result<Cli, i32> {
    use clap::error::ErrorKind;
    let err = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    let text = err.render().to_string();
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => match stdio::print(&text) {
            Ok(()) => Err(0),
            Err(write) => Err(stdio::exit_status(&write, "the help")),
        },
        _ => {
            stdio::print_err(&text);
            Err(err.exit_code())
        }
    }
}

/// Loads CONFIG, else ./forkyard.toml, else the built-in demo.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => config::load(path),
        None => {
            let default = Path::new("forkyard.toml");
            if default.exists() {
                config::load(default)
            } else {
                config::builtin_demo()
            }
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Some(Command::Check { config }) = &cli.command {
        return Ok(check(config.as_deref()));
    }
    let config = match load_config(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            say!("{}", visible_inline(&err.to_string()));
            return Ok(EXIT_CONFIG);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("forkyard")
        .build()?;
    if let Some(CompareLimits(limits)) = &cli.compare {
        return runtime.block_on(headless::compare::run(
            &config,
            limits,
            cli.report.as_deref(),
        ));
    }
    let use_tui =
        cli.tui || (!cli.headless && cli.exit_with.is_none() && std::io::stdout().is_terminal());
    if let Some(name) = &cli.exit_with {
        match config.jobs.iter().find(|j| j.name == *name) {
            None => {
                say!(
                    "--exit-with: no job named {:?} in {}",
                    visible_inline(name),
                    visible_inline(&config.origin)
                );
                return Ok(EXIT_CONFIG);
            }
            Some(job) if !job.autostart => {
                say!(
                    "--exit-with: job {:?} has autostart = false, so a headless run would never start it",
                    visible_inline(name)
                );
                return Ok(EXIT_CONFIG);
            }
            Some(_) => {}
        }
    }
    if use_tui {
        let options = crate::app::TuiOptions {
            max_parallel: cli.max_parallel,
        };
        return runtime.block_on(crate::app::run(config, options));
    }
    let options = HeadlessOptions {
        max_parallel: cli.max_parallel,
        kill_others_on_fail: cli.kill_others_on_fail,
        report: cli.report.clone(),
        no_summary: cli.no_summary,
        quiet: false,
        exit_with: cli.exit_with.clone(),
    };
    runtime.block_on(headless::run(&config, &options))
}

fn check(path: Option<&Path>) -> i32 {
    match load_config(path) {
        Ok(config) => match stdio::print(&with_containment(&describe(&config))) {
            Ok(()) => 0,
            Err(err) => stdio::exit_status(&err, "the listing"),
        },
        Err(err) => {
            say!("{}", visible_inline(&err.to_string()));
            EXIT_CONFIG
        }
    }
}

/// The listing with a line saying how this machine contains job processes (cgroup v2,
/// or process groups and why), after the settings line.
fn with_containment(listing: &str) -> String {
    let line = format!(
        "containment: {}\n",
        crate::supervisor::contain::containment().describe()
    );
    let mut lines = listing.split_inclusive('\n');
    let head: String = lines.by_ref().take(2).collect();
    format!(
        "{head}{}{}",
        stdio::visible(&line),
        lines.collect::<String>()
    )
}

/// The resolved config, as `forkyard check` prints it. Every value that comes from the
/// config or the command line is made visible and kept on one line (`\x1b`, `\n`): the
/// listing goes to a terminal, and a title-setting escape in an argument must not retitle it.
pub fn describe(config: &Config) -> String {
    use std::fmt::Write;
    let v = |text: &str| visible_inline(text).into_owned();
    let s = &config.settings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK, {} job{}",
        v(&config.origin),
        config.jobs.len(),
        if config.jobs.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "settings: scrollback={} grace={} stop_signal={} max_parallel={}{}",
        s.scrollback,
        fmt::config_duration(s.grace),
        s.stop_signal.as_str(),
        fmt::limit_label(s.max_parallel, false),
        match s.headless_timeout {
            Some(after) => format!(" headless_timeout={}", fmt::config_duration(after)),
            None => String::new(),
        } + &match &s.exit_with {
            Some(name) => format!(" exit_with={}", v(name)),
            None => String::new(),
        }
    );
    out.push_str(&config::graph::describe_order(config));
    for job in &config.jobs {
        let _ = writeln!(out, "\n[{}]", v(&job.name));
        let kind = match &job.command {
            config::CommandSpec::Argv(_) => "cmd",
            config::CommandSpec::Shell(_) => "shell",
            config::CommandSpec::Pipeline(_) => "pipeline",
        };
        let _ = writeln!(out, "  {kind}: {}", v(&job.command.display()));
        if !job.env.is_empty() {
            let keys: Vec<String> = job.env.keys().map(|k| v(k)).collect();
            let _ = writeln!(out, "  env: {}", keys.join(", "));
        }
        if let Some(cwd) = &job.cwd {
            let _ = writeln!(out, "  cwd: {}", v(&cwd.display().to_string()));
        }
        match &job.stdin {
            config::StdinSpec::Null => {}
            config::StdinSpec::Text(text) => {
                let _ = writeln!(out, "  stdin: {} bytes of text", text.len());
            }
            config::StdinSpec::File(path) => {
                let _ = writeln!(out, "  stdin: {}", v(&path.display().to_string()));
            }
        }
        if let Some(timeout) = job.timeout {
            let _ = writeln!(out, "  timeout: {}", fmt::config_duration(timeout));
        }
        out.push_str(&config::graph::describe_job(job));
        let _ = writeln!(
            out,
            "  stop: {} then SIGKILL after {}; restart: {} (max {}); autostart: {}{}",
            job.stop_signal.as_str(),
            fmt::config_duration(job.grace),
            job.restart.as_str(),
            job.max_restarts
                .map_or_else(|| "unlimited".to_string(), |max| max.to_string()),
            job.autostart,
            if job.pipefail { "; pipefail" } else { "" }
        );
    }
    out
}
