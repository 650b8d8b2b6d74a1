//! The forkyard binary, headless, end to end: exit status, output prefixes, the summary,
//! the JSON report, --kill-others-on-fail, shutdown on SIGTERM/SIGINT/SIGHUP with nothing
//! left behind, and bounded memory under a 100 MB line without newline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{
    SLOW, forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir, wait_until, write_file,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Runs `forkyard <args>` to completion (bounded); returns (status, stdout, stderr).
fn forkyard(args: &[&str], cwd: &Path) -> (ExitStatus, String, String) {
    let output = assert_cmd::Command::new(forkyard_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run forkyard");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The forkyard binary reaps every child it has: a job that exits before its spawn has
/// returned is held for it, not booked as an orphan, so every status lands on its job.
#[test]
fn many_instant_jobs_each_report_their_own_exit() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "instant.toml",
        r#"
[[job]]
name = "ok"
cmd = ["true"]
replicas = 150

[[job]]
name = "bad"
shell = "exit 3"
replicas = 150
"#,
    );
    let (status, stdout, stderr) = forkyard(
        &["--headless", "--report", "report.json", "instant.toml"],
        dir.path(),
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("forkyard summary: 300 jobs, 150 succeeded, 150 failed"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report written"),
    )
    .expect("report is JSON");
    let jobs = report["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 300);
    for job in jobs {
        let name = job["name"].as_str().unwrap_or("?");
        let want = if name.starts_with("ok") { 0 } else { 3 };
        assert_eq!(job["exit_code"].as_i64(), Some(want), "{job}");
    }
}

/// A program found on `PATH` is started by its full path (looked up once), but the
/// child still sees `argv[0]` as written, and a job's own `PATH` is honoured.
#[test]
fn path_lookup_keeps_argv0_and_honours_the_jobs_path() {
    let dir = tempdir();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let script = write_file(&bin, "hello-fy", "#!/bin/sh\necho \"hello from $0\"\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    write_file(
        dir.path(),
        "path.toml",
        &format!(
            r#"
[[job]]
name = "argv"
cmd = ["sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"]

[[job]]
name = "own"
cmd = ["hello-fy"]
env = {{ PATH = "{}:/usr/bin:/bin" }}

[[job]]
name = "plain"
cmd = ["hello-fy"]
"#,
            bin.display()
        ),
    );
    let (status, stdout, stderr) = forkyard(&["--headless", "path.toml"], dir.path());
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("argv  | sh -c tr"), "{stdout}");
    assert!(
        stdout.contains(&format!("own   | hello from {}", script.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("command not found: hello-fy"),
        "{stdout}\n{stderr}"
    );
}

/// forkyard raises its open-file limit only as far as its config needs: a small config
/// leaves the limit its children inherit alone, a thousand-job one gets room.
#[test]
fn open_file_limit_is_raised_only_as_needed() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "small.toml",
        "[[job]]\nname = \"limit\"\nshell = \"ulimit -Sn\"\n",
    );
    write_file(
        dir.path(),
        "large.toml",
        "[[job]]\nname = \"limit\"\nshell = \"ulimit -Sn\"\n\n[[job]]\nname = \"t\"\ncmd = [\"true\"]\nreplicas = 300\n",
    );
    let soft_limit_seen = |config: &str| -> u64 {
        let script = format!(
            "ulimit -Sn 512 && exec {} --headless --no-summary {config}",
            forkyard_bin().display()
        );
        let output = assert_cmd::Command::new("sh")
            .args(["-c", &script])
            .current_dir(dir.path())
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run forkyard");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("limit | "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no limit printed: {stdout}"))
    };
    assert_eq!(soft_limit_seen("small.toml"), 512);
    let hard: u64 = String::from_utf8_lossy(
        &std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("sh")
            .stdout,
    )
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    // 301 stages: 256 + 16 each, within the hard limit.
    assert_eq!(
        soft_limit_seen("large.toml"),
        (256 + 16 * 301).min(hard).max(512)
    );
}

#[test]
fn exit_status_zero_when_every_job_succeeds() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "ok.toml",
        r#"
[[job]]
name = "one"
cmd = ["echo", "first"]

[[job]]
name = "two"
pipeline = [["echo", "second"], ["cat"]]
"#,
    );
    // No --headless: stdout is not a terminal, so forkyard runs headless by itself.
    let (status, stdout, stderr) = forkyard(&["ok.toml"], dir.path());
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("one    | first"), "{stdout}");
    assert!(stdout.contains("two[2] | second"), "{stdout}");
    assert!(
        stdout.contains("forkyard summary: 2 jobs, 2 succeeded, 0 failed"),
        "{stdout}"
    );
    // Not a terminal: no colour escapes.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
}

fn job<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in report"))
}

#[test]
fn report_summary_and_prefixes() {
    let arg = sleep_arg(30);
    let dir = tempdir();
    write_file(
        dir.path(),
        "mixed.toml",
        &format!(
            r#"
[settings]
scrollback = 1000

[[job]]
name = "ok"
cmd = ["echo", "hello"]

[[job]]
name = "err"
shell = "echo oops >&2; exit 3"

[[job]]
name = "segv"
shell = "kill -SEGV $$"

[[job]]
name = "slow"
cmd = ["sleep", "{arg}"]
timeout = "200ms"

[[job]]
name = "nope"
cmd = ["forkyard-no-such-command"]

[[job]]
name = "flaky"
shell = "exit 1"
restart = "on-failure"
max_restarts = 2

[[job]]
name = "chatty"
cmd = ["seq", "1", "5000"]

[[job]]
name = "mem"
pipeline = ["head -c 30000000 /dev/zero; sleep 2.5", ["tail", "-c", "30000000"], ["wc", "-c"]]

[[job]]
name = "cpu"
pipeline = [["head", "-c", "300000000", "/dev/zero"], ["md5sum"]]
"#
        ),
    );
    let (status, stdout, stderr) = forkyard(
        &["--headless", "--report", "report.json", "mixed.toml"],
        dir.path(),
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");

    // Prefixes: padded to the widest label (`chatty`, `mem[3]`), `!` for stderr.
    for want in ["ok     | hello", "err    ! oops", "mem[3] | 30000000"] {
        assert!(
            stdout.lines().any(|l| l == want),
            "no {want:?} in\n{stdout}"
        );
    }
    // The summary: a row per job and the totals.
    assert!(
        stdout.contains("forkyard summary: 9 jobs, 4 succeeded, 5 failed"),
        "{stdout}"
    );
    let summary = &stdout[stdout.find("forkyard summary").expect("summary")..];
    for (name, result) in [
        ("ok", "exit 0"),
        ("err", "exit 3"),
        ("segv", "SIGSEGV"),
        ("slow", "timed out (SIGTERM)"),
        ("nope", "failed to start"),
        ("flaky", "exit 1"),
    ] {
        let row = summary
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}"));
        assert!(row.contains(result), "{name}: {row}");
    }
    assert!(summary.contains("total: wall "), "{summary}");

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report written"),
    )
    .expect("report is JSON");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(report["cores"], cores);
    let wall_ms = report["wall_ms"].as_u64().expect("wall_ms");
    assert!(wall_ms >= 2500, "wall {wall_ms} ms, but mem sleeps 2.5 s");
    assert!(wall_ms < 30_000, "wall {wall_ms} ms");
    let jobs = report["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 9);
    for job in jobs {
        for key in [
            "name",
            "result",
            "exit_code",
            "signal",
            "elapsed_ms",
            "cpu_ms",
            "max_rss_kb",
            "restarts",
            "stdout_bytes",
            "stderr_bytes",
            "lines_dropped",
            "stages",
        ] {
            assert!(job.get(key).is_some(), "{}: no {key}", job["name"]);
        }
        for stage in job["stages"].as_array().expect("stages") {
            for key in ["argv", "pid", "exit_code", "signal"] {
                assert!(
                    stage.get(key).is_some(),
                    "{}: stage lacks {key}",
                    job["name"]
                );
            }
        }
        assert!(
            job["elapsed_ms"].as_u64().expect("elapsed") <= wall_ms,
            "{job}"
        );
    }

    let ok = job(&report, "ok");
    assert_eq!(ok["result"], "exited");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["signal"], Value::Null);
    assert_eq!(ok["stdout_bytes"], 6);
    assert_eq!(ok["stderr_bytes"], 0);
    assert_eq!(ok["restarts"], 0);
    assert_eq!(ok["lines_dropped"], 0);
    assert_eq!(
        ok["stages"][0]["argv"],
        serde_json::json!(["echo", "hello"])
    );
    assert!(ok["stages"][0]["pid"].as_u64().is_some());
    assert_eq!(ok["stages"][0]["exit_code"], 0);
    assert_eq!(ok["stages"][0]["signal"], Value::Null);

    let err = job(&report, "err");
    assert_eq!(
        (&err["result"], &err["exit_code"]),
        (&"exited".into(), &3.into())
    );
    assert_eq!(err["stderr_bytes"], 5);
    assert_eq!(err["stdout_bytes"], 0);

    let segv = job(&report, "segv");
    assert_eq!(segv["result"], "killed");
    assert_eq!(segv["signal"], "SIGSEGV");
    assert_eq!(segv["exit_code"], Value::Null);
    assert_eq!(segv["stages"][0]["signal"], "SIGSEGV");
    assert_eq!(segv["stages"][0]["exit_code"], Value::Null);

    let slow = job(&report, "slow");
    assert_eq!(slow["result"], "timed_out");
    assert_eq!(slow["signal"], "SIGTERM");
    let slow_ms = slow["elapsed_ms"].as_u64().expect("elapsed");
    assert!((200..5000).contains(&slow_ms), "slow ran {slow_ms} ms");

    let nope = job(&report, "nope");
    assert_eq!(nope["result"], "failed_to_start");
    assert_eq!(nope["stages"][0]["pid"], Value::Null);
    assert_eq!(nope["exit_code"], Value::Null);

    let flaky = job(&report, "flaky");
    assert_eq!(flaky["restarts"], 2);
    assert_eq!(flaky["exit_code"], 1);

    // scrollback = 1000, but headless keeps no scrollback: nothing dropped from one.
    let chatty = job(&report, "chatty");
    assert_eq!(chatty["lines_dropped"], 0);
    // seq 1 5000: 9*2 + 90*3 + 900*4 + 4001*5 bytes.
    assert_eq!(chatty["stdout_bytes"], 23_893);

    let mem = job(&report, "mem");
    assert_eq!(mem["result"], "exited");
    assert_eq!(mem["stdout_bytes"], 9);
    let stages = mem["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[0]["argv"][0], "/bin/sh");
    assert_eq!(
        stages[1]["argv"],
        serde_json::json!(["tail", "-c", "30000000"])
    );
    let mut pids: Vec<u64> = stages
        .iter()
        .map(|s| s["pid"].as_u64().expect("pid"))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "{stages:?}");
    assert!(stages.iter().all(|s| s["exit_code"] == 0), "{stages:?}");
    // tail holds 30 MB for 2.5 s: the sampled tree RSS must show it.
    let rss = mem["max_rss_kb"].as_u64().expect("rss");
    assert!(rss >= 25_000, "mem peak RSS {rss} KiB");
    assert!(rss < 1_000_000, "mem peak RSS {rss} KiB");

    let cpu = job(&report, "cpu");
    let cpu_ms = cpu["cpu_ms"].as_u64().expect("cpu_ms");
    let cpu_elapsed = cpu["elapsed_ms"].as_u64().expect("elapsed_ms");
    assert!(cpu_ms >= 100, "hashing 300 MB took {cpu_ms} ms of CPU");
    assert!(
        cpu_ms <= cpu_elapsed * cores as u64 + 500,
        "cpu {cpu_ms} ms in {cpu_elapsed} ms"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

#[test]
fn kill_others_on_fail() {
    let a = sleep_arg(31);
    let b = sleep_arg(32);
    let dir = tempdir();
    write_file(
        dir.path(),
        "k.toml",
        &format!(
            r#"
[[job]]
name = "long1"
cmd = ["sleep", "{a}"]

[[job]]
name = "long2"
pipeline = [["sleep", "{b}"], ["cat"]]

[[job]]
name = "boom"
shell = "sleep 0.3; exit 9"
"#
        ),
    );
    let started = Instant::now();
    let (status, stdout, stderr) = forkyard(
        &[
            "--headless",
            "--kill-others-on-fail",
            "--report",
            "r.json",
            "k.toml",
        ],
        dir.path(),
    );
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took < SLOW, "took {took:?}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).expect("r"))
            .expect("json");
    assert_eq!(job(&report, "boom")["exit_code"], 9);
    for name in ["long1", "long2"] {
        let j = job(&report, name);
        // Stopped because another job failed: "stopped" (it used to read as "killed").
        assert_eq!(j["result"], "stopped", "{j}");
        assert_eq!(j["signal"], "SIGTERM", "{j}");
        assert!(j["elapsed_ms"].as_u64().expect("ms") < 15_000, "{j}");
    }
    assert_eq!(pgrep_count(&sleep_pattern(&a)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&b)), 0);
}

/// Waits for a child with a deadline; kills it and panics if it does not exit.
fn wait_with_deadline(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: forkyard did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to a headless forkyard running a family of processes: children,
/// grandchildren, TERM-ignoring ones and one that left for its own session. forkyard
/// must exit with 128+signal after about one grace period, leaving nothing behind.
fn shutdown_on(signal: Signal, first_tag: u32) {
    let tags: Vec<String> = (first_tag..first_tag + 5).map(sleep_arg).collect();
    let patterns: Vec<String> = tags.iter().map(|t| sleep_pattern(t)).collect();
    let count = || patterns.iter().map(|p| pgrep_count(p)).sum::<usize>();
    let dir = tempdir();
    write_file(
        dir.path(),
        "family.toml",
        &format!(
            r#"
[settings]
grace = "1s"

[[job]]
name = "family"
shell = "sleep {t0} & (trap '' TERM; exec sleep {t1}) & wait"

[[job]]
name = "stubborn"
shell = "trap '' TERM; sleep {t2} & wait"

[[job]]
name = "escapee"
shell = "setsid sleep {t3} & wait"

[[job]]
name = "plain"
cmd = ["sleep", "{t4}"]
"#,
            t0 = tags[0],
            t1 = tags[1],
            t2 = tags[2],
            t3 = tags[3],
            t4 = tags[4],
        ),
    );
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "family.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start forkyard");
    let pid = Pid::from_raw(child.id() as i32);
    wait_until(SLOW, "all five sleeps to start", || count() == 5);
    // The escapee really left the job's session and group.
    let escapee = Command::new("pgrep")
        .args(["-f", &patterns[3]])
        .output()
        .expect("pgrep");
    let escapee: u32 = String::from_utf8_lossy(&escapee.stdout)
        .trim()
        .parse()
        .expect("one pid");
    let sid = nix::unistd::getsid(Some(Pid::from_raw(escapee as i32))).expect("sid");
    assert_eq!(sid.as_raw() as u32, escapee, "setsid did not take effect");

    let sent = Instant::now();
    kill(pid, signal).expect("signal forkyard");
    let status = wait_with_deadline(&mut child, SLOW, signal.as_str());
    let took = sent.elapsed();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(128 + signal as i32),
        "{signal}: {status:?}\n{stderr}"
    );
    // The TERM-ignoring ones need the SIGKILL after grace; nothing needs longer.
    assert!(
        took >= Duration::from_secs(1),
        "{signal}: exited after {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "{signal}: exited only after {took:?}\n{stderr}"
    );
    wait_until(Duration::from_secs(2), "every sleep to be gone", || {
        count() == 0
    });
    assert!(stderr.contains(signal.as_str()), "{stderr}");
}

#[test]
fn sigterm_stops_everything() {
    shutdown_on(Signal::SIGTERM, 40);
}

#[test]
fn sigint_stops_everything() {
    shutdown_on(Signal::SIGINT, 50);
}

#[test]
fn sighup_stops_everything() {
    shutdown_on(Signal::SIGHUP, 60);
}

/// 100 MB without a newline: forkyard's peak RSS stays small and every byte is printed,
/// split into 64 KiB lines.
#[test]
fn huge_line_keeps_memory_bounded() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "zeros.toml",
        r#"
[[job]]
name = "z"
cmd = ["head", "-c", "100000000", "/dev/zero"]
"#,
    );
    let out_path = dir.path().join("out.txt");
    #[allow(
        clippy::zombie_processes,
        reason = "reaped below with wait4, which also gives its rusage"
    )]
    let child = Command::new(forkyard_bin())
        .args(["--headless", "--no-summary", "zeros.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("out file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start forkyard");
    let pid = child.id() as libc::pid_t;
    // wait4 on this very pid: its rusage is forkyard's own (and its reaped children's).
    let deadline = Instant::now() + SLOW;
    let (status, max_rss_kb) = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: zeroed rusage is valid; the pointers refer to live locals.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4 failed");
        if reaped == pid {
            break (status, usage.ru_maxrss);
        }
        if Instant::now() >= deadline {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            panic!("forkyard did not finish 100 MB in {SLOW:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert!(
        max_rss_kb < 100 * 1024,
        "forkyard peaked at {max_rss_kb} KiB for a 100 MB line"
    );
    let out = std::fs::read(&out_path).expect("output");
    let zeros = out.iter().filter(|b| **b == 0).count();
    assert_eq!(zeros, 100_000_000, "bytes lost or added");
    let lines: Vec<&[u8]> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 1526);
    assert!(lines.iter().all(|l| l.starts_with(b"z | ")));
    assert!(lines.iter().all(|l| l.len() <= 4 + 64 * 1024));
}

/// A second signal does not wait for grace: every job is SIGKILLed at once.
#[test]
fn second_signal_kills_at_once() {
    let arg = sleep_arg(70);
    let pattern = sleep_pattern(&arg);
    let dir = tempdir();
    write_file(
        dir.path(),
        "stubborn.toml",
        &format!(
            r#"
[[job]]
name = "stubborn"
shell = "trap '' TERM; sleep {arg} & wait"
grace = "60s"
"#
        ),
    );
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "stubborn.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start forkyard");
    let pid = Pid::from_raw(child.id() as i32);
    wait_until(SLOW, "the sleep to start", || pgrep_count(&pattern) == 1);
    kill(pid, Signal::SIGTERM).expect("first SIGTERM");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    wait_until(SLOW, "forkyard to start stopping", || {
        stderr().contains("stopping every job")
    });
    let sent = Instant::now();
    kill(pid, Signal::SIGTERM).expect("second SIGTERM");
    let status = wait_with_deadline(&mut child, SLOW, "second SIGTERM");
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "waited {:?} (grace is 60 s)",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(143), "{}", stderr());
    assert!(stderr().contains("SIGKILL"), "{}", stderr());
    assert_eq!(pgrep_count(&pattern), 0);
}

/// `forkyard | head -3`: when the reader goes away forkyard behaves like a program killed
/// by SIGPIPE (status 141) but stops its jobs first, leaving nothing behind.
#[test]
fn closed_stdout_stops_every_job() {
    let dir = tempdir();
    let marker = sleep_arg(80);
    write_file(
        dir.path(),
        "pipe.toml",
        &format!(
            r#"
[[job]]
name = "flood"
cmd = ["yes"]

[[job]]
name = "idle"
cmd = ["sleep", "{marker}"]
"#
        ),
    );
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "pipe.toml"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start forkyard");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
    assert!(
        first.starts_with(b"flood | y\n"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    wait_until(SLOW, "the idle job to start", || {
        pgrep_count(&sleep_pattern(&marker)) == 1
    });
    drop(stdout);
    let status = wait_with_deadline(&mut child, SLOW, "closed stdout");
    assert_eq!(status.code(), Some(141));
    assert_eq!(
        pgrep_count(&sleep_pattern(&marker)),
        0,
        "the idle job survived"
    );
}

/// `settings.headless_timeout`: once it runs out, every job still running is stopped as
/// timed out (TERM-ignoring ones after their grace), a queued one is not started, a job
/// with `restart = "always"` is not started again, and the run ends with its summary.
#[test]
fn headless_timeout_ends_the_run() {
    let sleeper = sleep_arg(90);
    let stubborn = sleep_arg(91);
    let dir = tempdir();
    write_file(
        dir.path(),
        "deadline.toml",
        &format!(
            r#"
[settings]
headless_timeout = "1s"
grace = "300ms"

[[job]]
name = "quick"
cmd = ["echo", "done"]

[[job]]
name = "sleeper"
cmd = ["sleep", "{sleeper}"]

[[job]]
name = "stubborn"
shell = "trap '' TERM; sleep {stubborn} & wait"

[[job]]
name = "service"
shell = "sleep 30"
restart = "always"
"#
        ),
    );
    let started = Instant::now();
    let (status, stdout, stderr) = forkyard(
        &["--headless", "--report", "r.json", "deadline.toml"],
        dir.path(),
    );
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took >= Duration::from_secs(1), "ended after {took:?}");
    assert!(took < Duration::from_secs(8), "ended after {took:?}");
    assert!(
        stderr.contains("headless_timeout (1s) expired: stopping 3 jobs still running"),
        "{stderr}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).expect("r"))
            .expect("json");
    assert_eq!(job(&report, "quick")["result"], "exited");
    for name in ["sleeper", "stubborn", "service"] {
        let j = job(&report, name);
        assert_eq!(j["result"], "timed_out", "{j}");
        assert_eq!(j["restarts"], 0, "{j}");
    }
    assert_eq!(job(&report, "stubborn")["signal"], "SIGKILL");
    assert!(
        stdout.contains("forkyard summary: 4 jobs, 1 succeeded, 3 failed"),
        "{stdout}"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&sleeper)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&stubborn)), 0);

    // With -j 1, a job still queued at the deadline is not started at all.
    write_file(
        dir.path(),
        "queue.toml",
        &format!(
            r#"
[settings]
headless_timeout = "500ms"

[[job]]
name = "first"
cmd = ["sleep", "{sleeper}"]

[[job]]
name = "queued"
cmd = ["echo", "never"]
"#
        ),
    );
    let (status, stdout, stderr) = forkyard(
        &["--headless", "-j", "1", "--report", "q.json", "queue.toml"],
        dir.path(),
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("q.json")).expect("q"))
            .expect("json");
    assert_eq!(job(&report, "first")["result"], "timed_out");
    assert_eq!(job(&report, "queued")["result"], "not_started");
    assert!(!stdout.contains("never"), "{stdout}");
    assert_eq!(pgrep_count(&sleep_pattern(&sleeper)), 0);
}

/// The largest `-j` (and `settings.max_parallel`) is accepted, means no limit, and is
/// shown as given.
#[test]
fn the_largest_parallelism_limit_works() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "huge.toml",
        r#"
[settings]
max_parallel = 9223372036854775807

[[job]]
name = "a"
shell = "sleep 0.3"

[[job]]
name = "b"
shell = "sleep 0.3"
"#,
    );
    let (status, stdout, stderr) = forkyard(&["check", "huge.toml"], dir.path());
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("max_parallel=9223372036854775807"),
        "{stdout}"
    );
    for args in [
        &["--headless", "--report", "r.json", "huge.toml"][..],
        &[
            "--headless",
            "-j",
            "18446744073709551615",
            "--report",
            "r.json",
            "huge.toml",
        ][..],
    ] {
        let (status, stdout, stderr) = forkyard(args, dir.path());
        assert_eq!(status.code(), Some(0), "{args:?}: {stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("r.json")).expect("report"),
        )
        .expect("json");
        // Both ran at once: the run took about one sleep, not two.
        assert!(report["wall_ms"].as_u64().unwrap() < 600, "{report}");
        let want = if args.contains(&"-j") {
            u64::MAX
        } else {
            i64::MAX as u64
        };
        assert_eq!(report["max_parallel"].as_u64(), Some(want));
    }
}
