//! forkyard's own words on stderr and stdout: written without ever panicking, and with
//! any control character from untrusted text made visible.
//!
//! `println!`/`eprintln!` panic when the descriptor is closed or broken (`forkyard | head`,
//! `2>&-`, a terminal that hung up); a message is never worth a crash, so every message
//! goes through [`say`]. Text forkyard did not write itself (a job name, an argument, a
//! key from the config, a program's error) may carry escape sequences that would retitle
//! or reprogram the user's terminal: [`visible`] turns every control character into a
//! printable escape such as `\x1b`.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Exit status of a program whose output pipe was closed by the reader (128 + SIGPIPE),
/// as a shell reports `yes | head -1`'s `yes`.
pub const EXIT_BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;
/// Exit status after the terminal went away (128 + SIGHUP).
pub const EXIT_HANGUP: i32 = 128 + libc::SIGHUP;

/// `text` with every control character (C0 but tab and newline, DEL, C1) and every
/// bidirectional override replaced by a visible escape: `\x1b`, `\x7f`, `\u{202e}`.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let code = c as u32;
            if code < 0x100 {
                out.push_str(&format!("\\x{code:02x}"));
            } else {
                out.push_str(&format!("\\u{{{code:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`visible`], newlines and tabs included: for a value that must stay on one line.
pub fn visible_inline(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) || c == '\n' || c == '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&visible(c.encode_utf8(&mut [0; 4]))),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Writes `forkyard: TEXT` and a newline to stderr, control characters made visible.
/// Errors (stderr closed, the terminal gone) are ignored: there is nowhere else to say it.
///
/// The caller never waits for stderr: a terminal stopped with ^S (or a pipe nobody
/// reads) blocks writes, and forkyard must still stop its jobs when told to. Messages go
/// through a queue to a writer thread; if stderr takes none for a long while the queue
/// fills up and further messages are counted, and the count is said as soon as stderr
/// takes lines again.
pub fn say(text: &str) {
    emit(format!("forkyard: {}\n", visible(text)));
}

/// Messages queued for stderr before new ones are counted instead.
const QUEUED_MESSAGES: usize = 1024;

struct Messages {
    queue: std::sync::mpsc::SyncSender<String>,
}

static MESSAGES: std::sync::OnceLock<Option<Messages>> = std::sync::OnceLock::new();
/// Messages queued and not written yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// Messages that found the queue full.
static DROPPED: AtomicUsize = AtomicUsize::new(0);

fn emit(line: String) {
    let messages = MESSAGES.get_or_init(|| {
        let (queue, lines) = std::sync::mpsc::sync_channel::<String>(QUEUED_MESSAGES);
        std::thread::Builder::new()
            .name("forkyard-stderr".into())
            .spawn(move || write_messages(lines))
            .ok()
            .map(|_| Messages { queue })
    });
    let Some(messages) = messages else {
        // No thread: write it here.
        let _ = io::stderr().lock().write_all(line.as_bytes());
        return;
    };
    PENDING.fetch_add(1, Ordering::SeqCst);
    if messages.queue.try_send(line).is_err() {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fn write_messages(lines: std::sync::mpsc::Receiver<String>) {
    for line in lines {
        let mut err = io::stderr().lock();
        let dropped = DROPPED.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let _ = writeln!(
                err,
                "forkyard: {dropped} message{} not shown: stderr took none for a while",
                if dropped == 1 { " was" } else { "s were" }
            );
        }
        let _ = err.write_all(line.as_bytes());
        PENDING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits (at most `patience`) until every message is written: for the end of the
/// process. A stopped terminal costs `patience`, never a hang.
pub fn flush_messages(patience: std::time::Duration) {
    let deadline = std::time::Instant::now() + patience;
    while PENDING.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Writes `text` to stderr as it is but for control characters made visible (for
/// messages that have their own form, like the command line's usage errors). Errors are
/// ignored, as in [`say`].
pub fn print_err(text: &str) {
    emit(visible(text).into_owned());
}

/// `say!("...", args)`: [`say`] with `format!` arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::stdio::say(&format!($($arg)*))
    };
}

/// Writes `text` to stdout and flushes it. The error is returned for [`exit_status`].
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// How a failed write to stdout ends forkyard, as Unix tools end: a reader that went away
/// (EPIPE) is 141 and quiet; a terminal that hung up (EIO) is 129; anything else (a full
/// disk) is said on stderr and is 1.
pub fn exit_status(err: &io::Error, what: &str) -> i32 {
    match err.raw_os_error() {
        Some(libc::EPIPE) => EXIT_BROKEN_PIPE,
        Some(libc::EIO) => EXIT_HANGUP,
        _ if err.kind() == io::ErrorKind::BrokenPipe => EXIT_BROKEN_PIPE,
        _ => {
            say!("cannot write {what}: {err}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(visible("plain text"), "plain text");
        assert_eq!(visible("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(visible("\u{9b}31m\u{202e}x"), "\\x9b31m\\u{202e}x");
        assert_eq!(visible("two\nlines\tok"), "two\nlines\tok");
        assert_eq!(visible_inline("two\nlines"), "two\\nlines");
        assert!(!visible("\x7f\x00\x1b").contains(|c: char| c.is_control()));
    }

    #[test]
    fn write_errors_map_to_unix_statuses() {
        let epipe = io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(exit_status(&epipe, "output"), 141);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(exit_status(&eio, "output"), 129);
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(exit_status(&enospc, "output"), 1);
    }
}
