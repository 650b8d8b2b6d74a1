//! No descriptor, full or closed, and no ending signal may end forkyard in a panic or
//! leave a child behind: the real binary with a reader that goes away (`| head -1`, both
//! stdout and stderr), `/dev/full`, and every ending signal. Exit statuses are the Unix
//! ones: 141 for a closed pipe, 128 + N for signal N, 1 with a message for a full disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{SLOW, forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A flood on stdout, another on stderr, and an idle job carrying `marker`.
fn three_jobs(dir: &Path, marker: &str) -> std::path::PathBuf {
    common::write_file(
        dir,
        "three.toml",
        &format!(
            r#"
[settings]
grace = "1s"

[[job]]
name = "flood"
cmd = ["yes"]

[[job]]
name = "errs"
shell = "yes oops >&2"

[[job]]
name = "idle"
cmd = ["sleep", "{marker}"]
"#
        ),
    )
}

/// Runs `script` with `sh -c` in `dir` (bounded); returns (exit status of sh, stdout,
/// stderr). `$FY` is the forkyard binary.
fn sh(script: &str, dir: &Path) -> (Option<i32>, String, String) {
    let output = assert_cmd::Command::new("sh")
        .args(["-c", script])
        .env("FY", forkyard_bin())
        .current_dir(dir)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run sh");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_no_panic(text: &str) {
    assert!(!text.contains("panicked"), "forkyard panicked:\n{text}");
    assert!(
        !text.contains("RUST_BACKTRACE"),
        "forkyard panicked:\n{text}"
    );
}

/// `forkyard … 2>&1 | head -1`: stdout and stderr both go to a reader that leaves after
/// one line. forkyard stops every job and exits 141 without a word (it has nowhere to
/// say one), leaving nothing behind.
#[test]
fn stdout_and_stderr_closed_exit_141_with_nothing_left() {
    let dir = tempdir();
    let marker = sleep_arg(1);
    three_jobs(dir.path(), &marker);
    // forkyard's own status goes to fd 3 (sh has no PIPESTATUS).
    let (code, stdout, stderr) = sh(
        r#"{ "$FY" --headless three.toml 2>&1; echo "forkyard=$?" >&3; } 3>status.txt | head -1; cat status.txt"#,
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("forkyard=141"), "{stdout}\n{stderr}");
    assert_no_panic(&stdout);
    assert_no_panic(&stderr);
    wait_until(Duration::from_secs(5), "the idle job to be gone", || {
        pgrep_count(&sleep_pattern(&marker)) == 0
    });
}

/// `forkyard > /dev/full`: the first write fails with ENOSPC. forkyard says so, stops
/// every job, and exits 1.
#[test]
fn full_disk_says_so_and_stops_cleanly() {
    let dir = tempdir();
    let marker = sleep_arg(2);
    three_jobs(dir.path(), &marker);
    let (code, _, stderr) = sh(
        r#"exec "$FY" --headless three.toml > /dev/full"#,
        dir.path(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("forkyard: cannot write job output: No space left on device"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
    // Stopped like any other ending: the stop signal went to every job (a stop is
    // "stopped", no longer a bare "SIGTERM" failure).
    assert!(stderr.contains("idle stopped (SIGTERM)"), "{stderr}");
    assert_eq!(pgrep_count(&sleep_pattern(&marker)), 0);
}

/// The summary alone (the jobs print nothing) into `/dev/full`: also said, also 1.
#[test]
fn summary_into_a_full_disk_is_said() {
    let dir = tempdir();
    common::write_file(
        dir.path(),
        "quiet.toml",
        "[[job]]\nname = \"quiet\"\ncmd = [\"true\"]\n",
    );
    let (code, _, stderr) = sh(
        r#"exec "$FY" --headless quiet.toml > /dev/full"#,
        dir.path(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the summary: No space left on device"),
        "{stderr}"
    );
}

/// A config whose `forkyard check` listing is far larger than a pipe holds.
fn big_config(dir: &Path) {
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!(
            "[[job]]\nname = \"job{i}\"\ncmd = [\"echo\", \"{i}\"]\n\n"
        ));
    }
    common::write_file(dir, "big.toml", &text);
}

/// `forkyard check | head -1` and `forkyard check > /dev/full`: no panic; 141 and 1.
#[test]
fn check_into_a_closed_pipe_or_a_full_disk() {
    let dir = tempdir();
    big_config(dir.path());
    let (code, stdout, stderr) = sh(
        r#"{ "$FY" check big.toml; echo "forkyard=$?" >&3; } 3>status.txt | head -1; cat status.txt"#,
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("big.toml: OK, 3000 jobs\n"), "{stdout}");
    assert!(stdout.contains("forkyard=141"), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is quiet: {stderr}");

    let (code, _, stderr) = sh(r#"exec "$FY" check big.toml > /dev/full"#, dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the listing: No space left on device"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

/// `--compare … > /dev/full`: the table cannot be written; said, 1, no panic.
#[test]
fn compare_into_a_full_disk() {
    let dir = tempdir();
    common::write_file(
        dir.path(),
        "two.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"true\"]\n[[job]]\nname = \"b\"\ncmd = [\"true\"]\n",
    );
    let (code, _, stderr) = sh(
        r#"exec "$FY" --compare 1,0 two.toml > /dev/full"#,
        dir.path(),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the comparison: No space left on device"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

/// Every ending signal (QUIT, USR1, USR2, ALRM as well as INT, TERM, HUP, tested in
/// cli_run) stops every job, TERM-ignoring ones after grace, and gives 128 + N.
#[test]
fn every_ending_signal_stops_every_job() {
    for (i, signal) in [
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ]
    .into_iter()
    .enumerate()
    {
        let plain = sleep_arg(10 + 2 * i as u32);
        let stubborn = sleep_arg(11 + 2 * i as u32);
        let dir = tempdir();
        common::write_file(
            dir.path(),
            "sig.toml",
            &format!(
                r#"
[settings]
grace = "500ms"

[[job]]
name = "plain"
cmd = ["sleep", "{plain}"]

[[job]]
name = "stubborn"
shell = "trap '' TERM; sleep {stubborn} & wait"
"#
            ),
        );
        let stderr_path = dir.path().join("stderr.txt");
        let mut child = Command::new(forkyard_bin())
            .args(["--headless", "sig.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("start forkyard");
        let count = || pgrep_count(&sleep_pattern(&plain)) + pgrep_count(&sleep_pattern(&stubborn));
        wait_until(SLOW, "both sleeps to start", || count() == 2);
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal forkyard");
        let deadline = Instant::now() + SLOW;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{signal}: forkyard did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(128 + signal as i32),
            "{signal}: {status:?}\n{stderr}"
        );
        assert!(stderr.contains(signal.as_str()), "{stderr}");
        assert_no_panic(&stderr);
        assert_eq!(count(), 0, "{signal}: a job survived\n{stderr}");
    }
}

/// `--help` and `--version` into a full disk: said, and 1 (not a silent 0).
#[test]
fn help_into_a_full_disk() {
    let dir = tempdir();
    for flag in ["--help", "--version"] {
        let (code, _, stderr) = sh(&format!(r#"exec "$FY" {flag} > /dev/full"#), dir.path());
        assert_eq!(code, Some(1), "{flag}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
        assert_no_panic(&stderr);
    }
    let (code, stdout, _) = sh(r#"exec "$FY" --version"#, dir.path());
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("forkyard "), "{stdout}");
}
