//! `env_file` (in settings and per job, dotenv syntax) and `${VAR}` expansion in `cmd`,
//! pipeline argv, `cwd` and `env` values, with located errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use common::{forkyard_bin, tempdir, write_file};

fn forkyard(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    let output = assert_cmd::Command::new(forkyard_bin())
        .args(args)
        .current_dir(cwd)
        .env("FROM_OUTSIDE", "outer")
        .env_remove("NOT_SET_ANYWHERE")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run forkyard");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn squeezed(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn env_files_layer_under_env() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "shared.env",
        "# dotenv syntax\nexport A=from-shared\nB='from shared'\nC=\"quoted # not a comment\"\n",
    );
    write_file(dir.path(), "job.env", "B=from-job\nD=${B}-again\n");
    write_file(
        dir.path(),
        "env.toml",
        r#"
[settings]
env_file = "shared.env"

[[job]]
name = "layers"
env_file = ["job.env"]
env = { C = "from-env" }
cmd = ["sh", "-c", "echo A=$A B=$B C=$C D=$D"]

[[job]]
name = "shared"
cmd = ["sh", "-c", "echo A=$A B=$B C=$C"]
"#,
    );
    let (code, stdout, stderr) = forkyard(&["--headless", "env.toml"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(
        lines
            .contains(&"layers | A=from-shared B=from-job C=from-env D=from-job-again".to_string()),
        "{stdout}"
    );
    assert!(
        lines
            .contains(&"shared | A=from-shared B=from shared C=quoted # not a comment".to_string()),
        "{stdout}"
    );
}

#[test]
fn variables_expand_in_cmd_cwd_and_env() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("work-outer")).unwrap();
    write_file(
        dir.path(),
        "x.toml",
        r#"
[[job]]
name = "argv"
env = { GREETING = "hi", DERIVED = "${FROM_OUTSIDE}-derived" }
cmd = ["echo", "${GREETING}", "${NOT_SET_ANYWHERE:-dflt}", "$${GREETING}", "$HOME-as-is", "$$", "${DERIVED}"]

[[job]]
name = "where"
cwd = "work-${FROM_OUTSIDE}"
cmd = ["pwd"]

[[job]]
name = "piped"
env = { WORD = "piped-word" }
pipeline = [["echo", "${WORD}"], "tr a-z A-Z"]
"#,
    );
    let (code, stdout, stderr) = forkyard(&["--headless", "x.toml"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(
        lines.contains(&"argv | hi dflt ${GREETING} $HOME-as-is $$ outer-derived".to_string()),
        "{stdout}"
    );
    let pwd = lines
        .iter()
        .find(|l| l.starts_with("where |"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(pwd.ends_with("/work-outer"), "{pwd}");
    assert!(
        lines.contains(&"piped[2] | PIPED-WORD".to_string()),
        "{stdout}"
    );
}

#[test]
fn expansion_and_env_file_errors_are_located() {
    let dir = tempdir();
    let cases = [
        (
            "[[job]]\nname = \"a\"\ncmd = [\"echo\", \"x ${NOT_SET_ANYWHERE}\"]\n",
            "x.toml:3:19: job \"a\": key `cmd[1]`: `${NOT_SET_ANYWHERE}`: variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "[[job]]\nname = \"a\"\ncmd = [\"true\"]\nenv = { P = \"${oops\" }\n",
            "x.toml:4:14: job \"a\": key `env.P`: unterminated `${`",
        ),
        (
            "[[job]]\nname = \"a\"\ncmd = [\"true\"]\ncwd = \"${1bad}\"\n",
            "x.toml:4:8: job \"a\": key `cwd`: `${1bad}`: expected `${NAME}`",
        ),
        (
            "[[job]]\nname = \"a\"\ncmd = [\"true\"]\nenv_file = \"missing.env\"\n",
            "x.toml:4:12: job \"a\": key `env_file`: cannot read ./missing.env",
        ),
        (
            "[settings]\nenv_file = \"bad.env\"\n[[job]]\nname = \"a\"\ncmd = [\"true\"]\n",
            "x.toml:2:12: key `settings.env_file`: ./bad.env:2: not a `KEY=value` line",
        ),
        (
            "[[job]]\nname = \"a\"\ncmd = [\"true\"]\nenv_file = 3\n",
            "key `env_file`: expected a path like \".env\"",
        ),
    ];
    write_file(dir.path(), "bad.env", "OK=1\nthis is not dotenv\n");
    for (toml, want) in cases {
        write_file(dir.path(), "x.toml", toml);
        let (code, stdout, stderr) = forkyard(&["check", "x.toml"], dir.path());
        assert_eq!(code, Some(2), "{toml}: {stdout}\n{stderr}");
        assert!(stderr.contains(want), "{toml}:\nwant {want}\ngot  {stderr}");
    }
}
