//! forkyard in a real terminal: a tmux server of the test's own (private socket) whose
//! one pane runs forkyard inside a script, keys sent with `send-keys`, the screen read
//! back with `capture-pane`, every wait polled against a deadline.
//!
//! The script ignores SIGHUP, so it outlives a killed pane or server; it records the
//! terminal settings before and after forkyard (`stty.before`, `stty.after`,
//! `stty.all`), forkyard's exit status (in `exit`, and on screen as `EXIT=<code>`), then
//! prints `SCRIPT-DONE` and keeps the pane open.
//!
//! tmux is required: without it a test using this fails (CI installs it).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::SLOW;

/// What to run.
pub struct Launch<'a> {
    /// Unique within the test binary: names the tmux socket.
    pub test: &'a str,
    /// Unique to this test and process: every child's command line carries it, so
    /// [`TmuxPane::survivors`] finds exactly them.
    pub marker: String,
    /// The config, written to `jobs.toml` in the test's folder with `@MARK@` replaced by
    /// the marker and `@DIR@` by the folder. None: no file is written.
    pub config: Option<&'a str>,
    /// forkyard's arguments, shell-quoted as needed; `@DIR@` is replaced by the folder.
    pub args: &'a str,
    /// Put in front of the command (e.g. `VAR=1 `).
    pub env: &'a str,
    pub size: (u16, u16),
}

pub struct TmuxPane {
    socket: String,
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Drop for TmuxPane {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
        // Whatever happened, leave no child behind.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.pattern()])
            .output();
    }
}

/// Fails the test when tmux is missing: a terminal test that cannot run must not pass.
pub fn require_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tmux is not installed: the terminal end-to-end tests need it (.ci/run installs it)"
    );
}

impl TmuxPane {
    pub fn open(launch: Launch<'_>) -> TmuxPane {
        require_tmux();
        let dir = tempfile::Builder::new()
            .prefix("forkyard-tmux-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().display().to_string();
        if let Some(config) = launch.config {
            let text = config
                .replace("@MARK@", &launch.marker)
                .replace("@DIR@", &d);
            std::fs::write(dir.path().join("jobs.toml"), text).expect("write config");
        }
        let script = dir.path().join("run.sh");
        std::fs::write(
            &script,
            format!(
                "trap '' HUP\n\
                 cd '{d}'\n\
                 stty -g > stty.before\n\
                 {env}'{bin}' {args}\n\
                 code=$?\n\
                 echo $code > '{d}/exit'\n\
                 echo \"EXIT=$code\"\n\
                 stty -g > '{d}/stty.after'\n\
                 stty -a > '{d}/stty.all'\n\
                 echo SCRIPT-DONE\n\
                 exec sleep 600\n",
                env = launch.env,
                bin = env!("CARGO_BIN_EXE_forkyard"),
                args = launch.args.replace("@DIR@", &d),
            ),
        )
        .expect("write script");
        let tui = TmuxPane {
            socket: format!("forkyard-e2e-{}-{}", std::process::id(), launch.test),
            dir,
            marker: launch.marker,
        };
        let (width, height) = (launch.size.0.to_string(), launch.size.1.to_string());
        let out = tui.cmd(&[
            "new-session",
            "-d",
            "-x",
            &width,
            "-y",
            &height,
            &format!("sh '{}'", script.display()),
        ]);
        assert!(out.status.success(), "tmux new-session failed: {out:?}");
        tui
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Keys by tmux's names (`Enter`, `C-c`, `q`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys failed: {out:?}");
    }

    /// Text typed literally (no key names).
    pub fn type_text(&self, text: &str) {
        let out = self.cmd(&["send-keys", "-t", "0", "-l", text]);
        assert!(out.status.success(), "send-keys -l failed: {out:?}");
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    /// The screen with its colours, as escape sequences.
    pub fn screen_escapes(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-e", "-t", "0"]).stdout)
            .into_owned()
    }

    /// The main screen with its scrollback.
    pub fn history(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-S", "-", "-t", "0"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format (`#{cursor_x}`) evaluated for the pane.
    pub fn format(&self, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "0", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Polls the screen until `cond` holds; panics with the last screen after the deadline.
    pub fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            if start.elapsed() > SLOW {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn wait_text(&self, text: &str) -> String {
        self.wait_for(text, |s| s.contains(text))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file in the test's folder; empty if it is not there (yet).
    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The marker as a `pgrep -f` pattern.
    pub fn pattern(&self) -> String {
        self.marker.replace('.', "\\.")
    }

    /// Live processes carrying this test's marker.
    pub fn survivors(&self) -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-a", "-f", &self.pattern()])
            .output()
            .expect("run pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // A concurrent `pkill` or `tmux send-keys` of ours may carry the marker too.
            .filter(|l| !l.contains("pkill") && !l.contains("tmux"))
            .map(str::to_string)
            .collect()
    }

    pub fn wait_survivors(&self, n: usize) {
        let start = Instant::now();
        while self.survivors().len() != n {
            assert!(
                start.elapsed() < SLOW,
                "expected {n} marked processes, found {:?}",
                self.survivors()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// forkyard's exit status, from the file the script writes (it survives the
    /// terminal); panics if forkyard has not exited within `within`.
    pub fn wait_exit(&self, within: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Ok(code) = self.file("exit").trim().parse() {
                return code;
            }
            assert!(
                start.elapsed() < within,
                "forkyard still running after {within:?}: {:?}",
                self.forkyard_pid()
                    .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")))
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Our forkyard process: the one whose command line names this test's config (or,
    /// run without one, whose cwd is this test's folder).
    pub fn forkyard_pid(&self) -> Option<u32> {
        let config = self.path("jobs.toml");
        let config = config.to_string_lossy();
        let dir = self.dir.path().canonicalize().ok();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
                let names_config = args
                    .iter()
                    .any(|a| a == config.as_ref() || (a == "jobs.toml" && cwd == dir));
                (args.first().map(String::as_str) == Some(env!("CARGO_BIN_EXE_forkyard"))
                    && (names_config || (args.len() == 2 && cwd.is_some() && cwd == dir)))
                    .then_some(pid)
            })
    }
}
