//! `forkyard up` and `forkyard down`.
//!
//! `up` starts the session as a new forkyard process (`up --foreground`, in a session of
//! its own: no terminal, stdin and stdout on /dev/null) and returns once its socket
//! answers. Until then the new process's stderr comes back to `up`'s, so a config error
//! reads as it would for a run, with exit status 2; from then on the session writes its
//! messages to a log next to its socket (`NAME.log`). The session is a headless run that
//! keeps every job's scrollback (`ctl logs`, `attach`) and stays up when its jobs have
//! ended, until `down` (or an ending signal) stops it like a quit: every job is stopped
//! (stop signal, grace, SIGKILL) and reaped.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;
use serde_json::json;

use super::client::{self, EXIT_FAILED, Target};
use crate::stdio::visible_inline;

/// Names the descriptor a background session reports its readiness on.
pub const READY_FD_ENV: &str = "FORKYARD_READY_FD";

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The config (default: as `forkyard` finds one).
    pub config: Option<PathBuf>,
    /// The session's name (default: from the config).
    #[arg(long = "name", id = "up_name", value_name = "NAME")]
    pub name: Option<String>,
    /// Serve the control socket here instead of the default place.
    #[arg(long = "socket", id = "up_socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// At most N jobs running at once (0 = no limit); overrides settings.max_parallel.
    #[arg(
        short = 'j',
        long = "max-parallel",
        id = "up_max_parallel",
        value_name = "N"
    )]
    pub max_parallel: Option<usize>,
    /// Run the session in this process instead of in the background (for a service
    /// manager); it ends with `forkyard down` or an ending signal.
    #[arg(long)]
    pub foreground: bool,
}

/// `forkyard up` without `--foreground`: starts the session and waits until it is ready.
pub fn up_background(args: &UpArgs, config_file: Option<&Path>) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            crate::say!("cannot find forkyard's own executable: {err}");
            return EXIT_FAILED;
        }
    };
    let (ready_read, ready_write) = match pipe() {
        Ok(fds) => fds,
        Err(err) => {
            crate::say!("cannot start the session: {err}");
            return EXIT_FAILED;
        }
    };
    let (err_read, err_write) = match pipe() {
        Ok(fds) => fds,
        Err(err) => {
            crate::say!("cannot start the session: {err}");
            return EXIT_FAILED;
        }
    };
    let mut command = Command::new(exe);
    command.arg("up").arg("--foreground");
    if let Some(name) = &args.name {
        command.arg("--name").arg(name);
    }
    if let Some(socket) = &args.socket {
        command.arg("--socket").arg(socket);
    }
    if let Some(n) = args.max_parallel {
        command.arg("-j").arg(n.to_string());
    }
    if let Some(config) = config_file {
        command.arg(config);
    }
    let ready_fd = ready_write.as_raw_fd();
    command
        .env(READY_FD_ENV, ready_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err_write));
    // SAFETY: only async-signal-safe calls (setsid, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The readiness pipe survives exec (it is O_CLOEXEC in forkyard).
            if libc::fcntl(ready_fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            crate::say!("cannot start the session: {err}");
            return EXIT_FAILED;
        }
    };
    // Only the child writes to these now.
    drop(command);
    drop(ready_write);
    let (said, ready) = relay_until_ready(&err_read, &ready_read);
    let _ = std::io::stderr().write_all(&said);
    match ready {
        Some(line) => {
            let mut words = line.split_whitespace().skip(1);
            let name = words.next().unwrap_or("?").to_string();
            let socket = words.next().unwrap_or("?").to_string();
            let text = format!(
                "started session `{name}` (pid {}, socket {socket}); `forkyard attach {name}` \
                 shows it, `forkyard down {name}` stops it\n",
                child.id()
            );
            match crate::stdio::print(&crate::stdio::visible(&text)) {
                Ok(()) => 0,
                Err(err) => crate::stdio::exit_status(&err, "the message"),
            }
        }
        None => match child.wait() {
            Ok(status) => status.code().unwrap_or(EXIT_FAILED),
            Err(_) => EXIT_FAILED,
        },
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Collects the session's stderr until it says it is ready (its ready line) or the ready
/// pipe closes without (it failed: then its stderr is read to the end).
fn relay_until_ready(err: &OwnedFd, ready: &OwnedFd) -> (Vec<u8>, Option<String>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut said = Vec::new();
    let mut ready_text = Vec::new();
    let mut err_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        if err_open {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready_event = fds[0].revents().unwrap_or(PollFlags::empty());
        let err_event = fds
            .get(1)
            .and_then(PollFd::revents)
            .unwrap_or(PollFlags::empty());
        if !err_event.is_empty() {
            match read_fd(err, &mut buf) {
                0 => err_open = false,
                n => said.extend_from_slice(&buf[..n]),
            }
        }
        if !ready_event.is_empty() {
            match read_fd(ready, &mut buf) {
                0 => {
                    // Failed before it was ready: what it said is all on its stderr.
                    while err_open {
                        match read_fd(err, &mut buf) {
                            0 => err_open = false,
                            n => said.extend_from_slice(&buf[..n]),
                        }
                    }
                    return (said, None);
                }
                n => {
                    ready_text.extend_from_slice(&buf[..n]);
                    if ready_text.contains(&b'\n') {
                        // What it said before it was ready is in the pipe already.
                        set_nonblocking(err);
                        while err_open {
                            match read_fd(err, &mut buf) {
                                0 => err_open = false,
                                n => said.extend_from_slice(&buf[..n]),
                            }
                        }
                        let line = String::from_utf8_lossy(&ready_text).trim().to_string();
                        return (said, Some(line));
                    }
                }
            }
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Bytes read, 0 at end of file (or an error, which ends the relay too).
fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut file = std::mem::ManuallyDrop::new(
        // SAFETY: borrowed for one read; ManuallyDrop keeps it from closing `fd`.
        unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) },
    );
    loop {
        match file.read(buf) {
            Ok(n) => return n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        }
    }
}

/// The descriptor `up` gave this session to report readiness on, if any; made
/// close-on-exec again, so no job inherits it. (The variable stays in the environment:
/// a number that names nothing in a job does nothing.)
pub fn ready_fd() -> Option<RawFd> {
    let fd: RawFd = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    // SAFETY: fcntl on a descriptor number; an invalid one only fails.
    (unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0).then_some(fd)
}

/// The session is serving: from now on its messages go to its log, and `up` may return.
pub fn report_ready(fd: RawFd, name: &str, socket: &Path) {
    crate::stdio::flush_messages(std::time::Duration::from_secs(1));
    let log = socket.with_extension("log");
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&log)
    {
        // SAFETY: dup2 onto stderr; both descriptors are open.
        unsafe {
            libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO);
        }
    }
    // SAFETY: `up` passed this descriptor for exactly this, and nothing else owns it.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = pipe.write_all(format!("ready {name} {}\n", socket.display()).as_bytes());
}

/// `forkyard down [NAME]`: stops the session like a quit and waits until it is gone.
pub fn down(target: &Target) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::say!("{err}");
            return EXIT_FAILED;
        }
    };
    runtime.block_on(async {
        let mut client = match client::connect(target).await {
            Ok(client) => client,
            Err(code) => return code,
        };
        let name = client.hello["session"].as_str().unwrap_or("?").to_string();
        match client.request(&json!({"cmd": "shutdown"})).await {
            Ok(reply) if reply["ok"] == true => {}
            Ok(reply) => {
                crate::say!(
                    "{}",
                    visible_inline(reply["error"].as_str().unwrap_or("refused"))
                );
                return EXIT_FAILED;
            }
            Err(err) => {
                crate::say!("{err:#}");
                return EXIT_FAILED;
            }
        }
        crate::say!("stopping session `{}`…", visible_inline(&name));
        // The connection closes when the session is gone.
        while let Ok(Some(_)) = client.next().await {}
        crate::say!("session `{}` stopped", visible_inline(&name));
        0
    })
}
