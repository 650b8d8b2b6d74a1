//! PTY jobs and input to a job: pseudo-terminals, their size, and the one writer per
//! run that what is typed (or `stdin = "pipe"` lines) goes through.
//!
//! A single-command PTY job is its session's leader and has the PTY as its controlling
//! terminal (`setsid` + `TIOCSCTTY` between `fork` and `exec`), so the kernel delivers
//! what a terminal delivers: SIGINT for a typed ^C, SIGWINCH on a resize, SIGHUP to the
//! session when the master closes. Its session's process group is the job's group, as
//! for any job. A pipeline keeps its stages in one process group, which cannot be moved
//! into a new session, so there the PTY is nobody's controlling terminal: it is the
//! first stage's stdin, the last stage's stdout and every stage's stderr, and forkyard
//! itself sends the group SIGWINCH on a resize and SIGINT / SIGQUIT for a typed ^C / ^\
//! (when the terminal's ISIG is on, as the line discipline would).
//!
//! forkyard keeps the master only: its copies of the slave are closed once the stages
//! have started, so a read of the master fails with EIO once the last process holding
//! the slave has closed it — the drain takes that as the end of the stream.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::output::Emulator;

/// The size a PTY gets when nobody said otherwise (headless): a classic terminal.
pub const DEFAULT_SIZE: Size = Size { rows: 24, cols: 80 };

/// Chunks of input queued for one run before more are refused (a program that does not
/// read its input must not make forkyard hold an unbounded backlog).
const INPUT_QUEUE: usize = 256;

/// A terminal's size in cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

/// A PTY job's screen, shared with the UI (lock briefly; never across an `.await`).
pub type SharedTerminal = Arc<Mutex<Emulator>>;

/// Locks a terminal; a poisoned lock still holds a usable screen.
pub fn lock(terminal: &SharedTerminal) -> MutexGuard<'_, Emulator> {
    terminal
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a job takes input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `pty = true`: keys go to its terminal.
    Terminal,
    /// `stdin = "pipe"`: lines go to its stdin, which stays open until closed.
    Pipe,
}

/// Why input did not reach a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("it is not running")]
    NotRunning,
    #[error("its input is closed")]
    Closed,
    #[error("it is not reading its input (nothing more is queued)")]
    Full,
}

enum Message {
    Bytes(Vec<u8>),
    /// End of input: the pipe's write end closes (EOF for the reader).
    Close,
}

/// What the current run has to receive input and resizes.
struct Live {
    sender: mpsc::Sender<Message>,
    /// The PTY master (None for a stdin pipe): resizes and termios go through it.
    master: Option<Arc<OwnedFd>>,
    /// The run's process group.
    pgid: u32,
    /// Whether the PTY is the session's controlling terminal (single-command jobs): the
    /// kernel then sends SIGINT and SIGWINCH itself.
    controlling: bool,
}

/// One job's input endpoint and, for a PTY job, its terminal. Lives as long as the
/// supervisor; each run attaches its PTY master or stdin pipe.
pub struct JobIo {
    kind: InputKind,
    /// The emulator the drain feeds (None headless, where the bytes go to the printer).
    terminal: Option<SharedTerminal>,
    size: Mutex<Size>,
    live: Mutex<Option<Live>>,
    /// Someone can type (the TUI); headless nobody can.
    interactive: bool,
}

impl std::fmt::Debug for JobIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobIo")
            .field("kind", &self.kind)
            .field("size", &self.size())
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl JobIo {
    /// `emulate`: keep a screen and take input (the TUI); headless passes the bytes on
    /// instead, and nobody types.
    pub fn new(kind: InputKind, size: Size, emulate: bool) -> JobIo {
        let terminal = (kind == InputKind::Terminal && emulate)
            .then(|| Arc::new(Mutex::new(Emulator::new(size.rows, size.cols))));
        JobIo {
            kind,
            terminal,
            size: Mutex::new(size),
            live: Mutex::new(None),
            interactive: emulate,
        }
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }

    pub fn is_pty(&self) -> bool {
        self.kind == InputKind::Terminal
    }

    /// The screen, for a PTY job in the TUI.
    pub fn terminal(&self) -> Option<&SharedTerminal> {
        self.terminal.as_ref()
    }

    pub fn size(&self) -> Size {
        *self.size.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> MutexGuard<'_, Option<Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run is attached and its input open.
    pub fn running(&self) -> bool {
        self.live().as_ref().is_some_and(|l| !l.sender.is_closed())
    }

    /// Queues `bytes` for the job. For a PTY pipeline (no controlling terminal), a
    /// typed interrupt or quit character also signals the group, as the kernel does
    /// for a session's terminal.
    pub fn send(&self, bytes: Vec<u8>) -> Result<(), InputError> {
        let live = self.live();
        let Some(live) = live.as_ref() else {
            return Err(InputError::NotRunning);
        };
        if let Some(master) = &live.master
            && !live.controlling
            && let Some(signal) = line_discipline_signal(master.as_fd(), &bytes)
        {
            let _ = super::signals::signal_group(live.pgid, signal);
        }
        live.sender
            .try_send(Message::Bytes(bytes))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => InputError::Full,
                mpsc::error::TrySendError::Closed(_) => InputError::Closed,
            })
    }

    /// `stdin = "pipe"`: closes the job's stdin once what was queued is written (EOF).
    pub fn close(&self) -> Result<(), InputError> {
        let mut live = self.live();
        let result = match live.as_ref() {
            None => Err(InputError::NotRunning),
            Some(l) => l.sender.try_send(Message::Close).map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => InputError::Full,
                mpsc::error::TrySendError::Closed(_) => InputError::Closed,
            }),
        };
        if result.is_ok() && self.kind == InputKind::Pipe {
            *live = None;
        }
        result
    }

    /// The pane's size changed: the emulator follows, and a running job's PTY is
    /// resized (`TIOCSWINSZ`: SIGWINCH to its foreground group; forkyard sends it to a
    /// pipeline's group, which has no controlling terminal).
    pub fn resize(&self, size: Size) {
        let size = Size {
            rows: size.rows.max(1),
            cols: size.cols.max(1),
        };
        {
            let mut current = self.size.lock().unwrap_or_else(|p| p.into_inner());
            if *current == size {
                return;
            }
            *current = size;
        }
        if let Some(terminal) = &self.terminal {
            lock(terminal).resize(size.rows, size.cols);
        }
        let live = self.live();
        if let Some(live) = live.as_ref()
            && let Some(master) = &live.master
        {
            let _ = set_size(master.as_raw_fd(), size);
            if !live.controlling {
                let _ = super::signals::signal_group(live.pgid, nix::sys::signal::Signal::SIGWINCH);
            }
        }
    }

    /// A new run's PTY: `master` is a duplicate of the one the drain reads. The screen
    /// starts afresh (what the last run showed is kept as lines).
    pub(super) fn attach_pty(&self, master: OwnedFd, pgid: u32, controlling: bool) {
        if let Some(terminal) = &self.terminal {
            lock(terminal).reset();
        }
        let master = Arc::new(master);
        let sender = spawn_writer(Writer::Pty(master.clone()));
        *self.live() = sender.map(|sender| Live {
            sender,
            master: Some(master),
            pgid,
            controlling,
        });
    }

    /// A new run's stdin pipe (its write end). Without a front end to type into it
    /// (headless), it closes at once: the job reads end-of-file rather than waiting for
    /// input nobody can give.
    pub(super) fn attach_pipe(&self, writer: OwnedFd, pgid: u32) {
        if !self.interactive {
            return;
        }
        let sender = spawn_writer(Writer::Pipe(writer));
        *self.live() = sender.map(|sender| Live {
            sender,
            master: None,
            pgid,
            controlling: false,
        });
    }

    /// The run's terminal reached its end (EIO: nothing holds the slave any more).
    pub(super) fn detach(&self) {
        *self.live() = None;
    }
}

enum Writer {
    Pty(Arc<OwnedFd>),
    Pipe(OwnedFd),
}

/// The task that writes one run's input, in order, waiting while the program does not
/// read; it ends when the input is closed or a write fails (the reader is gone).
fn spawn_writer(writer: Writer) -> Option<mpsc::Sender<Message>> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (sender, mut receiver) = mpsc::channel::<Message>(INPUT_QUEUE);
    let fd = match writer {
        // A duplicate of its own, so the registration with tokio is this task's.
        Writer::Pty(master) => master.try_clone().ok()?,
        Writer::Pipe(fd) => fd,
    };
    set_nonblocking(fd.as_raw_fd()).ok()?;
    handle.spawn(async move {
        // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
        let Ok(fd) = (unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }) else {
            return;
        };
        while let Some(message) = receiver.recv().await {
            let Message::Bytes(bytes) = message else {
                // Dropping the descriptor closes the write end: EOF for the reader.
                return;
            };
            if write_all(&fd, &bytes).await.is_err() {
                return;
            }
        }
    });
    Some(sender)
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| {
            // SAFETY: writing from a live slice to a descriptor we own.
            let n = unsafe {
                libc::write(
                    inner.get_ref().as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                )
            };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        }) {
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(err)) => return Err(err),
            // Not writable after all: wait again.
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// The signal the line discipline would send for `bytes` typed into a terminal whose
/// ISIG is on (the interrupt and quit characters), read from the master's termios.
fn line_discipline_signal(
    master: BorrowedFd<'_>,
    bytes: &[u8],
) -> Option<nix::sys::signal::Signal> {
    // SAFETY: a zeroed termios is a valid value for tcgetattr to fill.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a live termios.
    if unsafe { libc::tcgetattr(master.as_raw_fd(), &mut termios) } != 0 {
        return None;
    }
    if termios.c_lflag & libc::ISIG == 0 {
        return None;
    }
    let intr = termios.c_cc[libc::VINTR];
    let quit = termios.c_cc[libc::VQUIT];
    // 0 disables the character (_POSIX_VDISABLE).
    if intr != 0 && bytes.contains(&intr) {
        Some(nix::sys::signal::Signal::SIGINT)
    } else if quit != 0 && bytes.contains(&quit) {
        Some(nix::sys::signal::Signal::SIGQUIT)
    } else {
        None
    }
}

/// A new pseudo-terminal of `size`: (master, slave). Both are close-on-exec (a sibling
/// job's spawn must not inherit them: a stray slave would keep the master from ever
/// reading EIO); the master is non-blocking, for the drain.
pub(super) fn open(size: Size) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain syscalls; every descriptor returned is checked and then owned.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(master);
        if libc::grantpt(master.as_raw_fd()) != 0 || libc::unlockpt(master.as_raw_fd()) != 0 {
            return Err(io::Error::last_os_error());
        }
        set_size(master.as_raw_fd(), size)?;
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(io::Error::last_os_error());
        }
        let slave = OwnedFd::from_raw_fd(slave);
        set_nonblocking(master.as_raw_fd())?;
        Ok((master, slave))
    }
}

fn set_size(fd: RawFd, size: Size) -> io::Result<()> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we pass.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &winsize) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL / F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In the child, between `fork` and `exec`: a session of its own, with the PTY (its
/// stdout) as the controlling terminal. Only async-signal-safe calls.
pub(super) fn become_session_leader() -> io::Result<()> {
    // SAFETY: setsid and ioctl are async-signal-safe; fd 1 is the slave here.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks a [`holder_key`] as a PTY's (the rest is its `/dev/pts` number).
pub const PTY_KEY: u64 = 1 << 63;

/// What identifies a drained descriptor to [`super::procfs::pipe_writers`], which looks
/// for the processes that still hold its other end: a pipe's inode, or for a PTY
/// master its slave's number tagged with [`PTY_KEY`] (every master has the same inode,
/// that of `/dev/ptmx`).
pub fn holder_key(fd: BorrowedFd<'_>) -> Option<u64> {
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int; it fails on anything but a PTY master.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGPTN, &mut index) } == 0 {
        return Some(PTY_KEY | u64::from(index));
    }
    nix::sys::stat::fstat(fd).ok().map(|stat| stat.st_ino)
}

/// Reads what the master has: Ok(0) at the end (EIO: no process holds the slave).
pub(super) fn read_master(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EIO) => return Ok(0),
                    _ => return Err(err),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_has_its_size_and_reads_eio_once_the_slave_is_closed() {
        let (master, slave) = open(Size { rows: 7, cols: 33 }).expect("openpty");
        let size = crate::app::input::size_of(slave.as_raw_fd()).expect("size");
        assert_eq!(size, (33, 7));
        assert!(holder_key(master.as_fd()).is_some_and(|k| k & PTY_KEY != 0));
        // SAFETY: writing a literal to the slave we own.
        unsafe { libc::write(slave.as_raw_fd(), b"hi\n".as_ptr().cast(), 3) };
        drop(slave);
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            match read_master(master.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(err) => panic!("{err}"),
            }
        }
        // ONLCR: a terminal's newline.
        assert_eq!(got, b"hi\r\n");
    }
}
