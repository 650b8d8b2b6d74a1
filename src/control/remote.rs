//! Jobs on other hosts: `host = "user@host"`.
//!
//! Such a job's command becomes `ssh -tt -o BatchMode=yes -- HOST 'forkyard remote-run
//! SPEC'` ([`wrap`], when the config is read), where SPEC is the job (command, env, cwd,
//! stop signal, grace) as JSON. On the host, `forkyard remote-run` ([`run`]) supervises
//! it like any job (its own process group and cgroup, its watchdog) and passes its
//! output through unchanged. `-tt` gives the remote side a terminal, so when the
//! connection goes (forkyard stopped the local ssh, or the network dropped) the remote
//! forkyard gets SIGHUP and stops the job: its stop signal, the grace, then SIGKILL, so
//! a tree that ignores SIGTERM is gone too. Output, the exit status and the elapsed
//! time are the local ssh's, which are the remote job's; CPU and RSS are not sampled (the
//! local process is only ssh).
//!
//! `FORKYARD_SSH` names the ssh command (words split at spaces, e.g. `ssh -F
//! ~/.ssh/ci_config`), default `ssh`, so the user's ssh config, keys and ControlMaster
//! apply. `FORKYARD_REMOTE_BIN` names forkyard on the remote side, default `forkyard`
//! (found on the remote `PATH`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::{CommandSpec, Config, JobSpec, Settings, Stage};
use crate::output::Stream;
use crate::supervisor::{
    Control, Event, JobState, Outcome, OutputTee, Supervisor, SupervisorOptions,
};

/// The ssh command, words separated by spaces (default `ssh`).
pub const SSH_ENV: &str = "FORKYARD_SSH";
/// forkyard on the remote side (default `forkyard`, found on the remote PATH).
pub const REMOTE_BIN_ENV: &str = "FORKYARD_REMOTE_BIN";

/// The ssh command and its own options, from [`SSH_ENV`].
pub fn ssh_command() -> Vec<String> {
    let words: Vec<String> = std::env::var(SSH_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        vec!["ssh".into()]
    } else {
        words
    }
}

/// forkyard's name on the remote side, from [`REMOTE_BIN_ENV`].
pub fn remote_bin() -> String {
    std::env::var(REMOTE_BIN_ENV)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "forkyard".into())
}

/// A destination ssh takes: `host`, `user@host`, `ssh://user@host:port`, a `Host` of
/// the ssh config. Never an option (`-oProxyCommand=...`) or anything with spaces.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("must not be empty (e.g. \"deploy@build-1\")".into());
    }
    if host.starts_with('-') {
        return Err("must not start with `-` (it would be an ssh option)".into());
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// A job as the remote forkyard runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSpec {
    pub name: String,
    pub command: RemoteCommand,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub stop_signal: String,
    pub grace_ms: u64,
    pub pipefail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteCommand {
    Argv(Vec<String>),
    Shell(String),
    Pipeline(Vec<RemoteStage>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteStage {
    Argv(Vec<String>),
    Shell(String),
}

fn stage_out(stage: &Stage) -> RemoteStage {
    match stage {
        Stage::Argv(argv) => RemoteStage::Argv(argv.clone()),
        Stage::Shell(script) => RemoteStage::Shell(script.clone()),
    }
}

fn stage_in(stage: &RemoteStage) -> Stage {
    match stage {
        RemoteStage::Argv(argv) => Stage::Argv(argv.clone()),
        RemoteStage::Shell(script) => Stage::Shell(script.clone()),
    }
}

/// `'text'` for a POSIX shell (the remote login shell reads the command ssh sends).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Turns a job with `host` into the local ssh command that runs it there; its env and
/// cwd travel inside the command and are applied on the host.
pub fn wrap(spec: &mut JobSpec, host: &str) {
    let remote = RemoteSpec {
        name: spec.name.clone(),
        command: match &spec.command {
            CommandSpec::Argv(argv) => RemoteCommand::Argv(argv.clone()),
            CommandSpec::Shell(script) => RemoteCommand::Shell(script.clone()),
            CommandSpec::Pipeline(stages) => {
                RemoteCommand::Pipeline(stages.iter().map(stage_out).collect())
            }
        },
        env: std::mem::take(&mut spec.env),
        cwd: spec
            .cwd
            .take()
            .map(|cwd| cwd.to_string_lossy().into_owned()),
        stop_signal: spec.stop_signal.as_str().to_string(),
        grace_ms: u64::try_from(spec.grace.as_millis()).unwrap_or(u64::MAX),
        pipefail: spec.pipefail,
    };
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_string(&remote).unwrap_or_default();
    let mut argv = ssh_command();
    argv.extend([
        "-tt".to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "--".into(),
        host.to_string(),
        format!(
            "{} remote-run {}",
            shell_quote(&remote_bin()),
            shell_quote(&json)
        ),
    ]);
    spec.command = CommandSpec::Argv(argv);
    spec.host = Some(host.to_string());
}

/// The job of a `remote-run` SPEC.
fn job_of(remote: &RemoteSpec) -> anyhow::Result<JobSpec> {
    let command = match &remote.command {
        RemoteCommand::Argv(argv) if !argv.is_empty() => CommandSpec::Argv(argv.clone()),
        RemoteCommand::Shell(script) => CommandSpec::Shell(script.clone()),
        RemoteCommand::Pipeline(stages) if stages.len() >= 2 => {
            CommandSpec::Pipeline(stages.iter().map(stage_in).collect())
        }
        _ => anyhow::bail!("the job has no command"),
    };
    let mut job = JobSpec::new(remote.name.clone(), command);
    job.env = remote.env.clone();
    job.cwd = remote.cwd.as_ref().map(PathBuf::from);
    job.stop_signal = crate::supervisor::signals::parse_signal(&remote.stop_signal)
        .with_context(|| format!("unknown stop signal {:?}", remote.stop_signal))?;
    job.grace = Duration::from_millis(remote.grace_ms);
    job.pipefail = remote.pipefail;
    Ok(job)
}

/// `forkyard remote-run SPEC`: runs one job here, its output passed through unchanged,
/// until it ends (exit status: the job's, 128 + N when a signal ended it) or the
/// connection goes (SIGHUP, or output that cannot be written: the job is stopped).
pub fn run(spec: &str) -> i32 {
    let remote: RemoteSpec = match serde_json::from_str(spec) {
        Ok(remote) => remote,
        Err(err) => {
            crate::say!("remote-run: not a job description: {err}");
            return 2;
        }
    };
    let job = match job_of(&remote) {
        Ok(job) => job,
        Err(err) => {
            crate::say!("remote-run: {err:#}");
            return 2;
        }
    };
    let config = Config {
        origin: "<remote-run>".into(),
        settings: Settings {
            scrollback: 1,
            ..Settings::default()
        },
        jobs: vec![job],
        keys: Default::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::say!("remote-run: {err}");
            return 1;
        }
    };
    let code = runtime.block_on(supervise(config)).unwrap_or_else(|err| {
        crate::say!("remote-run: {err:#}");
        1
    });
    runtime.shutdown_background();
    code
}

async fn supervise(config: Config) -> anyhow::Result<i32> {
    let mut signals = crate::run::Signals::listen().context("cannot listen for signals")?;
    let (tee, mut chunks) = OutputTee::new(32);
    let (supervisor, mut events) = Supervisor::start(
        &config,
        SupervisorOptions {
            tee: Some(tee),
            discard_output: true,
            ..SupervisorOptions::default()
        },
    )?;
    let controller = supervisor.controller();
    let mut tracker = crate::run::tracker_for(&supervisor);
    let (failed_tx, mut failed_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut failed = Some(failed_tx);
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        while let Some(chunk) = chunks.blocking_recv() {
            let written = match chunk.stream {
                Stream::Stdout => out.write_all(&chunk.data).and_then(|()| out.flush()),
                Stream::Stderr => err.write_all(&chunk.data).and_then(|()| err.flush()),
            };
            if written.is_err()
                && let Some(tx) = failed.take()
            {
                // The terminal is gone: stop the job (the drains then read on to the end).
                let _ = tx.send(());
            }
        }
    });
    let mut ended_by = None;
    while !tracker.all_settled() {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => { tracker.apply(&event); report(&event); }
                None => break,
            },
            signal = signals.recv() => {
                ended_by = Some(signal);
                break;
            }
            _ = &mut failed_rx => break,
        }
    }
    let shutdown = supervisor.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events.recv() => { tracker.apply(&event); report(&event); }
            _ = signals.recv() => controller.control_all(Control::Kill),
        }
    }
    while let Ok(event) = events.try_recv() {
        tracker.apply(&event);
    }
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    let code = match tracker.jobs.first().map(|j| &j.status.state) {
        Some(JobState::Finished(outcome)) => match outcome {
            Outcome::TimedOut { code, signal } | Outcome::Stopped { code, signal } => {
                code.unwrap_or_else(|| 128 + signal.map_or(0, |s| s as i32))
            }
            Outcome::FailedToStart { reason } => {
                crate::say!(
                    "remote-run: {}: failed to start: {reason}",
                    config.jobs[0].name
                );
                127
            }
            other => other.exit_status(),
        },
        _ => ended_by.map_or(1, |s| 128 + s as i32),
    };
    Ok(code)
}

/// Only failures are worth a line on the remote side's stderr (it reaches the local job's
/// output through the terminal).
fn report(event: &Event) {
    if let Event::Notice(notice) = event
        && notice.level == crate::supervisor::Level::Error
    {
        crate::say!("{}", crate::stdio::visible_inline(&notice.text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_job_becomes_an_ssh_command_and_back() {
        let mut spec = JobSpec::new(
            "web",
            CommandSpec::Pipeline(vec![
                Stage::Argv(vec!["echo".into(), "it's".into()]),
                Stage::Shell("tr a-z A-Z; echo $HOME".into()),
            ]),
        );
        spec.env.insert("A".into(), "x y".into());
        spec.cwd = Some(PathBuf::from("srv/app"));
        spec.grace = Duration::from_millis(1500);
        wrap(&mut spec, "deploy@build-1");
        assert_eq!(spec.host.as_deref(), Some("deploy@build-1"));
        assert!(spec.env.is_empty() && spec.cwd.is_none());
        let CommandSpec::Argv(argv) = &spec.command else {
            panic!("argv");
        };
        let at = argv
            .iter()
            .position(|a| a == "deploy@build-1")
            .expect("host");
        assert_eq!(&argv[at - 4..at], ["-tt", "-o", "BatchMode=yes", "--"]);
        // What the remote shell would see: one quoted JSON argument after remote-run.
        let command = &argv[at + 1];
        let json = command
            .split_once(" remote-run ")
            .map(|(_, q)| q)
            .expect("remote-run");
        let unquoted = json[1..json.len() - 1].replace(r"'\''", "'");
        let remote: RemoteSpec = serde_json::from_str(&unquoted).expect("spec");
        let job = job_of(&remote).expect("job");
        assert_eq!(job.env.get("A").map(String::as_str), Some("x y"));
        assert_eq!(job.cwd, Some(PathBuf::from("srv/app")));
        assert_eq!(job.grace, Duration::from_millis(1500));
        assert_eq!(job.stages().len(), 2);
        assert!(check_host("-oProxyCommand=x").is_err());
        assert!(check_host("a b").is_err());
        assert!(check_host("ssh://root@127.0.0.1:2222").is_ok());
    }
}
