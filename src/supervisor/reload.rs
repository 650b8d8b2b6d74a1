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

use tokio::sync::mpsc;

use crate::config::{Config, JobSpec, Settings};

use super::kit::Kit;
use super::status::JobId;
use super::{Control, Supervisor};

/// What [`Supervisor::start`] keeps so that jobs can be added later.
pub(super) struct Reload {
    kit: Kit,
    settings: Settings,
    /// Each job's spec as configured (without forkyard's own variables), by id.
    specs: Vec<JobSpec>,
    /// Jobs a reload removed or replaced: their tasks end, their ids are not reused.
    retired: Vec<bool>,
}

impl Reload {
    pub fn new(kit: Kit, config: &Config) -> Reload {
        Reload {
            kit,
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
            .filter(|&id| !self.reload.retired[id])
            .collect();
        let find = |name: &str| {
            current
                .iter()
                .copied()
                .find(|&id| self.reload.specs[id].name == name)
        };
        let mut plan: Vec<(JobSpec, Option<JobId>)> = Vec::new();
        let mut kept = vec![false; self.jobs.len()];
        for spec in &config.jobs {
            match find(&spec.name) {
                Some(id) => {
                    kept[id] = true;
                    if self.reload.specs[id] == *spec {
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
        // Ids for the new jobs first, in plan order: a new job may depend on one planned
        // after it, and every dependency is by id.
        let mut ids: std::collections::HashMap<String, JobId> = current
            .iter()
            .filter(|&&id| kept[id])
            .map(|&id| (self.reload.specs[id].name.clone(), id))
            .collect();
        for (k, (spec, _)) in plan.iter().enumerate() {
            ids.insert(spec.name.clone(), self.jobs.len() + k);
        }
        for (mut spec, old) in plan {
            for dep in &mut spec.depends_on {
                if let Some(&id) = ids.get(&dep.name) {
                    dep.job = id;
                }
            }
            match old {
                Some(old) => {
                    let after = self.jobs[old].controls.clone();
                    let new = self.add_job(&spec, Some(after));
                    // Jobs that depended on the old version depend on the new one, before
                    // the old one stops: a stop waits for the dependents still running,
                    // and those are not the old version's any more.
                    self.reload.kit.graph.redirect(old, new);
                    self.retire(old);
                    report.changed.push((old, new));
                }
                None => report.added.push(self.add_job(&spec, None)),
            }
        }
        let before = &self.reload.settings;
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
        self.reload.settings.scrollback = now.scrollback;
        self.reload.kit.scrollback = now.scrollback;
        report
    }

    /// Ends a job's task (its run is stopped like at a shutdown) and its id's life.
    fn retire(&mut self, id: JobId) {
        self.reload.retired[id] = true;
        let _ = self.jobs[id].controls.send(Control::Shutdown);
    }

    /// Starts a task for a new job; with `after`, it starts (if it starts by itself) only
    /// once the task behind `after` has ended.
    fn add_job(&mut self, spec: &JobSpec, after: Option<mpsc::UnboundedSender<Control>>) -> JobId {
        let mut task_spec = spec.clone();
        let delayed = after.is_some() && spec.autostart;
        if delayed {
            task_spec.autostart = false;
        }
        let (gate_tx, gate_rx) = mpsc::unbounded_channel();
        let view = super::deps::View::initial(task_spec.autostart);
        let id = self
            .reload
            .kit
            .graph
            .add(task_spec.depends_on.clone(), view, gate_tx);
        debug_assert_eq!(id, self.jobs.len());
        let (task, handle) = self.reload.kit.job(id, &task_spec, gate_rx, None);
        self.tasks.spawn(task.run());
        if let (true, Some(after)) = (delayed, after) {
            let start = handle.controls.clone();
            self.tasks.spawn(async move {
                after.closed().await;
                let _ = start.send(Control::Start);
            });
        }
        crate::sys::raise_open_file_limit(
            self.reload
                .specs
                .iter()
                .chain(std::iter::once(spec))
                .map(|j| j.stages().len())
                .sum(),
        );
        self.reload.specs.push(spec.clone());
        self.reload.retired.push(false);
        self.jobs.push(handle);
        id
    }

    /// A reload retired this job (removed from the config, or replaced by a new version).
    pub fn is_retired(&self, id: JobId) -> bool {
        self.reload.retired.get(id).copied().unwrap_or(false)
    }
}
