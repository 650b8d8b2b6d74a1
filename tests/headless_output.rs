//! The headless runner as a library (`run_with_output` into a capturing writer): line
//! prefixes, floods on both streams in order, the summary table, the exit code and the
//! report it builds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use common::{SLOW, SharedVec, config_in, pgrep_count, sleep_arg, sleep_pattern, tempdir};
use forkyard::config::Config;
use forkyard::headless::{HeadlessOptions, PrintStyle, RunResult, run_with_output};

const PLAIN: PrintStyle = PrintStyle {
    color: false,
    sanitize: false,
    timestamps: false,
};

async fn run(config: &Config, options: &HeadlessOptions) -> (RunResult, String) {
    let out = SharedVec::default();
    let result = tokio::time::timeout(SLOW, run_with_output(config, options, out.clone(), PLAIN))
        .await
        .expect("headless run hung")
        .expect("headless run");
    (result, out.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_name_stream_and_stage() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "a"
shell = "echo hello; echo oops >&2; printf 'no newline'"

[[job]]
name = "pipe"
pipeline = ["echo up >&2; echo one; echo two", ["cat"], "cat; echo last >&2"]
"#,
    );
    let (result, text) = run(&config, &HeadlessOptions::default()).await;
    assert_eq!(result.exit_code, 0, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    // Labels are padded to the widest one, `pipe[3]`.
    for want in [
        "a       | hello",
        "a       ! oops",
        "a       | no newline",
        "pipe[1] ! up",
        "pipe[3] | one",
        "pipe[3] | two",
        "pipe[3] ! last",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
    }
    // Per stream, the order of the child is kept.
    let pos = |want: &str| lines.iter().position(|l| *l == want).expect("present");
    assert!(pos("a       | hello") < pos("a       | no newline"));
    assert!(pos("pipe[3] | one") < pos("pipe[3] | two"));
    // Nothing else is printed for the jobs (stages 2 and 3 pass stdout along silently).
    let output = &text[..text.find("forkyard summary:").expect("a summary")];
    let job_lines = output.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(job_lines, 7, "{text}");
}

/// 200k lines on each stream through the printer: every line, in order per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_print_every_line_in_order() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "flood"
shell = "seq 1 200000 >&2 & seq 1 200000; wait"
"#,
    );
    let (result, text) = run(
        &config,
        &HeadlessOptions {
            no_summary: true,
            ..HeadlessOptions::default()
        },
    )
    .await;
    assert_eq!(result.exit_code, 0);
    let mut next = [1u64, 1u64];
    for line in text.lines() {
        let (index, number) = if let Some(n) = line.strip_prefix("flood | ") {
            (0, n)
        } else if let Some(n) = line.strip_prefix("flood ! ") {
            (1, n)
        } else {
            panic!("unexpected line {line:?}");
        };
        let number: u64 = number.parse().expect("a number");
        assert_eq!(number, next[index], "stream {index} out of order");
        next[index] += 1;
    }
    assert_eq!(next, [200_001, 200_001], "lines missing");
    // Headless keeps no scrollback, so nothing is dropped from one; the byte counts
    // are those of every line printed.
    let job = &result.report.jobs[0];
    assert_eq!(job.lines_dropped, 0);
    assert_eq!((job.stdout_bytes, job.stderr_bytes), (1_288_895, 1_288_895));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_table_and_exit_code() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "good"
cmd = ["echo", "fine"]

[[job]]
name = "bad"
shell = "exit 3"

[[job]]
name = "segv"
shell = "kill -SEGV $$"

[[job]]
name = "retry"
shell = "exit 1"
restart = "on-failure"
max_restarts = 1
"#,
    );
    let (result, text) = run(&config, &HeadlessOptions::default()).await;
    assert_eq!(result.exit_code, 1, "{text}");
    let summary_at = text.find("forkyard summary:").expect("a summary");
    let summary = &text[summary_at..];
    assert!(
        summary.starts_with("forkyard summary: 4 jobs, 1 succeeded, 3 failed"),
        "{summary}"
    );
    let mut rows = summary.lines().skip(1);
    let header: Vec<&str> = rows.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "JOB", "RESULT", "ELAPSED", "CPU", "CPU", "WAIT", "PEAK", "RSS", "RESTARTS"
        ],
        "no DROPPED column: headless keeps no scrollback to drop lines from"
    );
    let row = |name: &str| -> Vec<String> {
        summary
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{summary}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let good = row("good");
    assert_eq!(&good[1..3], ["exit", "0"]);
    assert!(good[3].ends_with('s') && good[4].ends_with('s'), "{good:?}");
    assert_eq!(good[good.len() - 1], "0", "restarts");
    assert_eq!(&row("bad")[1..3], ["exit", "3"]);
    assert_eq!(row("segv")[1], "SIGSEGV");
    let retry = row("retry");
    assert_eq!(retry[retry.len() - 1], "1", "restarts: {retry:?}");
    let total = summary
        .lines()
        .find(|l| l.starts_with("total: "))
        .expect("a totals line");
    for part in ["wall ", "Σ job time ", "Σ CPU ", "Σ CPU wait "] {
        assert!(total.contains(part), "{total}");
    }
    assert_eq!(result.report.jobs.len(), 4);
    assert_eq!(result.report.jobs[3].restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_others_on_fail_stops_the_rest() {
    let a = sleep_arg(20);
    let b = sleep_arg(21);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "long1"
cmd = ["sleep", "{a}"]

[[job]]
name = "long2"
shell = "sleep {b}; echo never"

[[job]]
name = "boom"
shell = "sleep 0.2; exit 7"
"#
        ),
    );
    let options = HeadlessOptions {
        kill_others_on_fail: true,
        ..HeadlessOptions::default()
    };
    let started = std::time::Instant::now();
    let (result, text) = run(&config, &options).await;
    assert!(started.elapsed() < SLOW, "took {:?}", started.elapsed());
    assert_eq!(result.exit_code, 1, "{text}");
    let jobs = &result.report.jobs;
    assert_eq!(jobs[2].exit_code, Some(7));
    for job in &jobs[..2] {
        // Stopped because another job failed: "stopped", not a failure of its own (it used
        // to read as "killed").
        assert_eq!(job.result, "stopped", "{}", job.name);
        assert_eq!(job.status, "stopped", "{}", job.name);
        assert_eq!(job.signal.as_deref(), Some("SIGTERM"), "{}", job.name);
        assert!(
            job.elapsed_ms < 15_000,
            "{}: {} ms",
            job.name,
            job.elapsed_ms
        );
    }
    assert!(!text.contains("never"));
    assert_eq!(pgrep_count(&sleep_pattern(&a)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&b)), 0);
}

/// Without the flag, one failure does not stop the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_do_not_stop_others_by_default() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "boom"
shell = "exit 7"

[[job]]
name = "later"
shell = "sleep 0.5; echo done"
"#,
    );
    let (result, text) = run(&config, &HeadlessOptions::default()).await;
    assert_eq!(result.exit_code, 1);
    assert!(text.contains("later | done"), "{text}");
    assert_eq!(result.report.jobs[1].exit_code, Some(0));
}
