//! Readiness and liveness probes: `log` (a line of the job's output matches a regex),
//! `tcp` (a connection is accepted), `http` (a GET answers with the expected status) and
//! `exec` (a program exits 0).
//!
//! One task per run with probes follows the schedule (`initial_delay`, `interval`,
//! `timeout`, `retries`, `failures`) and reports to the job's task through a channel,
//! which decides what a result means ([`super::job::state::on_probe_failure`]).
//!
//! - `log` probes read lines in the drains themselves ([`LogWatch`], called from
//!   [`super::drain`]): headless keeps no scrollback, so the buffer cannot be searched.
//! - `http` is a minimal HTTP/1.1 GET over tokio's TCP: forkyard only needs the status
//!   line, and speaks plain HTTP (no TLS). A client crate (hyper, reqwest) would add
//!   dozens of crates for that one line.
//! - `exec` probes are started through the reaper's registration, like job stages (the
//!   forkyard binary reaps every child, so `Child::wait` would race it), in their own
//!   process group, which is killed at the timeout and once the probe has exited, so
//!   nothing it started is left behind.

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use crate::config::{Check, HttpTarget, JobSpec, ProbeSpec};
use crate::output::{MAX_LINE_BYTES, Stream};

use super::job::state::ProbeFailure;
use super::reaper::Reaper;

/// What a job's probe task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The `ready` probe passed.
    Ready,
    /// One check failed (the job goes on; shown as its latest probe failure).
    Failed(String),
    /// A check passed after failures.
    Passed,
    /// The probe gave up: the job is not ready, or not alive.
    GaveUp(ProbeFailure, String),
}

/// Matches the job's output lines against its `log` probes' regexes, fed by the drains.
/// Costs nothing while disarmed (between runs, and once a readiness line was seen when
/// no liveness probe reads the log).
pub struct LogWatch {
    ready: Option<Regex>,
    alive: Option<Regex>,
    armed: AtomicBool,
    want_ready: AtomicBool,
    /// A partial line per (stage, stream).
    partial: Mutex<HashMap<(usize, Stream), Vec<u8>>>,
    ready_hits: watch::Sender<u64>,
    alive_hits: watch::Sender<u64>,
}

impl LogWatch {
    /// A watch for the job's `log` probes, if it has any (their regexes were checked by
    /// the config).
    pub fn for_job(spec: &JobSpec) -> Option<Arc<LogWatch>> {
        let pattern = |probe: &Option<ProbeSpec>| match probe.as_ref().map(|p| &p.check) {
            Some(Check::Log(pattern)) => Regex::new(pattern).ok(),
            _ => None,
        };
        let ready = pattern(&spec.ready);
        let alive = pattern(&spec.alive);
        if ready.is_none() && alive.is_none() {
            return None;
        }
        Some(Arc::new(LogWatch {
            ready,
            alive,
            armed: AtomicBool::new(false),
            want_ready: AtomicBool::new(false),
            partial: Mutex::new(HashMap::new()),
            ready_hits: watch::channel(0).0,
            alive_hits: watch::channel(0).0,
        }))
    }

    /// A run starts: match its lines from the first one.
    pub fn arm(&self) {
        lock(&self.partial).clear();
        // Counts are per run: a readiness probe waits for the first hit of its run.
        self.ready_hits.send_replace(0);
        self.alive_hits.send_replace(0);
        self.want_ready
            .store(self.ready.is_some(), Ordering::Relaxed);
        self.armed.store(true, Ordering::Release);
    }

    /// The run is over.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
        lock(&self.partial).clear();
    }

    /// The job is ready: readiness lines are no longer looked for.
    fn ready_seen(&self) {
        self.want_ready.store(false, Ordering::Relaxed);
        if self.alive.is_none() {
            self.disarm();
        }
    }

    /// A chunk a drain read.
    pub fn feed(&self, stage: usize, stream: Stream, chunk: &[u8]) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        let mut partial = lock(&self.partial);
        let pending = partial.entry((stage, stream)).or_default();
        let mut rest = chunk;
        while let Some(at) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(at);
            rest = &tail[1..];
            if pending.is_empty() {
                self.line(line);
            } else {
                pending.extend_from_slice(line);
                let whole = std::mem::take(pending);
                self.line(&whole);
            }
        }
        pending.extend_from_slice(rest);
        if pending.len() >= MAX_LINE_BYTES {
            // The output buffer splits lines here too.
            let whole = std::mem::take(pending);
            self.line(&whole);
        }
    }

    /// The stream ended: its last line may have had no newline.
    pub fn finish(&self, stage: usize, stream: Stream) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        let last = lock(&self.partial).remove(&(stage, stream));
        if let Some(line) = last.filter(|l| !l.is_empty()) {
            self.line(&line);
        }
    }

    fn line(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // What a terminal would show: colours and other escape sequences do not count.
        let text = crate::output::sanitize::plain_text_full(line);
        if self.want_ready.load(Ordering::Relaxed)
            && self.ready.as_ref().is_some_and(|r| r.is_match(&text))
        {
            self.ready_hits.send_modify(|n| *n += 1);
        }
        if self.alive.as_ref().is_some_and(|r| r.is_match(&text)) {
            self.alive_hits.send_modify(|n| *n += 1);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything a run's probes need.
pub struct ProbeRun {
    pub name: String,
    pub ready: Option<ProbeSpec>,
    pub alive: Option<ProbeSpec>,
    pub log: Option<Arc<LogWatch>>,
    pub reaper: Reaper,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Liveness checks tick on multiples of their interval after this instant (the
    /// supervisor's start), so the checks of many jobs wake the process together.
    pub grid: Instant,
}

impl ProbeRun {
    /// Starts the probes of a run that has any; the task ends with the probes (or is
    /// aborted with the run).
    pub fn spawn(
        self,
    ) -> (
        tokio::task::JoinHandle<()>,
        mpsc::UnboundedReceiver<ProbeEvent>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(self.run(tx));
        (handle, rx)
    }

    async fn run(self, tx: mpsc::UnboundedSender<ProbeEvent>) {
        if let Some(ready) = &self.ready {
            match self.readiness(ready, &tx).await {
                Ok(()) => {
                    let _ = tx.send(ProbeEvent::Ready);
                }
                Err(reason) => {
                    let _ = tx.send(ProbeEvent::GaveUp(ProbeFailure::NotReady, reason));
                    return;
                }
            }
        }
        if let Some(alive) = &self.alive {
            let reason = self.liveness(alive, &tx).await;
            let _ = tx.send(ProbeEvent::GaveUp(ProbeFailure::NotAlive, reason));
        }
    }

    /// Until the `ready` probe passes (Ok) or gives up (Err: why).
    async fn readiness(
        &self,
        probe: &ProbeSpec,
        tx: &mpsc::UnboundedSender<ProbeEvent>,
    ) -> Result<(), String> {
        if let Check::Log(pattern) = &probe.check {
            let Some(log) = &self.log else {
                return Err("no log watch".into());
            };
            let mut hits = log.ready_hits.subscribe();
            let seen = async {
                // Counts only go up; any hit since the run was armed is this run's.
                while *hits.borrow_and_update() == 0 {
                    if hits.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            let result = match probe.timeout {
                Some(limit) => tokio::time::timeout(limit, seen).await.map_err(|_| {
                    format!(
                        "no line matched /{pattern}/ within {}",
                        humantime::format_duration(limit)
                    )
                }),
                None => {
                    seen.await;
                    Ok(())
                }
            };
            log.ready_seen();
            return result;
        }
        tokio::time::sleep(probe.initial_delay).await;
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            match self.check(probe).await {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    failures += 1;
                    if probe.retries.is_some_and(|retries| failures >= retries) {
                        return Err(format!(
                            "not ready after {failures} check{}: {reason}",
                            if failures == 1 { "" } else { "s" }
                        ));
                    }
                    let _ = tx.send(ProbeEvent::Failed(reason));
                }
            }
            sleep_until((started + probe.interval).into()).await;
        }
    }

    /// Until the `alive` probe fails `failures` times in a row; returns why.
    async fn liveness(&self, probe: &ProbeSpec, tx: &mpsc::UnboundedSender<ProbeEvent>) -> String {
        tokio::time::sleep(probe.initial_delay).await;
        let mut in_a_row = 0u32;
        let mut hits = self.log.as_ref().map(|log| log.alive_hits.subscribe());
        let mut last_hits = hits.as_mut().map_or(0, |h| *h.borrow_and_update());
        let mut next = next_tick(self.grid, probe.interval, Instant::now());
        loop {
            let result = if let (Check::Log(pattern), Some(hits)) = (&probe.check, hits.as_mut()) {
                // A matching line at least once per interval.
                sleep_until((Instant::now() + probe.interval).into()).await;
                let now_hits = *hits.borrow_and_update();
                let seen = now_hits > last_hits;
                last_hits = now_hits;
                if seen {
                    Ok(())
                } else {
                    Err(format!(
                        "no line matched /{pattern}/ in {}",
                        humantime::format_duration(probe.interval)
                    ))
                }
            } else {
                sleep_until(next.into()).await;
                let result = self.check(probe).await;
                next = next_tick(self.grid, probe.interval, Instant::now());
                result
            };
            match result {
                Ok(()) => {
                    if in_a_row > 0 {
                        let _ = tx.send(ProbeEvent::Passed);
                    }
                    in_a_row = 0;
                }
                Err(reason) => {
                    in_a_row += 1;
                    if in_a_row >= probe.failures {
                        return format!(
                            "not alive: {reason} ({in_a_row} check{} in a row)",
                            if in_a_row == 1 { "" } else { "s" }
                        );
                    }
                    let _ = tx.send(ProbeEvent::Failed(reason));
                }
            }
        }
    }

    /// One check (not `log`), bounded by its timeout.
    async fn check(&self, probe: &ProbeSpec) -> Result<(), String> {
        let limit = probe.timeout.unwrap_or(Duration::from_secs(1));
        let result = match &probe.check {
            Check::Tcp(address) => tokio::time::timeout(limit, tcp(address)).await,
            Check::Http { target, status } => {
                tokio::time::timeout(limit, http(target, *status)).await
            }
            Check::Exec(argv) => Ok(self.exec(argv, limit).await),
            Check::Log(_) => Ok(Ok(())),
        };
        // Described only when it failed: a passing check allocates nothing.
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(format!("{}: {reason}", probe.check.describe())),
            Err(_) => Err(format!(
                "{}: no answer within {}",
                probe.check.describe(),
                humantime::format_duration(limit)
            )),
        }
    }

    async fn exec(&self, argv: &[String], limit: Duration) -> Result<(), String> {
        // Found before the spawn: a failed `exec` makes `Command::spawn` wait for the
        // child itself, which races the reaper of a process that owns all its children.
        let program = super::spawn::program_path(&argv[0], self.env.get("PATH"));
        let found = if argv[0].contains('/') {
            let path = match &self.cwd {
                Some(cwd) if !program.is_absolute() => cwd.join(&program),
                _ => program.clone(),
            };
            path.is_file()
        } else {
            !super::spawn::is_missing(&argv[0], &program, self.env.get("PATH"))
        };
        if !found {
            return Err(format!("command not found: {}", argv[0]));
        }
        let mut command = Command::new(&program);
        command.arg0(&argv[0]);
        command
            .args(&argv[1..])
            .envs(&self.env)
            .env("FORKYARD_JOB", &self.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let in_flight = self.reaper.begin_spawn();
        let mut child = command.spawn().map_err(|err| match err.kind() {
            ErrorKind::NotFound => format!("command not found: {}", argv[0]),
            _ => plain_error(&err),
        })?;
        let pid = child.id();
        let exit = in_flight.register(pid);
        drop(in_flight);
        // From here the group is ours to kill and release, however this ends.
        let group = ProbeGroup {
            pgid: pid,
            reaper: self.reaper.clone(),
        };
        let stderr: Option<OwnedFd> = child.stderr.take().map(Into::into);
        // `child` is dropped without waiting: the reaper owns the pid.
        drop(child);
        let tail = tokio::spawn(read_tail(stderr));
        match tokio::time::timeout(limit, exit).await {
            Ok(Ok(info)) => {
                drop(group);
                let said = tail.await.unwrap_or_default();
                match info.how {
                    super::reaper::ExitHow::Code(0) => Ok(()),
                    super::reaper::ExitHow::Code(code) if said.is_empty() => {
                        Err(format!("exit {code}"))
                    }
                    super::reaper::ExitHow::Code(code) => Err(format!("exit {code}: {said}")),
                    super::reaper::ExitHow::Signal(signal) => {
                        Err(format!("killed by {}", signal.as_str()))
                    }
                }
            }
            Ok(Err(_)) => Err("lost track of the probe process".into()),
            Err(_) => {
                drop(group);
                tail.abort();
                Err(format!(
                    "did not exit within {} (killed)",
                    humantime::format_duration(limit)
                ))
            }
        }
    }
}

/// The process group of an exec probe: SIGKILL to whatever is left in it, once the probe
/// is done with (exited, timed out, or its run ended).
struct ProbeGroup {
    pgid: u32,
    reaper: Reaper,
}

impl Drop for ProbeGroup {
    fn drop(&mut self) {
        // While the group has members its id cannot be reused, so this only reaches
        // the probe's own processes.
        let _ = super::signals::signal_group(self.pgid, nix::sys::signal::Signal::SIGKILL);
        self.reaper.release_group(self.pgid);
    }
}

/// The last line of what an exec probe wrote to stderr (at most 4 KiB is kept; the rest
/// is read and dropped so the probe never blocks on a full pipe).
async fn read_tail(fd: Option<OwnedFd>) -> String {
    let Some(fd) = fd else {
        return String::new();
    };
    let Ok(mut reader) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 4096 {
                    let cut = kept.len() - 4096;
                    kept.drain(..cut);
                }
            }
        }
    }
    let text = crate::output::sanitize::plain_text_full(&kept);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().chars().take(200).collect()
}

/// The first instant on `grid + k * interval` after `now`.
fn next_tick(grid: Instant, interval: Duration, now: Instant) -> Instant {
    let since = now.saturating_duration_since(grid).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = since / step + 1;
    let offset = u64::try_from(k.saturating_mul(step)).unwrap_or(u64::MAX);
    grid + Duration::from_nanos(offset)
}

/// How long a loopback connection may take before the check waits for it through the
/// runtime instead (see [`tcp`]).
const LOOPBACK_WAIT: Duration = Duration::from_millis(2);

async fn tcp(address: &str) -> Result<(), String> {
    // An address written as an IP literal needs no lookup.
    let literal = address.parse::<std::net::SocketAddr>().ok();
    if let Some(addr) = literal.filter(|a| a.ip().is_loopback()) {
        // On loopback the handshake is over (or refused) within microseconds: wait for it
        // in place, briefly, rather than through the runtime's poller (a registration,
        // a wakeup and a deregistration per check). Anything slower goes the async way.
        match std::net::TcpStream::connect_timeout(&addr, LOOPBACK_WAIT) {
            Ok(stream) => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return Ok(());
            }
            Err(err) if err.kind() != ErrorKind::TimedOut => return Err(plain_error(&err)),
            Err(_) => {}
        }
    }
    let connected = match literal {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect(address).await,
    };
    let stream = connected.map_err(|err| plain_error(&err))?;
    // Closed with a reset rather than a FIN exchange: nothing was sent, so nothing is
    // lost, and on loopback the kernel work of the close (done in forkyard's syscalls,
    // both sides of it) is most of what a probe costs. No TIME_WAIT socket is left either.
    let _ = stream.set_zero_linger();
    drop(stream);
    Ok(())
}

/// `GET path HTTP/1.1`, then the status line of the answer.
async fn http(target: &HttpTarget, want: Option<u16>) -> Result<(), String> {
    let mut stream = TcpStream::connect(&target.address)
        .await
        .map_err(|err| plain_error(&err))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: forkyard\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| plain_error(&err))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let line_end = loop {
        if let Some(at) = memchr::memchr(b'\n', &head) {
            break at;
        }
        if head.len() > 8192 {
            return Err("the answer's first line is longer than 8 KiB".into());
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|err| plain_error(&err))?;
        if n == 0 {
            return Err(if head.is_empty() {
                "the connection closed without an answer".into()
            } else {
                "the connection closed in the middle of the status line".into()
            });
        }
        head.extend_from_slice(&buf[..n]);
    };
    let line = String::from_utf8_lossy(&head[..line_end]);
    let status = parse_status_line(line.trim_end()).ok_or_else(|| {
        format!(
            "not an HTTP/1.x answer: {:?}",
            line.trim_end().chars().take(80).collect::<String>()
        )
    })?;
    let ok = match want {
        Some(want) => status == want,
        None => (200..400).contains(&status),
    };
    if ok {
        Ok(())
    } else {
        Err(match want {
            Some(want) => format!("status {status} (expected {want})"),
            None => format!("status {status} (expected 2xx or 3xx)"),
        })
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    code.parse::<u16>().ok().filter(|c| (100..=599).contains(c))
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn plain_error(err: &std::io::Error) -> String {
    let text = match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        _ => err.to_string(),
    };
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line("HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.1 2000 x"), None);
        assert_eq!(parse_status_line("HTTP/2 200"), None);
    }

    #[test]
    fn ticks_follow_the_grid() {
        let grid = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_tick(grid, s, grid), grid + s);
        assert_eq!(next_tick(grid, s, grid + s / 2), grid + s);
        assert_eq!(next_tick(grid, s, grid + s), grid + 2 * s);
    }

    #[test]
    fn log_lines_are_matched_across_chunks_and_without_escapes() {
        let mut spec = JobSpec::new("x", crate::config::CommandSpec::Argv(vec!["true".into()]));
        spec.ready = Some(ProbeSpec {
            check: Check::Log("^listening on [0-9]+$".into()),
            interval: Duration::from_secs(1),
            timeout: None,
            initial_delay: Duration::ZERO,
            retries: None,
            failures: 3,
        });
        let watch = LogWatch::for_job(&spec).expect("a log probe");
        watch.feed(0, Stream::Stdout, b"not yet\n");
        assert_eq!(*watch.ready_hits.borrow(), 0, "disarmed");
        watch.arm();
        watch.feed(0, Stream::Stdout, b"starting\n\x1b[32mlisten");
        watch.feed(0, Stream::Stderr, b"listening on 1\n");
        assert_eq!(*watch.ready_hits.borrow(), 1);
        watch.feed(0, Stream::Stdout, b"ing on 80\x1b[0m\r\n");
        assert_eq!(*watch.ready_hits.borrow(), 2);
        watch.feed(0, Stream::Stdout, b"listening on 9");
        watch.finish(0, Stream::Stdout);
        assert_eq!(*watch.ready_hits.borrow(), 3);
        watch.ready_seen();
        watch.feed(0, Stream::Stdout, b"listening on 1\n");
        assert_eq!(*watch.ready_hits.borrow(), 3, "no longer looked for");
    }
}
