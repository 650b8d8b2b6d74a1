//! What every job's task is made of: the parts a supervisor shares between its jobs,
//! kept for the run so that a reload ([`super::reload`]) makes its jobs exactly as
//! [`super::Supervisor::start`] does.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::config::{JobSpec, StdinSpec};
use crate::output::{OutputBuffer, SharedBuffer};

use super::deps::{Gate, Graph};
use super::drain::{self, DrainTarget};
use super::job::{JobTask, LiveTrees};
use super::reaper::Reaper;
use super::slots::{Request, Slots};
use super::status::{Event, JobId, JobState, JobStatus, PendingReason, WaitingFor};
use super::{Control, JobHandle, SUPERVISOR_ENV, SupervisorOptions, probe, pty, tree};

pub(super) struct Kit {
    pub events: mpsc::UnboundedSender<Event>,
    pub reaper: Reaper,
    pub slots: Option<Slots>,
    pub live: LiveTrees,
    pub sample_soon: Arc<Notify>,
    pub options: SupervisorOptions,
    pub graph: Arc<Graph>,
    pub desk: Arc<tree::Desk>,
    pub started_at: Instant,
    /// This supervisor's [`SUPERVISOR_ENV`] value.
    pub token: String,
    /// Lines kept per job (a reload may change it for the jobs it starts).
    pub scrollback: usize,
}

impl Kit {
    /// Job `id`'s task (not yet spawned) and its handle. `gate` is the job's end of its
    /// channel from the dependency graph; `first_request` its place in the `-j` queue,
    /// taken in config order at start.
    pub fn job(
        &self,
        id: JobId,
        spec: &JobSpec,
        gate: mpsc::UnboundedReceiver<Gate>,
        first_request: Option<Request>,
    ) -> (JobTask, JobHandle) {
        let mut spec = spec.clone();
        spec.env
            .insert(SUPERVISOR_ENV.to_string(), self.token.clone());
        let buffer: SharedBuffer = Arc::new(Mutex::new(OutputBuffer::new(
            self.scrollback,
            crate::output::DEFAULT_MAX_BUFFER_BYTES,
        )));
        let initial_state = if spec.autostart {
            JobState::Pending(PendingReason::Queued)
        } else {
            JobState::Pending(PendingReason::Manual)
        };
        let argvs = spec.stages().iter().map(|s| s.argv()).collect();
        let mut initial = JobStatus::new(initial_state, argvs);
        if spec.autostart {
            // Until the graph says otherwise, it waits for all of them.
            initial.waiting_for = spec
                .depends_on
                .iter()
                .map(|d| WaitingFor {
                    name: d.name.clone(),
                    condition: d.condition,
                })
                .collect();
        }
        let (controls_tx, controls_rx) = mpsc::unbounded_channel::<Control>();
        let input_kind = if spec.pty {
            Some(pty::InputKind::Terminal)
        } else {
            (spec.stdin == StdinSpec::Pipe).then_some(pty::InputKind::Pipe)
        };
        let io = input_kind.map(|kind| {
            Arc::new(pty::JobIo::new(
                kind,
                self.options.pty_size.unwrap_or(pty::DEFAULT_SIZE),
                !self.options.discard_output,
            ))
        });
        self.desk.add(
            id,
            tree::JobFacts {
                name: spec.name.clone(),
                stop_signal: spec.stop_signal,
                grace: spec.grace,
            },
        );
        let task = JobTask {
            id,
            spec: spec.clone(),
            status: initial.clone(),
            controls: controls_rx,
            events: self.events.clone(),
            reaper: self.reaper.clone(),
            slots: self.slots.clone(),
            first_request,
            drain_target: Arc::new(DrainTarget {
                job: id,
                buffer: buffer.clone(),
                count_only: self.options.discard_output,
                tee: self.options.tee.clone(),
                activity: self.options.activity.clone(),
                log: probe::LogWatch::for_job(&spec),
                last_output: drain::OutputClock::default(),
                io: io.clone(),
                tap: self.options.log_tap.clone(),
            }),
            live: self.live.clone(),
            sample_soon: self.sample_soon.clone(),
            graph: self.graph.clone(),
            gate,
            started_at: self.started_at,
        };
        let handle = JobHandle {
            id,
            spec,
            buffer,
            initial,
            io,
            controls: controls_tx,
        };
        (task, handle)
    }
}
