//! Nothing lost, nothing left: every line reaches a slow reader, every process a job
//! started is gone when the job is (however it daemonised or scrubbed its environment),
//! and even a forkyard killed with SIGKILL leaves nothing running (its watchdog cleans
//! up). Real processes, real pipes, real signals; leftovers counted with `pgrep` on
//! markers unique to this test process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Harness, SLOW, config_in, forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir,
    wait_until, write_file,
};
use forkyard::supervisor::{Control, JobState, Outcome};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// 100 jobs × 20,000 lines into a reader that only starts reading after 2 s: the pipes
/// fill, the jobs exit, and every line still arrives (a run ends when its pipes reach
/// end-of-file, not after a timer), with exit status 0.
#[test]
fn a_slow_reader_gets_every_line() {
    let dir = tempdir();
    let jobs: String = (0..100)
        .map(|i| format!("[[job]]\nname = \"s{i}\"\ncmd = [\"seq\", \"1\", \"20000\"]\n\n"))
        .collect();
    write_file(dir.path(), "slow.toml", &jobs);
    let script = format!(
        "'{}' --headless --no-summary slow.toml 2>/dev/null | (sleep 2; cat) | wc -l; \
         echo \"status ${{PIPESTATUS[0]}}\"",
        forkyard_bin().display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim), Some("2000000"), "{text}");
    assert_eq!(lines.next(), Some("status 0"), "{text}");
}

/// 300 jobs each write one 60 KiB line without a newline and exit at once: every one of
/// them is printed whole (the last partial line of a pipe is flushed at its EOF).
#[test]
fn the_last_partial_line_of_every_job_arrives() {
    let dir = tempdir();
    let jobs: String = (0..300)
        .map(|i| {
            format!(
                "[[job]]\nname = \"p{i}\"\nshell = \"head -c 61440 /dev/zero | tr '\\\\0' x\"\n\n"
            )
        })
        .collect();
    write_file(dir.path(), "partial.toml", &jobs);
    let output = Command::new(forkyard_bin())
        .args(["--headless", "--no-summary", "partial.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run forkyard");
    assert_eq!(output.status.code(), Some(0));
    let full = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.ends_with(&"x".repeat(61440)))
        .count();
    assert_eq!(full, 300);
}

/// A run whose shell starts daemons (setsid, a scrubbed environment, one holding the
/// output pipe, one not) and fails: each run's daemons are stopped when the run ends,
/// before the restart policy starts the next, so nothing accumulates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_end_with_the_run_that_started_them() {
    let held = sleep_arg(1);
    let detached = sleep_arg(2);
    let count = || pgrep_count(&sleep_pattern(&held)) + pgrep_count(&sleep_pattern(&detached));
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "flaky"
shell = "setsid sleep {held} & env -i setsid sleep {detached} </dev/null >/dev/null 2>&1 & sleep 0.3; exit 1"
restart = "on-failure"
max_restarts = 3
grace = "1s"
"#
        ),
    );
    let mut h = Harness::start(&config);
    for run in 1..=4 {
        h.wait_job("flaky", SLOW, "a run to start its daemons", |s| {
            s.runs == run && s.is_active()
        })
        .await;
        common::wait_until_async(SLOW, "this run's two daemons", || count() == 2).await;
    }
    let outcome = h.wait_finished("flaky", SLOW).await;
    assert_eq!(outcome, Outcome::Exited { code: 1 });
    assert!(h.status("flaky").is_settled());
    // Before any shutdown: the runs themselves cleaned up.
    assert_eq!(count(), 0, "daemons outlived their runs");
    assert!(h.history("flaky").iter().any(|s| s.left_group >= 1));
    h.shutdown().await;
}

/// `R` twenty times on a job whose shell starts a daemon: every older run's daemon is
/// stopped with its run; one is left (the current run's), none after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_leave_no_older_daemon() {
    let daemon = sleep_arg(3);
    let main = sleep_arg(4);
    let pattern = sleep_pattern(&daemon);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "svc"
shell = "setsid sleep {daemon} & sleep {main}"
grace = "1s"
"#
        ),
    );
    let mut h = Harness::start(&config);
    for run in 1..=20u32 {
        h.wait_job("svc", SLOW, "the run", |s| {
            s.runs == run && matches!(s.state, JobState::Running)
        })
        .await;
        common::wait_until_async(SLOW, "exactly one daemon", || pgrep_count(&pattern) == 1).await;
        h.control("svc", Control::Restart);
    }
    h.wait_job("svc", SLOW, "the last run", |s| {
        s.runs == 21 && matches!(s.state, JobState::Running)
    })
    .await;
    common::wait_until_async(SLOW, "one daemon", || pgrep_count(&pattern) == 1).await;
    h.shutdown().await;
    assert_eq!(pgrep_count(&pattern), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&main)), 0);
}

/// The timeout of a job reaches what it daemonised, even with a scrubbed environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_stops_the_daemons_too() {
    let daemon = sleep_arg(5);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "timed"
shell = "env -i setsid sleep {daemon} </dev/null >/dev/null 2>&1 & sleep {daemon}"
timeout = "300ms"
"#
        ),
    );
    let mut h = Harness::start(&config);
    let outcome = h.wait_finished("timed", SLOW).await;
    assert!(matches!(outcome, Outcome::TimedOut { .. }), "{outcome:?}");
    assert_eq!(pgrep_count(&sleep_pattern(&daemon)), 0);
    h.shutdown().await;
}

/// Where a writable cgroup v2 hierarchy exists (CI has one), it is used: the exact
/// containment is what the tests above rely on for processes outside any pipe.
#[test]
fn cgroup_containment_is_active_here() {
    let containment = forkyard::supervisor::contain::containment();
    assert!(
        containment.base().is_some(),
        "no cgroup containment on this machine: {}",
        containment.describe()
    );
}

/// A headless forkyard with 3 jobs and 16 processes — grandchildren, a TERM-ignoring
/// one, setsid daemons, one with a scrubbed environment, a pipeline — is killed with
/// SIGKILL. Nothing inside it runs after that; its watchdog kills every process within
/// a second and removes its cgroups.
fn sigkill_leaves_nothing(tag: u32, no_cgroup: bool) {
    let marks: Vec<String> = (tag..tag + 3).map(sleep_arg).collect();
    let count = || {
        marks
            .iter()
            .map(|m| pgrep_count(&sleep_pattern(m)))
            .sum::<usize>()
    };
    let dir = tempdir();
    write_file(
        dir.path(),
        "kill.toml",
        &format!(
            r#"
[[job]]
name = "tree"
shell = "sleep {a} & sleep {a} & (trap '' TERM; sleep {a}) & sleep {a}"

[[job]]
name = "daemons"
shell = "setsid sleep {b} & env -i setsid sleep {b} </dev/null >/dev/null 2>&1 & (setsid sh -c 'sleep {b} & sleep {b}') & sleep {b}"

[[job]]
name = "pipe"
pipeline = [["sleep", "{c}"], ["sleep", "{c}"], "sleep {c} | cat"]
"#,
            a = marks[0],
            b = marks[1],
            c = marks[2]
        ),
    );
    let mut command = Command::new(forkyard_bin());
    command
        .args(["--headless", "kill.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if no_cgroup {
        command.env("FORKYARD_NO_CGROUP", "1");
    }
    let mut child = command.spawn().expect("start forkyard");
    wait_until(SLOW, "every sleep to start", || count() == 12);
    // Give the sampler a look at the tree (what the fallback tells the watchdog).
    std::thread::sleep(Duration::from_millis(1500));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL forkyard");
    let killed = Instant::now();
    child.wait().expect("reap forkyard");
    wait_until(Duration::from_secs(3), "the watchdog to clean up", || {
        count() == 0
    });
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(1), "cleanup took {took:?}");
}

#[test]
fn sigkill_to_forkyard_leaves_nothing_with_cgroups() {
    sigkill_leaves_nothing(10, false);
}

#[test]
fn sigkill_to_forkyard_leaves_groups_clean_without_cgroups() {
    sigkill_leaves_nothing(20, true);
}

/// `forkyard check` says which containment is active, and why the fallback is used.
#[test]
fn check_names_the_containment() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "one.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"true\"]\n",
    );
    let run = |no_cgroup: bool| {
        let mut command = Command::new(forkyard_bin());
        command.args(["check", "one.toml"]).current_dir(dir.path());
        if no_cgroup {
            command.env("FORKYARD_NO_CGROUP", "1");
        }
        let output = command.output().expect("run check");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let with = run(false);
    assert!(with.contains("containment: cgroup v2"), "{with}");
    let without = run(true);
    assert!(
        without.contains(
            "containment: process groups and ancestry (no cgroup: FORKYARD_NO_CGROUP is set)"
        ),
        "{without}"
    );
}

/// Headless on a terminal stopped with ^S: stdout and stderr both block. The first
/// SIGTERM still stops every job (messages never make forkyard wait for stderr); the
/// printer keeps waiting to deliver what the jobs wrote; the second SIGTERM gives up on
/// it and forkyard exits 143 at once.
#[test]
fn a_frozen_terminal_does_not_keep_forkyard_alive() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed for this test"
    );
    let marker = sleep_arg(30);
    let dir = tempdir();
    write_file(
        dir.path(),
        "chat.toml",
        &format!(
            "[[job]]\nname = \"chat\"\nshell = \"while :; do echo {marker} {marker} {marker}; done\"\n"
        ),
    );
    let socket = format!("fy-frozen-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("run tmux")
    };
    let pid_file = dir.path().join("pid");
    let exit_file = dir.path().join("exit");
    let script = format!(
        "sh -c 'echo $$ > {pid}; exec {bin} --headless chat.toml'; echo $? > {exit}; sleep 60",
        pid = pid_file.display(),
        bin = forkyard_bin().display(),
        exit = exit_file.display()
    );
    tmux(&["kill-server"]);
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "20",
        "-c",
        &dir.path().display().to_string(),
        &script,
    ]);
    assert!(started.status.success(), "{started:?}");
    let cleanup = || {
        tmux(&["kill-server"]);
    };
    wait_until(SLOW, "forkyard to start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim().parse::<u32>().is_ok())
    });
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let chatter = format!("echo {marker}");
    wait_until(SLOW, "the job to print", || {
        pgrep_count(&format!("while :; do {chatter}")) > 0
    });
    tmux(&["send-keys", "-t", "0", "C-s"]);
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("first SIGTERM");
    wait_until(Duration::from_secs(10), "the job to be stopped", || {
        pgrep_count(&format!("while :; do {chatter}")) == 0
    });
    assert!(
        !exit_file.exists(),
        "forkyard gave up on the output without being asked"
    );
    let second = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("second SIGTERM");
    wait_until(Duration::from_secs(5), "forkyard to exit", || {
        std::fs::read_to_string(&exit_file).is_ok_and(|t| !t.trim().is_empty())
    });
    let took = second.elapsed();
    let code = std::fs::read_to_string(&exit_file).unwrap();
    cleanup();
    assert_eq!(code.trim(), "143");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} after the second signal"
    );
}

/// Spawns that fail (a missing program, a missing cwd) next to jobs that start and exit
/// at once: `Command::spawn` reaps a child whose `exec` failed itself, and the reaper
/// must never take it first (std panics: "wait() should either return Ok or panic").
#[test]
fn failed_spawns_never_panic() {
    let dir = tempdir();
    let mut jobs = String::new();
    for i in 0..60 {
        jobs.push_str(&match i % 3 {
            0 => format!("[[job]]\nname = \"missing{i}\"\ncmd = [\"fy-no-such-program-{i}\"]\n\n"),
            1 => {
                format!("[[job]]\nname = \"nocwd{i}\"\ncmd = [\"true\"]\ncwd = \"no-such-dir\"\n\n")
            }
            _ => format!("[[job]]\nname = \"ok{i}\"\ncmd = [\"true\"]\n\n"),
        });
    }
    write_file(dir.path(), "spawns.toml", &jobs);
    // Before the fix, 5 runs in 40 of this config panicked (release build).
    for run in 0..30 {
        let output = Command::new(forkyard_bin())
            .args(["--headless", "--no-summary", "spawns.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run forkyard");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "run {run}: {stderr}");
        assert!(!stderr.contains("panicked"), "run {run}: {stderr}");
        assert_eq!(
            stderr.matches("failed to start").count(),
            40,
            "run {run}: {stderr}"
        );
    }
}

/// Pipelines whose first stage exits at once, next to single jobs that do too: the
/// first stage (the group leader) must not be reaped before the last stage has joined
/// its group, or that stage's `setpgid` fails (it did, 49 runs in 200).
#[test]
fn instant_pipelines_keep_their_group() {
    let dir = tempdir();
    let mut jobs = String::new();
    for i in 0..40 {
        jobs.push_str(&format!(
            "[[job]]\nname = \"pipe{i}\"\npipeline = [[\"echo\", \"p{i}\"], [\"cat\"]]\n\n[[job]]\nname = \"one{i}\"\ncmd = [\"echo\", \"o{i}\"]\n\n"
        ));
    }
    write_file(dir.path(), "pipes.toml", &jobs);
    for run in 0..10 {
        let output = Command::new(forkyard_bin())
            .args(["--headless", "--no-summary", "pipes.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run forkyard");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "run {run}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.lines().count(), 80, "run {run}: {stdout}");
    }
}

/// The README's first command without a terminal: the built-in demo (a tour that stays
/// up in the TUI) ends by itself through its `headless_timeout`, with its summary.
#[test]
fn the_demo_ends_by_itself_headless() {
    let dir = tempdir();
    let started = Instant::now();
    let output = Command::new(forkyard_bin())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run forkyard");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(took < Duration::from_secs(15), "the demo took {took:?}");
    assert!(stdout.contains("forkyard summary: "), "{stdout}");
    assert!(output.status.code().is_some(), "{:?}", output.status);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
