//! The TUI in a real terminal: forkyard runs inside tmux (private socket per test), keys
//! go in with `send-keys`, the screen comes back with `capture-pane`. Each test waits on
//! what the screen shows (polling with a deadline), checks that no child carrying the
//! test's marker survives, and that the terminal is back in cooked mode afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Generous: other engineers build and test on the same two cores.
const DEADLINE: Duration = Duration::from_secs(20);

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux server of our own, killed when the test ends (pass or fail).
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
    marker: String,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        // Whatever happened, leave no child behind.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.pattern()])
            .output();
    }
}

impl Tmux {
    /// Starts forkyard on the fixture inside a shell script that records the terminal
    /// settings before and after.
    fn start(test: &str, tag: u32) -> Option<Tmux> {
        Tmux::start_with_env(test, tag, "")
    }

    /// Like `start`, with `env` (e.g. `VAR=1 `) in front of the forkyard command.
    fn start_with_env(test: &str, tag: u32, env: &str) -> Option<Tmux> {
        Tmux::start_fixture(test, tag, "jobs.toml", env)
    }

    /// Like `start_with_env`, on `tests/fixtures/tui/<fixture>`.
    fn start_fixture(test: &str, tag: u32, fixture: &str, env: &str) -> Option<Tmux> {
        if !tmux_available() {
            eprintln!("SKIPPED: tmux is not installed (CI installs it)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("forkyard-tui-")
            .tempdir()
            .expect("temp dir");
        let marker = format!("7{:07}{tag:02}.", std::process::id());
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tui")
                .join(fixture),
        )
        .expect("fixture");
        let config = dir.path().join("jobs.toml");
        std::fs::write(&config, template.replace("@MARK@", &marker)).expect("write config");
        let script = dir.path().join("run.sh");
        let d = dir.path().display();
        std::fs::write(
            &script,
            format!(
                "stty -g > {d}/stty.before\n\
                 {env}'{bin}' --tui '{cfg}'\n\
                 echo \"EXIT=$?\"\n\
                 stty -g > {d}/stty.after\n\
                 stty -a > {d}/stty.all\n\
                 echo SCRIPT-DONE\n\
                 exec sleep 600\n",
                bin = env!("CARGO_BIN_EXE_forkyard"),
                cfg = config.display(),
            ),
        )
        .expect("write script");
        let tmux = Tmux {
            socket: format!("forkyard-e2e-{}-{test}", std::process::id()),
            dir,
            marker,
        };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            &format!("sh {}", script.display()),
        ]);
        assert!(out.status.success(), "tmux new-session failed: {out:?}");
        Some(tmux)
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys failed: {out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    /// Polls the screen until `cond` holds; panics with the last screen after the deadline.
    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if cond(&screen) {
                return screen;
            }
            if start.elapsed() > DEADLINE {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(text, |s| s.contains(text))
    }

    /// The table row of job `name` (after the expand marker and the status glyph).
    fn row(screen: &str, name: &str) -> Option<String> {
        screen
            .lines()
            .find(|l| {
                l.chars()
                    .skip(4)
                    .collect::<String>()
                    .starts_with(&format!("{name} "))
            })
            .map(str::to_string)
    }

    /// The value of a right-aligned column (PID, ↻) in job `name`'s row.
    fn cell(screen: &str, name: &str, title: &str) -> Option<String> {
        let header: Vec<char> = screen
            .lines()
            .find(|l| l.contains("NAME"))?
            .chars()
            .collect();
        let title: Vec<char> = title.chars().collect();
        let end = header.windows(title.len()).position(|w| w == title)? + title.len();
        let row: Vec<char> = Tmux::row(screen, name)?.chars().collect();
        let mut start = end;
        while start > 0 && row.get(start - 1).is_some_and(|c| !c.is_whitespace()) {
            start -= 1;
        }
        let value: String = row.get(start..end)?.iter().collect();
        (!value.is_empty()).then_some(value)
    }

    /// Our forkyard process: the one whose command line names this test's config.
    fn forkyard_pid(&self) -> Option<u32> {
        let config = self.path("jobs.toml");
        let config = config.to_string_lossy();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                (args.first().map(String::as_str) == Some(env!("CARGO_BIN_EXE_forkyard"))
                    && args.iter().any(|a| a == config.as_ref()))
                .then_some(pid)
            })
    }

    fn wait_row(&self, name: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let screen = self.wait_for(&format!("{name} row: {what}"), |s| {
            Tmux::row(s, name).is_some_and(|r| cond(&r))
        });
        Tmux::row(&screen, name).unwrap_or_default()
    }

    fn pattern(&self) -> String {
        self.marker.replace('.', "\\.")
    }

    /// Live processes carrying this test's marker.
    fn survivors(&self) -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-a", "-f", &self.pattern()])
            .output()
            .expect("run pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // pgrep never lists itself, but a concurrent `pkill` of ours could show.
            .filter(|l| !l.contains("pkill"))
            .map(str::to_string)
            .collect()
    }

    fn wait_survivors(&self, n: usize) {
        let start = Instant::now();
        while self.survivors().len() != n {
            assert!(
                start.elapsed() < DEADLINE,
                "expected {n} marked processes, found {:?}",
                self.survivors()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// After forkyard exited: its exit code, every child gone, the terminal cooked.
    fn assert_clean_exit(&self) -> i32 {
        let screen = self.wait_text("SCRIPT-DONE");
        let code = screen
            .lines()
            .find_map(|l| l.trim().strip_prefix("EXIT="))
            .and_then(|c| c.parse().ok())
            .expect("exit code printed");
        assert_eq!(
            self.survivors(),
            Vec::<String>::new(),
            "children left behind"
        );
        let before = self.file("stty.before");
        assert!(!before.trim().is_empty());
        assert_eq!(before, self.file("stty.after"), "terminal settings changed");
        let all = self.file("stty.all");
        for flag in ["icanon", "echo", "isig"] {
            assert!(
                all.split_whitespace().any(|w| w == flag),
                "{flag} is off after exit:\n{all}"
            );
        }
        // The alternate screen is gone: the shell's output is on the main screen.
        assert!(
            !screen.contains("following"),
            "still on the TUI screen:\n{screen}"
        );
        code
    }
}

#[test]
fn terminate_shows_sigterm_then_quit_confirms_and_cleans_up() {
    let Some(t) = Tmux::start("terminate", 1) else {
        return;
    };
    let row = t.wait_row("hung", "running", |r| r.contains("running"));
    assert!(
        row.split_whitespace().any(|w| w.parse::<u32>().is_ok()),
        "pid shown: {row}"
    );
    t.wait_survivors(3);
    // The first job is selected at start.
    t.keys(&["t"]);
    t.wait_row("hung", "SIGTERM", |r| r.contains("SIGTERM"));
    t.wait_text("sent SIGTERM to hung (pgid");
    t.wait_survivors(2);

    // q with jobs running asks first; n cancels.
    t.keys(&["q"]);
    t.wait_text("Stop them all");
    t.keys(&["n"]);
    t.wait_for("the dialog to close", |s| !s.contains("Stop them all"));
    t.keys(&["q"]);
    t.wait_text("Stop them all");
    t.keys(&["y"]);
    // stubborn ignores SIGTERM: its countdown to SIGKILL is visible while quitting.
    t.wait_row("stubborn", "stopping countdown", |r| {
        r.contains("stopping ")
    });
    t.wait_text("Ctrl-C: kill them now");
    let code = t.assert_clean_exit();
    // hung was terminated before quitting, stubborn by the quit: stops, not failures (this
    // used to count as a failure and exit 1).
    assert_eq!(code, 0);
}

#[test]
fn wait_with_a_short_deadline_stops_a_hung_job() {
    let Some(t) = Tmux::start("wait", 2) else {
        return;
    };
    t.wait_row("hung", "running", |r| r.contains("running"));
    t.keys(&["w"]);
    t.wait_text("wait for hung, then stop it: 5s");
    // The suggestion is replaced by what is typed; a bad value is refused in place.
    t.keys(&["x", "y", "z", "Enter"]);
    t.wait_text("not a duration: xyz");
    t.keys(&["C-u", "3", "0", "0", "m", "s", "Enter"]);
    t.wait_text("waiting up to 300ms for hung");
    t.wait_row("hung", "SIGTERM", |r| r.contains("SIGTERM"));

    // A bare number means seconds; the row counts down first.
    t.keys(&["j"]);
    t.keys(&["w", "1", "Enter"]);
    t.wait_row("stubborn", "wait countdown", |r| r.contains("wait 0."));
    t.wait_row("stubborn", "stopping countdown", |r| {
        r.contains("stopping ")
    });
    // It ignores SIGTERM; K kills it now.
    t.keys(&["K"]);
    t.wait_row("stubborn", "SIGKILL", |r| r.contains("SIGKILL"));

    t.keys(&["Q"]);
    t.assert_clean_exit();
}

#[test]
fn restart_gives_a_new_pid_and_counts() {
    let Some(t) = Tmux::start("restart", 3) else {
        return;
    };
    let pid_of = |screen: &str| -> Option<u32> {
        Tmux::cell(screen, "hung", "PID").and_then(|p| p.parse().ok())
    };
    let screen = t.wait_for("hung's pid", |s| pid_of(s).is_some());
    let first = pid_of(&screen).expect("pid");
    assert_eq!(Tmux::cell(&screen, "hung", "↻"), None, "no restart yet");
    t.keys(&["r"]);
    let screen = t.wait_for("hung with a new pid", |s| {
        Tmux::row(s, "hung").is_some_and(|r| r.contains("running"))
            && pid_of(s).is_some_and(|p| p != first)
    });
    assert_eq!(Tmux::cell(&screen, "hung", "↻").as_deref(), Some("1"));
    t.wait_survivors(3);

    // s on a finished job starts it again.
    t.keys(&["t"]);
    t.wait_row("hung", "SIGTERM", |r| r.contains("SIGTERM"));
    t.keys(&["s"]);
    t.wait_row("hung", "running again", |r| r.contains("running"));

    t.keys(&["C-c"]);
    t.wait_row("stubborn", "stopping countdown", |r| {
        r.contains("stopping ")
    });
    // A second Ctrl-C kills at once.
    t.keys(&["C-c"]);
    t.assert_clean_exit();
}

#[test]
fn output_pane_search_follow_and_help() {
    let Some(t) = Tmux::start("output", 4) else {
        return;
    };
    t.wait_row("chatter", "running", |r| r.contains("running"));
    t.keys(&["j", "j"]);
    t.wait_text("line 3");
    t.wait_text("warn 5");
    // Scrolling up pauses follow and counts the lines that arrive meanwhile.
    t.keys(&["PPage"]);
    t.wait_text("new lines");
    t.keys(&["G"]);
    t.wait_text("following");
    t.keys(&["/", "w", "a", "r", "n", "Enter"]);
    t.wait_text("paused");
    t.wait_text("n/N next/prev");
    t.keys(&["/", "n", "o", "p", "e", "Enter"]);
    t.wait_text("no match for \"nope\"");
    t.keys(&["f"]);
    t.wait_text("following");
    t.keys(&["?"]);
    t.wait_text("keys");
    t.wait_text("quit now (kills and reaps every job)");
    t.keys(&["Escape"]);
    t.wait_for("help to close", |s| !s.contains("quit now (kills"));
    t.keys(&["c"]);
    t.wait_text("cleared the output of chatter");
    t.keys(&["Q"]);
    t.assert_clean_exit();
}

#[test]
fn sigterm_stops_children_and_restores_the_terminal() {
    let Some(t) = Tmux::start("sigterm", 5) else {
        return;
    };
    t.wait_row("hung", "running", |r| r.contains("running"));
    t.wait_survivors(3);
    let ours = t.forkyard_pid().expect("forkyard is running").to_string();
    let ours = ours.as_str();
    let out = Command::new("kill")
        .args(["-TERM", ours])
        .output()
        .expect("kill");
    assert!(out.status.success());
    t.wait_row("stubborn", "stopping countdown", |r| {
        r.contains("stopping ")
    });
    // A second SIGTERM escalates to SIGKILL.
    let _ = Command::new("kill").args(["-TERM", ours]).output();
    let code = t.assert_clean_exit();
    assert_eq!(code, 128 + 15);
}

#[test]
fn closing_the_terminal_stops_every_child() {
    let Some(t) = Tmux::start("hangup", 6) else {
        return;
    };
    t.wait_row("hung", "running", |r| r.contains("running"));
    t.wait_survivors(3);
    // Killing the server closes the pane's terminal: forkyard gets SIGHUP.
    t.cmd(&["kill-server"]);
    // stubborn ignores SIGTERM, so this takes the 5 s grace.
    t.wait_survivors(0);
}

#[test]
fn a_panic_restores_the_terminal_and_kills_every_child() {
    let Some(t) = Tmux::start_with_env("panic", 7, "FORKYARD_TEST_PANIC=1 RUST_BACKTRACE=0 ")
    else {
        return;
    };
    t.wait_row("hung", "running", |r| r.contains("running"));
    t.wait_survivors(3);
    // F12 panics inside a spawned task, not the UI loop.
    t.keys(&["F12"]);
    let code = t.assert_clean_exit();
    assert_eq!(code, 101);
    t.wait_text("panicking on purpose");
}

/// The wall time after `-j <label>: ` on the runs line, in seconds.
fn run_wall(screen: &str, label: &str) -> Option<f64> {
    let line = screen
        .lines()
        .find(|l| l.trim_start().starts_with("runs "))?;
    let pattern = format!("-j {label}: ");
    let rest = &line[line.find(&pattern)? + pattern.len()..];
    rest.split(|c: char| c == 's' || c.is_whitespace())
        .next()?
        .parse()
        .ok()
}

#[test]
fn timeline_view_and_rerun_with_another_limit() {
    let Some(t) = Tmux::start_fixture("rerun", 8, "naps.toml", "") else {
        return;
    };
    // Four 1 s naps at once; the header shows the figures and the limit.
    t.wait_text("-j unlimited");
    let screen = t.wait_text("✔ 4 done");
    assert!(screen.contains("concurrency"), "{screen}");
    assert!(screen.contains("parallelism"), "{screen}");

    // v: the timeline, with its ruler.
    t.keys(&["v"]);
    let screen = t.wait_text("TIMELINE");
    let ruler = screen
        .lines()
        .find(|l| l.contains("TIMELINE"))
        .expect("ruler line");
    assert!(ruler.contains(" 0 "), "{ruler}");
    assert!(
        ruler
            .split_whitespace()
            .any(|w| w.ends_with('s') && w[..w.len() - 1].parse::<f64>().is_ok()),
        "tick labels in seconds: {ruler}"
    );
    assert!(
        Tmux::row(&screen, "nap.1").is_some_and(|r| r.contains('─')),
        "{screen}"
    );

    // p with everything finished: no question, the set runs again with -j 1.
    t.keys(&["p"]);
    t.wait_text("-j 1 ");
    let screen = t.wait_for("the sequential run to finish", |s| {
        s.contains("✔ 4 done")
            && run_wall(s, "1").is_some_and(|w| w > 1.0)
            && !s.contains("1: 0s…")
            && s.contains("× faster")
    });
    let parallel = run_wall(&screen, "unlimited").expect("first run's wall");
    let sequential = run_wall(&screen, "1").expect("second run's wall");
    assert!((1.0..2.5).contains(&parallel), "{screen}");
    assert!(sequential >= 4.0, "{screen}");
    assert!(sequential > 2.0 * parallel, "{screen}");

    // Again (-j cores), and while that runs, p asks before stopping it.
    t.keys(&["p"]);
    t.wait_for("the third run", |s| s.contains("● 2 running"));
    t.keys(&["p"]);
    t.wait_text("Stop them all and rerun everything with");
    t.keys(&["y"]);
    let screen = t.wait_for("the fourth run to finish", |s| {
        s.contains("(stopped)") && s.contains("-j unlimited ") && s.contains("✔ 4 done")
    });
    assert!(
        screen.contains("TIMELINE"),
        "still in the timeline view: {screen}"
    );
    t.wait_survivors(0);
    t.keys(&["q"]);
    assert_eq!(t.assert_clean_exit(), 0);
    // The measurements outlive the screen.
    let screen = t.screen();
    assert!(screen.contains("forkyard: wall "), "{screen}");
    assert!(
        screen.contains("forkyard: runs  -j unlimited: "),
        "{screen}"
    );
    assert!(
        screen.contains("-j 2: ") && screen.contains("(stopped)"),
        "{screen}"
    );
}

#[test]
fn quitting_while_a_run_stops_for_a_rerun_cancels_the_rerun() {
    let Some(t) = Tmux::start("rerunquit", 9) else {
        return;
    };
    t.wait_row("hung", "running", |r| r.contains("running"));
    t.wait_survivors(3);
    t.keys(&["p"]);
    t.wait_text("Stop them all and rerun everything with");
    t.keys(&["y"]);
    // stubborn ignores SIGTERM: the run takes its grace to stop, and says what follows.
    t.wait_text("then rerunning with -j 1");
    t.wait_row("stubborn", "stopping countdown", |r| {
        r.contains("stopping ")
    });
    // Q quits instead (killing what is left); no new run starts.
    t.keys(&["Q"]);
    let code = t.assert_clean_exit();
    // Nothing had failed before p.
    assert_eq!(code, 0);
    let screen = t.screen();
    assert!(!screen.contains("runs "), "no second run: {screen}");
}
