//! Entering and leaving the full-screen terminal mode, on every exit path.
//!
//! Restoring is idempotent and guarded by a flag, so the drop guard, the panic hook and
//! an explicit call can all run without doubling escape sequences.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

/// Frames are written in one go rather than line by line.
pub type Backend = CrosstermBackend<BufWriter<Stdout>>;

/// True while the terminal is in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Puts the terminal back as it was (cooked mode, main screen, cursor shown). Safe to call
/// from anywhere, any number of times; failures (a terminal that is gone) are ignored.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(
            out,
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = out.flush();
        let _ = disable_raw_mode();
    }
}

/// Restores the terminal when dropped (normal return, error, unwinding).
pub struct Guard {
    pub terminal: Terminal<Backend>,
    /// The screen size, kept from the start and from resize events: asking the terminal
    /// opens /dev/tty each time (crossterm), which an idle UI must not do every frame.
    pub size: Rect,
}

impl Guard {
    /// Follows a terminal resize (the whole screen is redrawn next frame).
    pub fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.size = Rect::new(0, 0, width, height);
        self.terminal.resize(self.size)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, alternate screen, mouse capture, hidden cursor.
pub fn enter() -> io::Result<Guard> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = io::stdout();
    if let Err(err) = execute!(
        out,
        EnterAlternateScreen,
        EnableMouseCapture,
        crossterm::cursor::Hide
    ) {
        restore();
        return Err(err);
    }
    let (width, height) = match crossterm::terminal::size() {
        Ok(size) => size,
        Err(err) => {
            restore();
            return Err(err);
        }
    };
    let size = Rect::new(0, 0, width, height);
    let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, io::stdout()));
    // A fixed viewport is never re-measured on draw; resize events move it instead.
    let options = TerminalOptions {
        viewport: Viewport::Fixed(size),
    };
    match Terminal::with_options(backend, options) {
        Ok(terminal) => Ok(Guard { terminal, size }),
        Err(err) => {
            restore();
            Err(err)
        }
    }
}

/// Chains a hook in front of the existing one (the supervisor's, which kills every job
/// group and exits): the terminal is restored first, so the panic message is readable
/// and the shell is usable.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
