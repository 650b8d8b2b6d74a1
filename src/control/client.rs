//! The client side: connecting to a session, and `forkyard ctl`.
//!
//! `forkyard ctl` prints for people by default and the protocol's own JSON lines with
//! `--json`. Exit status: 0 ok, 1 the job or command failed (a `wait` whose deadline hit,
//! a refused control, a failed reload), 2 usage, 3 no such session.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::protocol::{self, ErrorKind, Line, LineReader, MAX_REPLY_BYTES};
use super::session::{self, Unresolved};
use crate::stdio::{self, visible_inline};

/// Exit status: the command did not succeed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: no such session (nothing answers at its socket).
pub const EXIT_NO_SESSION: i32 = 3;

/// Where to find the session, for every command that talks to one.
#[derive(Debug, Clone, Default, Args)]
pub struct Target {
    /// The session's socket (default: the session --name names, or the only one running).
    #[arg(
        long = "socket",
        id = "session_socket",
        value_name = "PATH",
        global = true
    )]
    pub socket: Option<PathBuf>,
    /// The session's name (see `forkyard ctl list-sessions`).
    #[arg(long = "name", id = "session_name", value_name = "NAME", global = true)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the protocol's JSON lines instead of text.
    #[arg(long, id = "ctl_json", global = true)]
    pub json: bool,
    /// Connect stdin and stdout to the session's socket, for a client on another machine
    /// (`forkyard attach --ssh` runs this there).
    #[arg(long)]
    pub stdio: bool,
    #[command(subcommand)]
    pub command: Option<CtlCommand>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Every job's state, pid, times, CPU and RSS, live (--json: the JSON report's shape).
    Status,
    /// Status changes and notices as they happen, until the session ends.
    Events,
    /// A job's output from its scrollback: stdout lines to stdout, stderr to stderr.
    Logs {
        job: String,
        /// Go on printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
        /// Only lines that arrived this recently (e.g. 30s, 5m).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Start a job that is not running; returns once it has started.
    Start {
        job: String,
        /// Return at once instead of when the job shows the change.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop a job (stop signal, SIGKILL after its grace); returns once it has stopped.
    Stop {
        job: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// SIGKILL to every process of a job; returns once it is gone.
    Kill {
        job: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop a job if it runs, then start it again; returns once the new run started.
    Restart {
        job: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Send a signal (TERM, USR1, 10...) to a job's process group.
    Signal { job: String, signal: String },
    /// Wait until a job (default: every job still running) ends; with --deadline, stop
    /// it then, like the TUI's `w`. Exit status 1 if one failed or the deadline hit.
    Wait {
        job: Option<String>,
        #[arg(long, value_name = "DURATION")]
        deadline: Option<String>,
    },
    /// Read the config again: start new jobs, stop removed ones, restart changed ones.
    Reload,
    /// The sessions running for this user.
    ListSessions,
}

/// Why a connection failed.
pub enum ConnectError {
    /// Nothing answers there: exit 3.
    NoSession(String),
    Other(anyhow::Error),
}

impl From<Unresolved> for ConnectError {
    fn from(err: Unresolved) -> Self {
        match err {
            Unresolved::NoSession(text) => ConnectError::NoSession(text),
            Unresolved::Ambiguous(text) => ConnectError::Other(anyhow::anyhow!(text)),
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A connection to a session, past its greeting.
pub struct Client {
    reader: LineReader<BufReader<BoxRead>>,
    writer: BoxWrite,
    /// The server's greeting: `session`, `pid`, `origin`, `version`.
    pub hello: Value,
}

impl Client {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Client, ConnectError> {
        let stream = match tokio::net::UnixStream::connect(path).await {
            Ok(stream) => stream,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                // Gone without removing its socket: clean it up.
                if err.kind() == std::io::ErrorKind::ConnectionRefused {
                    let _ = session::probe(path);
                }
                return Err(ConnectError::NoSession(format!(
                    "no session answers at {}",
                    path.display()
                )));
            }
            Err(err) => {
                return Err(ConnectError::Other(
                    anyhow::Error::new(err)
                        .context(format!("cannot connect to {}", path.display())),
                ));
            }
        };
        let (read, write) = stream.into_split();
        Client::over(Box::new(read), Box::new(write)).await
    }

    /// A session reached through any byte stream (`ssh ... ctl --stdio`).
    pub async fn over(read: BoxRead, write: BoxWrite) -> Result<Client, ConnectError> {
        let mut reader = LineReader::new(BufReader::new(read), MAX_REPLY_BYTES);
        let hello = match reader.next().await {
            Ok(Line::Text(line)) => serde_json::from_slice::<Value>(&line).map_err(|err| {
                ConnectError::Other(anyhow::anyhow!("not a forkyard session: {err}"))
            })?,
            Ok(Line::End) => {
                return Err(ConnectError::NoSession(
                    "the session closed the connection at once".into(),
                ));
            }
            Ok(Line::TooLong(_)) => {
                return Err(ConnectError::Other(anyhow::anyhow!(
                    "not a forkyard session"
                )));
            }
            Err(err) => return Err(ConnectError::Other(err.into())),
        };
        if hello.get("ok") == Some(&Value::Bool(false)) {
            let text = hello["error"].as_str().unwrap_or("refused").to_string();
            return Err(ConnectError::Other(anyhow::anyhow!(text)));
        }
        if hello["forkyard"] != "control" {
            return Err(ConnectError::Other(anyhow::anyhow!(
                "not a forkyard session (its first line is not a greeting)"
            )));
        }
        if hello["version"].as_u64() != Some(protocol::VERSION) {
            return Err(ConnectError::Other(anyhow::anyhow!(
                "the session speaks control protocol version {}, this forkyard version {}",
                hello["version"],
                protocol::VERSION
            )));
        }
        Ok(Client {
            reader,
            writer: Box::new(write),
            hello,
        })
    }

    pub async fn send(&mut self, request: &Value) -> anyhow::Result<()> {
        protocol::write_value(&mut self.writer, request).await?;
        Ok(())
    }

    /// The next line from the server (None: it closed the connection).
    pub async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        match self.reader.next().await? {
            Line::Text(line) => Ok(Some(serde_json::from_slice(&line)?)),
            Line::TooLong(n) => anyhow::bail!("the session sent a line of {n} bytes"),
            Line::End => Ok(None),
        }
    }

    /// The next line as it came (None: the server closed the connection).
    pub async fn next_raw(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match self.reader.next().await? {
            Line::Text(line) => Ok(Some(line)),
            Line::TooLong(n) => anyhow::bail!("the session sent a line of {n} bytes"),
            Line::End => Ok(None),
        }
    }

    /// Sends a request and reads its reply.
    pub async fn request(&mut self, request: &Value) -> anyhow::Result<Value> {
        self.send(request).await?;
        self.next()
            .await?
            .ok_or_else(|| anyhow::anyhow!("the session closed the connection"))
    }

    /// The two halves, for a task that reads while another writes.
    pub fn split(self) -> (LineReader<BufReader<BoxRead>>, BoxWrite) {
        (self.reader, self.writer)
    }
}

/// Connects to the session a command names, or says why not (with its exit status).
pub async fn connect(target: &Target) -> Result<Client, i32> {
    let path = match session::resolve(target.socket.as_deref(), target.name.as_deref()) {
        Ok(path) => path,
        Err(Unresolved::NoSession(text)) => {
            crate::say!("{text}");
            return Err(EXIT_NO_SESSION);
        }
        Err(Unresolved::Ambiguous(text)) => {
            crate::say!("{text}");
            return Err(EXIT_USAGE);
        }
    };
    match Client::connect(&path).await {
        Ok(client) => Ok(client),
        Err(ConnectError::NoSession(text)) => {
            crate::say!("{text}");
            Err(EXIT_NO_SESSION)
        }
        Err(ConnectError::Other(err)) => {
            crate::say!("{err:#}");
            Err(EXIT_FAILED)
        }
    }
}

fn parse_duration(flag: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!(
            "{flag}: invalid duration {:?} (expected e.g. \"500ms\", \"30s\", \"5m\")",
            visible_inline(text)
        )
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `forkyard ctl ...`: returns the exit status.
pub fn ctl(args: CtlArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::say!("{err}");
            return EXIT_FAILED;
        }
    };
    let code = runtime.block_on(ctl_async(args));
    runtime.shutdown_background();
    code
}

async fn ctl_async(args: CtlArgs) -> i32 {
    if args.stdio {
        return stdio_bridge(&args.target).await;
    }
    let Some(command) = args.command.clone() else {
        crate::say!(
            "forkyard ctl: give a command: status, events, logs, start, stop, kill, restart, \
             signal, wait, reload, list-sessions"
        );
        return EXIT_USAGE;
    };
    if let CtlCommand::ListSessions = command {
        return list_sessions(args.json);
    }
    let request = match request_of(&command) {
        Ok(request) => request,
        Err(text) => {
            crate::say!("{text}");
            return EXIT_USAGE;
        }
    };
    let mut client = match connect(&args.target).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut out = Output::new(args.json);
    let result = match command {
        CtlCommand::Status if args.json => status_json(&mut client, &mut out).await,
        CtlCommand::Events => stream(&mut client, &request, &mut out, Printing::Events).await,
        CtlCommand::Logs { .. } => stream(&mut client, &request, &mut out, Printing::Logs).await,
        _ => match client.request(&request).await {
            Ok(reply) => Ok(out.reply(&command, &reply)),
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(code) => out.finish(code),
        Err(err) => {
            crate::say!("{err:#}");
            out.finish(EXIT_FAILED)
        }
    }
}

fn request_of(command: &CtlCommand) -> Result<Value, String> {
    let control =
        |cmd: &str, job: &str, no_wait: bool| json!({"cmd": cmd, "job": job, "wait": !no_wait});
    Ok(match command {
        CtlCommand::Status => json!({"cmd": "status"}),
        CtlCommand::Events => json!({"cmd": "events"}),
        CtlCommand::Logs {
            job,
            follow,
            since,
            tail,
        } => {
            let since = since
                .as_deref()
                .map(|s| parse_duration("--since", s))
                .transpose()?;
            json!({"cmd": "logs", "job": job, "follow": follow,
                   "since_ms": since.map(millis), "tail": tail})
        }
        CtlCommand::Start { job, no_wait } => control("start", job, *no_wait),
        CtlCommand::Stop { job, no_wait } => control("stop", job, *no_wait),
        CtlCommand::Kill { job, no_wait } => control("kill", job, *no_wait),
        CtlCommand::Restart { job, no_wait } => control("restart", job, *no_wait),
        CtlCommand::Signal { job, signal } => {
            if crate::supervisor::signals::parse_signal(signal).is_none() {
                return Err(format!(
                    "{:?} is not a signal (e.g. TERM, USR1, 10)",
                    visible_inline(signal)
                ));
            }
            json!({"cmd": "signal", "job": job, "signal": signal})
        }
        CtlCommand::Wait { job, deadline } => {
            let deadline = deadline
                .as_deref()
                .map(|s| parse_duration("--deadline", s))
                .transpose()?;
            json!({"cmd": "wait", "job": job, "deadline_ms": deadline.map(millis)})
        }
        CtlCommand::Reload => json!({"cmd": "reload"}),
        CtlCommand::ListSessions => json!({"cmd": "ping"}),
    })
}

/// `status --json`: the report as the session encoded it, passed through (parsed only to
/// find it, never rebuilt: a thousand jobs are 300 kB).
async fn status_json(client: &mut Client, out: &mut Output) -> anyhow::Result<i32> {
    #[derive(serde::Deserialize)]
    struct Reply<'a> {
        ok: bool,
        #[serde(borrow)]
        report: Option<&'a serde_json::value::RawValue>,
    }
    client.send(&json!({"cmd": "status"})).await?;
    let line = client
        .next_raw()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the session closed the connection"))?;
    let reply: Reply<'_> = serde_json::from_slice(&line)?;
    match (reply.ok, reply.report) {
        (true, Some(report)) => {
            out.line(report.get());
            Ok(0)
        }
        _ => Ok(out.error(&serde_json::from_slice(&line)?)),
    }
}

/// What a streamed line is.
#[derive(Clone, Copy)]
enum Printing {
    Events,
    Logs,
}

/// Writes what ctl prints, and turns a write failure into the exit status a Unix tool
/// gives (EPIPE 141, EIO 129).
struct Output {
    json: bool,
    /// Child output on a terminal: only colours kept.
    sanitize: bool,
    failed: Option<std::io::Error>,
}

impl Output {
    fn new(json: bool) -> Output {
        Output {
            json,
            sanitize: std::io::stdout().is_terminal(),
            failed: None,
        }
    }

    fn line(&mut self, text: &str) {
        if self.failed.is_some() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(err) = out
            .write_all(text.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
        {
            self.failed = Some(err);
        }
    }

    fn json(&mut self, value: &Value) {
        self.line(&value.to_string());
    }

    fn finish(&self, code: i32) -> i32 {
        match &self.failed {
            Some(err) => stdio::exit_status(err, "the output"),
            None => code,
        }
    }

    /// Prints an error reply; returns its exit status.
    fn error(&mut self, reply: &Value) -> i32 {
        let kind = reply["kind"].as_str().unwrap_or("failed");
        if self.json {
            self.json(reply);
        } else {
            crate::say!(
                "{}",
                visible_inline(reply["error"].as_str().unwrap_or("failed"))
            );
        }
        ErrorKind::exit_code(kind)
    }

    fn reply(&mut self, command: &CtlCommand, reply: &Value) -> i32 {
        let is_ok = reply["ok"].as_bool() == Some(true);
        if self.json {
            let shown = match command {
                // The report's own shape, as --report writes it.
                CtlCommand::Status if is_ok => &reply["report"],
                _ => reply,
            };
            self.json(shown);
            return if is_ok {
                0
            } else {
                ErrorKind::exit_code(reply["kind"].as_str().unwrap_or("failed"))
            };
        }
        if !is_ok {
            if let CtlCommand::Wait { .. } = command {
                for job in reply["jobs"].as_array().into_iter().flatten() {
                    self.line(&job_line(job));
                }
            }
            return self.error(reply);
        }
        match command {
            CtlCommand::Status => self.status_table(reply),
            CtlCommand::Start { .. }
            | CtlCommand::Stop { .. }
            | CtlCommand::Kill { .. }
            | CtlCommand::Restart { .. }
            | CtlCommand::Signal { .. } => {
                for notice in reply["notices"].as_array().into_iter().flatten() {
                    if let Some(text) = notice.as_str() {
                        crate::say!("{}", visible_inline(text));
                    }
                }
                if let Some(note) = reply["note"].as_str() {
                    crate::say!("{}", visible_inline(note));
                }
                self.line(&job_line(reply));
            }
            CtlCommand::Wait { .. } => {
                for job in reply["jobs"].as_array().into_iter().flatten() {
                    self.line(&job_line(job));
                }
            }
            CtlCommand::Reload => {
                for key in ["added", "removed", "changed"] {
                    let names: Vec<String> = reply[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|n| visible_inline(n).into_owned())
                        .collect();
                    if !names.is_empty() {
                        self.line(&format!("{key}: {}", names.join(", ")));
                    }
                }
                let unchanged = reply["unchanged"].as_array().map_or(0, Vec::len);
                self.line(&format!(
                    "unchanged: {unchanged} job{}",
                    if unchanged == 1 { "" } else { "s" }
                ));
                for note in reply["notes"].as_array().into_iter().flatten() {
                    if let Some(note) = note.as_str() {
                        crate::say!("{}", visible_inline(note));
                    }
                }
            }
            CtlCommand::Events | CtlCommand::Logs { .. } | CtlCommand::ListSessions => {}
        }
        0
    }

    fn status_table(&mut self, reply: &Value) {
        let report = &reply["report"];
        let summaries = reply["jobs"].as_array().cloned().unwrap_or_default();
        let jobs = report["jobs"].as_array().cloned().unwrap_or_default();
        let any_host = summaries.iter().any(|s| s["host"].is_string());
        let name_width = summaries
            .iter()
            .map(|s| {
                s["job"]
                    .as_str()
                    .map_or(0, |n| visible_inline(n).chars().count())
            })
            .max()
            .unwrap_or(3)
            .clamp(3, 40);
        let state_width = summaries
            .iter()
            .map(|s| s["text"].as_str().map_or(0, |t| t.chars().count()))
            .max()
            .unwrap_or(5)
            .clamp(5, 48);
        let mut text = format!(
            "{:<name_width$}  {:<state_width$}  {:>8}  {:>9}  {:>8}  {:>9}  {:>8}{}",
            "JOB",
            "STATE",
            "PID",
            "ELAPSED",
            "CPU",
            "PEAK RSS",
            "RESTARTS",
            if any_host { "  HOST" } else { "" }
        );
        for (summary, job) in summaries.iter().zip(&jobs) {
            let ms = |key: &str| Duration::from_millis(job[key].as_u64().unwrap_or(0));
            let rss = job["max_rss_kb"].as_u64().unwrap_or(0);
            text.push('\n');
            text.push_str(&format!(
                "{:<name_width$}  {:<state_width$}  {:>8}  {:>9}  {:>8}  {:>9}  {:>8}{}",
                visible_inline(summary["job"].as_str().unwrap_or("?")),
                visible_inline(summary["text"].as_str().unwrap_or("?")),
                summary["pid"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
                crate::fmt::duration(ms("elapsed_ms")),
                if summary["host"].is_string() {
                    "remote".to_string()
                } else {
                    crate::fmt::duration(ms("cpu_ms"))
                },
                if summary["host"].is_string() {
                    "remote".to_string()
                } else if rss > 0 {
                    crate::fmt::rss(rss * 1024)
                } else {
                    "-".to_string()
                },
                job["restarts"].as_u64().unwrap_or(0),
                match summary["host"].as_str() {
                    Some(host) => format!("  {}", visible_inline(host)),
                    None => String::new(),
                }
            ));
        }
        let running = summaries
            .iter()
            .filter(|s| matches!(s["state"].as_str(), Some("running" | "stopping")))
            .count();
        let failed = jobs
            .iter()
            .filter(|j| {
                matches!(
                    j["result"].as_str(),
                    Some("killed" | "timed_out" | "failed_to_start")
                ) || (j["result"] == "exited" && j["exit_code"].as_i64() != Some(0))
            })
            .count();
        text.push_str(&format!(
            "\n{} jobs: {running} running, {failed} failed · wall {}",
            summaries.len(),
            crate::fmt::duration(Duration::from_millis(
                report["wall_ms"].as_u64().unwrap_or(0)
            ))
        ));
        self.line(&text);
    }

    /// One streamed line; returns an exit status when the stream ends with it.
    fn streamed(&mut self, printing: Printing, line: &Value) -> Option<i32> {
        if line.get("ok") == Some(&Value::Bool(false)) {
            return Some(self.error(line));
        }
        match printing {
            Printing::Events => {
                if self.json {
                    self.json(line);
                } else {
                    match line["event"].as_str() {
                        Some("job") => self.line(&job_line(line)),
                        Some("notice") => self.line(&format!(
                            "{}{}",
                            match line["job"].as_str() {
                                Some(job) => format!("{}: ", visible_inline(job)),
                                None => String::new(),
                            },
                            visible_inline(line["text"].as_str().unwrap_or(""))
                        )),
                        Some("reload") => self.line(&format!(
                            "reload: added {}, removed {}, changed {}",
                            list(&line["added"]),
                            list(&line["removed"]),
                            list(&line["changed"])
                        )),
                        _ => {}
                    }
                }
                (line["event"] == "end").then_some(0)
            }
            Printing::Logs => {
                if line.get("end").is_some() {
                    if self.json {
                        self.json(line);
                    }
                    return Some(0);
                }
                if self.json {
                    self.json(line);
                    return None;
                }
                if let Some(skipped) = line["skipped"].as_u64() {
                    crate::say!("{skipped} lines went by before they could be read");
                    return None;
                }
                let text = line["text"].as_str().unwrap_or("");
                let text = if self.sanitize {
                    crate::output::sanitize::to_ansi(&crate::output::sanitize::styled_line(
                        text.as_bytes(),
                    ))
                } else {
                    text.to_string()
                };
                if line["stream"] == "stderr" {
                    let mut err = std::io::stderr().lock();
                    let _ = err
                        .write_all(text.as_bytes())
                        .and_then(|()| err.write_all(b"\n"));
                } else {
                    self.line(&text);
                }
                None
            }
        }
    }
}

fn list(names: &Value) -> String {
    let names: Vec<String> = names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| visible_inline(n).into_owned())
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `web: running (pid 4211)`, `web: exit 0`.
fn job_line(job: &Value) -> String {
    let mut text = format!(
        "{}: {}",
        visible_inline(job["job"].as_str().unwrap_or("?")),
        visible_inline(job["text"].as_str().unwrap_or("?"))
    );
    if matches!(job["state"].as_str(), Some("running" | "stopping"))
        && let Some(pid) = job["pid"].as_u64()
    {
        text.push_str(&format!(" (pid {pid})"));
    }
    if job["deadline_hit"] == true {
        text.push_str(" (stopped at the deadline)");
    }
    text
}

async fn stream(
    client: &mut Client,
    request: &Value,
    out: &mut Output,
    printing: Printing,
) -> anyhow::Result<i32> {
    let first = client.request(request).await?;
    if first["ok"] != true {
        return Ok(out.error(&first));
    }
    loop {
        let Some(line) = client.next().await? else {
            // The session ended without saying so (it was killed).
            return Ok(match printing {
                Printing::Events => 0,
                Printing::Logs => {
                    crate::say!("the session went away");
                    EXIT_FAILED
                }
            });
        };
        if let Some(code) = out.streamed(printing, &line) {
            return Ok(code);
        }
        if out.failed.is_some() {
            return Ok(EXIT_FAILED);
        }
    }
}

fn list_sessions(json: bool) -> i32 {
    let mut out = Output::new(json);
    let sessions = session::list();
    if json {
        for entry in &sessions {
            out.json(&entry.hello);
        }
        return out.finish(0);
    }
    if sessions.is_empty() {
        crate::say!("no forkyard session is running");
        return out.finish(0);
    }
    let width = sessions
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut text = format!("{:<width$}  {:>8}  CONFIG", "NAME", "PID");
    for entry in &sessions {
        text.push_str(&format!(
            "\n{:<width$}  {:>8}  {}",
            entry.name,
            entry.hello["pid"].as_u64().unwrap_or(0),
            visible_inline(entry.hello["origin"].as_str().unwrap_or("?"))
        ));
    }
    out.line(&text);
    out.finish(0)
}

/// `ctl --stdio`: the session's socket on stdin and stdout, byte for byte, until either
/// side closes.
async fn stdio_bridge(target: &Target) -> i32 {
    let path = match session::resolve(target.socket.as_deref(), target.name.as_deref()) {
        Ok(path) => path,
        Err(Unresolved::NoSession(text)) => {
            crate::say!("{text}");
            return EXIT_NO_SESSION;
        }
        Err(Unresolved::Ambiguous(text)) => {
            crate::say!("{text}");
            return EXIT_USAGE;
        }
    };
    let stream = match tokio::net::UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(err) => {
            crate::say!("no session answers at {}: {err}", path.display());
            return EXIT_NO_SESSION;
        }
    };
    let (mut read, mut write) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let up = tokio::io::copy(&mut stdin, &mut write);
    let down = tokio::io::copy(&mut read, &mut stdout);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    0
}
