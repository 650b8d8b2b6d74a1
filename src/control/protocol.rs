//! The control protocol: JSON lines over a Unix domain socket.
//!
//! On connect the server sends a greeting, `{"forkyard":"control","version":1,...}`.
//! Then each request is one JSON object on one line (at most [`MAX_REQUEST_BYTES`]),
//! `{"cmd":"status"}`, and each reply is one JSON object on one line, `{"ok":true,...}`
//! or `{"ok":false,"kind":"...","error":"..."}`. A request may carry an `"id"`, which its
//! reply echoes. `events`, `logs --follow` and `attach` turn the connection into a
//! stream for the rest of its life. The README's "Scripting and remote" section is the
//! reference; this module is its implementation, and [`Request::parse`] is the one place
//! that decides what a line means.

use std::time::Duration;

use memchr::memchr;
use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::supervisor::Control;

/// The protocol's version: the greeting says it, and a client refuses another one.
pub const VERSION: u64 = 1;

/// The longest request line the server reads; a longer one is answered with an error
/// (and skipped up to its newline), never stored.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The longest line a client accepts from the server (a `status` of many jobs, a batch
/// of output).
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// How long the server waits for one write to a client before it drops the client: a
/// client that stops reading must not hold a connection (and its memory) forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong, as the `kind` of an error reply; each maps to `forkyard ctl`'s exit
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names no command: exit 2.
    Usage,
    /// The request was understood and did not succeed (a job failed, a deadline hit, the
    /// state machine refused it): exit 1.
    Failed,
    /// No job has that name: exit 1.
    NoSuchJob,
    /// This session cannot do it (no scrollback, nothing to reload): exit 1.
    Unavailable,
    /// The client read too slowly and was dropped: exit 1.
    Lagged,
    /// Another user, or too many clients: exit 1.
    Refused,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Failed => "failed",
            ErrorKind::NoSuchJob => "no_such_job",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Lagged => "lagged",
            ErrorKind::Refused => "refused",
        }
    }

    /// `forkyard ctl`'s exit status for an error of this kind.
    pub fn exit_code(kind: &str) -> i32 {
        match kind {
            "usage" => 2,
            _ => 1,
        }
    }
}

/// An error reply.
pub fn error(kind: ErrorKind, text: impl Into<String>) -> Value {
    json!({ "ok": false, "kind": kind.as_str(), "error": text.into() })
}

/// A success reply with these fields.
pub fn ok(fields: Value) -> Value {
    let mut reply = Map::new();
    reply.insert("ok".into(), Value::Bool(true));
    if let Value::Object(fields) = fields {
        reply.extend(fields);
    }
    Value::Object(reply)
}

/// What a job control asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Kill,
    Restart,
    Signal(Signal),
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Restart => "restart",
            Action::Signal(_) => "signal",
        }
    }

    pub fn control(self) -> Control {
        match self {
            Action::Start => Control::Start,
            Action::Stop => Control::Stop,
            Action::Kill => Control::Kill,
            Action::Restart => Control::Restart,
            Action::Signal(signal) => Control::Signal(signal),
        }
    }
}

/// One request, as the server understands it.
// TODO(pty, issue 12): `write` (text to a job's stdin) and `close_stdin`, here, in
// `forkyard ctl` and as attached-TUI controls, through the stdin writer the pty track
// adds to the supervisor (not there yet: jobs' stdin is /dev/null or fixed text).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Ping,
    Status,
    Events,
    Logs {
        job: String,
        follow: bool,
        /// Only lines that arrived this recently.
        since: Option<Duration>,
        /// Only the last N lines.
        tail: Option<usize>,
    },
    Control {
        job: String,
        action: Action,
        /// Reply once the job shows the effect (stopped, started...), not at once.
        wait: bool,
    },
    /// Wait for a job (or every active job) to end; with a deadline, stop it then, like
    /// the TUI's `w`.
    Wait {
        job: Option<String>,
        deadline: Option<Duration>,
    },
    Reload,
    Shutdown,
    Attach,
    /// Attached: show this job's output (None: none).
    Watch {
        job: Option<usize>,
    },
    /// Attached: a control to a job by its index, as the TUI sends it.
    JobControl {
        job: usize,
        control: Control,
    },
    /// Attached: the client leaves; the jobs keep running.
    Detach,
}

/// Every command a request may name, for the error that lists them.
pub const COMMANDS: &[&str] = &[
    "ping", "status", "events", "logs", "start", "stop", "kill", "restart", "signal", "wait",
    "reload", "shutdown", "attach", "watch", "control", "detach",
];

/// The longest deadline accepted (the TUI's limit too).
pub const MAX_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

impl Request {
    /// Parses one request line: the request (or the error reply's text, kind `usage`)
    /// and the request's `id`, which is echoed even with an error.
    pub fn parse(line: &[u8]) -> (Result<Request, String>, Option<Value>) {
        let value: Value = match serde_json::from_slice(line) {
            Ok(value) => value,
            Err(err) => {
                return (
                    Err(format!(
                        "not a JSON object: {err} (a request is one JSON object per line)"
                    )),
                    None,
                );
            }
        };
        let Value::Object(fields) = value else {
            return (
                Err("a request must be a JSON object, e.g. {\"cmd\":\"status\"}".into()),
                None,
            );
        };
        (Self::from_fields(&fields), fields.get("id").cloned())
    }

    fn from_fields(f: &Map<String, Value>) -> Result<Request, String> {
        let cmd = match f.get("cmd") {
            Some(Value::String(cmd)) => cmd.as_str(),
            Some(_) => return Err("`cmd` must be a string".into()),
            None => return Err(format!("no `cmd` (one of: {})", COMMANDS.join(", "))),
        };
        let job = || -> Result<String, String> {
            match f.get("job") {
                Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
                Some(_) => Err(format!("`{cmd}`: `job` must be a job's name (a string)")),
                None => Err(format!("`{cmd}` needs a `job`")),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, String> {
            match f.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(format!("`{cmd}`: `{key}` must be true or false")),
            }
        };
        let millis = |key: &str| -> Result<Option<Duration>, String> {
            match f.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(ms) => Ok(Some(Duration::from_millis(ms).min(MAX_DEADLINE))),
                    None => Err(format!(
                        "`{cmd}`: `{key}` must be a whole number of milliseconds"
                    )),
                },
            }
        };
        let index = |key: &str| -> Result<Option<usize>, String> {
            match f.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| format!("`{cmd}`: `{key}` must be a job index (a number)")),
            }
        };
        let control = |action: Action| -> Result<Request, String> {
            Ok(Request::Control {
                job: job()?,
                action,
                wait: flag("wait")?.unwrap_or(true),
            })
        };
        match cmd {
            "ping" => Ok(Request::Ping),
            "status" => Ok(Request::Status),
            "events" => Ok(Request::Events),
            "logs" => Ok(Request::Logs {
                job: job()?,
                follow: flag("follow")?.unwrap_or(false),
                since: millis("since_ms")?,
                tail: match f.get("tail") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or("`logs`: `tail` must be a number of lines")?,
                    ),
                },
            }),
            "start" => control(Action::Start),
            "stop" => control(Action::Stop),
            "kill" => control(Action::Kill),
            "restart" => control(Action::Restart),
            "signal" => {
                let signal = signal_field(f.get("signal"))?;
                control(Action::Signal(signal))
            }
            "wait" => Ok(Request::Wait {
                job: match f.get("job") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(job()?),
                },
                deadline: millis("deadline_ms")?,
            }),
            "reload" => Ok(Request::Reload),
            "shutdown" => Ok(Request::Shutdown),
            "attach" => Ok(Request::Attach),
            "watch" => Ok(Request::Watch {
                job: index("job_id")?,
            }),
            "control" => {
                let job = index("job_id")?.ok_or("`control` needs a `job_id`")?;
                Ok(Request::JobControl {
                    job,
                    control: control_field(f)?,
                })
            }
            "detach" => Ok(Request::Detach),
            other => Err(format!(
                "unknown command {:?} (one of: {})",
                crate::stdio::visible_inline(&truncate(other, 64)),
                COMMANDS.join(", ")
            )),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// `"signal": "USR1"` (or `"SIGUSR1"`, `"usr1"`, `10`).
fn signal_field(value: Option<&Value>) -> Result<Signal, String> {
    let parsed = match value {
        Some(Value::String(text)) => crate::supervisor::signals::parse_signal(text),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(|n| Signal::try_from(n).ok()),
        None => {
            return Err("`signal` needs a `signal` (a name such as \"USR1\", or a number)".into());
        }
        Some(_) => None,
    };
    parsed.ok_or_else(|| "`signal`: not a signal (a name such as \"USR1\", or a number)".into())
}

/// An attached TUI's control: `{"control":"stop"}`, `{"control":"signal","signal":"HUP"}`,
/// `{"control":"wait","ms":5000}`. Only what the TUI's keys send.
fn control_field(f: &Map<String, Value>) -> Result<Control, String> {
    match f.get("control").and_then(Value::as_str) {
        Some("start") => Ok(Control::Start),
        Some("stop") => Ok(Control::Stop),
        Some("kill") => Ok(Control::Kill),
        Some("restart") => Ok(Control::Restart),
        Some("signal") => Ok(Control::Signal(signal_field(f.get("signal"))?)),
        Some("wait") => match f.get("ms").and_then(Value::as_u64) {
            Some(ms) => Ok(Control::Wait(Duration::from_millis(ms).min(MAX_DEADLINE))),
            None => Err("`control` wait needs `ms`".into()),
        },
        _ => Err("`control`: `control` must be start, stop, kill, restart, signal or wait".into()),
    }
}

/// A control as an attached TUI sends it (the inverse of [`control_field`]); None for
/// controls a client may not send (a shutdown, an expiry).
pub fn control_message(job: usize, control: Control) -> Option<Value> {
    let mut message = json!({ "cmd": "control", "job_id": job });
    let fields = match control {
        Control::Start => json!({ "control": "start" }),
        Control::Stop => json!({ "control": "stop" }),
        Control::Kill => json!({ "control": "kill" }),
        Control::Restart => json!({ "control": "restart" }),
        Control::Signal(signal) => json!({ "control": "signal", "signal": signal.as_str() }),
        Control::Wait(within) => {
            json!({ "control": "wait", "ms": u64::try_from(within.as_millis()).unwrap_or(u64::MAX) })
        }
        Control::StopBecauseOtherFailed | Control::Expire | Control::Shutdown => return None,
    };
    if let (Value::Object(m), Value::Object(extra)) = (&mut message, fields) {
        m.extend(extra);
    }
    Some(message)
}

/// One line read by a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its `\n`); the last one may lack the newline.
    Text(Vec<u8>),
    /// A line longer than the limit: its length, read and thrown away.
    TooLong(usize),
    /// The other side closed the connection.
    End,
}

/// Reads newline-terminated lines of at most `max` bytes without ever holding more than
/// that: a longer line is consumed and reported as [`Line::TooLong`]. The line being read
/// is kept here, so [`LineReader::next`] is cancel safe (a `select!` may drop it at any
/// point and call it again).
pub struct LineReader<R> {
    inner: R,
    max: usize,
    line: Vec<u8>,
    seen: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            line: Vec::new(),
            seen: 0,
        }
    }

    /// The next line.
    pub async fn next(&mut self) -> std::io::Result<Line> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                let seen = std::mem::take(&mut self.seen);
                let line = std::mem::take(&mut self.line);
                return Ok(match seen {
                    0 => Line::End,
                    n if n > self.max => Line::TooLong(n),
                    _ => Line::Text(line),
                });
            }
            let (take, done) = match memchr(b'\n', available) {
                Some(at) => (at, true),
                None => (available.len(), false),
            };
            if self.seen + take <= self.max {
                self.line.extend_from_slice(&available[..take]);
            } else if !self.line.is_empty() {
                self.line = Vec::new();
            }
            self.seen += take;
            self.inner.consume(take + usize::from(done));
            if done {
                let seen = std::mem::take(&mut self.seen);
                let line = std::mem::take(&mut self.line);
                return Ok(if seen > self.max {
                    Line::TooLong(seen)
                } else {
                    Line::Text(line)
                });
            }
        }
    }

    /// Data is waiting (true), or the other side closed (false): for a task that waits
    /// on something else and must notice a client that went away.
    pub async fn readable(&mut self) -> std::io::Result<bool> {
        Ok(!self.inner.fill_buf().await?.is_empty())
    }
}

/// Writes one value as a line, giving up after [`WRITE_TIMEOUT`].
pub async fn write_value<W: AsyncWrite + Unpin>(out: &mut W, value: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write_raw(out, &text).await
}

/// Writes bytes (one or more complete lines), giving up after [`WRITE_TIMEOUT`].
pub async fn write_raw<W: AsyncWrite + Unpin>(out: &mut W, text: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, out.write_all(text)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, String> {
        Request::parse(text.as_bytes()).0
    }

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        assert_eq!(parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            parse(r#"{"cmd":"stop","job":"web","wait":false}"#),
            Ok(Request::Control {
                job: "web".into(),
                action: Action::Stop,
                wait: false
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"signal","job":"web","signal":"usr1"}"#),
            Ok(Request::Control {
                job: "web".into(),
                action: Action::Signal(Signal::SIGUSR1),
                wait: true
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"wait","deadline_ms":1500}"#),
            Ok(Request::Wait {
                job: None,
                deadline: Some(Duration::from_millis(1500))
            })
        );
        for (bad, says) in [
            ("", "not a JSON object"),
            ("[1,2]", "must be a JSON object"),
            (r#"{"cmd":7}"#, "must be a string"),
            (r#"{"cmd":"explode"}"#, "unknown command"),
            (r#"{"cmd":"stop"}"#, "needs a `job`"),
            (
                r#"{"cmd":"signal","job":"a","signal":"NOPE"}"#,
                "not a signal",
            ),
            (r#"{"cmd":"logs","job":"a","tail":-1}"#, "number of lines"),
            (
                r#"{"cmd":"control","job_id":0,"control":"shutdown"}"#,
                "must be start",
            ),
            ("{\"cmd\":\"sta", "not a JSON object"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn attach_controls_round_trip() {
        for control in [
            Control::Start,
            Control::Stop,
            Control::Kill,
            Control::Restart,
            Control::Signal(Signal::SIGHUP),
            Control::Wait(Duration::from_millis(2500)),
        ] {
            let message = control_message(3, control).expect("sendable");
            let line = serde_json::to_vec(&message).expect("json");
            assert_eq!(
                parse(std::str::from_utf8(&line).expect("utf8")),
                Ok(Request::JobControl { job: 3, control })
            );
        }
        assert_eq!(control_message(0, Control::Shutdown), None);
    }

    #[tokio::test]
    async fn long_lines_are_skipped_not_stored() {
        let mut input = vec![b'x'; 100];
        input.push(b'\n');
        input.extend_from_slice(b"ok\nlast");
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(7, &input[..]), 10);
        assert_eq!(reader.next().await.expect("read"), Line::TooLong(100));
        assert_eq!(
            reader.next().await.expect("read"),
            Line::Text(b"ok".to_vec())
        );
        assert_eq!(
            reader.next().await.expect("read"),
            Line::Text(b"last".to_vec())
        );
        assert_eq!(reader.next().await.expect("read"), Line::End);
    }
}
