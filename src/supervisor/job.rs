//! One task per job: the job's state machine.
//!
//! pending (manual | queued for a slot | restart backoff) -> running -> stopping (stop
//! signal sent, SIGKILL at a deadline) -> finished (exit code | signal | timed out |
//! failed to start). The task owns the job's status; every change is sent as an event.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use nix::sys::signal::Signal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::config::{JobSpec, RestartPolicy};
use crate::output::Stream;

use super::drain::{DrainTarget, drain, finish};
use super::reaper::{ExitHow, Reaper};
use super::signals::{group_alive, signal_group};
use super::spawn::spawn_run;
use super::status::{
    Event, JobId, JobState, JobStatus, Level, Notice, Outcome, PendingReason, StageState,
    StopReason,
};

/// Commands a job accepts (from the TUI, the headless runner or tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Start a pending or finished job (no effect while running).
    Start,
    /// Stop signal to the group, SIGKILL after grace. A stopped job is not restarted.
    Stop,
    /// SIGKILL to the group now.
    Kill,
    /// Stop if running, then start again.
    Restart,
    /// Let it run until the deadline, then stop it.
    Wait(Duration),
    /// Send any signal to the group.
    Signal(Signal),
    /// `--kill-others-on-fail`: stop, and remember why.
    StopBecauseOtherFailed,
    /// The run's own deadline passed (e.g. `settings.headless_timeout`): stop it as if
    /// its `timeout` had expired (its result is "timed out").
    Expire,
    /// forkyard is exiting: stop if running, then end the task.
    Shutdown,
}

/// Live processes of running jobs, read by the sampler.
#[derive(Debug, Clone, Default)]
pub struct LiveTree {
    pub pgid: u32,
    pub stage_pids: Vec<u32>,
    /// CPU already accounted from reaped stages of this run.
    pub reaped_cpu: Duration,
}

pub type LiveTrees = Arc<Mutex<HashMap<JobId, LiveTree>>>;

/// Restart backoff: 100 ms doubling to at most 10 s.
pub fn backoff_delay(attempt: u32) -> Duration {
    let millis = 100u64.saturating_mul(1u64 << attempt.min(10));
    Duration::from_millis(millis.min(10_000))
}

/// How long to wait for pipes to reach EOF after the group is gone. Only a process that
/// left the group (e.g. `setsid`) can keep them open that long.
const DRAIN_LINGER: Duration = Duration::from_millis(500);
/// Re-check a group with stragglers this often even without a reaped orphan.
const STRAGGLER_RECHECK: Duration = Duration::from_millis(250);

pub struct JobTask {
    pub id: JobId,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub controls: mpsc::UnboundedReceiver<Control>,
    pub events: mpsc::UnboundedSender<Event>,
    pub reaper: Reaper,
    pub slots: Option<Arc<Semaphore>>,
    pub drain_target: Arc<DrainTarget>,
    pub live: LiveTrees,
    /// Asks the sampler for an early sample, so short jobs are measured too.
    pub sample_soon: Arc<tokio::sync::Notify>,
}

/// How a run ended from the job's point of view (what to do next).
struct RunEnd {
    outcome: Outcome,
    stop: Option<StopReason>,
    restart_requested: bool,
    shutdown: bool,
}

enum Slot {
    /// Run now (holding the permit, if there is a limit).
    Granted(Option<OwnedSemaphorePermit>),
    /// Stopped while queued.
    Cancelled,
    Shutdown,
}

enum Next {
    Run,
    Idle,
    Exit,
}

impl JobTask {
    pub async fn run(mut self) {
        let mut next = if self.spec.autostart {
            Next::Run
        } else {
            Next::Idle
        };
        let mut policy_restarts = 0u32;
        loop {
            next = match next {
                Next::Exit => return,
                Next::Idle => self.idle().await,
                Next::Run => {
                    let permit = match self.acquire_slot().await {
                        Slot::Granted(permit) => permit,
                        Slot::Cancelled => {
                            self.revert_to_idle_state();
                            self.emit();
                            next = Next::Idle;
                            continue;
                        }
                        Slot::Shutdown => return,
                    };
                    let end = self.run_once().await;
                    drop(permit);
                    self.after_run(end, &mut policy_restarts).await
                }
            };
        }
    }

    /// Waits for a start while pending by hand or finished.
    async fn idle(&mut self) -> Next {
        loop {
            match self.controls.recv().await {
                None | Some(Control::Shutdown) => return Next::Exit,
                Some(Control::Start) => return Next::Run,
                Some(Control::Restart) => {
                    if self.status.started_at.is_some() {
                        self.status.restarts += 1;
                    }
                    return Next::Run;
                }
                Some(_) => self.say(Level::Warn, format!("{} is not running", self.spec.name)),
            }
        }
    }

    /// Waits for a slot under `max_parallel` (none needed when unlimited).
    async fn acquire_slot(&mut self) -> Slot {
        let Some(slots) = self.slots.clone() else {
            return Slot::Granted(None);
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Slot::Granted(Some(permit));
        }
        self.status.state = JobState::Pending(PendingReason::Queued);
        self.emit();
        loop {
            tokio::select! {
                permit = slots.clone().acquire_owned() => return Slot::Granted(permit.ok()),
                control = self.controls.recv() => match control {
                    None | Some(Control::Shutdown) => return Slot::Shutdown,
                    Some(
                        Control::Stop
                        | Control::Kill
                        | Control::StopBecauseOtherFailed
                        | Control::Expire,
                    ) => return Slot::Cancelled,
                    Some(_) => {}
                },
            }
        }
    }

    fn revert_to_idle_state(&mut self) {
        self.status.state = match &self.status.ended_at {
            Some(_) => self
                .status
                .outcome()
                .cloned()
                .map(JobState::Finished)
                .unwrap_or(JobState::Pending(PendingReason::Manual)),
            None => JobState::Pending(PendingReason::Manual),
        };
    }

    async fn after_run(&mut self, end: RunEnd, policy_restarts: &mut u32) -> Next {
        let stopped = end.stop.is_some_and(|r| r != StopReason::Timeout);
        let wants_restart = !end.shutdown
            && !end.restart_requested
            && !stopped
            && match self.spec.restart {
                RestartPolicy::No => false,
                RestartPolicy::OnFailure => !end.outcome.is_success(),
                RestartPolicy::Always => true,
            };
        let backoff = wants_restart && *policy_restarts < self.spec.max_restarts;
        // The run's final snapshot says whether the job starts again by itself, so a
        // consumer never takes a job about to be restarted for a settled one.
        self.status.restart_pending = backoff || (end.restart_requested && !end.shutdown);
        self.emit();
        if end.shutdown {
            return Next::Exit;
        }
        if end.restart_requested {
            self.status.restarts += 1;
            return Next::Run;
        }
        if !backoff {
            if wants_restart {
                self.notice(format!(
                    "{}: gave up after {} restarts",
                    self.spec.name, self.spec.max_restarts
                ));
            }
            return Next::Idle;
        }
        let until = Instant::now() + backoff_delay(*policy_restarts);
        *policy_restarts += 1;
        self.status.state = JobState::Pending(PendingReason::Backoff { until });
        self.emit();
        loop {
            tokio::select! {
                _ = sleep_until(until.into()) => break,
                control = self.controls.recv() => match control {
                    None | Some(Control::Shutdown) => {
                        self.status.state = JobState::Finished(end.outcome);
                        self.status.restart_pending = false;
                        self.emit();
                        return Next::Exit;
                    }
                    Some(
                        Control::Stop
                        | Control::Kill
                        | Control::StopBecauseOtherFailed
                        | Control::Expire,
                    ) => {
                        self.status.state = JobState::Finished(end.outcome);
                        self.status.restart_pending = false;
                        self.emit();
                        return Next::Idle;
                    }
                    Some(Control::Start | Control::Restart) => break,
                    Some(_) => {}
                },
            }
        }
        self.status.restarts += 1;
        Next::Run
    }

    /// One run: spawn every stage, supervise until the whole group is gone.
    async fn run_once(&mut self) -> RunEnd {
        let spawned = spawn_run(&self.spec, &self.reaper);
        let now = Instant::now();
        self.status.started_at = Some(now);
        self.status.ended_at = None;
        self.status.runs += 1;
        self.status.restart_pending = false;
        self.status.pgid = spawned.pgid;
        self.status.stragglers = false;
        self.status.orphan_cpu = Duration::ZERO;
        self.status.wait_deadline = None;
        self.status.timeout_at = self.spec.timeout.map(deadline_after);

        let mut exits = FuturesUnordered::new();
        let mut spawn_failure: Option<String> = None;
        for (index, (stage, started)) in self
            .status
            .stages
            .iter_mut()
            .zip(spawned.stages)
            .enumerate()
        {
            stage.cpu_time = Duration::ZERO;
            match started {
                Ok(started) => {
                    stage.pid = Some(started.pid);
                    stage.state = StageState::Running;
                    exits.push(async move { (index, started.exit.await) });
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
            self.status.timeout_at = None;
            return self.end_run(
                Outcome::FailedToStart { reason },
                None,
                false,
                false,
                Instant::now(),
            );
        };

        let mut drains = JoinSet::new();
        for (stage, stream, fd) in spawned.outputs {
            drains.spawn(drain(fd, stage, stream, self.drain_target.clone()));
        }
        let feeder = spawned.stdin_feed.map(|(writer, text)| {
            tokio::task::spawn_blocking(move || {
                let mut writer = writer;
                // EPIPE when the child does not read it all is expected and harmless.
                let _ = writer.write_all(text.as_bytes());
            })
        });
        self.set_live(pgid);

        self.status.state = JobState::Running;
        self.emit();
        if let Some(reason) = &spawn_failure {
            self.notice(format!(
                "{}: a stage failed to start: {reason}",
                self.spec.name
            ));
        }

        let mut stop: Option<StopReason> = None;
        let mut kill_at: Option<Instant> = None;
        let mut restart_requested = false;
        let mut shutdown = false;
        let mut orphans = self.reaper.orphans_reaped();

        loop {
            let all_exited = exits.is_empty();
            if all_exited {
                if !group_alive(pgid) {
                    break;
                }
                if !self.status.stragglers {
                    self.status.stragglers = true;
                    self.emit();
                }
            }
            let deadline = self.next_deadline(stop.is_some(), kill_at);
            tokio::select! {
                Some((index, exit)) = exits.next(), if !all_exited => {
                    self.record_exit(index, exit.ok());
                    self.emit();
                }
                control = self.controls.recv() => {
                    let control = control.unwrap_or(Control::Shutdown);
                    match control {
                        Control::Start => {
                            self.notice(format!("{} is already running", self.spec.name))
                        }
                        Control::Stop => self.begin_stop(pgid, StopReason::User, &mut stop, &mut kill_at),
                        Control::StopBecauseOtherFailed => {
                            self.begin_stop(pgid, StopReason::OtherFailed, &mut stop, &mut kill_at)
                        }
                        Control::Expire => {
                            self.begin_stop(pgid, StopReason::Timeout, &mut stop, &mut kill_at)
                        }
                        Control::Restart => {
                            restart_requested = true;
                            self.begin_stop(pgid, StopReason::Restart, &mut stop, &mut kill_at);
                        }
                        Control::Shutdown => {
                            shutdown = true;
                            restart_requested = false;
                            self.begin_stop(pgid, StopReason::Shutdown, &mut stop, &mut kill_at);
                        }
                        Control::Kill => {
                            stop.get_or_insert(StopReason::User);
                            self.send_signal(pgid, Signal::SIGKILL);
                            kill_at = None;
                            self.status.state = JobState::Stopping {
                                signal: Signal::SIGKILL,
                                kill_at: Instant::now(),
                                reason: stop.unwrap_or(StopReason::User),
                            };
                            self.emit();
                        }
                        Control::Signal(signal) => self.send_signal(pgid, signal),
                        Control::Wait(within) => {
                            self.status.wait_deadline = Some(deadline_after(within));
                            self.notice(format!(
                                "waiting up to {} for {}, then stopping it",
                                humantime::format_duration(within),
                                self.spec.name
                            ));
                            self.emit();
                        }
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(far_future).into()), if deadline.is_some() => {
                    self.on_deadline(pgid, &mut stop, &mut kill_at);
                }
                _ = orphans.changed(), if all_exited => {}
                _ = tokio::time::sleep(STRAGGLER_RECHECK), if all_exited => {}
                // Safety net: SIGKILL was sent, yet a stage's exit never came and its pid
                // is gone (not even a zombie): its status was taken by someone else. Give
                // up on it rather than wait forever and hang the shutdown.
                _ = tokio::time::sleep(STRAGGLER_RECHECK), if !all_exited && stop.is_some() && kill_at.is_none() => {
                    if self.running_stages_vanished() {
                        exits = FuturesUnordered::new();
                        self.mark_running_stages_lost();
                        self.emit();
                    }
                }
            }
        }

        // The group is gone; give the pipes a moment to deliver their last bytes.
        let linger = tokio::time::sleep(DRAIN_LINGER);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                joined = drains.join_next() => if joined.is_none() { break },
                _ = &mut linger => {
                    // Someone outside the group holds a pipe open; do not hang on it.
                    drains.abort_all();
                    for stage in 0..self.status.stages.len() {
                        for stream in [Stream::Stdout, Stream::Stderr] {
                            finish(&self.drain_target, stage, stream).await;
                        }
                    }
                    break;
                }
            }
        }
        if let Some(feeder) = feeder {
            feeder.abort();
        }
        self.reaper.release_group(pgid);
        self.status.orphan_cpu = self.reaper.take_orphan_cpu(pgid);
        self.clear_live();

        let outcome = self.outcome(spawn_failure, stop);
        self.end_run(outcome, stop, restart_requested, shutdown, Instant::now())
    }

    fn end_run(
        &mut self,
        outcome: Outcome,
        stop: Option<StopReason>,
        restart_requested: bool,
        shutdown: bool,
        ended: Instant,
    ) -> RunEnd {
        self.status.ended_at = Some(ended);
        if let Some(started) = self.status.started_at {
            self.status.total_elapsed += ended.saturating_duration_since(started);
        }
        self.status.total_cpu += self.status.reaped_cpu();
        self.status.wait_deadline = None;
        self.status.timeout_at = None;
        self.status.stragglers = false;
        self.status.state = JobState::Finished(outcome.clone());
        // Emitted by `after_run`, once it is known whether a restart follows.
        RunEnd {
            outcome,
            stop,
            restart_requested,
            shutdown,
        }
    }

    /// The job's result: a stage that failed to start fails the job; otherwise the last
    /// stage decides, or with `pipefail` the first stage that failed.
    fn outcome(&self, spawn_failure: Option<String>, stop: Option<StopReason>) -> Outcome {
        if let Some(reason) = spawn_failure {
            return Outcome::FailedToStart { reason };
        }
        let stages = &self.status.stages;
        let deciding = if self.spec.pipefail {
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
            (Some(StopReason::Timeout), code, signal) => Outcome::TimedOut { signal, code },
            (_, Some(code), _) => Outcome::Exited { code },
            (_, _, Some(signal)) => Outcome::Killed { signal },
            _ => Outcome::FailedToStart {
                reason: "lost track of the process".into(),
            },
        }
    }

    fn record_exit(&mut self, index: usize, exit: Option<super::reaper::ExitInfo>) {
        let Some(stage) = self.status.stages.get_mut(index) else {
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
        let mut live = super::lock_live(&self.live);
        if let Some(tree) = live.get_mut(&self.id) {
            tree.stage_pids.retain(|pid| *pid != exit.pid);
            tree.reaped_cpu += exit.cpu_time;
        }
    }

    /// Every stage still marked running has no process left, not even a zombie.
    fn running_stages_vanished(&self) -> bool {
        self.status
            .stages
            .iter()
            .filter(|s| s.state == StageState::Running)
            .filter_map(|s| s.pid)
            .all(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
                    == Err(nix::errno::Errno::ESRCH)
            })
    }

    fn mark_running_stages_lost(&mut self) {
        for stage in &mut self.status.stages {
            if stage.state == StageState::Running {
                stage.state = StageState::FailedToStart("lost track of the process".into());
            }
        }
        self.say(
            Level::Error,
            format!("{}: lost the exit status of a stage", self.spec.name),
        );
    }

    fn next_deadline(&self, stopping: bool, kill_at: Option<Instant>) -> Option<Instant> {
        if stopping {
            return kill_at;
        }
        [self.status.timeout_at, self.status.wait_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_deadline(
        &mut self,
        pgid: u32,
        stop: &mut Option<StopReason>,
        kill_at: &mut Option<Instant>,
    ) {
        let now = Instant::now();
        if stop.is_some() {
            if kill_at.is_some_and(|at| at <= now) {
                *kill_at = None;
                self.notice(format!(
                    "{} outlived its grace period: sent SIGKILL to pgid {pgid}",
                    self.spec.name
                ));
                self.signal_quietly(pgid, Signal::SIGKILL);
            }
            return;
        }
        if self.status.timeout_at.is_some_and(|at| at <= now) {
            self.begin_stop(pgid, StopReason::Timeout, stop, kill_at);
        } else if self.status.wait_deadline.is_some_and(|at| at <= now) {
            self.begin_stop(pgid, StopReason::WaitDeadline, stop, kill_at);
        }
    }

    fn begin_stop(
        &mut self,
        pgid: u32,
        reason: StopReason,
        stop: &mut Option<StopReason>,
        kill_at: &mut Option<Instant>,
    ) {
        if stop.is_some() {
            // Already stopping: a shutdown or restart just changes what happens after.
            if matches!(reason, StopReason::Shutdown | StopReason::Restart) {
                if let JobState::Stopping { reason: r, .. } = &mut self.status.state {
                    *r = reason;
                }
                if *stop != Some(StopReason::Timeout) {
                    *stop = Some(reason);
                }
            }
            return;
        }
        let signal = self.spec.stop_signal;
        let deadline = deadline_after(self.spec.grace);
        *stop = Some(reason);
        *kill_at = Some(deadline);
        self.status.state = JobState::Stopping {
            signal,
            kill_at: deadline,
            reason,
        };
        self.send_signal(pgid, signal);
        self.emit();
    }

    fn send_signal(&mut self, pgid: u32, signal: Signal) {
        match signal_group(pgid, signal) {
            Ok(()) => self.notice(format!(
                "sent {} to {} (pgid {pgid})",
                signal.as_str(),
                self.spec.name
            )),
            Err(errno) => self.say(
                Level::Error,
                format!(
                    "could not send {} to {} (pgid {pgid}): {}",
                    signal.as_str(),
                    self.spec.name,
                    errno.desc()
                ),
            ),
        }
    }

    fn signal_quietly(&self, pgid: u32, signal: Signal) {
        let _ = signal_group(pgid, signal);
    }

    fn set_live(&self, pgid: u32) {
        let stage_pids = self.status.stages.iter().filter_map(|s| s.pid).collect();
        super::lock_live(&self.live).insert(
            self.id,
            LiveTree {
                pgid,
                stage_pids,
                reaped_cpu: Duration::ZERO,
            },
        );
        self.sample_soon.notify_one();
    }

    fn clear_live(&self) {
        super::lock_live(&self.live).remove(&self.id);
    }

    fn emit(&self) {
        let _ = self.events.send(Event::Job {
            id: self.id,
            status: self.status.clone(),
        });
    }

    fn notice(&self, text: String) {
        self.say(Level::Info, text);
    }

    fn say(&self, level: Level, text: String) {
        let _ = self.events.send(Event::Notice(Notice {
            job: Some(self.id),
            level,
            text,
        }));
    }
}

/// `now + after`, or a year from now when that is later or does not fit in an `Instant`
/// (a deadline typed as `1e19` seconds means "no deadline", not a crash).
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after.min(Duration::from_secs(86_400 * 365)))
        .unwrap_or_else(far_future)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100ms_to_10s() {
        assert_eq!(backoff_delay(0), Duration::from_millis(100));
        assert_eq!(backoff_delay(1), Duration::from_millis(200));
        assert_eq!(backoff_delay(3), Duration::from_millis(800));
        assert_eq!(backoff_delay(7), Duration::from_secs(10));
        assert_eq!(backoff_delay(40), Duration::from_secs(10));
    }
}
