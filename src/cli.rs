//! Command line: which config, which front end, and the exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::headless::{self, HeadlessOptions};

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
            eprintln!("forkyard: {err}");
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
    let use_tui = cli.tui || (!cli.headless && std::io::stdout().is_terminal());
    if use_tui {
        let options = crate::app::TuiOptions {
            max_parallel: cli.max_parallel,
            report: cli.report.clone(),
        };
        return runtime.block_on(crate::app::run(config, options));
    }
    let options = HeadlessOptions {
        max_parallel: cli.max_parallel,
        kill_others_on_fail: cli.kill_others_on_fail,
        report: cli.report.clone(),
        no_summary: cli.no_summary,
        quiet: false,
    };
    runtime.block_on(headless::run(&config, &options))
}

fn check(path: Option<&Path>) -> i32 {
    match load_config(path) {
        Ok(config) => {
            print!("{}", describe(&config));
            0
        }
        Err(err) => {
            eprintln!("forkyard: {err}");
            EXIT_CONFIG
        }
    }
}

/// The resolved config, as `forkyard check` prints it.
pub fn describe(config: &Config) -> String {
    use std::fmt::Write;
    let s = &config.settings;
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK, {} jobs", config.origin, config.jobs.len());
    let _ = writeln!(
        out,
        "settings: scrollback={} grace={} stop_signal={} max_parallel={}",
        s.scrollback,
        humantime::format_duration(s.grace),
        s.stop_signal.as_str(),
        if s.max_parallel == 0 {
            "unlimited".to_string()
        } else {
            s.max_parallel.to_string()
        }
    );
    for job in &config.jobs {
        let _ = writeln!(out, "\n[{}]", job.name);
        let kind = match &job.command {
            config::CommandSpec::Argv(_) => "cmd",
            config::CommandSpec::Shell(_) => "shell",
            config::CommandSpec::Pipeline(_) => "pipeline",
        };
        let _ = writeln!(out, "  {kind}: {}", job.command.display());
        if !job.env.is_empty() {
            let keys: Vec<&str> = job.env.keys().map(String::as_str).collect();
            let _ = writeln!(out, "  env: {}", keys.join(", "));
        }
        if let Some(cwd) = &job.cwd {
            let _ = writeln!(out, "  cwd: {}", cwd.display());
        }
        match &job.stdin {
            config::StdinSpec::Null => {}
            config::StdinSpec::Text(text) => {
                let _ = writeln!(out, "  stdin: {} bytes of text", text.len());
            }
            config::StdinSpec::File(path) => {
                let _ = writeln!(out, "  stdin: {}", path.display());
            }
        }
        if let Some(timeout) = job.timeout {
            let _ = writeln!(out, "  timeout: {}", humantime::format_duration(timeout));
        }
        let _ = writeln!(
            out,
            "  stop: {} then SIGKILL after {}; restart: {} (max {}); autostart: {}{}",
            job.stop_signal.as_str(),
            humantime::format_duration(job.grace),
            match job.restart {
                config::RestartPolicy::No => "no",
                config::RestartPolicy::OnFailure => "on-failure",
                config::RestartPolicy::Always => "always",
            },
            job.max_restarts,
            job.autostart,
            if job.pipefail { "; pipefail" } else { "" }
        );
    }
    out
}
