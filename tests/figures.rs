//! The run's figures on real runs: concurrency (jobs in flight on average) and
//! parallelism (cores busy on average), headless and through `--compare`.
//!
//! Tolerances are for a loaded 2-core machine: sleeps do not care about load; the CPU
//! test measures how much of the machine other processes took meanwhile (/proc/stat) and
//! says so when it cannot demand the full figure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::time::Duration;

use forkyard::headless::RunResult;
use forkyard::headless::compare::run_silently;
use forkyard::tracker::Figures;

use common::{config_in, pgrep_count, tempdir};

/// A `sleep` argument that adds nothing measurable (`0.000<pid><tag>` seconds: GNU sleep
/// adds its arguments up) but makes the process findable with `pgrep -f`.
/// One test at a time: the CPU-bound tests fill every core, and a sleep test running
/// beside them measures their scheduling delays instead of its own figures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn marker(tag: u32) -> String {
    format!("0.000{:07}{tag:02}", std::process::id())
}

fn no_leftovers(marker: &str) {
    assert_eq!(
        pgrep_count(&marker.replace('.', "\\.")),
        0,
        "children carrying {marker} survived the run"
    );
}

async fn run(toml: &str, max_parallel: usize) -> (RunResult, Figures) {
    let dir = tempdir();
    let config = config_in(dir.path(), toml);
    let result = run_silently(&config, max_parallel).await.expect("run");
    let end = result.tracker.settled_at.expect("every job settled");
    let figures = result.tracker.figures(end);
    eprintln!("-j {max_parallel}: {figures:?}");
    (result, figures)
}

fn sleeps(n: usize, secs: &str, tag: u32) -> (String, String) {
    let mark = marker(tag);
    let toml = format!(
        "[[job]]\nname = \"sleep\"\ncmd = [\"sleep\", \"{secs}\", \"{mark}\"]\nreplicas = {n}\n"
    );
    (toml, mark)
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_sleeps_at_once_are_concurrent_not_parallel() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (toml, mark) = sleeps(10, "1", 1);
    let (result, f) = run(&toml, 0).await;
    assert_eq!(result.exit_code, 0);
    assert!(f.concurrency >= 8.0, "concurrency {f:?}");
    assert!(f.parallelism < 0.5, "parallelism {f:?}");
    assert!(f.wall >= Duration::from_secs(1), "{f:?}");
    assert!(f.sum_elapsed >= Duration::from_secs(10), "{f:?}");
    // The report carries the same figures.
    assert_eq!(
        result.report.concurrency,
        (f.concurrency * 100.0).round() / 100.0
    );
    assert_eq!(result.report.sum_cpu_ms, f.sum_cpu.as_millis() as u64);
    no_leftovers(&mark);
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeps_one_at_a_time_have_no_concurrency() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (toml, mark) = sleeps(10, "0.3", 2);
    let (result, f) = run(&toml, 1).await;
    assert_eq!(result.exit_code, 0);
    assert!(f.concurrency <= 1.1, "concurrency {f:?}");
    // Back to back: the jobs fill the run (spawning takes a little in between).
    assert!(f.concurrency >= 0.8, "concurrency {f:?}");
    assert!(f.wall >= Duration::from_secs(3), "{f:?}");
    assert!(f.parallelism < 0.5, "parallelism {f:?}");
    no_leftovers(&mark);
}

/// Busy and total time of all CPUs so far, from /proc/stat (in seconds).
fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let get = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let total = busy + get(3) + get(4);
    let hz = 100.0; // USER_HZ on Linux
    Some((busy / hz, total / hz))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_cpu_bound_jobs_use_two_cores() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cores = forkyard::sys::cores();
    if cores < 2 {
        eprintln!("SKIPPED: needs at least 2 cores, this machine has {cores}");
        return;
    }
    let mark = marker(3);
    let toml = format!(
        "[[job]]\nname = \"hash\"\nshell = \"head -c 1000M /dev/zero | sha256sum # {mark}\"\nreplicas = 2\n"
    );
    let before = cpu_times();
    let (result, f) = run(&toml, 0).await;
    let after = cpu_times();
    assert_eq!(result.exit_code, 0);
    no_leftovers(&mark);

    let wall = f.wall.as_secs_f64();
    let ours = f.sum_cpu.as_secs_f64();
    // Nothing can use more than the machine has.
    assert!(f.parallelism <= cores as f64 + 0.15, "{f:?}");
    let (Some((busy0, _)), Some((busy1, _))) = (before, after) else {
        assert!(f.parallelism > 1.5, "{f:?}");
        return;
    };
    let busy = busy1 - busy0;
    // Our CPU time was spent on this machine during the run (clock-tick accounting
    // rounds, hence the slack).
    assert!(
        ours <= busy + 0.1 * cores as f64 + 0.05 * ours,
        "Σ CPU {ours:.2}s but the machine was busy {busy:.2}s"
    );
    // Whatever else ran meanwhile (other builds and tests) took this many cores.
    let others = ((busy - ours) / wall).max(0.0);
    let free = (cores as f64 - others).min(2.0);
    let expected = if free >= 1.9 { 1.5 } else { 0.75 * free };
    if expected < 1.5 {
        eprintln!(
            "machine busy: others used {others:.2} cores, so asking for parallelism > {expected:.2} instead of 1.5"
        );
    }
    assert!(
        f.parallelism > expected,
        "parallelism {:.2} (others used {others:.2} cores): {f:?}",
        f.parallelism
    );
}

/// The WALL column of the `--compare` row that starts with `label`, in seconds.
fn wall_of(table: &str, label: &str) -> f64 {
    let row = table
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label}:\n{table}"));
    let wall = row[label.len()..]
        .split_whitespace()
        .next()
        .expect("wall column");
    wall.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("wall {wall:?} in {row:?}"))
}

#[test]
fn compare_runs_the_set_once_per_limit() {
    let _serial = ONE_AT_A_TIME.blocking_lock();
    let dir = tempdir();
    let (toml, mark) = sleeps(4, "0.5", 4);
    let config = dir.path().join("sleeps.toml");
    std::fs::write(&config, toml).expect("write config");
    // Three runs: each new supervisor must reap its own children (a leftover reaper of
    // an earlier run once took them, and the next run waited forever).
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_forkyard"))
        .arg("--compare")
        .arg("1,0,0")
        .arg(&config)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run forkyard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("WALL") && stdout.contains("SPEEDUP"),
        "{stdout}"
    );
    let sequential = wall_of(&stdout, "1 (sequential)");
    let parallel = wall_of(&stdout, "unlimited");
    assert!(sequential >= 2.0, "{stdout}");
    assert!(parallel < 1.5, "{stdout}");
    assert!(sequential > 2.0 * parallel, "{stdout}");
    no_leftovers(&mark);
}

/// Twice as many CPU-bound jobs as cores: each waits for a CPU about as long as it runs
/// (Σ CPU wait ≈ Σ CPU), and one job per core hardly waits. Other processes on a shared
/// machine add waiting to both runs alike, so the difference between the two is what the
/// jobs cost each other: about Σ CPU. A run that did not measure the wait fails.
#[tokio::test(flavor = "multi_thread")]
async fn cpu_bound_jobs_beyond_the_cores_wait_for_a_cpu() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cores = forkyard::sys::cores();
    let toml = format!(
        "[[job]]\nname = \"hash\"\npipeline = [[\"head\", \"-c\", \"300M\", \"/dev/zero\"], [\"sha256sum\"]]\nreplicas = {}\n",
        2 * cores
    );
    let (crowded, f) = run(&toml, 0).await;
    assert_eq!(crowded.exit_code, 0);
    let waited = f.sum_cpu_wait.as_secs_f64();
    let cpu = f.sum_cpu.as_secs_f64();
    assert!(
        waited >= 0.5 * cpu,
        "2x cores jobs: Σ CPU wait {waited:.2}s against Σ CPU {cpu:.2}s"
    );
    // The report carries it per job and for the run.
    assert_eq!(
        crowded.report.sum_cpu_wait_ms,
        f.sum_cpu_wait.as_millis() as u64
    );
    assert!(crowded.report.jobs.iter().all(|j| j.cpu_wait_ms > 0));

    let (_, g) = run(&toml, cores).await;
    let calm = g.sum_cpu_wait.as_secs_f64();
    assert!(
        waited - calm >= 0.4 * cpu,
        "-j cores: Σ CPU wait {calm:.2}s, against {waited:.2}s with every job at once \
         (Σ CPU {cpu:.2}s)"
    );
}
