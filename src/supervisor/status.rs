//! What the supervisor reports: job and stage states, outcomes, and events.
//!
//! Every status change is sent as a full [`JobStatus`] snapshot, so a consumer that applies
//! events in order always holds the latest truth and can never miss a transition.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::Condition;

/// Index of a job in the supervisor's job list (stable for the run).
pub type JobId = usize;

/// Why a job is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingReason {
    /// `autostart = false`, or stopped by the user: waits for a start command.
    Manual,
    /// Waiting for a slot under `max_parallel`.
    Queued,
    /// Waiting to be restarted by its restart policy.
    Backoff { until: Instant },
}

/// Why forkyard is stopping a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The user (or an API caller) asked for it.
    User,
    /// The job's `timeout` expired.
    Timeout,
    /// A `wait(deadline)` ran out.
    WaitDeadline,
    /// Stopping in order to start again.
    Restart,
    /// forkyard is shutting down (quit, end of run, SIGINT/SIGTERM/SIGHUP).
    Shutdown,
    /// `--kill-others-on-fail`: another job failed.
    OtherFailed,
    /// The run's own deadline (`settings.headless_timeout`) passed: the result is "timed
    /// out", and the restart policy does not start it again.
    Expired,
    /// Its `ready` probe gave up (`retries`, or a `log` probe's `timeout`): a failure, so
    /// the restart policy decides.
    NotReady,
    /// Its `alive` probe failed `failures` times in a row: a failure, so the restart
    /// policy decides.
    NotAlive,
    /// It stalled (`stall`: no output and almost no CPU for that long) and `on_stall`
    /// stops it: a failure; `on_stall` (not the policy) says whether it restarts.
    Stalled,
}

impl StopReason {
    /// Whether a run stopped for this reason is a failure of the job (else it was
    /// stopped on purpose, or for a deadline, which has its own result).
    pub fn is_probe_failure(self) -> bool {
        matches!(
            self,
            StopReason::NotReady | StopReason::NotAlive | StopReason::Stalled
        )
    }
}

/// The life of a job: pending -> running -> stopping -> finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending(PendingReason),
    Running,
    /// The stop signal was sent; SIGKILL follows at `kill_at` if the group is still alive.
    Stopping {
        signal: Signal,
        kill_at: Instant,
        reason: StopReason,
    },
    Finished(Outcome),
}

/// How a run of a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited {
        code: i32,
    },
    Killed {
        signal: Signal,
    },
    /// The timeout expired and forkyard stopped the job; `signal`/`code` say how it ended.
    TimedOut {
        signal: Option<Signal>,
        code: Option<i32>,
    },
    FailedToStart {
        reason: String,
    },
    /// Stopped on purpose: by the user, by quit or a signal to forkyard, by the shutdown
    /// of the run (`exit_with`), because another job failed (`--kill-others-on-fail`).
    /// Not a failure. `signal`/`code` say how it ended.
    Stopped {
        signal: Option<Signal>,
        code: Option<i32>,
    },
    /// forkyard stopped it because a probe failed (`reason`: never ready, not alive). A
    /// failure.
    Unhealthy {
        signal: Option<Signal>,
        code: Option<i32>,
        reason: String,
    },
    /// Never started: a dependency can no longer satisfy its condition (`reason`, e.g.
    /// `db failed (exit 1)`). Not a failure of its own.
    Skipped {
        reason: String,
    },
}

/// What a result amounts to, for counts, colours and the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultClass {
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
    Skipped,
}

impl ResultClass {
    /// Whether it makes the run fail (exit status 1).
    pub fn is_failure(self) -> bool {
        matches!(self, ResultClass::Failed | ResultClass::TimedOut)
    }

    /// The machine name in reports: succeeded | failed | timed_out | stopped | skipped.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultClass::Succeeded => "succeeded",
            ResultClass::Failed => "failed",
            ResultClass::TimedOut => "timed_out",
            ResultClass::Stopped => "stopped",
            ResultClass::Skipped => "skipped",
        }
    }
}

impl Outcome {
    /// Exit status 0 (a stop or a skip is not a success, nor a failure: see [`Outcome::class`]).
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Exited { code: 0 })
    }

    pub fn class(&self) -> ResultClass {
        match self {
            Outcome::Exited { code: 0 } => ResultClass::Succeeded,
            Outcome::Exited { .. }
            | Outcome::Killed { .. }
            | Outcome::FailedToStart { .. }
            | Outcome::Unhealthy { .. } => ResultClass::Failed,
            Outcome::TimedOut { .. } => ResultClass::TimedOut,
            Outcome::Stopped { .. } => ResultClass::Stopped,
            Outcome::Skipped { .. } => ResultClass::Skipped,
        }
    }

    /// A failure of the job itself (exit != 0, signal, timeout, failed to start, a probe);
    /// a stop or a skip is not one.
    pub fn is_failure(&self) -> bool {
        self.class().is_failure()
    }

    /// The stable machine name used in reports: exited | killed | timed_out |
    /// failed_to_start | stopped | unhealthy | skipped.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Exited { .. } => "exited",
            Outcome::Killed { .. } => "killed",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::FailedToStart { .. } => "failed_to_start",
            Outcome::Stopped { .. } => "stopped",
            Outcome::Unhealthy { .. } => "unhealthy",
            Outcome::Skipped { .. } => "skipped",
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Outcome::Exited { code } => Some(*code),
            Outcome::TimedOut { code, .. }
            | Outcome::Stopped { code, .. }
            | Outcome::Unhealthy { code, .. } => *code,
            _ => None,
        }
    }

    pub fn signal(&self) -> Option<Signal> {
        match self {
            Outcome::Killed { signal } => Some(*signal),
            Outcome::TimedOut { signal, .. }
            | Outcome::Stopped { signal, .. }
            | Outcome::Unhealthy { signal, .. } => *signal,
            _ => None,
        }
    }

    /// Why, for results that have a reason (failed to start, unhealthy, skipped).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::FailedToStart { reason }
            | Outcome::Unhealthy { reason, .. }
            | Outcome::Skipped { reason } => Some(reason),
            _ => None,
        }
    }

    /// The status a run ending like this gives a process that exits with it
    /// (`exit_with`): the code, 128 + signal, 124 for a timeout (as `timeout(1)`), 127
    /// when it could not start (as a shell), 1 when it was skipped, 0 when stopped.
    pub fn exit_status(&self) -> i32 {
        let how = |signal: &Option<Signal>, code: &Option<i32>, otherwise: i32| match (signal, code)
        {
            (Some(signal), _) => 128 + *signal as i32,
            (None, Some(code)) => *code,
            (None, None) => otherwise,
        };
        match self {
            Outcome::Exited { code } => *code,
            Outcome::Killed { signal } => 128 + *signal as i32,
            Outcome::TimedOut { .. } => 124,
            Outcome::FailedToStart { .. } => 127,
            Outcome::Unhealthy { signal, code, .. } => match how(signal, code, 1) {
                0 => 1,
                status => status,
            },
            Outcome::Stopped { .. } => 0,
            Outcome::Skipped { .. } => 1,
        }
    }

    /// Short human form: `exit 0`, `SIGTERM`, `timed out (SIGTERM)`, `failed to start: ...`.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited { code } => format!("exit {code}"),
            Outcome::Killed { signal } => signal.as_str().to_string(),
            Outcome::TimedOut {
                signal: Some(signal),
                ..
            } => format!("timed out ({})", signal.as_str()),
            Outcome::TimedOut {
                code: Some(code), ..
            } => format!("timed out (exit {code})"),
            Outcome::TimedOut { .. } => "timed out".to_string(),
            Outcome::FailedToStart { reason } => format!("failed to start: {reason}"),
            Outcome::Stopped {
                signal: Some(signal),
                ..
            } => format!("stopped ({})", signal.as_str()),
            Outcome::Stopped {
                code: Some(code), ..
            } => format!("stopped (exit {code})"),
            Outcome::Stopped { .. } => "stopped".to_string(),
            Outcome::Unhealthy { reason, .. } => format!("failed: {reason}"),
            Outcome::Skipped { reason } => format!("skipped: {reason}"),
        }
    }
}

/// Whether a running job is ready (see the `ready` probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readiness {
    /// No `ready` probe: ready as soon as it started (or not running).
    #[default]
    Immediate,
    /// Running; its `ready` probe has not passed yet.
    Starting,
    /// Its `ready` probe passed this long after the run started.
    Ready { after: Duration },
}

/// A dependency a waiting job still waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingFor {
    pub name: String,
    pub condition: Condition,
}

/// How one process of a job ended (or why it never ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    NotStarted,
    Running,
    Exited(i32),
    Killed(Signal),
    FailedToStart(String),
}

impl StageState {
    pub fn is_failure(&self) -> bool {
        !matches!(self, StageState::Exited(0) | StageState::Running)
    }

    pub fn describe(&self) -> String {
        match self {
            StageState::NotStarted => "not started".into(),
            StageState::Running => "running".into(),
            StageState::Exited(code) => format!("exit {code}"),
            StageState::Killed(signal) => signal.as_str().into(),
            StageState::FailedToStart(reason) => format!("failed to start: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageStatus {
    /// The argv executed (`/bin/sh -c ...` for shell stages).
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    pub state: StageState,
    /// CPU time of the reaped process and its reaped descendants (rusage).
    pub cpu_time: Duration,
    /// Its main thread's time waiting for a CPU, read just before it was reaped.
    pub cpu_wait: Duration,
}

/// A full snapshot of a job, sent on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub state: JobState,
    /// Process group of the current or last run (stages share it).
    pub pgid: Option<u32>,
    pub stages: Vec<StageStatus>,
    /// Start of the current or last run.
    pub started_at: Option<Instant>,
    /// End of the last run (None while running).
    pub ended_at: Option<Instant>,
    /// Restarts so far (policy or user).
    pub restarts: u32,
    /// Deadline of a pending `wait(deadline)`.
    pub wait_deadline: Option<Instant>,
    /// When the job's `timeout` expires for the current run.
    pub timeout_at: Option<Instant>,
    /// Processes still alive in the group after every stage exited.
    pub stragglers: bool,
    /// Processes of the run that left its process group (`setsid`, daemons) and are
    /// being stopped now that the group is empty: the job is not over until they are.
    pub left_group: usize,
    /// Since when the running job has written nothing and used almost no CPU, once
    /// that has lasted its `stall` (None while it is active, or without `stall`).
    pub quiet_since: Option<Instant>,
    /// The job's process tree at the moment it was stopped for a timeout, a stall or a
    /// failed liveness check, or needed SIGKILL after its grace: what hung, kept for the
    /// report and the tree pane.
    pub tree_at_stop: Option<std::sync::Arc<super::tree::Postmortem>>,
    /// The run finished but the job will start again by itself (restart policy, or a
    /// restart command): a `Finished` state that is not final.
    pub restart_pending: bool,
    /// CPU time of orphaned descendants forkyard reaped for this run.
    pub orphan_cpu: Duration,
    /// Their time waiting for a CPU (read before each was reaped).
    pub orphan_wait: Duration,
    /// Wall time of every finished run, added up.
    pub total_elapsed: Duration,
    /// CPU time (rusage) of every finished run, added up.
    pub total_cpu: Duration,
    /// Time waiting for a CPU of the reaped processes of every finished run, added up.
    pub total_cpu_wait: Duration,
    /// Runs started so far (1 + restarts once it ran).
    pub runs: u32,
    /// While it waits for dependencies (state `Pending`), the ones not satisfied yet, in
    /// config order. A job waiting only on jobs that will not start without a command is
    /// shown as `Pending(Manual)` (settled) with this list.
    pub waiting_for: Vec<WaitingFor>,
    /// Of the current or last run.
    pub readiness: Readiness,
    /// The latest failed check of a probe of the current run, cleared when one passes.
    pub probe_failure: Option<String>,
    /// forkyard shuts down and this job keeps running until the jobs that depend on it
    /// have stopped.
    pub stopping_after_dependents: bool,
}

impl JobStatus {
    pub fn new(state: JobState, argvs: Vec<Vec<String>>) -> Self {
        JobStatus {
            state,
            pgid: None,
            stages: argvs
                .into_iter()
                .map(|argv| StageStatus {
                    argv,
                    pid: None,
                    state: StageState::NotStarted,
                    cpu_time: Duration::ZERO,
                    cpu_wait: Duration::ZERO,
                })
                .collect(),
            started_at: None,
            ended_at: None,
            restarts: 0,
            wait_deadline: None,
            timeout_at: None,
            stragglers: false,
            left_group: 0,
            quiet_since: None,
            tree_at_stop: None,
            restart_pending: false,
            orphan_cpu: Duration::ZERO,
            orphan_wait: Duration::ZERO,
            total_elapsed: Duration::ZERO,
            total_cpu: Duration::ZERO,
            total_cpu_wait: Duration::ZERO,
            runs: 0,
            waiting_for: Vec::new(),
            readiness: Readiness::Immediate,
            probe_failure: None,
            stopping_after_dependents: false,
        }
    }

    /// Waiting for dependencies (not settled unless it waits on jobs that need a command).
    pub fn is_waiting(&self) -> bool {
        !self.waiting_for.is_empty() && matches!(self.state, JobState::Pending(_))
    }

    /// The result of a finished job, as a class.
    pub fn result(&self) -> Option<ResultClass> {
        self.outcome().map(Outcome::class)
    }

    /// Nothing more will happen to this job without a command: it finished (and will not
    /// be restarted) or waits to be started by hand.
    pub fn is_settled(&self) -> bool {
        match self.state {
            JobState::Finished(_) => !self.restart_pending,
            JobState::Pending(PendingReason::Manual) => true,
            _ => false,
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, JobState::Running | JobState::Stopping { .. })
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            JobState::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Wall time of the current (or last) run.
    pub fn elapsed(&self, now: Instant) -> Option<Duration> {
        let start = self.started_at?;
        Some(
            self.ended_at
                .unwrap_or(now)
                .saturating_duration_since(start),
        )
    }

    /// Total CPU of the reaped processes of the last run (rusage of stages and orphans).
    pub fn reaped_cpu(&self) -> Duration {
        self.stages.iter().map(|s| s.cpu_time).sum::<Duration>() + self.orphan_cpu
    }

    /// Time waiting for a CPU of the reaped processes of the last run.
    pub fn reaped_wait(&self) -> Duration {
        self.stages.iter().map(|s| s.cpu_wait).sum::<Duration>() + self.orphan_wait
    }
}

/// A resource sample of a job's whole process tree.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// CPU use since the previous sample, in percent of one core (None on the first one).
    pub cpu_percent: Option<f32>,
    /// Resident memory summed over the tree, in bytes.
    pub rss_bytes: u64,
    /// Cumulative CPU time of the job (live processes plus reaped ones).
    pub cpu_time: Duration,
    /// Cumulative time the run's processes spent runnable but waiting for a CPU
    /// (run-queue delay of each main thread: live ones sampled, reaped ones exact).
    pub cpu_wait: Duration,
    /// Number of live processes in the tree.
    pub processes: usize,
    /// The run is paused: its cgroup frozen, or every process stopped (SIGSTOP/SIGTSTP).
    pub paused: Option<Pause>,
    /// Per live stage (by its pid): cumulative CPU time of the stage and its descendants,
    /// so a running pipeline shows which stage does the work.
    pub stage_cpu: Vec<(u32, Duration)>,
}

/// How a run is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Its cgroup is frozen (`cgroup.freeze`): nothing in it runs, whatever it does.
    Frozen,
    /// Every process of it is stopped by a signal (SIGSTOP, SIGTSTP, …).
    Stopped,
}

/// Machine-wide load from sysinfo, shown beside the jobs' own figures: parallelism
/// below the core count while the machine is at 100 % means something else is using it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineSample {
    /// Busy share of all cores, 0..=100.
    pub cpu_percent: f32,
}

/// What the supervisor sends to its consumer (TUI or headless runner).
// Most events are status snapshots, the largest variant: boxing them would cost an
// allocation per change to save a little queue space on the others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// A job changed; the snapshot is complete.
    Job { id: JobId, status: JobStatus },
    /// Periodic resource sample (~1 Hz while the job runs).
    Sample { id: JobId, sample: Sample },
    /// Machine-wide CPU load (~1 Hz while any job runs).
    Machine(MachineSample),
    /// A notice for the user, e.g. "sent SIGTERM to encrypt (pgid 4211)".
    Notice(Notice),
    /// The live process tree of the job a consumer watches (see `Controller::watch_tree`).
    Tree(std::sync::Arc<super::tree::Tree>),
}

/// How much a notice matters; set where the notice is made, so no consumer has to guess
/// from its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something happened as asked ("sent SIGTERM to web").
    Info,
    /// A request did not apply or something needs attention ("cannot kill `x`: queued,
    /// not running").
    Warn,
    /// Something failed ("could not send SIGTERM to web: Operation not permitted").
    Error,
}

/// A message for the user about a job (or the whole run when `job` is None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub job: Option<JobId>,
    pub level: Level,
    pub text: String,
}
