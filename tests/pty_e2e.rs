//! PTY jobs and typing into a job, end to end: forkyard runs inside tmux (a private
//! socket per test), keys go in with `send-keys`, the screen comes back with
//! `capture-pane`. Every test waits on screen content with a deadline, and checks that
//! no process carrying its marker is left once forkyard has exited.
//!
//! tmux is required: without it every test here fails (CI installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::time::{Duration, Instant};

use common::SLOW as DEADLINE;
use common::tmux::{Launch, TmuxPane};

type Tmux = TmuxPane;

impl Tmux {
    /// forkyard `args` on `config` (`@MARK@` replaced by this test's marker, `@DIR@` by
    /// its folder) in a pane of `width`×`height`.
    fn start(test: &str, config: &str, args: &str, size: (u16, u16)) -> Tmux {
        TmuxPane::open(Launch {
            test,
            marker: format!("fymark{}x{test}", std::process::id()),
            config: Some(config),
            args: &format!("{args} '@DIR@/jobs.toml'"),
            env: "",
            size,
        })
    }

    fn tui(test: &str, config: &str) -> Tmux {
        Tmux::start(test, config, "--tui", (100, 36))
    }

    /// Quits forkyard (Q: kill and reap every job), waits for its exit line, and checks
    /// that nothing carrying the marker survived.
    fn quit_and_check(&self) -> String {
        self.keys(&["Q"]);
        let screen = self.wait_text("EXIT=");
        let start = Instant::now();
        while !self.survivors().is_empty() {
            assert!(
                start.elapsed() < DEADLINE,
                "processes left after forkyard exited: {:?}",
                self.survivors()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        screen
    }
}

/// CLOCK_MONOTONIC in milliseconds.
fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the struct we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000
}

/// The line of `screen` that contains `text`.
fn line_with<'a>(screen: &'a str, text: &str) -> &'a str {
    screen.lines().find(|l| l.contains(text)).unwrap_or("")
}

#[test]
fn a_pty_job_is_on_a_terminal_with_colours_and_line_buffering() {
    let tmux = Tmux::tui(
        "basics",
        r#"
[[job]]
name = "tty"
cmd = ["python3", "-c", "import sys, time\nprint('isatty', sys.stdout.isatty(), sys.stdin.isatty())\nfor i in range(6):\n    print('tick', i, 'at', int(time.monotonic() * 1000))\n    time.sleep(0.5)\ntime.sleep(100)", "@MARK@"]
pty = true

[[job]]
name = "ls"
shell = "mkdir -p @DIR@/colourdir && ls --color=always -d @DIR@/colourdir; : @MARK@; sleep 100"
pty = true

[[job]]
name = "plain"
cmd = ["python3", "-c", "import sys; print('plain isatty', sys.stdout.isatty())", "@MARK@"]
"#,
    );
    tmux.wait_text("isatty True True");
    // Line buffered, as on a terminal: each tick shows up within a second of being
    // printed (block buffering showed nothing until the program exited).
    // Measured against the time the program printed each line (CLOCK_MONOTONIC, the
    // clock of Python's time.monotonic()).
    for i in 0..6 {
        let text = format!("tick {i} at ");
        let screen = tmux.wait_text(&text);
        let seen = monotonic_ms();
        let printed: u64 = line_with(&screen, &text)
            .split_whitespace()
            .nth(3)
            .and_then(|t| t.parse().ok())
            .expect("a timestamp");
        let late = seen.saturating_sub(printed);
        assert!(
            late < 1000,
            "tick {i} showed {late} ms after it was printed"
        );
    }
    assert!(
        tmux.screen()
            .contains("terminal: stdout and stderr in one stream")
    );

    // `ls --color=always` on the terminal: the colour reaches the pane.
    tmux.keys(&["j"]);
    tmux.wait_text("colourdir");
    let escapes = tmux.screen_escapes();
    let line = line_with(&escapes, "colourdir");
    assert!(
        line.contains("\x1b[")
            && (line.contains("[34m") || line.contains(";34m") || line.contains("38;5;4m")),
        "no blue for a directory: {line:?}"
    );
    // A pipe job stays a pipe job.
    tmux.keys(&["j"]);
    tmux.wait_text("plain isatty False");
    tmux.quit_and_check();
}

#[test]
fn typed_lines_ctrl_c_and_the_escape_chord() {
    let tmux = Tmux::tui(
        "typing",
        r#"
[[job]]
name = "ask"
cmd = ["python3", "-c", "import time\nname = input('your name? ')\nprint('hello', name)\nwhile True:\n    try:\n        time.sleep(100)\n    except KeyboardInterrupt:\n        print('got SIGINT')", "@MARK@"]
pty = true
"#,
    );
    tmux.wait_text("your name?");
    tmux.keys(&["i"]);
    tmux.wait_text("keys go to ask");
    // Letters that are forkyard keys (q quits, t stops) go to the job now.
    tmux.type_text("quit tq");
    tmux.keys(&["Enter"]);
    tmux.wait_text("hello quit tq");
    // Ctrl-C reaches the job (its terminal's foreground group), not forkyard.
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_text("got SIGINT");
    assert!(!screen.contains("stop them all"), "{screen}");
    assert!(line_with(&screen, " ask ").contains("running"), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.wait_for("a second SIGINT", |s| s.matches("got SIGINT").count() == 2);
    // The chord gives the keys back: `j`/`k` are forkyard's again.
    tmux.keys(&["C-a"]);
    tmux.wait_text("keys go to forkyard again");
    tmux.keys(&["x"]);
    tmux.wait_text("SIGTERM");
    tmux.keys(&["Escape"]);
    tmux.quit_and_check();
}

#[test]
fn full_screen_programs_render_and_take_keys() {
    let tmux = Tmux::tui(
        "fullscreen",
        r#"
[[job]]
name = "less"
shell = "seq -f 'line number %g' 300 > numbers.txt; exec less numbers.txt"
env = { LESS = "", MARK = "@MARK@" }
pty = true

[[job]]
name = "top"
cmd = ["top", "-b", "-n", "1", "-w", "120"]
pty = true
"#,
    );
    tmux.wait_text("line number 1");
    tmux.keys(&["i"]);
    tmux.wait_text("keys go to less");
    tmux.keys(&["G"]);
    let screen = tmux.wait_text("line number 300");
    assert!(!screen.contains("line number 1\n"), "{screen}");
    tmux.keys(&["g"]);
    tmux.wait_for("back at the top", |s| {
        s.contains("line number 1") && !s.contains("line number 300")
    });
    tmux.keys(&["q"]);
    tmux.wait_text("keys go to forkyard again");
    // top's batch report, header and all (its start is in the scrollback: g).
    tmux.keys(&["j"]);
    tmux.wait_text("exited 0");
    tmux.keys(&["g"]);
    let screen = tmux.wait_text("COMMAND");
    assert!(line_with(&screen, "COMMAND").contains("PID"), "{screen}");
    assert!(
        screen.contains("Tasks:") || screen.contains("top -"),
        "{screen}"
    );
    tmux.quit_and_check();
}

#[test]
fn a_resize_reaches_the_job() {
    let tmux = Tmux::tui(
        "resize",
        r#"
[[job]]
name = "size"
shell = "trap 'echo size $(stty size)' WINCH; echo size $(stty size); while :; do sleep 0.1; done; : @MARK@"
pty = true
"#,
    );
    // The pane's body: 36 rows minus header (2), table (2), pane title and status bar.
    let is_size = |l: &str| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() == 3
            && words[0] == "size"
            && words[1..].iter().all(|w| w.parse::<u32>().is_ok())
    };
    let screen = tmux.wait_for("a size", |s| s.lines().any(is_size));
    let first = screen
        .lines()
        .find(|l| is_size(l))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(first.ends_with(" 100"), "{first}");
    let out = tmux.cmd(&["resize-window", "-t", "0", "-x", "80", "-y", "30"]);
    assert!(out.status.success(), "{out:?}");
    let screen = tmux.wait_for("a new size", |s| {
        s.lines()
            .any(|l| l.trim().starts_with("size ") && l.trim().ends_with(" 80"))
    });
    let second = screen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("size ") && l.ends_with(" 80"))
        .unwrap_or_default()
        .to_string();
    let rows = |l: &str| -> u32 {
        l.split_whitespace()
            .nth(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    };
    assert!(rows(&second) < rows(&first), "{first} then {second}");
    tmux.quit_and_check();
}

#[test]
fn a_stdin_pipe_job_takes_typed_lines_and_ends_on_ctrl_d() {
    let tmux = Tmux::tui(
        "stdin",
        r#"
[[job]]
name = "numbered"
cmd = ["sh", "-c", "cat -n; echo stdin closed; : @MARK@"]
stdin = "pipe"
"#,
    );
    tmux.wait_text("running");
    tmux.keys(&["i"]);
    tmux.wait_text("line to numbered's stdin");
    tmux.type_text("first line");
    tmux.keys(&["Enter"]);
    tmux.type_text("second");
    tmux.keys(&["Enter"]);
    let numbered = |s: &str, n: &str, text: &str| {
        s.lines().any(|l| {
            let l = l.trim();
            l.starts_with(n) && l[n.len()..].trim_start() == text
        })
    };
    let screen = tmux.wait_for("line 2", |s| numbered(s, "2", "second"));
    assert!(numbered(&screen, "1", "first line"), "{screen}");
    let screen = tmux.screen();
    assert!(
        screen.contains("1\tfirst line") || screen.contains("1  first line"),
        "{screen}"
    );
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_text("exited 0");
    assert!(screen.contains("stdin closed"), "{screen}");
    tmux.quit_and_check();
}

/// What a hostile child prints: a title, an OSC 52 clipboard write, the alternate
/// screen (never left), mouse and bracketed-paste modes, C1 controls raw and as UTF-8,
/// invalid UTF-8, then a 100 MB line.
const HOSTILE: &str = r#"printf '\033]0;PWNED-TITLE\007\033]2;PWNED2\033\\\033]52;c;cHduZWQ=\007\033[?1049h\033[?1000h\033[?1006h\033[?2004h\302\233\061m\233\062J\377\376hostile-done\n'; head -c 100000000 /dev/zero | tr '\0' x; echo; echo after-the-line; : @MARK@; sleep 100"#;

#[test]
fn hostile_output_stays_inside_the_emulator_and_memory_stays_bounded() {
    let config = format!(
        "[settings]\nscrollback = 100000\n[[job]]\nname = \"evil\"\nshell = '''{HOSTILE}'''\npty = true\n"
    );
    let tmux = Tmux::tui("hostile", &config);
    let title_before = tmux.format("#{pane_title}");
    let start = Instant::now();
    while !tmux.screen().contains("after-the-line") {
        // 100 MB through the emulator: give a debug build its time.
        assert!(start.elapsed() < DEADLINE * 9, "{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = tmux.screen();
    assert!(
        screen.contains("forkyard"),
        "the UI is still drawn: {screen}"
    );
    assert!(!tmux.format("#{pane_title}").contains("PWNED"));
    assert_eq!(tmux.format("#{pane_title}"), title_before);
    let pid = tmux.forkyard_pid().expect("forkyard is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kb < 80 * 1024,
        "peak RSS {peak_kb} kB after a 100 MB line"
    );
    tmux.quit_and_check();
    // forkyard left its own alternate screen and the child's modes never reached the
    // pane.
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    assert_eq!(tmux.format("#{mouse_any_flag}"), "0");
    assert!(!tmux.format("#{pane_title}").contains("PWNED"));
}

#[test]
fn hostile_output_headless_on_a_terminal_never_reaches_it_raw() {
    let config = format!(
        "[[job]]\nname = \"evil\"\nshell = '''{}'''\npty = true\n",
        HOSTILE
            .replace("; sleep 100", "")
            .replace("head -c 100000000 /dev/zero | tr '\\0' x; echo; ", "")
    );
    let tmux = Tmux::start("headless", &config, "--headless", (100, 30));
    let title_before = tmux.format("#{pane_title}");
    let start = Instant::now();
    // Polled while it runs: the pane never enters the alternate screen.
    loop {
        assert_eq!(tmux.format("#{alternate_on}"), "0", "{}", tmux.screen());
        assert_eq!(tmux.format("#{mouse_any_flag}"), "0");
        if tmux.screen().contains("EXIT=") {
            break;
        }
        assert!(start.elapsed() < DEADLINE * 3, "{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = tmux.cmd(&["capture-pane", "-p", "-S", "-", "-t", "0"]);
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary: Vec<&str> = screen.lines().filter(|l| !l.starts_with("xxxx")).collect();
    assert!(screen.contains("hostile-done"), "{summary:#?}");
    assert!(screen.contains("after-the-line"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_eq!(tmux.format("#{pane_title}"), title_before);
    assert!(tmux.survivors().is_empty(), "{:?}", tmux.survivors());
}
