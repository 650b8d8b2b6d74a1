//! forkyard headless on a real terminal (a pty opened here, or a tmux pane): long lines
//! arrive whole, a terminal that goes away ends the run cleanly (129, nothing left, no
//! panic) whether it held stdout or stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SLOW, forkyard_bin, pgrep_count, sleep_arg, sleep_pattern, tempdir, wait_until};

/// A pseudo-terminal: the master (our side) and the slave (forkyard's terminal), in raw
/// mode so the bytes read are the bytes written (no `\n` -> `\r\n`).
struct Pty {
    master: File,
    slave: File,
}

fn open_pty() -> Pty {
    // SAFETY: plain libc calls on a descriptor we own; ptsname_r writes into `name`.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(
            master >= 0,
            "posix_openpt: {}",
            std::io::Error::last_os_error()
        );
        let master = File::from(OwnedFd::from_raw_fd(master));
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0,
            "ptsname_r"
        );
        let path = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .expect("open the pty slave");
        let mut termios: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut termios), 0);
        libc::cfmakeraw(&mut termios);
        assert_eq!(
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios),
            0
        );
        Pty { master, slave }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// Reads the master until every slave descriptor is closed (EIO), in the background.
fn read_all(mut master: File) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (seen, reader)
}

fn wait_with_deadline(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + SLOW;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: forkyard did not exit within {SLOW:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Strips SGR sequences (`ESC [ … m`), the only escapes sanitised output may hold.
fn strip_sgr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            assert_eq!(
                chars.next(),
                Some('['),
                "an escape other than SGR: {text:?}"
            );
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
                assert!(c.is_ascii_digit() || c == ';', "not SGR: {c:?}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Headless with stdout a terminal: a 10,000-character line, a 6,000-cell colour run
/// and a 100,000-byte line arrive whole (the last in 64 KiB pieces, each whole),
/// sanitised (an OSC title in the middle is dropped, the colours kept).
#[test]
fn long_lines_arrive_whole_on_a_terminal() {
    let dir = tempdir();
    common::write_file(
        dir.path(),
        "long.toml",
        r#"
[[job]]
name = "ten"
shell = "printf '%*s' 10000 '' | tr ' ' x; echo"

[[job]]
name = "run"
shell = "printf '\\033[31m'; printf '%*s' 6000 '' | tr ' ' y; printf '\\033]0;title\\007END\\033[0m\\n'"

[[job]]
name = "big"
shell = "head -c 100000 /dev/zero | tr '\\0' z; echo"
"#,
    );
    let pty = open_pty();
    let (seen, reader) = read_all(pty.master);
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "--no-summary", "long.toml"])
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(pty.slave)
        .stderr(Stdio::null())
        .spawn()
        .expect("start forkyard");
    let status = wait_with_deadline(&mut child, "long lines");
    reader.join().expect("reader");
    assert_eq!(status.code(), Some(0));
    let raw = String::from_utf8(seen.lock().unwrap().clone()).expect("UTF-8 output");
    assert!(
        !raw.contains('\x07') && !raw.contains("title"),
        "OSC leaked"
    );
    let text = strip_sgr(&raw);
    let body = |prefix: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(body("ten | "), ["x".repeat(10_000)]);
    let run = body("run | ");
    assert_eq!(run.len(), 1);
    assert_eq!(run[0], format!("{}END", "y".repeat(6000)));
    // The colour reaches the end of the run: one SGR at its start, a reset after END.
    let run_raw = raw.lines().find(|l| l.contains("yyy")).unwrap();
    assert!(
        run_raw.ends_with("END\x1b[0m"),
        "{:?}",
        &run_raw[run_raw.len() - 20..]
    );
    let big = body("big | ");
    assert_eq!(
        big.iter().map(String::len).collect::<Vec<_>>(),
        [65_536, 100_000 - 65_536]
    );
    assert!(big.iter().all(|piece| piece.bytes().all(|b| b == b'z')));
}

fn flood_and_idle(dir: &Path, marker: &str) {
    common::write_file(
        dir,
        "tty.toml",
        &format!(
            r#"
[settings]
grace = "1s"

[[job]]
name = "flood"
shell = "while :; do echo tick; sleep 0.01; done"

[[job]]
name = "idle"
shell = "trap '' TERM; sleep {marker} & wait"
"#
        ),
    );
}

/// stdout on a terminal that goes away (the master side closed: every write fails with
/// EIO): forkyard stops every job and exits 129, without a panic.
#[test]
fn stdout_on_a_dead_terminal_exits_129() {
    let dir = tempdir();
    let marker = sleep_arg(1);
    flood_and_idle(dir.path(), &marker);
    let Pty { mut master, slave } = open_pty();
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "tty.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(slave)
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start forkyard");
    let mut first = [0u8; 32];
    master.read_exact(&mut first).expect("some output");
    wait_until(SLOW, "the idle job to start", || {
        pgrep_count(&sleep_pattern(&marker)) == 1
    });
    drop(master);
    let status = wait_with_deadline(&mut child, "dead terminal");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(129), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("cannot write"),
        "a hangup is not a disk error: {stderr}"
    );
    assert_eq!(pgrep_count(&sleep_pattern(&marker)), 0, "{stderr}");
}

/// stderr on a terminal that went away: messages are lost, nothing else. The run goes
/// on, and a SIGTERM still stops every job (143), without a panic.
#[test]
fn stderr_on_a_dead_terminal_is_no_reason_to_panic() {
    let dir = tempdir();
    let marker = sleep_arg(2);
    flood_and_idle(dir.path(), &marker);
    let Pty { master, slave } = open_pty();
    drop(master);
    let out_path = dir.path().join("out.txt");
    let mut child = Command::new(forkyard_bin())
        .args(["--headless", "tty.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(slave)
        .spawn()
        .expect("start forkyard");
    wait_until(SLOW, "the idle job to start", || {
        pgrep_count(&sleep_pattern(&marker)) == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_deadline(&mut child, "dead stderr");
    assert_eq!(status.code(), Some(143));
    assert_eq!(pgrep_count(&sleep_pattern(&marker)), 0);
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(out.contains("flood | tick"), "{out}");
    assert!(out.contains("forkyard summary: 2 jobs"), "{out}");
}

/// A tmux server of our own on a private socket, killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed (CI installs it)")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The real thing: headless forkyard in a tmux pane with stderr on the pane's terminal
/// (stdout into a file), and the pane's terminal gone (the tmux server killed). The
/// shell in the pane passes the hangup on as an interactive shell does (SIGHUP to its
/// job) and records forkyard's status: 129, every job stopped, its stderr gone.
#[test]
fn killed_pane_with_stderr_on_it_exits_129_with_nothing_left() {
    let dir = tempdir();
    let marker = sleep_arg(3);
    flood_and_idle(dir.path(), &marker);
    let tmux = Tmux {
        socket: format!("fy-cli-{}", std::process::id()),
    };
    let script = format!(
        "{} --headless tty.toml > out.txt & c=$!; trap 'kill -HUP $c' HUP; wait $c; wait $c; echo $? > status.txt",
        forkyard_bin().display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        "-c",
        &dir.path().display().to_string(),
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");
    wait_until(SLOW, "the idle job to start", || {
        pgrep_count(&sleep_pattern(&marker)) == 1
    });
    let out = tmux.cmd(&["kill-server"]);
    assert!(out.status.success(), "tmux kill-server: {out:?}");
    let status_path = dir.path().join("status.txt");
    wait_until(SLOW, "forkyard to exit", || {
        std::fs::read_to_string(&status_path).is_ok_and(|s| s.ends_with('\n'))
    });
    let status = std::fs::read_to_string(&status_path).unwrap();
    assert_eq!(status.trim(), "129");
    assert_eq!(pgrep_count(&sleep_pattern(&marker)), 0);
    let out = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    assert!(out.contains("flood | tick"), "{out}");
}
