//! One task per job: it owns the job's status, drives its [`State`] machine, and carries
//! out what each transition asks for.
//!
//! [`state`] decides (pure: every control in every state, deadlines, the end of a run,
//! dependencies, probes); [`run`] follows one run's processes to their end; this module
//! connects the two to the outside: controls in, status snapshots and notices out as
//! events, the dependency graph ([`super::deps`]), the run's probes
//! ([`super::probe`]), slots under `max_parallel`, the live tree the sampler reads.

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
use super::deps::{Gate, Graph, Phase, View};
use super::drain::{DrainTarget, drain};
use super::probe::{ProbeEvent, ProbeRun};
use super::reaper::{ExitHow, ExitInfo, Reaper};
use super::slots::{Permit, Request, Slots};
use super::spawn::spawn_run;
use super::status::{
    Event, JobId, JobState, JobStatus, Level, Notice, Outcome, PendingReason, Readiness,
    StageState, StopReason,
};

pub use state::{Control, backoff_delay};
use state::{DepsVerdict, Effect, Facts, State, Transition};

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
    /// The last sampling tick in which the run used more than a trace of CPU (for
    /// `stall`), set by the sampler.
    pub cpu_moved_at: Option<Instant>,
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
    /// The dependencies between the jobs of this supervisor.
    pub graph: Arc<Graph>,
    /// What the graph tells this job (see [`Gate`]).
    pub gate: mpsc::UnboundedReceiver<Gate>,
    /// The supervisor's start: liveness checks tick on its grid.
    pub started_at: Instant,
}

/// The probes of the current run.
struct Probes {
    task: tokio::task::JoinHandle<()>,
    events: mpsc::UnboundedReceiver<ProbeEvent>,
}

impl Drop for Probes {
    fn drop(&mut self) {
        // An exec probe in flight is killed with its task (see `probe::ProbeGroup`).
        self.task.abort();
    }
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
    /// The view last given to the graph.
    view_sent: Option<View>,
    /// Some run of it spawned a process.
    ever_spawned: bool,
    /// The current (or last) run became ready.
    run_was_ready: bool,
    /// The generation of the current wait for dependencies.
    wait_generation: u64,
    /// It waits only on jobs that will not start without a command.
    dormant: bool,
    /// Why a probe gave up on the current run.
    unhealthy: Option<String>,
    /// Some stage of the current run has not been reaped yet.
    stages_running: bool,
    /// When the run began to be stopped, every stage had already ended by itself (only
    /// stragglers were stopped): the stages' own result stands.
    ended_before_stop: bool,
    probes: Option<Probes>,
}

impl JobTask {
    pub async fn run(self) {
        let state = match (self.spec.autostart, self.spec.depends_on.is_empty()) {
            (false, _) => State::Idle,
            (true, true) => State::Queued { restart: false },
            (true, false) => State::Waiting { restart: false },
        };
        let mut job = Job {
            task: self,
            state,
            last_outcome: None,
            attempt: 0,
            sent: None,
            view_sent: None,
            ever_spawned: false,
            run_was_ready: false,
            wait_generation: 0,
            dormant: false,
            unhealthy: None,
            stages_running: false,
            ended_before_stop: false,
            probes: None,
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
                State::Waiting { .. } => self.waiting().await,
                State::Queued { .. } => self.queued().await,
                State::Backoff { until } => self.backoff(until).await,
                // A run is driven by `run_once` from start to end; a state of a run here
                // would be a bug, and the safe reading of it is "nothing runs".
                State::Running { .. } | State::Holding | State::Stopping { .. } => {
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
            has_dependencies: !self.task.spec.depends_on.is_empty(),
            dependents_running: false,
            now: Instant::now(),
        }
    }

    /// Waits until the dependencies allow a start (then queues), or never will (then
    /// the job is skipped), or a control ends the wait.
    async fn waiting(&mut self) {
        let id = self.task.id;
        self.wait_generation = self.task.graph.wait(id);
        self.publish();
        while let State::Waiting { .. } = self.state {
            tokio::select! {
                gate = self.task.gate.recv() => {
                    let current = self.wait_generation;
                    match gate {
                        Some(Gate::Go { generation, request }) if generation == current => {
                            self.task.first_request = request;
                            self.clear_waiting();
                            let t = state::on_dependencies(self.state, &DepsVerdict::Met, &self.facts());
                            self.enter(t, None);
                        }
                        Some(Gate::Skip { generation, reason }) if generation == current => {
                            self.clear_waiting();
                            let verdict = DepsVerdict::Impossible(reason);
                            let t = state::on_dependencies(self.state, &verdict, &self.facts());
                            self.enter(t, None);
                        }
                        Some(Gate::Waiting { generation, unmet, dormant }) if generation == current => {
                            self.task.status.waiting_for = unmet;
                            self.dormant = dormant;
                            self.publish();
                        }
                        // An answer to an earlier wait, or not about waiting.
                        Some(_) => {}
                        // The graph is gone with its supervisor.
                        None => self.state = State::Gone,
                    }
                }
                // Every sender gone: as for a shutdown (see `next_control`).
                control = self.task.controls.recv() => {
                    self.control(control.unwrap_or(Control::Shutdown), None);
                }
            }
        }
        self.task.graph.unwait(id);
        if !self.task.status.waiting_for.is_empty() || self.dormant {
            self.clear_waiting();
            self.publish();
        }
    }

    fn clear_waiting(&mut self) {
        self.task.status.waiting_for.clear();
        self.dormant = false;
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
        let mut facts = self.facts();
        if control == Control::Shutdown && matches!(self.state, State::Running { .. }) {
            // Dependents stop first; the graph says when they have.
            facts.dependents_running = self.task.graph.hold(self.task.id);
        }
        let t = state::on_control(self.state, control, &facts);
        self.enter(t, run);
    }

    /// Takes a transition: the new state, its effects, the status that shows it.
    fn enter(&mut self, t: Transition, mut run: Option<&mut run::Run>) {
        let was_running = matches!(self.state, State::Running { .. } | State::Holding);
        if was_running && matches!(t.next, State::Stopping { .. }) {
            self.ended_before_stop = !self.stages_running;
        }
        self.state = t.next;
        for effect in t.effects {
            self.perform(effect, run.as_deref_mut());
        }
        self.publish();
    }

    fn perform(&mut self, effect: Effect, run: Option<&mut run::Run>) {
        match effect {
            Effect::Say(level, text) => self.say(level, text),
            Effect::Skip(reason) => {
                self.last_outcome = Some(Outcome::Skipped { reason });
            }
            Effect::SignalGroup(signal) => {
                if let Some(run) = run {
                    let result = run.signal_group(signal);
                    self.report_signal(signal, run.pgid, result);
                }
            }
            Effect::StopAll(signal) => {
                if let Some(run) = run {
                    if let State::Stopping { reason, .. } = self.state {
                        let why = match reason {
                            StopReason::Timeout | StopReason::Expired => Some("timed out"),
                            StopReason::Stalled => Some("stalled"),
                            StopReason::NotAlive => Some("not alive"),
                            _ => None,
                        };
                        if let Some(why) = why {
                            self.postmortem(why, run);
                        }
                    }
                    let result = run.stop_all(signal);
                    self.report_signal(signal, run.pgid, result);
                }
            }
            Effect::KillAll { announce } => {
                if let Some(run) = run {
                    if !announce {
                        // Its grace ran out: what is left is what would not stop.
                        self.mark_survivors(run);
                    }
                    let result = run.kill_all();
                    if announce || result.is_err() {
                        self.report_signal(Signal::SIGKILL, run.pgid, result);
                    }
                }
            }
        }
    }

    /// The grace period ran out: the post-mortem marks the processes still there (or,
    /// for a plain stop, is taken now with every process marked).
    fn mark_survivors(&mut self, run: &run::Run) {
        let alive: Vec<u32> = super::tree::members(&run.scope())
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        let mut postmortem = match self.task.status.tree_at_stop.take() {
            Some(earlier) => (*earlier).clone(),
            None => super::tree::Postmortem {
                why: "outlived its grace period".into(),
                tree: super::tree::snapshot(
                    self.task.id,
                    &run.scope(),
                    None,
                    &std::collections::HashMap::new(),
                ),
            },
        };
        for row in &mut postmortem.tree.rows {
            row.outlived_grace = alive.contains(&row.pid);
        }
        self.task.status.tree_at_stop = Some(Arc::new(postmortem));
    }

    /// Keeps the run's tree as it is now (what hung) in the status.
    fn postmortem(&mut self, why: &str, run: &run::Run) {
        let tree = super::tree::snapshot(
            self.task.id,
            &run.scope(),
            None,
            &std::collections::HashMap::new(),
        );
        self.task.status.tree_at_stop = Some(Arc::new(super::tree::Postmortem {
            why: why.to_string(),
            tree,
        }));
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
            State::Waiting { .. } => {
                status.state = JobState::Pending(if self.dormant {
                    PendingReason::Manual
                } else {
                    PendingReason::Queued
                });
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
                status.stopping_after_dependents = false;
            }
            State::Holding => {
                status.state = JobState::Running;
                status.stopping_after_dependents = true;
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
                status.stopping_after_dependents = false;
            }
        }
        // The graph first: whoever sees this status (and acts on it, e.g. shuts down)
        // finds the graph already knowing it.
        self.update_graph();
        if self.sent.as_ref() != Some(&self.task.status) {
            self.emit();
        }
    }

    fn update_graph(&mut self) {
        let view = self.view();
        if self.view_sent.as_ref() != Some(&view) {
            self.view_sent = Some(view.clone());
            self.task.graph.update(self.task.id, view);
        }
    }

    /// The job as its dependents see it.
    fn view(&self) -> View {
        let ended = || match &self.last_outcome {
            Some(outcome) => Phase::Done(outcome.class(), outcome.describe()),
            None => Phase::Dormant,
        };
        let phase = match self.state {
            State::Idle | State::Gone => ended(),
            State::Waiting { .. } if self.dormant => Phase::Dormant,
            State::Waiting { .. } | State::Queued { .. } => Phase::Pending,
            State::Backoff { .. } => Phase::Restarting,
            State::Running { .. } | State::Holding | State::Stopping { .. } => Phase::Active,
        };
        View {
            phase,
            ever_started: self.ever_spawned,
            ready_now: matches!(self.state, State::Running { .. } | State::Holding)
                && self.task.status.readiness != Readiness::Starting,
            was_ready: self.run_was_ready,
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
        status.quiet_since = None;
        status.tree_at_stop = None;
        status.orphan_cpu = Duration::ZERO;
        status.orphan_wait = Duration::ZERO;
        status.wait_deadline = None;
        status.timeout_at = self
            .task
            .spec
            .timeout
            .map(|t| state::deadline_after(now, t));
        status.readiness = if self.task.spec.ready.is_some() {
            Readiness::Starting
        } else {
            Readiness::Immediate
        };
        status.probe_failure = None;
        self.run_was_ready = self.task.spec.ready.is_none();
        self.unhealthy = None;
        self.stages_running = true;
        self.ended_before_stop = false;

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
            self.task.status.readiness = Readiness::Immediate;
            self.run_was_ready = false;
            drop(permit);
            if let Some(marker) = self.end_run(Outcome::FailedToStart { reason }) {
                self.task.drain_target.marker(&marker).await;
            }
            return;
        };
        self.ever_spawned = true;
        if let Some(log) = &self.task.drain_target.log {
            // Before the drains start: the first line may be the one.
            log.arm();
        }

        let mut pipes = run::Pipes::new();
        let mut drains = JoinSet::new();
        for (stage, stream, fd) in spawned.outputs {
            pipes.watch(fd.as_fd());
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
            pipes,
            cgroup,
            self.task.reaper.clone(),
            stage_count,
        );
        self.set_live(pgid, run.cgroup_dir());
        self.state = State::Running { wait_until: None };
        self.publish();
        self.start_probes();
        if let Some(reason) = &spawn_failure {
            self.say(
                Level::Error,
                format!("{}: a stage failed to start: {reason}", self.task.spec.name),
            );
        }

        let stop = self.follow(&mut run).await;
        self.probes = None;
        if let Some(log) = &self.task.drain_target.log {
            log.disarm();
        }

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
        if let Some(marker) = self.end_run(outcome) {
            self.task.drain_target.marker(&marker).await;
        }
    }

    /// Starts the probes of the run that just started, if the job has any.
    fn start_probes(&mut self) {
        let spec = &self.task.spec;
        if spec.ready.is_none() && spec.alive.is_none() {
            return;
        }
        let (task, events) = ProbeRun {
            name: spec.name.clone(),
            ready: spec.ready.clone(),
            alive: spec.alive.clone(),
            log: self.task.drain_target.log.clone(),
            reaper: self.task.reaper.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            grid: self.task.started_at,
        }
        .spawn();
        self.probes = Some(Probes { task, events });
    }

    /// What a probe of the running job found.
    fn on_probe(&mut self, event: Option<ProbeEvent>, run: &mut run::Run) {
        let name = self.task.spec.name.clone();
        match event {
            // The probes are done (ready, and no liveness probe).
            None => self.probes = None,
            Some(ProbeEvent::Ready) => {
                let after = self
                    .task
                    .status
                    .started_at
                    .map(|s| s.elapsed())
                    .unwrap_or_default();
                self.task.status.readiness = Readiness::Ready { after };
                self.task.status.probe_failure = None;
                self.run_was_ready = true;
                self.say(
                    Level::Info,
                    format!("{name} is ready after {}", crate::fmt::brief(after)),
                );
                self.publish();
            }
            Some(ProbeEvent::Failed(reason)) => {
                self.task.status.probe_failure = Some(reason);
                self.publish();
            }
            Some(ProbeEvent::Passed) => {
                self.task.status.probe_failure = None;
                self.publish();
            }
            Some(ProbeEvent::GaveUp(failure, reason)) => {
                self.probes = None;
                self.task.status.probe_failure = Some(reason.clone());
                self.unhealthy = Some(reason.clone());
                let then = match self.task.spec.restart {
                    crate::config::RestartPolicy::No => "stopping it",
                    _ => "stopping it (its restart policy decides what follows)",
                };
                self.say(Level::Warn, format!("{name}: {reason}; {then}"));
                let t = state::on_probe_failure(self.state, failure, &self.facts());
                self.enter(t, Some(run));
            }
        }
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
            self.stages_running = phase == run::Phase::Stages;
            self.publish();
            if phase == run::Phase::Over {
                return match self.state {
                    State::Stopping { reason, .. } => Some(reason),
                    _ => None,
                };
            }
            if !matches!(self.state, State::Running { .. }) {
                // Stopping (or held at shutdown): what the probes say no longer matters.
                self.probes = None;
            }
            let deadline = state::next_deadline(self.state, self.task.status.timeout_at);
            let sleep = sleep_until(deadline.unwrap_or_else(Instant::now).into());
            let stall_check = self.stall_check_at();
            let stall_sleep = sleep_until(stall_check.unwrap_or_else(Instant::now).into());
            let probing = self.probes.is_some();
            tokio::select! {
                event = next_probe_event(self.probes.as_mut()), if probing => {
                    self.on_probe(event, run);
                }
                gate = self.task.gate.recv() => {
                    if let Some(Gate::DependentsStopped) = gate {
                        let t = state::on_dependents_stopped(self.state, &self.facts());
                        self.enter(t, Some(run));
                    }
                }
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
                control = self.task.controls.recv() => {
                    self.control(control.unwrap_or(Control::Shutdown), Some(run));
                }
                _ = sleep, if deadline.is_some() => {
                    let t = state::on_deadline(self.state, self.task.status.timeout_at, &self.facts());
                    self.enter(t, Some(run));
                }
                _ = stall_sleep, if stall_check.is_some() => self.check_stall(run),
            }
        }
    }

    /// Since when the run has been quiet: its start, its last output, or the last tick
    /// in which it used more than a trace of CPU, whichever came last.
    fn last_activity(&self) -> Option<Instant> {
        let started = self.task.status.started_at?;
        let output = self.task.drain_target.last_output.last();
        let cpu = super::lock_live(&self.task.live)
            .get(&self.task.id)
            .and_then(|tree| tree.cpu_moved_at);
        [Some(started), output, cpu].into_iter().flatten().max()
    }

    /// When to look whether a running job has stalled (None without `stall`): when its
    /// quiet spell would reach `stall`, or (already quiet) a second later, to see it end.
    fn stall_check_at(&self) -> Option<Instant> {
        let stall = self.task.spec.stall?;
        if !matches!(self.state, State::Running { .. }) {
            return None;
        }
        if self.task.status.quiet_since.is_some() {
            return Some(Instant::now() + Duration::from_secs(1));
        }
        Some(state::deadline_after(self.last_activity()?, stall))
    }

    /// A running job that wrote nothing and used almost no CPU for its `stall` is quiet:
    /// its row says so, and `on_stall` warns, stops it or restarts it.
    fn check_stall(&mut self, run: &mut run::Run) {
        let (Some(stall), Some(since)) = (self.task.spec.stall, self.last_activity()) else {
            return;
        };
        let quiet = Instant::now().saturating_duration_since(since) >= stall;
        if !quiet {
            if self.task.status.quiet_since.take().is_some() {
                self.publish();
            }
            return;
        }
        if self.task.status.quiet_since.is_some() {
            return;
        }
        self.task.status.quiet_since = Some(since);
        let name = self.task.spec.name.clone();
        let what = format!(
            "no output and almost no CPU for {}",
            humantime::format_duration(stall)
        );
        match self.task.spec.on_stall {
            crate::config::OnStall::Warn => {
                self.say(Level::Warn, format!("{name} is quiet: {what}"));
                self.publish();
            }
            on_stall => {
                let restart = on_stall == crate::config::OnStall::Restart;
                self.unhealthy = Some(format!("stalled: {what}"));
                self.say(
                    Level::Warn,
                    format!(
                        "{name} stalled ({what}): {}",
                        if restart {
                            "restarting it"
                        } else {
                            "stopping it"
                        }
                    ),
                );
                let failure = state::ProbeFailure::Stalled { restart };
                let t = state::on_probe_failure(self.state, failure, &self.facts());
                self.enter(t, Some(run));
            }
        }
    }

    /// The run is over: record it, then let the state machine say what follows.
    /// Returns the marker line to write into the job's output when it restarts (or
    /// gives up restarting).
    fn end_run(&mut self, outcome: Outcome) -> Option<String> {
        let ended = Instant::now();
        let status = &mut self.task.status;
        status.ended_at = Some(ended);
        let lasted = status.started_at.map_or(Duration::ZERO, |started| {
            ended.saturating_duration_since(started)
        });
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
        if lasted >= self.task.spec.backoff_reset {
            // It stayed up: a crash now is not part of a crash loop.
            self.attempt = 0;
        }
        let end = state::RunEnd {
            succeeded: outcome.is_success(),
            policy: self.task.spec.restart,
            attempt: self.attempt,
            max_restarts: self.task.spec.max_restarts,
            backoff_max: self.task.spec.backoff_max,
        };
        let t = state::on_run_end(self.state, end, &self.facts());
        if matches!(t.next, State::Backoff { .. }) {
            self.attempt += 1;
        }
        let marker = self.marker(&outcome, lasted, &t, ended);
        // The run's final snapshot says whether the job starts again by itself, so a
        // consumer never takes a job about to be restarted for a settled one.
        self.task.status.restart_pending =
            matches!(t.next, State::Backoff { .. } | State::Queued { .. });
        self.state = t.next;
        // The graph learns first (a consumer that acts on this snapshot, e.g. a shutdown
        // for `exit_with`, finds the job already gone there).
        self.update_graph();
        self.emit();
        for effect in t.effects {
            self.perform(effect, None);
        }
        self.publish();
        marker
    }

    /// `── exited 1 after 3.2s; restart 3 in 400ms ──`, for a run that is followed by a
    /// restart (or after which the policy gave up).
    fn marker(
        &self,
        outcome: &Outcome,
        lasted: Duration,
        t: &Transition,
        now: Instant,
    ) -> Option<String> {
        let what = match outcome {
            Outcome::Exited { code } => format!("exited {code}"),
            Outcome::Killed { signal } => format!("killed by {}", signal.as_str()),
            Outcome::TimedOut { .. } => "timed out".to_string(),
            Outcome::FailedToStart { reason } => format!("failed to start ({reason})"),
            Outcome::Stopped { .. } => "stopped".to_string(),
            Outcome::Unhealthy { reason, .. } => reason.clone(),
            Outcome::Skipped { .. } => return None,
        };
        let brief = crate::fmt::brief;
        let next = self.task.status.restarts + 1;
        let then = match t.next {
            State::Backoff { until } => format!(
                "restart {next} in {}",
                brief(until.saturating_duration_since(now))
            ),
            State::Queued { restart: true } => format!("restart {next} now"),
            State::Idle
                if t.effects
                    .iter()
                    .any(|e| matches!(e, Effect::Say(_, text) if text.contains("gave up"))) =>
            {
                let max = self.task.spec.max_restarts.unwrap_or(0);
                format!(
                    "gave up after {max} restart{} in a row",
                    if max == 1 { "" } else { "s" }
                )
            }
            _ => return None,
        };
        Some(format!("── {what} after {}; {then} ──", brief(lasted)))
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
            (
                Some(StopReason::NotReady | StopReason::NotAlive | StopReason::Stalled),
                code,
                signal,
            ) => Outcome::Unhealthy {
                signal,
                code,
                reason: self
                    .unhealthy
                    .clone()
                    .unwrap_or_else(|| "a probe failed".into()),
            },
            // Stopped on purpose: not a failure, however it ended.
            (
                Some(
                    StopReason::User
                    | StopReason::Shutdown
                    | StopReason::OtherFailed
                    | StopReason::Restart,
                ),
                code,
                signal,
            ) if (code.is_some() || signal.is_some()) && !self.ended_before_stop => {
                Outcome::Stopped { signal, code }
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
                cpu_moved_at: None,
            },
        );
        self.task.sample_soon.notify_one();
    }

    fn clear_live(&self) {
        super::lock_live(&self.task.live).remove(&self.task.id);
    }
}

/// The next event of the run's probes (None once they are done). Cancel safe.
async fn next_probe_event(probes: Option<&mut Probes>) -> Option<ProbeEvent> {
    match probes {
        Some(probes) => probes.events.recv().await,
        None => std::future::pending().await,
    }
}
