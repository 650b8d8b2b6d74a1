//! What every front end does around a run: listen for the signals that end it, build
//! the tracker that follows it, and turn its end into an exit status.

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::supervisor::Supervisor;
use crate::tracker::Tracker;

/// Signals that end a run: each one stops every job (stop signal, grace, SIGKILL) and
/// forkyard then exits with 128 + N. Their default action would kill forkyard on the
/// spot and leave every job running, so all of them are caught.
pub const ENDING_SIGNALS: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
];

/// The ending signals, listened for from before the first job starts.
pub struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn listen() -> std::io::Result<Self> {
        let streams = ENDING_SIGNALS
            .iter()
            .map(|&sig| Ok((sig, signal(SignalKind::from_raw(sig as i32))?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Signals { streams })
    }

    /// The next ending signal to arrive. Cancel safe.
    pub async fn recv(&mut self) -> Signal {
        let waits = self.streams.iter_mut().map(|(sig, stream)| {
            let sig = *sig;
            Box::pin(async move {
                stream.recv().await;
                sig
            })
        });
        futures_util::future::select_all(waits).await.0
    }
}

/// The tracker of a supervisor's run: its jobs' initial statuses, and its start instant,
/// so every clock (elapsed times, the TUI's ticks, the sampler) counts from one moment.
pub fn tracker_for(supervisor: &Supervisor) -> Tracker {
    let mut tracker = Tracker::new(
        supervisor
            .jobs()
            .iter()
            .map(|j| (j.spec.name.clone(), j.initial.clone())),
    );
    tracker.started = supervisor.started_at();
    for (record, job) in tracker.jobs.iter_mut().zip(supervisor.jobs()) {
        record.host = job.spec.host.clone();
    }
    tracker
}

/// The exit status of a finished run: 128 + N when a signal ended it, 1 when a job
/// failed, else 0.
pub fn exit_code(ended_by: Option<Signal>, any_failed: bool) -> i32 {
    match ended_by {
        Some(signal) => 128 + signal as i32,
        None if any_failed => 1,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(None, false), 0);
        assert_eq!(exit_code(None, true), 1);
        assert_eq!(exit_code(Some(Signal::SIGTERM), true), 143);
        assert_eq!(exit_code(Some(Signal::SIGPIPE), false), 141);
    }

    #[tokio::test]
    async fn every_ending_signal_is_caught() {
        let mut signals = Signals::listen().expect("listen");
        for sig in [Signal::SIGUSR1, Signal::SIGQUIT, Signal::SIGALRM] {
            nix::sys::signal::raise(sig).expect("raise");
            let got = tokio::time::timeout(std::time::Duration::from_secs(5), signals.recv())
                .await
                .expect("signal arrives");
            assert_eq!(got, sig);
        }
    }
}
