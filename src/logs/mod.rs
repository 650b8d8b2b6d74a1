//! Log files: every job's output written to a file of its own as it arrives.
//!
//! The drains hand each chunk to a [`Tap`] (the same place they put it into the job's
//! ring buffer, under the same lock, so a log interleaves stdout and stderr exactly as
//! the TUI shows them). The tap copies the chunk into a queue and returns: it never
//! waits. One writer thread of its own ([`writer`]) takes the queue, splits the chunks
//! into lines, formats them ([`format`]) and writes and rotates the files, so a slow
//! disk never blocks a child, a drain or the UI.
//!
//! When the disk cannot keep up, what the queue holds is bounded: at most
//! [`QUEUE_BYTES`] in all and [`JOB_QUEUE_BYTES`] per job wait for the writer. A chunk
//! that does not fit is dropped and counted (bytes and lines); the count is written into
//! that job's log where the chunk would have been (`# 1.2 MiB (12,345 lines) of output
//! are missing here: the disk did not keep up`), said once at the time (stderr
//! headless, the status bar in the TUI) and again when forkyard ends. A write that fails
//! (a full file system, an I/O error) loses what it held the same way: counted, said,
//! and noted in the log as soon as writing works again. Nothing is lost silently.
//!
//! Every file is opened (and its folder created) before any job starts, so a folder
//! that cannot be written is an error at start ([`LogError`], exit status 2), not a
//! surprise later.

pub mod clock;
pub mod format;
mod writer;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use memchr::memchr_iter;

use crate::config::{CommandSpec, Config, LogFormat, LogTarget};
use crate::output::Stream;
use crate::supervisor::{Event, JobId, JobState};

/// Most bytes of output waiting for the writer, all jobs together.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes of one job's output waiting for the writer.
pub const JOB_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// Why the logs cannot be written: found before any job starts.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot create the log folder {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the log of job `{job}` to {}: {source}", path.display())]
    File {
        job: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("jobs `{first}` and `{second}` would both log to {}", path.display())]
    Shared {
        first: String,
        second: String,
        path: PathBuf,
    },
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
}

/// What one job's log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLog {
    pub name: String,
    pub path: PathBuf,
    /// Its records carry stage tags.
    pub pipeline: bool,
    /// The command, for the run markers.
    pub command: String,
}

/// Which jobs log where, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlan {
    /// Per job id: its log, if it has one.
    pub jobs: Vec<Option<JobLog>>,
    pub format: LogFormat,
    pub max_size: Option<u64>,
    pub keep: u32,
}

impl LogPlan {
    /// The config's logs: `dir` (`--log-dir`) replaces `settings.log_dir`, `format`
    /// (`--log-format`) `settings.log_format`.
    pub fn new(config: &Config, dir: Option<&Path>, format: Option<LogFormat>) -> LogPlan {
        let dir = dir.or(config.settings.log_dir.as_deref());
        let jobs = config
            .jobs
            .iter()
            .map(|job| {
                let path = match (&job.log, dir) {
                    (LogTarget::Off, _) | (LogTarget::Default, None) => return None,
                    (LogTarget::File(path), _) => path.clone(),
                    (LogTarget::Default, Some(dir)) => dir.join(format!("{}.log", job.name)),
                };
                Some(JobLog {
                    name: job.name.clone(),
                    path,
                    pipeline: matches!(job.command, CommandSpec::Pipeline(_)),
                    command: job.command.display(),
                })
            })
            .collect();
        LogPlan {
            jobs,
            format: format.unwrap_or(config.settings.log_format),
            max_size: config.settings.log_max_size,
            keep: config.settings.log_keep,
        }
    }

    /// No job logs anything.
    pub fn is_empty(&self) -> bool {
        self.jobs.iter().all(Option::is_none)
    }
}

/// A problem worth telling the user about while the run goes on (a full disk, output
/// dropped): stderr headless, the status bar in the TUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub job: Option<JobId>,
    pub text: String,
}

/// Where [`Problem`]s go; called from the writer thread and from drains (it must not
/// block).
pub type Reporter = Arc<dyn Fn(Problem) + Send + Sync>;

/// Problems kept for a front end that shows them itself (the TUI's status bar): the
/// reporter queues them and wakes whoever waits in [`ProblemQueue::ready`].
#[derive(Clone, Default)]
pub struct ProblemQueue {
    inner: Arc<(Mutex<Vec<Problem>>, tokio::sync::Notify)>,
}

impl std::fmt::Debug for ProblemQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProblemQueue").finish_non_exhaustive()
    }
}

impl ProblemQueue {
    pub fn reporter(&self) -> Reporter {
        let queue = self.clone();
        Arc::new(move |problem| {
            queue.lock().push(problem);
            queue.inner.1.notify_one();
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Problem>> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every problem queued so far.
    pub fn take(&self) -> Vec<Problem> {
        std::mem::take(&mut *self.lock())
    }

    /// Returns once a problem was queued since the last call (at once if one was).
    pub async fn ready(&self) {
        self.inner.1.notified().await;
    }
}

/// How one job's log fared, when the writer has finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    pub name: String,
    pub path: PathBuf,
    /// Bytes written to the log files (records, not only the job's text).
    pub written: u64,
    /// Output dropped because the writer was too far behind: bytes and lines.
    pub dropped_bytes: u64,
    pub dropped_lines: u64,
    /// Log text that a failed write lost, and the first error.
    pub lost_bytes: u64,
    pub error: Option<String>,
}

impl LogReport {
    /// Everything the job wrote is in its log.
    pub fn complete(&self) -> bool {
        self.dropped_bytes == 0 && self.lost_bytes == 0
    }

    /// What went wrong, in a sentence (None when the log is complete).
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.dropped_bytes > 0 {
            parts.push(format!(
                "{} ({} lines) of output dropped because the disk did not keep up",
                crate::fmt::bytes(self.dropped_bytes),
                self.dropped_lines
            ));
        }
        if self.lost_bytes > 0 {
            parts.push(format!(
                "{} of log text not written ({})",
                crate::fmt::bytes(self.lost_bytes),
                self.error.as_deref().unwrap_or("write error")
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "log {} of `{}` is incomplete: {}",
                self.path.display(),
                self.name,
                parts.join("; ")
            )
        })
    }
}

/// One message from the taps (and the front end) to the writer.
enum Msg {
    /// A drain of the job opened (the first one after all closed starts a run).
    Open { job: JobId },
    Chunk {
        job: JobId,
        stage: usize,
        stream: Stream,
        at: Instant,
        data: Vec<u8>,
    },
    /// A drain reached end-of-file.
    Close {
        job: JobId,
        stage: usize,
        stream: Stream,
        at: Instant,
    },
    /// A line of forkyard's own (`#`).
    Note {
        job: JobId,
        at: Instant,
        text: String,
    },
    /// Output dropped (not queued) before the next chunk.
    Gap {
        job: JobId,
        at: Instant,
        bytes: u64,
        lines: u64,
    },
    /// Flush everything and end; the reports go back through the sender.
    Finish,
}

/// Per job state shared by the taps and the writer.
#[derive(Default)]
struct JobShared {
    enabled: bool,
    /// Bytes queued or reserved for this job.
    queued: AtomicUsize,
    /// Dropped since the last accepted chunk (a gap note is due).
    gap_bytes: AtomicU64,
    gap_lines: AtomicU64,
    dropped_bytes: AtomicU64,
    dropped_lines: AtomicU64,
    warned: AtomicBool,
}

struct Shared {
    /// To the writer; once it has finished, sending fails (and a chunk is counted).
    sender: mpsc::Sender<Msg>,
    /// Bytes queued or reserved, all jobs.
    queued: AtomicUsize,
    jobs: Vec<JobShared>,
    names: Vec<String>,
    reporter: Reporter,
    /// The writer took a chunk (room was made).
    freed: tokio::sync::Notify,
    /// Milliseconds after `epoch` when the writer last took a chunk.
    progress: AtomicU64,
    epoch: Instant,
    /// The writer made no room for [`PATIENCE`]: drains stop waiting (chunks that do
    /// not fit are dropped) until the queue has drained to half.
    stalled: AtomicBool,
}

impl Shared {
    fn send(&self, msg: Msg) -> bool {
        self.sender.send(msg).is_ok()
    }

    fn job(&self, job: JobId) -> Option<&JobShared> {
        self.jobs.get(job).filter(|j| j.enabled)
    }

    /// Takes `len` bytes of room for `state`, or none (never more than the bounds).
    fn take_room(&self, state: &JobShared, len: usize) -> bool {
        if state.queued.fetch_add(len, Ordering::AcqRel) + len > JOB_QUEUE_BYTES {
            state.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            state.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn give_room(&self, state: &JobShared, len: usize) {
        state.queued.fetch_sub(len, Ordering::AcqRel);
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// The writer wrote something, or took a chunk.
    fn progressed(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress.store(ms, Ordering::Relaxed);
    }

    /// The writer took `len` bytes of `job` off the queue.
    fn taken(&self, job: JobId, len: usize) {
        if let Some(state) = self.jobs.get(job) {
            self.give_room(state, len);
        }
        self.progressed();
        if self.stalled.load(Ordering::Relaxed)
            && self.queued.load(Ordering::Relaxed) <= QUEUE_BYTES / 2
        {
            self.stalled.store(false, Ordering::Relaxed);
        }
        self.freed.notify_waiters();
    }

    /// The writer took a chunk within the last [`PATIENCE`].
    fn progressing(&self) -> bool {
        let last = Duration::from_millis(self.progress.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last) < PATIENCE
    }
}

/// How long a drain waits for room in the queue while the writer makes none, before
/// the log is taken as stalled and chunks that do not fit are dropped.
pub const PATIENCE: Duration = Duration::from_secs(1);
/// How long forkyard's end waits for a writer that makes no progress.
pub const FINISH_PATIENCE: Duration = Duration::from_secs(5);
/// Room a drain takes before a read: its largest read.
const READ_ROOM: usize = 256 * 1024;

/// Room in the log queue for one read, taken before the read (see [`Tap::reserve`]);
/// given back when dropped unused.
pub struct Room {
    shared: Arc<Shared>,
    job: JobId,
    len: usize,
}

impl Drop for Room {
    fn drop(&mut self) {
        if self.len > 0
            && let Some(state) = self.shared.jobs.get(self.job)
        {
            self.shared.give_room(state, self.len);
            self.shared.freed.notify_waiters();
        }
    }
}

/// The drains' end of the logs. Cheap to clone.
#[derive(Clone)]
pub struct Tap {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").finish_non_exhaustive()
    }
}

impl Tap {
    /// A drain of `job` starts reading a pipe.
    pub fn open(&self, job: JobId) {
        if self.shared.job(job).is_some() {
            self.shared.send(Msg::Open { job });
        }
    }

    /// Room for the next read of a pipe of `job`, waited for before the read, so a log
    /// behind slows the child (its pipe fills) instead of growing memory. Waits while
    /// the writer makes room; if it makes none for [`PATIENCE`] (a disk that stopped),
    /// or the log is stalled already, returns None: the chunk is then kept only if it
    /// fits at once ([`Tap::chunk`]). None also when `job` has no log.
    pub async fn reserve(&self, job: JobId) -> Option<Room> {
        let state = self.shared.job(job)?;
        let room = |len| Room {
            shared: self.shared.clone(),
            job,
            len,
        };
        loop {
            if self.shared.take_room(state, READ_ROOM) {
                return Some(room(READ_ROOM));
            }
            if self.shared.stalled.load(Ordering::Relaxed) {
                return None;
            }
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.shared.take_room(state, READ_ROOM) {
                return Some(room(READ_ROOM));
            }
            if tokio::time::timeout(PATIENCE, freed).await.is_err() && !self.shared.progressing() {
                if !self.shared.stalled.swap(true, Ordering::Relaxed) {
                    (self.shared.reporter)(Problem {
                        job: None,
                        text: format!(
                            "the log files have taken nothing for {}: output that does not \
                             fit in the queue is dropped, counted and noted in the logs",
                            crate::fmt::duration(PATIENCE)
                        ),
                    });
                }
                return None;
            }
        }
    }

    /// A chunk `job`'s `stage` wrote on `stream`, as it was read, with the room taken
    /// for it. Never waits: call it where the chunk enters the job's buffer, under its
    /// lock, so the log's order is the buffer's. Without room (or more data than it),
    /// the chunk is queued if it fits at once, else dropped and counted.
    pub fn chunk(&self, job: JobId, stage: usize, stream: Stream, data: &[u8], room: Option<Room>) {
        let Some(state) = self.shared.job(job) else {
            return;
        };
        let len = data.len();
        // The room becomes the chunk's place in the queue.
        let mut held = room.map_or(0, |mut r| std::mem::take(&mut r.len));
        if held > len {
            self.shared.give_room(state, held - len);
            held = len;
        }
        if held < len && !self.shared.take_room(state, len - held) {
            if held > 0 {
                self.shared.give_room(state, held);
            }
            self.drop_chunk(job, state, data);
            return;
        }
        let at = Instant::now();
        let gap_bytes = state.gap_bytes.swap(0, Ordering::Relaxed);
        let gap_lines = state.gap_lines.swap(0, Ordering::Relaxed);
        if gap_bytes > 0 {
            self.shared.send(Msg::Gap {
                job,
                at,
                bytes: gap_bytes,
                lines: gap_lines,
            });
        }
        let sent = self.shared.send(Msg::Chunk {
            job,
            stage,
            stream,
            at,
            data: data.to_vec(),
        });
        if !sent {
            // The writer is gone (forkyard is ending): counted like a drop.
            self.shared.give_room(state, len);
            self.drop_chunk(job, state, data);
        }
    }

    fn drop_chunk(&self, job: JobId, state: &JobShared, data: &[u8]) {
        let lines = memchr_iter(b'\n', data).count() as u64;
        let bytes = data.len() as u64;
        state.gap_bytes.fetch_add(bytes, Ordering::Relaxed);
        state.gap_lines.fetch_add(lines, Ordering::Relaxed);
        state.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
        state.dropped_lines.fetch_add(lines, Ordering::Relaxed);
        if !state.warned.swap(true, Ordering::Relaxed) {
            let name = self.shared.names.get(job).map_or("?", String::as_str);
            (self.shared.reporter)(Problem {
                job: Some(job),
                text: format!(
                    "the log of `{name}` is behind: its output that does not fit in the \
                     queue is dropped, counted and noted in the log"
                ),
            });
        }
    }

    /// A drain of `job` reached end-of-file on `stage`'s `stream`.
    pub fn close(&self, job: JobId, stage: usize, stream: Stream) {
        if self.shared.job(job).is_some() {
            self.shared.send(Msg::Close {
                job,
                stage,
                stream,
                at: Instant::now(),
            });
        }
    }

    /// A line of forkyard's own in `job`'s log (`#`): a restart marker, a notice.
    pub fn marker(&self, job: JobId, text: &str) {
        if self.shared.job(job).is_some() {
            self.shared.send(Msg::Note {
                job,
                at: Instant::now(),
                text: text.to_string(),
            });
        }
    }
}

/// The open logs: the taps' writer, and what the front ends ask of it.
#[derive(Clone)]
pub struct Logs {
    shared: Arc<Shared>,
    paths: Arc<Vec<Option<PathBuf>>>,
    /// The writer's reports, sent as it ends.
    done: Arc<Mutex<Option<mpsc::Receiver<Vec<LogReport>>>>>,
    /// Per job: `ended_at` of the last finished run noted (events repeat a status).
    noted: Arc<Mutex<Vec<Option<Instant>>>>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Logs {
    /// Creates the folders and opens (appends to) every job's file, then starts the
    /// writer. Fails before anything runs when a file cannot be written.
    pub fn open(plan: LogPlan, reporter: Reporter) -> Result<Logs, LogError> {
        let mut files: Vec<Option<(File, u64)>> = Vec::with_capacity(plan.jobs.len());
        let mut seen: HashMap<PathBuf, String> = HashMap::new();
        for log in &plan.jobs {
            let Some(log) = log else {
                files.push(None);
                continue;
            };
            let key = normal(&log.path);
            if let Some(first) = seen.insert(key, log.name.clone()) {
                return Err(LogError::Shared {
                    first,
                    second: log.name.clone(),
                    path: log.path.clone(),
                });
            }
            if let Some(dir) = log.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| LogError::Folder {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log.path)
                .map_err(|source| LogError::File {
                    job: log.name.clone(),
                    path: log.path.clone(),
                    source,
                })?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(Some((file, size)));
        }
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            sender,
            queued: AtomicUsize::new(0),
            jobs: plan
                .jobs
                .iter()
                .map(|log| JobShared {
                    enabled: log.is_some(),
                    ..JobShared::default()
                })
                .collect(),
            names: plan
                .jobs
                .iter()
                .map(|log| log.as_ref().map(|l| l.name.clone()).unwrap_or_default())
                .collect(),
            reporter,
            freed: tokio::sync::Notify::new(),
            progress: AtomicU64::new(0),
            epoch: Instant::now(),
            stalled: AtomicBool::new(false),
        });
        let paths = plan
            .jobs
            .iter()
            .map(|log| log.as_ref().map(|l| l.path.clone()))
            .collect();
        let noted = vec![None; plan.jobs.len()];
        let writer = writer::Writer::new(plan, files, shared.clone());
        let (done_tx, done) = mpsc::channel();
        // Not joined: a writer stuck in a write to a disk that stopped must not keep
        // forkyard from exiting (see `finish`).
        std::thread::Builder::new()
            .name("forkyard-logs".into())
            .spawn(move || {
                let reports = writer.run(receiver);
                let _ = done_tx.send(reports);
            })
            .map_err(LogError::Thread)?;
        Ok(Logs {
            shared,
            paths: Arc::new(paths),
            done: Arc::new(Mutex::new(Some(done))),
            noted: Arc::new(Mutex::new(noted)),
        })
    }

    /// The taps' handle, for [`crate::supervisor::SupervisorOptions::log_tap`].
    pub fn tap(&self) -> Tap {
        Tap {
            shared: self.shared.clone(),
        }
    }

    /// Where `job` logs, if it does.
    pub fn path(&self, job: JobId) -> Option<&Path> {
        self.paths.get(job).and_then(|p| p.as_deref())
    }

    /// A supervisor event, for the log's own lines: how each run ended, and notices
    /// about a job (signals sent, timeouts).
    pub fn event(&self, event: &Event) {
        let tap = self.tap();
        match event {
            Event::Job { id, status } => {
                let JobState::Finished(outcome) = &status.state else {
                    return;
                };
                let mut noted = self
                    .noted
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let Some(last) = noted.get_mut(*id) else {
                    return;
                };
                if *last == status.ended_at {
                    return;
                }
                *last = status.ended_at;
                let elapsed = status
                    .started_at
                    .zip(status.ended_at)
                    .map(|(s, e)| format!(" after {}", crate::fmt::duration(e - s)))
                    .unwrap_or_default();
                let then = if status.restart_pending {
                    "; it will be restarted"
                } else {
                    ""
                };
                tap.marker(
                    *id,
                    &format!("ended: {}{elapsed}{then}", outcome.describe()),
                );
            }
            Event::Notice(notice) => {
                if let Some(id) = notice.job {
                    tap.marker(id, &crate::stdio::visible_inline(&notice.text));
                }
            }
            Event::Sample { .. } | Event::Machine(_) | Event::Tree(_) => {}
        }
    }

    /// Writes out everything queued, ends the writer and says how each log fared. Call
    /// once every job is over; later calls return nothing. Waits as long as the writer
    /// makes progress; a writer that took nothing for [`FINISH_PATIENCE`] (a disk that
    /// stopped) is given up on, and the error says how much was still queued.
    pub fn finish(&self) -> Result<Vec<LogReport>, String> {
        self.shared.send(Msg::Finish);
        let Some(done) = self
            .done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return Ok(Vec::new());
        };
        // The writer drops its receiver as it returns: a later chunk fails to send and is
        // counted as dropped.
        let mut seen = self.shared.progress.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            match done.recv_timeout(Duration::from_millis(100)) {
                Ok(reports) => return Ok(reports),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(Vec::new()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let progress = self.shared.progress.load(Ordering::Relaxed);
                    if progress != seen {
                        seen = progress;
                        since = Instant::now();
                    } else if since.elapsed() >= FINISH_PATIENCE {
                        return Err(format!(
                            "the log files took nothing for {}: {} of output still queued \
                             for them is not written",
                            crate::fmt::duration(FINISH_PATIENCE),
                            crate::fmt::bytes(self.shared.queued.load(Ordering::Relaxed) as u64)
                        ));
                    }
                }
            }
        }
    }
}

/// A path compared for sameness: made absolute against the current folder, `.` dropped.
fn normal(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    absolute
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}
