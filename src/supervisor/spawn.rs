//! Starting one run of a job: every stage in one process group, wired with OS pipes.
//!
//! Stage i's stdout is the write end of a pipe whose read end is stage i+1's stdin; the
//! parent drops its copies as soon as each stage has started, so data never passes
//! through forkyard and a reader that exits delivers SIGPIPE upstream, as in a shell.
//! forkyard keeps only the read ends of every stage's stderr and the last stage's stdout.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use tokio::sync::oneshot;

use crate::config::{JobSpec, StdinSpec};
use crate::output::Stream;

use super::reaper::{ExitInfo, Reaper};

/// A stage that started.
pub struct StartedStage {
    pub pid: u32,
    pub exit: oneshot::Receiver<ExitInfo>,
}

/// The result of starting every stage of a run.
pub struct SpawnedRun {
    /// The process group shared by all stages (the first started stage's pid).
    pub pgid: Option<u32>,
    /// Per stage: started, or why not.
    pub stages: Vec<Result<StartedStage, String>>,
    /// Pipe read ends forkyard must drain, tagged with stage and stream.
    pub outputs: Vec<(usize, Stream, OwnedFd)>,
    /// Text to feed to the first stage, and the pipe to feed it through.
    pub stdin_feed: Option<(PipeWriter, String)>,
}

/// Starts every stage. Never fails as a whole: each stage reports its own error, so a
/// bad command shows why in its row instead of stopping forkyard.
pub fn spawn_run(spec: &JobSpec, reaper: &Reaper) -> SpawnedRun {
    let stages = spec.stages();
    let count = stages.len();
    let mut run = SpawnedRun {
        pgid: None,
        stages: Vec::with_capacity(count),
        outputs: Vec::with_capacity(count + 1),
        stdin_feed: None,
    };

    // Problems that stop every stage alike are found before anything starts.
    if let Some(reason) = check_cwd(spec.cwd.as_deref()) {
        run.stages = (0..count).map(|_| Err(reason.clone())).collect();
        return run;
    }
    let mut next_stdin = match first_stdin(&spec.stdin, &mut run.stdin_feed) {
        Ok(stdin) => Some(stdin),
        Err(reason) => {
            run.stages = (0..count).map(|_| Err(reason.clone())).collect();
            return run;
        }
    };

    // Held across all stages: see `SpawnGuard`.
    let mut guard = reaper.lock_for_spawn();
    for (index, stage) in stages.iter().enumerate() {
        let argv = stage.argv();
        let is_last = index + 1 == count;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .envs(&spec.env)
            .env("FORKYARD_JOB", &spec.name)
            .stdin(next_stdin.take().unwrap_or_else(Stdio::null))
            .stderr(Stdio::piped())
            // All stages share the first started stage's group (0 = become its leader).
            .process_group(run.pgid.map_or(0, |pgid| pgid as i32));
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let mut link_reader: Option<PipeReader> = None;
        if is_last {
            command.stdout(Stdio::piped());
        } else {
            match std::io::pipe() {
                Ok((reader, writer)) => {
                    command.stdout(writer);
                    link_reader = Some(reader);
                }
                Err(err) => {
                    run.stages.push(Err(format!("cannot create pipe: {err}")));
                    continue;
                }
            }
        }

        match command.spawn() {
            Ok(mut child) => {
                let pid = child.id();
                if run.pgid.is_none() {
                    run.pgid = Some(pid);
                    guard.register_group(pid);
                }
                let exit = guard.register_pid(pid);
                if let Some(stderr) = child.stderr.take() {
                    run.outputs.push((index, Stream::Stderr, stderr.into()));
                }
                if let Some(stdout) = child.stdout.take() {
                    run.outputs.push((index, Stream::Stdout, stdout.into()));
                }
                // `child` is dropped without waiting: the reaper owns the pid now.
                run.stages.push(Ok(StartedStage { pid, exit }));
            }
            Err(err) => run.stages.push(Err(describe_spawn_error(&argv[0], &err))),
        }
        // Dropping `command` closes our copy of this stage's stdout write end.
        drop(command);
        next_stdin = link_reader.map(Stdio::from);
    }
    drop(guard);
    run
}

fn check_cwd(cwd: Option<&Path>) -> Option<String> {
    let cwd = cwd?;
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some(format!("bad cwd: {} is not a directory", cwd.display())),
        Err(err) => Some(format!(
            "bad cwd: {}: {}",
            cwd.display(),
            plain_io_error(&err)
        )),
    }
}

fn first_stdin(spec: &StdinSpec, feed: &mut Option<(PipeWriter, String)>) -> Result<Stdio, String> {
    match spec {
        StdinSpec::Null => Ok(Stdio::null()),
        StdinSpec::File(path) => std::fs::File::open(path)
            .map(Stdio::from)
            .map_err(|err| format!("stdin file {}: {}", path.display(), plain_io_error(&err))),
        StdinSpec::Text(text) => {
            let (reader, writer) =
                std::io::pipe().map_err(|err| format!("cannot create stdin pipe: {err}"))?;
            *feed = Some((writer, text.clone()));
            Ok(Stdio::from(reader))
        }
    }
}

fn describe_spawn_error(program: &str, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => format!("command not found: {program}"),
        std::io::ErrorKind::PermissionDenied => format!("permission denied: {program}"),
        _ => format!("{program}: {}", plain_io_error(err)),
    }
}

/// "No such file or directory" rather than "No such file or directory (os error 2)".
fn plain_io_error(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}
