//! A job's live process tree, through the library: every process of the run (one that
//! left the group marked), what each waits on, and signals to one process or a subtree.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{Harness, SLOW, config_in, pgrep_count, sleep_arg, sleep_pattern, tempdir};
use forkyard::supervisor::{Event, ProcState, ProcessAction, Reach, Tree};

/// Waits for a tree event of job 0 that satisfies `ok`.
async fn wait_tree(h: &mut Harness, what: &str, ok: impl Fn(&Tree) -> bool) -> Arc<Tree> {
    let deadline = Instant::now() + SLOW;
    loop {
        let found = h.log.iter().rev().find_map(|seen| match &seen.event {
            Event::Tree(tree) if ok(tree) => Some(tree.clone()),
            _ => None,
        });
        if let Some(tree) = found {
            return tree;
        }
        let last = h.log.iter().rev().find_map(|seen| match &seen.event {
            Event::Tree(tree) => Some(tree.clone()),
            _ => None,
        });
        if h.next_event(deadline).await.is_none() {
            panic!(
                "no tree where {what}; notices: {:?}; last: {last:#?}",
                h.notices()
            );
        }
    }
}

fn row<'a>(tree: &'a Tree, arg: &str) -> &'a forkyard::supervisor::ProcessRow {
    tree.rows
        .iter()
        .find(|r| r.cmdline == format!("sleep {arg}"))
        .unwrap_or_else(|| panic!("no `sleep {arg}` in {tree:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_shows_every_process_and_signals_exactly_one() {
    let plain = sleep_arg(1);
    let stubborn = sleep_arg(2);
    let daemon = sleep_arg(3);
    let piped = sleep_arg(4);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "hang"
shell = "sleep {plain} & (trap '' TERM; sleep {stubborn}) & setsid sleep {daemon} & sleep {piped} | cat & wait"
grace = "2s"
"#
        ),
    );
    let mut h = Harness::start(&config);
    h.wait_running("hang").await;
    h.controller.watch_tree(Some(0));
    let tree = wait_tree(&mut h, "every process is there", |t| {
        t.rows.len() >= 6 && t.rows.iter().any(|r| r.cmdline == "cat")
    })
    .await;
    let shell = &tree.rows[0];
    assert_eq!(shell.depth, 0, "{tree:#?}");
    assert!(shell.cmdline.starts_with("/bin/sh -c"), "{tree:#?}");
    for arg in [&plain, &stubborn, &daemon] {
        let sleep = row(&tree, arg);
        assert_eq!(sleep.state, ProcState::Sleeping, "{sleep:#?}");
        assert!(sleep.depth >= 1, "{sleep:#?}");
        let waits = sleep.syscall.clone().unwrap_or_default();
        assert!(waits.contains("nanosleep"), "{sleep:#?}");
    }
    assert!(row(&tree, &daemon).left_group, "the setsid one is marked");
    assert!(!row(&tree, &plain).left_group);
    assert!(!shell.left_group);

    // What each waits on: the shell for its children (dash's `wait` suspends until
    // SIGCHLD), `cat` in `read` on its pipe.
    assert!(
        matches!(
            shell.syscall.as_deref(),
            Some("wait4" | "waitid" | "rt_sigsuspend")
        ),
        "{shell:#?}"
    );
    let cat = tree.rows.iter().find(|r| r.cmdline == "cat").expect("cat");
    assert_eq!(cat.syscall.as_deref(), Some("read"), "{cat:#?}");
    assert!(cat.wchan.is_some(), "{cat:#?}");
    let pid_of = |arg: &str| row(&tree, arg).pid;

    // Stop only the TERM-ignoring one: it needs SIGKILL after the 2 s grace; the
    // others keep running.
    h.controller
        .act_on_process(0, pid_of(&stubborn), ProcessAction::Stop, Reach::Process);
    wait_tree(&mut h, "the stop counts down", |t| {
        t.rows
            .iter()
            .any(|r| r.cmdline.ends_with(&stubborn) && r.kill_at.is_some())
    })
    .await;
    common::wait_until_async(SLOW, "the stubborn sleep to be killed", || {
        pgrep_count(&sleep_pattern(&stubborn)) == 0
    })
    .await;
    assert_eq!(pgrep_count(&sleep_pattern(&plain)), 1);
    assert_eq!(pgrep_count(&sleep_pattern(&daemon)), 1);
    assert!(matches!(
        h.status("hang").state,
        forkyard::supervisor::JobState::Running
    ));

    // A pid that is not the job's is refused.
    h.controller
        .act_on_process(0, std::process::id(), ProcessAction::Kill, Reach::Process);
    h.wait_notice("hang", SLOW, "is not a process of hang")
        .await;

    // The shell's subtree: the shell and the plain sleep (the daemon is its child too,
    // it did not fork away from it).
    let shell_pid = shell.pid;
    h.controller
        .act_on_process(0, shell_pid, ProcessAction::Kill, Reach::Subtree);
    h.wait_finished("hang", SLOW).await;
    for arg in [&plain, &daemon, &piped] {
        assert_eq!(pgrep_count(&sleep_pattern(arg)), 0, "{arg} survived");
    }
    h.shutdown().await;
}

/// Pausing freezes the run (no CPU while paused, the row says so); resuming thaws it.
/// A job stopped by SIGSTOP still ends on its stop signal, not only on SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stopping_a_stopped_job() {
    let arg = sleep_arg(10);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "busy"
shell = "while :; do :; done"

[[job]]
name = "sleeper"
cmd = ["sleep", "{arg}"]
grace = "30s"
"#
        ),
    );
    let mut h = Harness::start(&config);
    h.wait_running("busy").await;
    h.controller.pause(0, true);
    h.wait_notice("busy", SLOW, "paused busy").await;
    let deadline = Instant::now() + SLOW;
    loop {
        let paused = h.log.iter().rev().find_map(|seen| match &seen.event {
            Event::Sample { id: 0, sample } => Some(sample.paused.is_some()),
            _ => None,
        });
        if paused == Some(true) {
            break;
        }
        assert!(h.next_event(deadline).await.is_some(), "never shown paused");
    }
    // Frozen, it gets no CPU at all over a whole second (the interval is the point of
    // the measurement, not a guess at when something happens).
    let pid = h.status("busy").stages[0].pid.expect("pid");
    let cpu = || {
        forkyard::supervisor::procfs::stat_of(pid)
            .expect("alive")
            .cpu
    };
    let before = cpu();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = cpu();
    assert!(
        after.saturating_sub(before) < std::time::Duration::from_millis(20),
        "it ran while paused: {before:?} -> {after:?}"
    );
    h.controller.pause(0, false);
    h.wait_notice("busy", SLOW, "resumed busy").await;

    // SIGSTOP, then a stop: it ends on SIGTERM at once, not after its 30 s grace.
    h.wait_running("sleeper").await;
    h.control(
        "sleeper",
        forkyard::supervisor::Control::Signal(nix::sys::signal::Signal::SIGSTOP),
    );
    h.wait_notice("sleeper", SLOW, "sent SIGSTOP").await;
    let stopped_at = Instant::now();
    h.control("sleeper", forkyard::supervisor::Control::Stop);
    let outcome = h.wait_finished("sleeper", SLOW).await;
    assert_eq!(
        outcome,
        forkyard::supervisor::Outcome::Stopped {
            signal: Some(nix::sys::signal::Signal::SIGTERM),
            code: None
        }
    );
    assert!(stopped_at.elapsed() < std::time::Duration::from_secs(10));
    h.shutdown().await;
}

/// `stall`: a job that writes nothing and uses no CPU is shown quiet (warn), or stopped
/// with a result that says it stalled (stop), or started again (restart). One that keeps
/// writing is never quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_jobs_are_shown_quiet_stopped_or_restarted() {
    let arg = sleep_arg(20);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[settings]
stall = "600ms"

[[job]]
name = "warned"
cmd = ["sleep", "{arg}"]

[[job]]
name = "stopped"
cmd = ["sleep", "{arg}"]
on_stall = "stop"

[[job]]
name = "restarted"
shell = "echo up; exec sleep {arg}"
on_stall = "restart"

[[job]]
name = "chatty"
shell = "while :; do echo tick; sleep 0.1; done"
"#
        ),
    );
    let mut h = Harness::start(&config);
    let quiet = h
        .wait_job("warned", SLOW, "shown quiet", |s| s.quiet_since.is_some())
        .await;
    assert!(matches!(
        quiet.state,
        forkyard::supervisor::JobState::Running
    ));
    h.wait_notice("warned", SLOW, "warned is quiet").await;
    let outcome = h.wait_finished("stopped", SLOW).await;
    match &outcome {
        forkyard::supervisor::Outcome::Unhealthy { reason, .. } => {
            assert!(reason.contains("stalled"), "{reason}")
        }
        other => panic!("stopped for a stall ended as {other:?}"),
    }
    let postmortem = h
        .status("stopped")
        .tree_at_stop
        .clone()
        .expect("the tree when it stalled");
    assert_eq!(postmortem.why, "stalled");
    assert!(
        postmortem
            .tree
            .rows
            .iter()
            .any(|r| r.cmdline.contains(&arg))
    );
    h.wait_job("restarted", SLOW, "a second run", |s| {
        s.runs >= 2 && s.is_active()
    })
    .await;
    assert!(h.status("chatty").quiet_since.is_none());
    assert!(
        !h.history("chatty").iter().any(|s| s.quiet_since.is_some()),
        "a job that writes every 100 ms was taken for quiet"
    );
    h.shutdown().await;
}

/// The post-mortem of a timed-out job: headless says what its processes were doing
/// under the status line, and the report keeps it (`tree_at_stop`), with the process
/// that needed SIGKILL after the grace period marked.
#[test]
fn a_timed_out_job_leaves_its_tree_in_the_report() {
    let plain = sleep_arg(30);
    let stubborn = sleep_arg(31);
    let dir = tempdir();
    common::write_file(
        dir.path(),
        "hang.toml",
        &format!(
            r#"
[[job]]
name = "hung"
shell = "sleep {plain} & (trap '' TERM; sleep {stubborn}) & wait"
timeout = "400ms"
grace = "400ms"
"#
        ),
    );
    let output = std::process::Command::new(common::forkyard_bin())
        .args([
            "--headless",
            "--no-summary",
            "--report",
            "report.json",
            "hang.toml",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run forkyard");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("its processes when it timed out:"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&format!("sleep {stubborn}")) && l.contains("needed SIGKILL")),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report"),
    )
    .expect("json");
    let tree = &report["jobs"][0]["tree_at_stop"];
    assert_eq!(tree["why"], "timed out");
    let processes = tree["processes"].as_array().expect("processes");
    let of = |arg: &str| {
        processes
            .iter()
            .find(|p| p["cmdline"] == format!("sleep {arg}"))
            .unwrap_or_else(|| panic!("no sleep {arg} in {tree}"))
    };
    assert_eq!(of(&plain)["state"], "sleeping");
    assert!(
        of(&plain)["waits_on"]
            .as_str()
            .is_some_and(|w| w.contains("nanosleep"))
    );
    assert_eq!(of(&plain)["outlived_grace"], false);
    assert_eq!(of(&stubborn)["outlived_grace"], true);
    assert_eq!(pgrep_count(&sleep_pattern(&stubborn)), 0);
}

/// The sampler skips reading a quiet job's cgroup member list (nothing that has not run
/// can have forked): a job idle for several ticks that then forks is still counted in
/// full, its new processes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_job_that_forks_later_is_sampled_whole() {
    let (a, b) = (sleep_arg(20), sleep_arg(21));
    let dir = tempdir();
    let fifo = dir.path().join("go");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "forker"
shell = "read line < '{fifo}'; sleep {a} & sleep {b} & wait"
"#,
            fifo = fifo.display()
        ),
    );
    let sampled = Arc::new(tokio::sync::Notify::new());
    let mut h = Harness::start_with(
        &config,
        forkyard::supervisor::SupervisorOptions {
            sample_interval: Some(std::time::Duration::from_millis(100)),
            sampled: Some(sampled.clone()),
            ..Default::default()
        },
    );
    h.wait_running("forker").await;
    let processes = |h: &Harness| {
        h.log.iter().rev().find_map(|seen| match &seen.event {
            Event::Sample { id: 0, sample } => Some(sample.processes),
            _ => None,
        })
    };
    let deadline = Instant::now() + SLOW;
    while processes(&h) != Some(1) {
        assert!(
            h.next_event(deadline).await.is_some(),
            "never sampled with one process: {:?}",
            processes(&h)
        );
    }
    // Quiet for several ticks: the shell waits in open(2) on the fifo.
    for _ in 0..5 {
        tokio::time::timeout(SLOW, sampled.notified())
            .await
            .expect("the sampler ticks");
    }
    std::fs::write(&fifo, "go\n").expect("write the fifo");
    while processes(&h) != Some(3) {
        assert!(
            h.next_event(deadline).await.is_some(),
            "the forked sleeps were never counted: {:?}",
            processes(&h)
        );
    }
    h.shutdown().await;
    for arg in [&a, &b] {
        assert_eq!(pgrep_count(&sleep_pattern(arg)), 0, "{arg} survived");
    }
}
