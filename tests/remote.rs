//! Jobs on another host and a TUI attached over ssh, against a real OpenSSH server on
//! 127.0.0.1 that each test starts itself (Debian's openssh-server, a host key and a
//! client key made for the test, a free high port), stopped by its pid at the end. The
//! "other host" is this machine, so the remote side can be checked with pgrep too:
//! nothing may be left on either side. Fails when sshd or ssh is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;
#[path = "control_util/mod.rs"]
mod util;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{pgrep_count, sleep_arg, sleep_pattern};
use util::{DEADLINE, Scratch, Tmux, require};

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd: killed (by its pid) when dropped.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start() -> Sshd {
        assert!(
            std::path::Path::new(SSHD).exists(),
            "{SSHD} is needed (Debian's openssh-server; .ci/run installs it)"
        );
        require("ssh");
        require("ssh-keygen");
        let dir = tempfile::Builder::new()
            .prefix("forkyard-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "{out:?}");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("copy key");
        // sshd refuses to start without its privilege separation folder.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .expect("sshd_config");
        let child = Command::new(SSHD)
            .arg("-f")
            .arg(&config)
            .arg("-D")
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd { child, dir, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "sshd did not listen: {}",
                std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// `FORKYARD_SSH`: this server, this key, no known_hosts.
    fn ssh(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o LogLevel=ERROR -p {}",
            self.dir.path().join("client_key").display(),
            self.port
        )
    }

    /// forkyard with this server as its ssh, and itself as the remote forkyard.
    fn forkyard(&self, scratch: &Scratch, args: &[&str]) -> Command {
        let mut command = scratch.command(args);
        command
            .env("FORKYARD_SSH", self.ssh())
            .env("FORKYARD_REMOTE_BIN", util::bin());
        command
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose command line mentions `marker` anywhere: the local ssh (its remote
/// command names it), the remote forkyard, the job's own processes.
fn mentioning(marker: &str) -> usize {
    pgrep_count(&regex_escape(marker))
}

fn regex_escape(text: &str) -> String {
    text.replace('.', "\\.")
}

#[test]
fn a_host_job_runs_there_with_its_env_cwd_output_and_exit_status() {
    let sshd = Sshd::start();
    let scratch = Scratch::new();
    let there = scratch.path().join("there");
    std::fs::create_dir(&there).expect("mkdir");
    let config = scratch.write(
        "remote.toml",
        &format!(
            r#"
[[job]]
name = "rem"
host = "root@127.0.0.1"
cwd = "{there}"
env = {{ GREETING = "hi there" }}
shell = "echo $GREETING from $(pwd); sleep 0.3; echo to-stderr >&2; exit 4"
[[job]]
name = "pipe"
host = "root@127.0.0.1"
pipeline = [["seq", "3"], ["tr", "1", "X"]]
"#,
            there = there.display()
        ),
    );
    let report = scratch.path().join("report.json");
    let out = util::run({
        let mut command = sshd.forkyard(
            &scratch,
            &[
                "--headless",
                "--no-summary",
                "--report",
                &report.display().to_string(),
                &config.display().to_string(),
            ],
        );
        command.env("GREETING", "the local one");
        command
    });
    assert_eq!(out.code, 1, "rem exits 4: {out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.contains(&format!("rem  | hi there from {}", there.display()).as_str()),
        "env and cwd apply on the host: {out:?}"
    );
    assert!(lines.contains(&"rem  | to-stderr"), "{out:?}");
    assert!(
        lines.contains(&"pipe | X") && lines.contains(&"pipe | 3"),
        "{out:?}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let rem = &report["jobs"][0];
    assert_eq!(
        (rem["result"].clone(), rem["exit_code"].clone()),
        ("exited".into(), 4.into())
    );
    let elapsed = rem["elapsed_ms"].as_u64().expect("elapsed");
    assert!((300..15_000).contains(&elapsed), "{elapsed} ms");
    assert_eq!(report["jobs"][1]["exit_code"], 0);

    // A host that would be an ssh option, or stdin for a remote job: config errors.
    for (toml, at, says) in [
        (
            "host = \"-oProxyCommand=sh\"\ncmd = [\"true\"]",
            "bad.toml:3:8: job \"j\": key `host`",
            "must not start with `-`",
        ),
        (
            "host = \"a b\"\ncmd = [\"true\"]",
            "bad.toml:3:8",
            "must not contain spaces",
        ),
        (
            "host = \"h\"\nstdin = \"x\"\ncmd = [\"cat\"]",
            "bad.toml:4:9: job \"j\": key `stdin`",
            "reads no stdin",
        ),
    ] {
        let path = scratch.write("bad.toml", &format!("[[job]]\nname = \"j\"\n{toml}\n"));
        let out = scratch.run(&["check", &path.display().to_string()]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains(at) && out.stderr.contains(says),
            "{out:?}"
        );
    }
}

#[test]
fn stop_restart_and_kill_reach_the_remote_tree_and_nothing_is_left() {
    let sshd = Sshd::start();
    let scratch = Scratch::new();
    let (a, b, c) = (sleep_arg(70), sleep_arg(71), sleep_arg(72));
    let config = scratch.write(
        "rtree.toml",
        &format!(
            r#"
[[job]]
name = "stubborn"
host = "root@127.0.0.1"
grace = "1s"
shell = "trap '' TERM; sh -c 'trap \"\" TERM; sleep {a}' & sleep {b}; wait"
[[job]]
name = "again"
host = "root@127.0.0.1"
cmd = ["sleep", "{c}"]
"#
        ),
    );
    let out = util::run(sshd.forkyard(
        &scratch,
        &["up", "--name", "rtree", &config.display().to_string()],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    let session = util::Session {
        scratch: &scratch,
        name: "rtree".into(),
        pid: util::Conn::open(&scratch.socket("rtree")).hello["pid"]
            .as_u64()
            .map(|p| p as i32),
    };
    for mark in [&a, &b, &c] {
        wait_for(&format!("remote sleep {mark}"), || {
            pgrep_count(&sleep_pattern(mark)) == 1
        });
    }
    // The row says where it runs; CPU and RSS are not sampled there.
    let out = session.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("stubborn"))
        .expect("a row")
        .to_string();
    assert!(
        row.contains("running") && row.ends_with("root@127.0.0.1"),
        "{out:?}"
    );
    assert_eq!(row.matches("remote").count(), 2, "{row}");

    // A stop ends the connection; the remote forkyard stops the tree: SIGTERM, which it
    // ignores, then SIGKILL after the grace. Nothing is left on either side.
    let out = session.ctl(&["stop", "stubborn"]);
    assert_eq!(out.code, 0, "{out:?}");
    for mark in [&a, &b] {
        wait_for(&format!("{mark} gone everywhere"), || mentioning(mark) == 0);
    }

    // restart: the old remote run goes, a new one starts.
    let old_pid = session.job("again")["stages"][0]["pid"].clone();
    let out = session.ctl(&["restart", "again"]);
    assert_eq!(out.code, 0, "{out:?}");
    let job = session.job("again");
    assert_ne!(job["stages"][0]["pid"], old_pid);
    assert_eq!(job["restarts"], 1);
    wait_for("one remote run of again", || {
        pgrep_count(&sleep_pattern(&c)) == 1
    });
    // kill: the same, at once.
    let out = session.ctl(&["kill", "again"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_for("again gone everywhere", || mentioning(&c) == 0);

    let mut session = session;
    assert_eq!(session.down().code, 0);
    for mark in [&a, &b, &c] {
        assert_eq!(mentioning(mark), 0, "{mark} left behind");
    }
}

#[test]
fn attach_over_ssh_shows_and_drives_the_session() {
    let sshd = Sshd::start();
    let tmux = Tmux::new("ssh");
    let scratch = Scratch::new();
    // The remote side's `ctl --stdio` looks in root's default folder (no
    // XDG_RUNTIME_DIR over this ssh): a name of this test's own there.
    let name = format!("ssh-{}", std::process::id());
    let (mark, idle, far) = (sleep_arg(80), sleep_arg(81), sleep_arg(82));
    let config = scratch.write(
        "viassh.toml",
        &format!(
            "[[job]]\nname = \"mark\"\ncmd = [\"sleep\", \"{mark}\"]\n\
             [[job]]\nname = \"idle\"\ncmd = [\"sleep\", \"{idle}\"]\nautostart = false\n\
             [[job]]\nname = \"far\"\nhost = \"root@127.0.0.1\"\ncmd = [\"sleep\", \"{far}\"]\n"
        ),
    );
    let default_dir = |mut command: Command| {
        command.env_remove("XDG_RUNTIME_DIR");
        command
    };
    let out = util::run(default_dir(sshd.forkyard(
        &scratch,
        &["up", "--name", &name, &config.display().to_string()],
    )));
    assert_eq!(out.code, 0, "{out:?}");
    let socket = PathBuf::from(format!("/tmp/forkyard-0/{name}.sock"));
    let pid = util::Conn::open(&socket).hello["pid"]
        .as_u64()
        .expect("pid") as i32;
    struct Down(PathBuf, i32);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(util::bin())
                .args(["down", "--socket"])
                .arg(&self.0)
                .output();
            util::wait_gone(self.1);
            // The session's log, in root's shared folder: not left behind.
            let _ = std::fs::remove_file(self.0.with_extension("log"));
        }
    }
    let mut down = Some(Down(socket.clone(), pid));
    wait_for("the marked job", || pgrep_count(&sleep_pattern(&mark)) == 1);

    let script = format!(
        "FORKYARD_SSH=\"{}\" FORKYARD_REMOTE_BIN=\"{}\" \"{}\" attach --ssh root@127.0.0.1 {name}; \
         echo EXIT=$?; exec sleep 600",
        sshd.ssh(),
        util::bin(),
        util::bin()
    );
    tmux.window("s", &script);
    tmux.wait_for("s", "the session over ssh", |s| {
        s.contains(&format!("session {name}")) && s.contains("idle") && s.contains("mark")
    });
    // The remote job's row names its host; its CPU and RSS are not sampled.
    let screen = tmux.wait_for("s", "the remote job running", |s| {
        s.lines()
            .any(|l| l.contains("far (root@127.0.0.1)") && l.contains("running"))
    });
    let row = screen
        .lines()
        .find(|l| l.contains("far (root@127.0.0.1)"))
        .expect("row");
    assert!(row.trim_end().ends_with("remote"), "{screen}");
    tmux.keys("s", &["j", "s"]);
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--socket"];
        let socket = socket.display().to_string();
        all.push(&socket);
        all.extend_from_slice(args);
        util::run(default_dir(scratch.command(&all)))
    };
    wait_for("idle started through ssh", || {
        ctl(&["status"])
            .stdout
            .lines()
            .any(|l| l.starts_with("idle") && l.contains("running"))
    });
    tmux.keys("s", &["q"]);
    let screen = tmux.wait_for("s", "the detach", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_eq!(
        pgrep_count(&sleep_pattern(&mark)),
        1,
        "the jobs keep running"
    );
    assert_eq!(
        pgrep_count(&sleep_pattern(&idle)),
        1,
        "the jobs keep running"
    );

    // No such session on the other side: exit 3, and the other side says why.
    let out = util::run(sshd.forkyard(
        &scratch,
        &["attach", "--ssh", "root@127.0.0.1", "no-such-session-here"],
    ));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("no session named `no-such-session-here`"),
        "{out:?}"
    );

    drop(down.take());
    wait_for("nothing of the remote job left", || mentioning(&far) == 0);
    assert_eq!(pgrep_count(&sleep_pattern(&mark)), 0);
    assert_eq!(pgrep_count(&sleep_pattern(&idle)), 0);
    assert!(!socket.exists());
}
