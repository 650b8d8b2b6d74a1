//! Config errors end to end: the binary exits 2 and names file:line:column and the key,
//! both when running and for `forkyard check`; `check` prints a valid config resolved.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use common::{forkyard_bin, tempdir, write_file};

fn forkyard(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    let output = assert_cmd::Command::new(forkyard_bin())
        .args(args)
        .current_dir(cwd)
        .timeout(Duration::from_secs(30))
        .output()
        .expect("run forkyard");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const BAD_TIMEOUT: &str = r#"[[job]]
name = "web"
cmd = ["sleep", "1"]
timeout = "5 parsecs"
"#;

const UNKNOWN_KEY: &str = r#"[settings]
grace = "1s"

[[job]]
name = "web"
cmd = ["true"]
restrat = "always"
"#;

#[test]
fn run_with_a_bad_value_exits_2_naming_place_and_key() {
    let dir = tempdir();
    write_file(dir.path(), "bad.toml", BAD_TIMEOUT);
    for args in [&["--headless", "bad.toml"][..], &["bad.toml"][..]] {
        let (code, stdout, stderr) = forkyard(args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("bad.toml:4:11:"), "{stderr}");
        assert!(stderr.contains("key `timeout`"), "{stderr}");
        assert!(stderr.contains("job \"web\""), "{stderr}");
        assert!(stderr.contains("5 parsecs"), "{stderr}");
        // Nothing ran.
        assert!(!stdout.contains("summary"), "{stdout}");
    }
}

#[test]
fn check_reports_unknown_keys_and_syntax_errors() {
    let dir = tempdir();
    write_file(dir.path(), "unknown.toml", UNKNOWN_KEY);
    let (code, _, stderr) = forkyard(&["check", "unknown.toml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown.toml:7:1:"), "{stderr}");
    assert!(stderr.contains("key `restrat`"), "{stderr}");
    assert!(stderr.contains("unknown key"), "{stderr}");

    write_file(
        dir.path(),
        "syntax.toml",
        "[[job]]\nname = \"x\ncmd = [\"true\"]\n",
    );
    let (code, _, stderr) = forkyard(&["check", "syntax.toml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("syntax.toml:2:"), "{stderr}");
    assert!(stderr.contains("TOML syntax error"), "{stderr}");

    let (code, _, stderr) = forkyard(&["check", "missing.toml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn check_prints_the_resolved_jobs() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "good.toml",
        r#"
[settings]
grace = "2s"

[[job]]
name = "web"
cmd = ["echo", "hi there"]
cwd = "sub"
timeout = "1500ms"
restart = "on-failure"
max_restarts = 4

[[job]]
name = "worker"
pipeline = [["head", "-c", "10", "/dev/zero"], "wc -c"]
replicas = 2
pipefail = true
"#,
    );
    let (code, stdout, stderr) = forkyard(&["check", "good.toml"], dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("good.toml: OK, 3 jobs"), "{stdout}");
    for want in [
        "[web]",
        "cmd: echo 'hi there'",
        "cwd: ./sub",
        "timeout: 1s 500ms",
        "[worker.1]",
        "[worker.2]",
        "pipeline: head -c 10 /dev/zero | wc -c",
        "pipefail",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    // `check` only validates: nothing was run, no summary printed.
    assert!(!stdout.contains("summary"), "{stdout}");
}

/// With no CONFIG, ./forkyard.toml is used (and its errors reported).
#[test]
fn default_config_file_is_read_from_the_current_directory() {
    let dir = tempdir();
    write_file(dir.path(), "forkyard.toml", UNKNOWN_KEY);
    let (code, _, stderr) = forkyard(&["check"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("forkyard.toml:7:1:"), "{stderr}");
}
