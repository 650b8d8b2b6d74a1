//! `forkyard ctl` against real runs: the live status against the final report, every
//! control, events in order, logs, reload, sessions (`up`, `down`, `list-sessions`,
//! stale sockets) and the exit statuses (0 ok, 1 failed, 2 usage, 3 no such session).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;
#[path = "control_util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{pgrep_count, sleep_arg, sleep_pattern};
use util::{Background, Conn, DEADLINE, Scratch};

/// Lines a background process printed, as they arrive.
fn collect_lines(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lock").push(line);
        }
    });
    lines
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect_when_ready(path: &std::path::Path) -> Conn {
    wait_for("the socket", || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    });
    Conn::open(path)
}

#[test]
fn ctl_drives_a_headless_run_and_its_status_is_the_report() {
    let scratch = Scratch::new();
    let marks: Vec<String> = (0..5).map(sleep_arg).collect();
    let config = scratch.write(
        "hl.toml",
        &format!(
            r#"
[[job]]
name = "quick"
shell = "echo out; echo err >&2"
[[job]]
name = "fails"
cmd = ["sh", "-c", "exit 3"]
[[job]]
name = "long"
cmd = ["sleep", "{0}"]
[[job]]
name = "stubborn"
shell = "trap '' TERM; exec sleep {1}"
grace = "20s"
[[job]]
name = "again"
cmd = ["sleep", "{2}"]
[[job]]
name = "waited"
cmd = ["sleep", "{3}"]
[[job]]
name = "holder"
cmd = ["sleep", "{4}"]
"#,
            marks[0], marks[1], marks[2], marks[3], marks[4]
        ),
    );
    let report_path = scratch.path().join("report.json");
    let output = std::fs::File::create(scratch.path().join("stdout")).expect("stdout file");
    let mut run = scratch.command(&[
        "--headless",
        "--no-summary",
        "--name",
        "hl",
        "--report",
        &report_path.display().to_string(),
        &config.display().to_string(),
    ]);
    run.stdout(output).stderr(Stdio::null());
    let mut run = Background(run.spawn().expect("start the run"));
    let mut events = scratch.command(&["ctl", "--name", "hl", "events", "--json"]);
    events.stdout(Stdio::piped()).stderr(Stdio::null());
    connect_when_ready(&scratch.socket("hl"));
    let mut events = Background(events.spawn().expect("start events"));
    let lines = collect_lines(&mut events.0);
    wait_for("the initial states", || {
        lines.lock().expect("lock").len() >= 7
    });
    for (i, mark) in marks.iter().enumerate() {
        wait_for(&format!("sleep {i}"), || {
            pgrep_count(&sleep_pattern(mark)) == 1
        });
    }

    // stop: the stop signal, and the reply once it has stopped.
    let out = scratch.ctl("hl", &["stop", "long"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("long: stopped"), "{out:?}");
    assert!(out.stderr.contains("sent SIGTERM to long"), "{out:?}");
    assert_eq!(pgrep_count(&sleep_pattern(&marks[0])), 0);

    // kill: at once, whatever the grace; a second kill is refused (exit 1).
    let started = Instant::now();
    let out = scratch.ctl("hl", &["kill", "stubborn"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("stubborn: stopped"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = scratch.ctl("hl", &["kill", "stubborn"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot kill `stubborn`: not running"),
        "{out:?}"
    );

    // restart: a new run with a new pid.
    let (_, before) = scratch.ctl_json("hl", &["status"]);
    let pid = |report: &Value, name: &str| {
        report["jobs"]
            .as_array()
            .and_then(|j| j.iter().find(|j| j["name"] == name))
            .map(|j| j["stages"][0]["pid"].clone())
    };
    let out = scratch.ctl("hl", &["restart", "again"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("again: running (pid"), "{out:?}");
    let (_, after) = scratch.ctl_json("hl", &["status"]);
    assert_ne!(pid(&before, "again"), pid(&after, "again"));
    let again = after["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["name"] == "again"))
        .cloned()
        .expect("again");
    assert_eq!(again["restarts"], 1);
    assert_eq!(again["result"], "running");

    // wait: a deadline that hits stops the job and fails (exit 1); a job that succeeded
    // is 0, one that failed is 1.
    let out = scratch.ctl("hl", &["wait", "waited", "--deadline", "300ms"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("waited: SIGTERM (stopped at the deadline)"),
        "{out:?}"
    );
    let out = scratch.ctl("hl", &["wait", "quick"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "quick: exited 0"),
        "{out:?}"
    );
    let out = scratch.ctl("hl", &["wait", "fails"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("fails: exited 3"), "{out:?}");

    // Usage errors are 2, an unknown job 1, an unknown session 3.
    let out = scratch.ctl("hl", &["stop", "nope"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no job named \"nope\""), "{out:?}");
    assert_eq!(scratch.ctl("hl", &["signal", "again", "NOPE"]).code, 2);
    assert_eq!(scratch.ctl("hl", &["frobnicate"]).code, 2);
    let out = scratch.ctl("elsewhere", &["status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("no session named `elsewhere`"),
        "{out:?}"
    );
    let out = scratch.run(&["ctl", "--socket", "/nonexistent/x.sock", "status"]);
    assert_eq!(out.code, 3, "{out:?}");

    // Everything but the holder settles; then the live status is what the report says.
    assert_eq!(scratch.ctl("hl", &["kill", "again"]).code, 0);
    let human = scratch.ctl("hl", &["status"]);
    assert_eq!(human.code, 0, "{human:?}");
    for (name, state) in [
        ("quick", "exited 0"),
        ("fails", "exited 3"),
        ("long", "stopped"),
        ("stubborn", "stopped"),
        ("holder", "running"),
    ] {
        assert!(
            human
                .stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(state)),
            "{name} {state}: {}",
            human.stdout
        );
    }
    let (code, live) = scratch.ctl_json("hl", &["status"]);
    assert_eq!(code, 0);
    let out = scratch.ctl("hl", &["stop", "holder"]);
    assert_eq!(out.code, 0, "{out:?}");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = run.0.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "the run did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "a job failed");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("report json");
    let names = |r: &Value| -> Vec<Value> {
        r["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["name"].clone())
            .collect()
    };
    assert_eq!(names(&live), names(&report));
    for (live_job, final_job) in live["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .zip(report["jobs"].as_array().expect("jobs"))
    {
        if live_job["name"] == "holder" {
            assert_eq!(live_job["result"], "running");
            assert_eq!(final_job["result"], "stopped");
            continue;
        }
        // Settled jobs: the same object, field for field.
        assert_eq!(live_job, final_job);
    }
    let same_keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(same_keys(&live), same_keys(&report));
    assert_eq!(pgrep_count(&sleep_pattern(&marks[4])), 0);

    // The events stream ends with the session, every change in order.
    let start = Instant::now();
    while events.0.try_wait().expect("wait").is_none() {
        assert!(
            start.elapsed() < DEADLINE,
            "events did not end with the session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<Value> = lines
        .lock()
        .expect("lock")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.last().map(|l| l["event"].clone()), Some("end".into()));
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let of = |job: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["job"] == job)
            .map(|l| match l["event"].as_str() {
                Some("notice") => format!("notice: {}", l["text"].as_str().unwrap_or("")),
                _ => l["state"].as_str().unwrap_or("?").to_string(),
            })
            .collect()
    };
    let long = of("long");
    let at = |seen: &[String], what: &str| {
        seen.iter()
            .position(|s| s.starts_with(what))
            .unwrap_or_else(|| panic!("no {what} in {seen:?}"))
    };
    assert!(
        at(&long, "running") < at(&long, "notice: sent SIGTERM to long"),
        "{long:?}"
    );
    assert!(
        at(&long, "notice: sent SIGTERM to long") < at(&long, "stopping"),
        "{long:?}"
    );
    assert!(at(&long, "stopping") < at(&long, "finished"), "{long:?}");
    let again = of("again");
    let restarted = again
        .iter()
        .rposition(|s| s == "running")
        .expect("running again");
    assert!(at(&again, "stopping") < restarted, "{again:?}");
    let runs: Vec<u64> = lines
        .iter()
        .filter(|l| l["job"] == "again" && l["event"] == "job")
        .filter_map(|l| l["runs"].as_u64())
        .collect();
    assert!(
        runs.windows(2).all(|w| w[0] <= w[1]) && runs.contains(&2),
        "{runs:?}"
    );
}

#[test]
fn logs_give_the_scrollback_and_follow_it() {
    let scratch = Scratch::new();
    let mark = sleep_arg(10);
    let session = scratch.up(
        "logs",
        &format!(
            r#"
[[job]]
name = "talk"
shell = "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; while [ ! -e go ]; do sleep 0.02; done; echo later; exec sleep {mark}"
"#
        ),
    );
    session.wait_job("talk", "past its first lines", |j| {
        j["stdout_bytes"].as_u64().unwrap_or(0) >= 35 && j["stderr_bytes"].as_u64() == Some(5)
    });
    let out = session.ctl(&["logs", "talk"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("line 1\nline 2\nline 3\nline 4\nline 5\n"),
        "{out:?}"
    );
    assert_eq!(out.stderr.trim(), "oops");
    let out = session.ctl(&["logs", "talk", "--tail", "2"]);
    assert_eq!(
        out.stdout.lines().count() + out.stderr.lines().count(),
        2,
        "{out:?}"
    );
    assert!(!out.stdout.contains("line 3"), "{out:?}");
    let out = session.ctl(&["--json", "logs", "talk", "--tail", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let json: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(json.len(), 2, "{json:?}");
    assert!(
        json[0]["text"].is_string() && json[0]["seq"].is_u64(),
        "{json:?}"
    );
    assert_eq!(json[1]["end"], true, "{json:?}");
    let (code, _) = session.ctl_json(&["logs", "nope"]);
    assert_eq!(code, 1);

    let mut follow = scratch.command(&["ctl", "--name", "logs", "logs", "talk", "--follow"]);
    follow.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut follow = Background(follow.spawn().expect("follow"));
    let lines = collect_lines(&mut follow.0);
    wait_for("the scrollback", || lines.lock().expect("lock").len() >= 5);
    scratch.write("go", "");
    wait_for("a line written after following began", || {
        lines.lock().expect("lock").iter().any(|l| l == "later")
    });
    let seen = lines.lock().expect("lock").clone();
    assert_eq!(seen.first().map(String::as_str), Some("line 1"), "{seen:?}");

    // A plain headless run keeps no scrollback: logs says so.
    let config = scratch.write(
        "plain.toml",
        &format!(
            "[[job]]\nname = \"p\"\ncmd = [\"sleep\", \"{}\"]\n",
            sleep_arg(11)
        ),
    );
    let mut plain = scratch.command(&[
        "--headless",
        "--name",
        "plain",
        &config.display().to_string(),
    ]);
    plain.stdout(Stdio::null()).stderr(Stdio::null());
    let _plain = Background(plain.spawn().expect("plain run"));
    connect_when_ready(&scratch.socket("plain"));
    let out = scratch.ctl("plain", &["logs", "p"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("keeps no scrollback"), "{out:?}");
    assert_eq!(scratch.ctl("plain", &["kill", "p"]).code, 0);
}

#[test]
fn reload_starts_new_jobs_stops_removed_ones_and_restarts_changed_ones() {
    let scratch = Scratch::new();
    let m: Vec<String> = (20..25).map(sleep_arg).collect();
    let job = |name: &str, mark: &str| {
        format!("[[job]]\nname = \"{name}\"\ncmd = [\"sleep\", \"{mark}\"]\n")
    };
    let first = [job("keep", &m[0]), job("gone", &m[1]), job("change", &m[2])].concat();
    let config = scratch.write("reload.toml", &first);
    let mut session = scratch.up_file("reload", &config, &[]);
    for mark in &m[..3] {
        wait_for(mark, || pgrep_count(&sleep_pattern(mark)) == 1);
    }
    let keep_pid = session.job("keep")["stages"][0]["pid"].clone();

    // A config that does not parse changes nothing, and says where it is wrong.
    scratch.write("reload.toml", &format!("{first}\nbroken =\n"));
    let out = session.ctl(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("reload.toml:"), "{out:?}");
    assert_eq!(pgrep_count(&sleep_pattern(&m[1])), 1);

    let second = [job("keep", &m[0]), job("change", &m[3]), job("new", &m[4])].concat();
    scratch.write("reload.toml", &second);
    let (code, reply) = session.ctl_json(&["reload"]);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["added"], serde_json::json!(["new"]));
    assert_eq!(reply["removed"], serde_json::json!(["gone"]));
    assert_eq!(reply["changed"], serde_json::json!(["change"]));
    assert_eq!(reply["unchanged"], serde_json::json!(["keep"]));
    for (mark, count) in [(&m[1], 0), (&m[2], 0), (&m[3], 1), (&m[4], 1), (&m[0], 1)] {
        wait_for(&format!("{mark} x{count}"), || {
            pgrep_count(&sleep_pattern(mark)) == count
        });
    }
    // The job left alone was not restarted.
    assert_eq!(session.job("keep")["stages"][0]["pid"], keep_pid);
    let report = session.report();
    let names: Vec<&str> = report["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names, ["keep", "change", "new"]);
    assert_eq!(session.job("change")["stages"][0]["argv"][1], m[3].as_str());

    let out = session.down();
    assert_eq!(out.code, 0, "{out:?}");
    for mark in &m {
        assert_eq!(pgrep_count(&sleep_pattern(mark)), 0, "{mark} left");
    }
    assert!(!scratch.socket("reload").exists());
}

/// Dependencies survive a reload: a new job that depends on a changed one waits for its
/// new version, and one that depends on a job it replaced follows the new version.
#[test]
fn reload_keeps_dependencies_by_name() {
    let scratch = Scratch::new();
    let m: Vec<String> = (40..45).map(sleep_arg).collect();
    let first = format!(
        "[[job]]\nname = \"db\"\ncmd = [\"sleep\", \"{}\"]\n\n\
         [[job]]\nname = \"api\"\ncmd = [\"sleep\", \"{}\"]\ndepends_on = [\"db\"]\n",
        m[0], m[1]
    );
    let config = scratch.write("deps.toml", &first);
    let mut session = scratch.up_file("deps", &config, &[]);
    for mark in &m[..2] {
        wait_for(mark, || pgrep_count(&sleep_pattern(mark)) == 1);
    }
    // db changes (a new version replaces it); worker is new and depends on db being
    // ready; api is unchanged and keeps running.
    let second = format!(
        "[[job]]\nname = \"db\"\ncmd = [\"sleep\", \"{}\"]\n\n\
         [[job]]\nname = \"api\"\ncmd = [\"sleep\", \"{}\"]\ndepends_on = [\"db\"]\n\n\
         [[job]]\nname = \"worker\"\ncmd = [\"sleep\", \"{}\"]\ndepends_on = [\"db\"]\n",
        m[2], m[1], m[3]
    );
    scratch.write("deps.toml", &second);
    let (code, reply) = session.ctl_json(&["reload"]);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["changed"], serde_json::json!(["db"]));
    assert_eq!(reply["added"], serde_json::json!(["worker"]));
    for (mark, count) in [(&m[0], 0), (&m[2], 1), (&m[3], 1), (&m[1], 1)] {
        wait_for(&format!("{mark} x{count}"), || {
            pgrep_count(&sleep_pattern(mark)) == count
        });
    }
    assert_eq!(session.job("worker")["result"], "running");
    let out = session.down();
    assert_eq!(out.code, 0, "{out:?}");
    for mark in &m {
        assert_eq!(pgrep_count(&sleep_pattern(mark)), 0, "{mark} left");
    }
}

#[test]
fn sessions_are_listed_named_and_stale_ones_cleaned() {
    let scratch = Scratch::new();
    let mark = sleep_arg(30);
    let toml = format!("[[job]]\nname = \"s\"\ncmd = [\"sleep\", \"{mark}\"]\n");
    let mut one = scratch.up("one", &toml);
    // The same name twice: refused, and the first one is untouched.
    let config = scratch.path().join("one.toml").display().to_string();
    let out = scratch.run(&["up", "--name", "one", &config]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already running"), "{out:?}");
    // Without --name, with two sessions running, ctl must be told which.
    let _two = scratch.up("two", &toml.replace("\"s\"", "\"t\""));
    let out = scratch.run(&["ctl", "status"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("one, two"), "{out:?}");
    let out = scratch.run(&["ctl", "list-sessions"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out:?}");
    assert!(
        lines[1].starts_with("one ") && lines[2].starts_with("two "),
        "{out:?}"
    );

    // A socket whose server is gone is stale: not listed, removed, and its name is free.
    let stale = scratch.socket("ghost");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let out = scratch.run(&["ctl", "list-sessions", "--json"]);
    let names: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["session"].clone())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert!(!stale.exists(), "the stale socket is removed");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let _ghost = scratch.up("ghost", &toml.replace("\"s\"", "\"g\""));

    let out = one.down();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("session `one` stopped"), "{out:?}");
    assert_eq!(scratch.run(&["down", "one"]).code, 3);
    assert_eq!(scratch.ctl("one", &["status"]).code, 3);
}
