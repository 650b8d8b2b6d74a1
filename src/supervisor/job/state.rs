//! The job's state machine, as pure functions: one [`State`] whose variants carry their
//! data, and one exhaustive `match (state, control)` in [`on_control`] with no catch-all,
//! so a new [`Control`] does not compile until every state has decided what it means.
//!
//! Nothing here touches a process: a transition returns the next state and the
//! [`Effect`]s for the task to carry out (signals, notices). Deadlines, the end of a
//! run, the verdict on its dependencies, a failed probe and the end of its dependents
//! at shutdown are transitions too ([`on_deadline`], [`on_run_end`],
//! [`on_dependencies`], [`on_probe_failure`], [`on_dependents_stopped`]), each an
//! exhaustive match over [`State`]. That keeps every (state, input) pair testable
//! without a child.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::RestartPolicy;
use crate::supervisor::status::{Level, StopReason};

/// Commands a job accepts (from the TUI, the headless runner, tests, later the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Start a job that is not running (pending, finished, or waiting to restart).
    Start,
    /// Stop signal to the job's processes, SIGKILL after grace. A stopped job is not
    /// restarted by its policy.
    Stop,
    /// SIGKILL to every process of the job now.
    Kill,
    /// Stop if running, then start again.
    Restart,
    /// Let it run until the deadline, then stop it.
    Wait(Duration),
    /// Send any signal to the job's process group.
    Signal(Signal),
    /// `--kill-others-on-fail`: stop, and remember why.
    StopBecauseOtherFailed,
    /// The run's own deadline passed (e.g. `settings.headless_timeout`): stop it as if
    /// its `timeout` had expired (its result is "timed out").
    Expire,
    /// forkyard is exiting: stop if running, then end the task.
    Shutdown,
}

/// What the job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waits for a start: never started (`autostart = false`, or taken out of the
    /// queue), or finished for good.
    Idle,
    /// Wants to run and waits until what it depends on allows it (`depends_on`); then it
    /// queues. `restart`: the run will count as a restart.
    Waiting { restart: bool },
    /// Wants to run and waits for a slot under `max_parallel`. `restart`: the run will
    /// count as a restart.
    Queued { restart: bool },
    /// The restart policy starts it again at `until`.
    Backoff { until: Instant },
    /// A run is in progress; `wait_until` is the deadline of a `wait`.
    Running { wait_until: Option<Instant> },
    /// forkyard shuts down, and the run goes on until every job that depends on this one
    /// has stopped; then it is stopped like any other.
    Holding,
    /// The run is being stopped: the stop signal went out and SIGKILL follows at
    /// `kill_at` (None: SIGKILL was sent). `then` is what follows the end of the run.
    Stopping {
        reason: StopReason,
        kill_at: Option<Instant>,
        then: Then,
    },
    /// The task has ended (forkyard shuts down).
    Gone,
}

/// What happens once a run that is being stopped has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Idle,
    Restart,
    Exit,
}

/// Something the task must do for a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `signal` to the run's process group (the `x` menu): what the user asked for.
    SignalGroup(Signal),
    /// The stop signal to every process of the run: the group and what left it.
    StopAll(Signal),
    /// SIGKILL to every process of the run; `announce`: say so (a deadline's own
    /// notice already does).
    KillAll { announce: bool },
    /// A notice for the user.
    Say(Level, String),
    /// The job will not start: its result is "skipped" for this reason.
    Skip(String),
}

/// What a transition may look at besides the state.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub name: &'a str,
    pub stop_signal: Signal,
    pub grace: Duration,
    /// The job ran at least once (a start after that counts as a restart).
    pub has_run: bool,
    /// It has `depends_on`: a start waits for them.
    pub has_dependencies: bool,
    /// Some job that depends on this one still runs (asked only for a shutdown).
    pub dependents_running: bool,
    pub now: Instant,
}

/// What the dependencies of a waiting job allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepsVerdict {
    /// Every condition holds: it may start.
    Met,
    /// Some condition can no longer hold (a dependency failed, was stopped, gave up...).
    Impossible(String),
}

/// Which probe gave up on a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The `ready` probe ran out of `retries` (or a `log` probe of its `timeout`).
    NotReady,
    /// The `alive` probe failed `failures` times in a row.
    NotAlive,
    /// It stalled and `on_stall` stops it (`restart`: then starts it again).
    Stalled { restart: bool },
}

/// The next state and what to do to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub next: State,
    pub effects: Vec<Effect>,
}

impl Transition {
    fn to(next: State) -> Self {
        Transition {
            next,
            effects: Vec::new(),
        }
    }

    fn with(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    fn say(self, level: Level, text: String) -> Self {
        self.with(Effect::Say(level, text))
    }
}

/// `now + after`, saturating: a deadline of `1e19` seconds is "a year from now", not an
/// overflow.
pub fn deadline_after(now: Instant, after: Duration) -> Instant {
    let year = Duration::from_secs(86_400 * 365);
    now.checked_add(after.min(year))
        .unwrap_or_else(|| now.checked_add(year).unwrap_or(now))
}

/// The one place that decides what every control means in every state.
pub fn on_control(state: State, control: Control, facts: &Facts<'_>) -> Transition {
    use Control as C;
    use State as S;
    let name = facts.name;
    let same = Transition::to(state);
    let stopping = |reason: StopReason, then: Then| {
        Transition::to(S::Stopping {
            reason,
            kill_at: Some(deadline_after(facts.now, facts.grace)),
            then,
        })
        .with(Effect::StopAll(facts.stop_signal))
    };
    let not_running = |what: String, why: &str| {
        Transition::to(state).say(
            Level::Warn,
            format!("cannot {what} `{name}`: {why}not running"),
        )
    };
    let signal_name = |signal: Signal| format!("send {} to", signal.as_str());
    // A start from rest waits for the job's dependencies, if it has any.
    let start = |restart: bool| {
        Transition::to(if facts.has_dependencies {
            S::Waiting { restart }
        } else {
            S::Queued { restart }
        })
    };
    match (state, control) {
        (S::Gone, _) => same,

        (S::Idle, C::Start) => start(false),
        (S::Idle, C::Restart) => start(facts.has_run),
        (S::Idle, C::Stop) => not_running("stop".into(), ""),
        (S::Idle, C::Kill) => not_running("kill".into(), ""),
        (S::Idle, C::Wait(_)) => not_running("wait for".into(), ""),
        (S::Idle, C::Signal(signal)) => not_running(signal_name(signal), ""),
        (S::Idle, C::StopBecauseOtherFailed | C::Expire) => same,
        (S::Idle, C::Shutdown) => Transition::to(S::Gone),

        (S::Waiting { .. }, C::Start | C::Restart) => same.say(
            Level::Info,
            format!("{name} is waiting for its dependencies: it starts when they allow"),
        ),
        (S::Waiting { .. }, C::Stop) => Transition::to(S::Idle).say(
            Level::Info,
            format!("{name} stopped waiting for its dependencies and will not start"),
        ),
        (S::Waiting { .. }, C::Kill) => not_running("kill".into(), "waiting for dependencies, "),
        (S::Waiting { .. }, C::Wait(_)) => {
            not_running("wait for".into(), "waiting for dependencies, ")
        }
        (S::Waiting { .. }, C::Signal(signal)) => {
            not_running(signal_name(signal), "waiting for dependencies, ")
        }
        (S::Waiting { .. }, C::StopBecauseOtherFailed | C::Expire) => Transition::to(S::Idle),
        (S::Waiting { .. }, C::Shutdown) => Transition::to(S::Gone),

        (S::Queued { .. }, C::Start | C::Restart) => same.say(
            Level::Info,
            format!("{name} is queued: it starts when a slot is free"),
        ),
        (S::Queued { .. }, C::Stop) => Transition::to(S::Idle).say(
            Level::Info,
            format!("{name} left the queue and will not start"),
        ),
        (S::Queued { .. }, C::Kill) => not_running("kill".into(), "queued, "),
        (S::Queued { .. }, C::Wait(_)) => not_running("wait for".into(), "queued, "),
        (S::Queued { .. }, C::Signal(signal)) => not_running(signal_name(signal), "queued, "),
        (S::Queued { .. }, C::StopBecauseOtherFailed | C::Expire) => Transition::to(S::Idle),
        (S::Queued { .. }, C::Shutdown) => Transition::to(S::Gone),

        (S::Backoff { .. }, C::Start | C::Restart) => Transition::to(S::Queued { restart: true }),
        (S::Backoff { .. }, C::Stop) => {
            Transition::to(S::Idle).say(Level::Info, format!("{name} will not be restarted"))
        }
        (S::Backoff { .. }, C::Kill) => {
            not_running("kill".into(), "waiting to restart (t cancels it), ")
        }
        (S::Backoff { .. }, C::Wait(_)) => not_running("wait for".into(), "waiting to restart, "),
        (S::Backoff { .. }, C::Signal(signal)) => {
            not_running(signal_name(signal), "waiting to restart, ")
        }
        (S::Backoff { .. }, C::StopBecauseOtherFailed | C::Expire) => Transition::to(S::Idle),
        (S::Backoff { .. }, C::Shutdown) => Transition::to(S::Gone),

        (S::Running { .. }, C::Start) => {
            same.say(Level::Info, format!("{name} is already running"))
        }
        (S::Running { .. }, C::Stop) => stopping(StopReason::User, Then::Idle),
        (S::Running { .. }, C::Kill) => Transition::to(S::Stopping {
            reason: StopReason::User,
            kill_at: None,
            then: Then::Idle,
        })
        .with(Effect::KillAll { announce: true }),
        (S::Running { .. }, C::Restart) => stopping(StopReason::Restart, Then::Restart),
        (S::Running { .. }, C::Wait(within)) => Transition::to(S::Running {
            wait_until: Some(deadline_after(facts.now, within)),
        })
        .say(
            Level::Info,
            format!(
                "waiting up to {} for {name}, then stopping it",
                humantime::format_duration(within.min(Duration::from_secs(86_400 * 365)))
            ),
        ),
        (S::Running { .. }, C::Signal(signal)) => same.with(Effect::SignalGroup(signal)),
        (S::Running { .. }, C::StopBecauseOtherFailed) => {
            stopping(StopReason::OtherFailed, Then::Idle)
        }
        (S::Running { .. }, C::Expire) => stopping(StopReason::Expired, Then::Idle),
        (S::Running { .. }, C::Shutdown) if facts.dependents_running => Transition::to(S::Holding)
            .say(
                Level::Info,
                format!("{name} stops once the jobs that depend on it have stopped"),
            ),
        (S::Running { .. }, C::Shutdown) => stopping(StopReason::Shutdown, Then::Exit),

        (S::Holding, C::Start | C::Restart) => same.say(
            Level::Warn,
            format!("cannot restart `{name}`: forkyard is shutting down"),
        ),
        // Asked for by name: it need not wait for its dependents any more.
        (S::Holding, C::Stop) => stopping(StopReason::Shutdown, Then::Exit),
        (S::Holding, C::Kill) => Transition::to(S::Stopping {
            reason: StopReason::Shutdown,
            kill_at: None,
            then: Then::Exit,
        })
        .with(Effect::KillAll { announce: true }),
        (S::Holding, C::Wait(_)) => same.say(
            Level::Warn,
            format!("cannot wait for `{name}`: forkyard is shutting down"),
        ),
        (S::Holding, C::Signal(signal)) => same.with(Effect::SignalGroup(signal)),
        (S::Holding, C::StopBecauseOtherFailed | C::Expire | C::Shutdown) => same,

        (
            S::Stopping {
                reason,
                kill_at,
                then,
            },
            control,
        ) => {
            let with_then = |then: Then| S::Stopping {
                reason,
                kill_at,
                then,
            };
            match control {
                C::Start | C::Restart if then == Then::Exit => same.say(
                    Level::Warn,
                    format!("cannot restart `{name}`: forkyard is shutting down"),
                ),
                C::Start | C::Restart => Transition::to(with_then(Then::Restart)).say(
                    Level::Info,
                    format!("{name} starts again once it has stopped"),
                ),
                C::Stop if then == Then::Restart => Transition::to(with_then(Then::Idle))
                    .say(Level::Info, format!("{name} will not be restarted")),
                C::Stop => same.say(
                    Level::Info,
                    format!("{name} is already stopping (K kills it now)"),
                ),
                C::Kill => Transition::to(S::Stopping {
                    reason,
                    kill_at: None,
                    then,
                })
                .with(Effect::KillAll { announce: true }),
                C::Wait(_) => same.say(
                    Level::Warn,
                    format!("cannot wait for `{name}`: it is already stopping"),
                ),
                C::Signal(signal) => same.with(Effect::SignalGroup(signal)),
                // Another job failed, or the run's deadline passed: no restart follows.
                C::StopBecauseOtherFailed | C::Expire if then == Then::Restart => {
                    Transition::to(with_then(Then::Idle))
                }
                C::StopBecauseOtherFailed | C::Expire => same,
                C::Shutdown => Transition::to(S::Stopping {
                    // A restart that turns into a shutdown is a shutdown; a timeout stays
                    // a timeout (it decides the result).
                    reason: if reason == StopReason::Restart {
                        StopReason::Shutdown
                    } else {
                        reason
                    },
                    kill_at,
                    then: Then::Exit,
                }),
            }
        }
    }
}

/// A deadline of the state passed: the job's `timeout` (`timeout_at`), a `wait`, the end
/// of the grace period, the end of a restart backoff.
pub fn on_deadline(state: State, timeout_at: Option<Instant>, facts: &Facts<'_>) -> Transition {
    let now = facts.now;
    let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
    match state {
        // Its own timeout still holds while it waits for its dependents.
        State::Holding if due(timeout_at) => Transition::to(State::Stopping {
            reason: StopReason::Timeout,
            kill_at: Some(deadline_after(now, facts.grace)),
            then: Then::Exit,
        })
        .with(Effect::StopAll(facts.stop_signal)),
        State::Running { wait_until } => {
            let reason = if due(timeout_at) {
                StopReason::Timeout
            } else if due(wait_until) {
                StopReason::WaitDeadline
            } else {
                return Transition::to(state);
            };
            Transition::to(State::Stopping {
                reason,
                kill_at: Some(deadline_after(now, facts.grace)),
                then: Then::Idle,
            })
            .with(Effect::StopAll(facts.stop_signal))
        }
        State::Stopping {
            reason,
            kill_at,
            then,
        } if due(kill_at) => Transition::to(State::Stopping {
            reason,
            kill_at: None,
            then,
        })
        .with(Effect::KillAll { announce: false })
        .say(
            Level::Warn,
            format!(
                "{} outlived its grace period of {}: sent SIGKILL",
                facts.name,
                humantime::format_duration(facts.grace)
            ),
        ),
        State::Backoff { until } if until <= now => Transition::to(State::Queued { restart: true }),
        State::Idle
        | State::Waiting { .. }
        | State::Queued { .. }
        | State::Backoff { .. }
        | State::Holding
        | State::Stopping { .. }
        | State::Gone => Transition::to(state),
    }
}

/// The dependencies of the job have decided: it may start, or it never will.
pub fn on_dependencies(state: State, verdict: &DepsVerdict, facts: &Facts<'_>) -> Transition {
    match (state, verdict) {
        (State::Waiting { restart }, DepsVerdict::Met) => Transition::to(State::Queued { restart }),
        (State::Waiting { .. }, DepsVerdict::Impossible(reason)) => Transition::to(State::Idle)
            .with(Effect::Skip(reason.clone()))
            .say(Level::Warn, format!("{} skipped: {reason}", facts.name)),
        // A verdict that arrives after the job stopped waiting changes nothing.
        (
            State::Idle
            | State::Queued { .. }
            | State::Backoff { .. }
            | State::Running { .. }
            | State::Holding
            | State::Stopping { .. }
            | State::Gone,
            _,
        ) => Transition::to(state),
    }
}

/// A probe gave up on the run: stop it; as for a timeout, the restart policy decides
/// what follows (see [`on_run_end`]).
pub fn on_probe_failure(state: State, failure: ProbeFailure, facts: &Facts<'_>) -> Transition {
    let (reason, then) = match failure {
        ProbeFailure::NotReady => (StopReason::NotReady, Then::Idle),
        ProbeFailure::NotAlive => (StopReason::NotAlive, Then::Idle),
        ProbeFailure::Stalled { restart } => (
            StopReason::Stalled,
            if restart { Then::Restart } else { Then::Idle },
        ),
    };
    match state {
        State::Running { .. } => Transition::to(State::Stopping {
            reason,
            kill_at: Some(deadline_after(facts.now, facts.grace)),
            then,
        })
        .with(Effect::StopAll(facts.stop_signal)),
        // Already on its way out (a stop, a shutdown): the probe has nothing to add.
        State::Idle
        | State::Waiting { .. }
        | State::Queued { .. }
        | State::Backoff { .. }
        | State::Holding
        | State::Stopping { .. }
        | State::Gone => Transition::to(state),
    }
}

/// Every job that depends on this one has stopped: a job held at shutdown is stopped now.
pub fn on_dependents_stopped(state: State, facts: &Facts<'_>) -> Transition {
    match state {
        State::Holding => Transition::to(State::Stopping {
            reason: StopReason::Shutdown,
            kill_at: Some(deadline_after(facts.now, facts.grace)),
            then: Then::Exit,
        })
        .with(Effect::StopAll(facts.stop_signal)),
        State::Idle
        | State::Waiting { .. }
        | State::Queued { .. }
        | State::Backoff { .. }
        | State::Running { .. }
        | State::Stopping { .. }
        | State::Gone => Transition::to(state),
    }
}

/// The next deadline of a state, if it has one: what the task sleeps until.
pub fn next_deadline(state: State, timeout_at: Option<Instant>) -> Option<Instant> {
    match state {
        State::Running { wait_until } => [timeout_at, wait_until].into_iter().flatten().min(),
        State::Holding => timeout_at,
        State::Stopping { kill_at, .. } => kill_at,
        State::Backoff { until } => Some(until),
        State::Idle | State::Waiting { .. } | State::Queued { .. } | State::Gone => None,
    }
}

/// How a run ended, as the restart decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd {
    pub succeeded: bool,
    pub policy: RestartPolicy,
    /// Policy restarts in a row so far (the backoff attempt; a run that stayed up
    /// `backoff_reset` starts it over).
    pub attempt: u32,
    /// None: no limit.
    pub max_restarts: Option<u32>,
    pub backoff_max: Duration,
}

/// What follows the end of a run, and the notice to give, if any.
pub fn on_run_end(state: State, end: RunEnd, facts: &Facts<'_>) -> Transition {
    let by_policy = |state_if_not: State| {
        let wanted = match end.policy {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => !end.succeeded,
            RestartPolicy::Always => true,
        };
        if !wanted {
            return Transition::to(state_if_not);
        }
        if let Some(max) = end.max_restarts
            && end.attempt >= max
        {
            return Transition::to(state_if_not).say(
                Level::Warn,
                format!(
                    "{}: gave up after {max} restart{} in a row",
                    facts.name,
                    if max == 1 { "" } else { "s" }
                ),
            );
        }
        Transition::to(State::Backoff {
            until: deadline_after(facts.now, backoff_delay(end.attempt, end.backoff_max)),
        })
    };
    match state {
        State::Running { .. } => by_policy(State::Idle),
        // A timeout or a failed probe is the job failing, not a user's stop: the policy
        // decides.
        State::Stopping {
            reason: StopReason::Timeout | StopReason::NotReady | StopReason::NotAlive,
            then: Then::Idle,
            ..
        } => by_policy(State::Idle),
        // It ended by itself while shutting down.
        State::Holding => Transition::to(State::Gone),
        State::Stopping { then, .. } => Transition::to(match then {
            Then::Idle => State::Idle,
            Then::Restart => State::Queued { restart: true },
            Then::Exit => State::Gone,
        }),
        State::Idle
        | State::Waiting { .. }
        | State::Queued { .. }
        | State::Backoff { .. }
        | State::Gone => Transition::to(state),
    }
}

/// Restart backoff: 100 ms doubling, at most `max`.
pub fn backoff_delay(attempt: u32, max: Duration) -> Duration {
    let millis = 100u64.saturating_mul(1u64 << attempt.min(40));
    Duration::from_millis(millis).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(now: Instant) -> Facts<'static> {
        Facts {
            name: "x",
            stop_signal: Signal::SIGTERM,
            grace: Duration::from_secs(3),
            has_run: true,
            has_dependencies: false,
            dependents_running: false,
            now,
        }
    }

    /// Every combination of the facts that change what a control means.
    fn all_facts(now: Instant) -> Vec<Facts<'static>> {
        let mut out = Vec::new();
        for has_dependencies in [false, true] {
            for dependents_running in [false, true] {
                out.push(Facts {
                    has_dependencies,
                    dependents_running,
                    ..facts(now)
                });
            }
        }
        out
    }

    fn all_states(now: Instant) -> Vec<State> {
        let later = now + Duration::from_secs(5);
        let mut states = vec![
            State::Idle,
            State::Waiting { restart: false },
            State::Waiting { restart: true },
            State::Holding,
            State::Queued { restart: false },
            State::Queued { restart: true },
            State::Backoff { until: later },
            State::Running { wait_until: None },
            State::Running {
                wait_until: Some(later),
            },
            State::Gone,
        ];
        for reason in [
            StopReason::User,
            StopReason::Timeout,
            StopReason::WaitDeadline,
            StopReason::Restart,
            StopReason::Shutdown,
            StopReason::OtherFailed,
            StopReason::Expired,
            StopReason::NotReady,
            StopReason::NotAlive,
            StopReason::Stalled,
        ] {
            for then in [Then::Idle, Then::Restart, Then::Exit] {
                for kill_at in [Some(later), None] {
                    states.push(State::Stopping {
                        reason,
                        kill_at,
                        then,
                    });
                }
            }
        }
        states
    }

    fn all_controls() -> Vec<Control> {
        vec![
            Control::Start,
            Control::Stop,
            Control::Kill,
            Control::Restart,
            Control::Wait(Duration::from_secs(2)),
            Control::Wait(Duration::from_secs_f64(1e19)),
            Control::Signal(Signal::SIGUSR1),
            Control::StopBecauseOtherFailed,
            Control::Expire,
            Control::Shutdown,
        ]
    }

    fn is_active(state: State) -> bool {
        matches!(
            state,
            State::Running { .. } | State::Holding | State::Stopping { .. }
        )
    }

    /// Every (state, control) pair: signals only reach a run that exists, an active run
    /// never goes idle without its processes' end, a control that does not apply says
    /// why, shutdown always leads to the end of the task.
    #[test]
    fn every_state_answers_every_control() {
        let now = Instant::now();
        for f in all_facts(now) {
            for state in all_states(now) {
                for control in all_controls() {
                    let t = on_control(state, control, &f);
                    let signals = t.effects.iter().any(|e| !matches!(e, Effect::Say(..)));
                    assert!(
                        !signals || is_active(state),
                        "{state:?} + {control:?} signals a run that does not exist: {t:?}"
                    );
                    if is_active(state) {
                        assert!(
                            is_active(t.next),
                            "{state:?} + {control:?} left an active run: {t:?}"
                        );
                    }
                    let unchanged = t.next == state && t.effects.is_empty();
                    let silent_ok = matches!(
                        control,
                        Control::StopBecauseOtherFailed | Control::Expire | Control::Shutdown
                    ) || state == State::Gone;
                    assert!(
                        !unchanged || silent_ok,
                        "{state:?} + {control:?} was dropped without a word"
                    );
                    if control == Control::Shutdown && state != State::Gone {
                        let ends = match t.next {
                            State::Gone | State::Holding => true,
                            State::Stopping { then, .. } => then == Then::Exit,
                            _ => false,
                        };
                        assert!(ends, "{state:?} + Shutdown does not end the task: {t:?}");
                    }
                    if let State::Stopping {
                        kill_at: Some(at), ..
                    } = t.next
                    {
                        assert!(at <= now + Duration::from_secs(86_400 * 366));
                    }
                    if let State::Running {
                        wait_until: Some(at),
                    } = t.next
                    {
                        assert!(at > now, "{state:?} + {control:?}");
                    }
                    // A start waits for dependencies exactly when there are some.
                    if let State::Waiting { .. } = t.next
                        && state != t.next
                    {
                        assert!(f.has_dependencies, "{state:?} + {control:?}");
                    }
                    if t.next == State::Holding && state != State::Holding {
                        assert!(f.dependents_running && control == Control::Shutdown);
                    }
                }
            }
        }
    }

    /// The other inputs, in every state: nothing signals a run that does not exist, an
    /// active run stays active until its processes end, a job held at shutdown is
    /// stopped when its dependents are gone, a verdict only moves a waiting job.
    #[test]
    fn every_state_answers_every_other_input() {
        let now = Instant::now();
        let f = facts(now);
        for state in all_states(now) {
            let mut transitions = vec![
                on_dependencies(state, &DepsVerdict::Met, &f),
                on_dependencies(state, &DepsVerdict::Impossible("db failed".into()), &f),
                on_probe_failure(state, ProbeFailure::NotReady, &f),
                on_probe_failure(state, ProbeFailure::NotAlive, &f),
                on_dependents_stopped(state, &f),
                on_deadline(state, Some(now), &f),
            ];
            for t in transitions.drain(..) {
                let signals = t.effects.iter().any(|e| {
                    matches!(
                        e,
                        Effect::StopAll(_) | Effect::KillAll { .. } | Effect::SignalGroup(_)
                    )
                });
                assert!(!signals || is_active(state), "{state:?}: {t:?}");
                if is_active(state) {
                    assert!(is_active(t.next), "{state:?} left an active run: {t:?}");
                }
            }
            let met = on_dependencies(state, &DepsVerdict::Met, &f);
            match state {
                State::Waiting { restart } => assert_eq!(met.next, State::Queued { restart }),
                _ => assert_eq!(met.next, state),
            }
            let skipped = on_dependencies(state, &DepsVerdict::Impossible("db failed".into()), &f);
            if let State::Waiting { .. } = state {
                assert_eq!(skipped.next, State::Idle);
                assert!(skipped.effects.contains(&Effect::Skip("db failed".into())));
            } else {
                assert!(skipped.effects.is_empty());
            }
            let released = on_dependents_stopped(state, &f);
            if state == State::Holding {
                assert!(matches!(
                    released.next,
                    State::Stopping {
                        reason: StopReason::Shutdown,
                        then: Then::Exit,
                        ..
                    }
                ));
            } else {
                assert_eq!(released.next, state);
            }
            let probe = on_probe_failure(state, ProbeFailure::NotAlive, &f);
            if let State::Running { .. } = state {
                assert!(matches!(
                    probe.next,
                    State::Stopping {
                        reason: StopReason::NotAlive,
                        then: Then::Idle,
                        ..
                    }
                ));
            } else {
                assert_eq!(probe.next, state);
            }
        }
    }

    #[test]
    fn shutdown_waits_for_dependents_then_stops() {
        let now = Instant::now();
        let f = Facts {
            dependents_running: true,
            ..facts(now)
        };
        let running = State::Running { wait_until: None };
        let held = on_control(running, Control::Shutdown, &f);
        assert_eq!(held.next, State::Holding);
        assert!(!held.effects.iter().any(|e| matches!(e, Effect::StopAll(_))));
        // Its own timeout still applies; a kill goes through at once.
        assert!(matches!(
            on_deadline(State::Holding, Some(now), &f).next,
            State::Stopping {
                reason: StopReason::Timeout,
                then: Then::Exit,
                ..
            }
        ));
        let killed = on_control(State::Holding, Control::Kill, &f);
        assert!(killed.effects.contains(&Effect::KillAll { announce: true }));
        // Ending by itself meanwhile ends the task.
        let end = RunEnd {
            succeeded: true,
            policy: RestartPolicy::Always,
            attempt: 0,
            max_restarts: None,
            backoff_max: Duration::from_secs(30),
        };
        assert_eq!(on_run_end(State::Holding, end, &f).next, State::Gone);
    }

    #[test]
    fn rejections_name_the_job_and_the_state() {
        let now = Instant::now();
        let f = facts(now);
        let t = on_control(State::Queued { restart: false }, Control::Kill, &f);
        assert_eq!(
            t.effects,
            [Effect::Say(
                Level::Warn,
                "cannot kill `x`: queued, not running".into()
            )]
        );
        let t = on_control(State::Idle, Control::Signal(Signal::SIGCONT), &f);
        assert_eq!(
            t.effects,
            [Effect::Say(
                Level::Warn,
                "cannot send SIGCONT to `x`: not running".into()
            )]
        );
    }

    #[test]
    fn stopping_then_changes_with_start_stop_and_shutdown() {
        let now = Instant::now();
        let f = facts(now);
        let stopping = on_control(State::Running { wait_until: None }, Control::Restart, &f).next;
        assert!(matches!(
            stopping,
            State::Stopping {
                reason: StopReason::Restart,
                then: Then::Restart,
                ..
            }
        ));
        let cancelled = on_control(stopping, Control::Stop, &f).next;
        assert!(matches!(
            cancelled,
            State::Stopping {
                then: Then::Idle,
                ..
            }
        ));
        let restart_again = on_control(cancelled, Control::Start, &f).next;
        assert!(matches!(
            restart_again,
            State::Stopping {
                then: Then::Restart,
                ..
            }
        ));
        let shutdown = on_control(restart_again, Control::Shutdown, &f).next;
        assert!(matches!(
            shutdown,
            State::Stopping {
                reason: StopReason::Shutdown,
                then: Then::Exit,
                ..
            }
        ));
        // A timeout that meets a shutdown stays a timeout (it decides the result).
        let timing_out = State::Stopping {
            reason: StopReason::Timeout,
            kill_at: None,
            then: Then::Idle,
        };
        assert!(matches!(
            on_control(timing_out, Control::Shutdown, &f).next,
            State::Stopping {
                reason: StopReason::Timeout,
                then: Then::Exit,
                ..
            }
        ));
    }

    #[test]
    fn deadlines_stop_then_kill() {
        let now = Instant::now();
        let f = facts(now);
        let t = on_deadline(State::Running { wait_until: None }, Some(now), &f);
        assert!(matches!(
            t.next,
            State::Stopping {
                reason: StopReason::Timeout,
                ..
            }
        ));
        assert_eq!(t.effects, [Effect::StopAll(Signal::SIGTERM)]);
        let t = on_deadline(
            State::Running {
                wait_until: Some(now),
            },
            None,
            &f,
        );
        assert!(matches!(
            t.next,
            State::Stopping {
                reason: StopReason::WaitDeadline,
                ..
            }
        ));
        let t = on_deadline(
            State::Stopping {
                reason: StopReason::User,
                kill_at: Some(now),
                then: Then::Idle,
            },
            None,
            &f,
        );
        assert!(t.effects.contains(&Effect::KillAll { announce: false }));
        assert!(matches!(t.next, State::Stopping { kill_at: None, .. }));
        // Not due yet: nothing happens.
        let later = now + Duration::from_secs(1);
        let t = on_deadline(
            State::Running {
                wait_until: Some(later),
            },
            Some(later),
            &f,
        );
        assert_eq!(
            t.next,
            State::Running {
                wait_until: Some(later)
            }
        );
        assert!(t.effects.is_empty());
    }

    #[test]
    fn run_end_follows_the_policy_and_the_stop() {
        let now = Instant::now();
        let f = facts(now);
        let end = |succeeded, policy, attempt| RunEnd {
            succeeded,
            policy,
            attempt,
            max_restarts: Some(2),
            backoff_max: Duration::from_secs(30),
        };
        let running = State::Running { wait_until: None };
        assert_eq!(
            on_run_end(running, end(false, RestartPolicy::No, 0), &f).next,
            State::Idle
        );
        assert!(matches!(
            on_run_end(running, end(false, RestartPolicy::OnFailure, 0), &f).next,
            State::Backoff { .. }
        ));
        assert_eq!(
            on_run_end(running, end(true, RestartPolicy::OnFailure, 0), &f).next,
            State::Idle
        );
        let gave_up = on_run_end(running, end(true, RestartPolicy::Always, 2), &f);
        assert_eq!(gave_up.next, State::Idle);
        assert!(
            matches!(&gave_up.effects[..], [Effect::Say(Level::Warn, text)] if text.contains("gave up"))
        );
        let user_stop = State::Stopping {
            reason: StopReason::User,
            kill_at: None,
            then: Then::Idle,
        };
        assert_eq!(
            on_run_end(user_stop, end(false, RestartPolicy::Always, 0), &f).next,
            State::Idle
        );
        let timed_out = State::Stopping {
            reason: StopReason::Timeout,
            kill_at: None,
            then: Then::Idle,
        };
        assert!(matches!(
            on_run_end(timed_out, end(false, RestartPolicy::OnFailure, 0), &f).next,
            State::Backoff { .. }
        ));
        let expired = State::Stopping {
            reason: StopReason::Expired,
            kill_at: None,
            then: Then::Idle,
        };
        assert_eq!(
            on_run_end(expired, end(false, RestartPolicy::Always, 0), &f).next,
            State::Idle,
            "a run-level deadline must not restart the job"
        );
        for reason in [StopReason::NotReady, StopReason::NotAlive] {
            let unhealthy = State::Stopping {
                reason,
                kill_at: None,
                then: Then::Idle,
            };
            assert!(matches!(
                on_run_end(unhealthy, end(false, RestartPolicy::OnFailure, 0), &f).next,
                State::Backoff { .. }
            ));
            assert_eq!(
                on_run_end(unhealthy, end(false, RestartPolicy::No, 0), &f).next,
                State::Idle
            );
        }
        // `always` without max_restarts never gives up.
        let forever = RunEnd {
            max_restarts: None,
            ..end(true, RestartPolicy::Always, 1_000_000)
        };
        assert!(matches!(
            on_run_end(running, forever, &f).next,
            State::Backoff { .. }
        ));
        let restarting = State::Stopping {
            reason: StopReason::Restart,
            kill_at: None,
            then: Then::Restart,
        };
        assert_eq!(
            on_run_end(restarting, end(false, RestartPolicy::No, 0), &f).next,
            State::Queued { restart: true }
        );
    }

    #[test]
    fn backoff_doubles_from_100ms_to_its_cap() {
        let max = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, max), Duration::from_millis(100));
        assert_eq!(backoff_delay(1, max), Duration::from_millis(200));
        assert_eq!(backoff_delay(3, max), Duration::from_millis(800));
        assert_eq!(backoff_delay(8, max), Duration::from_millis(25_600));
        assert_eq!(backoff_delay(9, max), max);
        assert_eq!(backoff_delay(u32::MAX, max), max);
        assert_eq!(
            backoff_delay(2, Duration::from_millis(250)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn huge_deadlines_saturate() {
        let now = Instant::now();
        let at = deadline_after(now, Duration::from_secs_f64(1e19));
        assert!(at > now + Duration::from_secs(86_400 * 364));
    }
}
