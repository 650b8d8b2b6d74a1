//! Cost of one TUI frame (bench/run row 6: an idle TUI redraws once a second for its
//! elapsed clocks, so the frame is most of what it spends).
//!
//! `cargo bench --bench frame` prints the median over many frames of
//! - `ui::draw` alone (building the widgets into ratatui's buffer), and
//! - a whole `Terminal::draw` into a sink (reset, draw, diff, escape codes),
//!
//! for 20 idle `sleep` jobs and for a running demo with a chatty job selected, at 200x50.
//! Each frame advances the model's clock by one second, as an idle clock tick does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::hint::black_box;
use std::io::{self, Sink};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forkyard::output::{OutputBuffer, SharedBuffer, Stream};
use forkyard::supervisor::{JobState, JobStatus, Sample, StageState};
use forkyard::ui::{self, model::Model};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const FRAMES: usize = 2000;
const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

struct Screen {
    model: Model,
    buffers: Vec<SharedBuffer>,
}

fn running(jobs: usize, argv: &[&str]) -> Screen {
    let t0 = Instant::now();
    let statuses = (0..jobs).map(|i| {
        let mut status = JobStatus::new(
            JobState::Running,
            vec![argv.iter().map(|s| s.to_string()).collect()],
        );
        status.pgid = Some(4000 + i as u32);
        status.started_at = Some(t0);
        status.runs = 1;
        for stage in &mut status.stages {
            stage.pid = Some(4000 + i as u32);
            stage.state = StageState::Running;
        }
        (format!("job.{i}"), status)
    });
    let mut model = Model::from_statuses(statuses, "bench.toml");
    model.tracker.started = t0;
    model.now = t0;
    model.cores = 2;
    for record in &mut model.tracker.jobs {
        record.sample = Some(Sample {
            cpu_percent: Some(0.0),
            rss_bytes: 1 << 20,
            cpu_time: Duration::from_millis(1),
            cpu_wait: std::time::Duration::ZERO,
            paused: None,
            processes: 1,
            ..Sample::default()
        });
    }
    let buffers = (0..jobs)
        .map(|_| Arc::new(Mutex::new(OutputBuffer::new(10_000, 8 << 20))))
        .collect();
    Screen { model, buffers }
}

fn chatty() -> Screen {
    let screen = running(20, &["seq", "1", "100000"]);
    if let Some(buffer) = screen.buffers.first() {
        let text: Vec<u8> = (1..=100_000u32)
            .flat_map(|i| format!("line {i} \x1b[32mgreen\x1b[0m\n").into_bytes())
            .collect();
        forkyard::output::lock(buffer).push_chunk(0, Stream::Stdout, Instant::now(), &text);
    }
    screen
}

fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn bench(name: &str, mut screen: Screen) -> io::Result<()> {
    let area = Rect::new(0, 0, WIDTH, HEIGHT);
    let options = TerminalOptions {
        viewport: Viewport::Fixed(area),
    };
    let mut terminal: Terminal<CrosstermBackend<Sink>> =
        Terminal::with_options(CrosstermBackend::new(io::sink()), options)?;
    let mut draw_only = Vec::with_capacity(FRAMES);
    let mut whole = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        screen.model.now += Duration::from_secs(1);
        let (model, buffers) = (&screen.model, &screen.buffers);
        let mut inner = Duration::ZERO;
        let started = Instant::now();
        terminal.draw(|frame| {
            let t = Instant::now();
            ui::draw(frame, model, buffers);
            inner = t.elapsed();
        })?;
        whole.push(started.elapsed());
        draw_only.push(inner);
        black_box(&terminal);
    }
    println!(
        "{name:<34} ui::draw {:>7.1} us   whole frame {:>7.1} us   (median of {FRAMES})",
        median_us(draw_only),
        median_us(whole)
    );
    Ok(())
}

fn main() -> io::Result<()> {
    bench("20 idle jobs, 200x50", running(20, &["sleep", "60"]))?;
    bench("20 jobs, chatty one selected", chatty())?;
    Ok(())
}
