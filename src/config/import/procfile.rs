//! Procfile (foreman, honcho, overmind): `name: command` lines, run by a shell, with
//! the `.env` file next to the Procfile and a `PORT` for each process type.
//!
//! As foreman does, the first process gets `PORT` = the base port, the next base + 100,
//! and so on; the base is `PORT` from that `.env`, else from forkyard's environment, else
//! 5000. Blank lines and `#` comments are skipped; any other line that is not
//! `name: command` is a warning (foreman skips it without a word).

use std::path::Path;

use toml::Value;

use super::{Draft, DraftJob, Format, Pos, error_at};
use crate::config::ConfigError;

const DEFAULT_BASE_PORT: u64 = 5000;
const PORT_STEP: u64 = 100;

pub fn draft(text: &str, origin: &str, dir: Option<&Path>) -> Result<Draft, ConfigError> {
    let mut d = Draft::new(origin, Format::Procfile);
    let env_path = dir.map_or_else(|| Path::new(".env").to_path_buf(), |d| d.join(".env"));
    let mut base_port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u64>().ok());
    if env_path.is_file() {
        d.setting("env_file", ".env", Pos::new(1, 1));
        if let Ok(vars) = crate::config::parse::read_env_file(&env_path)
            && let Some((_, port)) = vars.iter().rev().find(|(k, _)| k == "PORT")
        {
            base_port = port.parse().ok().or(base_port);
        }
    }
    let base_port = base_port.unwrap_or(DEFAULT_BASE_PORT);

    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim_start();
        let indent = raw_line.len() - line.len();
        let at = Pos::new(line_no, raw_line[..indent].chars().count() + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = split(line) else {
            let shown = crate::stdio::visible_inline(line.trim_end()).into_owned();
            d.warn(
                None,
                at,
                format!("skipped: not a `name: command` line: {shown:?}"),
            );
            continue;
        };
        if d.jobs.iter().any(|j| j.name == name) {
            let first = d
                .jobs
                .iter()
                .find(|j| j.name == name)
                .map_or(0, |j| j.at.line);
            return Err(error_at(
                origin,
                at,
                None,
                format!("process type {name:?} is defined twice (first at line {first})"),
            ));
        }
        let name = d.job_name(name, at);
        let command_at = Pos::new(line_no, at.column + line.find(command).unwrap_or(0));
        let port = base_port + PORT_STEP * d.jobs.len() as u64;
        let mut job = DraftJob::new(name, at);
        job.set("shell", command.trim_end(), command_at);
        let mut env = toml::Table::new();
        env.insert("PORT".into(), Value::from(port.to_string()));
        job.set_noted(
            "env",
            env,
            at,
            Some("as foreman: base port + 100 per process type".into()),
        );
        d.jobs.push(job);
    }
    if d.jobs.is_empty() {
        return Err(error_at(
            origin,
            Pos::new(1, 1),
            None,
            "no processes: a Procfile has lines like `web: bundle exec rails server`",
        ));
    }
    Ok(d)
}

/// `name: command` as foreman reads it: a name of letters, digits, `_` and `-`, a colon,
/// then a command that is not empty.
fn split(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(':')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let command = rest.trim_start();
    (valid && !command.trim().is_empty()).then_some((name, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_processes_and_skips_the_rest() {
        let d = draft(
            "# comment\nweb: bundle exec rails s -p $PORT\n\nworker:   sidekiq -c 5\nnot a line\n",
            "Procfile",
            Some(Path::new("/nonexistent-forkyard-dir")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = d.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["web", "worker"]);
        assert_eq!(
            d.jobs[1].get("shell").and_then(Value::as_str),
            Some("sidekiq -c 5")
        );
        assert_eq!(d.jobs[1].entries[0].at, Pos::new(4, 11));
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].at, Pos::new(5, 1));
    }

    #[test]
    fn duplicates_and_empty_files_are_errors() {
        let e = draft("a: x\na: y\n", "Procfile", None).expect_err("dup");
        assert_eq!((e.line(), e.column()), (Some(2), Some(1)));
        let e = draft("# nothing\n", "Procfile", None).expect_err("empty");
        assert!(e.to_string().contains("no processes"), "{e}");
    }
}
