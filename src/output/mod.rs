//! Child output: line splitting, the bounded per-job ring buffer, and terminal-safe text.
//!
//! Data flow: a drain task reads raw chunks from a pipe and calls
//! [`OutputBuffer::push_chunk`]; the buffer stores complete lines (capping each at
//! [`MAX_LINE_BYTES`]) without splitting them until they are read, keeps the newest lines
//! within its line and byte bounds, and counts what it dropped. The UI reads it under a short lock; [`sanitize`] turns raw line bytes
//! into styled, escape-free text so nothing a child prints reaches the host terminal raw.

mod buffer;
pub mod emulator;
mod lines;
pub mod sanitize;
#[cfg(test)]
mod testutil;

pub use buffer::{LineIter, LineRef, OutputBuffer, SharedBuffer};
pub use emulator::Emulator;
pub use lines::LineSplitter;

/// A single line longer than this is split into pieces of at most this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Default byte bound of one job's buffer (line text only).
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Locks a shared buffer. A panic elsewhere while holding it leaves plain data behind,
/// so a poisoned lock is recovered rather than propagated.
pub fn lock(buffer: &SharedBuffer) -> std::sync::MutexGuard<'_, OutputBuffer> {
    buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
