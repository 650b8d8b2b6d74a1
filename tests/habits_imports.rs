//! Other tools' configs, end to end: a Procfile with its `.env`, an mprocs.yaml and a
//! process-compose.yaml in the shapes those projects document (tests/fixtures/habits/),
//! package.json scripts through the right package manager, `forkyard import` round
//! trips, YAML errors with line and column, and config lookup.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{forkyard_bin, tempdir, write_file};

fn forkyard(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    forkyard_env(args, cwd, &[])
}

fn forkyard_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = assert_cmd::Command::new(forkyard_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("PORT")
        .timeout(Duration::from_secs(60));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run forkyard");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A temp dir holding copies of the named fixtures from tests/fixtures/habits/.
fn with_fixtures(names: &[&str]) -> tempfile::TempDir {
    let dir = tempdir();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/habits");
    for name in names {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// stdout lines, whitespace squeezed (the prefix column's width varies).
fn squeezed(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn procfile_runs_with_its_env_file_and_ports() {
    let dir = with_fixtures(&["Procfile", ".env"]);
    let (code, stdout, stderr) = forkyard(&["--headless", "Procfile"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    // .env gives GREETING, and PORT=7000 as the base port: 7000, then 7100.
    assert!(
        lines.contains(&"web | web on port 7000 with hello-from-dotenv".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"worker | worker on port 7100".to_string()),
        "{stdout}"
    );
    // Found without naming it when there is no forkyard.toml, and said so.
    let (code, stdout, stderr) = forkyard(&["--headless"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("forkyard: using Procfile"), "{stderr}");
    assert!(stdout.contains("with hello-from-dotenv"), "{stdout}");
    // A Procfile is not TOML: no TOML syntax error.
    assert!(!stderr.contains("TOML"), "{stderr}");
}

#[test]
fn procfile_without_env_gets_foreman_ports() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "Procfile",
        "a: echo a=$PORT\nb: echo b=$PORT\nnot a process line\n",
    );
    let (code, stdout, stderr) = forkyard(&["--headless", "Procfile"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(lines.contains(&"a | a=5000".to_string()), "{stdout}");
    assert!(lines.contains(&"b | b=5100".to_string()), "{stdout}");
    // The line foreman would skip silently is said, with its place.
    assert!(
        stderr.contains("Procfile:3:1: skipped: not a `name: command` line"),
        "{stderr}"
    );
}

#[test]
fn mprocs_yaml_runs_and_lists_what_did_not_map() {
    let dir = with_fixtures(&["mprocs.yaml"]);
    let (code, stdout, stderr) = forkyard(&["--headless", "mprocs.yaml"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    // argv without a shell: `$HOME` is passed on literally, as mprocs does.
    assert!(
        lines.contains(&"hello | hello from $HOME-less argv".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"server | serving on 3000".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"short | short form".to_string()),
        "{stdout}"
    );
    assert!(lines.contains(&"keys | keys".to_string()), "{stdout}");
    // autostart: false is not started.
    assert!(!stdout.contains("watcher |"), "{stdout}");
    assert!(stdout.contains("not started"), "{stdout}");
    for want in [
        "mprocs.yaml:3:1: key `hide_keymap_window`: not mapped",
        "mprocs.yaml:4:1: key `proc_list_width`: not mapped",
        "mprocs.yaml:12:14: key `procs.server.env.DEBUG`: not mapped",
        "mprocs.yaml:23:7: key `procs.keys.stop`: not mapped",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in\n{stderr}");
    }
    let (code, stdout, _) = forkyard(&["check", "mprocs.yaml"], dir.path());
    assert_eq!(code, Some(0));
    assert!(stdout.contains("restart: always"), "autorestart: {stdout}");
    assert!(stdout.contains("stop: SIGINT"), "stop: {stdout}");
}

#[test]
fn process_compose_yaml_runs_and_lists_what_did_not_map() {
    let dir = with_fixtures(&["process-compose.yaml"]);
    let (code, stdout, stderr) = forkyard(&["--headless", "process-compose.yaml"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(
        lines.contains(&"setup | setup done".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"web | web shared 8080".to_string()),
        "{stdout}"
    );
    assert!(!stdout.contains("worker |"), "disabled: {stdout}");
    for want in [
        "process-compose.yaml:2:1: key `log_level`: not mapped",
        "process-compose.yaml:19:7: key `processes.web.availability.backoff_seconds`: not mapped",
        "process-compose.yaml:21:5: key `processes.web.depends_on`: not mapped yet",
        "setup (process_completed_successfully)",
        "process-compose.yaml:24:5: key `processes.web.readiness_probe`: not mapped yet",
        "process-compose.yaml:36:5: key `processes.worker.namespace`: not mapped",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in\n{stderr}");
    }
    let (_, stdout, _) = forkyard(&["check", "process-compose.yaml"], dir.path());
    assert!(
        stdout.contains("stop: SIGINT then SIGKILL after 5s; restart: on-failure (max 3)"),
        "{stdout}"
    );
}

/// `forkyard import FILE` prints TOML that `check` reads as the same jobs, and that runs.
#[test]
fn import_round_trips() {
    let dir = with_fixtures(&["Procfile", ".env", "mprocs.yaml", "process-compose.yaml"]);
    for source in ["Procfile", "mprocs.yaml", "process-compose.yaml"] {
        let (code, toml, stderr) = forkyard(&["import", source], dir.path());
        assert_eq!(code, Some(0), "{source}: {stderr}");
        assert!(
            toml.starts_with("# forkyard.toml made by `forkyard import`"),
            "{toml}"
        );
        let imported = format!("{source}.imported.toml");
        write_file(dir.path(), &imported, &toml);
        let (code, original, stderr) = forkyard(&["check", source], dir.path());
        assert_eq!(code, Some(0), "{source}: {stderr}");
        let (code, again, stderr) = forkyard(&["check", &imported], dir.path());
        assert_eq!(code, Some(0), "{imported}: {stderr}\n{toml}");
        // Everything but the first line (which names the file) and the containment
        // line (which names forkyard's pid) is the same.
        let body = |listing: &str| {
            listing
                .lines()
                .skip(1)
                .filter(|l| !l.starts_with("containment:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            body(&original),
            body(&again),
            "{source} vs its import:\n{toml}"
        );
        assert!(
            !stderr.contains("warning"),
            "the import itself warns of nothing: {stderr}"
        );
        let (code, run, stderr) = forkyard(&["--headless", &imported], dir.path());
        assert_eq!(code, Some(0), "{imported}: {run}\n{stderr}");
    }
    // What did not map is a comment in the import, with its line.
    let (_, toml, _) = forkyard(&["import", "process-compose.yaml"], dir.path());
    assert!(
        toml.contains("# line 21: key `processes.web.depends_on`: not mapped yet"),
        "{toml}"
    );
    // With no FILE, the file in the current directory.
    let only = with_fixtures(&["mprocs.yaml"]);
    let (code, toml, stderr) = forkyard(&["import"], only.path());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(toml.contains("name = \"server\""), "{toml}");
}

#[test]
fn yaml_errors_name_line_and_column() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "mprocs.yaml",
        "procs:\n  a:\n    shell: [unclosed\n",
    );
    let (code, _, stderr) = forkyard(&["check", "mprocs.yaml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("mprocs.yaml:4:1: YAML syntax error"),
        "{stderr}"
    );
    write_file(dir.path(), "mprocs.yaml", "procs:\n  a:\n    cmd: 5\n");
    let (code, _, stderr) = forkyard(&["check", "mprocs.yaml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("mprocs.yaml:3:10: key `procs.a.cmd`: expected a list"),
        "{stderr}"
    );
    write_file(
        dir.path(),
        "process-compose.yaml",
        "processes:\n  web:\n    command: echo\n    availability:\n      restart: sometimes\n",
    );
    let (code, _, stderr) = forkyard(&["check", "process-compose.yaml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("process-compose.yaml:5:16: key `processes.web.availability.restart`"),
        "{stderr}"
    );
    // A bad value the TOML parser finds is located in the YAML.
    write_file(
        dir.path(),
        "process-compose.yaml",
        "processes:\n  web:\n    command: echo\n    shutdown:\n      signal: 19\n",
    );
    let (code, _, stderr) = forkyard(&["check", "process-compose.yaml"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("process-compose.yaml:5:15: job \"web\": key `stop_signal`"),
        "{stderr}"
    );
}

/// A stand-in package manager on PATH that says which it is and what it was asked.
fn fake_manager(bin: &Path, name: &str) {
    let script = write_file(bin, name, &format!("#!/bin/sh\necho \"{name} $*\"\n"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn npm_scripts_run_through_the_projects_manager() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "package.json",
        r#"{"name": "x", "scripts": {"dev:web": "echo web-dev", "dev:api": "echo api-dev", "build": "echo building"}}"#,
    );
    // npm itself (no lockfile, no packageManager): the real one.
    let (code, stdout, stderr) = forkyard(&["--headless", "--npm", "dev:*"], dir.path());
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(lines.contains(&"web | web-dev".to_string()), "{stdout}");
    assert!(lines.contains(&"api | api-dev".to_string()), "{stdout}");
    assert!(!stdout.contains("building"), "{stdout}");

    // A yarn.lock next to package.json: yarn runs the scripts (a stand-in here), also
    // from a subfolder, and for `npm:` arguments too.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_manager(&bin, "yarn");
    fake_manager(&bin, "pnpm");
    write_file(dir.path(), "yarn.lock", "");
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (code, stdout, stderr) = forkyard_env(
        &["--headless", "npm:build", "pnpm:dev:web", "echo plain"],
        &sub,
        &[("PATH", &path)],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines = squeezed(&stdout);
    assert!(
        lines.contains(&"build | yarn run build".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"dev-web | pnpm run dev:web".to_string()),
        "{stdout}"
    );
    assert!(lines.contains(&"echo | plain".to_string()), "{stdout}");

    // A pattern that matches nothing lists the scripts.
    let (code, _, stderr) = forkyard(&["--headless", "--npm", "test*"], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "no script in package.json matches \"test*\" (scripts: dev:web, dev:api, build)"
        ),
        "{stderr}"
    );
}

#[test]
fn config_lookup_goes_up_to_the_repository_root() {
    let top = tempdir();
    let repo = top.path().join("repo");
    let deep: PathBuf = repo.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    write_file(
        &repo,
        "forkyard.toml",
        "[[job]]\nname = \"from-root\"\ncmd = [\"true\"]\n",
    );
    // Not a repository: the parent's config is not used (the demo is).
    let (code, stdout, stderr) = forkyard(&["check"], &deep);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("<built-in demo>: OK"), "{stdout}");
    std::fs::create_dir(repo.join(".git")).unwrap();
    let (code, stdout, stderr) = forkyard(&["check"], &deep);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("../../forkyard.toml: OK, 1 job"),
        "{stdout}"
    );
    assert!(stdout.contains("[from-root]"), "{stdout}");
    assert!(
        stderr.contains("forkyard: using ../../forkyard.toml"),
        "{stderr}"
    );
    // And it runs from there, with its paths relative to its own folder.
    let (code, stdout, stderr) = forkyard(&["--headless"], &deep);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("from-root"), "{stdout}");
}
