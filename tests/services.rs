//! Long-running services: dependencies, readiness and liveness probes, service results,
//! `exit_with`, restart backoff and markers, shutdown order, `-j` order. Every test runs
//! real processes (Python's `http.server`, real listeners, real probes) and waits on
//! events or output with deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{SLOW, config_in, forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir};
use forkyard::config::Config;
use forkyard::headless::{HeadlessOptions, PrintStyle};
use forkyard::supervisor::{
    Control, Event, JobState, JobStatus, Outcome, Readiness, ResultClass, Supervisor,
    SupervisorOptions,
};
use nix::sys::signal::Signal;
use tokio::sync::mpsc::UnboundedReceiver;

/// A free TCP port on 127.0.0.1 (bound and released: nothing listens on it now).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A supervisor and the latest status of each job, with every status change and its
/// arrival time; unlike the common harness it keeps following events during shutdown.
struct Run {
    supervisor: Option<Supervisor>,
    events: UnboundedReceiver<Event>,
    names: Vec<String>,
    status: Vec<JobStatus>,
    history: Vec<(Instant, usize, JobStatus)>,
    notices: Vec<String>,
}

impl Run {
    fn start(config: &Config) -> Run {
        Self::start_with(config, SupervisorOptions::default())
    }

    fn start_with(config: &Config, options: SupervisorOptions) -> Run {
        let (supervisor, events) = Supervisor::start(config, options).expect("start");
        Run {
            names: supervisor
                .jobs()
                .iter()
                .map(|j| j.spec.name.clone())
                .collect(),
            status: supervisor
                .jobs()
                .iter()
                .map(|j| j.initial.clone())
                .collect(),
            supervisor: Some(supervisor),
            events,
            history: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn id(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("job")
    }

    fn status(&self, name: &str) -> &JobStatus {
        &self.status[self.id(name)]
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Job { id, status } => {
                self.history.push((Instant::now(), id, status.clone()));
                self.status[id] = status;
            }
            Event::Notice(notice) => self.notices.push(notice.text),
            Event::Sample { .. } | Event::Machine(_) | Event::Tree(_) => {}
        }
    }

    async fn wait(
        &mut self,
        name: &str,
        what: &str,
        condition: impl Fn(&JobStatus) -> bool,
    ) -> JobStatus {
        let id = self.id(name);
        let deadline = Instant::now() + SLOW;
        loop {
            if condition(&self.status[id]) {
                return self.status[id].clone();
            }
            match tokio::time::timeout_at(deadline.into(), self.events.recv()).await {
                Ok(Some(event)) => self.apply(event),
                _ => panic!(
                    "{name}: no {what} within {SLOW:?}; status {:#?}; notices {:#?}",
                    self.status[id], self.notices
                ),
            }
        }
    }

    async fn finished(&mut self, name: &str) -> Outcome {
        self.wait(name, "end", |s| s.is_settled() && s.outcome().is_some())
            .await
            .outcome()
            .cloned()
            .expect("outcome")
    }

    /// Statuses of one job, in order.
    fn history_of(&self, name: &str) -> Vec<(Instant, JobStatus)> {
        let id = self.id(name);
        self.history
            .iter()
            .filter(|(_, i, _)| *i == id)
            .map(|(at, _, s)| (*at, s.clone()))
            .collect()
    }

    /// When the job's first run started (from its status).
    fn started(&self, name: &str) -> Instant {
        self.history_of(name)
            .iter()
            .find_map(|(_, s)| s.started_at)
            .unwrap_or_else(|| panic!("{name} never started"))
    }

    /// Shuts down, following events until it is over.
    async fn shutdown(&mut self) {
        let supervisor = self.supervisor.take().expect("running");
        let shutdown = supervisor.shutdown();
        tokio::pin!(shutdown);
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(event) = self.events.recv() => self.apply(event),
                _ = &mut deadline => panic!("shutdown hung"),
            }
        }
        while let Ok(event) = self.events.try_recv() {
            self.apply(event);
        }
    }
}

/// A job ready behind an `http` probe (Python's http.server), and a dependent that starts
/// only once it is ready and fetches from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probe_gates_a_dependent_on_a_python_server() {
    let port = free_port();
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "client"
cmd = ["python3", "-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').status)"]
depends_on = ["web"]

[[job]]
name = "web"
cmd = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ready = {{ http = "http://127.0.0.1:{port}/", status = 200, interval = "100ms" }}
"#
        ),
    );
    let mut run = Run::start(&config);
    // Before the server is ready, the client waits and says for what.
    let waiting = run.status("client").clone();
    assert_eq!(
        forkyard::fmt::job_state(&waiting, Instant::now()),
        "waiting for web (ready)"
    );
    assert_eq!(run.finished("client").await, Outcome::Exited { code: 0 });
    let web = run.status("web").clone();
    let Readiness::Ready { after } = web.readiness else {
        panic!("web not ready: {web:#?}");
    };
    assert!(matches!(web.state, JobState::Running), "{web:#?}");
    assert!(forkyard::fmt::job_state(&web, Instant::now()).starts_with("ready ("));
    // The client started after web was ready, never before.
    assert!(run.started("client") >= web.started_at.expect("web started") + after);
    assert!(
        run.history_of("web").iter().any(
            |(_, s)| s.readiness == Readiness::Starting && matches!(s.state, JobState::Running)
        )
    );
    run.shutdown().await;
    assert_eq!(run.status("web").result(), Some(ResultClass::Stopped));
}

/// A `tcp` probe against a listener that opens only after a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_probe_waits_for_a_listener_that_opens_after_a_second() {
    let port = free_port();
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "late"
cmd = ["python3", "-c", "import socket, time\ntime.sleep(1)\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', {port}))\ns.listen()\nprint('listening', flush=True)\nwhile True:\n    s.accept()[0].close()"]
ready = {{ tcp = "127.0.0.1:{port}", interval = "100ms" }}

[[job]]
name = "after"
cmd = ["true"]
depends_on = {{ late = "ready" }}
"#
        ),
    );
    let mut run = Run::start(&config);
    assert_eq!(run.finished("after").await, Outcome::Exited { code: 0 });
    let late = run.status("late").clone();
    let Readiness::Ready { after } = late.readiness else {
        panic!("not ready: {late:#?}");
    };
    assert!(after >= Duration::from_secs(1), "ready after {after:?}");
    // While it was starting the probe's failures were shown.
    assert!(
        run.history_of("late").iter().any(|(_, s)| s
            .probe_failure
            .as_deref()
            .is_some_and(|f| f.contains("connection refused"))),
        "{:#?}",
        run.history_of("late")
    );
    assert!(run.started("after") >= late.started_at.expect("started") + after);
    run.shutdown().await;
}

/// A `log` probe sees lines from the drains even when no output is kept (headless).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_probe_reads_lines_without_a_buffer() {
    let arg = sleep_arg(40);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "server"
shell = '''echo booting; sleep 0.5; printf '\033[32mserver ready on 8080\033[0m\n' >&2; exec sleep {arg}'''
ready = {{ log = "^server ready on [0-9]+$" }}

[[job]]
name = "user"
cmd = ["true"]
depends_on = ["server"]
"#
        ),
    );
    let mut run = Run::start_with(
        &config,
        SupervisorOptions {
            discard_output: true,
            ..SupervisorOptions::default()
        },
    );
    assert_eq!(run.finished("user").await, Outcome::Exited { code: 0 });
    let Readiness::Ready { after } = run.status("server").readiness else {
        panic!("not ready");
    };
    assert!(after >= Duration::from_millis(450), "ready after {after:?}");
    run.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

/// An `exec` probe: ready when a command exits 0; a probe that hangs is killed at its
/// timeout with everything it started, and gives up after `retries`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_pass_time_out_and_leave_nothing_behind() {
    let job_arg = sleep_arg(41);
    let probe_arg = sleep_arg(42);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "flagged"
shell = "sleep 0.5; touch ready.flag; exec sleep {job_arg}"
cwd = "."
ready = {{ exec = ["test", "-e", "ready.flag"], interval = "100ms" }}

[[job]]
name = "hung"
shell = "exec sleep {job_arg}"
ready = {{ exec = ["sh", "-c", "sleep {probe_arg} & sleep {probe_arg}"], timeout = "300ms", interval = "100ms", retries = 2 }}

[[job]]
name = "after-hung"
cmd = ["true"]
depends_on = ["hung"]
"#
        ),
    );
    let mut run = Run::start(&config);
    run.wait("flagged", "readiness", |s| {
        matches!(s.readiness, Readiness::Ready { .. })
    })
    .await;
    let Readiness::Ready { after } = run.status("flagged").readiness else {
        unreachable!()
    };
    assert!(after >= Duration::from_millis(500), "ready after {after:?}");

    let hung = run.finished("hung").await;
    let Outcome::Unhealthy { reason, .. } = &hung else {
        panic!("{hung:?}");
    };
    assert!(reason.contains("not ready after 2 checks"), "{reason}");
    assert!(reason.contains("did not exit within 300ms"), "{reason}");
    assert_eq!(hung.class(), ResultClass::Failed);
    // Its dependent can never start.
    let skipped = run.finished("after-hung").await;
    assert!(
        matches!(&skipped, Outcome::Skipped { reason } if reason.starts_with("hung failed")),
        "{skipped:?}"
    );
    // The probes' processes (and the one each started in the background) are gone.
    assert_eq!(pgrep_count(&sleep_pattern(&probe_arg)), 0);
    run.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&job_arg)), 0);
}

/// A dependency that fails skips what depends on it (and what depends on that), with the
/// reason; an unrelated job still runs; the run fails only for the real failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_skips_its_dependents() {
    let dir = tempdir();
    let report = dir.path().join("report.json");
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "migrate"
shell = "echo migrating; exit 2"

[[job]]
name = "app"
cmd = ["echo", "never"]
depends_on = { migrate = "succeeded" }

[[job]]
name = "smoke"
cmd = ["echo", "never either"]
depends_on = { app = "started" }

[[job]]
name = "unrelated"
cmd = ["echo", "fine"]
"#,
    );
    let out = common::SharedVec::default();
    let result = forkyard::headless::run_with_output(
        &config,
        &HeadlessOptions {
            report: Some(report.clone()),
            ..HeadlessOptions::default()
        },
        out.clone(),
        PrintStyle {
            color: false,
            sanitize: false,
            timestamps: false,
        },
    )
    .await
    .expect("run");
    let text = out.text();
    assert_eq!(result.exit_code, 1, "{text}");
    assert!(!text.contains("never"), "{text}");
    assert!(text.contains("unrelated | fine"), "{text}");
    assert!(
        text.contains("forkyard summary: 4 jobs, 1 succeeded, 1 failed, 2 skipped"),
        "{text}"
    );
    assert!(text.contains("skipped: migrate failed: exit 2"), "{text}");
    assert!(text.contains("skipped: app was skipped"), "{text}");
    let jobs = &result.report.jobs;
    let by_name = |name: &str| jobs.iter().find(|j| j.name == name).expect("job");
    assert_eq!(by_name("app").status, "skipped");
    assert_eq!(by_name("app").result, "skipped");
    assert_eq!(
        by_name("app").reason.as_deref(),
        Some("migrate failed: exit 2")
    );
    assert_eq!(by_name("migrate").status, "failed");
    assert_eq!(by_name("unrelated").status, "succeeded");
    forkyard::report::write(&result.report, &report).expect("write");
    let json = std::fs::read_to_string(&report).expect("report");
    assert!(json.contains("\"status\": \"skipped\""), "{json}");
}

/// Failing liveness checks stop the job, record why, and its policy restarts it (with a
/// marker line in its output); the restarted run stays alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_failure_restarts_the_job() {
    let arg = sleep_arg(43);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "svc"
shell = "if [ -e first.done ]; then touch alive.flag; else touch first.done; fi; exec sleep {arg}"
cwd = "."
alive = {{ exec = ["test", "-e", "alive.flag"], interval = "100ms", failures = 2 }}
restart = "on-failure"
"#
        ),
    );
    let mut run = Run::start(&config);
    let restarted = run
        .wait("svc", "a second run", |s| {
            s.runs == 2 && matches!(s.state, JobState::Running)
        })
        .await;
    assert_eq!(restarted.restarts, 1);
    let first_end = run
        .history_of("svc")
        .into_iter()
        .find_map(|(_, s)| s.outcome().cloned())
        .expect("the first run ended");
    let Outcome::Unhealthy { reason, signal, .. } = &first_end else {
        panic!("{first_end:?}");
    };
    assert!(reason.contains("not alive"), "{reason}");
    assert!(reason.contains("2 checks in a row"), "{reason}");
    assert_eq!(*signal, Some(Signal::SIGTERM));
    assert!(
        run.notices.iter().any(|n| n.contains("svc: not alive")),
        "{:#?}",
        run.notices
    );
    run.shutdown().await;
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
}

/// Shutdown stops dependents before what they depend on, each with its own stop signal;
/// an unrelated job stops at once, in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_dependents_first() {
    let arg = sleep_arg(44);
    let dir = tempdir();
    // Each link of the chain takes a while to stop, so an order would show.
    common::write_file(
        dir.path(),
        "stopper.py",
        "import signal, sys, time\n\
         def stop(*_):\n    time.sleep(0.4)\n    sys.exit(0)\n\
         signal.signal(getattr(signal, sys.argv[1]), stop)\n\
         print('up', flush=True)\n\
         while True:\n    time.sleep(1000)\n",
    );
    let config = config_in(
        dir.path(),
        &format!(
            r#"
[[job]]
name = "db"
cmd = ["python3", "stopper.py", "SIGTERM", "{arg}"]
cwd = "."
ready = {{ log = "^up$" }}

[[job]]
name = "web"
cmd = ["python3", "stopper.py", "SIGINT", "{arg}"]
cwd = "."
ready = {{ log = "^up$" }}
stop_signal = "INT"
depends_on = {{ db = "started" }}

[[job]]
name = "app"
cmd = ["python3", "stopper.py", "SIGTERM", "{arg}"]
cwd = "."
ready = {{ log = "^up$" }}
depends_on = ["web"]

[[job]]
name = "other"
cmd = ["sleep", "{arg}"]
"#
        ),
    );
    let mut run = Run::start(&config);
    // Ready: their handlers are in place.
    for name in ["db", "web", "app"] {
        run.wait(name, "readiness", |s| {
            matches!(s.readiness, Readiness::Ready { .. })
        })
        .await;
    }
    run.wait("other", "running", |s| matches!(s.state, JobState::Running))
        .await;
    run.shutdown().await;
    let ended = |name: &str| run.status(name).ended_at.expect("ended");
    assert!(ended("app") <= ended("web"), "app after web");
    assert!(ended("web") <= ended("db"), "web after db");
    // Each waited for the one before to be gone: at least 0.4 s apart.
    assert!(
        ended("db") - ended("app") >= Duration::from_millis(800),
        "{:?} {:?}",
        ended("db") - ended("app"),
        ended("web") - ended("app")
    );
    assert!(ended("other") < ended("web"), "the unrelated job waited");
    // web kept running while app stopped, and said so.
    assert!(
        run.notices.iter().any(|n| n.contains("web stops once")),
        "{:#?}",
        run.notices
    );
    assert!(
        run.history_of("web")
            .iter()
            .any(|(_, s)| s.stopping_after_dependents
                && forkyard::fmt::job_state(s, Instant::now()) == "stopping after its dependents")
    );
    // Each got its own signal; every one of them is "stopped", none failed.
    assert!(run.notices.iter().any(|n| n.contains("sent SIGINT to web")));
    assert!(matches!(
        run.status("web").outcome(),
        Some(Outcome::Stopped { code: Some(0), .. })
    ));
    assert!(matches!(
        run.status("other").outcome(),
        Some(Outcome::Stopped {
            signal: Some(Signal::SIGTERM),
            ..
        })
    ));
    for name in ["db", "web", "app", "other"] {
        assert_eq!(
            run.status(name).result(),
            Some(ResultClass::Stopped),
            "{name}"
        );
    }
    assert!(
        !run.notices.iter().any(|n| n.contains("grace")),
        "{:#?}",
        run.notices
    );
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
    assert_eq!(
        pgrep_count(&format!(
            "stopper\\.py SIG[A-Z]+ {}",
            arg.replace('.', "\\.")
        )),
        0
    );
}

/// A run whose only non-successes are stops is not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_jobs_are_not_failures() {
    let arg = sleep_arg(45);
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        &format!(
            "[[job]]\nname = \"server\"\ncmd = [\"sleep\", \"{arg}\"]\n[[job]]\nname = \"ok\"\ncmd = [\"true\"]\n"
        ),
    );
    let (supervisor, mut events) =
        Supervisor::start(&config, SupervisorOptions::default()).unwrap();
    let mut tracker = forkyard::run::tracker_for(&supervisor);
    let deadline = Instant::now() + SLOW;
    let mut stopped = false;
    while !tracker.all_settled() {
        let event = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("in time")
            .expect("event");
        tracker.apply(&event);
        if !stopped && matches!(tracker.jobs[0].status.state, JobState::Running) {
            stopped = true;
            supervisor.control(0, Control::Stop);
        }
    }
    assert_eq!(tracker.jobs[0].status.result(), Some(ResultClass::Stopped));
    assert!(!tracker.any_failed());
    assert_eq!(forkyard::run::exit_code(None, tracker.any_failed()), 0);
    let table = forkyard::report::summary::render(&tracker, None, Instant::now());
    assert!(
        table.contains("2 jobs, 1 succeeded, 0 failed, 1 stopped"),
        "{table}"
    );
    assert!(table.contains("stopped (SIGTERM)"), "{table}");
    supervisor.shutdown().await;
}

/// `exit_with`: the run ends with the test job, every other job is stopped (dependents
/// first) and nothing is left running; forkyard exits with the job's status.
#[test]
fn exit_with_returns_the_jobs_status_and_leaves_nothing_running() {
    let db = sleep_arg(46);
    let server = sleep_arg(47);
    let dir = tempdir();
    let path = common::write_file(
        dir.path(),
        "ci.toml",
        &format!(
            r#"
[settings]
exit_with = "tests"

[[job]]
name = "db"
cmd = ["sleep", "{db}"]

[[job]]
name = "server"
cmd = ["sleep", "{server}"]
depends_on = ["db"]

[[job]]
name = "tests"
shell = "echo testing; exit 7"
depends_on = {{ server = "ready", db = "started" }}
"#
        ),
    );
    let report = dir.path().join("run.json");
    let output = Command::new(forkyard_bin())
        .arg("--report")
        .arg(&report)
        .arg(&path)
        .output()
        .expect("run forkyard");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(7), "{stdout}\n{stderr}");
    assert!(stdout.contains("tests  | testing"), "{stdout}");
    assert!(
        stderr.contains("tests ended (exit 7): stopping the other jobs (exit_with)"),
        "{stderr}"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&db)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&server)), 0);
    // server depends on db: it was stopped first.
    let server_at = stderr.find("server stopped").expect("server stopped");
    let db_at = stderr.find("db stopped").expect("db stopped");
    assert!(server_at < db_at, "{stderr}");
    let json = std::fs::read_to_string(&report).expect("report");
    assert!(json.contains("\"status\": \"stopped\""), "{json}");
}

/// `--exit-with` with a job that succeeds exits 0 even though the others were stopped;
/// an unknown name is a usage error.
#[test]
fn exit_with_on_the_command_line() {
    let arg = sleep_arg(48);
    let dir = tempdir();
    let path = common::write_file(
        dir.path(),
        "ci.toml",
        &format!(
            "[[job]]\nname = \"server\"\ncmd = [\"sleep\", \"{arg}\"]\n\n[[job]]\nname = \"check\"\nshell = \"exit 0\"\ndepends_on = [\"server\"]\n"
        ),
    );
    let output = Command::new(forkyard_bin())
        .args(["--exit-with", "check"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(pgrep_count(&sleep_pattern(&arg)), 0);
    let output = Command::new(forkyard_bin())
        .args(["--exit-with", "nope"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--exit-with: no job named \"nope\""));
}

/// `-j 1` runs independent jobs in config order, and jobs that become ready together (on
/// one dependency) in config order too: 10 times out of 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j1_keeps_config_order_ten_times_out_of_ten() {
    let dir = tempdir();
    let independent = config_in(
        dir.path(),
        "[[job]]\nname = \"build\"\ncmd = [\"true\"]\n[[job]]\nname = \"test\"\ncmd = [\"true\"]\n[[job]]\nname = \"deploy\"\ncmd = [\"true\"]\n",
    );
    let after_one = config_in(
        dir.path(),
        "[[job]]\nname = \"c\"\ncmd = [\"true\"]\ndepends_on = { x = \"finished\" }\n\
         [[job]]\nname = \"a\"\ncmd = [\"true\"]\ndepends_on = { x = \"finished\" }\n\
         [[job]]\nname = \"b\"\ncmd = [\"true\"]\ndepends_on = { x = \"finished\" }\n\
         [[job]]\nname = \"x\"\ncmd = [\"true\"]\n",
    );
    for (config, order) in [
        (&independent, vec!["build", "test", "deploy"]),
        (&after_one, vec!["x", "c", "a", "b"]),
    ] {
        for attempt in 0..10 {
            let mut run = Run::start_with(
                config,
                SupervisorOptions {
                    max_parallel: Some(1),
                    ..SupervisorOptions::default()
                },
            );
            for name in &order {
                run.finished(name).await;
            }
            let mut starts: Vec<(Instant, &str)> =
                order.iter().map(|n| (run.started(n), *n)).collect();
            starts.sort();
            let got: Vec<&str> = starts.into_iter().map(|(_, n)| n).collect();
            assert_eq!(got, order, "attempt {attempt}");
            run.shutdown().await;
        }
    }
}

/// Restarts write a marker line into the job's output; the backoff doubles from 100 ms to
/// `backoff_max`, and `max_restarts` ends a crash loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_markers_and_backoff() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "crashy"
shell = "echo up; exit 1"
restart = "always"
max_restarts = 3
backoff_max = "300ms"
"#,
    );
    let out = common::SharedVec::default();
    let result = forkyard::headless::run_with_output(
        &config,
        &HeadlessOptions::default(),
        out.clone(),
        PrintStyle {
            color: false,
            sanitize: false,
            timestamps: false,
        },
    )
    .await
    .expect("run");
    let text = out.text();
    assert_eq!(result.exit_code, 1);
    let markers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("crashy | ── "))
        .collect();
    assert_eq!(markers.len(), 4, "{text}");
    for (marker, then) in markers.iter().zip([
        "restart 1 in 100ms ──",
        "restart 2 in 200ms ──",
        "restart 3 in 300ms ──",
        "gave up after 3 restarts in a row ──",
    ]) {
        assert!(marker.starts_with("exited 1 after "), "{marker}");
        assert!(marker.ends_with(then), "{marker} / {then}");
    }
    // Each marker follows that run's own output.
    let first_up = text.find("crashy | up").expect("up");
    let first_marker = text.find("crashy | ── ").expect("marker");
    assert!(first_up < first_marker);
    assert_eq!(result.tracker.jobs[0].status.restarts, 3);
}

/// A run that stays up `backoff_reset` starts the backoff (and the count) over, and
/// `always` without `max_restarts` does not give up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_resets_after_a_long_enough_run() {
    let dir = tempdir();
    let config = config_in(
        dir.path(),
        r#"
[[job]]
name = "steady"
shell = "sleep 0.25; exit 1"
restart = "always"
backoff_reset = "200ms"
"#,
    );
    assert_eq!(config.jobs[0].max_restarts, None);
    let mut run = Run::start_with(
        &config,
        SupervisorOptions {
            ..SupervisorOptions::default()
        },
    );
    let status = run.wait("steady", "7 runs", |s| s.runs >= 7).await;
    assert_eq!(status.restarts, 6);
    // Every wait was the first step of the backoff.
    let history = run.history_of("steady");
    for pair in history.windows(2) {
        if let (
            JobState::Pending(forkyard::supervisor::PendingReason::Backoff { until }),
            Some(end),
        ) = (&pair[1].1.state, pair[0].1.ended_at)
        {
            assert!(
                until.saturating_duration_since(end) <= Duration::from_millis(150),
                "a longer backoff: {:?}",
                until.saturating_duration_since(end)
            );
        }
    }
    run.shutdown().await;
}

/// `forkyard check` prints the start order by levels, and refuses a cycle.
#[test]
fn check_prints_the_start_order() {
    let dir = tempdir();
    let path = common::write_file(
        dir.path(),
        "stack.toml",
        r#"
[[job]]
name = "poller"
cmd = ["true"]
depends_on = ["web"]

[[job]]
name = "web"
cmd = ["true"]
depends_on = { migrate = "succeeded" }
ready = { tcp = "127.0.0.1:8000" }

[[job]]
name = "migrate"
cmd = ["true"]

[[job]]
name = "watch"
cmd = ["true"]
"#,
    );
    let output = Command::new(forkyard_bin())
        .arg("check")
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("start order: 3 levels (each starts once what it depends on allows)\n  1: migrate, watch\n  2: web\n  3: poller\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  depends on: migrate (succeeded)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  ready: tcp 127.0.0.1:8000 every 250ms, timeout 1s"),
        "{stdout}"
    );
}
