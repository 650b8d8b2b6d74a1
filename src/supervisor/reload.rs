//! Changing a running supervisor's jobs: [`Supervisor::apply`] takes a new config and
//! adds the jobs that are new, stops the ones that are gone, replaces the ones whose
//! definition changed and leaves the rest alone.
//!
//! Job ids stay stable for the run: a removed job keeps its id (its task ends, its last
//! status stays what consumers saw), and every job a reload starts gets the next free
//! id, including the new version of a changed job. A changed job's new version starts
//! only once its old version's task has ended (every process gone, every pipe drained),
//! so a server that binds a port never meets its predecessor. The consumer learns the
//! new jobs from the [`ReloadReport`] (their buffers and initial statuses are in
//! [`Supervisor::jobs`]) and keeps the ids it already has.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::config::{Config, JobSpec, Settings};
use crate::output::{OutputBuffer, SharedBuffer};

use super::drain::DrainTarget;
use super::job::{JobTask, LiveTrees};
use super::slots::Slots;
use super::status::{Event, JobId, JobState, JobStatus, PendingReason};
use super::{Control, JobHandle, SUPERVISOR_ENV, Supervisor, SupervisorOptions};

/// What [`Supervisor::start`] keeps so that jobs can be added later.
pub(super) struct Kit {
    pub events: mpsc::UnboundedSender<Event>,
    pub slots: Option<Slots>,
    pub live: LiveTrees,
    pub sample_soon: Arc<Notify>,
    pub options: SupervisorOptions,
    pub settings: Settings,
    /// Each job's spec as configured (without forkyard's own variables), by id.
    pub specs: Vec<JobSpec>,
    /// Jobs a reload removed or replaced: their tasks end, their ids are not reused.
    pub retired: Vec<bool>,
}

impl Kit {
    pub fn new(
        events: mpsc::UnboundedSender<Event>,
        slots: Option<Slots>,
        live: LiveTrees,
        sample_soon: Arc<Notify>,
        options: SupervisorOptions,
        config: &Config,
    ) -> Kit {
        Kit {
            events,
            slots,
            live,
            sample_soon,
            options,
            settings: config.settings.clone(),
            specs: config.jobs.clone(),
            retired: vec![false; config.jobs.len()],
        }
    }
}

/// What a reload did, by job id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// New jobs, in config order.
    pub added: Vec<JobId>,
    /// Jobs no longer in the config: stopped (like a shutdown) and retired.
    pub removed: Vec<JobId>,
    /// (old id, new id) of jobs whose definition changed: the old one is stopped and
    /// retired, the new one starts once it is gone (if it starts by itself).
    pub changed: Vec<(JobId, JobId)>,
    pub unchanged: Vec<JobId>,
    /// What the reload did not apply, and why.
    pub notes: Vec<String>,
}

impl ReloadReport {
    /// Every id that is new to the consumer: added jobs and new versions of changed ones,
    /// in id order.
    pub fn new_ids(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .added
            .iter()
            .copied()
            .chain(self.changed.iter().map(|(_, new)| *new))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every id that is retired.
    pub fn retired_ids(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .removed
            .iter()
            .copied()
            .chain(self.changed.iter().map(|(old, _)| *old))
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl Supervisor {
    /// Applies `config` to the running jobs (see the module doc). Jobs are matched by
    /// name; a job whose spec is equal is left alone, whatever it is doing.
    pub fn apply(&mut self, config: &Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        let current: Vec<JobId> = (0..self.jobs.len())
            .filter(|&id| !self.kit.retired[id])
            .collect();
        let find = |name: &str| {
            current
                .iter()
                .copied()
                .find(|&id| self.kit.specs[id].name == name)
        };
        let mut plan: Vec<(JobSpec, Option<JobId>)> = Vec::new();
        let mut kept = vec![false; self.jobs.len()];
        for spec in &config.jobs {
            match find(&spec.name) {
                Some(id) => {
                    kept[id] = true;
                    if self.kit.specs[id] == *spec {
                        report.unchanged.push(id);
                    } else {
                        plan.push((spec.clone(), Some(id)));
                    }
                }
                None => plan.push((spec.clone(), None)),
            }
        }
        for &id in &current {
            if !kept[id] {
                self.retire(id);
                report.removed.push(id);
            }
        }
        for (spec, old) in plan {
            match old {
                Some(old) => {
                    let after = self.jobs[old].controls.clone();
                    self.retire(old);
                    let new = self.add_job(&spec, Some(after));
                    report.changed.push((old, new));
                }
                None => report.added.push(self.add_job(&spec, None)),
            }
        }
        let before = &self.kit.settings;
        let now = &config.settings;
        if before.max_parallel != now.max_parallel {
            report.notes.push(
                "settings.max_parallel changed: not applied (the limit is the session's; start \
                 it again to change it)"
                    .into(),
            );
        }
        if before.headless_timeout != now.headless_timeout {
            report
                .notes
                .push("settings.headless_timeout changed: not applied".into());
        }
        if before.scrollback != now.scrollback {
            report.notes.push(
                "settings.scrollback changed: applies to the jobs this reload started".into(),
            );
        }
        self.kit.settings.scrollback = now.scrollback;
        report
    }

    /// Ends a job's task (its run is stopped like at a shutdown) and its id's life.
    fn retire(&mut self, id: JobId) {
        self.kit.retired[id] = true;
        let _ = self.jobs[id].controls.send(Control::Shutdown);
    }

    /// Starts a task for a new job; with `after`, it starts (if it starts by itself) only
    /// once the task behind `after` has ended.
    fn add_job(&mut self, spec: &JobSpec, after: Option<mpsc::UnboundedSender<Control>>) -> JobId {
        let kit = &self.kit;
        let id = self.jobs.len();
        let mut task_spec = spec.clone();
        task_spec
            .env
            .insert(SUPERVISOR_ENV.to_string(), self.token.clone());
        let delayed = after.is_some() && spec.autostart;
        if delayed {
            task_spec.autostart = false;
        }
        let buffer: SharedBuffer = Arc::new(Mutex::new(OutputBuffer::new(
            kit.settings.scrollback,
            crate::output::DEFAULT_MAX_BUFFER_BYTES,
        )));
        let state = if spec.autostart && !delayed {
            JobState::Pending(PendingReason::Queued)
        } else {
            JobState::Pending(PendingReason::Manual)
        };
        let initial = JobStatus::new(state, spec.stages().iter().map(|s| s.argv()).collect());
        let (controls_tx, controls_rx) = mpsc::unbounded_channel();
        let task = JobTask {
            id,
            spec: task_spec.clone(),
            status: initial.clone(),
            controls: controls_rx,
            events: kit.events.clone(),
            reaper: self.reaper.clone(),
            slots: kit.slots.clone(),
            first_request: None,
            drain_target: Arc::new(DrainTarget {
                job: id,
                buffer: buffer.clone(),
                count_only: kit.options.discard_output,
                tee: kit.options.tee.clone(),
                activity: kit.options.activity.clone(),
            }),
            live: kit.live.clone(),
            sample_soon: kit.sample_soon.clone(),
        };
        self.tasks.spawn(task.run());
        if let (true, Some(after)) = (delayed, after) {
            let start = controls_tx.clone();
            self.tasks.spawn(async move {
                after.closed().await;
                let _ = start.send(Control::Start);
            });
        }
        crate::sys::raise_open_file_limit(
            self.kit
                .specs
                .iter()
                .chain(std::iter::once(spec))
                .map(|j| j.stages().len())
                .sum(),
        );
        self.kit.specs.push(spec.clone());
        self.kit.retired.push(false);
        let mut handle_spec = spec.clone();
        handle_spec
            .env
            .insert(SUPERVISOR_ENV.to_string(), self.token.clone());
        self.jobs.push(JobHandle {
            id,
            spec: handle_spec,
            buffer,
            initial,
            controls: controls_tx,
        });
        id
    }

    /// A reload retired this job (removed from the config, or replaced by a new version).
    pub fn is_retired(&self, id: JobId) -> bool {
        self.kit.retired.get(id).copied().unwrap_or(false)
    }
}
