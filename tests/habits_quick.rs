//! Quick mode, end to end: commands typed on the command line run as jobs (names from
//! `--names` or `name=cmd`, `-j 1` order, `--timeout`, `--restart`), and the rule that
//! keeps a config path and a command apart: one bare argument is a file, two or more are
//! commands, a command that could be a file is refused, `forkyard run` always runs
//! commands. No clap message about a subcommand the user did not type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use common::{forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir, write_file};

/// Runs `forkyard <args>` in `cwd` (bounded); returns (exit code, stdout, stderr).
fn forkyard(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    let output = assert_cmd::Command::new(forkyard_bin())
        .args(args)
        .current_dir(cwd)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run forkyard");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Lines of stdout whose job prefix is one of `names`, in order.
fn job_lines<'a>(stdout: &'a str, names: &[&str]) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| {
            names.iter().any(|n| {
                l.strip_prefix(n)
                    .is_some_and(|r| r.trim_start().starts_with(['|', '!']))
            })
        })
        .collect()
}

#[test]
fn bare_commands_run_with_names_one_at_a_time() {
    let dir = tempdir();
    let (code, stdout, stderr) = forkyard(
        &[
            "--headless",
            "-j",
            "1",
            "--names",
            "first,second",
            "echo one; sleep 0.3; echo one-done",
            "echo two",
            "third=echo three",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = job_lines(&stdout, &["first", "second", "third"]);
    let text: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    // -j 1: each job ends before the next starts, in the order given, even though the
    // first one is the slowest.
    assert_eq!(
        text,
        [
            "first | one",
            "first | one-done",
            "second | two",
            "third | three"
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("forkyard summary: 3 jobs, 3 succeeded, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn run_subcommand_takes_options_before_and_after_it() {
    let dir = tempdir();
    let (code, stdout, stderr) = forkyard(
        &[
            "--headless",
            "run",
            "-j",
            "1",
            "web=echo served",
            "FOO=1 sh -c 'echo foo is $FOO'",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // `web=` names a job; `FOO=1 sh ...` is a command setting FOO, named after `sh`.
    assert!(stdout.contains("web | served"), "{stdout}");
    assert!(stdout.contains("sh  | foo is 1"), "{stdout}");
}

#[test]
fn timeout_and_restart_apply_to_command_line_jobs() {
    let dir = tempdir();
    let arg = sleep_arg(1);
    let (code, stdout, stderr) = forkyard(
        &[
            "--headless",
            "--report",
            "report.json",
            "--timeout",
            "300ms",
            "--restart",
            "on-failure",
            &format!("sleeper=sleep {arg}"),
            "flaky=test -e marker || { touch marker; exit 3; }",
        ],
        dir.path(),
    );
    // The sleeper times out (a failure) and is restarted until it gives up; flaky fails
    // once, is restarted and succeeds.
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let job = |name: &str| {
        report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no job {name} in {report}"))
    };
    assert_eq!(job("flaky")["restarts"], 1, "{report}");
    assert_eq!(job("flaky")["exit_code"], 0, "{report}");
    assert_eq!(job("sleeper")["restarts"], 5, "{report}");
    assert!(
        stdout.contains("timed out"),
        "the sleeper ends as timed out: {stdout}"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0, "a sleeper was left");
}

#[test]
fn one_argument_is_a_file_never_a_command() {
    let dir = tempdir();
    // Not a file: refused, with the way to run it as a command, and nothing runs.
    let (code, stdout, stderr) = forkyard(&["touch ran"], dir.path());
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("touch ran: no such file"), "{stderr}");
    assert!(stderr.contains("forkyard run 'touch ran'"), "{stderr}");
    assert!(!stderr.contains("subcommand"), "{stderr}");
    assert!(!dir.path().join("ran").exists());

    // An executable script given alone is a config file (and not valid TOML).
    let script = write_file(dir.path(), "job.sh", "#!/bin/sh\ntouch ran-script\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, _, stderr) = forkyard(&["--headless", "./job.sh"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("./job.sh:"), "{stderr}");
    assert!(!dir.path().join("ran-script").exists());
    // `forkyard run` always takes commands: the same script runs.
    let (code, _, stderr) = forkyard(&["--headless", "run", "./job.sh"], dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dir.path().join("ran-script").exists());
}

#[test]
fn a_command_that_could_be_a_file_is_refused() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "forkyard.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"true\"]\n",
    );
    for args in [
        ["touch ran", "forkyard.toml"],
        ["touch ran", "other.yaml"],
        ["touch ran", "Procfile"],
    ] {
        let (code, stdout, stderr) = forkyard(&args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains("could be a file or a command"), "{stderr}");
        assert!(stderr.contains("forkyard run"), "{stderr}");
        assert!(!dir.path().join("ran").exists(), "{args:?} ran something");
    }
    // Two plain commands run.
    let (code, stdout, stderr) = forkyard(&["--headless", "touch a1", "touch a2"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(dir.path().join("a1").exists() && dir.path().join("a2").exists());
}

#[test]
fn errors_are_about_what_was_typed() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "x.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"true\"]\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (&["chek"], "did you mean `forkyard check`?"),
        (&["run"], "give one or more commands"),
        (
            &["--names", "a,b,c", "echo 1", "echo 2"],
            "--names gives 3 names for 2 commands",
        ),
        (&["--names", "a b", "echo 1", "echo 2"], "is not a job name"),
        (
            &["--timeout", "soon", "echo 1", "echo 2"],
            "--timeout: invalid duration",
        ),
        (
            &["--restart", "always", "x.toml"],
            "--restart describes jobs given on the command line",
        ),
        (&["--headless", "check"], "--headless shapes a run"),
    ];
    for (args, want) in cases {
        let (code, stdout, stderr) = forkyard(args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("subcommand"),
            "{args:?}: a clap message about subcommands: {stderr}"
        );
    }
}
