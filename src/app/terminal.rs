//! Entering and leaving the full-screen terminal mode, on every exit path, and the one
//! writer every frame goes through.
//!
//! Frames are written by [`Out`], which holds a lock for each write and writes nothing
//! once the terminal has been restored. The panic hook takes the same lock, restores the
//! terminal (cursor shown, cooked mode, main screen) and only then lets the panic message
//! print: a frame being drawn on another thread can neither interleave with the restore
//! nor land on top of the message afterwards. Restoring is idempotent, so the session's
//! drop, the panic hook and an explicit call can all run.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crossterm::event::DisableMouseCapture;
use crossterm::queue;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

/// Frames are written in one go rather than line by line.
pub type Backend = CrosstermBackend<BufWriter<Out>>;

/// True while the terminal is in raw mode on the alternate screen: [`Out`] writes only
/// then.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Held while writing to the terminal and while restoring it.
static WRITING: Mutex<()> = Mutex::new(());
static PANIC_HOOK: Once = Once::new();

fn lock() -> MutexGuard<'static, ()> {
    WRITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lock, unless another thread holds it for longer than `patience` (a write stuck on
/// a terminal that stopped reading, or this very thread panicking inside a write).
fn lock_within(patience: Duration) -> Option<MutexGuard<'static, ()>> {
    let deadline = Instant::now() + patience;
    loop {
        match WRITING.try_lock() {
            Ok(guard) => return Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

/// Writes all of `bytes` to stdout's descriptor (not through `std::io::stdout`, whose
/// lock a stuck frame would hold).
fn write_fd(mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writing from a live slice to fd 1.
        let n = unsafe { libc::write(libc::STDOUT_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// The terminal as the frames see it: stdout while the UI owns the screen, nowhere after
/// the terminal was restored (a late frame must not overwrite a panic message or the
/// shell's prompt). A write error (EIO: the terminal hung up) reaches the draw, which
/// ends the TUI like SIGHUP.
pub struct Out;

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _guard = lock();
        if ACTIVE.load(Ordering::SeqCst) {
            write_fd(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Puts the terminal back as it was (cooked mode, main screen, cursor shown). Safe to call
/// from anywhere, any number of times; failures (a terminal that is gone) are ignored.
pub fn restore() {
    let _guard = lock_within(Duration::from_millis(200));
    restore_locked();
}

fn restore_locked() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut bytes = Vec::new();
        let _ = queue!(
            bytes,
            crossterm::event::DisableBracketedPaste,
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = write_fd(&bytes);
        let _ = disable_raw_mode();
        crate::supervisor::watchdog::terminal_taken(false);
    }
}

/// The terminal while the UI owns it; dropping it restores the terminal.
pub struct Session {
    pub terminal: Terminal<Backend>,
}

impl Drop for Session {
    fn drop(&mut self) {
        restore();
    }
}

impl Session {
    /// Bytes of forkyard's own between frames: the clipboard's OSC 52, which
    /// `app::reading::osc52` builds (no child output ever goes this way).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        Out.write_all(bytes)
    }
}

/// Press and wheel reports in SGR form (no motion: it would wake the loop for nothing);
/// bracketed paste, so a paste is one event (typed into a job, or a prompt) and never
/// runs as keys.
const MOUSE_ON: &[u8] = b"\x1b[?1000h\x1b[?1002h\x1b[?1006h\x1b[?2004h";

/// Raw mode, alternate screen, mouse reports, hidden cursor; frames of `size` cells.
pub fn enter((width, height): (u16, u16)) -> io::Result<Session> {
    install_panic_hook();
    enable_raw_mode()?;
    {
        let _guard = lock();
        ACTIVE.store(true, Ordering::SeqCst);
        // If forkyard dies without restoring it (SIGKILL), the watchdog does.
        crate::supervisor::watchdog::terminal_taken(true);
        let mut bytes = Vec::new();
        queue!(bytes, EnterAlternateScreen, crossterm::cursor::Hide)?;
        bytes.extend_from_slice(MOUSE_ON);
        if let Err(err) = write_fd(&bytes) {
            restore_locked();
            return Err(err);
        }
    }
    let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, Out));
    // A fixed viewport is never re-measured on draw (crossterm would open /dev/tty, or
    // run `tput`, each time); resize events move it instead.
    let options = TerminalOptions {
        viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
    };
    match Terminal::with_options(backend, options) {
        Ok(terminal) => Ok(Session { terminal }),
        Err(err) => {
            restore();
            Err(err)
        }
    }
}

/// Chains a hook in front of the existing one (the supervisor's, which kills every job
/// group and exits): the terminal is restored first, under the writers' lock, so no frame
/// follows, the panic message is readable and the shell is usable.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Held until the process exits (the next hook ends it): no frame gets in.
            let guard = lock_within(Duration::from_millis(200));
            restore_locked();
            previous(info);
            drop(guard);
        }));
    });
}
