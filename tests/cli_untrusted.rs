//! Text forkyard did not write itself (job names, arguments, keys, paths, a program's
//! error) never reaches the terminal raw: `forkyard check`'s listing, headless notices
//! and the summary, and config errors show control characters as visible escapes
//! (`\x1b`), so a title-setting `ESC ] 0 ; … BEL` in a config cannot retitle the terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::Path;
use std::time::Duration;

use common::{forkyard_bin, tempdir, write_file};

/// An OSC "set title" sequence, written as TOML escapes.
const TITLE: &str = r"\u001b]0;pwned\u0007";

fn forkyard(args: &[&str], cwd: &Path) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let output = assert_cmd::Command::new(forkyard_bin())
        .args(args)
        .current_dir(cwd)
        .timeout(Duration::from_secs(30))
        .output()
        .expect("run forkyard");
    (output.status.code(), output.stdout, output.stderr)
}

/// No ESC, no BEL, no other C0 control but newline and tab, no DEL, no C1 control
/// (U+0080..U+009F, as a character: their raw bytes are also UTF-8 continuation bytes).
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad: Vec<(usize, char)> = text
        .char_indices()
        .filter(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: control characters {bad:?} in\n{text}"
    );
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&0x07),
        "{what}: {text}"
    );
}

#[test]
fn check_listing_shows_escapes_instead_of_sending_them() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "evil.toml",
        &format!(
            r#"
[[job]]
name = "evil"
cmd = ["echo", "{TITLE}", "two\nlines", "csi\u009b31m"]
env = {{ "{TITLE}" = "x" }}
cwd = "dir{TITLE}"
stdin = {{ file = "in{TITLE}" }}

[[job]]
name = "shelly"
shell = "echo {TITLE}"
"#
        ),
    );
    let (code, stdout, stderr) = forkyard(&["check", "evil.toml"], dir.path());
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&stderr));
    assert_inert("check", &stdout);
    let text = String::from_utf8(stdout).unwrap();
    assert!(text.contains(r"\x1b]0;pwned\x07"), "{text}");
    // A newline inside an argument stays on its line.
    assert!(text.contains(r"two\nlines"), "{text}");
    assert!(text.contains(r"csi\x9b31m"), "{text}");
    for line in ["  env: ", "  cwd: ", "  stdin: ", "  shell: echo "] {
        let shown = text
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| {
                panic!("no {line:?} in {text}");
            });
        assert!(shown.contains(r"\x1b]0;pwned\x07"), "{shown}");
    }
}

#[test]
fn headless_notices_and_summary_show_escapes() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "evil.toml",
        &format!(
            r#"
[[job]]
name = "missing"
cmd = ["no-such-program-{TITLE}"]

[[job]]
name = "badcwd"
cmd = ["true"]
cwd = "no-such-dir-{TITLE}"
"#
        ),
    );
    let (code, stdout, stderr) = forkyard(&["--headless", "evil.toml"], dir.path());
    assert_eq!(code, Some(1));
    assert_inert("headless stderr", &stderr);
    assert_inert("headless stdout", &stdout);
    let stderr = String::from_utf8(stderr).unwrap();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        stderr.contains(
            r"missing failed to start: command not found: no-such-program-\x1b]0;pwned\x07"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(r"no-such-dir-\x1b]0;pwned\x07"), "{stderr}");
    // The summary's RESULT column quotes the reason too.
    let summary = &stdout[stdout.find("forkyard summary").expect("summary")..];
    assert!(
        summary.contains(r"no-such-program-\x1b]0;pwned\x07"),
        "{summary}"
    );
}

#[test]
fn config_errors_show_escapes() {
    let dir = tempdir();
    let cases = [
        format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\nreplicas = \"{TITLE}\"\n"),
        format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\ntimeout = \"{TITLE}\"\n"),
        format!("[settings]\n\"{TITLE}\" = 1\n[[job]]\nname = \"a\"\ncmd = [\"true\"]\n"),
        format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\nstdin = {{ \"{TITLE}\" = 1 }}\n"),
        format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\nrestart = \"{TITLE}\"\n"),
        format!("[[job]]\nname = \"{TITLE}\"\ncmd = [\"true\"]\n"),
        format!("[[job]]\nname = \"a\"\ncmd = [\"true\"]\nenv = {{ \"{TITLE}\" = 1 }}\n"),
        // A raw ESC and BEL in a comment: a TOML syntax error that may quote them.
        "# \u{1b}]0;pwned\u{7}\n[[job]]\nname = \"a\"\ncmd = [\"true\"]\n".to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let name = format!("case{i}.toml");
        write_file(dir.path(), &name, text);
        for args in [
            vec!["check", name.as_str()],
            vec!["--headless", name.as_str()],
        ] {
            let (code, stdout, stderr) = forkyard(&args, dir.path());
            assert_eq!(
                code,
                Some(2),
                "{args:?}: {}",
                String::from_utf8_lossy(&stderr)
            );
            assert!(stdout.is_empty());
            assert_inert(&format!("case {i}"), &stderr);
            let stderr = String::from_utf8(stderr).unwrap();
            assert!(
                stderr.starts_with(&format!("forkyard: {name}:")),
                "{stderr}"
            );
        }
    }
    // A newline in a quoted value keeps the error on one line.
    write_file(
        dir.path(),
        "lines.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"true\"]\nreplicas = \"two\\nlines\"\n",
    );
    let (code, _, stderr) = forkyard(&["check", "lines.toml"], dir.path());
    assert_eq!(code, Some(2));
    let stderr = String::from_utf8(stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(r#"got "two\nlines""#), "{stderr}");

    // The file's own name is text from outside too.
    let evil_name = "evil\u{1b}]0;pwned\u{7}.toml";
    write_file(dir.path(), evil_name, "[[job]]\nname = 3\n");
    let (code, _, stderr) = forkyard(&["check", evil_name], dir.path());
    assert_eq!(code, Some(2));
    assert_inert("file name", &stderr);
    assert!(String::from_utf8_lossy(&stderr).contains(r"evil\x1b]0;pwned\x07.toml:2:8:"));
}
