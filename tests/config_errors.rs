//! Config fixtures: every `tests/fixtures/config/*.toml` either starts with `valid_` and
//! must load, or has a sibling `.expected` file listing (one per line; blank lines and
//! lines starting with `#` ignored) substrings that must all appear in the error's Display.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use forkyard::config::{
    self, CommandSpec, Config, ConfigError, JobRef, RestartPolicy, Stage, StdinSpec,
};
use nix::sys::signal::Signal;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn load_ok(name: &str) -> Config {
    match config::load(&fixture(name)) {
        Ok(c) => c,
        Err(e) => panic!("{name} should load, got: {e}"),
    }
}

fn load_err(name: &str) -> ConfigError {
    match config::load(&fixture(name)) {
        Ok(c) => panic!("{name} should fail, got: {c:#?}"),
        Err(e) => e,
    }
}

fn toml_fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    out
}

#[test]
fn error_fixtures_match_expected() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in toml_fixtures() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if stem.starts_with("valid_") {
            continue;
        }
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let err = match config::load(&path) {
            Ok(_) => {
                failures.push(format!("{stem}: loaded, expected an error"));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        assert!(
            err.line().is_some() && err.column().is_some(),
            "{stem}: no position: {shown}"
        );
        assert!(!shown.contains('\n'), "{stem}: multi-line error: {shown}");
        for want in expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if !shown.contains(want) {
                failures.push(format!("{stem}:\n  missing: {want}\n  got:     {shown}"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} error fixtures found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_error_names_the_file_path() {
    for path in toml_fixtures() {
        if let Err(e) = config::load(&path) {
            let prefix = format!("{}:{}:", path.display(), e.line().unwrap());
            assert!(e.to_string().starts_with(&prefix), "{e}");
            assert_eq!(e.file(), path.display().to_string());
        }
    }
}

#[test]
fn key_and_job_accessors() {
    let e = load_err("bad_duration.toml");
    assert_eq!(e.line(), Some(4));
    assert_eq!(e.key(), Some("timeout"));
    assert_eq!(e.job(), Some(&JobRef::Name("web".into())));

    let e = load_err("unknown_settings_key.toml");
    assert_eq!((e.line(), e.column()), (Some(3), Some(1)));
    assert_eq!(e.key(), Some("settings.grcae"));
    assert_eq!(e.job(), None);

    let e = load_err("unknown_job_key.toml");
    assert_eq!(e.line(), Some(8));
    assert_eq!(e.key(), Some("restrat"));

    let e = load_err("missing_name.toml");
    assert_eq!(e.job(), Some(&JobRef::Index(2)));
    assert_eq!(e.line(), Some(5));

    let e = load_err("syntax_error.toml");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_eq!(e.key(), None);
}

#[test]
fn missing_file_is_io_error() {
    let e = load_err("does_not_exist.toml");
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert_eq!(e.line(), None);
    assert!(e.to_string().contains("does_not_exist.toml"), "{e}");
}

#[test]
fn valid_replicas_expand() {
    let c = load_ok("valid_replicas.toml");
    let names: Vec<&str> = c.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["sleep.1", "sleep.2", "sleep.3", "single"]);
    for j in &c.jobs[..3] {
        assert_eq!(
            j.command,
            CommandSpec::Argv(vec!["sleep".into(), "1".into()])
        );
        assert_eq!(j.env, BTreeMap::from([("N".to_string(), "x".to_string())]));
    }
    assert_eq!(c.jobs[3].command, CommandSpec::Shell("echo one".into()));
    assert_eq!(
        c.origin,
        fixture("valid_replicas.toml").display().to_string()
    );
}

#[test]
fn valid_defaults_inherit_from_settings() {
    let c = load_ok("valid_defaults.toml");
    assert_eq!(c.settings.scrollback, 250);
    assert_eq!(c.settings.grace, Duration::from_secs(90));
    assert_eq!(c.settings.stop_signal, Signal::SIGINT);
    assert_eq!(c.settings.max_parallel, 2);

    let inherits = &c.jobs[0];
    assert_eq!(inherits.grace, Duration::from_secs(90));
    assert_eq!(inherits.stop_signal, Signal::SIGINT);
    assert_eq!(inherits.restart, RestartPolicy::No);
    assert_eq!(inherits.max_restarts, Some(config::DEFAULT_MAX_RESTARTS));
    assert!(inherits.autostart);
    assert_eq!(inherits.stdin, StdinSpec::Null);
    assert_eq!(inherits.timeout, None);
    assert_eq!(inherits.cwd, None);

    let overrides = &c.jobs[1];
    assert_eq!(overrides.grace, Duration::from_millis(500));
    assert_eq!(overrides.stop_signal, Signal::SIGHUP);
    assert_eq!(overrides.restart, RestartPolicy::Always);
    assert_eq!(overrides.max_restarts, Some(7));
    assert!(!overrides.autostart);
}

#[test]
fn valid_paths_resolve_against_config_folder() {
    let c = load_ok("valid_paths.toml");
    let dir = fixtures_dir();
    assert_eq!(c.jobs[0].cwd, Some(dir.join("work/dir")));
    assert_eq!(c.jobs[0].stdin, StdinSpec::File(dir.join("data/input.txt")));
    assert_eq!(c.jobs[1].cwd, Some(PathBuf::from("/tmp")));
    assert_eq!(c.jobs[1].stdin, StdinSpec::Text("inline text\n".into()));
    assert_eq!(
        c.jobs[2].command,
        CommandSpec::Pipeline(vec![
            Stage::Argv(vec![
                "head".into(),
                "-c".into(),
                "100".into(),
                "/dev/urandom".into()
            ]),
            Stage::Shell("sha256sum | cut -c1-8".into()),
        ])
    );
    assert!(c.jobs[2].pipefail);
    assert_eq!(c.jobs[2].timeout, Some(Duration::from_secs(2)));
}

#[test]
fn relative_config_path_resolves_against_dot() {
    let text = std::fs::read_to_string(fixture("valid_paths.toml")).unwrap();
    let c = config::parse(&text, "forkyard.toml", Path::new("forkyard.toml").parent()).unwrap();
    assert_eq!(c.jobs[0].cwd, Some(PathBuf::from("./work/dir")));
    let c = config::parse(&text, "x", None).unwrap();
    assert_eq!(c.jobs[0].cwd, Some(PathBuf::from("work/dir")));
}

#[test]
fn builtin_demo_parses() {
    let c = config::builtin_demo().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.origin, config::BUILTIN_DEMO_NAME);
    let names: Vec<&str> = c.jobs.iter().map(|j| j.name.as_str()).collect();
    assert!(names.contains(&"hello"));
    assert!(names.contains(&"sleep.1") && names.contains(&"sleep.10"));
    assert!(names.contains(&"cpu.4"));
    let encrypt = c.jobs.iter().find(|j| j.name == "encrypt").unwrap();
    assert_eq!(encrypt.stages().len(), 3);
    assert_eq!(
        encrypt.env.get("password").map(String::as_str),
        Some("correct horse battery staple")
    );
    let hung = c.jobs.iter().find(|j| j.name == "hung").unwrap();
    assert_eq!(hung.timeout, Some(Duration::from_millis(100)));
}

/// No input may panic: every prefix of every fixture, and single-byte corruptions.
#[test]
fn never_panics_on_mangled_input() {
    // The invalid_utf8_* fixtures are not text, and the deep_* ones are large (every
    // prefix would be quadratic): they have their own tests below.
    let mut texts: Vec<String> = toml_fixtures()
        .iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("deep_")
        })
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    texts.push(config::BUILTIN_DEMO.to_string());
    let junk = [
        "\"", "[", "]", "=", "\n", "-", "0", "{", "é", "'", ",", "#", "\0",
    ];
    for text in &texts {
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = config::parse(&text[..cut], "mangled.toml", None);
            let j = junk[cut % junk.len()];
            let mut mangled = String::with_capacity(text.len() + 4);
            mangled.push_str(&text[..cut]);
            mangled.push_str(j);
            let rest = &text[cut..];
            let skip = rest.chars().next().map_or(0, char::len_utf8);
            mangled.push_str(&rest[skip..]);
            let _ = config::parse(&mangled, "mangled.toml", None).map_err(|e| e.to_string());
        }
    }
}

/// Not UTF-8: refused at the line and column (in characters) of the first bad byte,
/// whatever the byte and wherever it is (the fixtures hold 15 such cases).
#[test]
fn invalid_utf8_is_located() {
    let mut seen = 0;
    for path in toml_fixtures() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !stem.starts_with("invalid_utf8_") {
            continue;
        }
        let e = config::load(&path).expect_err(&stem);
        assert!(matches!(e, ConfigError::Encoding { .. }), "{stem}: {e:?}");
        assert!(e.to_string().contains("not UTF-8"), "{stem}: {e}");
        seen += 1;
    }
    assert_eq!(seen, 15);
    let e = load_err("invalid_utf8_after_multibyte.toml");
    // `cmd = ["echo", "αβγ` is 19 characters (22 bytes): the bad byte is column 20.
    assert_eq!((e.line(), e.column()), (Some(3), Some(20)));
}

/// A dotted key too deep for toml is located at the key, not at 1:1.
#[test]
fn deep_dotted_keys_are_located() {
    let e = load_err("deep_dotted_key.toml");
    assert_eq!((e.line(), e.column()), (Some(6), Some(1)), "{e}");
    let e = load_err("deep_table_header.toml");
    assert_eq!((e.line(), e.column()), (Some(5), Some(4)), "{e}");
}

/// A config is read up to MAX_CONFIG_BYTES: a larger or endless file is refused
/// without reading it all.
#[test]
fn oversized_and_endless_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let mut text = String::from("[[job]]\nname = \"x\"\ncmd = [\"true\"]\n");
    while text.len() <= config::MAX_CONFIG_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let e = config::load(&big).expect_err("too large");
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("larger than 4.0 MiB"), "{e}");

    // Just under the cap loads.
    text.truncate(config::MAX_CONFIG_BYTES - 100);
    text.truncate(text.rfind('\n').unwrap() + 1);
    std::fs::write(&big, &text).unwrap();
    assert_eq!(config::load(&big).unwrap().jobs.len(), 1);

    let started = std::time::Instant::now();
    let e = config::load(Path::new("/dev/zero")).expect_err("endless");
    assert!(matches!(e, ConfigError::TooLarge { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The largest limits are accepted as written.
#[test]
fn valid_huge_limits() {
    let c = load_ok("valid_huge_limits.toml");
    assert_eq!(c.settings.max_parallel, 9_223_372_036_854_775_807);
    assert_eq!(c.settings.headless_timeout, Some(Duration::from_secs(8)));
}
