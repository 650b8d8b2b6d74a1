//! Command line: what to run (a config, or commands typed here), which front end, and
//! the exit code. Also the ecosystem commands: `check`, `import`, `completions`, `man`,
//! `schema`.
//!
//! The one rule that keeps a config path and a command apart (also in `--help`): one
//! bare argument is always a file, two or more are always commands, and a bare command
//! that could be a file is refused with a pointer to `forkyard run`, which always takes
//! commands. `npm:SCRIPT` is always a script. See [`Source::classify`].

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::import::{self, Draft, DraftJob, Format, Pos, npm};
use crate::config::{self, Config, ConfigError};
use crate::headless::{self, HeadlessOptions};
use crate::stdio::{self, visible_inline};
use crate::{fmt, say};

/// Exit status for a config error (bad file, unknown key, bad value) or a usage error.
pub const EXIT_CONFIG: i32 = 2;

/// The origin of jobs typed on the command line, in headers and errors.
pub const COMMAND_LINE: &str = "<command line>";

const ARGUMENTS_HELP: &str = "\
What runs:
  forkyard                 ./forkyard.toml, else one in a parent folder up to the repository
                           root, else ./Procfile, ./mprocs.yaml or ./process-compose.yaml;
                           else the built-in demo. The file used is said on stderr.
  forkyard FILE            ONE argument is always a file: forkyard.toml (TOML), a Procfile
                           (with the .env next to it), mprocs.yaml, process-compose.yaml,
                           or package.json (every script, none started).
  forkyard CMD CMD...      TWO OR MORE arguments are always shell commands, one job each.
                           One that could be a file (it exists, or ends in .toml .yaml .yml
                           .json, or is a Procfile) is refused as ambiguous.
  forkyard run CMD...      Always commands, however many (also one, or one that is a file).
  npm:SCRIPT               Always a package.json script, never a file, run with the
                           project's package manager (pnpm: yarn: bun: npm: choose one);
                           `*` matches any text: 'npm:dev:*'.
  NAME=CMD                 Names a job when NAME has a lowercase letter (FOO=1 make stays
                           a command that sets FOO). Or --names a,b.
  A first argument that is a subcommand's name (run, check, import...) is that subcommand.

Examples:
  forkyard 'npm run dev' 'cargo watch -x run'
  forkyard -j 1 --names build,test 'make' 'make test'
  forkyard run --restart on-failure 'web=python3 -m http.server 8000'
  forkyard --npm 'dev:*'
  forkyard Procfile
  forkyard import mprocs.yaml > forkyard.toml";

#[derive(Debug, Parser)]
#[command(
    name = "forkyard",
    version = env!("FORKYARD_VERSION"),
    about = "Run and watch child processes and pipelines",
    long_about = "Run and watch child processes and pipelines: from a config file, or commands \
        typed on the command line.\n\n\
        Shows a terminal UI when stdout is a terminal, else runs headless.",
    after_help = ARGUMENTS_HELP,
    subcommand_value_name = "SUBCOMMAND",
    override_usage = "forkyard [OPTIONS] [FILE]\n       \
        forkyard [OPTIONS] COMMAND COMMAND...\n       \
        forkyard <SUBCOMMAND> ...",
    subcommand_help_heading = "Subcommands",
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// A config FILE, or two or more shell COMMANDs (see "What runs" below).
    #[arg(value_name = "FILE | COMMAND")]
    pub args: Vec<OsString>,

    #[command(flatten)]
    pub run: RunOpts,
}

/// How a run goes: for a config and for commands alike.
#[derive(Debug, Clone, Default, Args)]
pub struct RunOpts {
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

    /// Names of the command-line jobs, in order, comma-separated.
    #[arg(long, value_name = "A,B,...")]
    pub names: Option<String>,

    /// Restart policy of the command-line jobs.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<RestartArg>,

    /// Stop each command-line job after this long (e.g. 30s, 5m); it ends as timed out.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Run the package.json scripts matching PATTERN (`*` matches any text), through
    /// the project's package manager. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub npm: Vec<String>,

    /// Write each job's output to DIR/NAME.log (stdout and stderr in arrival order, each
    /// line with its time and stream); overrides settings.log_dir.
    #[arg(long, value_name = "DIR", conflicts_with = "compare")]
    pub log_dir: Option<PathBuf>,

    /// Log file format: plain (the default) or jsonl (one JSON object per line).
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<config::LogFormat>,

    /// Start each output line with the time it arrived (headless; the TUI starts with
    /// its timestamps shown).
    #[arg(long)]
    pub timestamps: bool,
    /// Serve the control socket at PATH (default: $XDG_RUNTIME_DIR/forkyard/NAME.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "no_socket")]
    pub socket: Option<PathBuf>,

    /// Serve no control socket.
    #[arg(long)]
    pub no_socket: bool,

    /// The session's name, for `forkyard ctl --name` and `attach` (default: from the config).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    // The services track's `--exit-with` belongs here: it applies to a config and to
    // command-line jobs alike (see `quick_draft` for the latter).
}

impl RunOpts {
    /// Options given in either place (`forkyard -j 1 run ...`, `forkyard run -j 1 ...`);
    /// the later one wins.
    fn merged(self, later: RunOpts) -> RunOpts {
        RunOpts {
            headless: self.headless || later.headless,
            tui: self.tui || later.tui,
            max_parallel: later.max_parallel.or(self.max_parallel),
            kill_others_on_fail: self.kill_others_on_fail || later.kill_others_on_fail,
            report: later.report.or(self.report),
            no_summary: self.no_summary || later.no_summary,
            compare: later.compare.or(self.compare),
            exit_with: later.exit_with.or(self.exit_with),
            names: later.names.or(self.names),
            restart: later.restart.or(self.restart),
            timeout: later.timeout.or(self.timeout),
            npm: [self.npm, later.npm].concat(),
            log_dir: later.log_dir.or(self.log_dir),
            log_format: later.log_format.or(self.log_format),
            timestamps: self.timestamps || later.timestamps,
            socket: later.socket.or(self.socket),
            no_socket: self.no_socket || later.no_socket,
            name: later.name.or(self.name),
        }
    }

    /// How a run with these options serves its control socket.
    fn serve(&self, config: &Config) -> crate::control::ServeOptions {
        use crate::control::SocketChoice;
        let is_file = config.origin != config::BUILTIN_DEMO_NAME && config.origin != COMMAND_LINE;
        crate::control::ServeOptions {
            socket: match (&self.socket, self.no_socket) {
                (_, true) => SocketChoice::Off,
                (Some(path), false) => SocketChoice::Path(path.clone()),
                (None, false) => SocketChoice::Default,
            },
            name: self.name.clone(),
            config_file: is_file.then(|| {
                let path = PathBuf::from(&config.origin);
                std::fs::canonicalize(&path).unwrap_or(path)
            }),
            exclusive: false,
        }
    }

    /// The options that only shape a run, by flag, when any is given.
    fn run_flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        let mut flag = |on: bool, name| {
            if on {
                flags.push(name);
            }
        };
        flag(self.headless, "--headless");
        flag(self.tui, "--tui");
        flag(self.max_parallel.is_some(), "-j");
        flag(self.kill_others_on_fail, "--kill-others-on-fail");
        flag(self.report.is_some(), "--report");
        flag(self.no_summary, "--no-summary");
        flag(self.compare.is_some(), "--compare");
        flag(self.log_dir.is_some(), "--log-dir");
        flag(self.log_format.is_some(), "--log-format");
        flag(self.timestamps, "--timestamps");
        flag(self.socket.is_some(), "--socket");
        flag(self.no_socket, "--no-socket");
        flag(self.name.is_some(), "--name");
        flags.extend(self.job_flags());
        flags
    }

    /// The options that describe command-line jobs, by flag.
    fn job_flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.names.is_some() {
            flags.push("--names");
        }
        if self.restart.is_some() {
            flags.push("--restart");
        }
        if self.timeout.is_some() {
            flags.push("--timeout");
        }
        if !self.npm.is_empty() {
            flags.push("--npm");
        }
        flags
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartArg {
    No,
    OnFailure,
    Always,
}

impl RestartArg {
    fn as_str(self) -> &'static str {
        match self {
            RestartArg::No => "no",
            RestartArg::OnFailure => "on-failure",
            RestartArg::Always => "always",
        }
    }
}

/// The limits of `--compare`, one run each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareLimits(pub Vec<usize>);

fn parse_log_format(text: &str) -> Result<config::LogFormat, String> {
    config::LogFormat::parse(text).ok_or_else(|| "expected plain or jsonl".to_string())
}

fn parse_compare(text: &str) -> Result<CompareLimits, String> {
    crate::headless::compare::parse_limits(text).map(CompareLimits)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run shell commands side by side, one job each (always commands, never a file).
    Run {
        /// Shell commands; `NAME=CMD` names one, `npm:SCRIPT` runs a package.json script.
        #[arg(value_name = "COMMAND")]
        commands: Vec<String>,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Validate a config and print the resolved jobs.
    Check {
        /// Config file of any format forkyard reads (default: as `forkyard` finds one).
        config: Option<PathBuf>,
    },
    /// Print the forkyard.toml equivalent of a Procfile, mprocs.yaml,
    /// process-compose.yaml or package.json (commented where a key did not map).
    Import {
        /// The file (default: ./Procfile, ./mprocs.yaml or ./process-compose.yaml).
        file: Option<PathBuf>,
        /// Import the package.json scripts matching PATTERN instead. Repeatable.
        #[arg(long, value_name = "PATTERN")]
        npm: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `forkyard man | man -l -`.
    Man,
    /// Print the JSON Schema of forkyard.toml (for taplo / Even Better TOML).
    Schema,
    /// Talk to a running session: status, events, logs, start, stop, kill, restart,
    /// signal, wait, reload, list-sessions.
    Ctl(crate::control::client::CtlArgs),
    /// Start a session in the background (headless, with its control socket) and return.
    Up(crate::control::daemon::UpArgs),
    /// Open the TUI on a running session (q detaches; the jobs keep running).
    Attach(crate::control::attach::AttachArgs),
    /// Stop a session like a quit: every job stopped, then the session ends.
    Down {
        /// The session (default: the only one running).
        session: Option<String>,
        /// The session's socket.
        #[arg(long = "socket", id = "down_socket", value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Runs one job on this host for a `host = ...` job elsewhere (started through ssh).
    #[command(hide = true)]
    RemoteRun {
        /// The job, as JSON.
        spec: String,
    },
}

/// Parses the command line. `--help`, `--version` and usage errors are printed here
/// (through [`stdio`], so a closed or full stdout is an exit status, not a panic or a
/// silent 0) and give the status to exit with.
pub fn parse_args() -> Result<Cli, i32> {
    parse_from(std::env::args_os())
}

/// [`parse_args`] for a given argv (tests).
pub fn parse_from<I, T>(argv: I) -> Result<Cli, i32>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::error::ErrorKind;
    let err = match Cli::try_parse_from(argv) {
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

/// Loads CONFIG (any format), else the config [`config::lookup`] finds (said on
/// stderr), else the built-in demo. Warnings about keys that did not map are said.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let found;
    let path = match path {
        Some(path) => path,
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            match config::lookup::find(&cwd) {
                Some(p) => {
                    found = p;
                    say!("using {}", found.display());
                    &found
                }
                None => return config::builtin_demo(),
            }
        }
    };
    let loaded = import::load_any(path)?;
    for warning in &loaded.warnings {
        say!("warning: {warning}");
    }
    Ok(loaded.config)
}

/// What a command line runs.
#[derive(Debug, PartialEq)]
pub enum Source {
    /// A config file (`None`: look one up).
    Config(Option<PathBuf>),
    /// Commands (and `npm:` scripts) typed on the command line.
    Commands(Vec<String>),
}

/// A config-like file name: forkyard or another tool could read it as a config.
fn looks_like_config(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    let base = Path::new(arg)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    [".toml", ".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| lower.ends_with(ext))
        || base == "Procfile"
        || base.starts_with("Procfile.")
}

/// `npm:dev`, `pnpm:build`...: a package.json script, never a file.
fn script_arg(arg: &str) -> Option<(&str, &str)> {
    let (manager, script) = arg.split_once(':')?;
    (npm::MANAGERS.contains(&manager) && !script.is_empty()).then_some((manager, script))
}

impl Source {
    /// The bare form's rule: one argument is a file, two or more are commands, and a
    /// command that could be a file is refused. With `--npm` every argument is a
    /// command. `npm:` arguments are always scripts.
    pub fn classify(args: &[OsString], npm_patterns: usize) -> Result<Source, String> {
        if args.is_empty() {
            return Ok(if npm_patterns > 0 {
                Source::Commands(Vec::new())
            } else {
                Source::Config(None)
            });
        }
        if let [one] = args
            && npm_patterns == 0
            && one.to_str().is_none_or(|s| script_arg(s).is_none())
        {
            let path = PathBuf::from(one);
            if !path.exists() {
                let text = one.to_string_lossy();
                let mut message = format!("{}: no such file", visible_inline(&text));
                if !looks_like_config(&text) {
                    message.push_str(&format!(
                        " (one argument is always a config file; to run it as a command: \
                         forkyard run '{}')",
                        visible_inline(&text).replace('\'', r"'\''")
                    ));
                }
                if let Some(sub) = near_subcommand(&text) {
                    message.push_str(&format!("; did you mean `forkyard {sub}`?"));
                }
                return Err(message);
            }
            return Ok(Source::Config(Some(path)));
        }
        let mut commands = Vec::with_capacity(args.len());
        for arg in args {
            let Some(text) = arg.to_str() else {
                return Err(format!(
                    "{}: a command must be UTF-8 text",
                    visible_inline(&arg.to_string_lossy())
                ));
            };
            if script_arg(text).is_none() && (Path::new(text).exists() || looks_like_config(text)) {
                return Err(format!(
                    "{:?} could be a file or a command: with two or more arguments every one \
                     is a command. To run commands, use `forkyard run ...`; to run a config \
                     file, give it alone",
                    visible_inline(text)
                ));
            }
            commands.push(text.to_string());
        }
        Ok(Source::Commands(commands))
    }
}

/// The subcommand `word` is probably a typo of.
fn near_subcommand(word: &str) -> Option<String> {
    let cmd = Cli::command();
    cmd.get_subcommands()
        .map(|s| s.get_name().to_string())
        .find(|name| name != word && edit_distance(word, name) <= 1 + name.len() / 4)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let Cli {
        command,
        args,
        run: opts,
    } = cli;
    let (source, opts) = match command {
        None => match Source::classify(&args, opts.npm.len()) {
            Ok(source) => (source, opts),
            Err(message) => return Ok(usage_error(&message)),
        },
        Some(Command::Run { commands, run }) => {
            let opts = opts.merged(run);
            if commands.is_empty() && opts.npm.is_empty() {
                return Ok(usage_error(
                    "forkyard run: give one or more commands, e.g. forkyard run 'npm run dev' \
                     'cargo watch -x run'",
                ));
            }
            (Source::Commands(commands), opts)
        }
        Some(Command::Up(up)) => {
            if let Some(flag) = opts.run_flags().first() {
                return Ok(usage_error(&format!(
                    "{flag} shapes a run; `forkyard up` takes -j, --name and --socket itself"
                )));
            }
            return start_session(&up);
        }
        Some(other) => {
            if let Some(flag) = opts.run_flags().first() {
                return Ok(usage_error(&format!(
                    "{flag} shapes a run; it does not apply to `forkyard {}`",
                    subcommand_name(&other)
                )));
            }
            return Ok(ecosystem(other));
        }
    };
    let config = match &source {
        Source::Config(path) => {
            if let Some(flag) = opts.job_flags().first() {
                return Ok(usage_error(&format!(
                    "{flag} describes jobs given on the command line; a config file sets \
                     its jobs' keys itself"
                )));
            }
            match load_config(path.as_deref()) {
                Ok(config) => config,
                Err(err) => {
                    say!("{}", visible_inline(&err.to_string()));
                    return Ok(EXIT_CONFIG);
                }
            }
        }
        Source::Commands(commands) => match quick_config(commands, &opts) {
            Ok(config) => config,
            Err(message) => return Ok(usage_error(&message)),
        },
    };
    start(config, &opts)
}

fn subcommand_name(command: &Command) -> &'static str {
    match command {
        Command::Run { .. } => "run",
        Command::Check { .. } => "check",
        Command::Import { .. } => "import",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
        Command::Schema => "schema",
        Command::Ctl(_) => "ctl",
        Command::Up(_) => "up",
        Command::Attach(_) => "attach",
        Command::Down { .. } => "down",
        Command::RemoteRun { .. } => "remote-run",
    }
}

/// `forkyard up`: the config is read here first, so an error reads as for a run (exit
/// 2); then the session starts (in the background unless `--foreground`).
fn start_session(args: &crate::control::daemon::UpArgs) -> anyhow::Result<i32> {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            say!("{}", visible_inline(&err.to_string()));
            return Ok(EXIT_CONFIG);
        }
    };
    let opts = RunOpts {
        max_parallel: args.max_parallel,
        socket: args.socket.clone(),
        name: args.name.clone(),
        ..RunOpts::default()
    };
    let mut serve = opts.serve(&config);
    serve.exclusive = true;
    if !args.foreground {
        return Ok(crate::control::daemon::up_background(
            args,
            serve.config_file.as_deref(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("forkyard")
        .build()?;
    let options = HeadlessOptions {
        max_parallel: args.max_parallel,
        no_summary: true,
        serve,
        session: true,
        ready_fd: crate::control::daemon::ready_fd(),
        ..HeadlessOptions::default()
    };
    run_to_end(runtime, headless::run(&config, &options))
}

fn usage_error(message: &str) -> i32 {
    say!("{message}");
    EXIT_CONFIG
}

/// Runs a config with the chosen front end.
fn start(config: Config, opts: &RunOpts) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("forkyard")
        .build()?;
    if let Some(CompareLimits(limits)) = &opts.compare {
        if !crate::logs::LogPlan::new(&config, None, None).is_empty() {
            say!("--compare runs the set once per limit: no log files are written");
        }
        return run_to_end(
            runtime,
            headless::compare::run(&config, limits, opts.report.as_deref()),
        );
    }
    let use_tui =
        opts.tui || (!opts.headless && opts.exit_with.is_none() && std::io::stdout().is_terminal());
    if let Some(name) = &opts.exit_with {
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
    // Log files are opened before anything runs: a folder that cannot be written is an
    // error now (exit status 2), not output lost later.
    let plan = crate::logs::LogPlan::new(&config, opts.log_dir.as_deref(), opts.log_format);
    let problems = crate::logs::ProblemQueue::default();
    let reporter = if use_tui {
        // The TUI shows problems in its status bar: stderr is its screen.
        problems.reporter()
    } else {
        std::sync::Arc::new(|problem: crate::logs::Problem| say!("{}", problem.text))
    };
    let logs = if plan.is_empty() {
        None
    } else {
        match crate::logs::Logs::open(plan, reporter) {
            Ok(logs) => Some(logs),
            Err(err) => {
                say!("{}", visible_inline(&err.to_string()));
                return Ok(EXIT_CONFIG);
            }
        }
    };
    if use_tui {
        let options = crate::app::TuiOptions {
            max_parallel: opts.max_parallel,
            report: opts.report.clone(),
            timestamps: opts.timestamps,
            logs,
            log_problems: problems,
            serve: opts.serve(&config),
        };
        return run_to_end(runtime, crate::app::run(config, options));
    }
    let options = HeadlessOptions {
        max_parallel: opts.max_parallel,
        kill_others_on_fail: opts.kill_others_on_fail,
        report: opts.report.clone(),
        no_summary: opts.no_summary,
        quiet: false,
        exit_with: opts.exit_with.clone(),
        timestamps: opts.timestamps,
        logs,
        serve: opts.serve(&config),
        ..HeadlessOptions::default()
    };
    run_to_end(runtime, headless::run(&config, &options))
}

/// Runs a front end to its end, then lets the runtime go without waiting for blocking
/// work still in flight: the run is over, and a write stuck on a stopped terminal (^S)
/// must not keep forkyard alive after it was told to go.
fn run_to_end<F: std::future::Future>(runtime: tokio::runtime::Runtime, front_end: F) -> F::Output {
    let result = runtime.block_on(front_end);
    runtime.shutdown_background();
    result
}

/// `check`, `import`, `completions`, `man`, `schema`.
fn ecosystem(command: Command) -> i32 {
    let (text, what) = match command {
        Command::Check { config } => return check(config.as_deref()),
        Command::Import { file, npm } => match import_text(file.as_deref(), &npm) {
            Ok(text) => (text, "the config"),
            Err(message) => return usage_error(&message),
        },
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "forkyard", &mut out);
            (
                String::from_utf8_lossy(&out).into_owned(),
                "the completions",
            )
        }
        Command::Man => {
            let mut out = Vec::new();
            if let Err(err) = clap_mangen::Man::new(Cli::command()).render(&mut out) {
                say!("cannot render the man page: {err}");
                return 1;
            }
            (String::from_utf8_lossy(&out).into_owned(), "the man page")
        }
        Command::Schema => (config::schema::schema_text(), "the schema"),
        Command::Run { .. } => return usage_error("forkyard run: nothing to run"),
        Command::Ctl(args) => return crate::control::client::ctl(args),
        Command::Attach(args) => return crate::control::attach::run(args),
        Command::Down { session, socket } => {
            return crate::control::daemon::down(&crate::control::client::Target {
                socket,
                name: session,
            });
        }
        Command::RemoteRun { spec } => return crate::control::remote::run(&spec),
        Command::Up(_) => return usage_error("forkyard up: internal error"),
    };
    match stdio::print(&text) {
        Ok(()) => 0,
        Err(err) => stdio::exit_status(&err, what),
    }
}

/// `forkyard import`: the TOML text, after checking that it gives a valid config.
fn import_text(file: Option<&Path>, patterns: &[String]) -> Result<String, String> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (draft, base): (Draft, Option<PathBuf>) = if !patterns.is_empty() {
        if file.is_some() {
            return Err("forkyard import: give a FILE or --npm, not both".into());
        }
        (npm_draft(patterns, &cwd)?, None)
    } else {
        let path = match file {
            Some(path) => path.to_path_buf(),
            None => config::lookup::FOREIGN_NAMES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or("forkyard import: no Procfile, mprocs.yaml or process-compose.yaml here; name the file to import")?,
        };
        let located = |err: ConfigError| visible_inline(&err.to_string()).into_owned();
        let text = config::read(&path).map_err(located)?;
        let format = Format::detect(&path, &text);
        let draft = import::draft(&path, &text, format).map_err(located)?;
        (draft, path.parent().map(Path::to_path_buf))
    };
    // What is printed must be what runs: parse it as the config it will be.
    draft
        .config(base.as_deref())
        .map_err(|err| visible_inline(&err.to_string()).into_owned())?;
    for warning in draft.warning_lines() {
        say!("warning: {warning}");
    }
    Ok(draft.render().0)
}

/// The package.json scripts matching `patterns`, as a draft.
fn npm_draft(patterns: &[String], cwd: &Path) -> Result<Draft, String> {
    let mut draft = Draft::new(COMMAND_LINE, Format::PackageJson);
    let package = read_package(cwd)?;
    for pattern in patterns {
        npm::add_scripts(&mut draft, &package, pattern, None, Pos::new(1, 1))?;
    }
    Ok(draft)
}

fn read_package(cwd: &Path) -> Result<npm::Package, String> {
    let path = config::lookup::find_package_json(cwd)
        .ok_or("no package.json here (or in a parent folder up to the repository root)")?;
    npm::Package::read(&path).map_err(|err| visible_inline(&err.to_string()).into_owned())
}

/// The config of jobs typed on the command line.
fn quick_config(commands: &[String], opts: &RunOpts) -> Result<Config, String> {
    let draft = quick_draft(commands, opts)?;
    draft.config(None).map_err(|err| {
        // The rendered TOML's places mean nothing to the user: say what and which job.
        let job = err.job().map(|j| format!("{j}: ")).unwrap_or_default();
        let key = err.key().map(|k| format!("`{k}`: ")).unwrap_or_default();
        format!("command line: {job}{key}{}", err.message())
    })
}

/// Commands, `npm:` scripts and `--npm` patterns as a draft: each command a `shell` job.
pub fn quick_draft(commands: &[String], opts: &RunOpts) -> Result<Draft, String> {
    let mut draft = Draft::new(COMMAND_LINE, Format::Toml);
    let names: Vec<String> = match &opts.names {
        Some(list) => list.split(',').map(|n| n.trim().to_string()).collect(),
        None => Vec::new(),
    };
    if names.len() > commands.len() {
        return Err(format!(
            "--names gives {} names for {} command{}",
            names.len(),
            commands.len(),
            if commands.len() == 1 { "" } else { "s" }
        ));
    }
    for name in &names {
        if !valid_name(name) {
            return Err(format!(
                "--names: {:?} is not a job name (letters, digits, `_`, `.` and `-`)",
                visible_inline(name)
            ));
        }
    }
    let timeout = match &opts.timeout {
        Some(text) => match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => Some(text.trim().to_string()),
            _ => {
                return Err(format!(
                    "--timeout: invalid duration {:?} (expected e.g. \"500ms\", \"30s\", \"5m\")",
                    visible_inline(text)
                ));
            }
        },
        None => None,
    };
    let mut package: Option<npm::Package> = None;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for (index, command) in commands.iter().enumerate() {
        let at = Pos::new(index + 1, 1);
        if let Some((manager, pattern)) = script_arg(command) {
            if package.is_none() {
                package = Some(read_package(&cwd)?);
            }
            if let Some(package) = &package {
                // `npm:` uses the project's manager, like --npm; the others say it.
                let manager = (manager != "npm").then_some(manager);
                let before = draft.jobs.len();
                npm::add_scripts(&mut draft, package, pattern, manager, at)?;
                if let (Some(name), true) = (names.get(index), draft.jobs.len() == before + 1) {
                    draft.jobs[before].name = name.clone();
                }
            }
            continue;
        }
        if command.trim().is_empty() {
            return Err(format!("command {} is empty", index + 1));
        }
        let (wanted, shell) = match names.get(index) {
            Some(name) => (name.clone(), command.as_str()),
            None => match named_command(command) {
                Some((name, shell)) => (name.to_string(), shell),
                None => (default_name(command), command.as_str()),
            },
        };
        if names.get(index).is_some() && draft.jobs.iter().any(|j| j.name == wanted) {
            return Err(format!(
                "--names: {:?} is given twice",
                visible_inline(&wanted)
            ));
        }
        let name = draft.job_name(&wanted, at);
        let mut job = DraftJob::new(name, at);
        job.set("shell", shell, at);
        draft.jobs.push(job);
    }
    if !opts.npm.is_empty() {
        let package = match package {
            Some(p) => p,
            None => read_package(&cwd)?,
        };
        for pattern in &opts.npm {
            npm::add_scripts(&mut draft, &package, pattern, None, Pos::new(1, 1))?;
        }
    }
    for job in &mut draft.jobs {
        if let Some(restart) = opts.restart {
            job.set("restart", restart.as_str(), job.at);
        }
        if let Some(timeout) = &timeout {
            job.set("timeout", timeout.as_str(), job.at);
        }
    }
    // Names made up here are not the user's: no "renamed" warnings for them.
    draft.warnings.clear();
    if draft.jobs.is_empty() {
        return Err("nothing to run".into());
    }
    Ok(draft)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `name=command`, when `name` is a job name with a lowercase letter (so that
/// `FOO=1 make`, a command setting a variable, stays a command).
fn named_command(arg: &str) -> Option<(&str, &str)> {
    let (name, command) = arg.split_once('=')?;
    (valid_name(name) && name.chars().any(|c| c.is_ascii_lowercase()) && !command.trim().is_empty())
        .then_some((name, command))
}

/// A job's name from its command: the program's file name (`./bin/server --port 1` ->
/// `server`), past leading `VAR=value` assignments.
fn default_name(command: &str) -> String {
    let program = command
        .split_whitespace()
        .find(|word| !word.contains('='))
        .unwrap_or("job");
    let base = program.rsplit('/').next().unwrap_or(program);
    let name: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect();
    if name.is_empty() { "job".into() } else { name }
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
            config::StdinSpec::Pipe => {
                let _ = writeln!(out, "  stdin: pipe (kept open: i writes to it in the TUI)");
            }
        }
        if job.pty {
            let _ = writeln!(out, "  pty: yes (stdout and stderr on a terminal)");
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
    let plan = crate::logs::LogPlan::new(config, None, None);
    let logged: Vec<&crate::logs::JobLog> = plan.jobs.iter().flatten().collect();
    if !logged.is_empty() {
        let rotation = match plan.max_size {
            Some(max) => format!(", rotated at {} keeping {}", fmt::bytes(max), plan.keep),
            None => String::new(),
        };
        let _ = writeln!(out, "\nlogs ({}{rotation}):", plan.format.as_str());
        for log in logged {
            let _ = writeln!(
                out,
                "  {}: {}",
                v(&log.name),
                v(&log.path.display().to_string())
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(args: &[&str]) -> Result<Source, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Source::classify(&args, 0)
    }

    #[test]
    fn names_from_commands() {
        assert_eq!(default_name("npm run dev"), "npm");
        assert_eq!(default_name("./bin/server --port 1"), "server");
        assert_eq!(default_name("FOO=1 make test"), "make");
        assert_eq!(default_name("'quoted'"), "quoted");
        assert_eq!(
            named_command("web=npm run dev"),
            Some(("web", "npm run dev"))
        );
        assert_eq!(named_command("FOO=1 make"), None);
        assert_eq!(named_command("x y=1"), None);
    }

    #[test]
    fn one_file_many_commands() {
        assert_eq!(classify(&[]), Ok(Source::Config(None)));
        assert_eq!(
            classify(&["Cargo.toml"]),
            Ok(Source::Config(Some(PathBuf::from("Cargo.toml"))))
        );
        let e = classify(&["npm run dev"]).expect_err("not a file");
        assert!(e.contains("forkyard run 'npm run dev'"), "{e}");
        let e = classify(&["chek"]).expect_err("typo");
        assert!(e.contains("did you mean `forkyard check`"), "{e}");
        assert_eq!(
            classify(&["echo a", "echo b"]),
            Ok(Source::Commands(vec!["echo a".into(), "echo b".into()]))
        );
        let e = classify(&["echo a", "Cargo.toml"]).expect_err("a file");
        assert!(e.contains("forkyard run"), "{e}");
        let e = classify(&["echo a", "x.yaml"]).expect_err("looks like one");
        assert!(e.contains("could be a file"), "{e}");
        assert_eq!(
            classify(&["npm:dev"]),
            Ok(Source::Commands(vec!["npm:dev".into()]))
        );
    }

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
