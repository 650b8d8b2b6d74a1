//! Shared helpers for the integration tests: configs from TOML text, a supervisor
//! harness that applies events and waits on conditions with deadlines, unique process
//! markers counted with `pgrep`, and a capturing writer for the headless runner.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

pub mod tmux;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forkyard::config::Config;
use forkyard::output::{SharedBuffer, Stream};
use forkyard::supervisor::{
    Control, Controller, Event, JobId, JobState, JobStatus, Notice, Outcome, Supervisor,
    SupervisorOptions,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// Generous bound for anything that should take well under a second on an idle machine:
/// other engineers build on the same two cores while the tests run.
pub const SLOW: Duration = Duration::from_secs(20);

/// Parses a config as if it were `<dir>/test.toml` (relative paths resolve against `dir`).
pub fn config_in(dir: &Path, toml: &str) -> Config {
    forkyard::config::parse(toml, "test.toml", Some(dir))
        .unwrap_or_else(|err| panic!("test config does not parse: {err}\n{toml}"))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("forkyard-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// A `sleep` argument unique to this test process and `tag` (0..100), e.g. `907.0012345`:
/// the sleep lasts far longer than any test, and `pgrep -f` on [`sleep_pattern`] finds
/// exactly the `sleep` processes carrying it, even when another engineer runs the same
/// suite at the same time.
pub fn sleep_arg(tag: u32) -> String {
    assert!(tag < 100, "tag {tag} out of range");
    format!("{}.{:07}", 900 + tag, std::process::id())
}

/// Regex matching the full command line `sleep <arg>` (not a shell mentioning it).
pub fn sleep_pattern(arg: &str) -> String {
    format!("^sleep {}$", arg.replace('.', "\\."))
}

/// Number of live processes whose command line matches `pattern` (`pgrep -f`).
pub fn pgrep_count(pattern: &str) -> usize {
    let output = Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async version of [`wait_until`] for use inside the tokio tests.
pub async fn wait_until_async(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Process group of a live process, from /proc/<pid>/stat (None once it is reaped).
pub fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// One event as the harness saw it, with its arrival time.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub event: Event,
}

/// A running supervisor plus the latest status of every job, kept up to date by applying
/// events in order while waiting.
pub struct Harness {
    supervisor: Option<Supervisor>,
    events: UnboundedReceiver<Event>,
    pub controller: Controller,
    pub names: Vec<String>,
    pub status: Vec<JobStatus>,
    pub buffers: Vec<SharedBuffer>,
    /// Every event received so far (samples included), in order.
    pub log: Vec<Seen>,
}

impl Harness {
    /// Starts a supervisor for `config` (must run inside a tokio runtime).
    pub fn start(config: &Config) -> Harness {
        Self::start_with(config, SupervisorOptions::default())
    }

    pub fn start_with(config: &Config, options: SupervisorOptions) -> Harness {
        let (supervisor, events) = Supervisor::start(config, options).expect("start supervisor");
        let names = supervisor
            .jobs()
            .iter()
            .map(|j| j.spec.name.clone())
            .collect();
        let status = supervisor
            .jobs()
            .iter()
            .map(|j| j.initial.clone())
            .collect();
        let buffers = supervisor.jobs().iter().map(|j| j.buffer.clone()).collect();
        Harness {
            controller: supervisor.controller(),
            supervisor: Some(supervisor),
            events,
            names,
            status,
            buffers,
            log: Vec::new(),
        }
    }

    pub fn id(&self, name: &str) -> JobId {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no job {name:?} in {:?}", self.names))
    }

    pub fn status(&self, name: &str) -> &JobStatus {
        &self.status[self.id(name)]
    }

    pub fn control(&self, name: &str, control: Control) {
        self.controller.control(self.id(name), control);
    }

    fn apply(&mut self, event: Event) {
        if let Event::Job { id, status } = &event {
            self.status[*id] = status.clone();
        }
        self.log.push(Seen {
            at: Instant::now(),
            event,
        });
    }

    /// Applies one event that has already arrived, if any.
    pub fn try_next_event(&mut self) -> Option<Event> {
        let event = self.events.try_recv().ok()?;
        self.apply(event.clone());
        Some(event)
    }

    /// When the supervisor started (the sampler's tick grid starts here).
    pub fn started_at(&self) -> Instant {
        self.supervisor
            .as_ref()
            .map_or_else(Instant::now, Supervisor::started_at)
    }

    /// Receives and applies one event; None at the deadline (or if the channel closed).
    pub async fn next_event(&mut self, deadline: Instant) -> Option<Event> {
        let event = tokio::time::timeout_at(deadline.into(), self.events.recv())
            .await
            .ok()??;
        self.apply(event.clone());
        Some(event)
    }

    /// Applies events until `condition` holds for the job (checked first on the current
    /// status); panics naming `what` and the last status after `timeout`.
    pub async fn wait_job(
        &mut self,
        name: &str,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&JobStatus) -> bool,
    ) -> JobStatus {
        let id = self.id(name);
        let deadline = Instant::now() + timeout;
        loop {
            if condition(&self.status[id]) {
                return self.status[id].clone();
            }
            if self.next_event(deadline).await.is_none() {
                panic!(
                    "{name}: timed out after {timeout:?} waiting for {what}; last status: {:#?}",
                    self.status[id]
                );
            }
        }
    }

    /// Waits until the job is running (its pids and group are known).
    pub async fn wait_running(&mut self, name: &str) -> JobStatus {
        self.wait_job(name, SLOW, "running", |s| {
            matches!(s.state, JobState::Running)
        })
        .await
    }

    /// Waits until the job's current run finished; returns its outcome.
    pub async fn wait_finished(&mut self, name: &str, timeout: Duration) -> Outcome {
        let status = self
            .wait_job(name, timeout, "the job to finish", |s| {
                matches!(s.state, JobState::Finished(_))
            })
            .await;
        status.outcome().cloned().expect("finished")
    }

    /// Waits for a notice about `name` containing `text`; returns it.
    pub async fn wait_notice(&mut self, name: &str, timeout: Duration, text: &str) -> String {
        let id = self.id(name);
        let found = |log: &[Seen]| {
            log.iter().find_map(|seen| match &seen.event {
                Event::Notice(Notice {
                    job: Some(i),
                    text: t,
                    ..
                }) if *i == id && t.contains(text) => Some(t.clone()),
                _ => None,
            })
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(notice) = found(&self.log) {
                return notice;
            }
            if self.next_event(deadline).await.is_none() {
                panic!(
                    "{name}: no notice containing {text:?} within {timeout:?}; notices: {:#?}",
                    self.notices()
                );
            }
        }
    }

    /// Proves the job is idle (finished for good, not waiting to restart): an idle job
    /// answers a signal control with a "not running" notice; one in restart backoff
    /// ignores it and one that restarted would report the signal as sent.
    pub async fn assert_idle(&mut self, name: &str) {
        let before = self.log.len();
        self.control(name, Control::Signal(nix::sys::signal::Signal::SIGCONT));
        let id = self.id(name);
        let deadline = Instant::now() + SLOW;
        loop {
            let reply = self
                .log
                .iter()
                .skip(before)
                .find_map(|seen| match &seen.event {
                    Event::Notice(Notice {
                        job: Some(i), text, ..
                    }) if *i == id => Some(text.clone()),
                    _ => None,
                });
            if let Some(text) = reply {
                assert!(
                    text.contains("not running"),
                    "{name} should be idle, but answered: {text}"
                );
                return;
            }
            if self.next_event(deadline).await.is_none() {
                panic!(
                    "{name}: no answer to a probe; status: {:#?}",
                    self.status(name)
                );
            }
        }
    }

    pub fn notices(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|seen| match &seen.event {
                Event::Notice(notice) => Some(notice.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every full status the job reported, in order.
    pub fn history(&self, name: &str) -> Vec<JobStatus> {
        let id = self.id(name);
        self.log
            .iter()
            .filter_map(|seen| match &seen.event {
                Event::Job { id: i, status } if *i == id => Some(status.clone()),
                _ => None,
            })
            .collect()
    }

    /// The retained output lines of a job: (stage, stream, text).
    pub fn lines(&self, name: &str) -> Vec<(usize, Stream, Vec<u8>)> {
        let buffer = forkyard::output::lock(&self.buffers[self.id(name)]);
        buffer
            .iter()
            .map(|line| (line.stage, line.stream, line.text.to_vec()))
            .collect()
    }

    /// Text of the retained lines of one stream (all stages).
    pub fn text_lines(&self, name: &str, stream: Stream) -> Vec<String> {
        self.lines(name)
            .into_iter()
            .filter(|(_, s, _)| *s == stream)
            .map(|(_, _, text)| String::from_utf8_lossy(&text).into_owned())
            .collect()
    }

    /// Stops everything and reaps it all (bounded, so a hang fails the test).
    pub async fn shutdown(mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            let done = tokio::time::timeout(Duration::from_secs(30), supervisor.shutdown()).await;
            assert!(done.is_ok(), "supervisor shutdown hung for 30 s");
        }
    }
}

impl Drop for Harness {
    /// A failed test must not leave children behind: kill every group still known.
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            for status in &self.status {
                if let Some(pgid) = status.pgid
                    && status.ended_at.is_none()
                {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// A `Write` whose bytes stay readable after the writer was moved into the runner.
#[derive(Clone, Default)]
pub struct SharedVec(pub Arc<Mutex<Vec<u8>>>);

impl SharedVec {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Path of the forkyard binary built for these tests.
pub fn forkyard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_forkyard"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}
