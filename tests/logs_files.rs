//! Log files end to end: the forkyard binary runs real jobs headless with `--log-dir`,
//! and each log is parsed back into what the job wrote, byte for byte (every stream, every
//! pipeline stage, every run). Rotation, a folder that cannot be written (a read-only
//! tmpfs, exit status 2 before anything runs), a full file system (a 256 KiB tmpfs), a log
//! that stops taking writes and one that takes them slowly (a FIFO as the log file) are
//! each run for real. The file systems are mounted in a private mount namespace
//! (`unshare -rm`): without unshare or user namespaces those tests fail, they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{forkyard_bin, tempdir, write_file};

/// One record of a plain log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    time: String,
    stage: Option<usize>,
    /// `|`, `!` or `#`.
    mark: u8,
    eol: bool,
    text: Vec<u8>,
}

/// Parses a plain log; panics (naming the line) on a record that does not follow the
/// documented format.
fn parse_plain(bytes: &[u8]) -> Vec<Record> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "a log ends with a whole record"
    );
    let mut records = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return records;
    }
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        assert!(line.len() >= 15, "record {n} too short: {}", shown());
        let time = String::from_utf8(line[..12].to_vec()).expect("time is ASCII");
        let t = time.as_bytes();
        assert!(
            t[2] == b':' && t[5] == b':' && t[8] == b'.' && line[12] == b' ',
            "record {n} has no time: {}",
            shown()
        );
        let mut rest = &line[13..];
        let mut stage = None;
        if rest.first() == Some(&b'[') {
            let close = rest
                .iter()
                .position(|b| *b == b']')
                .expect("stage tag ends");
            let n: usize = std::str::from_utf8(&rest[1..close])
                .unwrap()
                .parse()
                .unwrap();
            stage = Some(n);
            assert_eq!(rest[close + 1], b' ');
            rest = &rest[close + 2..];
        }
        let mark = rest[0];
        assert!(
            matches!(mark, b'|' | b'!' | b'#'),
            "record {n}: mark {}",
            shown()
        );
        rest = &rest[1..];
        let eol = rest.first() != Some(&b'+');
        if !eol {
            rest = &rest[1..];
        }
        assert_eq!(rest.first(), Some(&b' '), "record {n}: {}", shown());
        records.push(Record {
            time,
            stage,
            mark,
            eol,
            text: rest[1..].to_vec(),
        });
    }
    records
}

/// Parses a JSON-lines log into the same records.
fn parse_jsonl(bytes: &[u8]) -> Vec<Record> {
    let text = std::str::from_utf8(bytes).expect("a JSON-lines log is UTF-8");
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            let time = v["time"].as_str().expect("time").to_string();
            assert!(
                time.ends_with('Z') && time.len() == 24,
                "RFC 3339 UTC: {time}"
            );
            if let Some(note) = v.get("forkyard") {
                return Record {
                    time,
                    stage: None,
                    mark: b'#',
                    eol: true,
                    text: note.as_str().expect("note").as_bytes().to_vec(),
                };
            }
            let mark = match v["stream"].as_str() {
                Some("stdout") => b'|',
                Some("stderr") => b'!',
                other => panic!("stream {other:?}"),
            };
            let text = match (v.get("text"), v.get("base64")) {
                (Some(t), None) => t.as_str().expect("text").as_bytes().to_vec(),
                (None, Some(b)) => unbase64(b.as_str().expect("base64")),
                _ => panic!("text or base64: {line}"),
            };
            Record {
                time,
                stage: v.get("stage").map(|s| s.as_u64().expect("stage") as usize),
                mark,
                eol: v.get("eol").is_none_or(|e| e.as_bool() != Some(false)),
                text,
            }
        })
        .collect()
}

fn unbase64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// What the job wrote on one stream of one stage, put back together from its records.
fn stream(records: &[Record], stage: Option<usize>, mark: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.mark == mark && r.stage == stage)
    {
        out.extend_from_slice(&r.text);
        if r.eol {
            out.push(b'\n');
        }
    }
    out
}

fn notes(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.mark == b'#')
        .map(|r| String::from_utf8_lossy(&r.text).into_owned())
        .collect()
}

/// Runs `forkyard --headless ARGS` in `dir`, stdout and stderr kept.
fn forkyard(dir: &Path, args: &[&str]) -> Output {
    Command::new(forkyard_bin())
        .current_dir(dir)
        .arg("--headless")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run forkyard")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A job that writes 200,000 lines on each of stdout and stderr in chunks cut anywhere
/// (mid-line, mid-character), with `\r\n`, empty lines, bytes that are not UTF-8, lines of
/// 70 KB and 150 KB and a last line without newline on each stream; it keeps a copy of
/// everything it wrote in `expected.out` and `expected.err`.
const GENERATOR: &str = r#"
import os, random
rng = random.Random(7)
streams = {1: bytearray(), 2: bytearray()}
for fd in (1, 2):
    out = streams[fd]
    for i in range(200000):
        k = rng.randrange(40)
        if k == 0:
            out += b"\n"
        elif k == 1:
            out += b"crlf %d\r\n" % i
        elif k == 2:
            out += b"bytes \xff\xfe\xc3 %d\n" % i
        else:
            out += b"%s %d %s\n" % (b"out" if fd == 1 else b"err", i, b"x" * rng.randrange(30))
        if i == 1000:
            out += b"L" * 70000 + b"\n"
        if i == 150000:
            out += b"M" * 150000 + b"\n"
    out += b"the end without newline " + (b"1" if fd == 1 else b"2")
for fd, name in ((1, "expected.out"), (2, "expected.err")):
    with open(name, "wb") as f:
        f.write(streams[fd])
pos = {1: 0, 2: 0}
while pos[1] < len(streams[1]) or pos[2] < len(streams[2]):
    fd = rng.choice((1, 2))
    n = rng.choice((1, 7, 100, 4096, 65536, 200000))
    data = streams[fd][pos[fd]:pos[fd] + n]
    if data:
        os.write(fd, bytes(data))
        pos[fd] += len(data)
"#;

fn check_byte_for_byte(format: &str, parse: fn(&[u8]) -> Vec<Record>) {
    let dir = tempdir();
    write_file(dir.path(), "gen.py", GENERATOR);
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[[job]]\nname = \"gen\"\ncmd = [\"python3\", \"gen.py\"]\n",
    );
    let out = forkyard(
        dir.path(),
        &[
            "--log-dir",
            "logs",
            "--log-format",
            format,
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = std::fs::read(dir.path().join("logs/gen.log")).expect("the log exists");
    let records = parse(&log);
    let want_out = std::fs::read(dir.path().join("expected.out")).unwrap();
    let want_err = std::fs::read(dir.path().join("expected.err")).unwrap();
    assert!(want_out.len() > 3_000_000, "the generator ran");
    let got_out = stream(&records, None, b'|');
    let got_err = stream(&records, None, b'!');
    // Compared by length and hash first: a mismatch of 4 MB would print for ages.
    assert_eq!(got_out.len(), want_out.len(), "stdout length");
    assert!(got_out == want_out, "stdout differs");
    assert_eq!(got_err.len(), want_err.len(), "stderr length");
    assert!(got_err == want_err, "stderr differs");
    // Both streams were interleaved, in arrival order: stderr records are not all at
    // the end.
    let first_err = records.iter().position(|r| r.mark == b'!').unwrap();
    let last_out = records.iter().rposition(|r| r.mark == b'|').unwrap();
    assert!(first_err < last_out, "stdout and stderr interleave");
    // The long lines stayed whole (one record, not 64 KiB pieces, when they arrived
    // complete), the last lines are marked as having no newline.
    let last = |mark| records.iter().rfind(|r| r.mark == mark).unwrap();
    assert!(!last(b'|').eol && last(b'|').text.ends_with(b"newline 1"));
    assert!(!last(b'!').eol && last(b'!').text.ends_with(b"newline 2"));
    let notes = notes(&records);
    assert!(
        notes.iter().any(|n| n == "run 1 started: python3 gen.py"),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("ended: exit 0 after")),
        "{notes:?}"
    );
}

#[test]
fn a_plain_log_holds_every_byte_of_both_streams_in_arrival_order() {
    check_byte_for_byte("plain", parse_plain);
}

#[test]
fn a_jsonl_log_holds_every_byte_of_both_streams() {
    check_byte_for_byte("jsonl", parse_jsonl);
}

#[test]
fn every_stage_of_a_three_stage_pipeline_is_tagged_and_complete() {
    let dir = tempdir();
    write_file(
        dir.path(),
        "s1.py",
        "import sys\nfor i in range(20000):\n    print(f'line {i}')\n    if i % 100 == 0:\n        print(f's1 {i}', file=sys.stderr)\n",
    );
    write_file(
        dir.path(),
        "s2.py",
        "import sys\nfor n, line in enumerate(sys.stdin):\n    sys.stdout.write(line.upper())\n    if n % 1000 == 0:\n        print(f's2 {n}', file=sys.stderr)\n",
    );
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[settings]\nlog_dir = \"logs\"\n\n[[job]]\nname = \"pipe\"\npipeline = [[\"python3\", \"s1.py\"], [\"python3\", \"s2.py\"], \"cat; echo s3 done >&2\"]\n",
    );
    let out = forkyard(dir.path(), &[config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse_plain(&std::fs::read(dir.path().join("logs/pipe.log")).unwrap());
    let lines = |range: std::ops::Range<usize>, f: &dyn Fn(usize) -> Option<String>| {
        range
            .filter_map(f)
            .map(|l| l + "\n")
            .collect::<String>()
            .into_bytes()
    };
    assert_eq!(
        stream(&records, Some(3), b'|'),
        lines(0..20000, &|i| Some(format!("LINE {i}")))
    );
    assert_eq!(
        stream(&records, Some(1), b'!'),
        lines(0..20000, &|i| (i % 100 == 0).then(|| format!("s1 {i}")))
    );
    assert_eq!(
        stream(&records, Some(2), b'!'),
        lines(0..20000, &|i| (i % 1000 == 0).then(|| format!("s2 {i}")))
    );
    assert_eq!(stream(&records, Some(3), b'!'), b"s3 done\n");
    // No untagged output in a pipeline's log: every record says its stage.
    assert!(records.iter().all(|r| r.mark == b'#' || r.stage.is_some()));
}

#[test]
fn restarts_are_marked_and_each_run_is_complete() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        r#"[[job]]
name = "flaky"
shell = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; seq 1 3000 | sed \"s/^/run $n line /\"; echo run $n err >&2; [ $n -ge 3 ]"
restart = "on-failure"
max_restarts = 5
"#,
    );
    let out = forkyard(dir.path(), &["--log-dir", "logs", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse_plain(&std::fs::read(dir.path().join("logs/flaky.log")).unwrap());
    let starts: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let text = String::from_utf8_lossy(&r.text);
            r.mark == b'#' && text.starts_with("run ") && text.contains(" started")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 3, "{:?}", notes(&records));
    let ends: Vec<String> = notes(&records)
        .into_iter()
        .filter(|n| n.starts_with("ended: "))
        .collect();
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!(ends[0].starts_with("ended: exit 1") && ends[0].ends_with("it will be restarted"));
    assert!(ends[2].starts_with("ended: exit 0"));
    // Each run's lines lie between its marker and the next one, complete and in order.
    for run in 1..=3usize {
        let from = starts[run - 1];
        let to = starts.get(run).copied().unwrap_or(records.len());
        let section = &records[from..to];
        let want: String = (1..=3000)
            .map(|i| format!("run {run} line {i}\n"))
            .collect();
        assert_eq!(
            String::from_utf8(stream(section, None, b'|')).unwrap(),
            want,
            "run {run}"
        );
        assert_eq!(
            stream(section, None, b'!'),
            format!("run {run} err\n").into_bytes()
        );
    }
}

#[test]
fn logs_rotate_at_the_size_limit_and_keep_log_keep_files() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[settings]\nlog_dir = \"logs\"\nlog_max_size = \"4K\"\nlog_keep = 2\n\n[[job]]\nname = \"big\"\ncmd = [\"seq\", \"1\", \"5000\"]\n",
    );
    let out = forkyard(dir.path(), &[config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let logs = dir.path().join("logs");
    let current = logs.join("big.log");
    let one = logs.join("big.log.1");
    let two = logs.join("big.log.2");
    for path in [&current, &one, &two] {
        let len = std::fs::metadata(path).expect("kept").len();
        assert!(len <= 4096, "{} is {len} bytes", path.display());
    }
    assert!(
        !logs.join("big.log.3").exists(),
        "only log_keep files are kept"
    );
    // The kept files, oldest first, hold the end of the output without a gap.
    let mut text = Vec::new();
    for path in [&two, &one, &current] {
        let records = parse_plain(&std::fs::read(path).unwrap());
        // Each rotated-to file says where the earlier lines went.
        if path != &two {
            assert!(
                notes(&records)
                    .iter()
                    .any(|n| n.starts_with("rotated: earlier output is in")),
                "{}",
                path.display()
            );
        }
        text.extend(stream(&records, None, b'|'));
    }
    let text = String::from_utf8(text).unwrap();
    let first: usize = text.lines().next().unwrap().parse().unwrap();
    let want: String = (first..=5000).map(|i| format!("{i}\n")).collect();
    assert_eq!(text, want);
    assert!(first > 1, "earlier files were removed");
    // The full size of the current file was used before rotating: the three files
    // together are close to 3 × 4 KiB.
    let total: u64 = [&current, &one, &two]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total > 2 * 4096, "{total}");
}

#[test]
fn log_false_and_a_log_path_per_job() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        r#"[settings]
log_dir = "logs"

[[job]]
name = "quiet"
cmd = ["echo", "not logged"]
log = false

[[job]]
name = "elsewhere"
cmd = ["echo", "logged elsewhere"]
log = "other/place.txt"

[[job]]
name = "usual"
cmd = ["echo", "in the folder"]
"#,
    );
    let check = Command::new(forkyard_bin())
        .current_dir(dir.path())
        .args(["check", config.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&check.stdout);
    assert!(listing.contains("logs (plain):"), "{listing}");
    assert!(
        listing.contains("elsewhere: ") && listing.contains("other/place.txt"),
        "{listing}"
    );
    assert!(!listing.contains("quiet: "), "{listing}");
    let out = forkyard(dir.path(), &[config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.path().join("logs/quiet.log").exists());
    let elsewhere = parse_plain(&std::fs::read(dir.path().join("other/place.txt")).unwrap());
    assert_eq!(stream(&elsewhere, None, b'|'), b"logged elsewhere\n");
    let usual = parse_plain(&std::fs::read(dir.path().join("logs/usual.log")).unwrap());
    assert_eq!(stream(&usual, None, b'|'), b"in the folder\n");
}

#[test]
fn a_pty_job_is_logged_as_its_terminal_received_it() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        r#"[settings]
log_dir = "logs"

[[job]]
name = "tty"
pty = true
shell = "if [ -t 1 ]; then echo on a terminal; fi; printf 'partial'"
"#,
    );
    let out = forkyard(dir.path(), &[config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let records = parse_plain(&std::fs::read(dir.path().join("logs/tty.log")).unwrap());
    // The terminal's line discipline turns `\n` into `\r\n`; the log keeps its bytes.
    assert_eq!(
        stream(&records, None, b'|'),
        b"on a terminal\r\npartial",
        "{records:?}"
    );
    assert!(
        notes(&records).iter().any(|n| n.contains("exit 0")),
        "{records:?}"
    );
}

#[test]
fn two_jobs_on_one_log_file_is_an_error_at_start() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[[job]]\nname = \"a\"\ncmd = [\"touch\", \"ran-a\"]\nlog = \"same.log\"\n\n[[job]]\nname = \"b\"\ncmd = [\"touch\", \"ran-b\"]\nlog = \"./same.log\"\n",
    );
    let out = forkyard(dir.path(), &[config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("jobs `a` and `b` would both log to"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("ran-a").exists(), "nothing ran");
}

/// Runs `script` (sh) in a private mount namespace where it may mount file systems.
fn in_mount_namespace(script: &str) -> Output {
    Command::new("unshare")
        .args(["-rm", "sh", "-ec", script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare is needed for the file system tests (util-linux)")
}

#[test]
fn a_read_only_log_folder_is_an_error_at_start_and_nothing_runs() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[[job]]\nname = \"web\"\ncmd = [\"touch\", \"ran\"]\n",
    );
    let d = dir.path().display();
    let bin = forkyard_bin();
    let out = in_mount_namespace(&format!(
        "mkdir -p {d}/ro {d}/ro2\n\
         mount -t tmpfs -o size=64k,ro tmpfs {d}/ro\n\
         mount -t tmpfs -o size=64k tmpfs {d}/ro2\n\
         mkdir {d}/ro2/logs\n\
         mount -o remount,ro {d}/ro2\n\
         cd {d}\n\
         set +e\n\
         '{bin}' --headless --log-dir {d}/ro/logs {config} 2> err1; echo \"code1=$?\"\n\
         '{bin}' --headless --log-dir {d}/ro2/logs {config} 2> err2; echo \"code2=$?\"\n",
        bin = bin.display(),
        config = config.display(),
    ));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "unshare: {}{}", said, stderr(&out));
    // A folder that cannot be created, and one that exists but is read-only.
    assert!(said.contains("code1=2"), "{said}");
    assert!(said.contains("code2=2"), "{said}");
    let err1 = std::fs::read_to_string(dir.path().join("err1")).unwrap();
    assert!(
        err1.contains("cannot create the log folder") && err1.contains("Read-only file system"),
        "{err1}"
    );
    let err2 = std::fs::read_to_string(dir.path().join("err2")).unwrap();
    assert!(
        err2.contains("cannot write the log of job `web`")
            && err2.contains("Read-only file system"),
        "{err2}"
    );
    assert!(!dir.path().join("ran").exists(), "no job ran");
}

#[test]
fn a_full_file_system_loses_log_text_counted_said_and_noted_once_there_is_room() {
    let dir = tempdir();
    let d = dir.path().display();
    // 300 KB of output fills the 256 KiB file system (taken partly by `filler`); then
    // the job frees room itself and writes more.
    let config = write_file(
        dir.path(),
        "jobs.toml",
        &format!(
            "[[job]]\nname = \"fill\"\nshell = \"seq 1 40000 | sed s/^/before-/; sleep 1.5; rm {d}/fs/filler; seq 1 100 | sed s/^/after-/\"\n"
        ),
    );
    let bin = forkyard_bin();
    let out = in_mount_namespace(&format!(
        "mkdir -p {d}/fs\n\
         mount -t tmpfs -o size=256k tmpfs {d}/fs\n\
         head -c 100000 /dev/zero > {d}/fs/filler\n\
         cd {d}\n\
         set +e\n\
         '{bin}' --headless --log-dir {d}/fs/logs {config} > out 2> err; echo \"code=$?\"\n\
         cp {d}/fs/logs/fill.log {d}/fill.log\n",
        bin = bin.display(),
        config = config.display(),
    ));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "unshare: {}{}", said, stderr(&out));
    // The job itself is unaffected: it succeeded, and stdout got every line.
    assert!(said.contains("code=0"), "{said}");
    let printed = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert_eq!(printed.matches("| before-").count(), 40000);
    assert_eq!(printed.matches("| after-").count(), 100);
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert!(
        err.contains("No space left on device") && err.contains("cannot write"),
        "{err}"
    );
    assert!(err.contains("writing") && err.contains("again"), "{err}");
    assert!(
        err.contains("is incomplete") && err.contains("not written"),
        "{err}"
    );
    let records = parse_plain(&std::fs::read(dir.path().join("fill.log")).unwrap());
    let notes = notes(&records);
    let note = notes
        .iter()
        .position(|n| n.contains("could not be written here") && n.contains("No space left"))
        .unwrap_or_else(|| panic!("a note of the loss: {notes:?}"));
    let text = String::from_utf8(stream(&records, None, b'|')).unwrap();
    // After the note, every line written once there was room.
    let after: Vec<&str> = text.lines().filter(|l| l.starts_with("after-")).collect();
    assert_eq!(after.len(), 100, "{notes:?}");
    let note_at = records
        .iter()
        .position(|r| r.mark == b'#' && String::from_utf8_lossy(&r.text) == notes[note])
        .unwrap();
    let first_after = records
        .iter()
        .position(|r| r.text.starts_with(b"after-"))
        .unwrap();
    assert!(note_at < first_after);
}

/// A FIFO as a job's log file: the writer's writes go to whoever reads it, at the pace
/// the test reads.
fn fifo(dir: &Path) -> PathBuf {
    let path = dir.join("log.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    path
}

/// Opens the FIFO for reading without waiting for a writer.
fn open_reader(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// Reads the FIFO to its end, sleeping `pause` between reads of `size` bytes.
fn read_fifo(mut file: std::fs::File, size: usize, pause: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0; size];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut writer_seen = false;
    loop {
        assert!(Instant::now() < deadline, "the log never ended");
        match file.read(&mut buf) {
            Ok(0) if writer_seen => return all,
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(n) => {
                writer_seen = true;
                all.extend_from_slice(&buf[..n]);
                std::thread::sleep(pause);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                writer_seen = true;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    }
}

fn fifo_config(dir: &Path, fifo: &Path, lines: u32) -> PathBuf {
    write_file(
        dir,
        "jobs.toml",
        &format!(
            "[[job]]\nname = \"flood\"\ncmd = [\"seq\", \"1\", \"{lines}\"]\nlog = \"{}\"\n",
            fifo.display()
        ),
    )
}

fn spawn_forkyard(dir: &Path, config: &Path) -> std::process::Child {
    Command::new(forkyard_bin())
        .current_dir(dir)
        .args(["--headless", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("out")).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn a_slow_log_slows_the_job_and_loses_nothing() {
    let dir = tempdir();
    let fifo = fifo(dir.path());
    let reader = open_reader(&fifo);
    let config = fifo_config(dir.path(), &fifo, 4_000_000);
    let mut child = spawn_forkyard(dir.path(), &config);
    // 31 MB through a reader of about 25 MB/s: the queue (16 MiB for one job) fills and
    // the job waits for the log, but the reader never pauses for a whole second.
    let log = read_fifo(reader, 256 * 1024, Duration::from_millis(10));
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("dropped") && !err.contains("behind"), "{err}");
    let records = parse_plain(&log);
    let text = stream(&records, None, b'|');
    let want: String = (1..=4_000_000).map(|i| format!("{i}\n")).collect();
    assert!(
        text == want.as_bytes(),
        "the log is complete ({} bytes)",
        text.len()
    );
}

#[test]
fn a_log_that_takes_nothing_holds_the_job_about_a_second_then_drops_and_counts() {
    let dir = tempdir();
    let fifo = fifo(dir.path());
    let reader = open_reader(&fifo);
    let config = fifo_config(dir.path(), &fifo, 5_000_000);
    let started = Instant::now();
    let mut child = spawn_forkyard(dir.path(), &config);
    // Nothing reads the log: the job still finishes (forkyard says so on stderr) while
    // the FIFO is full, about a second (the patience) after the queue filled.
    let err_path = dir.path().join("err");
    common::wait_until(Duration::from_secs(30), "the job to end", || {
        std::fs::read_to_string(&err_path).is_ok_and(|e| e.contains("flood exit 0"))
    });
    let held = started.elapsed();
    assert!(held < Duration::from_secs(15), "{held:?}");
    let log = read_fifo(reader, 1 << 20, Duration::ZERO);
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("the log files have taken nothing"), "{err}");
    assert!(
        err.contains("is incomplete") && err.contains("dropped because the disk did not keep up"),
        "{err}"
    );
    let records = parse_plain(&log);
    let gaps: Vec<(u64, String)> = records
        .iter()
        .filter(|r| r.mark == b'#')
        .filter_map(|r| {
            let text = String::from_utf8_lossy(&r.text).into_owned();
            let lines = text
                .split_once(" (")?
                .1
                .split_once(" lines)")?
                .0
                .parse()
                .ok()?;
            text.contains("missing here").then_some((lines, text))
        })
        .collect();
    assert!(!gaps.is_empty(), "a note where output is missing");
    // Every line is either in the log or counted in a gap: nothing vanished.
    let complete = records.iter().filter(|r| r.mark == b'|' && r.eol).count() as u64;
    let missing: u64 = gaps.iter().map(|(n, _)| n).sum();
    assert_eq!(complete + missing, 5_000_000, "{gaps:?}");
}

#[test]
fn headless_timestamps_start_every_line_with_its_arrival_time() {
    let dir = tempdir();
    let config = write_file(
        dir.path(),
        "jobs.toml",
        "[[job]]\nname = \"t\"\nshell = \"echo one; sleep 0.3; echo two >&2\"\n",
    );
    let out = forkyard(
        dir.path(),
        &["--timestamps", "--no-summary", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let ms = |line: &str| -> i64 {
        let t = line.as_bytes();
        assert!(
            t[2] == b':' && t[5] == b':' && t[8] == b'.' && t[12] == b' ',
            "{line}"
        );
        let n = |r: std::ops::Range<usize>| line[r].parse::<i64>().unwrap();
        ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
    };
    assert_eq!(&lines[0][13..], "t | one");
    assert_eq!(&lines[1][13..], "t ! two");
    let gap = (ms(lines[1]) - ms(lines[0])).rem_euclid(86_400_000);
    assert!((250..2000).contains(&gap), "{gap} ms apart: {text}");
}
