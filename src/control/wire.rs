//! Job statuses, samples and notices as JSON, complete enough for an attached TUI to
//! rebuild the supervisor's view: what [`crate::supervisor::JobStatus`] says, with every
//! `Instant` as signed microseconds since the session's start ([`Clock`]), since an
//! `Instant` means nothing in another process.
//!
//! Decoding starts from [`JobStatus::new`] and sets what the wire carries, so a field
//! added to the status later still decodes (to its default) until it is carried too.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::config::Condition;
use crate::supervisor::{
    JobState, JobStatus, Level, MachineSample, Notice, Outcome, Pause, PendingReason, Readiness,
    Sample, StageState, StopReason, WaitingFor,
};

/// Maps instants to and from microseconds since a session's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// The session's own clock: `base` is its start.
    pub fn at(base: Instant) -> Clock {
        Clock { base }
    }

    /// A client's copy: the session has been up for `elapsed_us` now.
    pub fn remote(elapsed_us: i64) -> Clock {
        let now = Instant::now();
        let base = if elapsed_us >= 0 {
            now.checked_sub(Duration::from_micros(elapsed_us.unsigned_abs()))
        } else {
            now.checked_add(Duration::from_micros(elapsed_us.unsigned_abs()))
        };
        Clock {
            base: base.unwrap_or(now),
        }
    }

    pub fn base(&self) -> Instant {
        self.base
    }

    pub fn encode(&self, t: Instant) -> i64 {
        if t >= self.base {
            i64::try_from(t.duration_since(self.base).as_micros()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from(self.base.duration_since(t).as_micros()).unwrap_or(i64::MAX)
        }
    }

    pub fn decode(&self, us: i64) -> Instant {
        let d = Duration::from_micros(us.unsigned_abs());
        let t = if us >= 0 {
            self.base.checked_add(d)
        } else {
            self.base.checked_sub(d)
        };
        t.unwrap_or(self.base)
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn from_us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn signal_name(signal: Signal) -> String {
    signal.as_str().to_string()
}

fn signal_from(name: &str) -> Signal {
    crate::supervisor::signals::parse_signal(name).unwrap_or(Signal::SIGKILL)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireStatus {
    pub state: WireState,
    pub pgid: Option<u32>,
    pub stages: Vec<WireStage>,
    pub started: Option<i64>,
    pub ended: Option<i64>,
    pub restarts: u32,
    pub wait_deadline: Option<i64>,
    pub timeout_at: Option<i64>,
    pub stragglers: bool,
    pub left_group: usize,
    pub restart_pending: bool,
    pub orphan_cpu_us: u64,
    pub orphan_wait_us: u64,
    pub total_elapsed_us: u64,
    pub total_cpu_us: u64,
    pub total_cpu_wait_us: u64,
    pub runs: u32,
    /// Services: what a waiting job waits for (`[name, condition]`), its readiness
    /// (`"immediate"`, `"starting"`, or microseconds after its start), its last failed
    /// check, and whether it is held at shutdown for its dependents. Absent in v1
    /// messages of sessions from before they existed.
    #[serde(default)]
    pub waiting_for: Vec<(String, String)>,
    #[serde(default)]
    pub readiness: Option<WireReadiness>,
    #[serde(default)]
    pub probe_failure: Option<String>,
    #[serde(default)]
    pub stopping_after_dependents: bool,
    /// Since when the running job has been quiet (`stall`).
    #[serde(default)]
    pub quiet_since: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireReadiness {
    Immediate,
    Starting,
    Ready { after_us: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireState {
    Pending {
        reason: String,
        until: Option<i64>,
    },
    Running,
    Stopping {
        signal: String,
        kill_at: i64,
        reason: String,
    },
    Finished {
        outcome: WireOutcome,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireOutcome {
    Exited {
        code: i32,
    },
    Killed {
        signal: String,
    },
    TimedOut {
        signal: Option<String>,
        code: Option<i32>,
    },
    FailedToStart {
        reason: String,
    },
    Stopped {
        signal: Option<String>,
        code: Option<i32>,
    },
    Unhealthy {
        signal: Option<String>,
        code: Option<i32>,
        reason: String,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireStage {
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    pub state: WireStageState,
    pub cpu_us: u64,
    pub wait_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireStageState {
    NotStarted,
    Running,
    Exited { code: i32 },
    Killed { signal: String },
    FailedToStart { reason: String },
}

pub fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::User => "user",
        StopReason::Timeout => "timeout",
        StopReason::WaitDeadline => "wait_deadline",
        StopReason::Restart => "restart",
        StopReason::Shutdown => "shutdown",
        StopReason::OtherFailed => "other_failed",
        StopReason::Expired => "expired",
        StopReason::NotReady => "not_ready",
        StopReason::NotAlive => "not_alive",
        StopReason::Stalled => "stalled",
    }
}

fn stop_reason_from(name: &str) -> StopReason {
    match name {
        "timeout" => StopReason::Timeout,
        "wait_deadline" => StopReason::WaitDeadline,
        "restart" => StopReason::Restart,
        "shutdown" => StopReason::Shutdown,
        "other_failed" => StopReason::OtherFailed,
        "expired" => StopReason::Expired,
        "not_ready" => StopReason::NotReady,
        "not_alive" => StopReason::NotAlive,
        "stalled" => StopReason::Stalled,
        _ => StopReason::User,
    }
}

fn outcome(o: &Outcome) -> WireOutcome {
    match o {
        Outcome::Exited { code } => WireOutcome::Exited { code: *code },
        Outcome::Killed { signal } => WireOutcome::Killed {
            signal: signal_name(*signal),
        },
        Outcome::TimedOut { signal, code } => WireOutcome::TimedOut {
            signal: signal.map(signal_name),
            code: *code,
        },
        Outcome::FailedToStart { reason } => WireOutcome::FailedToStart {
            reason: reason.clone(),
        },
        Outcome::Stopped { signal, code } => WireOutcome::Stopped {
            signal: signal.map(signal_name),
            code: *code,
        },
        Outcome::Unhealthy {
            signal,
            code,
            reason,
        } => WireOutcome::Unhealthy {
            signal: signal.map(signal_name),
            code: *code,
            reason: reason.clone(),
        },
        Outcome::Skipped { reason } => WireOutcome::Skipped {
            reason: reason.clone(),
        },
    }
}

fn outcome_from(o: &WireOutcome) -> Outcome {
    match o {
        WireOutcome::Exited { code } => Outcome::Exited { code: *code },
        WireOutcome::Killed { signal } => Outcome::Killed {
            signal: signal_from(signal),
        },
        WireOutcome::TimedOut { signal, code } => Outcome::TimedOut {
            signal: signal.as_deref().map(signal_from),
            code: *code,
        },
        WireOutcome::FailedToStart { reason } => Outcome::FailedToStart {
            reason: reason.clone(),
        },
        WireOutcome::Stopped { signal, code } => Outcome::Stopped {
            signal: signal.as_deref().map(signal_from),
            code: *code,
        },
        WireOutcome::Unhealthy {
            signal,
            code,
            reason,
        } => Outcome::Unhealthy {
            signal: signal.as_deref().map(signal_from),
            code: *code,
            reason: reason.clone(),
        },
        WireOutcome::Skipped { reason } => Outcome::Skipped {
            reason: reason.clone(),
        },
    }
}

pub fn status(s: &JobStatus, clock: &Clock) -> WireStatus {
    let state = match &s.state {
        JobState::Pending(reason) => {
            let (name, until) = match reason {
                PendingReason::Manual => ("manual", None),
                PendingReason::Queued => ("queued", None),
                PendingReason::Backoff { until } => ("backoff", Some(clock.encode(*until))),
            };
            WireState::Pending {
                reason: name.into(),
                until,
            }
        }
        JobState::Running => WireState::Running,
        JobState::Stopping {
            signal,
            kill_at,
            reason,
        } => WireState::Stopping {
            signal: signal_name(*signal),
            kill_at: clock.encode(*kill_at),
            reason: stop_reason_name(*reason).into(),
        },
        JobState::Finished(o) => WireState::Finished {
            outcome: outcome(o),
        },
    };
    WireStatus {
        state,
        pgid: s.pgid,
        stages: s
            .stages
            .iter()
            .map(|st| WireStage {
                argv: st.argv.clone(),
                pid: st.pid,
                state: match &st.state {
                    StageState::NotStarted => WireStageState::NotStarted,
                    StageState::Running => WireStageState::Running,
                    StageState::Exited(code) => WireStageState::Exited { code: *code },
                    StageState::Killed(signal) => WireStageState::Killed {
                        signal: signal_name(*signal),
                    },
                    StageState::FailedToStart(reason) => WireStageState::FailedToStart {
                        reason: reason.clone(),
                    },
                },
                cpu_us: us(st.cpu_time),
                wait_us: us(st.cpu_wait),
            })
            .collect(),
        started: s.started_at.map(|t| clock.encode(t)),
        ended: s.ended_at.map(|t| clock.encode(t)),
        restarts: s.restarts,
        wait_deadline: s.wait_deadline.map(|t| clock.encode(t)),
        timeout_at: s.timeout_at.map(|t| clock.encode(t)),
        stragglers: s.stragglers,
        left_group: s.left_group,
        restart_pending: s.restart_pending,
        orphan_cpu_us: us(s.orphan_cpu),
        orphan_wait_us: us(s.orphan_wait),
        total_elapsed_us: us(s.total_elapsed),
        total_cpu_us: us(s.total_cpu),
        total_cpu_wait_us: us(s.total_cpu_wait),
        runs: s.runs,
        waiting_for: s
            .waiting_for
            .iter()
            .map(|w| (w.name.clone(), w.condition.as_str().to_string()))
            .collect(),
        readiness: Some(match s.readiness {
            Readiness::Immediate => WireReadiness::Immediate,
            Readiness::Starting => WireReadiness::Starting,
            Readiness::Ready { after } => WireReadiness::Ready {
                after_us: us(after),
            },
        }),
        probe_failure: s.probe_failure.clone(),
        stopping_after_dependents: s.stopping_after_dependents,
        quiet_since: s.quiet_since.map(|t| clock.encode(t)),
    }
}

pub fn status_from(w: &WireStatus, clock: &Clock) -> JobStatus {
    let state = match &w.state {
        WireState::Pending { reason, until } => JobState::Pending(match reason.as_str() {
            "queued" => PendingReason::Queued,
            "backoff" => PendingReason::Backoff {
                until: clock.decode(until.unwrap_or_default()),
            },
            _ => PendingReason::Manual,
        }),
        WireState::Running => JobState::Running,
        WireState::Stopping {
            signal,
            kill_at,
            reason,
        } => JobState::Stopping {
            signal: signal_from(signal),
            kill_at: clock.decode(*kill_at),
            reason: stop_reason_from(reason),
        },
        WireState::Finished { outcome } => JobState::Finished(outcome_from(outcome)),
    };
    let mut s = JobStatus::new(state, w.stages.iter().map(|st| st.argv.clone()).collect());
    for (stage, wire) in s.stages.iter_mut().zip(&w.stages) {
        stage.pid = wire.pid;
        stage.state = match &wire.state {
            WireStageState::NotStarted => StageState::NotStarted,
            WireStageState::Running => StageState::Running,
            WireStageState::Exited { code } => StageState::Exited(*code),
            WireStageState::Killed { signal } => StageState::Killed(signal_from(signal)),
            WireStageState::FailedToStart { reason } => StageState::FailedToStart(reason.clone()),
        };
        stage.cpu_time = from_us(wire.cpu_us);
        stage.cpu_wait = from_us(wire.wait_us);
    }
    s.pgid = w.pgid;
    s.started_at = w.started.map(|t| clock.decode(t));
    s.ended_at = w.ended.map(|t| clock.decode(t));
    s.restarts = w.restarts;
    s.wait_deadline = w.wait_deadline.map(|t| clock.decode(t));
    s.timeout_at = w.timeout_at.map(|t| clock.decode(t));
    s.stragglers = w.stragglers;
    s.left_group = w.left_group;
    s.restart_pending = w.restart_pending;
    s.orphan_cpu = from_us(w.orphan_cpu_us);
    s.orphan_wait = from_us(w.orphan_wait_us);
    s.total_elapsed = from_us(w.total_elapsed_us);
    s.total_cpu = from_us(w.total_cpu_us);
    s.total_cpu_wait = from_us(w.total_cpu_wait_us);
    s.runs = w.runs;
    s.waiting_for = w
        .waiting_for
        .iter()
        .filter_map(|(name, condition)| {
            Some(WaitingFor {
                name: name.clone(),
                condition: Condition::parse(condition)?,
            })
        })
        .collect();
    s.readiness = match w.readiness {
        None | Some(WireReadiness::Immediate) => Readiness::Immediate,
        Some(WireReadiness::Starting) => Readiness::Starting,
        Some(WireReadiness::Ready { after_us }) => Readiness::Ready {
            after: from_us(after_us),
        },
    };
    s.probe_failure = w.probe_failure.clone();
    s.stopping_after_dependents = w.stopping_after_dependents;
    s.quiet_since = w.quiet_since.map(|t| clock.decode(t));
    s
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireSample {
    pub cpu_percent: Option<f32>,
    pub rss: u64,
    pub cpu_us: u64,
    pub wait_us: u64,
    pub processes: usize,
    pub paused: Option<String>,
    pub stage_cpu: Vec<(u32, u64)>,
}

pub fn sample(s: &Sample) -> WireSample {
    WireSample {
        cpu_percent: s.cpu_percent,
        rss: s.rss_bytes,
        cpu_us: us(s.cpu_time),
        wait_us: us(s.cpu_wait),
        processes: s.processes,
        paused: s.paused.map(|p| {
            match p {
                Pause::Frozen => "frozen",
                Pause::Stopped => "stopped",
            }
            .to_string()
        }),
        stage_cpu: s.stage_cpu.iter().map(|(pid, d)| (*pid, us(*d))).collect(),
    }
}

pub fn sample_from(w: &WireSample) -> Sample {
    Sample {
        cpu_percent: w.cpu_percent,
        rss_bytes: w.rss,
        cpu_time: from_us(w.cpu_us),
        cpu_wait: from_us(w.wait_us),
        processes: w.processes,
        paused: match w.paused.as_deref() {
            Some("frozen") => Some(Pause::Frozen),
            Some(_) => Some(Pause::Stopped),
            None => None,
        },
        stage_cpu: w.stage_cpu.iter().map(|(p, d)| (*p, from_us(*d))).collect(),
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireNotice {
    pub job: Option<usize>,
    pub level: String,
    pub text: String,
}

pub fn notice(n: &Notice) -> WireNotice {
    WireNotice {
        job: n.job,
        level: level_name(n.level).into(),
        text: n.text.clone(),
    }
}

pub fn notice_from(w: &WireNotice) -> Notice {
    Notice {
        job: w.job,
        level: match w.level.as_str() {
            "warn" => Level::Warn,
            "error" => Level::Error,
            _ => Level::Info,
        },
        text: w.text.clone(),
    }
}

pub fn machine_from(cpu_percent: f32) -> MachineSample {
    MachineSample { cpu_percent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_survive_the_wire() {
        let server = Clock::at(Instant::now() - Duration::from_secs(5));
        let now = Instant::now();
        let mut s = JobStatus::new(
            JobState::Stopping {
                signal: Signal::SIGINT,
                kill_at: now + Duration::from_secs(2),
                reason: StopReason::WaitDeadline,
            },
            vec![vec!["a".into(), "b c".into()], vec!["sh".into()]],
        );
        s.stages[0].state = StageState::Killed(Signal::SIGPIPE);
        s.stages[1].state = StageState::FailedToStart("command not found: x".into());
        s.stages[0].pid = Some(42);
        s.started_at = Some(now - Duration::from_millis(1500));
        s.restarts = 3;
        s.runs = 4;
        s.total_cpu = Duration::from_millis(123);
        s.left_group = 2;
        let text = serde_json::to_string(&status(&s, &server)).expect("json");
        let back: WireStatus = serde_json::from_str(&text).expect("parse");
        // The same clock decodes to the same instants (to the microsecond).
        let decoded = status_from(&back, &server);
        let close = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => (if a > b { a - b } else { b - a }) < Duration::from_micros(2),
            (None, None) => true,
            _ => false,
        };
        assert!(close(decoded.started_at, s.started_at));
        let mut fixed = decoded.clone();
        fixed.started_at = s.started_at;
        if let (JobState::Stopping { kill_at: a, .. }, JobState::Stopping { kill_at: b, .. }) =
            (&mut fixed.state, &s.state)
        {
            assert!(close(Some(*a), Some(*b)));
            *a = *b;
        }
        assert_eq!(fixed, s);

        let outcome = JobStatus::new(
            JobState::Finished(Outcome::TimedOut {
                signal: Some(Signal::SIGTERM),
                code: None,
            }),
            vec![vec!["x".into()]],
        );
        assert_eq!(status_from(&status(&outcome, &server), &server), outcome);
    }

    #[test]
    fn samples_and_notices_survive_the_wire() {
        let s = Sample {
            cpu_percent: Some(12.5),
            rss_bytes: 4096,
            cpu_time: Duration::from_millis(7),
            cpu_wait: Duration::from_millis(1),
            processes: 3,
            paused: Some(Pause::Frozen),
            stage_cpu: vec![(10, Duration::from_millis(2))],
        };
        assert_eq!(sample_from(&sample(&s)), s);
        let n = Notice {
            job: Some(2),
            level: Level::Warn,
            text: "cannot kill `x`: not running".into(),
        };
        assert_eq!(notice_from(&notice(&n)), n);
    }
}
