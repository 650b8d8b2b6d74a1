//! Renders of the TUI view with `TestBackend`, snapshotted with insta.
//!
//! Every duration is computed against an injected `now` and every pid is fixed, so the
//! snapshots are stable. Colours are not in the text snapshots; the tests that care
//! about them (stderr tint, search highlight, selection) check cell styles directly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forkyard::output::{OutputBuffer, SharedBuffer, Stream};
use forkyard::supervisor::{
    JobState, JobStatus, Outcome, PendingReason, Postmortem, ProcState, ProcessRow, Sample,
    StageState, StopReason, Tree,
};
use forkyard::ui;
use forkyard::ui::model::{
    Focus, Model, Overlay, Prompt, PromptKind, Quitting, RowRef, Search, WaitTarget,
};
use forkyard::ui::tree::TreeView;
use nix::sys::signal::Signal;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The classic demo's jobs (names and argv from its config), all queued.
fn demo_jobs() -> Vec<(String, JobStatus)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tui/classic.toml"
    );
    let config = forkyard::config::load(std::path::Path::new(path)).expect("demo parses");
    config
        .jobs
        .iter()
        .map(|spec| {
            let argvs = spec.stages().iter().map(|s| s.argv()).collect();
            (
                spec.name.clone(),
                JobStatus::new(JobState::Pending(PendingReason::Queued), argvs),
            )
        })
        .collect()
}

struct Fixture {
    model: Model,
    buffers: Vec<SharedBuffer>,
    t0: Instant,
}

impl Fixture {
    fn new(jobs: Vec<(String, JobStatus)>) -> Self {
        let t0 = Instant::now();
        let n = jobs.len();
        let mut model = Model::from_statuses(jobs, "demo.toml");
        model.tracker.started = t0;
        model.tracker.settled_at = None;
        model.now = t0 + ms(12_345);
        model.cores = 8;
        let buffers = (0..n)
            .map(|_| Arc::new(Mutex::new(OutputBuffer::new(10_000, 1 << 20))))
            .collect();
        Fixture { model, buffers, t0 }
    }

    fn demo() -> Self {
        Fixture::new(demo_jobs())
    }

    fn id(&self, name: &str) -> usize {
        self.model
            .jobs()
            .iter()
            .position(|j| j.name == name)
            .unwrap_or_else(|| panic!("no job {name}"))
    }

    fn status(&mut self, name: &str) -> &mut JobStatus {
        let id = self.id(name);
        &mut self.model.tracker.jobs[id].status
    }

    fn run(&mut self, name: &str, pid: u32, started: Duration) {
        let t0 = self.t0;
        let status = self.status(name);
        status.state = JobState::Running;
        status.pgid = Some(pid);
        status.started_at = Some(t0 + started);
        status.ended_at = None;
        status.runs = 1;
        for (i, stage) in status.stages.iter_mut().enumerate() {
            stage.pid = Some(pid + i as u32);
            stage.state = StageState::Running;
        }
    }

    fn finish(
        &mut self,
        name: &str,
        pid: u32,
        started: Duration,
        took: Duration,
        outcome: Outcome,
    ) {
        self.run(name, pid, started);
        let t0 = self.t0;
        let status = self.status(name);
        let stage_state = match &outcome {
            Outcome::Exited { code } => StageState::Exited(*code),
            Outcome::Killed { signal } => StageState::Killed(*signal),
            Outcome::TimedOut {
                signal: Some(s), ..
            } => StageState::Killed(*s),
            Outcome::TimedOut { code, .. } => StageState::Exited(code.unwrap_or(0)),
            Outcome::FailedToStart { reason } => StageState::FailedToStart(reason.clone()),
            Outcome::Stopped {
                signal: Some(s), ..
            }
            | Outcome::Unhealthy {
                signal: Some(s), ..
            } => StageState::Killed(*s),
            Outcome::Stopped { code, .. } | Outcome::Unhealthy { code, .. } => {
                StageState::Exited(code.unwrap_or(0))
            }
            Outcome::Skipped { .. } => StageState::NotStarted,
        };
        for stage in &mut status.stages {
            stage.state = StageState::Exited(0);
        }
        if let Some(last) = status.stages.last_mut() {
            last.state = stage_state;
        }
        status.ended_at = Some(t0 + started + took);
        status.total_elapsed = took;
        status.state = JobState::Finished(outcome);
    }

    fn sample(&mut self, name: &str, cpu: f32, rss_mib: u64) {
        let id = self.id(name);
        let record = &mut self.model.tracker.jobs[id];
        let rss_bytes = rss_mib * 1024 * 1024;
        record.sample = Some(Sample {
            cpu_percent: Some(cpu),
            rss_bytes,
            cpu_time: SECOND,
            cpu_wait: std::time::Duration::ZERO,
            paused: None,
            processes: 1,
            ..Sample::default()
        });
        record.peak_rss_bytes = record.peak_rss_bytes.max(rss_bytes);
    }

    fn output(&self, name: &str, stage: usize, stream: Stream, text: &[u8]) {
        let id = self.id(name);
        let mut buf = forkyard::output::lock(&self.buffers[id]);
        buf.push_chunk(stage, stream, self.t0, text);
    }

    fn select(&mut self, name: &str) {
        self.model.selected = RowRef::Job(self.id(name));
    }

    fn render(&self, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal
            .draw(|frame| ui::draw(frame, &self.model, &self.buffers))
            .expect("draw");
        terminal
    }

    fn text(&self, width: u16, height: u16) -> String {
        self.render(width, height).backend().to_string()
    }
}

/// The demo a few seconds in: some done, some running, the chatty job selected.
fn running_demo() -> Fixture {
    let mut f = Fixture::demo();
    f.finish("hello", 4101, ms(10), ms(3), Outcome::Exited { code: 0 });
    for i in 1..=10 {
        f.finish(
            &format!("sleep.{i}"),
            4110 + i,
            ms(12),
            ms(1004),
            Outcome::Exited { code: 0 },
        );
    }
    f.finish("encrypt", 4130, ms(15), ms(48), Outcome::Exited { code: 0 });
    f.finish(
        "hung",
        4140,
        ms(16),
        ms(104),
        Outcome::TimedOut {
            signal: Some(Signal::SIGTERM),
            code: None,
        },
    );
    f.finish("fails", 4150, ms(17), ms(2), Outcome::Exited { code: 3 });
    for i in 1..=4 {
        let name = format!("cpu.{i}");
        f.run(&name, 4160 + 2 * i, ms(20));
        f.sample(&name, 49.6, 2);
    }
    f.run("chatty", 4200, ms(25));
    f.sample("chatty", 12.0, 1);
    f.run("progress", 4210, ms(26));
    f.sample("progress", 0.5, 1);
    for i in 1..=40 {
        f.output("chatty", 0, Stream::Stdout, format!("{i}\n").as_bytes());
    }
    f.select("chatty");
    f
}

/// The demo after every job finished (two failed), 7 s in.
fn finished_demo() -> Fixture {
    let mut f = running_demo();
    for i in 1..=4 {
        f.finish(
            &format!("cpu.{i}"),
            4160 + 2 * i,
            ms(20),
            ms(6_789),
            Outcome::Exited { code: 0 },
        );
    }
    f.finish("chatty", 4200, ms(25), ms(310), Outcome::Exited { code: 0 });
    f.finish(
        "progress",
        4210,
        ms(26),
        ms(3_050),
        Outcome::Exited { code: 0 },
    );
    f.model.tracker.settled_at = Some(f.t0 + ms(7_000));
    f
}

#[test]
fn running_demo_snapshot() {
    let f = running_demo();
    insta::assert_snapshot!("running_demo", f.text(100, 30));
}

#[test]
fn finished_with_failures_snapshot() {
    let mut f = finished_demo();
    let fails = f.id("fails");
    f.model.tracker.jobs[fails].status.restarts = 2;
    f.output("fails", 0, Stream::Stderr, b"something went wrong\n");
    f.select("fails");
    let text = f.text(100, 30);
    assert!(text.contains("✘ 2 failed"), "{text}");
    assert!(text.contains("wall 7.00s"), "{text}");
    insta::assert_snapshot!("finished_with_failures", text);

    // stderr is tinted: the first output line's text is drawn in the stderr colour.
    let terminal = f.render(100, 30);
    let buffer = terminal.backend().buffer();
    let row = (0..30)
        .find(|y| {
            (0..100)
                .map(|x| buffer[(x, *y)].symbol())
                .collect::<String>()
                .starts_with("something went wrong")
        })
        .expect("stderr line shown");
    assert_eq!(buffer[(0, row)].fg, ui::theme::STDERR_TINT);
}

#[test]
fn expanded_pipeline_snapshot() {
    let mut f = running_demo();
    let id = f.id("encrypt");
    f.run("encrypt", 4130, ms(15));
    f.status("encrypt").stages[0].state = StageState::Exited(0);
    f.model.expanded[id] = true;
    f.model.selected = RowRef::Job(id);
    f.output("encrypt", 2, Stream::Stdout, b"3f5a9c0e  -\n");
    f.output(
        "encrypt",
        1,
        Stream::Stderr,
        b"\x1b[33m*** WARNING : deprecated key derivation used.\x1b[0m\n",
    );
    f.output(
        "encrypt",
        0,
        Stream::Stdout,
        b"\x1b]0;evil title\x07\x1b[2Jplain\x1b[1mbold\n",
    );
    f.output(
        "encrypt",
        2,
        Stream::Stdout,
        b"progress 10%\rprogress 100%\n",
    );
    f.output("encrypt", 2, Stream::Stdout, b"partial \r50%");
    let text = f.text(100, 30);
    assert!(!text.contains("evil"), "OSC title must be stripped: {text}");
    insta::assert_snapshot!("expanded_pipeline", text);

    // Selecting a stage row shows that stage's output only.
    f.model.selected = RowRef::Stage(id, 2);
    let text = f.text(100, 30);
    assert!(text.contains("stage 3: sha256sum"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
    assert!(text.contains("progress 100%"), "{text}");
}

#[test]
fn stopping_countdown_snapshot() {
    let mut f = Fixture::new(
        ["web", "worker", "db"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    JobStatus::new(
                        JobState::Pending(PendingReason::Queued),
                        vec![vec!["sleep".into(), "100".into()]],
                    ),
                )
            })
            .collect(),
    );
    f.run("web", 5001, ms(100));
    f.run("worker", 5002, ms(200));
    f.run("db", 5003, ms(300));
    let now = f.model.now;
    f.status("web").state = JobState::Stopping {
        signal: Signal::SIGTERM,
        kill_at: now + ms(2_050),
        reason: StopReason::User,
    };
    f.status("worker").state = JobState::Stopping {
        signal: Signal::SIGKILL,
        kill_at: now,
        reason: StopReason::User,
    };
    f.model.quitting = Some(Quitting::Graceful);
    // 14 rows: the table holds the "all" row and the three jobs.
    let text = f.text(80, 14);
    assert!(text.contains("stopping 2.1s"), "{text}");
    assert!(text.contains("killing"), "{text}");
    insta::assert_snapshot!("stopping_countdown", text);
    // The countdown needs tenths: the next redraw is at most 100 ms away.
    let next = ui::next_redraw(&f.model).expect("a countdown is running");
    assert!(next <= now + ms(100));
}

#[test]
fn wait_prompt_snapshot() {
    let mut f = running_demo();
    let hung = f.id("hung");
    f.run("hung", 4140, ms(16));
    f.model.tracker.jobs[hung].status.wait_deadline = Some(f.model.now + ms(4_200));
    f.model.selected = RowRef::Job(hung);
    f.model.prompt = Some(Prompt::new(PromptKind::Wait(WaitTarget::Job(hung)), "5s"));
    let text = f.text(100, 30);
    assert!(text.contains("wait 4.2s"), "{text}");
    assert!(text.contains("wait for hung, then stop it: 5s"), "{text}");
    insta::assert_snapshot!("wait_prompt", text);
}

#[test]
fn search_with_matches_snapshot() {
    let mut f = running_demo();
    let id = f.id("fails");
    f.select("fails");
    for i in 0..12 {
        let stream = if i % 3 == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        f.output(
            "fails",
            0,
            stream,
            format!(
                "step {i}: {}\n",
                if i % 3 == 0 { "Error: disk full" } else { "ok" }
            )
            .as_bytes(),
        );
    }
    let current = 9 - forkyard::output::lock(&f.buffers[id]).first_seq();
    f.model.search = Some(Search {
        query: "error".into(),
        current: Some(current),
        current_key: None,
    });
    f.model.focus = Focus::Output;
    let terminal = f.render(100, 30);
    let text = terminal.backend().to_string();
    insta::assert_snapshot!("search_with_matches", text);

    // Matches are highlighted: the current one differently from the others.
    let buffer = terminal.backend().buffer();
    let mut highlighted = Vec::new();
    for y in 0..30u16 {
        let line: String = (0..100u16).map(|x| buffer[(x, y)].symbol()).collect();
        if let Some(x) = line.find("Error") {
            highlighted.push((line.clone(), buffer[(x as u16, y)].bg));
        }
    }
    assert_eq!(highlighted.len(), 4, "{highlighted:?}");
    assert!(
        highlighted
            .iter()
            .any(|(l, bg)| l.starts_with("step 9") && *bg == Color::LightRed)
    );
    assert!(
        highlighted
            .iter()
            .any(|(l, bg)| l.starts_with("step 3") && *bg == Color::Yellow)
    );
}

#[test]
fn help_overlay_snapshot() {
    let mut f = running_demo();
    f.model.overlay = Some(Overlay::Help { scroll: 0 });
    let text = f.text(100, 30);
    insta::assert_snapshot!("help_overlay", text);
    // Tall enough for all of it: every command is listed with its keys, from the keymap
    // (h, l, Home, End, Esc and Shift-Tab included, which a hand-written list missed).
    let text = f.text(100, 90);
    let entries = f.model.keymap.help_entries();
    assert!(entries.len() >= 36, "{entries:?}");
    for entry in entries {
        let line = text
            .lines()
            .find(|l| l.contains(entry.command.about()))
            .unwrap_or_else(|| panic!("help lacks {entry:?}: {text}"));
        assert!(line.contains(&entry.keys), "{entry:?} in {line}");
    }
    for key in ["→ l", "← h", "g Home", "G End", "Esc", "Tab Shift-Tab"] {
        assert!(text.contains(key), "help lacks {key}: {text}");
    }
}

/// On the smallest screen the help is cut, says so, and scrolls to its last line.
#[test]
fn help_overlay_scrolls_on_a_small_screen() {
    let mut f = running_demo();
    f.model.overlay = Some(Overlay::Help { scroll: 0 });
    let top = f.text(40, 10);
    // 10 rows: 8 lines inside the box's borders.
    let hidden = ui::help_line_count(&f.model) - 8;
    assert!(top.contains("select the row"), "{top}");
    assert!(!top.contains("quit now"), "{top}");
    assert!(top.contains(&format!("↓ {hidden} more")), "{top}");
    // Scrolled past the end: clamped to the last page.
    f.model.overlay = Some(Overlay::Help { scroll: 100 });
    let bottom = f.text(40, 10);
    assert!(bottom.contains("Esc or ? closes"), "{bottom}");
    assert!(bottom.contains(&format!("↑ {hidden} more")), "{bottom}");
    assert!(!bottom.contains("select the row"), "{bottom}");
}

#[test]
fn signal_menu_and_quit_confirmation() {
    let mut f = running_demo();
    f.model.overlay = Some(Overlay::Signals { selected: 1 });
    let text = f.text(100, 30);
    assert!(text.contains("signal chatty"), "{text}");
    assert!(text.contains("SIGUSR1"), "{text}");
    f.model.overlay = Some(Overlay::ConfirmQuit);
    let text = f.text(100, 30);
    assert!(text.contains("6 jobs are still running"), "{text}");
}

#[test]
fn small_terminal_snapshots() {
    let f = running_demo();
    insta::assert_snapshot!("terminal_40x10", f.text(40, 10));
    let text = f.text(39, 10);
    assert!(text.contains("terminal too small"), "{text}");
    // Tiny and degenerate sizes never panic.
    for (w, h) in [(1, 1), (0, 0), (40, 9), (10, 40), (200, 3)] {
        let _ = f.render(w, h);
    }
}

#[test]
fn paused_view_counts_new_lines_and_marks_dropped() {
    let mut f = Fixture::new(vec![(
        "flood".to_string(),
        JobStatus::new(
            JobState::Running,
            vec![vec!["seq".into(), "1".into(), "100".into()]],
        ),
    )]);
    f.buffers[0] = Arc::new(Mutex::new(OutputBuffer::new(20, 1 << 20)));
    for i in 1..=50 {
        f.output("flood", 0, Stream::Stdout, format!("{i}\n").as_bytes());
    }
    {
        let buf = forkyard::output::lock(&f.buffers[0]);
        ui::pane::scroll_to_top(&buf, &mut f.model.views[0]);
    }
    for i in 51..=57 {
        f.output("flood", 0, Stream::Stdout, format!("{i}\n").as_bytes());
    }
    let text = f.text(60, 12);
    assert!(text.contains("older lines dropped"), "{text}");
    assert!(text.contains("paused · 7 new lines"), "{text}");
    assert!(text.contains("37 dropped"), "{text}");
}

#[test]
fn idle_finished_model_needs_no_redraw() {
    let mut f = finished_demo();
    assert_eq!(ui::next_redraw(&f.model), None);
    // A running job ticks on the next whole second of wall time, not sooner.
    f.run("chatty", 4200, ms(25));
    f.model.tracker.settled_at = None;
    assert_eq!(ui::next_redraw(&f.model), Some(f.t0 + 13 * SECOND));
    // In the app the sampler's tick (same grid) brings the frame; the timer is a backup.
    f.model.clocks_follow_samples = true;
    assert_eq!(ui::next_redraw(&f.model), Some(f.t0 + 14 * SECOND));
}

#[test]
fn finished_jobs_keep_a_dimmed_pid_and_the_selection_spans_the_table() {
    let cell_of = |f: &Fixture, name: &str, text: &str| {
        let terminal = f.render(100, 30);
        let buffer = terminal.backend().buffer().clone();
        let (x, y) = (0..30u16)
            .find_map(|y| {
                let line: String = (0..100u16).map(|x| buffer[(x, y)].symbol()).collect();
                let row = line
                    .chars()
                    .skip(4)
                    .collect::<String>()
                    .starts_with(&format!("{name} "));
                let at = line.find(text)?;
                // Byte offset to column: the prefix glyphs are multi-byte.
                row.then(|| (line[..at].chars().count() as u16, y))
            })
            .unwrap_or_else(|| panic!("no {text} in {name}'s row"));
        (buffer[(x, y)].clone(), buffer[(99, y)].clone())
    };
    let f = finished_demo();
    // chatty (selected) finished: its pid stays, dimmed; the highlight reaches the edge.
    let (pid, edge) = cell_of(&f, "chatty", "4200");
    assert_eq!(pid.fg, Color::DarkGray);
    assert_eq!(edge.bg, Color::Indexed(238));
    let (_, edge) = cell_of(&f, "fails", "4150");
    assert_eq!(
        edge.bg,
        Color::Reset,
        "only the selected row is highlighted"
    );
    // A running job's pid is not dimmed.
    let f = running_demo();
    let (pid, _) = cell_of(&f, "cpu.1", "4162");
    assert_ne!(pid.fg, Color::DarkGray);
}

/// Jobs started a few milliseconds apart show the same elapsed time, at whatever moment
/// within the second the frame is drawn (every clock is read at one instant).
#[test]
fn jobs_started_together_show_the_same_clock() {
    let jobs = ["a", "b", "c", "d"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                JobStatus::new(
                    JobState::Pending(PendingReason::Queued),
                    vec![vec!["sleep".into(), "100".into()]],
                ),
            )
        })
        .collect();
    let mut f = Fixture::new(jobs);
    // Started with the run, and restarted together later.
    f.run("a", 100, ms(3));
    f.run("b", 101, ms(9));
    f.run("c", 102, ms(1_200));
    f.run("d", 103, ms(1_207));
    for at in [2_000, 2_005, 2_207, 2_499, 2_500, 2_999, 3_004, 3_205] {
        f.model.now = f.t0 + ms(at);
        let text = f.text(80, 24);
        let clock = |name: &str| {
            text.lines()
                .find(|l| l.contains(&format!(" {name} ")))
                .and_then(|l| {
                    l.split_whitespace()
                        .find(|w| w.ends_with('s'))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| panic!("no row {name}: {text}"))
        };
        assert_eq!(clock("a"), clock("b"), "at {at} ms:\n{text}");
        assert_eq!(clock("c"), clock("d"), "at {at} ms:\n{text}");
    }
}

fn sleepers(n: usize) -> Fixture {
    let jobs = (1..=n)
        .map(|i| {
            (
                format!("job{i}"),
                JobStatus::new(
                    JobState::Pending(PendingReason::Queued),
                    vec![vec!["sleep".into(), "100".into()]],
                ),
            )
        })
        .collect();
    let mut f = Fixture::new(jobs);
    for i in 1..=n {
        f.run(&format!("job{i}"), 6000 + i as u32, ms(5));
    }
    f
}

/// The hint bar gives up its other hints before `? help` and `q quit`.
#[test]
fn the_hint_bar_keeps_help_and_quit_to_the_last() {
    let f = sleepers(2);
    for width in [120, 100, 80, 60, 40] {
        let text = f.text(width, 20);
        let bar = text.lines().last().expect("status bar");
        assert!(
            bar.contains("? help") && bar.contains("q quit"),
            "{width}: {bar}"
        );
    }
    // Wide enough: the others come first.
    let text = f.text(120, 20);
    let bar = text.lines().last().expect("status bar");
    assert!(bar.contains("t stop") && bar.contains("/ search"), "{bar}");
}

/// 80×24 with 20 jobs shows 9 rows: the table says how many more there are.
#[test]
fn hidden_rows_are_counted_below_the_table() {
    let mut f = sleepers(20);
    let text = f.text(80, 24);
    assert!(text.contains("↓ 13 more"), "{text}");
    // Scrolled to the end: the rows above are counted instead.
    f.model.selected = RowRef::Job(19);
    f.model.table_offset = 12;
    let text = f.text(80, 24);
    assert!(text.contains("↑ 13 more"), "{text}");
    assert!(text.contains(" job20 "), "{text}");
    // Everything fits: no such line.
    let text = sleepers(3).text(80, 24);
    assert!(!text.contains("more"), "{text}");
}

/// With NO_COLOR no colour reaches the terminal: the selected row must still show.
#[test]
fn without_colour_the_selected_row_is_reverse_video() {
    let mut f = sleepers(3);
    f.model.theme.plain = true;
    f.model.selected = RowRef::Job(1);
    let terminal = f.render(80, 24);
    let buffer = terminal.backend().buffer();
    let row = (0..24u16)
        .find(|y| {
            (0..80u16)
                .map(|x| buffer[(x, *y)].symbol())
                .collect::<String>()
                .contains(" job2 ")
        })
        .expect("job2's row");
    for x in [0u16, 10, 79] {
        assert!(
            buffer[(x, row)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED),
            "cell {x} of the selected row"
        );
    }
    let other = row + 1;
    assert!(
        !buffer[(10, other)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
}

#[test]
fn dialogs_and_counts_agree_with_their_numbers() {
    // A dialog left open after the last job finished.
    let mut f = finished_demo();
    f.model.overlay = Some(Overlay::ConfirmRerun { limit: 1 });
    let text = f.text(100, 30);
    assert!(!text.contains("0 jobs"), "{text}");
    assert!(text.contains("Every job has finished."), "{text}");
    f.model.overlay = Some(Overlay::ConfirmQuit);
    let text = f.text(100, 30);
    assert!(
        text.contains("Every job has finished.") && text.contains("Quit?"),
        "{text}"
    );
    // One line arrived while paused.
    let mut f = sleepers(1);
    f.output("job1", 0, Stream::Stdout, b"one\ntwo\n");
    {
        let buf = forkyard::output::lock(&f.buffers[0]);
        ui::pane::scroll_to_top(&buf, &mut f.model.views[0]);
    }
    f.output("job1", 0, Stream::Stdout, b"three\n");
    let text = f.text(80, 24);
    assert!(text.contains("paused · 1 new line ↓"), "{text}");
}

/// Two stages running the same program are told apart by their number.
#[test]
fn stage_tags_carry_the_stage_number() {
    let mut f = Fixture::new(vec![(
        "shells".to_string(),
        JobStatus::new(
            JobState::Pending(PendingReason::Queued),
            vec![
                vec!["/bin/sh".into(), "-c".into(), "seq 3".into()],
                vec!["/bin/sh".into(), "-c".into(), "cat".into()],
            ],
        ),
    )]);
    f.run("shells", 7000, ms(5));
    f.output("shells", 0, Stream::Stderr, b"from the first\n");
    f.output("shells", 1, Stream::Stdout, b"from the second\n");
    let text = f.text(80, 24);
    assert!(text.contains("1 sh│from the first"), "{text}");
    assert!(text.contains("2 sh│from the second"), "{text}");
}

/// Text from the config (names, argv, notices) never puts a control character into a
/// cell, in any view: ratatui writes cell symbols to the terminal verbatim.
#[test]
fn config_text_never_reaches_the_terminal_as_control_characters() {
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\r\n";
    let mut f = Fixture::new(vec![
        (
            format!("name{evil}"),
            JobStatus::new(
                JobState::Pending(PendingReason::Queued),
                vec![
                    vec![format!("prog{evil}"), format!("arg{evil}")],
                    vec![format!("/x/{evil}"), evil.to_string()],
                ],
            ),
        ),
        (
            "other".to_string(),
            JobStatus::new(
                JobState::Finished(Outcome::FailedToStart {
                    reason: format!("command not found: {evil}"),
                }),
                vec![vec![evil.to_string()]],
            ),
        ),
    ]);
    f.run(&format!("name{evil}"), 7100, ms(5));
    f.output(&format!("name{evil}"), 1, Stream::Stdout, b"child text\n");
    f.model.expanded[0] = true;
    f.model.set_message(
        format!("failed to start: command not found: {evil}"),
        forkyard::ui::model::MessageKind::Error,
        f.model.now,
    );
    type View = Box<dyn Fn(&mut Model)>;
    let views: Vec<View> = vec![
        Box::new(|_| {}),
        Box::new(|m| m.selected = RowRef::Stage(0, 1)),
        Box::new(|m| m.timeline = true),
        Box::new(|m| m.overlay = Some(Overlay::Signals { selected: 0 })),
        Box::new(|m| m.overlay = Some(Overlay::ConfirmQuit)),
        Box::new(|m| m.prompt = Some(Prompt::new(PromptKind::Wait(WaitTarget::Job(0)), "5s"))),
        Box::new(|m| m.selected = RowRef::Job(1)),
    ];
    for (i, view) in views.iter().enumerate() {
        view(&mut f.model);
        for (w, h) in [(100, 30), (40, 10)] {
            let terminal = f.render(w, h);
            for cell in terminal.backend().buffer().content() {
                assert!(
                    !cell.symbol().chars().any(char::is_control),
                    "view {i} at {w}x{h}: {:?} in a cell",
                    cell.symbol()
                );
            }
        }
    }
}

/// Service results in the TUI: stopped and skipped jobs are counted apart from the
/// failed ones and drawn grey, a waiting job shows what it waits for, stderr is tinted
/// (not alarm red).
#[test]
fn stopped_skipped_and_waiting_are_not_failures() {
    let mut f = Fixture::demo();
    f.finish(
        "hello",
        4100,
        ms(0),
        ms(10),
        Outcome::Stopped {
            signal: Some(Signal::SIGTERM),
            code: None,
        },
    );
    f.finish(
        "fails",
        4150,
        ms(0),
        ms(10),
        Outcome::Skipped {
            reason: "db failed: exit 1".into(),
        },
    );
    let waiting = f.id("hung");
    f.model.tracker.jobs[waiting].status.waiting_for = vec![forkyard::supervisor::WaitingFor {
        name: "db".into(),
        condition: forkyard::config::Condition::Ready,
    }];
    let text = f.text(200, 50);
    let header = text.lines().next().expect("header");
    assert!(header.contains("✘ 0 failed"), "{header}");
    assert!(header.contains("■ 1 stopped"), "{header}");
    assert!(header.contains("⊘ 1 skipped"), "{header}");
    assert!(header.contains("◌ 1 waiting"), "{header}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
            .to_string()
    };
    assert!(row("hung").contains("waiting for db"), "{}", row("hung"));
    assert!(row("hello").contains("■"), "{}", row("hello"));
    assert!(row("fails").contains("⊘"), "{}", row("fails"));
    assert_ne!(forkyard::ui::theme::STDERR_TINT, Color::LightRed);
    assert_ne!(forkyard::ui::theme::STDERR_TINT, Color::Red);
}

fn process(pid: u32, ppid: u32, depth: usize, state: char, waits: &str, cmd: &str) -> ProcessRow {
    ProcessRow {
        pid,
        ppid,
        depth,
        state: ProcState::from_letter(state),
        wchan: Some(waits.to_string()),
        syscall: Some(waits.to_string()),
        cpu: ms(20),
        cpu_percent: Some(0.0),
        cpu_wait: ms(1),
        rss_bytes: 1 << 20,
        threads: 1,
        age: Duration::from_secs(12),
        cmdline: cmd.to_string(),
        left_group: false,
        kill_at: None,
        outlived_grace: false,
    }
}

/// A service's tree: a shell, a sleep, a TERM-ignoring subshell being stopped, and a
/// `setsid` daemon.
fn service_tree(f: &Fixture, job: usize) -> Tree {
    let mut rows = vec![
        process(4200, 1, 0, 'S', "wait4", "sh -c sleep 100 & …"),
        process(4201, 4200, 1, 'S', "clock_nanosleep", "sleep 100"),
        process(4202, 4200, 1, 'S', "wait4", "sh -c trap '' TERM; sleep 200"),
        process(4203, 4202, 2, 'R', "", "sha256sum /dev/zero"),
        process(4204, 1, 0, 'S', "clock_nanosleep", "sleep 300"),
    ];
    rows[2].kill_at = Some(f.model.now + ms(2400));
    rows[3].cpu_percent = Some(98.0);
    rows[3].cpu_wait = ms(2500);
    rows[4].left_group = true;
    Tree {
        job,
        taken: f.model.now,
        rows,
    }
}

#[test]
fn process_tree_pane_snapshot() {
    let mut f = running_demo();
    let id = f.id("chatty");
    let tree = service_tree(&f, id);
    f.model.tracker.jobs[id].tree = Some(Arc::new(tree.clone()));
    f.model.tracker.jobs[id].run_wait = ms(2501);
    let mut view = TreeView::new(id);
    view.select(&tree, 3);
    f.model.tree = Some(view);
    let text = f.text(100, 30);
    insta::assert_snapshot!("process_tree", text);
    assert!(text.contains("chatty: 5 processes"), "{text}");
    assert!(text.contains("stop 2.4s"), "{text}");
    assert!(text.contains("⇱ left group · sleep 300"), "{text}");
    // The job's row counts the time it waited for a CPU.
    let row = text.lines().find(|l| l.contains("chatty")).unwrap();
    assert!(row.contains("2.50s"), "{row}");
    // The cursor follows the process by pid when the tree changes around it.
    let mut moved = service_tree(&f, id);
    moved.rows.remove(1);
    f.model.tracker.jobs[id].tree = Some(Arc::new(moved.clone()));
    assert_eq!(view.process(&moved).map(|p| p.pid), Some(4203));
    // Its line is the highlighted one.
    let terminal = f.render(100, 30);
    let buffer = terminal.backend().buffer();
    let y = (0..30)
        .find(|y| {
            (0..100)
                .map(|x| buffer[(x, *y)].symbol().to_string())
                .collect::<String>()
                .contains("sha256sum")
        })
        .unwrap();
    assert_ne!(buffer[(2, y)].bg, buffer[(2, y + 1)].bg);
}

#[test]
fn a_stopped_jobs_tree_is_its_post_mortem() {
    let mut f = running_demo();
    let id = f.id("hung");
    let mut tree = service_tree(&f, id);
    for row in &mut tree.rows {
        row.kill_at = None;
    }
    tree.rows[2].outlived_grace = true;
    f.status("hung").tree_at_stop = Some(Arc::new(Postmortem {
        why: "timed out".into(),
        tree,
    }));
    f.select("hung");
    f.model.tree = Some(TreeView::new(id));
    let text = f.text(100, 30);
    assert!(
        text.contains("hung: its 5 processes when it was stopped (timed out)"),
        "{text}"
    );
    assert!(text.contains("✗ outlived grace · sh -c"), "{text}");
}
