//! The supervisor with real processes: exit codes and signal names, stop escalation,
//! timeouts, wait(deadline), restart policies with backoff, spawn failures and orphans.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{Harness, SLOW, config_in, pgrep_count, sleep_arg, sleep_pattern, tempdir};
use forkyard::config;
use forkyard::supervisor::{
    Control, JobState, Outcome, PendingReason, StageState, StopReason, backoff_delay,
};
use nix::sys::signal::Signal;

/// Slack on top of a grace period: the SIGKILL, the reap and the event on a busy machine.
const GRACE_SLACK: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_signal_names() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "ok"
cmd = ["true"]

[[job]]
name = "three"
shell = "exit 3"

[[job]]
name = "sigkill"
shell = "kill -KILL $$"

[[job]]
name = "segv"
shell = "kill -SEGV $$"

[[job]]
name = "usr1"
shell = "kill -USR1 $$"
"#,
    );
    let mut h = Harness::start(&config);
    let expected = [
        (
            "ok",
            Outcome::Exited { code: 0 },
            StageState::Exited(0),
            "exit 0",
        ),
        (
            "three",
            Outcome::Exited { code: 3 },
            StageState::Exited(3),
            "exit 3",
        ),
        (
            "sigkill",
            Outcome::Killed {
                signal: Signal::SIGKILL,
            },
            StageState::Killed(Signal::SIGKILL),
            "SIGKILL",
        ),
        (
            "segv",
            Outcome::Killed {
                signal: Signal::SIGSEGV,
            },
            StageState::Killed(Signal::SIGSEGV),
            "SIGSEGV",
        ),
        (
            "usr1",
            Outcome::Killed {
                signal: Signal::SIGUSR1,
            },
            StageState::Killed(Signal::SIGUSR1),
            "SIGUSR1",
        ),
    ];
    for (name, outcome, stage, shown) in expected {
        let got = h.wait_finished(name, SLOW).await;
        assert_eq!(got, outcome, "{name}");
        assert_eq!(got.describe(), shown, "{name}");
        assert_eq!(got.is_success(), name == "ok", "{name}");
        let status = h.status(name);
        assert_eq!(status.stages[0].state, stage, "{name}");
        assert!(status.stages[0].pid.is_some(), "{name}: no pid");
        assert_eq!(status.pgid, status.stages[0].pid, "{name}: leads its group");
    }
    assert_eq!(
        Outcome::Killed {
            signal: Signal::SIGSEGV
        }
        .kind(),
        "killed"
    );
    h.shutdown().await;
}

/// A child that ignores SIGTERM is SIGKILLed once its grace period is over, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_ignoring_child_is_killed_after_grace() {
    let arg = sleep_arg(1);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "stubborn"
cmd = ["sh", "-c", "trap '' TERM; sleep {arg}; sleep {arg}"]
grace = "1s"
"#
        ),
    );
    let grace = Duration::from_secs(1);
    let mut h = Harness::start(&config);
    h.wait_running("stubborn").await;
    common::wait_until_async(SLOW, "the sleep to start", || pgrep_count(&pattern) == 1).await;

    let stop_sent = Instant::now();
    h.control("stubborn", Control::Stop);
    let stopping = h
        .wait_job("stubborn", SLOW, "stopping", |s| {
            matches!(s.state, JobState::Stopping { .. })
        })
        .await;
    match stopping.state {
        JobState::Stopping {
            signal,
            kill_at,
            reason,
        } => {
            assert_eq!(signal, Signal::SIGTERM);
            assert_eq!(reason, StopReason::User);
            assert!(kill_at >= stop_sent + grace, "SIGKILL planned before grace");
        }
        other => panic!("not stopping: {other:?}"),
    }
    let outcome = h.wait_finished("stubborn", SLOW).await;
    let gone_after = h
        .status("stubborn")
        .ended_at
        .expect("ended")
        .duration_since(stop_sent);
    // Stopped on purpose: "stopped", not a failure (it used to read as a SIGKILL failure).
    assert_eq!(
        outcome,
        Outcome::Stopped {
            signal: Some(Signal::SIGKILL),
            code: None,
        }
    );
    assert!(!outcome.is_failure());
    assert!(gone_after >= grace, "gone after {gone_after:?} < grace");
    assert!(
        gone_after < grace + GRACE_SLACK,
        "gone only after {gone_after:?}"
    );
    // Finished means the whole group is gone and reaped: nothing may be left.
    assert_eq!(pgrep_count(&pattern), 0, "TERM-ignoring sleep survived");
    h.wait_notice("stubborn", SLOW, "outlived its grace period")
        .await;
    h.shutdown().await;
}

/// The child dies of SIGTERM at once, but several TERM-ignoring grandchildren keep the
/// group alive (stragglers) until SIGKILL after grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_ignoring_grandchildren_are_killed_after_grace() {
    let arg = sleep_arg(2);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "family"
shell = "for i in 1 2 3; do (trap '' TERM; exec sleep {arg}) & done; wait"
grace = "1200ms"
"#
        ),
    );
    let grace = Duration::from_millis(1200);
    let mut h = Harness::start(&config);
    h.wait_running("family").await;
    common::wait_until_async(SLOW, "three grandchildren", || pgrep_count(&pattern) == 3).await;

    let stop_sent = Instant::now();
    h.control("family", Control::Stop);
    let outcome = h.wait_finished("family", SLOW).await;
    let gone_after = h
        .status("family")
        .ended_at
        .expect("ended")
        .duration_since(stop_sent);
    // The shell itself obeyed SIGTERM; it decides the job's result.
    assert_eq!(
        outcome,
        Outcome::Stopped {
            signal: Some(Signal::SIGTERM),
            code: None,
        }
    );
    assert!(gone_after >= grace, "gone after {gone_after:?} < grace");
    assert!(
        gone_after < grace + GRACE_SLACK,
        "gone only after {gone_after:?}"
    );
    assert_eq!(pgrep_count(&pattern), 0, "grandchildren survived");
    // While the grandchildren outlived the shell, the job said so.
    assert!(
        h.history("family")
            .iter()
            .any(|s| s.stragglers && matches!(s.state, JobState::Stopping { .. })),
        "stragglers were never reported"
    );
    h.shutdown().await;
}

/// Kill does not wait for grace, even for a TERM-ignoring child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_is_immediate() {
    let arg = sleep_arg(3);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "stubborn"
shell = "trap '' TERM; sleep {arg} & wait"
grace = "60s"
"#
        ),
    );
    let mut h = Harness::start(&config);
    h.wait_running("stubborn").await;
    common::wait_until_async(SLOW, "the sleep to start", || pgrep_count(&pattern) == 1).await;
    let sent = Instant::now();
    h.control("stubborn", Control::Kill);
    let outcome = h.wait_finished("stubborn", SLOW).await;
    // Stopped on purpose: "stopped", not a failure (it used to read as a SIGKILL failure).
    assert_eq!(
        outcome,
        Outcome::Stopped {
            signal: Some(Signal::SIGKILL),
            code: None,
        }
    );
    assert!(!outcome.is_failure());
    assert!(sent.elapsed() < Duration::from_secs(15), "kill waited");
    assert_eq!(pgrep_count(&pattern), 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_stops_with_the_stop_signal() {
    let arg = sleep_arg(4);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "hung"
cmd = ["sleep", "{arg}"]
timeout = "100ms"
"#
        ),
    );
    let mut h = Harness::start(&config);
    let outcome = h.wait_finished("hung", SLOW).await;
    assert_eq!(
        outcome,
        Outcome::TimedOut {
            signal: Some(Signal::SIGTERM),
            code: None
        }
    );
    assert_eq!(outcome.kind(), "timed_out");
    assert_eq!(outcome.describe(), "timed out (SIGTERM)");
    let status = h.status("hung");
    let elapsed = status.elapsed(Instant::now()).expect("it ran");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(
        h.history("hung").iter().any(|s| matches!(
            s.state,
            JobState::Stopping {
                reason: StopReason::Timeout,
                ..
            }
        )),
        "never stopping for the timeout"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
    h.shutdown().await;
}

/// wait(deadline): a job that ends in time is left alone; one that does not is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_with_deadline() {
    let arg = sleep_arg(5);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "quick"
shell = "sleep 0.3; exit 4"

[[job]]
name = "slow"
cmd = ["sleep", "{arg}"]
"#
        ),
    );
    let mut h = Harness::start(&config);
    h.wait_running("quick").await;
    h.wait_running("slow").await;
    h.control("quick", Control::Wait(Duration::from_secs(60)));
    let sent = Instant::now();
    h.control("slow", Control::Wait(Duration::from_millis(300)));
    assert_eq!(
        h.wait_finished("quick", SLOW).await,
        Outcome::Exited { code: 4 }
    );
    assert_eq!(
        h.wait_finished("slow", SLOW).await,
        Outcome::Killed {
            signal: Signal::SIGTERM
        }
    );
    let ended = h.status("slow").ended_at.expect("ended");
    assert!(ended.duration_since(sent) >= Duration::from_millis(300));
    assert!(h.history("slow").iter().any(|s| matches!(
        s.state,
        JobState::Stopping {
            reason: StopReason::WaitDeadline,
            ..
        }
    )));
    h.shutdown().await;
}

/// (started_at, ended_at) of every run, from the reported snapshots.
fn runs(h: &Harness, name: &str) -> Vec<(Instant, Instant)> {
    let mut out: Vec<(Instant, Instant)> = Vec::new();
    for status in h.history(name) {
        if let (JobState::Finished(_), Some(start), Some(end)) =
            (&status.state, status.started_at, status.ended_at)
            && out.last().is_none_or(|(s, _)| *s != start)
        {
            out.push((start, end));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_with_growing_backoff() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "flaky"
shell = "exit 1"
restart = "on-failure"
max_restarts = 3
"#,
    );
    let mut h = Harness::start(&config);
    h.wait_notice("flaky", SLOW, "gave up after 3 restarts")
        .await;
    let status = h.status("flaky").clone();
    assert_eq!(status.restarts, 3);
    assert_eq!(status.runs, 4);
    assert_eq!(status.outcome(), Some(&Outcome::Exited { code: 1 }));
    let runs = runs(&h, "flaky");
    assert_eq!(runs.len(), 4, "{runs:?}");
    let gaps: Vec<Duration> = runs
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].1))
        .collect();
    for (attempt, gap) in gaps.iter().enumerate() {
        let backoff = backoff_delay(attempt as u32, config::DEFAULT_BACKOFF_MAX);
        assert!(
            *gap >= backoff,
            "gap {attempt} was {gap:?}, backoff {backoff:?}; gaps {gaps:?}"
        );
    }
    assert_eq!(
        [0, 1, 2].map(|attempt| backoff_delay(attempt, config::DEFAULT_BACKOFF_MAX)),
        [100, 200, 400].map(Duration::from_millis)
    );
    let backoffs = h
        .history("flaky")
        .iter()
        .filter(|s| matches!(s.state, JobState::Pending(PendingReason::Backoff { .. })))
        .count();
    assert_eq!(backoffs, 3);
    // Each failed run but the last announces its restart, so no consumer takes the job
    // for settled in between.
    let finished: Vec<_> = h
        .history("flaky")
        .into_iter()
        .filter(|s| matches!(s.state, JobState::Finished(_)))
        .collect();
    assert_eq!(finished.len(), 4);
    for status in &finished[..3] {
        assert!(
            status.restart_pending && !status.is_settled(),
            "{status:#?}"
        );
    }
    assert!(!finished[3].restart_pending && finished[3].is_settled());
    h.assert_idle("flaky").await;
    assert_eq!(h.status("flaky").runs, 4, "restarted after giving up");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restarts_a_successful_job_and_no_does_not() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "again"
cmd = ["true"]
restart = "always"
max_restarts = 2

[[job]]
name = "once"
shell = "exit 1"
restart = "no"

[[job]]
name = "fine"
cmd = ["true"]
restart = "on-failure"
"#,
    );
    let mut h = Harness::start(&config);
    h.wait_notice("again", SLOW, "gave up after 2 restarts")
        .await;
    let again = h.status("again").clone();
    assert_eq!((again.restarts, again.runs), (2, 3));
    let finished: Vec<_> = h
        .history("again")
        .into_iter()
        .filter_map(|s| s.outcome().cloned())
        .collect();
    assert_eq!(finished, vec![Outcome::Exited { code: 0 }; 3]);

    for (name, outcome) in [
        ("once", Outcome::Exited { code: 1 }),
        ("fine", Outcome::Exited { code: 0 }),
    ] {
        assert_eq!(h.wait_finished(name, SLOW).await, outcome);
        h.assert_idle(name).await;
        let status = h.status(name);
        assert_eq!((status.runs, status.restarts), (1, 0), "{name}");
        assert!(
            !h.history(name)
                .iter()
                .any(|s| matches!(s.state, JobState::Pending(PendingReason::Backoff { .. }))),
            "{name} planned a restart"
        );
    }
    h.shutdown().await;
}

/// A job the user stopped is not restarted, whatever its policy says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_stop_is_not_restarted() {
    let a = sleep_arg(6);
    let b = sleep_arg(7);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "onfail"
cmd = ["sleep", "{a}"]
restart = "on-failure"

[[job]]
name = "always"
cmd = ["sleep", "{b}"]
restart = "always"
"#
        ),
    );
    let mut h = Harness::start(&config);
    for name in ["onfail", "always"] {
        h.wait_running(name).await;
        h.control(name, Control::Stop);
    }
    for name in ["onfail", "always"] {
        // A user's stop is "stopped", not a failure (it used to read as SIGTERM).
        assert_eq!(
            h.wait_finished(name, SLOW).await,
            Outcome::Stopped {
                signal: Some(Signal::SIGTERM),
                code: None,
            },
            "{name}"
        );
        h.assert_idle(name).await;
        let status = h.status(name);
        assert_eq!((status.runs, status.restarts), (1, 0), "{name}");
    }
    // A stopped job still starts again by hand.
    h.control("onfail", Control::Start);
    h.wait_job("onfail", SLOW, "a second run", |s| {
        s.runs == 2 && matches!(s.state, JobState::Running)
    })
    .await;
    h.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&a)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&b)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_failures_name_the_cause() {
    let dir = tempdir();
    let script = common::write_file(dir.path(), "not-executable.sh", "#!/bin/sh\necho hi\n");
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "notfound"
cmd = ["forkyard-no-such-command"]

[[job]]
name = "noexec"
cmd = ["{script}"]

[[job]]
name = "badcwd"
cmd = ["true"]
cwd = "no/such/dir"

[[job]]
name = "badstdin"
cmd = ["cat"]
stdin = {{ file = "missing-input.txt" }}

[[job]]
name = "hole"
pipeline = [["yes"], ["forkyard-no-such-stage"], ["cat"]]
"#,
            script = script.display()
        ),
    );
    let mut h = Harness::start(&config);
    let expected = [
        ("notfound", vec!["not found", "forkyard-no-such-command"]),
        ("noexec", vec!["permission denied", "not-executable.sh"]),
        ("badcwd", vec!["bad cwd", "no/such/dir"]),
        ("badstdin", vec!["missing-input.txt"]),
        ("hole", vec!["not found", "forkyard-no-such-stage"]),
    ];
    for (name, words) in expected {
        let outcome = h.wait_finished(name, SLOW).await;
        let Outcome::FailedToStart { reason } = &outcome else {
            panic!("{name}: expected a spawn failure, got {outcome:?}");
        };
        for word in words {
            assert!(reason.contains(word), "{name}: {reason:?} lacks {word:?}");
        }
        assert_eq!(outcome.kind(), "failed_to_start");
    }
    // The pipeline with a hole: the missing stage says why; the others ran and ended
    // (yes got SIGPIPE, cat saw EOF) instead of hanging on a pipe nobody closes.
    let stages = &h.status("hole").stages;
    assert!(
        matches!(&stages[1].state, StageState::FailedToStart(r) if r.contains("forkyard-no-such-stage")),
        "{:?}",
        stages[1].state
    );
    assert_eq!(stages[1].pid, None);
    assert_eq!(stages[0].state, StageState::Killed(Signal::SIGPIPE));
    assert_eq!(stages[2].state, StageState::Exited(0));
    assert!(stages[0].pid.is_some() && stages[2].pid.is_some());
    h.shutdown().await;
}

/// A shell that exits leaving a background grandchild: the job keeps running (with
/// stragglers) until stopped, and stopping it kills the grandchild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_grandchild_keeps_the_job_running() {
    let arg = sleep_arg(8);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "orphan"
shell = "sleep {arg} & echo started"
"#
        ),
    );
    let mut h = Harness::start(&config);
    let status = h
        .wait_job("orphan", SLOW, "shell exited, grandchild left", |s| {
            s.stages[0].state == StageState::Exited(0) && s.stragglers
        })
        .await;
    assert_eq!(status.state, JobState::Running);
    assert!(status.is_active() && !status.is_settled());
    assert_eq!(pgrep_count(&pattern), 1);
    common::wait_until_async(SLOW, "the echo to arrive", || {
        h.text_lines("orphan", forkyard::output::Stream::Stdout) == ["started"]
    })
    .await;

    h.control("orphan", Control::Stop);
    let outcome = h.wait_finished("orphan", SLOW).await;
    // The shell decided the result (exit 0); the straggler was stopped with it.
    assert_eq!(outcome, Outcome::Exited { code: 0 });
    assert_eq!(pgrep_count(&pattern), 0, "grandchild survived the stop");
    assert!(!h.status("orphan").stragglers);
    h.shutdown().await;
}

/// max_parallel = 1: queued jobs run one after another; stopping a queued job cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_queues_jobs() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[settings]
max_parallel = 1

[[job]]
name = "a"
cmd = ["sleep", "0.5"]

[[job]]
name = "b"
cmd = ["sleep", "0.5"]

[[job]]
name = "c"
cmd = ["sleep", "0.5"]
"#,
    );
    let mut h = Harness::start(&config);
    let names = ["a", "b", "c"];
    let deadline = Instant::now() + SLOW;
    let first = loop {
        if let Some(name) = names
            .iter()
            .find(|n| matches!(h.status(n).state, JobState::Running))
        {
            break *name;
        }
        assert!(h.next_event(deadline).await.is_some(), "nothing started");
    };
    let cancelled = *names.iter().find(|n| **n != first).expect("another job");
    h.control(cancelled, Control::Stop);
    let other = *names
        .iter()
        .find(|n| **n != first && **n != cancelled)
        .expect("a third job");
    for name in [first, other] {
        assert_eq!(
            h.wait_finished(name, SLOW).await,
            Outcome::Exited { code: 0 }
        );
    }
    let (first_status, other_status) = (h.status(first).clone(), h.status(other).clone());
    assert!(
        other_status.started_at.expect("started") >= first_status.ended_at.expect("ended"),
        "queued job ran alongside the first"
    );
    assert!(
        h.history(other)
            .iter()
            .any(|s| s.state == JobState::Pending(PendingReason::Queued))
    );
    let stopped = h.status(cancelled);
    assert_eq!(stopped.state, JobState::Pending(PendingReason::Manual));
    assert_eq!(stopped.runs, 0);
    assert!(stopped.is_settled());
    h.shutdown().await;
}

/// Restart: stop with the stop signal, then a new run with a new pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_control_runs_again() {
    let arg = sleep_arg(9);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "svc"
cmd = ["sleep", "{arg}"]
"#
        ),
    );
    let mut h = Harness::start(&config);
    let first = h.wait_running("svc").await;
    h.control("svc", Control::Restart);
    let second = h
        .wait_job("svc", SLOW, "a second run", |s| {
            s.runs == 2 && matches!(s.state, JobState::Running)
        })
        .await;
    assert_eq!(second.restarts, 1);
    assert_ne!(first.stages[0].pid, second.stages[0].pid);
    assert!(h.history("svc").iter().any(|s| matches!(
        s.state,
        JobState::Stopping {
            reason: StopReason::Restart,
            ..
        }
    )));
    // The run stopped for the restart is "stopped" (it used to read as a SIGTERM failure).
    assert!(h.history("svc").iter().any(|s| s.state
        == JobState::Finished(Outcome::Stopped {
            signal: Some(Signal::SIGTERM),
            code: None,
        })));
    common::wait_until_async(SLOW, "one sleep", || pgrep_count(&pattern) == 1).await;
    h.shutdown().await;
    assert_eq!(pgrep_count(&pattern), 0, "shutdown left the sleep running");
}

/// Sampling: the first sample of a job has no CPU % (no bogus 0 or 100); later ones
/// show a busy loop busy and a sleeper idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_cpu_and_memory_of_each_job() {
    let arg = sleep_arg(11);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "busy"
shell = "while :; do :; done"

[[job]]
name = "idle"
cmd = ["sleep", "{arg}"]
"#
        ),
    );
    let mut h = Harness::start_with(
        &config,
        forkyard::supervisor::SupervisorOptions {
            sample_interval: Some(Duration::from_millis(250)),
            ..Default::default()
        },
    );
    let samples = |h: &Harness, name: &str| -> Vec<forkyard::supervisor::Sample> {
        let id = h.id(name);
        h.log
            .iter()
            .filter_map(|seen| match &seen.event {
                forkyard::supervisor::Event::Sample { id: i, sample } if *i == id => {
                    Some(sample.clone())
                }
                _ => None,
            })
            .collect()
    };
    let deadline = Instant::now() + SLOW;
    // The idle job is sampled every tick too, but an unchanged sample is not sent again:
    // it gets its first sample (no CPU % yet) and then one with its (unchanging) figures.
    while samples(&h, "busy").len() < 4 || samples(&h, "idle").len() < 2 {
        assert!(h.next_event(deadline).await.is_some(), "too few samples");
    }
    let idle = samples(&h, "idle");
    assert!(
        idle.windows(2).all(|pair| pair[0] != pair[1]),
        "an unchanged sample was sent again: {idle:?}"
    );
    for name in ["busy", "idle"] {
        let all = samples(&h, name);
        assert_eq!(
            all[0].cpu_percent, None,
            "{name}: first sample {:?}",
            all[0]
        );
        assert!(
            all.iter().skip(1).all(|s| s.cpu_percent.is_some()),
            "{name}"
        );
        assert!(
            all.iter().all(|s| s.rss_bytes > 0 && s.processes >= 1),
            "{name}"
        );
    }
    let busy = samples(&h, "busy");
    let peak = busy
        .iter()
        .filter_map(|s| s.cpu_percent)
        .fold(0.0f32, f32::max);
    assert!(peak > 10.0, "busy loop peaked at {peak}% CPU");
    assert!(busy.last().expect("samples").cpu_time > Duration::ZERO);
    let idle = samples(&h, "idle");
    assert!(
        idle.iter().filter_map(|s| s.cpu_percent).all(|p| p < 50.0),
        "{idle:?}"
    );
    h.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

/// Jobs that exit the moment they start, spawned together from several threads (a
/// single process spawns without the reaper's lock): each exit status reaches its own
/// job, including the ones reaped before `spawn()` returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_jobs_started_together_each_get_their_exit() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "ok"
cmd = ["true"]
replicas = 120

[[job]]
name = "bad"
shell = "exit 3"
replicas = 120
"#,
    );
    let mut h = Harness::start(&config);
    let names = h.names.clone();
    for name in &names {
        let outcome = h.wait_finished(name, SLOW).await;
        let want = if name.starts_with("ok") { 0 } else { 3 };
        assert_eq!(outcome, Outcome::Exited { code: want }, "{name}");
    }
    h.shutdown().await;
}

/// The sampler ticks on whole intervals after the supervisor's start (the grid the TUI's
/// clocks tick on, so one wake-up serves both) and reports each tick only once its
/// samples are sent, so a consumer redrawing on the report shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_ticks_on_the_start_grid_and_reports_each_tick() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "busy"
shell = "while :; do :; done"
"#,
    );
    let interval = Duration::from_millis(300);
    let sampled = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut h = Harness::start_with(
        &config,
        forkyard::supervisor::SupervisorOptions {
            sample_interval: Some(interval),
            sampled: Some(sampled.clone()),
            ..Default::default()
        },
    );
    let start = h.started_at();
    let busy = h.id("busy");
    let deadline = Instant::now() + SLOW;
    let mut ticks = Vec::new();
    while ticks.len() < 7 {
        tokio::time::timeout_at(deadline.into(), sampled.notified())
            .await
            .expect("the sampler reports its ticks");
        let offset = start.elapsed().as_nanos() % interval.as_nanos();
        let is_busy_sample = |e: &forkyard::supervisor::Event| matches!(e, forkyard::supervisor::Event::Sample { id, .. } if *id == busy);
        let mut samples = 0;
        while let Some(event) = h.try_next_event() {
            samples += usize::from(is_busy_sample(&event));
        }
        // Nothing of this tick comes after its report (the next tick is 200 ms away).
        let quiet_until = Instant::now() + Duration::from_millis(100);
        let mut late = 0;
        while let Some(event) = h.next_event(quiet_until).await {
            late += usize::from(is_busy_sample(&event));
        }
        ticks.push((Duration::from_nanos(offset as u64), samples, late));
    }
    // The first report is the early sample after the job started (off the grid), and the
    // grid tick right after it may only report the tick; from then on every tick is on
    // the grid and brings the busy job's new sample with it.
    for (offset, samples, late) in &ticks[2..] {
        assert!(
            *offset < Duration::from_millis(100),
            "a tick {offset:?} past the grid: {ticks:?}"
        );
        assert_eq!((*samples, *late), (1, 0), "{ticks:?}");
    }
    h.shutdown().await;
}

/// A descendant that leaves the job's group and session (setsid) while holding the
/// output pipe open neither hangs the job nor outlives it: once the shell has exited and
/// its group is empty, the daemon gets the stop signal, and the job ends with the
/// shell's result when it is gone (a job is not over while something it started runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_pipe_holder_is_stopped_with_its_job() {
    let arg = sleep_arg(12);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "daemon"
shell = "setsid sleep {arg} & echo detached"
"#
        ),
    );
    let mut h = Harness::start(&config);
    assert_eq!(
        h.wait_finished("daemon", SLOW).await,
        Outcome::Exited { code: 0 }
    );
    assert_eq!(
        h.text_lines("daemon", forkyard::output::Stream::Stdout),
        ["detached"]
    );
    assert!(
        h.history("daemon").iter().any(|s| s.left_group > 0),
        "the daemon was never shown as having left the group"
    );
    assert_eq!(pgrep_count(&pattern), 0, "the daemon outlived its job");
    h.shutdown().await;
}

/// If a stage's exit status is taken by someone else (here: the test reaps the child
/// itself), a kill still ends the job instead of waiting forever for a status that will
/// never come, so shutdown can never hang on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_exit_status_does_not_hang_the_job() {
    let arg = sleep_arg(13);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "robbed"
cmd = ["sleep", "{arg}"]
grace = "100ms"
"#
        ),
    );
    let mut h = Harness::start(&config);
    let status = h.wait_running("robbed").await;
    let pid = nix::unistd::Pid::from_raw(status.stages[0].pid.expect("pid") as i32);
    // Reap it behind the supervisor's back: a thread of the test (the parent process)
    // blocks in waitpid first, so it is the one woken when the child dies.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let thief = std::thread::spawn(move || {
        let _ = tid_tx.send(nix::unistd::gettid());
        nix::sys::wait::waitpid(pid, None)
    });
    let tid = tid_rx.recv().expect("thief's tid");
    common::wait_until(SLOW, "the thief to block in waitpid", || {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan"))
            .is_ok_and(|wchan| wchan.contains("wait"))
    });
    h.control("robbed", Control::Kill);
    let stolen = thief.join().expect("thief thread");
    let outcome = h.wait_finished("robbed", SLOW).await;
    eprintln!("stolen: {stolen:?}, outcome: {outcome:?}");
    if stolen.is_ok() {
        // The status was stolen: the job gave up on it instead of hanging.
        assert_eq!(
            outcome,
            Outcome::FailedToStart {
                reason: "lost track of the process".into()
            }
        );
        h.wait_notice("robbed", SLOW, "lost the exit status").await;
    } else {
        // The supervisor's reaper won the race after all. Killed on request: "stopped"
        // (it used to read as a SIGKILL failure).
        assert_eq!(
            outcome,
            Outcome::Stopped {
                signal: Some(Signal::SIGKILL),
                code: None,
            }
        );
    }
    h.shutdown().await;
}
