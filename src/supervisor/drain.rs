//! Draining a child's pipe into the job's ring buffer (and, headless, a tee).
//!
//! One task per pipe, so a child blocked writing stderr never stalls its stdout. Reads
//! are large (the pipe is enlarged to 1 MiB where allowed) so a flood costs few syscalls.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::unix::pipe;

use tokio::sync::{Notify, mpsc, watch};

use crate::output::{SharedBuffer, Stream};

use super::pty::JobIo;
use super::status::JobId;
use crate::output::emulator::History;

/// A quiet pipe costs no buffer at all; the first read uses this much...
const FIRST_READ_SIZE: usize = 16 * 1024;
/// ...and a pipe that fills it (a flood) moves up to this, with its kernel pipe enlarged.
const READ_SIZE: usize = 256 * 1024;
const PIPE_SIZE: i32 = 1024 * 1024;

/// Raw output forwarded to a consumer that wants every byte (the headless printer).
/// An empty `data` marks the end of that stream.
#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub job: JobId,
    pub stage: usize,
    pub stream: Stream,
    /// When it was read (headless `--timestamps`).
    pub at: Instant,
    pub data: Bytes,
}

/// Gives up on a tee's consumer (see [`OutputTee`]).
pub struct TeeHandle {
    abandoned: Arc<watch::Sender<bool>>,
    undelivered: Arc<AtomicU64>,
}

impl TeeHandle {
    /// Stops delivering: waiting drains go on, and nothing more is queued.
    pub fn abandon(&self) {
        self.abandoned.send_replace(true);
    }

    /// Bytes the drains read but did not deliver (after [`TeeHandle::abandon`]).
    pub fn undelivered_bytes(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }
}

/// Every output chunk for a consumer that wants every byte (the headless printer).
///
/// Bounded: a slow consumer slows the drains, which slows the children (back-pressure)
/// instead of growing memory. A consumer that will never read again (a terminal stopped
/// with ^S, when forkyard has been told twice to stop) is given up with [`abandon`]:
/// the drains then read their pipes to the end without delivering, and count what they
/// did not deliver, so the runs can end.
///
/// [`abandon`]: TeeHandle::abandon
#[derive(Clone)]
pub struct OutputTee {
    sender: mpsc::Sender<OutputChunk>,
    abandoned: Arc<watch::Sender<bool>>,
    undelivered: Arc<AtomicU64>,
}

impl OutputTee {
    /// A tee holding at most `chunks` chunks, and the consumer's end of it.
    pub fn new(chunks: usize) -> (OutputTee, mpsc::Receiver<OutputChunk>) {
        let (sender, receiver) = mpsc::channel(chunks);
        let tee = OutputTee {
            sender,
            abandoned: Arc::new(watch::channel(false).0),
            undelivered: Arc::new(AtomicU64::new(0)),
        };
        (tee, receiver)
    }

    /// A handle to give the consumer up later. It holds no sender: the consumer still
    /// sees the end of the tee once every drain is done.
    pub fn handle(&self) -> TeeHandle {
        TeeHandle {
            abandoned: self.abandoned.clone(),
            undelivered: self.undelivered.clone(),
        }
    }

    /// A place for one chunk; None once abandoned or when the consumer is gone.
    async fn reserve(&self) -> Option<mpsc::Permit<'_, OutputChunk>> {
        if *self.abandoned.borrow() {
            return None;
        }
        let mut abandoned = self.abandoned.subscribe();
        tokio::select! {
            permit = self.sender.reserve() => permit.ok(),
            _ = abandoned.wait_for(|gone| *gone) => None,
        }
    }
}

pub struct DrainTarget {
    pub job: JobId,
    pub buffer: SharedBuffer,
    /// Only count bytes into `buffer` (see [`SupervisorOptions::discard_output`]).
    pub count_only: bool,
    pub tee: Option<OutputTee>,
    pub activity: Option<Arc<Notify>>,
    /// The job's `log` probes read every line here (headless keeps no buffer to search).
    pub log: Option<Arc<super::probe::LogWatch>>,
    /// When the job last wrote anything (for `stall`).
    pub last_output: OutputClock,
    /// The job's input endpoint and terminal (a PTY job, `stdin = "pipe"`).
    pub io: Option<Arc<JobIo>>,
    /// Log files: every chunk, in the buffer's order (see [`crate::logs::Tap`]).
    pub tap: Option<crate::logs::Tap>,
}

/// An instant kept in an atomic, so a drain can set it without a lock on every read.
#[derive(Debug, Default)]
pub struct OutputClock(AtomicU64);

fn clock_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl OutputClock {
    pub fn touch(&self) {
        let nanos = clock_epoch().elapsed().as_nanos() as u64;
        // 0 means never: an instant at the epoch itself reads as 1 ns after it.
        self.0.store(nanos.max(1), Ordering::Relaxed);
    }

    pub fn last(&self) -> Option<Instant> {
        let nanos = self.0.load(Ordering::Relaxed);
        (nanos > 0).then(|| clock_epoch() + std::time::Duration::from_nanos(nanos))
    }
}

impl DrainTarget {
    /// A line of forkyard's own in the job's output (a restart marker), where the job's
    /// lines go: the buffer (unless it only counts) and the tee.
    pub async fn marker(&self, text: &str) {
        if !self.count_only {
            crate::output::lock(&self.buffer).push_line(
                0,
                Stream::Stdout,
                Instant::now(),
                text.as_bytes(),
            );
        }
        if let Some(activity) = &self.activity {
            activity.notify_one();
        }
        // The restart marker is a line of the job's log too.
        if let Some(tap) = &self.tap {
            tap.marker(self.job, text);
        }
        if let Some(tee) = &self.tee {
            let mut data = Vec::with_capacity(text.len() + 1);
            data.extend_from_slice(text.as_bytes());
            data.push(b'\n');
            if let Some(slot) = tee.reserve().await {
                slot.send(OutputChunk {
                    job: self.job,
                    stage: 0,
                    stream: Stream::Stdout,
                    at: Instant::now(),
                    data: Bytes::from(data),
                });
            }
        }
    }
}

/// Reads until EOF; returns the number of bytes read.
pub async fn drain(fd: OwnedFd, stage: usize, stream: Stream, target: Arc<DrainTarget>) -> u64 {
    if let Some(io) = target.io.clone().filter(|io| io.is_pty()) {
        // A PTY job's one output is its terminal's master.
        return drain_pty(fd, stage, io, target).await;
    }
    let mut total = 0u64;
    let reader = match pipe::Receiver::from_owned_fd(fd) {
        Ok(reader) => reader,
        Err(err) => {
            push_notice(
                &target,
                stage,
                stream,
                &format!("[forkyard] cannot read output: {err}"),
            );
            return 0;
        }
    };
    if let Some(tap) = &target.tap {
        tap.open(target.job);
    }
    // Allocated on the first readiness: a thousand sleeping jobs hold no read buffers.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let ready = reader.readable().await;
        // A place in the tee first, then the read: a drain that waits for a slow
        // consumer leaves the data in the pipe (the child blocks: back-pressure) instead
        // of holding a copy of it. Only a pipe with data waits here, so quiet jobs never
        // take places from busy ones.
        let slot = match &target.tee {
            Some(tee) => tee.reserve().await,
            None => None,
        };
        // And room in the log queue (a log behind slows the child the same way).
        let log_room = match &target.tap {
            Some(tap) => tap.reserve(target.job).await,
            None => None,
        };
        if buf.is_empty() {
            buf = vec![0u8; FIRST_READ_SIZE];
        }
        let read = match ready.and_then(|()| reader.try_read(&mut buf)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(err) => {
                push_notice(
                    &target,
                    stage,
                    stream,
                    &format!("[forkyard] read error: {err}"),
                );
                break;
            }
        };
        total += read as u64;
        target.last_output.touch();
        let filled = read == buf.len();
        let chunk = &buf[..read];
        if let Some(log) = &target.log {
            log.feed(stage, stream, chunk);
        }
        {
            let mut buffer = crate::output::lock(&target.buffer);
            if target.count_only {
                buffer.count_only(stream, chunk.len());
            } else {
                buffer.push_chunk(stage, stream, Instant::now(), chunk);
            }
            if let Some(tap) = &target.tap {
                tap.chunk(target.job, stage, stream, chunk, log_room);
            }
        }
        if let Some(activity) = &target.activity {
            activity.notify_one();
        }
        deliver(&target, slot, stage, stream, chunk);
        if filled && buf.len() < READ_SIZE {
            // A flood: larger reads, and a larger pipe so the child blocks less often.
            // Only busy pipes grow: the kernel caps a user's total pipe memory, and a
            // thousand 1 MiB pipes would push every new pipe down to one page. Failure
            // (a lower pipe-max-size) is harmless.
            buf = vec![0u8; READ_SIZE];
            let _ = nix::fcntl::fcntl(
                reader.as_fd(),
                nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE),
            );
        }
    }
    finish(&target, stage, stream).await;
    total
}

/// Reads a PTY master until EIO (no process holds the slave any more). In the TUI the
/// bytes go through the job's terminal emulator: its screen is what the pane draws, and
/// the rows that scroll off its top become lines of the ring buffer. Headless, the bytes
/// go to the tee as a pipe job's stdout does.
async fn drain_pty(fd: OwnedFd, stage: usize, io: Arc<JobIo>, target: Arc<DrainTarget>) -> u64 {
    let stream = Stream::Stdout;
    let mut total = 0u64;
    // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    let reader = match registered {
        Ok(reader) => reader,
        Err(err) => {
            push_notice(
                &target,
                stage,
                stream,
                &format!("[forkyard] cannot read the terminal: {err}"),
            );
            io.detach();
            return 0;
        }
    };
    if let Some(tap) = &target.tap {
        tap.open(target.job);
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut ready = match reader.readable().await {
            Ok(ready) => ready,
            Err(err) => {
                push_notice(
                    &target,
                    stage,
                    stream,
                    &format!("[forkyard] read error: {err}"),
                );
                break;
            }
        };
        let slot = match &target.tee {
            Some(tee) => tee.reserve().await,
            None => None,
        };
        let log_room = match &target.tap {
            Some(tap) => tap.reserve(target.job).await,
            None => None,
        };
        if buf.is_empty() {
            buf = vec![0u8; FIRST_READ_SIZE];
        }
        let read = match super::pty::read_master(reader.get_ref().as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                ready.clear_ready();
                continue;
            }
            Err(err) => {
                push_notice(
                    &target,
                    stage,
                    stream,
                    &format!("[forkyard] read error: {err}"),
                );
                break;
            }
        };
        total += read as u64;
        target.last_output.touch();
        let filled = read == buf.len();
        let chunk = &buf[..read];
        let mut replies = Vec::new();
        match io.terminal() {
            Some(terminal) if !target.count_only => {
                // Terminal, then buffer: the order the UI takes them in too, so a frame
                // never sees a row both on screen and in the scrollback.
                let mut terminal = super::pty::lock(terminal);
                terminal.process(chunk);
                let history = terminal.take_history();
                replies = terminal.take_replies();
                let mut buffer = crate::output::lock(&target.buffer);
                let now = Instant::now();
                let mut counted = 0;
                for item in history {
                    match item {
                        History::Line(line) => {
                            buffer.push_line(stage, stream, now, line.as_bytes())
                        }
                        History::Raw(range) => {
                            // Whole plain lines: stored in one piece (and counted).
                            counted += range.len();
                            buffer.push_chunk(stage, stream, now, &chunk[range]);
                        }
                    }
                }
                buffer.count_only(stream, chunk.len() - counted);
            }
            _ => crate::output::lock(&target.buffer).count_only(stream, chunk.len()),
        }
        // The log keeps the terminal's bytes as the job wrote them (as `script` does).
        if let Some(tap) = &target.tap {
            tap.chunk(target.job, stage, stream, chunk, log_room);
        }
        if !replies.is_empty() {
            let _ = io.send(replies);
        }
        if let Some(activity) = &target.activity {
            activity.notify_one();
        }
        deliver(&target, slot, stage, stream, chunk);
        if filled && buf.len() < READ_SIZE {
            buf = vec![0u8; READ_SIZE];
        }
    }
    io.detach();
    if let Some(terminal) = io.terminal().filter(|_| !target.count_only) {
        // Lines a resize or the last chunk left behind.
        let lines = super::pty::lock(terminal).take_lines();
        let mut buffer = crate::output::lock(&target.buffer);
        for line in lines {
            buffer.push_line(stage, stream, Instant::now(), line.as_bytes());
        }
    }
    finish(&target, stage, stream).await;
    total
}

/// Hands a chunk to the tee through the place reserved for it. No place: the consumer is
/// gone or has given up; the drain goes on so the child never blocks, and what was not
/// delivered is counted.
fn deliver(
    target: &DrainTarget,
    slot: Option<mpsc::Permit<'_, OutputChunk>>,
    stage: usize,
    stream: Stream,
    chunk: &[u8],
) {
    match slot {
        Some(slot) => slot.send(OutputChunk {
            job: target.job,
            stage,
            stream,
            at: Instant::now(),
            data: Bytes::copy_from_slice(chunk),
        }),
        None => {
            if let Some(tee) = &target.tee {
                tee.undelivered
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Flushes the stream's last partial line and tells the tee the stream ended.
async fn finish(target: &DrainTarget, stage: usize, stream: Stream) {
    if let Some(log) = &target.log {
        log.finish(stage, stream);
    }
    crate::output::lock(&target.buffer).finish_stream(stage, stream, Instant::now());
    if let Some(tap) = &target.tap {
        tap.close(target.job, stage, stream);
    }
    if let Some(activity) = &target.activity {
        activity.notify_one();
    }
    if let Some(tee) = &target.tee
        && let Some(slot) = tee.reserve().await
    {
        slot.send(OutputChunk {
            job: target.job,
            stage,
            stream,
            at: Instant::now(),
            data: Bytes::new(),
        });
    }
}

fn push_notice(target: &DrainTarget, stage: usize, stream: Stream, text: &str) {
    crate::output::lock(&target.buffer).push_line(stage, stream, Instant::now(), text.as_bytes());
    if let Some(tap) = &target.tap {
        tap.marker(target.job, text);
    }
}
