//! Helpers for the control tests: a private socket folder per test, the binary run with
//! a deadline, sessions started with `forkyard up` and always taken down, a raw protocol
//! client, and a private tmux server.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Anything that should take well under a second on an idle machine (the machine is
/// shared by several builds).
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_forkyard")
}

/// Fails (never skips) when a tool a test needs is missing.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is needed by this test and is not installed (.ci/run installs it)"
    );
}

/// A folder for one test: its configs, and `run/` as `XDG_RUNTIME_DIR`, so its sessions
/// never meet anyone else's.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("forkyard-ctl-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("run")).expect("run dir");
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runtime(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The default socket of session `name`.
    pub fn socket(&self, name: &str) -> PathBuf {
        self.runtime().join("forkyard").join(format!("{name}.sock"))
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// forkyard with this test's socket folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env_remove("FORKYARD_SSH")
            .env_remove("FORKYARD_REMOTE_BIN")
            .stdin(Stdio::null());
        command
    }

    /// Runs forkyard to its end (killed after [`DEADLINE`]).
    pub fn run(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    /// `forkyard ctl --name NAME ARGS...`.
    pub fn ctl(&self, name: &str, args: &[&str]) -> Out {
        let mut all = vec!["ctl", "--name", name];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `forkyard ctl --name NAME --json ARGS...`, its one JSON reply.
    pub fn ctl_json(&self, name: &str, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(name, &all);
        let value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|err| panic!("ctl {args:?}: not one JSON value ({err}): {out:?}"));
        (out.code, value)
    }

    /// `forkyard up --name NAME CONFIG` with `toml` as the config.
    pub fn up(&self, name: &str, toml: &str) -> Session<'_> {
        let config = self.write(&format!("{name}.toml"), toml);
        self.up_file(name, &config, &[])
    }

    pub fn up_file(&self, name: &str, config: &Path, extra: &[&str]) -> Session<'_> {
        let config = config.display().to_string();
        let mut args = vec!["up", "--name", name];
        args.extend_from_slice(extra);
        args.push(&config);
        let out = self.run(&args);
        assert_eq!(out.code, 0, "forkyard up failed: {out:?}");
        let hello = Conn::open(&self.socket(name)).hello;
        Session {
            scratch: self,
            name: name.to_string(),
            pid: hello["pid"].as_u64().map(|p| p as i32),
        }
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut command: Command) -> Out {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn forkyard");
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let read = |pipe: Option<std::process::ChildStdout>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(stdout);
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = stderr {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{command:?} did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A session started with `forkyard up`: taken down when dropped, whatever happened.
pub struct Session<'a> {
    pub scratch: &'a Scratch,
    pub name: String,
    pub pid: Option<i32>,
}

impl Session<'_> {
    pub fn socket(&self) -> PathBuf {
        self.scratch.socket(&self.name)
    }

    pub fn ctl(&self, args: &[&str]) -> Out {
        self.scratch.ctl(&self.name, args)
    }

    pub fn ctl_json(&self, args: &[&str]) -> (i32, Value) {
        self.scratch.ctl_json(&self.name, args)
    }

    pub fn hello(&self) -> Value {
        Conn::open(&self.socket()).hello
    }

    /// `status --json`: the report.
    pub fn report(&self) -> Value {
        let (code, report) = self.ctl_json(&["status"]);
        assert_eq!(code, 0, "status: {report}");
        report
    }

    /// The job's entry in the live report.
    pub fn job(&self, name: &str) -> Value {
        let report = self.report();
        report["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no job {name} in {report}"))
    }

    /// Polls the live report until `cond` holds for the job.
    pub fn wait_job(&self, name: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(name);
            if cond(&job) {
                return job;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {name} to be {what}: {job}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `forkyard down`, then waits until the session's process is gone.
    pub fn down(&mut self) -> Out {
        let out = self.scratch.run(&["down", &self.name]);
        if let Some(pid) = self.pid.take() {
            wait_gone(pid);
        }
        out
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = self.scratch.run(&["down", &self.name]);
            let start = Instant::now();
            while alive(pid) && start.elapsed() < DEADLINE {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(pid) {
                // SAFETY: a signal to a pid this test started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat[stat.rfind(')')? + 2..].chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

pub fn wait_gone(pid: i32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < DEADLINE,
            "process {pid} is still there after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw protocol connection.
pub struct Conn {
    pub stream: UnixStream,
    pub reader: BufReader<UnixStream>,
    pub hello: Value,
}

impl Conn {
    pub fn open(path: &Path) -> Conn {
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|err| panic!("connect {}: {err}", path.display()));
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        let mut conn = Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
            hello: Value::Null,
        };
        conn.hello = conn.read().expect("a greeting");
        assert_eq!(conn.hello["forkyard"], "control", "{}", conn.hello);
        conn
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("write");
    }

    /// The next line as JSON (None at end of file).
    pub fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line:?}")),
            ),
            Err(err) => panic!("read: {err}"),
        }
    }

    pub fn request(&mut self, text: &str) -> Value {
        self.send(text);
        self.send("\n");
        self.read().expect("a reply")
    }
}

/// A tmux server of our own (`-L`), killed when dropped.
pub struct Tmux {
    pub socket: String,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

impl Tmux {
    pub fn new(test: &str) -> Tmux {
        require("tmux");
        Tmux {
            socket: format!("forkyard-ctl-{}-{test}", std::process::id()),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// A new window (the first one makes the server) running `script` with `sh`.
    pub fn window(&self, name: &str, script: &str) {
        let has_server = self.cmd(&["has-session"]).status.success();
        let out = if has_server {
            self.cmd(&["new-window", "-d", "-n", name, &format!("sh -c '{script}'")])
        } else {
            self.cmd(&[
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "30",
                "-n",
                name,
                &format!("sh -c '{script}'"),
            ])
        };
        assert!(out.status.success(), "tmux: {out:?}");
    }

    pub fn screen(&self, window: &str) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", &format!(":={window}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, window: &str, keys: &[&str]) {
        let target = format!(":={window}");
        let mut args = vec!["send-keys", "-t", &target];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    pub fn wait_for(&self, window: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(window);
            if cond(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}; screen of {window}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A child started in the background, killed when dropped.
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
