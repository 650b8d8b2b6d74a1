//! The timeline view (`v`) and the figures header, rendered with `TestBackend` from a
//! tracker fed with supervisor events at fixed instants: the same recording path as a
//! real run (`Tracker::apply_at`), with the times injected so snapshots are stable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::time::{Duration, Instant};

use forkyard::output::{OutputBuffer, SharedBuffer};
use forkyard::supervisor::{
    Event, JobState, JobStatus, Outcome, PendingReason, Sample, StageState,
};
use forkyard::tracker::Tracker;
use forkyard::ui::model::{Model, PastRun, RowRef};
use forkyard::ui::{self, timeline};
use nix::sys::signal::Signal;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Jobs whose statuses are changed like the supervisor does (full snapshots) and
/// applied to a tracker at chosen instants.
struct Recorder {
    tracker: Tracker,
    statuses: Vec<JobStatus>,
    t0: Instant,
}

impl Recorder {
    fn new(jobs: &[(&str, usize)]) -> Self {
        let statuses: Vec<JobStatus> = jobs
            .iter()
            .map(|(_, stages)| {
                let argvs = (0..*stages)
                    .map(|i| vec![["head", "openssl", "sha256sum"][i % 3].to_string()])
                    .collect();
                JobStatus::new(JobState::Pending(PendingReason::Queued), argvs)
            })
            .collect();
        let mut tracker = Tracker::new(
            jobs.iter()
                .map(|(name, _)| name.to_string())
                .zip(statuses.iter().cloned()),
        );
        let t0 = Instant::now();
        tracker.started = t0;
        tracker.settled_at = None;
        Recorder {
            tracker,
            statuses,
            t0,
        }
    }

    fn emit(&mut self, id: usize, at: Duration) {
        let event = Event::Job {
            id,
            status: self.statuses[id].clone(),
        };
        self.tracker.apply_at(&event, self.t0 + at);
    }

    fn start(&mut self, id: usize, at: Duration) {
        let t0 = self.t0;
        let s = &mut self.statuses[id];
        s.state = JobState::Running;
        s.started_at = Some(t0 + at);
        s.ended_at = None;
        s.runs += 1;
        s.pgid = Some(5000 + id as u32);
        for (i, stage) in s.stages.iter_mut().enumerate() {
            stage.pid = Some(5000 + id as u32 + i as u32);
            stage.state = StageState::Running;
            stage.cpu_time = Duration::ZERO;
        }
        self.emit(id, at);
    }

    /// A sample of the run's cumulative CPU, received at `at`.
    fn sample(&mut self, id: usize, at: Duration, cpu: Duration) {
        let event = Event::Sample {
            id,
            sample: Sample {
                cpu_percent: None,
                rss_bytes: 1 << 20,
                cpu_time: cpu,
                cpu_wait: std::time::Duration::ZERO,
                paused: None,
                processes: 1,
                ..Sample::default()
            },
        };
        self.tracker.apply_at(&event, self.t0 + at);
    }

    /// A sample of the run's cumulative CPU and time waiting for a CPU.
    fn sample_wait(&mut self, id: usize, at: Duration, cpu: Duration, wait: Duration) {
        let event = Event::Sample {
            id,
            sample: Sample {
                rss_bytes: 1 << 20,
                cpu_time: cpu,
                cpu_wait: wait,
                processes: 1,
                ..Sample::default()
            },
        };
        self.tracker.apply_at(&event, self.t0 + at);
    }

    /// A sample with each stage's own cumulative CPU (the run's is their sum).
    fn sample_stages(&mut self, id: usize, at: Duration, stages: &[Duration]) {
        let pids = self.statuses[id]
            .stages
            .iter()
            .map(|s| s.pid.expect("started"));
        let event = Event::Sample {
            id,
            sample: Sample {
                cpu_percent: None,
                rss_bytes: 1 << 20,
                cpu_time: stages.iter().sum(),
                cpu_wait: std::time::Duration::ZERO,
                paused: None,
                processes: stages.len(),
                stage_cpu: pids.zip(stages.iter().copied()).collect(),
            },
        };
        self.tracker.apply_at(&event, self.t0 + at);
    }

    /// Samples every second from `from` to `to` at a steady `cores` of CPU.
    fn steady(&mut self, id: usize, from: u64, to: u64, cores: f64) {
        let start = self.statuses[id].started_at.expect("started") - self.t0;
        for s in from..=to {
            let at = Duration::from_secs(s);
            let cpu = (at.saturating_sub(start)).mul_f64(cores);
            self.sample(id, at, cpu);
        }
    }

    /// One stage of a running pipeline exits.
    fn stage_exit(&mut self, id: usize, stage: usize, at: Duration, cpu: Duration) {
        let s = &mut self.statuses[id].stages[stage];
        s.state = StageState::Exited(0);
        s.cpu_time = cpu;
        self.emit(id, at);
    }

    /// The run ends at `at`, having used `cpu` in all (rusage).
    fn finish(&mut self, id: usize, at: Duration, cpu: Duration, outcome: Outcome) {
        let t0 = self.t0;
        let s = &mut self.statuses[id];
        let start = s.started_at.expect("started");
        s.ended_at = Some(t0 + at);
        s.total_elapsed += (t0 + at) - start;
        let stages = s.stages.len() as u32;
        let code = outcome.exit_code().unwrap_or(0);
        for stage in &mut s.stages {
            if stage.state == StageState::Running {
                stage.state = StageState::Exited(code);
                stage.cpu_time = cpu / stages;
            }
        }
        s.total_cpu += s.reaped_cpu();
        s.state = JobState::Finished(outcome);
        self.emit(id, at);
    }

    fn settle(&mut self, at: Duration) {
        self.tracker.settled_at = Some(self.t0 + at);
    }

    fn model(&self, now: Duration) -> Model {
        let mut model = Model::new(self.tracker.clone(), "timeline.toml");
        model.now = self.t0 + now;
        model.cores = 2;
        model.max_parallel = 0;
        model.timeline = true;
        model
    }
}

const OK: Outcome = Outcome::Exited { code: 0 };

fn render(model: &Model, width: u16, height: u16) -> Terminal<TestBackend> {
    let buffers: Vec<SharedBuffer> = (0..model.jobs().len())
        .map(|_| std::sync::Arc::new(std::sync::Mutex::new(OutputBuffer::new(10, 1 << 10))))
        .collect();
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| ui::draw(frame, model, &buffers))
        .expect("draw");
    terminal
}

fn text(model: &Model, width: u16, height: u16) -> String {
    render(model, width, height).backend().to_string()
}

/// The bar part of job `name`'s row (after the name column).
fn bar_of(screen: &str, name: &str) -> String {
    let line = screen
        .lines()
        .find(|l| {
            l.trim_start_matches('"')
                .chars()
                .skip(4)
                .collect::<String>()
                .starts_with(&format!("{name} "))
        })
        .unwrap_or_else(|| panic!("no row {name}:\n{screen}"));
    let ruler = screen
        .lines()
        .find(|l| l.contains("TIMELINE"))
        .expect("ruler");
    let start = ruler.find("TIMELINE").expect("title")
        + ruler[ruler.find("TIMELINE").unwrap()..].find(' ').unwrap();
    // The ruler's "0" sits at the first bar column.
    let zero = ruler[start..].find('0').expect("0 tick") + start;
    let offset = ruler[..zero].chars().count();
    line.trim_end_matches('"').chars().skip(offset).collect()
}

#[test]
fn one_job_cpu_then_idle_while_running() {
    let mut r = Recorder::new(&[("worker", 1)]);
    r.start(0, ms(0));
    r.sample(0, ms(150), ms(140));
    // Busy for 6 s, then waiting.
    r.steady(0, 1, 6, 1.0);
    for s in 7..=10 {
        r.sample(0, Duration::from_secs(s), Duration::from_secs(6));
    }
    let model = r.model(ms(10_300));
    let screen = text(&model, 80, 12);
    insta::assert_snapshot!("timeline_one_job", screen);
    let bar = bar_of(&screen, "worker");
    assert!(bar.starts_with("█████"), "solid while busy: {bar:?}");
    assert!(bar.contains("────"), "a line while idle: {bar:?}");
    assert!(screen.contains('│'), "the now line: {screen}");
    assert!(screen.contains("TIMELINE"), "{screen}");
}

/// Five jobs over 6 s: a sleeper, a hasher, a half-busy one, one that restarts, a short
/// one never sampled, and one still queued.
fn several() -> Recorder {
    let mut r = Recorder::new(&[
        ("sleeper", 1),
        ("hasher", 1),
        ("half", 1),
        ("crashy", 1),
        ("short", 1),
        ("queued", 1),
    ]);
    for id in 0..4 {
        r.start(id, ms(10));
    }
    r.start(4, ms(4_000));
    for s in 1..=3 {
        let at = Duration::from_secs(s);
        r.sample(0, at, ms(2 * s));
        r.sample(1, at, at - ms(10));
        r.sample(2, at, (at - ms(10)) / 2);
    }
    r.sample(3, ms(900), ms(400));
    r.finish(3, ms(1_000), ms(450), Outcome::Exited { code: 1 });
    r.finish(0, ms(3_010), ms(6), OK);
    r.sample(1, ms(4_000), ms(3_990));
    r.finish(1, ms(4_500), ms(4_480), OK);
    // Restarted by its policy 200 ms later; fails again, then once more, still running.
    r.start(3, ms(1_200));
    r.finish(
        3,
        ms(2_500),
        ms(100),
        Outcome::Killed {
            signal: Signal::SIGKILL,
        },
    );
    r.start(3, ms(3_000));
    r.sample(3, ms(4_000), ms(900));
    r.sample(3, ms(5_000), ms(1_800));
    // 0.25 s, almost all CPU, between two samples: only the final rusage knows.
    r.finish(4, ms(4_250), ms(240), OK);
    r.sample(2, ms(5_000), ms(2_495));
    r
}

#[test]
fn several_jobs_with_a_restart() {
    let r = several();
    let mut model = r.model(ms(6_000));
    model.selected = RowRef::Job(3);
    let screen = text(&model, 100, 16);
    insta::assert_snapshot!("timeline_several_jobs", screen);

    let sleeper = bar_of(&screen, "sleeper");
    let (bar, rest) = sleeper.split_once(' ').expect("the bar ends");
    assert!(bar.chars().all(|c| c == '─'), "hollow: {sleeper:?}");
    assert!(rest.chars().all(|c| " ┊│".contains(c)), "{sleeper:?}");
    let hasher = bar_of(&screen, "hasher");
    assert!(
        hasher.trim_end().chars().filter(|c| *c == '█').count() > 20,
        "{hasher:?}"
    );
    let half = bar_of(&screen, "half");
    assert!(half.contains('▒') && !half.contains('█'), "{half:?}");
    // Three runs: two gaps or restart marks.
    let crashy = bar_of(&screen, "crashy");
    let trimmed = crashy.trim_end();
    let bars = trimmed.split([' ', '┊']).filter(|s| !s.is_empty()).count();
    assert!(
        bars + trimmed.matches('▏').count() >= 3,
        "three runs: {crashy:?}"
    );
    // The short job's only cell is solid: its average, from the final rusage.
    let short = bar_of(&screen, "short");
    assert!(short.contains('█'), "{short:?}");
    assert_eq!(bar_of(&screen, "queued").trim_matches([' ', '┊', '│']), "");

    // Colours: the failed runs red, the running one cyan, the successes green.
    let terminal = render(&model, 100, 16);
    let buffer = terminal.backend().buffer();
    let row = (0..16)
        .find(|y| {
            (0..100u16)
                .map(|x| buffer[(x, *y)].symbol())
                .collect::<String>()
                .contains("crashy")
        })
        .expect("crashy row");
    let colours: Vec<Color> = (20..100u16)
        .map(|x| &buffer[(x, row)])
        .filter(|c| !matches!(c.symbol(), " " | "┊" | "│"))
        .map(|c| c.fg)
        .collect();
    assert!(colours.contains(&Color::Red) && colours.contains(&Color::Cyan));
    // The selected row is highlighted across the whole width.
    assert_eq!(buffer[(99, row)].bg, Color::Indexed(238));
}

#[test]
fn finished_run_has_no_now_line_and_fits_the_axis() {
    let mut r = several();
    r.finish(2, ms(5_500), ms(2_740), OK);
    r.finish(3, ms(5_200), ms(2_000), OK);
    r.statuses[5].state = JobState::Pending(PendingReason::Manual);
    r.emit(5, ms(5_500));
    r.settle(ms(5_500));
    let model = r.model(ms(9_000));
    let screen = text(&model, 100, 16);
    insta::assert_snapshot!("timeline_finished", screen);
    assert!(!screen.contains('│'), "no now line once finished: {screen}");
    assert!(!screen.contains("now"), "{screen}");
    // The half-busy job's bar ends near the right edge (5.5 s of a 5.5 s axis).
    let half = bar_of(&screen, "half");
    assert!(half.trim_end().chars().count() > 70, "{half:?}");
}

#[test]
fn two_hundred_jobs_scroll_with_the_selection() {
    let names: Vec<String> = (0..200).map(|i| format!("job{i:03}")).collect();
    let jobs: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let mut r = Recorder::new(&jobs);
    // -j 4: four at a time, 100 ms each; every other one busy.
    for i in 0..200usize {
        let start = ms(100 * (i as u64 / 4));
        r.start(i, start);
        let cpu = if i % 2 == 0 { ms(95) } else { ms(2) };
        r.finish(i, start + ms(100), cpu, OK);
    }
    r.settle(ms(5_000));
    let mut model = r.model(ms(5_000));
    model.selected = RowRef::Job(150);
    let screen = text(&model, 100, 20);
    insta::assert_snapshot!("timeline_200_jobs", screen);
    assert!(screen.contains("job150"), "{screen}");
    assert!(!screen.contains("job000"), "{screen}");
    // job150 ran from 3.7 s to 3.8 s: its bar is a short solid piece well to the right.
    let bar = bar_of(&screen, "job150");
    let first = bar.find('█').expect("a solid cell");
    let cols = bar.chars().count();
    let at = bar[..first].chars().count() as f64 / cols as f64;
    assert!((0.70..0.78).contains(&at), "{at} {bar:?}");
}

/// While a pipeline runs, each stage's row is shaded from its own subtree's samples
/// (the bottleneck stands out), and the table's stage rows show each stage's CPU %.
#[test]
fn running_stages_show_their_own_cpu() {
    let mut r = Recorder::new(&[("encrypt", 3)]);
    r.start(0, ms(0));
    for s in 1..=3u64 {
        let t = Duration::from_secs(s);
        // head idles, openssl uses a whole core, sha256sum half of one.
        r.sample_stages(0, t, &[ms(0), t, t / 2]);
    }
    let mut model = r.model(ms(3_500));
    model.expanded[0] = true;
    let screen = text(&model, 80, 12);
    let row = |label: &str| {
        screen
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{screen}"))
            .to_string()
    };
    assert!(row("├ openssl").contains('█'), "{screen}");
    assert!(!row("├ openssl").contains('╌'), "{screen}");
    assert!(row("├ head").contains('─'), "{screen}");
    assert!(!row("├ head").contains('█'), "{screen}");
    let half = row("└ sha256sum");
    assert!(half.contains('▒') || half.contains('▓'), "{screen}");
    assert!(!half.contains('█'), "{screen}");

    model.timeline = false;
    let table = text(&model, 100, 20);
    let table_row = |label: &str| {
        table
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{table}"))
            .to_string()
    };
    assert!(table_row("├ openssl").contains("100%"), "{table}");
    assert!(table_row("└ sha256sum").contains("50%"), "{table}");
    assert!(table_row("├ head").contains(" 0%"), "{table}");
}

#[test]
fn expanded_pipeline_has_a_row_per_stage() {
    let mut r = Recorder::new(&[("encrypt", 3), ("other", 1)]);
    r.start(0, ms(0));
    r.start(1, ms(500));
    r.sample(0, ms(1_000), ms(900));
    r.stage_exit(0, 0, ms(1_000), ms(100));
    r.sample(0, ms(2_000), ms(1_900));
    r.stage_exit(0, 1, ms(2_000), ms(1_500));
    r.sample(0, ms(3_000), ms(2_600));
    r.sample(1, ms(3_000), ms(10));
    let mut model = r.model(ms(3_500));
    model.expanded[0] = true;
    model.selected = RowRef::Stage(0, 1);
    let screen = text(&model, 80, 12);
    insta::assert_snapshot!("timeline_expanded_pipeline", screen);
    // The stages end where they exited; the running one is dashed (its CPU is known
    // once it is reaped).
    let lines: Vec<&str> = screen.lines().collect();
    let stage = |label: &str| {
        lines
            .iter()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{screen}"))
            .to_string()
    };
    assert!(stage("├ head").contains('░'), "{screen}");
    assert!(stage("├ openssl").contains('▓'), "{screen}");
    assert!(stage("└ sha256sum").contains('╌'), "{screen}");
    let head = stage("├ head").chars().filter(|c| *c == '░').count();
    let openssl = stage("├ openssl").chars().filter(|c| *c == '▓').count();
    assert!(openssl > head + 5, "head ended first: {screen}");
}

#[test]
fn tiny_terminal_timeline() {
    let r = several();
    let mut model = r.model(ms(6_000));
    model.selected = RowRef::Job(5);
    let screen = text(&model, 40, 10);
    insta::assert_snapshot!("timeline_40x10", screen);
    assert!(
        screen.contains("queued"),
        "the selection stays visible: {screen}"
    );
    assert!(screen.contains("TIMELINE"), "{screen}");
    for (w, h) in [(40, 9), (1, 1), (41, 10), (200, 10), (40, 200)] {
        let _ = render(&model, w, h);
    }
}

#[test]
fn header_figures_and_runs_line() {
    let mut r = Recorder::new(&[("a", 1), ("b", 1)]);
    r.start(0, ms(0));
    r.start(1, ms(0));
    r.finish(0, ms(2_000), ms(1_900), OK);
    r.finish(1, ms(2_000), ms(1_800), OK);
    r.settle(ms(2_000));
    let mut model = r.model(ms(5_000));
    model.timeline = false;
    model.max_parallel = 0;
    model.runs = vec![PastRun {
        limit: 1,
        wall: ms(4_000),
        complete: true,
    }];
    let screen = text(&model, 100, 20);
    insta::assert_snapshot!("header_runs_100", screen);
    assert!(
        screen.contains("concurrency 2.00  parallelism 1.85 of 2 cores (93%)  Σ CPU 3.70s"),
        "{screen}"
    );
    assert!(
        screen.contains("-j 1: 4.00s · -j unlimited: 2.00s (2.0× faster)"),
        "{screen}"
    );
    let at80 = text(&model, 80, 20);
    assert!(
        at80.contains("concurrency 2.00  parallelism 1.85 of 2 cores  Σ CPU 3.70s  wall 2.00s"),
        "{at80}"
    );
    // The speedups are over the sequential run, wherever it is in the list.
    model.max_parallel = 1;
    model.runs = vec![
        PastRun {
            limit: 0,
            wall: ms(1_000),
            complete: true,
        },
        PastRun {
            limit: 2,
            wall: ms(1_500),
            complete: false,
        },
    ];
    let sequential = text(&model, 120, 20);
    assert!(
        sequential
            .contains("-j unlimited: 1.00s (2.0× faster) · -j 2: 1.50s (stopped) · -j 1: 2.00s "),
        "{sequential}"
    );
    model.max_parallel = 0;
    model.runs.truncate(0);
    model.runs.push(PastRun {
        limit: 1,
        wall: ms(4_000),
        complete: true,
    });
    let at40 = text(&model, 40, 20);
    insta::assert_snapshot!("header_runs_40", at40);
    assert!(at40.contains("conc 2.00  par 1.85/2"), "{at40}");
    assert!(at40.contains("-j 1 4.00s · -j ∞ 2.00s ×2.0"), "{at40}");
}

#[test]
fn axis_spans_the_run_and_rounds_up_while_running() {
    let r = several();
    let model = r.model(ms(6_000));
    let axis = timeline::Axis::new(&model, 80);
    assert!(axis.span >= ms(6_000) && axis.span <= ms(8_000), "{axis:?}");
    assert_eq!(axis.now, Some(r.t0 + ms(6_000)));
    let mut r = r;
    r.settle(ms(5_500));
    let axis = timeline::Axis::new(&r.model(ms(9_000)), 80);
    assert_eq!(axis.span, ms(5_500));
    assert_eq!(axis.now, None);
}

#[test]
fn slices_spent_waiting_for_a_cpu_are_drawn_apart_from_running_and_sleeping() {
    // Four hashers on two cores: each runs half the time and waits the other half;
    // one more job alone on a core for its first half, then asleep.
    let mut r = Recorder::new(&[("crowded", 1), ("alone", 1)]);
    r.start(0, ms(0));
    r.start(1, ms(0));
    for s in 1..=8u64 {
        let at = Duration::from_secs(s);
        r.sample_wait(0, at, at / 2, at / 2);
        let busy = at.min(Duration::from_secs(4));
        r.sample_wait(1, at, busy, ms(10) * s as u32);
    }
    let model = r.model(ms(8_200));
    let screen = text(&model, 100, 12);
    let crowded = bar_of(&screen, "crowded");
    let alone = bar_of(&screen, "alone");
    assert!(crowded.contains("▚▚▚▚"), "waiting cells: {crowded:?}");
    assert!(!crowded.contains('█'), "{crowded:?}");
    assert!(!alone.contains('▚'), "{alone:?}");
    assert!(alone.contains("████") && alone.contains("───"), "{alone:?}");
    assert!(
        screen.contains("▚ waiting for a CPU"),
        "the legend: {screen}"
    );
    // The job table's WAIT column and the header's Σ CPU wait carry the figures.
    let mut model = model;
    model.timeline = false;
    let screen = text(&model, 130, 12);
    assert!(screen.contains("Σ CPU wait 4.08s"), "{screen}");
}
