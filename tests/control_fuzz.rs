//! The control socket under hostile input: random bytes, mutated requests, a 10 MB line,
//! half messages, a thousand requests in one write, 100 clients at once, a client that
//! never reads its replies and one that never reads its events. Each time the session
//! must go on answering (and supervising) as before.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;
#[path = "control_util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::sleep_arg;
use util::{Conn, DEADLINE, Scratch, Session};

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sends `bytes`, closes the sending side and reads every reply line to the end: each
/// one must be a JSON object. Returns them.
fn exchange(session: &Session<'_>, bytes: &[u8]) -> Vec<Value> {
    let mut conn = Conn::open(&session.socket());
    conn.stream.write_all(bytes).expect("write");
    conn.stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut replies = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match conn.reader.read_until(b'\n', &mut line) {
            Ok(0) => return replies,
            Ok(_) => {
                let value: Value = serde_json::from_slice(&line).unwrap_or_else(|err| {
                    panic!(
                        "reply to {:?} is not JSON ({err}): {:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                        String::from_utf8_lossy(&line)
                    )
                });
                assert!(value.is_object(), "{value}");
                replies.push(value);
            }
            Err(err) => panic!("read: {err}"),
        }
    }
}

fn still_answers(session: &Session<'_>) {
    let started = Instant::now();
    let mut conn = Conn::open(&session.socket());
    assert_eq!(conn.request(r#"{"cmd":"ping"}"#)["ok"], true);
    let status = conn.request(r#"{"cmd":"status"}"#);
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["report"]["jobs"].as_array().map(Vec::len), Some(2));
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn session_config() -> String {
    format!(
        r#"
[[job]]
name = "chatty"
shell = "while :; do seq 1 500; sleep 0.05; done"
[[job]]
name = "sleeper"
cmd = ["sleep", "{}"]
"#,
        sleep_arg(40)
    )
}

#[test]
fn random_and_mutated_requests_get_error_replies() {
    let scratch = Scratch::new();
    let session = scratch.up("fuzz", &session_config());
    let mut rng = Rng(0x5EED_F00D_1234_5678);
    let templates: [&[u8]; 5] = [
        br#"{"cmd":"status"}"#,
        br#"{"cmd":"ping","id":7}"#,
        br#"{"cmd":"logs","job":"chatty","tail":3}"#,
        br#"{"cmd":"events"}"#,
        br#"{"cmd":"attach"}"#,
    ];
    for case in 0..300 {
        let bytes: Vec<u8> = if case % 2 == 0 {
            // Random bytes, with newlines now and then.
            let len = rng.below(2048);
            (0..len)
                .map(|_| {
                    let b = rng.next() as u8;
                    if b.is_multiple_of(37) { b'\n' } else { b }
                })
                .collect()
        } else {
            // A request with a few bytes changed, cut or repeated.
            let mut bytes = templates[rng.below(templates.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes.truncate(at),
                    2 => {
                        let specials = b"{}[]\",:\\\n\x00\xff";
                        bytes.insert(at, specials[rng.below(specials.len())]);
                    }
                    _ => {
                        let copy = bytes.clone();
                        bytes.extend_from_slice(&copy);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            bytes.push(b'\n');
            bytes
        };
        let replies = exchange(&session, &bytes);
        for reply in &replies {
            // Either an error that says why, or what a valid request gets.
            if reply["ok"] == false {
                assert!(
                    reply["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{reply}"
                );
                assert!(reply["kind"].is_string(), "{reply}");
            }
        }
    }
    still_answers(&session);
}

#[test]
fn long_lines_half_messages_and_bursts() {
    let scratch = Scratch::new();
    let session = scratch.up("burst", &session_config());

    // 10 MB without a newline, then a newline and a request: an error, then the answer.
    let mut conn = Conn::open(&session.socket());
    let chunk = vec![b'a'; 1024 * 1024];
    for _ in 0..10 {
        conn.stream.write_all(&chunk).expect("write");
    }
    conn.send("\n{\"cmd\":\"ping\",\"id\":1}\n");
    let reply = conn.read().expect("reply");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("10485760 bytes is longer than the limit")),
        "{reply}"
    );
    assert_eq!(conn.read().expect("reply")["id"], 1);
    // A 10 MB line that starts as valid JSON is no better.
    let mut line = br#"{"cmd":"status","pad":""#.to_vec();
    line.resize(10 * 1024 * 1024, b'x');
    line.extend_from_slice(b"\"}\n");
    conn.stream.write_all(&line).expect("write");
    assert_eq!(conn.read().expect("reply")["kind"], "usage");
    assert_eq!(conn.request(r#"{"cmd":"ping"}"#)["ok"], true);

    // Half a request, the rest later: one request.
    conn.send(r#"{"cmd":"sta"#);
    std::thread::sleep(Duration::from_millis(200));
    conn.send("tus\"}\n");
    assert_eq!(conn.read().expect("reply")["ok"], true);
    // Half a request and the end of the connection: an error, then the server closes.
    let replies = exchange(&session, br#"{"cmd":"sta"#);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a JSON object")),
        "{replies:?}"
    );
    // A request cut off without a newline at the end still counts.
    let replies = exchange(&session, br#"{"cmd":"ping","id":"last"}"#);
    assert_eq!(replies[0]["id"], "last", "{replies:?}");

    // A thousand requests in one write: a thousand replies, in order.
    let burst: String = (0..1000)
        .map(|i| format!("{{\"cmd\":\"ping\",\"id\":{i}}}\n"))
        .collect();
    let replies = exchange(&session, burst.as_bytes());
    let ids: Vec<u64> = replies.iter().filter_map(|r| r["id"].as_u64()).collect();
    assert_eq!(ids, (0..1000).collect::<Vec<u64>>());
    // Blank lines are skipped, not answered.
    assert_eq!(exchange(&session, b"\n\n  \n").len(), 0);
    still_answers(&session);
}

#[test]
fn a_hundred_clients_at_once() {
    let scratch = Scratch::new();
    let session = scratch.up("crowd", &session_config());
    let path = session.socket();
    // Some hold an event stream open the whole time.
    let streams: Vec<Conn> = (0..20)
        .map(|_| {
            let mut conn = Conn::open(&path);
            assert_eq!(conn.request(r#"{"cmd":"events"}"#)["stream"], "events");
            conn
        })
        .collect();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&path);
                for _ in 0..5 {
                    let reply = conn.request(r#"{"cmd":"status"}"#);
                    assert_eq!(reply["ok"], true, "client {i}: {reply}");
                    assert_eq!(reply["jobs"].as_array().map(Vec::len), Some(2));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    drop(streams);
    still_answers(&session);
}

#[test]
fn clients_that_never_read_are_dropped_and_cost_nothing() {
    let scratch = Scratch::new();
    let session = scratch.up("lazy", &session_config());
    let path = session.socket();

    // One asks for replies and never reads them: its socket fills, its writes wait.
    let mut lazy = UnixStream::connect(&path).expect("connect");
    let requests = "{\"cmd\":\"status\"}\n".repeat(2000);
    let writer = {
        let mut lazy = lazy.try_clone().expect("clone");
        std::thread::spawn(move || {
            // Blocks once the server stops reading; errors when the server drops us.
            let _ = lazy.write_all(requests.as_bytes());
        })
    };
    // One subscribes to events and never reads them.
    let mut deaf = UnixStream::connect(&path).expect("connect");
    deaf.write_all(b"{\"cmd\":\"events\"}\n").expect("write");

    // Meanwhile everyone else is answered at once, and the jobs go on.
    let before = session.job("chatty")["stdout_bytes"]
        .as_u64()
        .expect("bytes");
    let mut conn = Conn::open(&path);
    let mut slowest = Duration::ZERO;
    // 5000 notices ("sent SIGCONT to sleeper"): more events than a client may leave unread.
    for _ in 0..5000 {
        let started = Instant::now();
        let reply = conn.request(r#"{"cmd":"signal","job":"sleeper","signal":"CONT"}"#);
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply["ok"], true, "{reply}");
    }
    assert!(
        slowest < Duration::from_secs(2),
        "slowest reply {slowest:?}"
    );
    let after = session.job("chatty")["stdout_bytes"]
        .as_u64()
        .expect("bytes");
    assert!(
        after > before,
        "the chatty job went on: {before} -> {after}"
    );

    // The deaf subscriber was dropped: what it finally reads ends with "lagged".
    deaf.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut last = String::new();
    for line in BufReader::new(&mut deaf).lines() {
        let Ok(line) = line else { break };
        last = line;
    }
    let last: Value = serde_json::from_str(&last).expect("json");
    assert_eq!(last["kind"], "lagged", "{last}");

    // The one that never reads is dropped after the write timeout (10 s): its socket is
    // closed by the server, so writing to it fails.
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if lazy.write_all(b"{\"cmd\":\"ping\"}\n").is_err() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "a client that never reads was never dropped"
        );
    }
    let mut rest = Vec::new();
    let _ = lazy.read_to_end(&mut rest);
    let _ = writer.join();
    still_answers(&session);
}
