//! Starting one run of a job: every stage in one process group, wired with OS pipes.
//!
//! Stage i's stdout is the write end of a pipe whose read end is stage i+1's stdin; the
//! parent drops its copies as soon as each stage has started, so data never passes
//! through forkyard and a reader that exits delivers SIGPIPE upstream, as in a shell.
//! forkyard keeps only the read ends of every stage's stderr and the last stage's stdout.
//!
//! A PTY job (`pty = true`, see [`super::pty`]) has a pseudo-terminal instead: the
//! slave is its stdin (unless `stdin` says otherwise), stdout and stderr — for a
//! pipeline the first stage's stdin, the last stage's stdout and every stage's stderr —
//! and forkyard keeps only the master.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{PipeReader, PipeWriter};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use tokio::sync::oneshot;

use crate::config::{JobSpec, StdinSpec};
use crate::output::Stream;

use super::pty::{self, JobIo};
use super::reaper::{ExitInfo, Reaper, SpawnGuard, SpawnInFlight};

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
/// `cgroup_procs`: the run's `cgroup.procs`, open for writing: each stage joins it
/// between `fork` and `exec`, before it can start anything of its own. `io`: the job's
/// input endpoint (a PTY job, `stdin = "pipe"`), which gets this run's PTY or pipe.
pub fn spawn_run(
    spec: &JobSpec,
    reaper: &Reaper,
    cgroup_procs: Option<RawFd>,
    io: Option<&JobIo>,
) -> SpawnedRun {
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
    let terminal = match spec
        .pty
        .then(|| pty::open(io.map_or(pty::DEFAULT_SIZE, JobIo::size)))
    {
        None => None,
        Some(Ok(pair)) => Some(pair),
        Some(Err(err)) => {
            let reason = format!("cannot open a pseudo-terminal: {}", plain_io_error(&err));
            run.stages = (0..count).map(|_| Err(reason.clone())).collect();
            return run;
        }
    };
    let slave = terminal.as_ref().map(|(_, slave)| slave);
    // A copy of the slave for one of a stage's standard streams.
    let on_terminal = || -> Option<Stdio> { slave?.try_clone().ok().map(Stdio::from) };
    let mut stdin_pipe: Option<OwnedFd> = None;
    let mut next_stdin = match (&spec.stdin, slave) {
        (StdinSpec::Null, Some(_)) => on_terminal(),
        (StdinSpec::Pipe, _) => match std::io::pipe() {
            Ok((reader, writer)) => {
                stdin_pipe = Some(writer.into());
                Some(Stdio::from(reader))
            }
            Err(err) => {
                let reason = format!("cannot create stdin pipe: {err}");
                run.stages = (0..count).map(|_| Err(reason.clone())).collect();
                return run;
            }
        },
        (stdin, _) => match first_stdin(stdin, &mut run.stdin_feed) {
            Ok(stdin) => Some(stdin),
            Err(reason) => {
                run.stages = (0..count).map(|_| Err(reason.clone())).collect();
                return run;
            }
        },
    };

    // A pipeline holds the reaper's lock across its stages (see `SpawnGuard`); a single
    // process spawns alongside other jobs' spawns (see `SpawnInFlight`).
    let mut registration = if count == 1 {
        Registration::Single(reaper.begin_spawn())
    } else {
        Registration::Pipeline(reaper.lock_for_spawn())
    };
    for (index, stage) in stages.iter().enumerate() {
        let argv = stage.argv();
        let is_last = index + 1 == count;
        let program = program_path(&argv[0], spec.env.get("PATH"));
        if is_missing(&argv[0], &program, spec.env.get("PATH")) {
            // Said without spawning: a failed `exec` makes `Command::spawn` wait for the
            // child itself, and a reaper that owns every child may have taken it first
            // (std then panics). Its successor reads end-of-file, as from a dead stage.
            run.stages
                .push(Err(format!("command not found: {}", argv[0])));
            next_stdin = None;
            continue;
        }
        let mut command = Command::new(program);
        command
            .arg0(&argv[0])
            .args(&argv[1..])
            .envs(&spec.env)
            .env("FORKYARD_JOB", &spec.name)
            .stdin(next_stdin.take().unwrap_or_else(Stdio::null))
            .stderr(on_terminal().unwrap_or_else(Stdio::piped));
        if slave.is_some() && !spec.env.contains_key("TERM") {
            // What the emulator understands (the job's own `env` may say otherwise).
            command.env("TERM", "xterm-256color");
        }
        if slave.is_some() && count == 1 {
            // Its own session, the PTY its controlling terminal; the session's group
            // (led by the job, as `process_group(0)` would make it) is the job's group.
            // SAFETY: the hook only makes async-signal-safe calls (setsid, ioctl).
            unsafe {
                command.pre_exec(pty::become_session_leader);
            }
        } else {
            // All stages share the first started stage's group (0 = become its leader).
            command.process_group(run.pgid.map_or(0, |pgid| pgid as i32));
        }
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        if let Some(fd) = cgroup_procs {
            // Joined in the child, before `exec`: moved from here after `spawn()`
            // returns, a shell under load had often forked its `setsid` daemon already,
            // outside the cgroup. The price is that `Command` forks instead of taking
            // its `vfork` path (about 0.3 ms a spawn: see bench row 5).
            // SAFETY: the hook only makes async-signal-safe calls (getpid, write).
            unsafe {
                command.pre_exec(move || super::contain::join_from_child(fd));
            }
        }
        let mut link_reader: Option<PipeReader> = None;
        if is_last {
            command.stdout(on_terminal().unwrap_or_else(Stdio::piped));
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
                let exit = match &mut registration {
                    Registration::Pipeline(guard) => {
                        if run.pgid.is_none() {
                            guard.register_group(pid);
                        }
                        guard.register_pid(pid)
                    }
                    Registration::Single(in_flight) => in_flight.register(pid),
                };
                if run.pgid.is_none() {
                    run.pgid = Some(pid);
                }
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
    drop(registration);
    if let (Some(pgid), Some(io)) = (run.pgid, io) {
        if let Some(writer) = stdin_pipe {
            io.attach_pipe(writer, pgid);
        }
        if let Some((master, _)) = &terminal
            && let Ok(copy) = master.try_clone()
        {
            io.attach_pty(copy, pgid, count == 1);
        }
    }
    // Our copies of the slave close here (each stage has its own), so the master reads
    // EIO once the last process holding it has gone.
    if let (Some((master, _)), Some(_)) = (terminal, run.pgid) {
        run.outputs.push((count - 1, Stream::Stdout, master));
    }
    run
}

/// How the pids of one run are registered with the reaper.
enum Registration<'a> {
    Pipeline(SpawnGuard<'a>),
    Single(SpawnInFlight<'a>),
}

/// Where `program` (an `argv[0]` without a `/`) lives on `PATH` (the job's own, else
/// forkyard's), remembered per program and `PATH`. A shell remembers it the same way;
/// without it every spawn tries `execve` in each `PATH` directory in turn, which for a
/// thousand jobs is thousands of failed path walks inside the spawn. A remembered path
/// that has gone away is looked up again. Anything unusual (a `/` in the name, a
/// relative `PATH` entry, which depends on the job's `cwd`, or no match) is left to
/// `Command`, so errors read as before.
pub(super) fn program_path(program: &str, job_path: Option<&String>) -> PathBuf {
    type Cache = Mutex<HashMap<(String, OsString), PathBuf>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    if program.contains('/') || program.is_empty() {
        return PathBuf::from(program);
    }
    let Some(path_var) = job_path
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
    else {
        return PathBuf::from(program);
    };
    let cache = CACHE.get_or_init(Cache::default);
    let key = (program.to_string(), path_var);
    let remembered = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
        .cloned();
    if let Some(found) = remembered
        && is_executable(&found)
    {
        return found;
    }
    let mut found = None;
    for dir in std::env::split_paths(&key.1) {
        if !dir.is_absolute() {
            break;
        }
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            found = Some(candidate);
            break;
        }
    }
    let Some(found) = found else {
        return PathBuf::from(program);
    };
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, found.clone());
    found
}

/// A program named without a `/` that `program_path` did not find on a `PATH` of only
/// absolute folders (a relative entry is left to `Command`): it is not there.
pub(super) fn is_missing(program: &str, found: &Path, job_path: Option<&String>) -> bool {
    if program.contains('/') || program.is_empty() || found.is_absolute() {
        return false;
    }
    let path_var = job_path
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    path_var.is_some_and(|var| std::env::split_paths(&var).all(|dir| dir.is_absolute()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
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
        // Without a terminal (a pty job's default stdin is its terminal: see `pty`).
        StdinSpec::Null => Ok(Stdio::null()),
        StdinSpec::Pipe => Err("stdin = \"pipe\" needs the job's input endpoint".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_path_is_remembered_and_looked_up_again_when_gone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("fy-lookup-test");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!("/nonexistent-fy:{}", dir.path().display());
        assert_eq!(program_path("fy-lookup-test", Some(&path)), exe);
        // Remembered, but checked: once the file is gone the bare name goes to `Command`
        // (which reports "not found" as usual).
        std::fs::remove_file(&exe).expect("remove");
        assert_eq!(
            program_path("fy-lookup-test", Some(&path)),
            PathBuf::from("fy-lookup-test")
        );
        // Names with a slash, and relative PATH entries (they depend on the job's cwd),
        // are left alone.
        assert_eq!(program_path("./x", Some(&path)), PathBuf::from("./x"));
        let relative = "bin:/usr/bin".to_string();
        assert_eq!(program_path("sh", Some(&relative)), PathBuf::from("sh"));
        // Not executable: not a match.
        let plain = dir.path().join("fy-plain");
        std::fs::write(&plain, "x").expect("write");
        assert_eq!(
            program_path("fy-plain", Some(&path)),
            PathBuf::from("fy-plain")
        );
    }
}
