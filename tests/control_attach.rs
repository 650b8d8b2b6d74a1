//! `forkyard up`, `attach`, detach and `down` in real terminals (tmux, private server):
//! keys act through the socket, two TUIs attach at once, detaching with `q` or by
//! closing the terminal leaves every job running, and `down` stops them all. Fails when
//! tmux is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;
#[path = "control_util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use common::{pgrep_count, sleep_arg, sleep_pattern};
use util::{DEADLINE, Scratch, Tmux};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn attach_detach_and_down_leave_the_jobs_to_the_session() {
    let tmux = Tmux::new("attach");
    let scratch = Scratch::new();
    let mark = sleep_arg(60);
    let mut session = scratch.up(
        "att",
        &format!(
            r#"
[[job]]
name = "beat"
shell = "i=0; while :; do i=$((i+1)); echo beat $i; sleep 0.2; done"
[[job]]
name = "mark"
cmd = ["sleep", "{mark}"]
[[job]]
name = "idle"
cmd = ["sleep", "{idle}"]
autostart = false
"#,
            idle = sleep_arg(61)
        ),
    );
    wait_for("the marked job", || pgrep_count(&sleep_pattern(&mark)) == 1);
    let attach = format!(
        "XDG_RUNTIME_DIR=\"{}\" \"{}\" attach att; echo EXIT=$?; exec sleep 600",
        scratch.runtime().display(),
        util::bin()
    );
    tmux.window("a", &attach);
    let screen = tmux.wait_for("a", "the session's jobs and output", |s| {
        s.contains("session att") && s.contains("idle") && s.contains("beat 3")
    });
    assert!(screen.contains("q detach"), "{screen}");

    // A second TUI on the same session at the same time.
    tmux.window("b", &attach);
    tmux.wait_for("b", "the second TUI", |s| {
        s.contains("session att") && s.contains("beat")
    });

    // Keys act through the socket: start the idle job from the first TUI...
    tmux.keys("a", &["j", "j", "s"]);
    session.wait_job("idle", "running", |j| j["result"] == "running");
    // ... and both TUIs show it.
    for window in ["a", "b"] {
        tmux.wait_for(window, "idle running", |s| {
            s.lines()
                .any(|l| l.contains(" idle ") && l.contains("running"))
        });
    }
    // The first TUI shows the selected job's output as it comes.
    tmux.keys("a", &["k", "k"]);
    let seen = tmux.wait_for("a", "beat's output", |s| s.contains("beat "));
    let last = |s: &str| {
        s.lines()
            .filter_map(|l| l.trim().strip_prefix("beat "))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    let before = last(&seen);
    tmux.wait_for("a", "newer output", |s| last(s) > before + 2);

    // q detaches at once (no quit dialog, though jobs run): the jobs keep running.
    tmux.keys("a", &["q"]);
    let screen = tmux.wait_for("a", "the detach", |s| s.contains("EXIT="));
    assert!(screen.contains("detached from session `att`"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!screen.contains("quit?"), "{screen}");
    assert_eq!(pgrep_count(&sleep_pattern(&mark)), 1);
    assert_eq!(session.job("beat")["result"], "running");

    // Closing the second one's terminal detaches it too (SIGHUP): the jobs stay.
    // (Each forkyard process has a watchdog with the same command line.)
    let attached = || pgrep_count(&format!("^{} attach att$", regex_escape(util::bin())));
    assert_eq!(attached(), 2, "one TUI is still attached");
    let out = tmux.cmd(&["kill-window", "-t", ":=b"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("the second TUI to end", || attached() == 0);
    assert_eq!(pgrep_count(&sleep_pattern(&mark)), 1);
    assert_eq!(session.job("idle")["result"], "running");

    // down stops it like a quit: every job stopped, the socket gone.
    let out = session.down();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(pgrep_count(&sleep_pattern(&mark)), 0);
    assert!(!scratch.socket("att").exists());
    // Attaching to it now says there is no such session (exit 3).
    let out = scratch.run(&["attach", "att"]);
    assert_eq!(out.code, 3, "{out:?}");
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn a_tui_serves_its_socket_reloads_and_ends_with_down() {
    let tmux = Tmux::new("tui");
    let scratch = Scratch::new();
    let (keep, gone, fresh) = (sleep_arg(62), sleep_arg(63), sleep_arg(64));
    let job = |name: &str, mark: &str| {
        format!("[[job]]\nname = \"{name}\"\ncmd = [\"sleep\", \"{mark}\"]\n")
    };
    let config = scratch.write(
        "tuis.toml",
        &[job("keep", &keep), job("gone", &gone)].concat(),
    );
    let env = format!("XDG_RUNTIME_DIR=\"{}\"", scratch.runtime().display());
    tmux.window(
        "tui",
        &format!(
            "{env} \"{}\" --name tuis \"{}\"; echo EXIT=$?; exec sleep 600",
            util::bin(),
            config.display()
        ),
    );
    tmux.wait_for("tui", "the TUI", |s| {
        s.contains("keep") && s.contains("gone")
    });
    wait_for("its jobs", || pgrep_count(&sleep_pattern(&gone)) == 1);
    tmux.window(
        "att",
        &format!(
            "{env} \"{}\" attach tuis; echo EXIT=$?; exec sleep 600",
            util::bin()
        ),
    );
    tmux.wait_for("att", "the attached TUI", |s| s.contains("session tuis"));

    // The TUI reloads: both it and the TUI attached to it show the new set.
    scratch.write(
        "tuis.toml",
        &[job("keep", &keep), job("fresh", &fresh)].concat(),
    );
    let out = scratch.ctl("tuis", &["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("added: fresh") && out.stdout.contains("removed: gone"),
        "{out:?}"
    );
    for window in ["tui", "att"] {
        tmux.wait_for(window, "the reloaded rows", |s| {
            s.lines()
                .any(|l| l.contains(" fresh ") && l.contains("running"))
                && !s.lines().any(|l| l.contains(" gone "))
                && s.contains("0 failed")
        });
    }
    assert_eq!(pgrep_count(&sleep_pattern(&gone)), 0);

    // down quits the TUI like q (every job stopped); the attached TUI says so and ends.
    let out = scratch.run(&["down", "tuis"]);
    assert_eq!(out.code, 0, "{out:?}");
    let screen = tmux.wait_for("tui", "the TUI to end", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    let screen = tmux.wait_for("att", "the attached TUI to end", |s| s.contains("EXIT="));
    assert!(
        screen.contains("the session ended") && screen.contains("EXIT=0"),
        "{screen}"
    );
    for mark in [&keep, &fresh] {
        assert_eq!(pgrep_count(&sleep_pattern(mark)), 0);
    }
}
