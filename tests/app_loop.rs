//! The TUI's whole loop on ratatui's `TestBackend`: real jobs (marked `sleep`s counted
//! with `pgrep`), keys and signals sent through channels, the screen read after every
//! frame. Quit with and without running jobs, rerun, SIGHUP, a second signal, a failing
//! draw, an input that ends, tiny terminals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use forkyard::app::{Screen, Shell, TuiOptions};
use nix::sys::signal::Signal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::{Frame, Terminal};
use tokio::sync::mpsc;

use common::{SLOW, config_in, pgrep_count, sleep_arg, sleep_pattern, tempdir};

/// A `TestBackend` whose text, after each frame, the test can read while the loop runs;
/// optionally failing its `fail_at`-th draw like a terminal that hung up (EIO).
struct TestScreen {
    terminal: Terminal<TestBackend>,
    text: Arc<Mutex<String>>,
    draws: usize,
    fail_at: Option<usize>,
}

impl Screen for TestScreen {
    fn draw(&mut self, render: &mut dyn FnMut(&mut Frame)) -> io::Result<()> {
        self.draws += 1;
        if self.fail_at.is_some_and(|n| self.draws >= n) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.terminal.draw(|frame| render(frame)).expect("draw");
        *self.text.lock().unwrap() = self.terminal.backend().to_string();
        Ok(())
    }

    fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.terminal.backend_mut().resize(width, height);
        self.terminal
            .resize(Rect::new(0, 0, width, height))
            .expect("resize");
        Ok(())
    }
}

type Keys = mpsc::UnboundedSender<io::Result<Event>>;
type Signals = mpsc::UnboundedSender<Signal>;

type TestShell =
    Shell<TestScreen, mpsc::UnboundedReceiver<io::Result<Event>>, mpsc::UnboundedReceiver<Signal>>;

struct Running {
    keys: Keys,
    signals: Signals,
    text: Arc<Mutex<String>>,
    done: tokio::task::JoinHandle<TestShell>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(toml: &str, fail_at: Option<usize>) -> Running {
        Running::start_with(toml, fail_at, TuiOptions::default())
    }

    fn start_with(toml: &str, fail_at: Option<usize>, options: TuiOptions) -> Running {
        let dir = tempdir();
        let config = config_in(dir.path(), toml);
        let (keys, key_rx) = mpsc::unbounded_channel();
        let (signals, signal_rx) = mpsc::unbounded_channel();
        let text = Arc::new(Mutex::new(String::new()));
        let screen = TestScreen {
            terminal: Terminal::new(TestBackend::new(100, 30)).expect("terminal"),
            text: text.clone(),
            draws: 0,
            fail_at,
        };
        let mut shell = Shell::start(
            config,
            &options,
            screen,
            key_rx,
            signal_rx,
            Rect::new(0, 0, 100, 30),
        )
        .expect("start");
        let done = tokio::spawn(async move {
            shell.run().await;
            shell
        });
        Running {
            keys,
            signals,
            text,
            done,
            _dir: dir,
        }
    }

    fn key(&self, code: KeyCode) {
        let _ = self
            .keys
            .send(Ok(Event::Key(KeyEvent::new(code, KeyModifiers::NONE))));
    }

    fn chars(&self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    async fn wait_text(&self, what: &str) -> String {
        let deadline = Instant::now() + SLOW;
        loop {
            let text = self.text.lock().unwrap().clone();
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what:?}; screen:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status and whether the screen was still held at the end.
    async fn finished(self) -> (i32, bool) {
        let shell = self.shell().await;
        (shell.state.exit_code(), shell.screen.is_some())
    }

    async fn shell(self) -> TestShell {
        tokio::time::timeout(SLOW, self.done)
            .await
            .expect("the loop ends")
            .expect("the loop does not panic")
    }
}

fn sleeper(arg: &str, extra: &str) -> String {
    format!("[[job]]\nname = \"nap\"\ncmd = [\"sleep\", \"{arg}\"]\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_without_running_jobs_exits_at_once() {
    let t = Running::start(
        "[[job]]\nname = \"quick\"\ncmd = [\"echo\", \"hi there\"]\n",
        None,
    );
    t.wait_text("exited 0").await;
    t.wait_text("hi there").await;
    t.key(KeyCode::Char('q'));
    let (code, _) = t.finished().await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_with_running_jobs_asks_then_stops_them_all() {
    let arg = sleep_arg(40);
    let t = Running::start(&sleeper(&arg, ""), None);
    t.wait_text("running").await;
    common::wait_until_async(SLOW, "the sleep", || pgrep_count(&sleep_pattern(&arg)) == 1).await;
    t.key(KeyCode::Char('q'));
    t.wait_text("1 job is still running or waiting to run.")
        .await;
    t.key(KeyCode::Char('y'));
    let (code, _) = t.finished().await;
    assert_eq!(code, 0, "nothing had failed");
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0, "the sleep is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_starts_the_set_again_and_keeps_the_first_runs_figures() {
    let t = Running::start(
        "[[job]]\nname = \"quick\"\ncmd = [\"echo\", \"again\"]\nreplicas = 2\n",
        None,
    );
    t.wait_text("✔ 2 done").await;
    t.key(KeyCode::Char('p'));
    let text = t.wait_text("runs ").await;
    assert!(text.contains("-j 1"), "{text}");
    t.wait_text("rerunning every job with -j 1").await;
    t.wait_text("✔ 2 done").await;
    t.key(KeyCode::Char('q'));
    assert_eq!(t.finished().await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_stops_every_child_and_exits_129() {
    let arg = sleep_arg(41);
    let t = Running::start(&sleeper(&arg, ""), None);
    t.wait_text("running").await;
    common::wait_until_async(SLOW, "the sleep", || pgrep_count(&sleep_pattern(&arg)) == 1).await;
    t.signals.send(Signal::SIGHUP).unwrap();
    let (code, screen_kept) = t.finished().await;
    assert_eq!(code, 129);
    assert!(!screen_kept, "the terminal was released");
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_kills_a_job_that_ignores_the_first() {
    let arg = sleep_arg(42);
    let toml = format!(
        "[[job]]\nname = \"stubborn\"\nshell = \"trap '' TERM; exec sleep {arg}\"\ngrace = \"60s\"\n"
    );
    let t = Running::start(&toml, None);
    t.wait_text("running").await;
    common::wait_until_async(SLOW, "the sleep", || pgrep_count(&sleep_pattern(&arg)) == 1).await;
    t.signals.send(Signal::SIGTERM).unwrap();
    t.wait_text("stopping 1 job").await;
    let started = Instant::now();
    t.signals.send(Signal::SIGTERM).unwrap();
    let (code, _) = t.finished().await;
    assert_eq!(code, 143);
    // Killed, not after its 60 s grace.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_draw_ends_the_tui_like_sighup() {
    let arg = sleep_arg(43);
    // The first frame draws; the second fails with EIO.
    let t = Running::start(&sleeper(&arg, ""), Some(2));
    common::wait_until_async(SLOW, "the sleep", || pgrep_count(&sleep_pattern(&arg)) == 1).await;
    // Anything that needs a frame: a key.
    t.key(KeyCode::Char('j'));
    let (code, screen_kept) = t.finished().await;
    assert_eq!(code, 129);
    assert!(!screen_kept);
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_that_ends_ends_the_tui_like_sighup() {
    let arg = sleep_arg(44);
    let t = Running::start(&sleeper(&arg, ""), None);
    t.wait_text("running").await;
    common::wait_until_async(SLOW, "the sleep", || pgrep_count(&sleep_pattern(&arg)) == 1).await;
    let _ = t.keys.send(Err(io::Error::from_raw_os_error(libc::EIO)));
    let (code, _) = t.finished().await;
    assert_eq!(code, 129);
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_terminals_and_resize_storms_never_panic() {
    let arg = sleep_arg(45);
    let t = Running::start(&sleeper(&arg, ""), None);
    t.wait_text("running").await;
    for (w, h) in [(1, 1), (2, 200), (300, 3), (0, 0), (40, 10), (1, 1)] {
        let _ = t.keys.send(Ok(Event::Resize(w, h)));
        // Keys, overlays and prompts at that size too.
        t.chars("?j");
        t.key(KeyCode::Esc);
        t.chars("x");
        t.key(KeyCode::Esc);
        t.chars("w");
        t.key(KeyCode::Esc);
    }
    for i in 0..500u16 {
        let _ = t
            .keys
            .send(Ok(Event::Resize(1 + i % 300, 1 + (i * 7) % 200)));
    }
    let _ = t.keys.send(Ok(Event::Resize(100, 30)));
    t.wait_text("nap").await;
    t.chars("Q");
    let (code, screen_kept) = t.finished().await;
    assert_eq!(code, 0);
    assert!(screen_kept);
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_written_when_the_tui_exits() {
    let report = tempdir().keep().join("run.json");
    let options = TuiOptions {
        report: Some(report.clone()),
        ..TuiOptions::default()
    };
    let t = Running::start_with(
        "[[job]]\nname = \"quick\"\ncmd = [\"echo\", \"twelve bytes\"]\n",
        None,
        options,
    );
    t.wait_text("exited 0").await;
    t.key(KeyCode::Char('q'));
    let mut shell = t.shell().await;
    shell.finish(Some(&report));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("json");
    let _ = std::fs::remove_dir_all(report.parent().expect("dir"));
    assert_eq!(json["jobs"][0]["name"], "quick");
    assert_eq!(json["jobs"][0]["result"], "exited");
    assert_eq!(json["jobs"][0]["stdout_bytes"], 13);
}
