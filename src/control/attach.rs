//! `forkyard attach`: the TUI on a session that runs elsewhere, through its socket (or
//! through `ssh HOST forkyard ctl --stdio` to a session on another machine).
//!
//! The session sends a snapshot of every job, then each status change, sample and notice,
//! which a [`Link`] turns back into the supervisor's own [`Event`]s for the TUI's loop,
//! and the output of the one job the TUI shows, as the chunks that rebuild its
//! scrollback in a local buffer. Keys that act on jobs go back as controls. Quitting
//! (`q`, `Q`, Ctrl-C, the terminal closing) only detaches: the jobs keep running.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::client::{self, Client, ConnectError, EXIT_FAILED, EXIT_NO_SESSION, Target};
use super::protocol;
use super::wire::{self, Clock, WireNotice, WireSample, WireStatus};
use crate::output::{OutputBuffer, SharedBuffer, Stream};
use crate::supervisor::{Control, Event, JobId, JobState, JobStatus, PendingReason};
use crate::tracker::Tracker;

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The session (default: the only one running).
    pub session: Option<String>,
    /// The session's socket.
    #[arg(
        long = "socket",
        id = "attach_socket",
        value_name = "PATH",
        conflicts_with = "ssh"
    )]
    pub socket: Option<PathBuf>,
    /// A session on another machine: runs `ssh DEST forkyard ctl --stdio` (your ssh
    /// config, keys and ControlMaster apply; FORKYARD_SSH and FORKYARD_REMOTE_BIN too).
    #[arg(long, value_name = "DEST")]
    pub ssh: Option<String>,
}

/// What changes the set of jobs or ends the link (beside the events).
pub enum News {
    /// A reload added these jobs (ids follow the existing ones) and retired those.
    Added {
        jobs: Vec<AddedJob>,
        retired: Vec<JobId>,
    },
    /// The session started its jobs again (the TUI's rerun): everything is new.
    Reset {
        tracker: Tracker,
        buffers: Vec<SharedBuffer>,
        max_parallel: usize,
    },
    /// The connection ended; why, for the status line.
    Ended(String),
}

pub struct AddedJob {
    pub name: String,
    pub host: Option<String>,
    pub status: JobStatus,
    pub buffer: SharedBuffer,
}

/// A session as the attached TUI sees it.
pub struct Link {
    /// The session's name and where its jobs came from.
    pub name: String,
    pub origin: String,
    pub max_parallel: usize,
    /// The session keeps its jobs' scrollback (a plain headless run does not: then no
    /// output can be shown).
    pub keeps_output: bool,
    /// The jobs as they are at the snapshot.
    pub tracker: Tracker,
    pub buffers: Vec<SharedBuffer>,
    pub events: Option<mpsc::UnboundedReceiver<Event>>,
    pub news: mpsc::UnboundedReceiver<News>,
    outgoing: mpsc::UnboundedSender<Value>,
    watched: Option<Option<JobId>>,
    tasks: Vec<JoinHandle<()>>,
    /// The ssh that carries the connection, if any (killed when the link goes).
    _ssh: Option<tokio::process::Child>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Link {
    /// A control from a key.
    pub fn control(&self, job: JobId, control: Control) {
        if let Some(message) = protocol::control_message(job, control) {
            let _ = self.outgoing.send(message);
        }
    }

    /// Shows `job`'s output (the selected row's).
    pub fn watch(&mut self, job: Option<JobId>) {
        if self.watched != Some(job) {
            self.watched = Some(job);
            let _ = self.outgoing.send(json!({"cmd": "watch", "job_id": job}));
        }
    }

    /// Leaves the session; its jobs keep running.
    pub fn detach(&self) {
        let _ = self.outgoing.send(json!({"cmd": "detach"}));
    }
}

/// The state the reader task keeps.
struct Mirror {
    clock: Clock,
    buffers: Arc<Mutex<Vec<SharedBuffer>>>,
    scrollback: usize,
    activity: Arc<Notify>,
    events: mpsc::UnboundedSender<Event>,
    news: mpsc::UnboundedSender<News>,
}

fn lock_list(list: &Mutex<Vec<SharedBuffer>>) -> std::sync::MutexGuard<'_, Vec<SharedBuffer>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn new_buffer(scrollback: usize) -> SharedBuffer {
    Arc::new(Mutex::new(OutputBuffer::new(
        scrollback,
        crate::output::DEFAULT_MAX_BUFFER_BYTES,
    )))
}

/// The tracker a snapshot describes, its buffers and its clock.
fn from_snapshot(snapshot: &Value) -> anyhow::Result<(Tracker, Vec<SharedBuffer>, Clock, usize)> {
    let clock = Clock::remote(snapshot["elapsed_us"].as_i64().unwrap_or(0));
    let scrollback = snapshot["scrollback"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(crate::config::DEFAULT_SCROLLBACK)
        .max(1);
    let jobs = snapshot["jobs"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("the session sent no jobs"))?;
    let mut statuses = Vec::with_capacity(jobs.len());
    for job in jobs {
        let status: WireStatus = serde_json::from_value(job["status"].clone())?;
        statuses.push((
            job["name"].as_str().unwrap_or("?").to_string(),
            wire::status_from(&status, &clock),
        ));
    }
    // Known from the start as pending, then given their real statuses as events, so the
    // timeline records the runs in progress.
    let mut tracker = Tracker::new(statuses.iter().map(|(name, status)| {
        (
            name.clone(),
            JobStatus::new(
                JobState::Pending(PendingReason::Manual),
                status.stages.iter().map(|s| s.argv.clone()).collect(),
            ),
        )
    }));
    tracker.started = clock.base();
    let now = Instant::now();
    for (id, ((_, status), job)) in statuses.into_iter().zip(jobs).enumerate() {
        tracker.jobs[id].host = job["host"].as_str().map(str::to_string);
        tracker.apply_at(&Event::Job { id, status }, now);
        let record = &mut tracker.jobs[id];
        if let Ok(sample) = serde_json::from_value::<WireSample>(job["sample"].clone()) {
            record.sample = Some(wire::sample_from(&sample));
        }
        record.peak_rss_bytes = job["peak_rss"].as_u64().unwrap_or(0);
        record.cpu_wait_done =
            std::time::Duration::from_micros(job["cpu_wait_done_us"].as_u64().unwrap_or(0));
        record.run_wait =
            std::time::Duration::from_micros(job["run_wait_us"].as_u64().unwrap_or(0));
    }
    if let Some(cpu) = snapshot["machine"].as_f64() {
        tracker.machine = Some(wire::machine_from(cpu as f32));
    }
    let buffers = (0..tracker.jobs.len())
        .map(|_| new_buffer(scrollback))
        .collect();
    Ok((tracker, buffers, clock, scrollback))
}

/// Connects, attaches and starts following the session. The error is said already; the
/// number is the exit status.
pub async fn open(args: &AttachArgs, activity: Arc<Notify>) -> Result<Link, i32> {
    let (client, ssh) = match &args.ssh {
        Some(dest) => match over_ssh(dest, args.session.as_deref()).await {
            Ok(pair) => pair,
            Err(code) => return Err(code),
        },
        None => {
            let target = Target {
                socket: args.socket.clone(),
                name: args.session.clone(),
            };
            (client::connect(&target).await?, None)
        }
    };
    let name = client.hello["session"].as_str().unwrap_or("?").to_string();
    let origin = client.hello["origin"].as_str().unwrap_or("?").to_string();
    let mut client = client;
    let first = match client.request(&json!({"cmd": "attach"})).await {
        Ok(first) => first,
        Err(err) => {
            crate::say!("{err:#}");
            return Err(EXIT_FAILED);
        }
    };
    if first["ok"] != true {
        crate::say!(
            "{}",
            crate::stdio::visible_inline(first["error"].as_str().unwrap_or("refused"))
        );
        return Err(EXIT_FAILED);
    }
    let (tracker, buffers, clock, scrollback) = match from_snapshot(&first) {
        Ok(parts) => parts,
        Err(err) => {
            crate::say!("the session's snapshot: {err:#}");
            return Err(EXIT_FAILED);
        }
    };
    let max_parallel = first["max_parallel"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let (events_tx, events) = mpsc::unbounded_channel();
    let (news_tx, news) = mpsc::unbounded_channel();
    let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<Value>();
    let (mut reader, mut writer) = client.split();
    let shared = Arc::new(Mutex::new(buffers.clone()));
    let mut mirror = Mirror {
        clock,
        buffers: shared,
        scrollback,
        activity,
        events: events_tx,
        news: news_tx,
    };
    let read_task = tokio::spawn(async move {
        let why = loop {
            match reader.next().await {
                Ok(protocol::Line::Text(line)) => {
                    let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    if let Some(why) = mirror.take(&message) {
                        break why;
                    }
                }
                Ok(protocol::Line::TooLong(_)) => continue,
                Ok(protocol::Line::End) | Err(_) => {
                    break "the connection to the session ended".into();
                }
            }
        };
        let _ = mirror.news.send(News::Ended(why));
    });
    let write_task = tokio::spawn(async move {
        while let Some(message) = outgoing_rx.recv().await {
            if protocol::write_value(&mut writer, &message).await.is_err() {
                return;
            }
        }
    });
    Ok(Link {
        name,
        origin,
        max_parallel,
        keeps_output: first["keeps_output"] != false,
        tracker,
        buffers,
        events: Some(events),
        news,
        outgoing,
        watched: None,
        tasks: vec![read_task, write_task],
        _ssh: ssh,
    })
}

impl Mirror {
    /// Applies one message; Some(why) when the session is gone.
    fn take(&mut self, message: &Value) -> Option<String> {
        let id = || message["id"].as_u64().and_then(|n| usize::try_from(n).ok());
        match message["ev"].as_str() {
            Some("job") => {
                if let (Some(id), Ok(status)) = (
                    id(),
                    serde_json::from_value::<WireStatus>(message["status"].clone()),
                ) {
                    let status = wire::status_from(&status, &self.clock);
                    let _ = self.events.send(Event::Job { id, status });
                }
            }
            Some("sample") => {
                if let (Some(id), Ok(sample)) = (
                    id(),
                    serde_json::from_value::<WireSample>(message["sample"].clone()),
                ) {
                    let sample = wire::sample_from(&sample);
                    let _ = self.events.send(Event::Sample { id, sample });
                }
            }
            Some("machine") => {
                if let Some(cpu) = message["cpu"].as_f64() {
                    let _ = self
                        .events
                        .send(Event::Machine(wire::machine_from(cpu as f32)));
                }
            }
            Some("notice") => {
                if let Ok(notice) = serde_json::from_value::<WireNotice>(message["notice"].clone())
                {
                    let _ = self.events.send(Event::Notice(wire::notice_from(&notice)));
                }
            }
            Some("out") => self.output(message),
            Some("added") => {
                let mut added = Vec::new();
                for job in message["jobs"].as_array().into_iter().flatten() {
                    let Ok(status) = serde_json::from_value::<WireStatus>(job["status"].clone())
                    else {
                        continue;
                    };
                    let buffer = new_buffer(self.scrollback);
                    lock_list(&self.buffers).push(buffer.clone());
                    added.push(AddedJob {
                        name: job["name"].as_str().unwrap_or("?").to_string(),
                        host: job["host"].as_str().map(str::to_string),
                        status: wire::status_from(&status, &self.clock),
                        buffer,
                    });
                }
                let retired = message["removed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|id| id.as_u64().and_then(|n| usize::try_from(n).ok()))
                    .collect();
                let _ = self.news.send(News::Added {
                    jobs: added,
                    retired,
                });
            }
            Some("run") => {
                if let Ok((tracker, buffers, clock, scrollback)) = from_snapshot(message) {
                    self.clock = clock;
                    self.scrollback = scrollback;
                    *lock_list(&self.buffers) = buffers.clone();
                    let _ = self.news.send(News::Reset {
                        tracker,
                        buffers,
                        max_parallel: message["max_parallel"]
                            .as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .unwrap_or(0),
                    });
                }
            }
            Some("end") => return Some("the session ended".into()),
            _ if message["ok"] == false => {
                return Some(
                    message["error"]
                        .as_str()
                        .unwrap_or("the session dropped this client")
                        .to_string(),
                );
            }
            _ => {}
        }
        None
    }

    /// Output of the watched job: chunks that rebuild its buffer here.
    fn output(&mut self, message: &Value) {
        let Some(id) = message["id"].as_u64().and_then(|n| usize::try_from(n).ok()) else {
            return;
        };
        let Some(buffer) = lock_list(&self.buffers).get(id).cloned() else {
            return;
        };
        let now = Instant::now();
        let mut buf = crate::output::lock(&buffer);
        if message["reset"] == true {
            *buf = OutputBuffer::new(self.scrollback, crate::output::DEFAULT_MAX_BUFFER_BYTES);
        }
        for chunk in message["chunks"].as_array().into_iter().flatten() {
            let (Some(stage), Some(stream), Some(text)) =
                (chunk[0].as_u64(), chunk[1].as_str(), chunk[2].as_str())
            else {
                continue;
            };
            let stream = if stream == "stderr" {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            buf.push_chunk(
                usize::try_from(stage).unwrap_or(0),
                stream,
                now,
                text.as_bytes(),
            );
        }
        drop(buf);
        self.activity.notify_one();
    }
}

/// Applies the link's news to the attached TUI's state; returns what to say (for
/// [`News::Ended`], why the link ended).
pub fn absorb(news: News, state: &mut crate::app::state::State) -> Option<String> {
    let said = match news {
        News::Added { jobs, retired } => {
            for job in jobs {
                let tracker = &mut state.model.tracker;
                let id = tracker.push_job(job.name, job.status);
                tracker.jobs[id].host = job.host;
                state.buffers.push(job.buffer);
            }
            for id in retired {
                if let Some(record) = state.model.tracker.jobs.get_mut(id) {
                    record.retired = true;
                }
            }
            None
        }
        News::Reset {
            tracker,
            buffers,
            max_parallel,
        } => {
            state.model.tracker = tracker;
            state.model.max_parallel = max_parallel;
            state.buffers = buffers;
            Some("the session started its jobs again".to_string())
        }
        News::Ended(why) => return Some(why),
    };
    state.model.sync_jobs();
    said
}

/// `forkyard attach`: the TUI on a session elsewhere, through its socket; every key that
/// acts on a job goes there. Quitting detaches and leaves the jobs running. Returns the
/// exit status: 0, or 128 + N after signal N (129 when the terminal went away).
pub fn run(args: AttachArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("forkyard")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::say!("{err}");
            return 1;
        }
    };
    let code = runtime.block_on(async move {
        match run_async(args).await {
            Ok(code) => code,
            Err(err) => {
                crate::say!("{err:#}");
                1
            }
        }
    });
    runtime.shutdown_background();
    code
}

async fn run_async(args: AttachArgs) -> anyhow::Result<i32> {
    let signals = crate::run::Signals::listen().context("cannot listen for signals")?;
    let activity = Arc::new(Notify::new());
    // Connected before the terminal is taken: a missing session is a message, not a flash.
    let link = match open(&args, activity.clone()).await {
        Ok(link) => link,
        Err(code) => return Ok(code),
    };
    let tty = crate::app::input::Tty::open().context("cannot read the terminal")?;
    let (width, height) = tty.size().context("cannot read the terminal's size")?;
    let session =
        crate::app::terminal::enter((width, height)).context("cannot set up the terminal")?;
    let mut shell = crate::app::Shell::attached(
        link,
        activity,
        session,
        tty,
        signals,
        ratatui::layout::Rect::new(0, 0, width, height),
    );
    shell.state.model.theme = crate::ui::theme::Theme::detect();
    shell.run().await;
    shell.screen = None;
    crate::app::terminal::restore();
    shell.finish(None);
    Ok(shell
        .state
        .ended_by
        .map_or(0, |signal| crate::run::exit_code(Some(signal), false)))
}

/// `ssh DEST forkyard ctl --stdio [--name NAME]`, and the session at its other end.
async fn over_ssh(
    dest: &str,
    session: Option<&str>,
) -> Result<(Client, Option<tokio::process::Child>), i32> {
    if let Err(text) = super::remote::check_host(dest) {
        crate::say!("--ssh: {text}");
        return Err(client::EXIT_USAGE);
    }
    let ssh = super::remote::ssh_command();
    let mut remote = vec![super::remote::remote_bin(), "ctl".into(), "--stdio".into()];
    if let Some(name) = session {
        remote.extend(["--name".into(), name.to_string()]);
    }
    let remote: Vec<String> = remote
        .iter()
        .map(|w| super::remote::shell_quote(w))
        .collect();
    let mut command = tokio::process::Command::new(&ssh[0]);
    command
        .args(&ssh[1..])
        .args(["-T", "--", dest])
        .arg(remote.join(" "))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            crate::say!("cannot run {}: {err}", ssh[0]);
            return Err(EXIT_FAILED);
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        crate::say!("cannot talk to {}", ssh[0]);
        return Err(EXIT_FAILED);
    };
    match Client::over(Box::new(stdout), Box::new(stdin)).await {
        Ok(client) => Ok((client, Some(child))),
        Err(ConnectError::NoSession(_)) => {
            // The remote side said why on stderr (it is ours); its status says which.
            let code = match child.wait().await.ok().and_then(|s| s.code()) {
                Some(255) => {
                    crate::say!("ssh to {dest} failed");
                    EXIT_FAILED
                }
                Some(EXIT_NO_SESSION) | None => EXIT_NO_SESSION,
                Some(code) => code,
            };
            Err(code)
        }
        Err(ConnectError::Other(err)) => {
            crate::say!("{err:#}");
            Err(EXIT_FAILED)
        }
    }
}
