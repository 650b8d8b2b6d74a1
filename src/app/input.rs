//! Terminal input without crossterm's `EventStream`.
//!
//! `EventStream` re-polls crossterm's event reader on every wake-up of the app loop
//! (about one per resource sample), and that reader is locked by its helper thread
//! blocking in `poll`: each try spins in `sched_yield` before giving up. An idle UI paid
//! for that dozens of times a second. Here tokio watches the terminal fd and SIGWINCH
//! itself, and crossterm's reader is only asked (non-blocking, uncontended) once one of
//! them fired.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crossterm::event::Event;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The fd crossterm reads keys from: stdin when it is a terminal, else `/dev/tty`
/// (crossterm's own rule, so readiness here means data for its reader).
enum Tty {
    Stdin,
    Opened(OwnedFd),
}

impl AsRawFd for Tty {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Tty::Stdin => libc::STDIN_FILENO,
            Tty::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

pub struct Input {
    tty: AsyncFd<Tty>,
    /// Crossterm turns SIGWINCH into `Event::Resize` through its own signal pipe, which
    /// nothing here watches: this wakes the loop to collect it.
    winch: Signal,
}

impl Input {
    pub fn new() -> io::Result<Self> {
        // SAFETY: isatty only inspects the fd.
        let tty = if unsafe { libc::isatty(libc::STDIN_FILENO) } == 1 {
            Tty::Stdin
        } else {
            let file = std::fs::OpenOptions::new().read(true).open("/dev/tty")?;
            Tty::Opened(OwnedFd::from(file))
        };
        let winch = signal(SignalKind::window_change())?;
        // Create crossterm's reader (and its SIGWINCH handler) now, not at the first key.
        crossterm::event::poll(Duration::ZERO)?;
        // SAFETY: `Tty` always yields the same fd, open for as long as it lives (stdin for
        // the whole process, or the owned /dev/tty).
        let tty = unsafe { AsyncFd::register_with_interest(tty, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Input { tty, winch })
    }

    /// Waits until the terminal may have events (input or a resize). Cancel safe.
    /// An error means the terminal is gone.
    pub async fn wait(&mut self) -> io::Result<()> {
        tokio::select! {
            guard = self.tty.readable() => {
                let mut guard = guard?;
                let ready = guard.ready();
                if ready.is_read_closed() || ready.is_error() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                // Cleared before draining: anything arriving meanwhile wakes us again.
                guard.clear_ready();
            }
            _ = self.winch.recv() => {}
        }
        Ok(())
    }

    /// The next event crossterm has ready, without blocking; None when there is none.
    pub fn next_ready(&self) -> io::Result<Option<Event>> {
        // A hung-up tty reads as "ready" forever and crossterm would spin on it.
        if hung_up(self.tty.get_ref().as_fd_borrowed()) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if crossterm::event::poll(Duration::ZERO)? {
            crossterm::event::read().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Tty {
    fn as_fd_borrowed(&self) -> BorrowedFd<'_> {
        match self {
            // SAFETY: stdin stays open for the life of the process.
            Tty::Stdin => unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) },
            Tty::Opened(fd) => fd.as_fd(),
        }
    }
}

fn hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}
