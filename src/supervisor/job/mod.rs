//! One task per job: it owns the job's status, drives its [`State`] machine, and carries
//! out what each transition asks for.
//!
//! [`state`] decides (pure: every control in every state, deadlines, the end of a run);
//! [`run`] follows one run's processes to their end; this module connects the two to the
//! outside: controls in, status snapshots and notices out as events, slots under
//! `max_parallel`, the live tree the sampler reads.

mod run;
pub mod state;

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::config::JobSpec;

use super::contain;
use super::drain::{DrainTarget, drain};
use super::reaper::{ExitHow, ExitInfo, Reaper};
use super::slots::{Permit, Request, Slots};
use super::spawn::spawn_run;
use super::status::{
    Event, JobId, JobState, JobStatus, Level, Notice, Outcome, PendingReason, StageState,
    StopReason,
};

pub use state::{Control, backoff_delay};
use state::{Effect, Facts, State, Transition};

/// Live processes of running jobs, read by the sampler.
#[derive(Debug, Clone, Default)]
pub struct LiveTree {
    pub pgid: u32,
    pub stage_pids: Vec<u32>,
    /// CPU already accounted from reaped stages of this run.
    pub reaped_cpu: Duration,
    /// CPU wait of the reaped stages of this run (exact).
    pub reaped_wait: Duration,
    /// The run's cgroup: its members are exactly the job's processes.
    pub cgroup: Option<std::path::PathBuf>,
}

pub type LiveTrees = Arc<Mutex<HashMap<JobId, LiveTree>>>;

pub struct JobTask {
    pub id: JobId,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub controls: mpsc::UnboundedReceiver<Control>,
    pub events: mpsc::UnboundedSender<Event>,
    pub reaper: Reaper,
    pub slots: Option<Slots>,
    /// The place in the `max_parallel` queue of an autostart job, taken by the
    /// supervisor in config order before any job task runs.
    pub first_request: Option<Request>,
    pub drain_target: Arc<DrainTarget>,
    pub live: LiveTrees,
    /// Asks the sampler for an early sample, so short jobs are measured too.
    pub sample_soon: Arc<tokio::sync::Notify>,
}

/// The task: a [`JobTask`] plus its state machine's state.
struct Job {
    task: JobTask,
    state: State,
    /// The result of the last run (what an idle job that ran shows).
    last_outcome: Option<Outcome>,
    /// Restarts by the policy so far (the backoff attempt).
    attempt: u32,
    /// The status as last sent, so an unchanged one is not sent again.
    sent: Option<JobStatus>,
}

impl JobTask {
    pub async fn run(self) {
        let state = if self.spec.autostart {
            State::Queued { restart: false }
        } else {
            State::Idle
        };
        let mut job = Job {
            task: self,
            state,
            last_outcome: None,
            attempt: 0,
            sent: None,
        };
        job.sent = Some(job.task.status.clone());
        job.run().await;
    }
}

impl Job {
    async fn run(&mut self) {
        loop {
            match self.state {
                State::Gone => return,
                State::Idle => self.idle().await,
                State::Queued { .. } => self.queued().await,
                State::Backoff { until } => self.backoff(until).await,
                // A run is driven by `run_once` from start to end; a state of a run here
                // would be a bug, and the safe reading of it is "nothing runs".
                State::Running { .. } | State::Stopping { .. } => {
                    self.state = State::Idle;
                    self.publish();
                }
            }
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            name: &self.task.spec.name,
            stop_signal: self.task.spec.stop_signal,
            grace: self.task.spec.grace,
            has_run: self.task.status.runs > 0,
            now: Instant::now(),
        }
    }

    async fn next_control(&mut self) -> Control {
        // Every sender gone: nobody can stop us later, so behave as for a shutdown.
        self.task.controls.recv().await.unwrap_or(Control::Shutdown)
    }

    async fn idle(&mut self) {
        let control = self.next_control().await;
        self.control(control, None);
    }

    async fn backoff(&mut self, until: Instant) {
        tokio::select! {
            _ = sleep_until(until.into()) => {
                let t = state::on_deadline(self.state, None, &self.facts());
                self.enter(t, None);
            }
            control = self.next_control() => self.control(control, None),
        }
    }

    /// Waits for a slot under `max_parallel` (none is needed when unlimited), then runs.
    async fn queued(&mut self) {
        let permit = match self.task.slots.clone() {
            None => None,
            Some(slots) => {
                let mut request = self
                    .task
                    .first_request
                    .take()
                    .unwrap_or_else(|| slots.request());
                match request.try_now() {
                    Some(permit) => Some(permit),
                    None => {
                        // Sent even if it looks the same as the initial status: the
                        // consumer learns that this job waits for a slot.
                        self.task.status.state = JobState::Pending(PendingReason::Queued);
                        self.emit();
                        loop {
                            tokio::select! {
                                permit = request.granted() => break permit,
                                control = self.next_control() => {
                                    self.control(control, None);
                                    if !matches!(self.state, State::Queued { .. }) {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        if let State::Queued { restart: true } = self.state {
            self.task.status.restarts += 1;
        }
        self.run_once(permit).await;
    }

    fn control(&mut self, control: Control, run: Option<&mut run::Run>) {
        let t = state::on_control(self.state, control, &self.facts());
        self.enter(t, run);
    }

    /// Takes a transition: the new state, its effects, the status that shows it.
    fn enter(&mut self, t: Transition, mut run: Option<&mut run::Run>) {
        self.state = t.next;
        for effect in t.effects {
            self.perform(effect, run.as_deref_mut());
        }
        self.publish();
    }

    fn perform(&mut self, effect: Effect, run: Option<&mut run::Run>) {
        match effect {
            Effect::Say(level, text) => self.say(level, text),
            Effect::SignalGroup(signal) => {
                if let Some(run) = run {
                    let result = run.signal_group(signal);
                    self.report_signal(signal, run.pgid, result);
                }
            }
            Effect::StopAll(signal) => {
                if let Some(run) = run {
                    let result = run.stop_all(signal);
                    self.report_signal(signal, run.pgid, result);
                }
            }
            Effect::KillAll { announce } => {
                if let Some(run) = run {
                    let result = run.kill_all();
                    if announce || result.is_err() {
                        self.report_signal(Signal::SIGKILL, run.pgid, result);
                    }
                }
            }
        }
    }

    fn report_signal(&self, signal: Signal, pgid: u32, result: Result<(), nix::errno::Errno>) {
        let name = &self.task.spec.name;
        match result {
            Ok(()) => self.say(
                Level::Info,
                format!("sent {} to {name} (pgid {pgid})", signal.as_str()),
            ),
            Err(errno) => self.say(
                Level::Error,
                format!(
                    "could not send {} to {name} (pgid {pgid}): {}",
                    signal.as_str(),
                    errno.desc()
                ),
            ),
        }
    }

    /// Shows the state in the status, and sends the status if it changed.
    fn publish(&mut self) {
        let status = &mut self.task.status;
        match self.state {
            State::Idle => {
                status.state = match &self.last_outcome {
                    Some(outcome) => JobState::Finished(outcome.clone()),
                    None => JobState::Pending(PendingReason::Manual),
                };
                status.restart_pending = false;
            }
            // Shown as queued only while it actually waits (see `queued`).
            State::Queued { .. } => {}
            // At shutdown a job that never ran stays "not started".
            State::Gone => {
                status.state = match &self.last_outcome {
                    Some(outcome) => JobState::Finished(outcome.clone()),
                    None => JobState::Pending(PendingReason::Manual),
                };
                status.restart_pending = false;
            }
            State::Backoff { until } => {
                status.state = JobState::Pending(PendingReason::Backoff { until });
            }
            State::Running { wait_until } => {
                status.state = JobState::Running;
                status.wait_deadline = wait_until;
            }
            State::Stopping {
                reason, kill_at, ..
            } => {
                status.state = JobState::Stopping {
                    signal: if kill_at.is_some() {
                        self.task.spec.stop_signal
                    } else {
                        Signal::SIGKILL
                    },
                    kill_at: kill_at.unwrap_or_else(Instant::now),
                    reason,
                };
            }
        }
        if self.sent.as_ref() != Some(&self.task.status) {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let status = self.task.status.clone();
        self.sent = Some(status.clone());
        let _ = self.task.events.send(Event::Job {
            id: self.task.id,
            status,
        });
    }

    fn say(&self, level: Level, text: String) {
        let _ = self.task.events.send(Event::Notice(Notice {
            job: Some(self.task.id),
            level,
            text,
        }));
    }

    /// One run: spawn every stage, then follow it until every process is gone and every
    /// pipe has reached end-of-file.
    async fn run_once(&mut self, permit: Option<Permit>) {
        let cgroup = contain::containment().new_run();
        let spawned = spawn_run(
            &self.task.spec,
            &self.task.reaper,
            cgroup.as_ref().map(|c| c.procs_fd()),
            self.task.drain_target.io.as_deref(),
        );
        let now = Instant::now();
        let status = &mut self.task.status;
        status.started_at = Some(now);
        status.ended_at = None;
        status.runs += 1;
        status.restart_pending = false;
        status.pgid = spawned.pgid;
        status.stragglers = false;
        status.left_group = 0;
        status.orphan_cpu = Duration::ZERO;
        status.orphan_wait = Duration::ZERO;
        status.wait_deadline = None;
        status.timeout_at = self
            .task
            .spec
            .timeout
            .map(|t| state::deadline_after(now, t));

        let mut started = Vec::new();
        let mut spawn_failure: Option<String> = None;
        for (index, (stage, result)) in status.stages.iter_mut().zip(spawned.stages).enumerate() {
            stage.cpu_time = Duration::ZERO;
            stage.cpu_wait = Duration::ZERO;
            match result {
                Ok(ok) => {
                    stage.pid = Some(ok.pid);
                    stage.state = StageState::Running;
                    started.push((index, ok.pid, ok.exit));
                }
                Err(reason) => {
                    stage.pid = None;
                    stage.state = StageState::FailedToStart(reason.clone());
                    spawn_failure.get_or_insert(reason);
                }
            }
        }

        let Some(pgid) = spawned.pgid else {
            // Nothing started at all.
            let reason = spawn_failure.unwrap_or_else(|| "no stage started".into());
            self.task.status.timeout_at = None;
            drop(permit);
            self.end_run(Outcome::FailedToStart { reason });
            return;
        };

        let mut pipe_inodes = Vec::new();
        let mut drains = JoinSet::new();
        for (stage, stream, fd) in spawned.outputs {
            pipe_inodes.extend(super::pty::holder_key(fd.as_fd()));
            drains.spawn(drain(fd, stage, stream, self.task.drain_target.clone()));
        }
        let feeder = spawned.stdin_feed.map(|(writer, text)| {
            tokio::task::spawn_blocking(move || {
                let mut writer = writer;
                // EPIPE when the child does not read it all is expected and harmless.
                let _ = writer.write_all(text.as_bytes());
            })
        });
        let stage_count = self.task.status.stages.len();
        let mut run = run::Run::new(
            pgid,
            started,
            drains,
            pipe_inodes,
            cgroup,
            self.task.reaper.clone(),
            stage_count,
        );
        self.set_live(pgid, run.cgroup_dir());
        self.state = State::Running { wait_until: None };
        self.publish();
        if let Some(reason) = &spawn_failure {
            self.say(
                Level::Error,
                format!("{}: a stage failed to start: {reason}", self.task.spec.name),
            );
        }

        let stop = self.follow(&mut run).await;

        if let Some(feeder) = feeder {
            feeder.abort();
        }
        drop(permit);
        self.task.reaper.release_group(pgid);
        (self.task.status.orphan_cpu, self.task.status.orphan_wait) =
            self.task.reaper.take_orphan_cpu(pgid);
        drop(run.take_cgroup());
        self.clear_live();
        let outcome = self.outcome(spawn_failure, stop);
        self.end_run(outcome);
    }

    /// Follows a run to its end: stage exits, controls, deadlines, the leftovers. Returns
    /// why it was stopped, if it was.
    async fn follow(&mut self, run: &mut run::Run) -> Option<StopReason> {
        loop {
            let before = self.task.status.left_group;
            let mut left_group = before;
            let phase = run.phase(
                self.task.spec.stop_signal,
                self.task.spec.grace,
                &mut left_group,
            );
            self.task.status.left_group = left_group;
            if before == 0 && left_group > 0 {
                self.say(
                    Level::Info,
                    format!(
                        "{}: sent {} to {left_group} process{} that left its group (a job ends when everything it started has)",
                        self.task.spec.name,
                        self.task.spec.stop_signal.as_str(),
                        if left_group == 1 { "" } else { "es" }
                    ),
                );
            }
            self.task.status.stragglers = phase == run::Phase::Stragglers;
            self.publish();
            if phase == run::Phase::Over {
                return match self.state {
                    State::Stopping { reason, .. } => Some(reason),
                    _ => None,
                };
            }
            let deadline = state::next_deadline(self.state, self.task.status.timeout_at);
            let sleep = sleep_until(deadline.unwrap_or_else(Instant::now).into());
            tokio::select! {
                wake = run.wake(phase) => match wake {
                    run::Wake::Exit(index, exit) => {
                        run.stage_done(index);
                        self.record_exit(index, exit);
                    }
                    run::Wake::Changed => {
                        if phase == run::Phase::Stages && run.killed && run.stages_vanished() {
                            // SIGKILL was sent, yet a stage's exit never came and its pid
                            // is gone (not even a zombie): its status was taken by someone
                            // else. Give up on it rather than hang the shutdown.
                            for index in run.forget_stages() {
                                self.record_exit(index, None);
                            }
                            self.say(
                                Level::Error,
                                format!("{}: lost the exit status of a stage", self.task.spec.name),
                            );
                        }
                    }
                },
                control = self.next_control() => self.control(control, Some(run)),
                _ = sleep, if deadline.is_some() => {
                    let t = state::on_deadline(self.state, self.task.status.timeout_at, &self.facts());
                    self.enter(t, Some(run));
                }
            }
        }
    }

    /// The run is over: record it, then let the state machine say what follows.
    fn end_run(&mut self, outcome: Outcome) {
        let ended = Instant::now();
        let status = &mut self.task.status;
        status.ended_at = Some(ended);
        if let Some(started) = status.started_at {
            status.total_elapsed += ended.saturating_duration_since(started);
        }
        status.total_cpu += status.reaped_cpu();
        status.total_cpu_wait += status.reaped_wait();
        status.wait_deadline = None;
        status.timeout_at = None;
        status.stragglers = false;
        status.left_group = 0;
        status.state = JobState::Finished(outcome.clone());
        self.last_outcome = Some(outcome.clone());
        if !matches!(self.state, State::Running { .. } | State::Stopping { .. }) {
            // Nothing started at all (a spawn failure): for the restart policy the run
            // was running and ended.
            self.state = State::Running { wait_until: None };
        }
        let end = state::RunEnd {
            succeeded: outcome.is_success(),
            policy: self.task.spec.restart,
            attempt: self.attempt,
            max_restarts: self.task.spec.max_restarts,
        };
        let t = state::on_run_end(self.state, end, &self.facts());
        if matches!(t.next, State::Backoff { .. }) {
            self.attempt += 1;
        }
        // The run's final snapshot says whether the job starts again by itself, so a
        // consumer never takes a job about to be restarted for a settled one.
        self.task.status.restart_pending =
            matches!(t.next, State::Backoff { .. } | State::Queued { .. });
        self.emit();
        self.state = t.next;
        for effect in t.effects {
            self.perform(effect, None);
        }
        self.publish();
    }

    /// The job's result: a stage that failed to start fails the job; otherwise the last
    /// stage decides, or with `pipefail` the first stage that failed.
    fn outcome(&self, spawn_failure: Option<String>, stop: Option<StopReason>) -> Outcome {
        if let Some(reason) = spawn_failure {
            return Outcome::FailedToStart { reason };
        }
        let stages = &self.task.status.stages;
        let deciding = if self.task.spec.pipefail {
            stages
                .iter()
                .find(|s| s.state.is_failure())
                .or_else(|| stages.last())
        } else {
            stages.last()
        };
        let (code, signal) = match deciding.map(|s| &s.state) {
            Some(StageState::Exited(code)) => (Some(*code), None),
            Some(StageState::Killed(signal)) => (None, Some(*signal)),
            _ => (None, None),
        };
        match (stop, code, signal) {
            (Some(StopReason::Timeout | StopReason::Expired), code, signal) => {
                Outcome::TimedOut { signal, code }
            }
            (_, Some(code), _) => Outcome::Exited { code },
            (_, _, Some(signal)) => Outcome::Killed { signal },
            _ => Outcome::FailedToStart {
                reason: "lost track of the process".into(),
            },
        }
    }

    fn record_exit(&mut self, index: usize, exit: Option<ExitInfo>) {
        let Some(stage) = self.task.status.stages.get_mut(index) else {
            return;
        };
        let Some(exit) = exit else {
            stage.state = StageState::FailedToStart("lost track of the process".into());
            return;
        };
        stage.state = match exit.how {
            ExitHow::Code(code) => StageState::Exited(code),
            ExitHow::Signal(signal) => StageState::Killed(signal),
        };
        stage.cpu_time = exit.cpu_time;
        stage.cpu_wait = exit.cpu_wait;
        let mut live = super::lock_live(&self.task.live);
        if let Some(tree) = live.get_mut(&self.task.id) {
            tree.stage_pids.retain(|pid| *pid != exit.pid);
            tree.reaped_cpu += exit.cpu_time;
            tree.reaped_wait += exit.cpu_wait;
        }
    }

    fn set_live(&self, pgid: u32, cgroup: Option<std::path::PathBuf>) {
        let stage_pids = self
            .task
            .status
            .stages
            .iter()
            .filter_map(|s| s.pid)
            .collect();
        super::lock_live(&self.task.live).insert(
            self.task.id,
            LiveTree {
                pgid,
                stage_pids,
                reaped_cpu: Duration::ZERO,
                reaped_wait: Duration::ZERO,
                cgroup,
            },
        );
        self.task.sample_soon.notify_one();
    }

    fn clear_live(&self) {
        super::lock_live(&self.task.live).remove(&self.task.id);
    }
}
