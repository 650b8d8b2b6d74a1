//! The server side of the control socket.
//!
//! [`Server`] is what a front end holds: it binds the socket, accepts clients (one task
//! each), and is told by the front end about the run ([`Server::set_run`]) and every
//! event ([`Server::observe`]). From the events it keeps its own tracker, so `status` is
//! answered here, never by the front end. Streaming clients (`events`, `attach`) get
//! their lines through a bounded queue each; when a queue is full the client is dropped
//! (told it lagged, if it reads again), so a slow or dead client costs the front end one
//! failed `try_send`, never a wait. Every write to a client gives up after
//! [`protocol::WRITE_TIMEOUT`].
//!
//! Requests only the supervisor's owner can carry out (`reload`, `shutdown`) reach the
//! front end as [`FrontRequest`]s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::ServeOptions;
use super::protocol::{
    self, Action, ErrorKind, Line, LineReader, MAX_REQUEST_BYTES, Request, error, ok,
};
use super::session::{self, SocketFile};
use super::wire::{self, Clock};
use crate::config::Config;
use crate::output::{SharedBuffer, Stream};
use crate::supervisor::{
    Controller, Event, JobId, JobState, JobStatus, Level, Notice, PendingReason, StopReason,
    Supervisor,
};
use crate::tracker::Tracker;

/// Messages queued for one `events` client before it counts as too slow.
const EVENTS_QUEUE: usize = 4096;
/// For one attached TUI (samples of every job arrive each second).
const ATTACH_QUEUE: usize = 16384;
/// Clients at once; more are refused with an error.
const MAX_CONNECTIONS: usize = 512;
/// Notices remembered, for requests waiting on a job to see why it refused.
const RECENT_NOTICES: usize = 256;
/// How often a follower or an attached TUI looks for new output.
const LOGS_POLL: Duration = Duration::from_millis(100);
const OUTPUT_POLL: Duration = Duration::from_millis(40);
/// Output text sent to an attached TUI in one message, at most.
const OUTPUT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What the front end must do for a client.
#[derive(Debug)]
pub enum FrontRequest {
    /// `reload`: read the config again and apply it; answer with what changed.
    Reload(oneshot::Sender<Result<ReloadOutcome, String>>),
    /// `shutdown` (`forkyard down`): stop every job and end the session, like a quit.
    Quit,
}

/// What a reload did, by job name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadOutcome {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// What was not applied, and why (e.g. a changed `[settings]`).
    pub notes: Vec<String>,
}

/// A job a reload added, as the front end hands it to the server.
pub struct AddedJob {
    pub id: JobId,
    pub name: String,
    pub initial: JobStatus,
    pub buffer: SharedBuffer,
    pub host: Option<String>,
}

/// A run as the server sees it.
pub struct RunView {
    pub tracker: Tracker,
    pub buffers: Vec<SharedBuffer>,
    pub controller: Controller,
    pub max_parallel: usize,
    /// The jobs keep scrollback (the TUI, `up`); a plain headless run only counts bytes.
    pub keeps_output: bool,
    pub scrollback: usize,
    pub hosts: Vec<Option<String>>,
}

impl RunView {
    /// The view of `supervisor`'s run, whose tracker so far is `tracker`.
    pub fn of(
        supervisor: &Supervisor,
        tracker: &Tracker,
        max_parallel: usize,
        keeps_output: bool,
        scrollback: usize,
    ) -> RunView {
        RunView {
            tracker: tracker.clone(),
            buffers: supervisor.jobs().iter().map(|j| j.buffer.clone()).collect(),
            controller: supervisor.controller(),
            max_parallel,
            keeps_output,
            scrollback,
            hosts: supervisor
                .jobs()
                .iter()
                .map(|j| j.spec.host.clone())
                .collect(),
        }
    }
}

/// The control socket of a run.
pub struct Server {
    hub: Arc<Hub>,
    requests: mpsc::UnboundedReceiver<FrontRequest>,
    accept: JoinHandle<()>,
    _file: SocketFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        self.hub.close();
    }
}

impl Server {
    /// [`Server::start`], except that a default socket that cannot be made (no
    /// `XDG_RUNTIME_DIR` folder, a foreign `/tmp/forkyard-UID`) is a warning, returned
    /// for the front end to show, and the run goes on without a socket. A socket asked
    /// for by path or name, or by `up`, is never given up this way.
    pub fn start_or_warn(
        options: &ServeOptions,
        config: &Config,
    ) -> anyhow::Result<(Option<Server>, Option<String>)> {
        match Server::start(options, config) {
            Ok(server) => Ok((server, None)),
            Err(err)
                if options.socket == super::SocketChoice::Default
                    && options.name.is_none()
                    && !options.exclusive =>
            {
                Ok((None, Some(format!("no control socket: {err:#}"))))
            }
            Err(err) => Err(err),
        }
    }

    /// Binds the socket `options` ask for (None: `--no-socket`) and starts accepting.
    /// Needs a tokio runtime.
    pub fn start(options: &ServeOptions, config: &Config) -> anyhow::Result<Option<Server>> {
        let Some(bound) = session::bind(
            &options.socket,
            options.name.as_deref(),
            || session::derive_name(config),
            options.exclusive,
        )?
        else {
            return Ok(None);
        };
        bound.listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(bound.listener)?;
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            name: bound.name,
            path: bound.file.path.clone(),
            origin: config.origin.clone(),
            config_file: options.config_file.clone(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            state: Mutex::new(HubState::default()),
            changed: watch::Sender::new(0),
            ready: watch::Sender::new(false),
            closed: watch::Sender::new(false),
            requests: requests_tx,
            connections: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept(listener, hub.clone()));
        Ok(Some(Server {
            hub,
            requests,
            accept,
            _file: bound.file,
        }))
    }

    pub fn name(&self) -> &str {
        &self.hub.name
    }

    /// Ends the server: streams get their last line (`end`) and every client its
    /// connection closed, waited for up to a second (a client that does not read is not
    /// waited for longer), so a script following `events` sees the session end.
    pub async fn close(self) {
        self.accept.abort();
        self.hub.close();
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.hub.connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn path(&self) -> &Path {
        &self.hub.path
    }

    /// The config file a `reload` reads (None: nothing to read again).
    pub fn config_file(&self) -> Option<&Path> {
        self.hub.config_file.as_deref()
    }

    /// The run to serve (at the start, and after a TUI rerun).
    pub fn set_run(&self, run: RunView) {
        let mut st = self.hub.lock();
        st.generation += 1;
        let n = run.tracker.jobs.len();
        st.run = Some(RunState {
            clock: Clock::at(run.tracker.started),
            removed: vec![false; n],
            stop_reasons: vec![None; n],
            tracker: run.tracker,
            buffers: run.buffers,
            controller: run.controller,
            max_parallel: run.max_parallel,
            keeps_output: run.keeps_output,
            scrollback: run.scrollback,
            hosts: run.hosts,
        });
        if st.has(SubKind::Attach)
            && let Some(snapshot) = st.run.as_ref().map(|run| snapshot(run, "run"))
        {
            st.broadcast(SubKind::Attach, &snapshot);
        }
        drop(st);
        self.hub.ready.send_replace(true);
        self.hub.bump();
    }

    /// Every event the front end receives from the supervisor, in order.
    pub fn observe(&self, event: &Event) {
        let mut st = self.hub.lock();
        let has_events = st.has(SubKind::Events);
        let has_attach = st.has(SubKind::Attach);
        let HubState {
            run,
            notices,
            notice_seq,
            ..
        } = &mut *st;
        let Some(run) = run.as_mut() else {
            return;
        };
        let now = Instant::now();
        run.tracker.apply_at(event, now);
        let mut bump = false;
        let (public, attached) = match event {
            Event::Job { id, status } => {
                bump = true;
                if let JobState::Stopping { reason, .. } = status.state
                    && let Some(slot) = run.stop_reasons.get_mut(*id)
                {
                    *slot = Some((status.runs, reason));
                }
                (
                    has_events.then(|| job_event(run, *id, now)),
                    has_attach.then(|| {
                        json!({"ev": "job", "id": id, "status": wire::status(status, &run.clock)})
                    }),
                )
            }
            Event::Notice(notice) => {
                bump = true;
                *notice_seq += 1;
                notices.push_back((*notice_seq, notice.clone()));
                if notices.len() > RECENT_NOTICES {
                    notices.pop_front();
                }
                (
                    has_events.then(|| notice_event(run, notice)),
                    has_attach.then(|| json!({"ev": "notice", "notice": wire::notice(notice)})),
                )
            }
            Event::Sample { id, sample } => (
                None,
                has_attach
                    .then(|| json!({"ev": "sample", "id": id, "sample": wire::sample(sample)})),
            ),
            Event::Machine(machine) => (
                None,
                has_attach.then(|| json!({"ev": "machine", "cpu": machine.cpu_percent})),
            ),
            Event::Tree(_) => (None, None),
        };
        if let Some(mut line) = public {
            st.event_seq += 1;
            line["seq"] = json!(st.event_seq);
            st.broadcast(SubKind::Events, &line);
        }
        if let Some(line) = attached {
            st.broadcast(SubKind::Attach, &line);
        }
        drop(st);
        if bump {
            self.hub.bump();
        }
    }

    /// The next request only the front end can carry out; pending forever while there
    /// is none.
    pub async fn next_request(&mut self) -> FrontRequest {
        match self.requests.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }

    /// A reload was applied: serve the jobs it added, forget the ones it removed.
    pub fn reloaded(
        &self,
        added: Vec<AddedJob>,
        removed: &[JobId],
        controller: Controller,
        outcome: &ReloadOutcome,
    ) {
        let mut st = self.hub.lock();
        let Some(run) = st.run.as_mut() else {
            return;
        };
        let mut wire_added = Vec::new();
        for job in added {
            let id = run.tracker.push_job(job.name.clone(), job.initial.clone());
            debug_assert_eq!(id, job.id);
            run.tracker.jobs[id].host = job.host.clone();
            run.buffers.push(job.buffer);
            run.hosts.push(job.host.clone());
            run.removed.push(false);
            run.stop_reasons.push(None);
            wire_added.push(json!({
                "id": id, "name": job.name, "host": job.host,
                "status": wire::status(&job.initial, &run.clock),
            }));
        }
        for &id in removed {
            if let Some(flag) = run.removed.get_mut(id) {
                *flag = true;
            }
            if let Some(record) = run.tracker.jobs.get_mut(id) {
                record.retired = true;
            }
        }
        run.controller = controller;
        let public = json!({
            "event": "reload", "added": outcome.added, "removed": outcome.removed,
            "changed": outcome.changed,
        });
        let attached = json!({"ev": "added", "jobs": wire_added, "removed": removed});
        st.event_seq += 1;
        let mut public = public;
        public["seq"] = json!(st.event_seq);
        st.broadcast(SubKind::Events, &public);
        st.broadcast(SubKind::Attach, &attached);
        drop(st);
        self.hub.bump();
    }
}

/// Which stream a subscriber gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubKind {
    Events,
    Attach,
}

struct Subscriber {
    kind: SubKind,
    tx: mpsc::Sender<Arc<[u8]>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct HubState {
    run: Option<RunState>,
    generation: u64,
    subscribers: Vec<Subscriber>,
    notices: VecDeque<(u64, Notice)>,
    notice_seq: u64,
    event_seq: u64,
}

impl HubState {
    fn has(&self, kind: SubKind) -> bool {
        self.subscribers.iter().any(|s| s.kind == kind)
    }

    /// Queues `line` for every subscriber of `kind`; one whose queue is full is dropped
    /// (marked lagged), never waited for.
    fn broadcast(&mut self, kind: SubKind, line: &Value) {
        if !self.has(kind) {
            return;
        }
        let Ok(mut text) = serde_json::to_vec(line) else {
            return;
        };
        text.push(b'\n');
        let text: Arc<[u8]> = text.into();
        self.subscribers.retain(|s| {
            if s.kind != kind {
                return true;
            }
            match s.tx.try_send(text.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.lagged.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    fn subscribe(&mut self, kind: SubKind, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        self.subscribers.push(Subscriber {
            kind,
            tx,
            lagged: lagged.clone(),
        });
        Subscription { rx, lagged }
    }
}

struct Subscription {
    rx: mpsc::Receiver<Arc<[u8]>>,
    lagged: Arc<AtomicBool>,
}

struct RunState {
    tracker: Tracker,
    clock: Clock,
    buffers: Vec<SharedBuffer>,
    controller: Controller,
    max_parallel: usize,
    keeps_output: bool,
    scrollback: usize,
    hosts: Vec<Option<String>>,
    removed: Vec<bool>,
    /// Per job: (run, why) of the last stop seen, so `wait` knows a deadline hit.
    stop_reasons: Vec<Option<(u32, StopReason)>>,
}

impl RunState {
    /// The job called `name` (the newest one, if a reload replaced it).
    fn find(&self, name: &str) -> Option<JobId> {
        (0..self.tracker.jobs.len())
            .rev()
            .find(|&id| !self.removed[id] && self.tracker.jobs[id].name == name)
    }

    fn names(&self) -> String {
        let names: Vec<&str> = (0..self.tracker.jobs.len())
            .filter(|&id| !self.removed[id])
            .map(|id| self.tracker.jobs[id].name.as_str())
            .collect();
        if names.len() > 20 {
            format!("{}, … ({} jobs)", names[..20].join(", "), names.len())
        } else {
            names.join(", ")
        }
    }
}

pub(crate) struct Hub {
    name: String,
    path: PathBuf,
    origin: String,
    config_file: Option<PathBuf>,
    started_unix_ms: u64,
    state: Mutex<HubState>,
    /// Bumped after every status change, notice and reload: requests waiting on a job
    /// look again.
    changed: watch::Sender<u64>,
    /// Set once the first run is served: requests that arrive earlier wait for it
    /// rather than fail with "starting".
    ready: watch::Sender<bool>,
    closed: watch::Sender<bool>,
    requests: mpsc::UnboundedSender<FrontRequest>,
    connections: AtomicUsize,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn close(&self) {
        let mut st = self.lock();
        let end = json!({"event": "end"});
        st.broadcast(SubKind::Events, &end);
        st.broadcast(SubKind::Attach, &json!({"ev": "end"}));
        st.subscribers.clear();
        drop(st);
        self.closed.send_replace(true);
    }

    fn greeting(&self) -> Value {
        json!({
            "forkyard": "control",
            "version": protocol::VERSION,
            "session": self.name,
            "pid": std::process::id(),
            "origin": self.origin,
            "socket": self.path.display().to_string(),
            "started_unix_ms": self.started_unix_ms,
        })
    }
}

/// Resolves once the server is closing.
async fn ended(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}

async fn accept(listener: tokio::net::UnixListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let hub = hub.clone();
                tokio::spawn(async move {
                    let count = hub.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    let _ = connection(&hub, stream, count).await;
                    hub.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Out of descriptors, or a client gone before it was accepted: the listener
            // still works; wait a little rather than spin on EMFILE.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

type Reader = LineReader<BufReader<tokio::net::unix::OwnedReadHalf>>;

/// Whether the connection goes on after a request.
enum Next {
    Continue,
    Close,
}

async fn connection(hub: &Arc<Hub>, stream: UnixStream, count: usize) -> std::io::Result<()> {
    let me = session::my_uid();
    let peer = stream.peer_cred().ok().map(|cred| cred.uid());
    let (read, mut write) = stream.into_split();
    if peer != Some(me) {
        let who = peer.map_or_else(|| "an unknown user".to_string(), |uid| format!("uid {uid}"));
        let text = format!("refused: {who} may not use this session (it belongs to uid {me})");
        return protocol::write_value(&mut write, &error(ErrorKind::Refused, text)).await;
    }
    if count > MAX_CONNECTIONS {
        let text = format!("refused: {MAX_CONNECTIONS} clients are connected already");
        return protocol::write_value(&mut write, &error(ErrorKind::Refused, text)).await;
    }
    protocol::write_value(&mut write, &hub.greeting()).await?;
    let mut reader: Reader = LineReader::new(BufReader::new(read), MAX_REQUEST_BYTES);
    let mut closed = hub.closed.subscribe();
    loop {
        let line = tokio::select! {
            line = reader.next() => line?,
            _ = ended(&mut closed) => return Ok(()),
        };
        let bytes = match line {
            Line::End => return Ok(()),
            Line::TooLong(n) => {
                let text = format!(
                    "request of {n} bytes is longer than the limit of {MAX_REQUEST_BYTES} bytes"
                );
                protocol::write_value(&mut write, &error(ErrorKind::Usage, text)).await?;
                continue;
            }
            Line::Text(bytes) => bytes,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A client that connected as the session starts (`up` returns once the socket
        // is bound) is answered once the jobs exist.
        let mut ready = hub.ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|r| *r) => {}
            _ = ended(&mut closed) => return Ok(()),
        }
        let (request, id) = Request::parse(&bytes);
        let with_id = |mut reply: Value| {
            if let (Some(id), Value::Object(map)) = (&id, &mut reply) {
                map.insert("id".into(), id.clone());
            }
            reply
        };
        let request = match request {
            Ok(request) => request,
            Err(text) => {
                protocol::write_value(&mut write, &with_id(error(ErrorKind::Usage, text))).await?;
                continue;
            }
        };
        if let Request::Status = request {
            protocol::write_raw(&mut write, &status(hub, id.as_ref())).await?;
            continue;
        }
        match serve(hub, request, &mut reader, &mut write, &with_id).await? {
            Next::Continue => {}
            Next::Close => return Ok(()),
        }
    }
}

async fn serve(
    hub: &Arc<Hub>,
    request: Request,
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
    with_id: &(dyn Fn(Value) -> Value + Sync),
) -> std::io::Result<Next> {
    let reply = match request {
        Request::Ping => ok(json!({})),
        Request::Status => {
            protocol::write_raw(write, &status(hub, None)).await?;
            return Ok(Next::Continue);
        }
        Request::Events => return events(hub, reader, write, with_id).await,
        Request::Logs {
            job,
            follow,
            since,
            tail,
        } => return logs(hub, &job, follow, since, tail, reader, write, with_id).await,
        Request::Control { job, action, wait } => control(hub, &job, action, wait, reader).await,
        Request::Wait { job, deadline } => wait(hub, job.as_deref(), deadline, reader).await,
        Request::Reload => reload(hub).await,
        Request::Shutdown => {
            if hub.requests.send(FrontRequest::Quit).is_err() {
                error(ErrorKind::Unavailable, "the session is ending already")
            } else {
                ok(json!({"stopping": true}))
            }
        }
        Request::Attach => return attach(hub, reader, write, with_id).await,
        Request::Watch { .. } | Request::JobControl { .. } | Request::Detach => error(
            ErrorKind::Usage,
            "watch, control and detach are for an attached client (send attach first)",
        ),
    };
    protocol::write_value(write, &with_id(reply)).await?;
    Ok(Next::Continue)
}

/// A job's state in one machine word.
fn state_word(status: &JobStatus) -> &'static str {
    match &status.state {
        JobState::Pending(PendingReason::Manual) => "pending",
        JobState::Pending(PendingReason::Queued) => "queued",
        JobState::Pending(PendingReason::Backoff { .. }) => "backoff",
        JobState::Running => "running",
        JobState::Stopping { .. } => "stopping",
        JobState::Finished(_) => "finished",
    }
}

/// One job as `status`, `events` and control replies describe it.
#[derive(serde::Serialize)]
struct Summary {
    job: String,
    id: JobId,
    /// One word: pending, queued, backoff, running, stopping, finished.
    state: &'static str,
    /// The STATE column's words: `running`, `stopping 2.1s`, `exited 3`.
    text: String,
    result: Option<&'static str>,
    exit_code: Option<i32>,
    signal: Option<&'static str>,
    pid: Option<u32>,
    pgid: Option<u32>,
    runs: u32,
    restarts: u32,
    host: Option<String>,
}

fn summary(run: &RunState, id: JobId, now: Instant) -> Summary {
    let record = &run.tracker.jobs[id];
    let status = &record.status;
    let outcome = status.outcome();
    Summary {
        job: record.name.clone(),
        id,
        state: state_word(status),
        text: crate::fmt::record_state(record, now),
        result: outcome.map(|o| o.kind()),
        exit_code: outcome.and_then(|o| o.exit_code()),
        signal: outcome.and_then(|o| o.signal()).map(|s| s.as_str()),
        pid: status.stages.first().and_then(|s| s.pid),
        pgid: status.pgid,
        runs: status.runs,
        restarts: status.restarts,
        host: run.hosts.get(id).cloned().flatten(),
    }
}

fn job_summary(run: &RunState, id: JobId, now: Instant) -> Value {
    serde_json::to_value(summary(run, id, now)).unwrap_or_default()
}

fn job_event(run: &RunState, id: JobId, now: Instant) -> Value {
    let mut line = job_summary(run, id, now);
    line["event"] = json!("job");
    line
}

fn notice_event(run: &RunState, notice: &Notice) -> Value {
    json!({
        "event": "notice",
        "job": notice.job.and_then(|id| run.tracker.jobs.get(id)).map(|j| j.name.clone()),
        "level": wire::level_name(notice.level),
        "text": notice.text,
    })
}

/// The `status` reply, `{"ok":true,"report":{...},"jobs":[...]}`, encoded straight from
/// the report (a thousand jobs make 300 kB of JSON: no `Value` tree in between). Built
/// under the lock, encoded after it.
fn status(hub: &Hub, id: Option<&Value>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Reply<'a> {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        report: crate::report::Report,
        jobs: Vec<Summary>,
    }
    let (mut report, jobs, removed) = {
        let st = hub.lock();
        let Some(run) = st.run.as_ref() else {
            let mut reply = error(ErrorKind::Unavailable, "the session is starting");
            if let Some(id) = id {
                reply["id"] = id.clone();
            }
            return line(&reply);
        };
        let now = Instant::now();
        let counts: Vec<_> = run.buffers.iter().map(crate::report::counts_of).collect();
        let report = crate::report::build(&run.tracker, &counts, run.max_parallel, now);
        let jobs: Vec<Summary> = (0..run.tracker.jobs.len())
            .filter(|&id| !run.removed[id])
            .map(|id| summary(run, id, now))
            .collect();
        (report, jobs, run.removed.clone())
    };
    let mut index = 0;
    report.jobs.retain(|_| {
        index += 1;
        !removed.get(index - 1).copied().unwrap_or(false)
    });
    let mut text = serde_json::to_vec(&Reply {
        ok: true,
        id,
        report,
        jobs,
    })
    .unwrap_or_default();
    text.push(b'\n');
    text
}

fn line(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec(value).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Waits until `ready` says the answer, looking again after every change, while the
/// client is still there. None: the client went away or the session ends.
async fn until<T>(
    hub: &Hub,
    reader: &mut Reader,
    mut ready: impl FnMut(&HubState) -> Option<T>,
) -> Option<T> {
    let mut changed = hub.changed.subscribe();
    let mut closed = hub.closed.subscribe();
    let mut watching_client = true;
    loop {
        changed.mark_unchanged();
        if let Some(answer) = ready(&hub.lock()) {
            return Some(answer);
        }
        tokio::select! {
            result = changed.changed() => {
                if result.is_err() {
                    return None;
                }
            }
            _ = ended(&mut closed) => return None,
            readable = reader.readable(), if watching_client => match readable {
                // Gone: nobody to answer.
                Ok(false) | Err(_) => return None,
                // It sent its next request already: read later, in order.
                Ok(true) => watching_client = false,
            },
        }
    }
}

async fn control(hub: &Hub, name: &str, action: Action, wait: bool, reader: &mut Reader) -> Value {
    let (id, before, seq0, controller) = {
        let st = hub.lock();
        let Some(run) = st.run.as_ref() else {
            return error(ErrorKind::Unavailable, "the session is starting");
        };
        let Some(id) = run.find(name) else {
            return no_such_job(run, name);
        };
        let status = run.tracker.jobs[id].status.clone();
        let now = Instant::now();
        match action {
            Action::Signal(signal) if !status.is_active() => {
                return error(
                    ErrorKind::Failed,
                    format!("cannot send {} to `{name}`: not running", signal.as_str()),
                );
            }
            // What the state machine refuses, refused here with its words, so the
            // reply does not depend on which comes first, its notice or our look.
            Action::Kill if !status.is_active() => {
                return error(
                    ErrorKind::Failed,
                    format!("cannot kill `{name}`: not running"),
                );
            }
            Action::Stop if status.is_settled() => {
                return error(
                    ErrorKind::Failed,
                    format!("cannot stop `{name}`: not running"),
                );
            }
            Action::Start if status.is_active() => {
                let mut reply = job_summary(run, id, now);
                reply["note"] = json!(format!("{name} is already running"));
                return ok(reply);
            }
            _ => {}
        }
        (id, status, st.notice_seq, run.controller.clone())
    };
    controller.control(id, action.control());
    let settles = matches!(action, Action::Stop | Action::Kill);
    let starts = matches!(action, Action::Start | Action::Restart);
    if !wait || !(settles || starts) {
        let st = hub.lock();
        return match st.run.as_ref() {
            Some(run) => ok(job_summary(run, id, Instant::now())),
            None => ok(json!({})),
        };
    }
    let answer = until(hub, reader, |st| {
        let run = st.run.as_ref()?;
        let status = &run.tracker.jobs.get(id)?.status;
        let mut said = Vec::new();
        for (seq, notice) in &st.notices {
            if *seq <= seq0 || notice.job != Some(id) {
                continue;
            }
            if notice.level != Level::Info && *status == before {
                return Some(error(ErrorKind::Failed, notice.text.clone()));
            }
            said.push(notice.text.clone());
        }
        let queued = JobState::Pending(PendingReason::Queued);
        let done = if settles {
            status.is_settled()
        } else {
            // A new run began, or it waits for a slot under `max_parallel`.
            status.runs > before.runs || (status.state == queued && before.state != queued)
        };
        done.then(|| {
            let mut reply = job_summary(run, id, Instant::now());
            reply["notices"] = json!(said);
            ok(reply)
        })
    })
    .await;
    answer.unwrap_or_else(|| error(ErrorKind::Unavailable, "the session ended first"))
}

fn no_such_job(run: &RunState, name: &str) -> Value {
    error(
        ErrorKind::NoSuchJob,
        format!(
            "no job named {:?} (jobs: {})",
            crate::stdio::visible_inline(name),
            run.names()
        ),
    )
}

async fn wait(
    hub: &Hub,
    name: Option<&str>,
    deadline: Option<Duration>,
    reader: &mut Reader,
) -> Value {
    let ids: Vec<JobId> = {
        let st = hub.lock();
        let Some(run) = st.run.as_ref() else {
            return error(ErrorKind::Unavailable, "the session is starting");
        };
        let ids = match name {
            Some(name) => match run.find(name) {
                Some(id) => vec![id],
                None => return no_such_job(run, name),
            },
            None => (0..run.tracker.jobs.len())
                .filter(|&id| !run.removed[id] && !run.tracker.jobs[id].status.is_settled())
                .collect(),
        };
        if let Some(within) = deadline {
            for &id in &ids {
                if run.tracker.jobs[id].status.is_active() {
                    run.controller
                        .control(id, crate::supervisor::Control::Wait(within));
                }
            }
        }
        ids
    };
    let answer = until(hub, reader, |st| {
        let run = st.run.as_ref()?;
        let all = ids.iter().all(|&id| {
            run.tracker
                .jobs
                .get(id)
                .is_none_or(|j| j.status.is_settled())
        });
        if !all {
            return None;
        }
        let now = Instant::now();
        let mut failed = Vec::new();
        let jobs: Vec<Value> = ids
            .iter()
            .filter(|&&id| id < run.tracker.jobs.len())
            .map(|&id| {
                let record = &run.tracker.jobs[id];
                let status = &record.status;
                let deadline_hit = run.stop_reasons[id]
                    == Some((status.runs, StopReason::WaitDeadline))
                    && status.outcome().is_some();
                let success = status.outcome().is_none_or(|o| o.is_success()) && !deadline_hit;
                if !success {
                    failed.push(format!(
                        "{}: {}{}",
                        record.name,
                        crate::fmt::record_state(record, now),
                        if deadline_hit {
                            " (stopped at the deadline)"
                        } else {
                            ""
                        }
                    ));
                }
                let mut job = job_summary(run, id, now);
                job["deadline_hit"] = json!(deadline_hit);
                job
            })
            .collect();
        Some(if failed.is_empty() {
            ok(json!({"jobs": jobs}))
        } else {
            let mut reply = error(ErrorKind::Failed, failed.join("; "));
            reply["jobs"] = json!(jobs);
            reply
        })
    })
    .await;
    answer.unwrap_or_else(|| error(ErrorKind::Unavailable, "the session ended first"))
}

async fn reload(hub: &Hub) -> Value {
    if hub.config_file.is_none() {
        let why = if hub.origin == crate::config::BUILTIN_DEMO_NAME {
            "the session runs the built-in demo"
        } else {
            "the session's jobs came from the command line"
        };
        return error(
            ErrorKind::Unavailable,
            format!("nothing to reload: {why}, not a config file"),
        );
    }
    let (tx, rx) = oneshot::channel();
    if hub.requests.send(FrontRequest::Reload(tx)).is_err() {
        return error(ErrorKind::Unavailable, "the session is ending");
    }
    match rx.await {
        Ok(Ok(outcome)) => ok(json!(outcome)),
        Ok(Err(text)) => error(ErrorKind::Failed, text),
        Err(_) => error(ErrorKind::Unavailable, "the session is ending"),
    }
}

async fn events(
    hub: &Hub,
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
    with_id: &(dyn Fn(Value) -> Value + Sync),
) -> std::io::Result<Next> {
    // The current state of every job comes first, then every change, in order: taken
    // under one lock, so nothing falls between them.
    let (first, sub) = {
        let mut st = hub.lock();
        let now = Instant::now();
        let mut lines = Vec::new();
        if let Some(run) = st.run.as_ref() {
            for id in (0..run.tracker.jobs.len()).filter(|&id| !run.removed[id]) {
                let mut line = job_event(run, id, now);
                line["initial"] = json!(true);
                lines.push(line);
            }
        }
        (lines, st.subscribe(SubKind::Events, EVENTS_QUEUE))
    };
    protocol::write_value(write, &with_id(ok(json!({"stream": "events"})))).await?;
    let mut text = Vec::new();
    for line in first {
        serde_json::to_writer(&mut text, &line).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    protocol::write_raw(write, &text).await?;
    let Subscription { rx, lagged } = sub;
    pump(rx, &lagged, reader, write).await?;
    Ok(Next::Close)
}

/// Copies a subscription to the client until it ends, the client leaves, or the client
/// lagged (then says so).
async fn pump(
    mut rx: mpsc::Receiver<Arc<[u8]>>,
    lagged: &AtomicBool,
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => protocol::write_raw(write, &line).await?,
                None => {
                    if lagged.load(Ordering::Relaxed) {
                        let text = "dropped: this client read too slowly and missed events; \
                                    connect again";
                        protocol::write_value(write, &error(ErrorKind::Lagged, text)).await?;
                    }
                    return Ok(());
                }
            },
            line = reader.next() => match line? {
                Line::End => return Ok(()),
                // Input on a stream is not requests: read and ignored.
                Line::Text(_) | Line::TooLong(_) => {}
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn logs(
    hub: &Hub,
    name: &str,
    follow: bool,
    since: Option<Duration>,
    tail: Option<usize>,
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
    with_id: &(dyn Fn(Value) -> Value + Sync),
) -> std::io::Result<Next> {
    let found = {
        let st = hub.lock();
        match st.run.as_ref() {
            None => Err(error(ErrorKind::Unavailable, "the session is starting")),
            Some(run) => match run.find(name) {
                None => Err(no_such_job(run, name)),
                Some(_) if !run.keeps_output => Err(error(
                    ErrorKind::Unavailable,
                    "this headless run keeps no scrollback (its output went to its stdout): \
                     a session started with `forkyard up`, or a TUI, keeps it",
                )),
                Some(id) => Ok((run.buffers[id].clone(), run.clock, st.generation)),
            },
        }
    };
    let (buffer, clock, generation) = match found {
        Ok(found) => found,
        Err(reply) => {
            protocol::write_value(write, &with_id(reply)).await?;
            return Ok(Next::Continue);
        }
    };
    let now = Instant::now();
    let after = since.and_then(|s| now.checked_sub(s));
    let (lines, mut next, dropped) = {
        let buf = crate::output::lock(&buffer);
        let skip = tail.map_or(0, |n| buf.len().saturating_sub(n));
        let lines: Vec<LogLine> = buf
            .iter()
            .skip(skip)
            .filter(|l| after.is_none_or(|a| l.at >= a))
            .map(LogLine::of)
            .collect();
        (lines, buf.total_lines(), buf.dropped())
    };
    protocol::write_value(
        write,
        &with_id(ok(json!({"stream": "logs", "job": name, "follow": follow}))),
    )
    .await?;
    write_lines(write, &lines, &clock).await?;
    if !follow {
        protocol::write_value(write, &json!({"end": true, "dropped": dropped})).await?;
        return Ok(Next::Continue);
    }
    let mut closed = hub.closed.subscribe();
    let mut poll = tokio::time::interval(LOGS_POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = ended(&mut closed) => {
                protocol::write_value(write, &json!({"end": true, "reason": "the session ended"})).await?;
                return Ok(Next::Close);
            }
            line = reader.next() => match line? {
                Line::End => return Ok(Next::Close),
                Line::Text(_) | Line::TooLong(_) => {}
            },
        }
        if hub.lock().generation != generation {
            protocol::write_value(
                write,
                &json!({"end": true, "reason": "the run was started again"}),
            )
            .await?;
            return Ok(Next::Close);
        }
        let (lines, skipped) = {
            let buf = crate::output::lock(&buffer);
            let first = buf.first_seq();
            let skipped = first.saturating_sub(next);
            let from = next.max(first);
            let lines: Vec<LogLine> = buf
                .iter()
                .skip(usize::try_from(from - first).unwrap_or(usize::MAX))
                .map(LogLine::of)
                .collect();
            next = buf.total_lines();
            (lines, skipped)
        };
        if skipped > 0 {
            protocol::write_value(write, &json!({"skipped": skipped})).await?;
        }
        write_lines(write, &lines, &clock).await?;
    }
}

/// A line copied out of a buffer (the lock is not held while it is encoded and sent).
struct LogLine {
    seq: u64,
    stage: usize,
    stream: Stream,
    at: Instant,
    text: Vec<u8>,
}

impl LogLine {
    fn of(line: crate::output::LineRef<'_>) -> LogLine {
        LogLine {
            seq: line.seq,
            stage: line.stage,
            stream: line.stream,
            at: line.at,
            text: line.text.to_vec(),
        }
    }
}

async fn write_lines(
    write: &mut OwnedWriteHalf,
    lines: &[LogLine],
    clock: &Clock,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    for line in lines {
        let value = json!({
            "seq": line.seq,
            "stage": line.stage + 1,
            "stream": stream_name(line.stream),
            "t_ms": clock.encode(line.at) / 1000,
            "text": String::from_utf8_lossy(&line.text),
        });
        serde_json::to_writer(&mut out, &value).map_err(std::io::Error::other)?;
        out.push(b'\n');
        if out.len() >= 256 * 1024 {
            protocol::write_raw(write, &out).await?;
            out.clear();
        }
    }
    if !out.is_empty() {
        protocol::write_raw(write, &out).await?;
    }
    Ok(())
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

/// Everything an attached TUI needs to draw the session as it is now.
fn snapshot(run: &RunState, ev: &str) -> Value {
    let jobs: Vec<Value> = run
        .tracker
        .jobs
        .iter()
        .enumerate()
        .map(|(id, record)| {
            json!({
                "id": id,
                "name": record.name,
                "host": run.hosts.get(id).cloned().flatten(),
                "removed": run.removed[id],
                "status": wire::status(&record.status, &run.clock),
                "sample": record.sample.as_ref().map(wire::sample),
                "peak_rss": record.peak_rss_bytes,
                "cpu_wait_done_us": record.cpu_wait_done.as_micros() as u64,
                "run_wait_us": record.run_wait.as_micros() as u64,
            })
        })
        .collect();
    json!({
        "ev": ev,
        "elapsed_us": run.clock.encode(Instant::now()),
        "max_parallel": run.max_parallel,
        "scrollback": run.scrollback,
        "keeps_output": run.keeps_output,
        "machine": run.tracker.machine.map(|m| m.cpu_percent),
        "jobs": jobs,
    })
}

/// What an attached client watches: one job's output, sent as the chunks that rebuild
/// the same lines (and the same unfinished last lines) in the client's buffer.
struct Watch {
    job: JobId,
    buffer: SharedBuffer,
    generation: u64,
    next_seq: u64,
    /// Unfinished lines as last sent, per (stage, stream).
    partials: Vec<((usize, Stream), Vec<u8>)>,
    reset: bool,
}

impl Watch {
    /// The next message for the client, if anything changed.
    fn collect(&mut self) -> Option<Value> {
        let buf = crate::output::lock(&self.buffer);
        let first = buf.first_seq();
        let total = buf.total_lines();
        // Lines went by unsent (the client could not keep up with the ring): start over
        // from what the buffer holds, so the unfinished lines cannot be mixed up.
        if !self.reset && first > self.next_seq && !self.partials.is_empty() {
            self.reset = true;
        }
        let reset = self.reset;
        if reset {
            self.partials.clear();
        }
        let from = if reset {
            first
        } else {
            self.next_seq.max(first)
        };
        let mut chunks: Vec<(usize, Stream, Vec<u8>)> = Vec::new();
        let mut bytes = 0usize;
        let mut next = total;
        let push =
            |chunks: &mut Vec<(usize, Stream, Vec<u8>)>, key: (usize, Stream), text: &[u8]| {
                match chunks.last_mut() {
                    Some((stage, stream, body)) if (*stage, *stream) == key => {
                        body.extend_from_slice(text);
                    }
                    _ => chunks.push((key.0, key.1, text.to_vec())),
                }
            };
        for line in buf
            .iter()
            .skip(usize::try_from(from - first).unwrap_or(usize::MAX))
        {
            if bytes >= OUTPUT_BATCH_BYTES {
                next = line.seq;
                break;
            }
            let key = (line.stage, line.stream);
            let mut text = line.text;
            if let Some(at) = self.partials.iter().position(|(k, _)| *k == key) {
                let (_, sent) = self.partials.swap_remove(at);
                if text.starts_with(&sent) {
                    text = &text[sent.len()..];
                }
            }
            bytes += text.len() + 1;
            push(&mut chunks, key, text);
            push(&mut chunks, key, b"\n");
        }
        if next == total {
            for (stage, stream, partial) in buf.partials() {
                let key = (stage, stream);
                let sent_len = match self.partials.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, sent)) if partial.starts_with(sent) => {
                        let len = sent.len();
                        *sent = partial.to_vec();
                        len
                    }
                    Some((_, sent)) => {
                        *sent = partial.to_vec();
                        0
                    }
                    None => {
                        self.partials.push((key, partial.to_vec()));
                        0
                    }
                };
                if partial.len() > sent_len {
                    push(&mut chunks, key, &partial[sent_len..]);
                }
            }
        }
        drop(buf);
        self.next_seq = next;
        self.reset = false;
        if chunks.is_empty() && !reset {
            return None;
        }
        let chunks: Vec<Value> = chunks
            .iter()
            .map(|(stage, stream, text)| {
                json!([stage, stream_name(*stream), String::from_utf8_lossy(text)])
            })
            .collect();
        Some(json!({"ev": "out", "id": self.job, "reset": reset, "chunks": chunks}))
    }
}

async fn attach(
    hub: &Hub,
    reader: &mut Reader,
    write: &mut OwnedWriteHalf,
    with_id: &(dyn Fn(Value) -> Value + Sync),
) -> std::io::Result<Next> {
    let started = {
        let mut st = hub.lock();
        match st.run.as_ref() {
            Some(run) => {
                let mut first = snapshot(run, "snapshot");
                first["ok"] = json!(true);
                first["stream"] = json!("attach");
                first["session"] = hub.greeting();
                Some((first, st.subscribe(SubKind::Attach, ATTACH_QUEUE)))
            }
            None => None,
        }
    };
    let Some((first, sub)) = started else {
        let reply = error(ErrorKind::Unavailable, "the session is starting");
        protocol::write_value(write, &with_id(reply)).await?;
        return Ok(Next::Continue);
    };
    protocol::write_value(write, &with_id(first)).await?;
    let Subscription { mut rx, lagged } = sub;
    let mut closed = hub.closed.subscribe();
    let mut watch: Option<Watch> = None;
    let mut poll = tokio::time::interval(OUTPUT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => protocol::write_raw(write, &line).await?,
                None => {
                    if lagged.load(Ordering::Relaxed) {
                        let text = "dropped: this client read too slowly; attach again";
                        protocol::write_value(write, &error(ErrorKind::Lagged, text)).await?;
                    }
                    return Ok(Next::Close);
                }
            },
            line = reader.next() => {
                let bytes = match line? {
                    Line::End => return Ok(Next::Close),
                    Line::TooLong(_) => continue,
                    Line::Text(bytes) => bytes,
                };
                match Request::parse(&bytes).0 {
                    Ok(Request::Watch { job }) => {
                        let st = hub.lock();
                        watch = match (job, st.run.as_ref()) {
                            (Some(job), Some(run)) if job < run.buffers.len() && run.keeps_output => {
                                Some(Watch {
                                    job,
                                    buffer: run.buffers[job].clone(),
                                    generation: st.generation,
                                    next_seq: 0,
                                    partials: Vec::new(),
                                    reset: true,
                                })
                            }
                            _ => None,
                        };
                    }
                    Ok(Request::JobControl { job, control }) => {
                        let st = hub.lock();
                        if let Some(run) = st.run.as_ref()
                            && job < run.tracker.jobs.len()
                        {
                            run.controller.control(job, control);
                        }
                    }
                    Ok(Request::Detach) => return Ok(Next::Close),
                    // Anything else while attached gets an error and changes nothing.
                    Ok(_) => {
                        let text = "attached: only watch, control and detach are accepted";
                        protocol::write_value(write, &error(ErrorKind::Usage, text)).await?;
                    }
                    Err(text) => {
                        protocol::write_value(write, &error(ErrorKind::Usage, text)).await?;
                    }
                }
            }
            _ = poll.tick(), if watch.is_some() => {
                let generation = hub.lock().generation;
                let message = match watch.as_mut() {
                    Some(w) if w.generation == generation => w.collect(),
                    _ => {
                        watch = None;
                        None
                    }
                };
                if let Some(message) = message {
                    protocol::write_value(write, &message).await?;
                }
            }
            _ = ended(&mut closed) => {
                protocol::write_value(write, &json!({"ev": "end"})).await?;
                return Ok(Next::Close);
            }
        }
    }
}
