//! Reading the terminal: key and mouse bytes, and resizes (SIGWINCH), as events for the
//! loop; and noticing, on the first read that fails, that the terminal is gone.
//!
//! Not crossterm's event reader: once the terminal hangs up, its read loop retries a
//! read that returns EOF or EIO forever, pinning a core while the UI task never runs
//! again (a TUI that survived its terminal for half an hour, deaf to SIGTERM). Here the
//! terminal is opened a second time, non-blocking (a descriptor of our own: stdin's
//! flags are shared with the shell), tokio says when it is readable, and a read of 0
//! bytes, EIO or any other error ends the input with an error, which the loop treats
//! as a hangup. Sizes come from `TIOCGWINSZ` on the same descriptor (crossterm would
//! fall back to running `tput`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crossterm::event::Event;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::decode::Decoder;

/// Where terminal events come from: the real terminal ([`Tty`]), or a channel in tests.
pub trait TerminalInput {
    /// Waits for the next events. An error means the terminal is gone. Cancel safe.
    fn next(&mut self) -> impl Future<Output = io::Result<Vec<Event>>> + Send;
}

pub struct Tty {
    fd: AsyncFd<OwnedFd>,
    winch: Signal,
    decoder: Decoder,
    buf: Box<[u8; 4096]>,
}

/// The terminal's device: stdin's when stdin is one (as crossterm reads), else the
/// controlling terminal.
fn device() -> PathBuf {
    // SAFETY: isatty only inspects the descriptor.
    let stdin_is_tty = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    let stdin = stdin_is_tty
        .then(|| std::fs::read_link("/proc/self/fd/0").ok())
        .flatten();
    stdin.unwrap_or_else(|| PathBuf::from("/dev/tty"))
}

impl Tty {
    pub fn open() -> io::Result<Tty> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(device())?;
        let winch = signal(SignalKind::window_change())?;
        // SAFETY: the descriptor is owned by the AsyncFd, open for as long as it lives.
        let fd =
            unsafe { AsyncFd::register_with_interest(OwnedFd::from(file), Interest::READABLE) }
                .map_err(io::Error::from)?;
        Ok(Tty {
            fd,
            winch,
            decoder: Decoder::default(),
            buf: Box::new([0; 4096]),
        })
    }

    /// The terminal's size (columns, rows).
    pub fn size(&self) -> io::Result<(u16, u16)> {
        size_of(self.fd.get_ref().as_raw_fd())
    }
}

impl TerminalInput for Tty {
    async fn next(&mut self) -> io::Result<Vec<Event>> {
        loop {
            tokio::select! {
                guard = self.fd.readable() => {
                    let mut guard = guard?;
                    let fd = guard.get_inner().as_raw_fd();
                    match read_ready(fd, &mut self.buf[..]) {
                        Ok(Some(bytes)) => return Ok(self.decoder.feed(bytes)),
                        // Readiness was stale: wait for the next edge.
                        Ok(None) => guard.clear_ready(),
                        Err(err) => return Err(err),
                    }
                }
                _ = self.winch.recv() => {
                    let (width, height) = size_of(self.fd.get_ref().as_raw_fd())?;
                    return Ok(vec![Event::Resize(width, height)]);
                }
            }
        }
    }
}

/// Reads what `fd` has. Ok(None): nothing (yet); Err: the terminal is gone (EOF, EIO…).
fn read_ready(fd: i32, buf: &mut [u8]) -> io::Result<Option<&[u8]>> {
    loop {
        // SAFETY: reading into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input")),
            Ok(n) => return Ok(Some(&buf[..n])),
            Err(_) => {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(None),
                    _ => return Err(err),
                }
            }
        }
    }
}

/// `TIOCGWINSZ` on `fd`. A terminal that reports 0×0 (some do, before a size is set)
/// counts as 1×1.
pub(crate) fn size_of(fd: i32) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_col.max(1), size.ws_row.max(1)))
}

/// Terminal events sent by a test (or anything else) through a channel; a closed channel
/// is a terminal that went away.
impl TerminalInput for tokio::sync::mpsc::UnboundedReceiver<io::Result<Event>> {
    async fn next(&mut self) -> io::Result<Vec<Event>> {
        match self.recv().await {
            Some(Ok(event)) => Ok(vec![event]),
            Some(Err(err)) => Err(err),
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "input closed")),
        }
    }
}
