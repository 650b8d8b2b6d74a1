//! Pipelines and output volume with real processes: byte-exact pipes between stages, one
//! process group per job, SIGPIPE semantics, pipefail, floods on both streams, and a
//! bounded buffer under a huge line without newline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Harness, SLOW, config_in, pgid_of, pgrep_count, sleep_arg, sleep_pattern, tempdir};
use forkyard::output::{MAX_LINE_BYTES, Stream};
use forkyard::supervisor::{Control, JobState, Outcome, StageState};
use nix::sys::signal::Signal;

/// 10 MB of random bytes through cat | gzip | gunzip | sha256sum hash like the file
/// itself; every stage has its own pid and exit status, all in the first stage's group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_passes_10mb_byte_exactly() {
    let dir = tempdir();
    let data = dir.path().join("data.bin");
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 10000000 /dev/urandom > '{}'",
            data.display()
        ))
        .status()
        .expect("run head");
    assert!(made.success());
    assert_eq!(std::fs::metadata(&data).expect("data").len(), 10_000_000);
    let direct = Command::new("sha256sum")
        .arg(&data)
        .output()
        .expect("sha256sum");
    let direct = String::from_utf8(direct.stdout).expect("utf-8");
    let expected_hash = direct
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string();

    // The first stage waits for a `go` file, so the group can be checked while every
    // stage is certainly alive.
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "roundtrip"
cwd = "."
pipeline = [
  "while [ ! -e go ]; do sleep 0.02; done; exec cat '{data}'",
  ["gzip", "-1"],
  ["gunzip"],
  ["sha256sum"],
]
"#,
            data = data.display()
        ),
    );
    let mut h = Harness::start(&config);
    let running = h.wait_running("roundtrip").await;
    let pids: Vec<u32> = running
        .stages
        .iter()
        .map(|s| s.pid.expect("every stage started"))
        .collect();
    assert_eq!(pids.len(), 4);
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "stages share a pid: {pids:?}");
    assert_eq!(running.pgid, Some(pids[0]));
    for pid in &pids {
        assert_eq!(
            pgid_of(*pid),
            Some(pids[0]),
            "stage {pid} not in the job's group"
        );
    }
    assert_ne!(
        pgid_of(std::process::id()),
        Some(pids[0]),
        "the job must not share the test's group"
    );

    std::fs::write(dir.path().join("go"), b"").expect("release the pipeline");
    let outcome = h.wait_finished("roundtrip", SLOW).await;
    assert_eq!(outcome, Outcome::Exited { code: 0 });
    let status = h.status("roundtrip");
    for stage in &status.stages {
        assert_eq!(stage.state, StageState::Exited(0), "{:?}", stage.argv);
    }
    let stdout = h.text_lines("roundtrip", Stream::Stdout);
    assert_eq!(stdout, vec![format!("{expected_hash}  -")]);
    assert!(
        h.text_lines("roundtrip", Stream::Stderr).is_empty(),
        "{:?}",
        h.text_lines("roundtrip", Stream::Stderr)
    );
    h.shutdown().await;
}

/// A long-running pipeline: every stage in one group; a stop reaches all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_stages_share_a_group_and_stop_together() {
    let arg = sleep_arg(10);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "chain"
pipeline = [["sleep", "{arg}"], ["cat"], ["cat"]]
"#
        ),
    );
    let mut h = Harness::start(&config);
    let running = h.wait_running("chain").await;
    let leader = running.stages[0].pid.expect("pid");
    for stage in &running.stages {
        assert_eq!(pgid_of(stage.pid.expect("pid")), Some(leader));
    }
    h.control("chain", Control::Stop);
    let outcome = h.wait_finished("chain", SLOW).await;
    // Stopped by the user: "stopped", not a failure (it used to read as SIGTERM).
    assert_eq!(
        outcome,
        Outcome::Stopped {
            signal: Some(Signal::SIGTERM),
            code: None,
        }
    );
    for stage in &h.status("chain").stages {
        assert_eq!(stage.state, StageState::Killed(Signal::SIGTERM));
    }
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
    h.shutdown().await;
}

/// `yes | head -1`: head exits, yes dies of SIGPIPE, and the job succeeds (last stage
/// decides) unless `pipefail` makes the first failing stage decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yes_head_ends_cleanly_and_pipefail_fails() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "plain"
pipeline = [["yes"], ["head", "-n", "1"]]

[[job]]
name = "strict"
pipeline = [["yes"], ["head", "-n", "1"]]
pipefail = true
"#,
    );
    let mut h = Harness::start(&config);
    let plain = h.wait_finished("plain", SLOW).await;
    assert_eq!(plain, Outcome::Exited { code: 0 });
    assert!(plain.is_success());
    let stages = &h.status("plain").stages;
    assert_eq!(stages[0].state, StageState::Killed(Signal::SIGPIPE));
    assert_eq!(stages[1].state, StageState::Exited(0));
    assert_eq!(h.text_lines("plain", Stream::Stdout), ["y"]);

    let strict = h.wait_finished("strict", SLOW).await;
    assert_eq!(
        strict,
        Outcome::Killed {
            signal: Signal::SIGPIPE
        }
    );
    assert!(!strict.is_success());
    h.shutdown().await;
}

/// Text stdin is fed to the first stage and closed, so a reader sees EOF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_text_reaches_the_first_stage() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "fed"
pipeline = [["cat"], ["tr", "a-z", "A-Z"]]
stdin = "one\ntwo\n"
"#,
    );
    let mut h = Harness::start(&config);
    assert_eq!(
        h.wait_finished("fed", SLOW).await,
        Outcome::Exited { code: 0 }
    );
    assert_eq!(h.text_lines("fed", Stream::Stdout), ["ONE", "TWO"]);
    h.shutdown().await;
}

fn assert_counts_up(lines: &[String], n: usize, what: &str) {
    assert_eq!(lines.len(), n, "{what}: wrong number of lines");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, (i + 1).to_string(), "{what}: line {i} out of order");
    }
}

/// 200k lines on each of stdout and stderr at once: no deadlock, nothing lost, every
/// stream in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_on_both_streams_arrive_in_order() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[settings]
scrollback = 500000

[[job]]
name = "flood"
shell = "seq 1 200000 >&2 & seq 1 200000; wait"
"#,
    );
    let mut h = Harness::start(&config);
    assert_eq!(
        h.wait_finished("flood", SLOW).await,
        Outcome::Exited { code: 0 }
    );
    assert_counts_up(&h.text_lines("flood", Stream::Stdout), 200_000, "stdout");
    assert_counts_up(&h.text_lines("flood", Stream::Stderr), 200_000, "stderr");
    {
        let buffer = forkyard::output::lock(&h.buffers[h.id("flood")]);
        assert_eq!(buffer.dropped(), 0);
        // seq 1 200000 prints 1_288_895 bytes.
        assert_eq!(buffer.bytes_received(Stream::Stdout), 1_288_895);
        assert_eq!(buffer.bytes_received(Stream::Stderr), 1_288_895);
    }
    h.shutdown().await;
}

/// 100 MB without a newline: split into capped pieces, and the buffer keeps only its byte
/// bound (plus at most one line) while counting what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_line_keeps_the_buffer_bounded() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "zeros"
cmd = ["head", "-c", "100000000", "/dev/zero"]
"#,
    );
    let mut h = Harness::start(&config);
    let id = h.id("zeros");
    let started = Instant::now();
    let mut peak_stored = 0usize;
    // Watch the bound while the flood is on, not only at the end.
    while !h.status("zeros").is_settled() {
        {
            let buffer = forkyard::output::lock(&h.buffers[id]);
            peak_stored = peak_stored.max(buffer.bytes_stored());
        }
        assert!(
            started.elapsed() < SLOW,
            "the 100 MB job did not finish in time"
        );
        let _ = h
            .next_event(Instant::now() + Duration::from_millis(5))
            .await;
    }
    assert_eq!(
        h.status("zeros").outcome(),
        Some(&Outcome::Exited { code: 0 })
    );
    {
        let buffer = forkyard::output::lock(&h.buffers[id]);
        let bound = buffer.max_bytes() + MAX_LINE_BYTES;
        peak_stored = peak_stored.max(buffer.bytes_stored());
        assert!(peak_stored <= bound, "stored {peak_stored} > {bound}");
        assert_eq!(buffer.bytes_received(Stream::Stdout), 100_000_000);
        // 100e6 = 1525 full pieces of 64 KiB + one of 57 600 bytes.
        assert_eq!(buffer.total_lines(), 1526);
        assert!(buffer.dropped() > 0);
        assert_eq!(buffer.dropped() + buffer.len() as u64, 1526);
        assert!(buffer.iter().all(|l| l.text.len() <= MAX_LINE_BYTES));
        assert!(buffer.iter().all(|l| l.text.iter().all(|b| *b == 0)));
        assert_eq!(
            buffer.iter().next_back().map(|l| l.text.len()),
            Some(57_600)
        );
    }
    let state = h.status("zeros").state.clone();
    assert!(matches!(state, JobState::Finished(_)));
    h.shutdown().await;
}

/// env is added to the inherited environment; cwd resolves against the config's folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_cwd_reach_the_child() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "where"
shell = "pwd; echo \"$GREETING from $FORKYARD_JOB\"; test -n \"$PATH\" && echo inherited"
cwd = "sub"
env = { GREETING = "hello there" }
"#,
    );
    let mut h = Harness::start(&config);
    assert_eq!(
        h.wait_finished("where", SLOW).await,
        Outcome::Exited { code: 0 }
    );
    let expected_dir = std::fs::canonicalize(dir.path().join("sub")).expect("canonical");
    assert_eq!(
        h.text_lines("where", Stream::Stdout),
        [
            expected_dir.display().to_string(),
            "hello there from where".to_string(),
            "inherited".to_string()
        ]
    );
    h.shutdown().await;
}

/// Samples carry each running stage's own CPU (its subtree), by stage pid: a busy stage
/// and an idle one in the same pipeline are told apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_split_cpu_by_stage() {
    let arg = sleep_arg(31);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "pipe"
pipeline = [["sh", "-c", "while :; do :; done"], ["sleep", "{arg}"]]
"#
        ),
    );
    let mut h = Harness::start_with(
        &config,
        forkyard::supervisor::SupervisorOptions {
            sample_interval: Some(Duration::from_millis(250)),
            ..Default::default()
        },
    );
    let status = h.wait_running("pipe").await;
    let pids: Vec<u32> = status.stages.iter().filter_map(|s| s.pid).collect();
    assert_eq!(pids.len(), 2);
    let deadline = Instant::now() + SLOW;
    let stage_cpu = loop {
        match h.next_event(deadline).await {
            Some(forkyard::supervisor::Event::Sample { sample, .. })
                if sample
                    .stage_cpu
                    .iter()
                    .any(|(pid, cpu)| *pid == pids[0] && *cpu >= Duration::from_millis(300)) =>
            {
                break sample.stage_cpu;
            }
            Some(_) => {}
            None => panic!("no sample with the busy stage's CPU"),
        }
    };
    let cpu_of = |pid: u32| {
        stage_cpu
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, cpu)| *cpu)
            .unwrap_or_else(|| panic!("no figure for stage {pid}: {stage_cpu:?}"))
    };
    assert!(
        cpu_of(pids[1]) < Duration::from_millis(100),
        "{stage_cpu:?}"
    );
    h.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}
