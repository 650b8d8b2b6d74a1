//! Draining a child's pipe into the job's ring buffer (and, headless, a tee).
//!
//! One task per pipe, so a child blocked writing stderr never stalls its stdout. Reads
//! are large (the pipe is enlarged to 1 MiB where allowed) so a flood costs few syscalls.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{Notify, mpsc};

use crate::output::{SharedBuffer, Stream};

use super::status::JobId;

const READ_SIZE: usize = 256 * 1024;
const PIPE_SIZE: i32 = 1024 * 1024;

/// Raw output forwarded to a consumer that wants every byte (the headless printer).
/// An empty `data` marks the end of that stream.
#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub job: JobId,
    pub stage: usize,
    pub stream: Stream,
    pub data: Bytes,
}

/// Bounded: a slow consumer slows the drains, which slows the children (back-pressure)
/// instead of growing memory.
pub type OutputTee = mpsc::Sender<OutputChunk>;

pub struct DrainTarget {
    pub job: JobId,
    pub buffer: SharedBuffer,
    pub tee: Option<OutputTee>,
    pub activity: Option<Arc<Notify>>,
}

/// Reads until EOF; returns the number of bytes read.
pub async fn drain(fd: OwnedFd, stage: usize, stream: Stream, target: Arc<DrainTarget>) -> u64 {
    // Fewer, larger reads under floods; failure (e.g. a lower pipe-max-size) is harmless.
    let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let mut total = 0u64;
    let mut reader = match pipe::Receiver::from_owned_fd(fd) {
        Ok(reader) => reader,
        Err(err) => {
            push_notice(
                &target,
                stage,
                stream,
                &format!("[forkyard] cannot read output: {err}"),
            );
            return 0;
        }
    };
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                push_notice(
                    &target,
                    stage,
                    stream,
                    &format!("[forkyard] read error: {err}"),
                );
                break;
            }
        };
        total += read as u64;
        let chunk = &buf[..read];
        {
            let mut buffer = crate::output::lock(&target.buffer);
            buffer.push_chunk(stage, stream, Instant::now(), chunk);
        }
        if let Some(activity) = &target.activity {
            activity.notify_one();
        }
        if let Some(tee) = &target.tee {
            let message = OutputChunk {
                job: target.job,
                stage,
                stream,
                data: Bytes::copy_from_slice(chunk),
            };
            if tee.send(message).await.is_err() {
                // Consumer gone (shutting down): keep draining so the child never blocks.
            }
        }
    }
    finish(&target, stage, stream).await;
    total
}

/// Flushes the stream's last partial line and tells the tee the stream ended.
pub async fn finish(target: &DrainTarget, stage: usize, stream: Stream) {
    crate::output::lock(&target.buffer).finish_stream(stage, stream, Instant::now());
    if let Some(activity) = &target.activity {
        activity.notify_one();
    }
    if let Some(tee) = &target.tee {
        let _ = tee
            .send(OutputChunk {
                job: target.job,
                stage,
                stream,
                data: Bytes::new(),
            })
            .await;
    }
}

fn push_notice(target: &DrainTarget, stage: usize, stream: Stream, text: &str) {
    crate::output::lock(&target.buffer).push_line(stage, stream, Instant::now(), text.as_bytes());
}
