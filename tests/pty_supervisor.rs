//! PTY jobs at the process level, through the headless binary: what the child sees,
//! what a PTY pipeline's stages are, and that stopping works as for a pipe job and
//! leaves nothing behind (a daemon holding the terminal, a child ignoring SIGTERM,
//! forkyard itself killed), with a cgroup per run and without.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{SLOW, pgrep_count, sleep_arg, sleep_pattern, tempdir, wait_until, write_file};

fn forkyard(dir: &std::path::Path, config: &str, env: &[(&str, &str)]) -> std::process::Output {
    let path = write_file(dir, "jobs.toml", config);
    let mut command = Command::new(env!("CARGO_BIN_EXE_forkyard"));
    command
        .args(["--headless", "--report"])
        .arg(dir.join("report.json"))
        .arg(&path)
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run forkyard");
    child.wait_with_output().expect("wait")
}

fn report(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn headless_pty_jobs_see_a_terminal_and_their_lines_are_prefixed() {
    let dir = tempdir();
    let out = forkyard(
        dir.path(),
        r#"
[settings]
pty = true
[[job]]
name = "tty"
cmd = ["python3", "-c", "import os, sys; print(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty(), os.get_terminal_size(), os.environ['TERM']); print('to stderr', file=sys.stderr)"]
[[job]]
name = "piped"
pty = false
cmd = ["python3", "-c", "import sys; print('piped', sys.stdout.isatty())"]
"#,
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "tty   | True True True os.terminal_size(columns=80, lines=24) xterm-256color"
        ),
        "{stdout}"
    );
    // stderr shares the terminal: one stream, shown as stdout.
    assert!(stdout.contains("tty   | to stderr"), "{stdout}");
    assert!(stdout.contains("piped | piped False"), "{stdout}");
    // Into a pipe the bytes pass unchanged but the terminal's \r before \n.
    assert!(!stdout.contains('\r'), "{stdout:?}");
}

#[test]
fn headless_a_stdin_pipe_job_reads_end_of_file_at_once() {
    let dir = tempdir();
    let out = forkyard(
        dir.path(),
        "[[job]]\nname = \"cat\"\ncmd = [\"sh\", \"-c\", \"cat; echo eof\"]\nstdin = \"pipe\"\n",
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("cat | eof"), "{stdout}");
}

#[test]
fn a_pty_pipeline_keeps_a_pid_and_a_status_per_stage() {
    let dir = tempdir();
    let out = forkyard(
        dir.path(),
        r#"
[[job]]
name = "pipe"
pty = true
pipefail = true
pipeline = [
  ["python3", "-c", "import sys; print('first', sys.stdin.isatty(), sys.stdout.isatty()); sys.stdout.flush(); print('err', sys.stderr.isatty(), file=sys.stderr); sys.exit(3)"],
  ["python3", "-c", "import sys; print('last', sys.stdin.isatty(), sys.stdout.isatty(), sys.stdin.read().strip())"],
]
"#,
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The first stage reads the terminal and writes into the pipe; the last stage reads
    // the pipe and writes to the terminal; every stderr is the terminal.
    assert!(stdout.contains("err True"), "{stdout}");
    assert!(
        stdout.contains("last False True first True False"),
        "{stdout}"
    );
    let report = report(dir.path());
    let stages = report["jobs"][0]["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["exit_code"], 3);
    assert_eq!(stages[1]["exit_code"], 0);
    assert_ne!(stages[0]["pid"], stages[1]["pid"]);
    assert_eq!(
        report["jobs"][0]["exit_code"], 3,
        "pipefail: the first failing stage"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A daemon that leaves the session but keeps the terminal open: the run ends only once
/// it is stopped, with or without a cgroup to find it by.
fn a_daemon_holding_the_terminal_is_stopped(tag: u32, env: &[(&str, &str)]) {
    let dir = tempdir();
    let arg = sleep_arg(tag);
    let config = format!(
        r#"
[[job]]
name = "daemon"
shell = "setsid sleep {arg} & echo started"
pty = true
grace = "500ms"
"#
    );
    let start = Instant::now();
    let out = forkyard(dir.path(), &config, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("daemon | started"), "{stdout}");
    assert!(start.elapsed() < SLOW, "took {:?}", start.elapsed());
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0, "the daemon survived");
}

#[test]
fn a_daemon_holding_the_terminal_is_stopped_with_a_cgroup() {
    a_daemon_holding_the_terminal_is_stopped(1, &[]);
}

#[test]
fn a_daemon_holding_the_terminal_is_stopped_without_a_cgroup() {
    a_daemon_holding_the_terminal_is_stopped(2, &[("FORKYARD_NO_CGROUP", "1")]);
}

#[test]
fn a_pty_job_ignoring_sigterm_is_killed_after_its_grace() {
    let dir = tempdir();
    let arg = sleep_arg(3);
    let config = format!(
        r#"
[[job]]
name = "stubborn"
shell = "trap '' TERM; echo ready; sleep {arg}; echo never"
pty = true
timeout = "300ms"
grace = "500ms"
"#
    );
    let start = Instant::now();
    let out = forkyard(dir.path(), &config, &[]);
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ready"), "{stdout}");
    assert!(!stdout.contains("never"), "{stdout}");
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert_eq!(report(dir.path())["jobs"][0]["result"], "timed_out");
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[test]
fn sigkill_to_forkyard_leaves_no_pty_job_behind() {
    let dir = tempdir();
    let arg = sleep_arg(4);
    let path = write_file(
        dir.path(),
        "jobs.toml",
        &format!(
            r#"
[[job]]
name = "a"
cmd = ["sleep", "{arg}"]
pty = true
[[job]]
name = "b"
shell = "sleep {arg} & sleep {arg}"
pty = true
[[job]]
name = "c"
pipeline = [["sleep", "{arg}"], ["cat"]]
pty = true
"#
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_forkyard"))
        .arg("--headless")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run forkyard");
    wait_until(SLOW, "four sleeps", || {
        pgrep_count(&sleep_pattern(&arg)) == 4
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    wait_until(Duration::from_secs(5), "no sleep left", || {
        pgrep_count(&sleep_pattern(&arg)) == 0
    });
}
