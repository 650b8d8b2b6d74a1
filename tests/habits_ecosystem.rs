//! Ecosystem conventions: shell completions (bash checked with `bash -n`), the man page
//! (read back with `man -l`), the JSON Schema (validated against every config fixture
//! and example, and against the parser's own list of keys), and `--version`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{forkyard_bin, tempdir, write_file};

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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn completions_for_every_shell() {
    let dir = tempdir();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, stderr) = forkyard(&["completions", shell], dir.path());
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert!(script.len() > 500, "{shell}: {script}");
        // Every subcommand is completed.
        for sub in ["run", "check", "import", "completions", "man", "schema"] {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
    let (_, script, _) = forkyard(&["completions", "bash"], dir.path());
    let path = write_file(dir.path(), "forkyard.bash", &script);
    let status = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        status.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Loading it defines the completion function.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p forkyard", path.display()))
        .output()
        .expect("run bash");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("_forkyard"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, stderr) = forkyard(&["completions", "tcsh"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("possible values"), "{stderr}");
}

#[test]
fn man_page_reads_with_man() {
    let dir = tempdir();
    let (code, page, stderr) = forkyard(&["man"], dir.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH forkyard"),
        "{page}"
    );
    let path = write_file(dir.path(), "forkyard.1", &page);
    let out = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("run man (install man-db)");
    assert!(
        out.status.success(),
        "man -l: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "NAME",
        "SYNOPSIS",
        "forkyard",
        "--max-parallel",
        "completions",
        "What runs:",
    ] {
        assert!(
            text.contains(want),
            "no {want:?} in the rendered page:\n{text}"
        );
    }
}

#[test]
fn version_names_the_commit_in_a_checkout() {
    let dir = tempdir();
    let (code, version, _) = forkyard(&["--version"], dir.path());
    assert_eq!(code, Some(0));
    assert!(
        version.starts_with(&format!("forkyard {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(root())
        .output();
    match head {
        Ok(out) if out.status.success() && root().join(".git").exists() => {
            let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                version.contains(&format!("(git {commit})")),
                "{version} vs {commit}"
            );
        }
        // A tarball without .git: the package version alone.
        _ => assert!(!version.contains("git"), "{version}"),
    }
}

fn schema() -> serde_json::Value {
    let (code, text, stderr) = forkyard(&["schema"], &root());
    assert_eq!(code, Some(0), "{stderr}");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn as_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    Some(serde_json::to_value(value).unwrap())
}

/// Every `.toml` forkyard ships or tests with, and whether the parser accepts it.
fn configs() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures/config", "assets"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let ok = forkyard::config::load(&path).is_ok();
                out.push((path, ok));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn schema_agrees_with_the_parser() {
    let schema = schema();
    assert_eq!(schema["title"], "forkyard.toml");
    let described = schema["definitions"]["JobTable"]["properties"]["timeout"]["description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        described.contains("timed out"),
        "descriptions come from the types: {described}"
    );
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");

    let mut accepted = 0;
    let mut unknown = 0;
    for (path, parses) in configs() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(json) = as_json(&path) else { continue };
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        if parses {
            assert!(
                errors.is_empty(),
                "{name} loads but does not validate: {errors:?}"
            );
            accepted += 1;
        }
        if name.starts_with("unknown_") {
            assert!(
                !errors.is_empty(),
                "{name} has an unknown key but validates"
            );
            assert!(!parses);
            unknown += 1;
        }
    }
    assert!(accepted >= 8, "only {accepted} accepted configs checked");
    assert_eq!(unknown, 3);

    // The keys: the schema's must be exactly the ones the parser lists as valid.
    let dir = tempdir();
    let parser_keys = |toml: &str| {
        write_file(dir.path(), "k.toml", toml);
        let (code, _, stderr) = forkyard(&["check", "k.toml"], dir.path());
        assert_eq!(code, Some(2), "{stderr}");
        let list = stderr
            .split("valid keys here: ")
            .nth(1)
            .unwrap_or_else(|| panic!("{stderr}"));
        let mut keys: Vec<String> = list
            .trim()
            .split(", ")
            .map(|k| k.trim_matches('`').to_string())
            .collect();
        keys.sort();
        keys
    };
    let keys = |table: &str| {
        let mut keys: Vec<String> = schema["definitions"][table]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        parser_keys("[settings]\nzzz = 1\n"),
        keys("SettingsTable"),
        "[settings]: add the key to src/config/schema.rs"
    );
    assert_eq!(
        parser_keys("[[job]]\nname = \"a\"\ncmd = [\"true\"]\nzzz = 1\n"),
        keys("JobTable"),
        "[[job]]: add the key to src/config/schema.rs"
    );

    // A job without a command, or with two, does not validate either.
    let job = |extra: &str| -> serde_json::Value {
        let value: toml::Value =
            toml::from_str(&format!("[[job]]\nname = \"a\"\n{extra}")).unwrap();
        serde_json::to_value(value).unwrap()
    };
    assert!(!validator.is_valid(&job("")));
    assert!(!validator.is_valid(&job("cmd = [\"x\"]\nshell = \"x\"\n")));
    assert!(validator.is_valid(&job("shell = \"x\"\nenv_file = [\".env\"]\n")));
}
