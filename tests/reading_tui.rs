//! Reading output in the TUI, end to end in a real terminal: forkyard runs inside tmux
//! (a private socket per test, killed at the end), keys go in with `send-keys`, the screen
//! comes back with `capture-pane`. The merged "all" view's order, search across jobs,
//! wrap and sideways scroll on a 1000-column line, timestamps, copy mode's OSC 52 (tmux
//! with `set-clipboard on` keeps what forkyard put on the clipboard: `show-buffer`),
//! saving to a file, and the summary on the normal screen after quitting.
//!
//! tmux is required: without it every test here fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::time::{Duration, Instant};

use common::SLOW as DEADLINE;
use common::tmux::{Launch, TmuxPane};

type Tmux = TmuxPane;

impl Tmux {
    /// Runs `forkyard --tui ARGS jobs.toml` (the config's `@MARK@` replaced by a marker
    /// unique to this test) in a `width`×`height` tmux pane.
    fn start(test: &str, tag: u32, config: &str, args: &str, size: (u16, u16)) -> Tmux {
        let tmux = TmuxPane::open(Launch {
            test,
            marker: format!("8{:07}{tag:02}.", std::process::id()),
            config: Some(config),
            args: &format!("--tui {args} jobs.toml"),
            env: "",
            size,
        });
        // The clipboard: tmux keeps what an application sets with OSC 52 as a buffer.
        let out = tmux.cmd(&["set", "-g", "set-clipboard", "on"]);
        assert!(out.status.success(), "tmux set-clipboard: {out:?}");
        tmux
    }

    /// The output pane's lines (below its title line, above the status bar).
    fn pane(screen: &str, title: &str) -> Vec<String> {
        let lines: Vec<&str> = screen.lines().collect();
        let top = lines
            .iter()
            .position(|l| l.starts_with(&format!(" {title} ")) && l.contains("──"))
            .unwrap_or_else(|| panic!("no {title} pane:\n{screen}"));
        lines[top + 1..lines.len().saturating_sub(1)]
            .iter()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// What tmux holds from the last OSC 52.
    fn clipboard(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["show-buffer"]).stdout).into_owned()
    }

    /// Quits (asking first while jobs run) and waits for the script to finish.
    fn quit(&self) -> String {
        self.keys(&["q"]);
        let asked = |s: &str| s.contains("quit?") || s.contains("Stop");
        let screen = self.wait_for("the quit dialog or the exit", |s| {
            asked(s) || s.contains("SCRIPT-DONE")
        });
        if asked(&screen) {
            self.keys(&["y"]);
        }
        let screen = self.wait_text("SCRIPT-DONE");
        let start = Instant::now();
        while !self.survivors().is_empty() {
            assert!(start.elapsed() < DEADLINE, "children left behind");
            std::thread::sleep(Duration::from_millis(50));
        }
        screen
    }
}

/// Two jobs taking turns: `a-N` then, 0.15 s later, `b-N`, every 0.3 s.
const TAKING_TURNS: &str = r#"
[[job]]
name = "a"
shell = "for i in 1 2 3 4 5 6; do echo a-$i; sleep 0.3; done; sleep @MARK@"

[[job]]
name = "b"
shell = "sleep 0.15; for i in 1 2 3 4 5 6; do echo b-$i; [ $i = 4 ] && echo 'b-needle on stderr' >&2; sleep 0.3; done; sleep @MARK@"
"#;

#[test]
fn the_all_row_merges_two_jobs_in_arrival_order() {
    let t = Tmux::start("merged", 1, TAKING_TURNS, "", (100, 30));
    // The first job is selected at start; the "all" row is above it.
    t.wait_text("≡ all");
    t.keys(&["k"]);
    let screen = t.wait_text("b-6");
    let lines = Tmux::pane(&screen, "all");
    let texts: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" | ").map(|(_, text)| text))
        .collect();
    let want: Vec<String> = (1..=6)
        .flat_map(|i| [format!("a-{i}"), format!("b-{i}")])
        .collect();
    assert_eq!(texts, want, "{screen}");
    // Prefixed by job, stderr marked.
    assert!(lines.iter().any(|l| l.starts_with("a | a-1")), "{screen}");
    assert!(
        lines.iter().any(|l| l.starts_with("b ! b-needle")),
        "{screen}"
    );
    // Filtered to one stream, then to one job.
    t.keys(&["E"]);
    let screen = t.wait_text("stderr only");
    assert_eq!(Tmux::pane(&screen, "all"), ["b ! b-needle on stderr"]);
    t.keys(&["E", "E", "F"]);
    t.wait_text("jobs to show");
    t.type_text("a");
    t.keys(&["Enter"]);
    let screen = t.wait_text("1 of 2 jobs");
    let lines = Tmux::pane(&screen, "all a");
    assert_eq!(lines.len(), 6, "{screen}");
    assert!(lines.iter().all(|l| l.starts_with("a | ")), "{screen}");
    t.quit();
}

#[test]
fn search_in_the_all_row_goes_across_jobs() {
    let config = r#"
[[job]]
name = "web"
shell = "echo 'GET / 200'; echo 'GET /favicon 404'; sleep 0.2; echo 'served needle-1'; sleep @MARK@"

[[job]]
name = "poller"
shell = "sleep 0.1; echo 'curl: ok'; echo 'found needle-2 while polling' >&2; sleep 0.2; echo 'needle-3'; sleep @MARK@"
"#;
    let t = Tmux::start("search", 2, config, "", (100, 30));
    t.wait_text("≡ all");
    t.keys(&["k"]);
    t.wait_text("needle-3");
    t.keys(&["/"]);
    t.type_text("needle");
    t.keys(&["Enter"]);
    // From the followed tail, the newest match first: poller's needle-3.
    t.wait_text("in poller");
    t.keys(&["N"]);
    let screen = t.wait_text("in web");
    assert!(screen.contains("served needle-1"), "{screen}");
    t.keys(&["N"]);
    let screen = t.wait_for("back to poller's stderr", |s| {
        s.contains("in poller") && !s.contains("wrapped")
    });
    assert!(screen.contains("poller ! found needle-2"), "{screen}");
    // Before the first match: around to the last one.
    t.keys(&["N"]);
    t.wait_for("needle-3 after wrapping", |s| {
        s.contains("in poller (search wrapped around)")
    });
    // n goes forward: around to the first (poller's needle-2), then web's needle-1.
    t.keys(&["n", "n"]);
    t.wait_for("needle-1 in web", |s| {
        s.contains("in web") && !s.contains("wrapped")
    });
    t.quit();
}

/// One line of 1000 columns: `[0000]----[0010]----` … `[0990]----`.
const LONG_LINE: &str = r#"
[[job]]
name = "long"
shell = "python3 -c \"print(''.join('[%04d]----' % i for i in range(0, 1000, 10)))\"; sleep @MARK@"
"#;

#[test]
fn a_1000_column_line_scrolls_sideways_and_wraps() {
    let t = Tmux::start("long", 3, LONG_LINE, "", (100, 24));
    let screen = t.wait_text("[0000]----");
    let pane = Tmux::pane(&screen, "long");
    assert_eq!(pane.len(), 1, "cut at the edge: {screen}");
    assert!(
        pane[0].contains("[0090]") && !pane[0].contains("[0100]"),
        "{screen}"
    );
    // > moves half a pane (50 columns) at a time.
    for _ in 0..19 {
        t.keys(&[">"]);
    }
    let screen = t.wait_text("→ col 951");
    let pane = Tmux::pane(&screen, "long");
    assert_eq!(
        pane[0], "[0950]----[0960]----[0970]----[0980]----[0990]----",
        "{screen}"
    );
    t.keys(&["<"]);
    let screen = t.wait_text("→ col 901");
    assert!(
        Tmux::pane(&screen, "long")[0].starts_with("[0900]----"),
        "{screen}"
    );
    // Wrapped: every column on screen, 100 per row.
    t.keys(&["L"]);
    let screen = t.wait_text("· wrap");
    let pane = Tmux::pane(&screen, "long");
    assert_eq!(pane.len(), 10, "{screen}");
    assert!(
        pane[0].starts_with("[0000]") && pane[9].ends_with("[0990]----"),
        "{screen}"
    );
    let joined: String = pane.concat();
    let want: String = (0..1000)
        .step_by(10)
        .map(|i| format!("[{i:04}]----"))
        .collect();
    assert_eq!(joined, want);
    t.quit();
}

#[test]
fn timestamps_show_each_lines_arrival_time() {
    let t = Tmux::start("times", 4, TAKING_TURNS, "", (100, 30));
    t.wait_text("a-6");
    t.keys(&["@"]);
    let screen = t.wait_text("timestamps on");
    let pane = Tmux::pane(&screen, "a");
    assert_eq!(pane.len(), 6, "{screen}");
    let times: Vec<&str> = pane.iter().map(|l| &l[..12]).collect();
    for (line, time) in pane.iter().zip(&times) {
        let b = time.as_bytes();
        assert!(b[2] == b':' && b[5] == b':' && b[8] == b'.', "{line}");
        assert!(line[13..].starts_with("a-"), "{line}");
    }
    // In arrival order, 0.3 s apart.
    let ms = |t: &str| -> i64 {
        let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
        ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
    };
    for pair in times.windows(2) {
        let gap = (ms(pair[1]) - ms(pair[0])).rem_euclid(86_400_000);
        assert!((250..1500).contains(&gap), "{pair:?}");
    }
    t.quit();
}

#[test]
fn copy_mode_puts_the_selected_lines_on_the_clipboard_with_osc_52() {
    let config = r#"
[[job]]
name = "colors"
shell = '''for i in 1 2 3 4 5; do printf '\033[31mred\033[0m line %s\n' $i; done; printf 'tab\there \033]0;title\007done\n'; sleep @MARK@'''
"#;
    let t = Tmux::start("copy", 5, config, "", (100, 24));
    t.wait_text("tab     here done");
    t.keys(&["y"]);
    let screen = t.wait_text("copy mode");
    assert!(
        screen.contains("v mark") && screen.contains("y copy"),
        "{screen}"
    );
    // The cursor starts on the last line; mark it, go up two, copy.
    t.keys(&["v", "k", "k", "y"]);
    t.wait_text("copied 3 lines");
    // Sanitised text: no colour, no title sequence; the tab as the screen shows it.
    assert_eq!(t.clipboard(), "red line 4\nred line 5\ntab     here done\n");
    // One line: the cursor alone.
    t.keys(&["y", "g", "y"]);
    t.wait_text("copied 1 line ");
    assert_eq!(t.clipboard(), "red line 1\n");
    t.quit();
}

#[test]
fn s_saves_the_whole_output_to_a_file_and_refuses_to_overwrite_silently() {
    let t = Tmux::start("save", 6, TAKING_TURNS, "", (100, 30));
    t.wait_text("a-6");
    t.keys(&["S"]);
    t.wait_text("save the whole output to:");
    t.type_text("saved.txt");
    t.keys(&["Enter"]);
    t.wait_text("saved 6 lines");
    assert_eq!(
        std::fs::read_to_string(t.path("saved.txt")).unwrap(),
        "a-1\na-2\na-3\na-4\na-5\na-6\n"
    );
    // Again, from the all row: the file exists; Enter again replaces it.
    t.keys(&["k"]);
    t.wait_text("b | b-6");
    t.keys(&["S"]);
    t.wait_text("save the whole output to:");
    t.type_text("saved.txt");
    t.keys(&["Enter"]);
    t.wait_text("exists: Enter again replaces it");
    t.keys(&["Enter"]);
    t.wait_text("saved 13 lines");
    let all = std::fs::read_to_string(t.path("saved.txt")).unwrap();
    assert!(all.starts_with("a | a-1\nb | b-1\n"), "{all}");
    assert!(all.contains("b ! b-needle on stderr\n"), "{all}");
    t.quit();
}

#[test]
fn after_quitting_the_summary_and_failed_jobs_last_lines_stay_on_the_screen() {
    let config = r#"
[settings]
failed_tail = 3

[[job]]
name = "ok"
cmd = ["echo", "fine"]

[[job]]
name = "broken"
shell = "for i in 1 2 3 4 5; do echo step $i; done; sleep 0.3; echo 'fatal: disk on fire' >&2; exit 3"

[[job]]
name = "idle"
cmd = ["sleep", "@MARK@"]
log = false
"#;
    let t = Tmux::start("summary", 7, config, "--log-dir logs", (100, 30));
    t.wait_text("exited 3");
    let screen = t.quit();
    assert!(
        screen.contains("forkyard summary: 3 jobs, 1 succeeded"),
        "{screen}"
    );
    assert!(screen.contains("DROPPED"), "{screen}");
    assert!(
        screen.contains("── broken: exit 3 · last 3 of 6 lines · log logs/broken.log ──"),
        "{screen}"
    );
    let tail: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("── broken"))
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(
        tail,
        [
            "broken | step 4",
            "broken | step 5",
            "broken ! fatal: disk on fire"
        ],
        "{screen}"
    );
    // The log holds all of it.
    let log = std::fs::read_to_string(t.path("logs/broken.log")).unwrap();
    assert!(
        log.contains("| step 1\n") && log.contains("! fatal: disk on fire\n"),
        "{log}"
    );
    assert!(log.contains("# ended: exit 3"), "{log}");
    assert!(!t.path("logs/idle.log").exists());
}
