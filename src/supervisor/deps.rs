//! Dependencies between jobs at run time: when a waiting job may start, when it never
//! will (skipped), and when a job held at shutdown may stop.
//!
//! Every job task reports a coarse [`View`] of itself here whenever it changes. The
//! decisions are made under one lock, by the task whose change caused them, for the
//! dependents in config order: so jobs that become ready to start together ask for
//! their `-j` slot in config order (the slot queue then serves them first come, first
//! served), whatever order the runtime happens to run their tasks in.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::config::{Condition, Dependency};

use super::slots::{Request, Slots};
use super::status::{JobId, ResultClass, WaitingFor};

/// Where a job is, as far as its dependents care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not started and will not start without a command (`autostart = false`, stopped
    /// while waiting), or waiting only on such jobs.
    Dormant,
    /// Will start by itself (queued, waiting for its own dependencies).
    Pending,
    /// A run is in progress (its processes may be being stopped).
    Active,
    /// Between two runs: the restart policy starts it again.
    Restarting,
    /// Ended for good, with this result and its description (`exit 1`).
    Done(ResultClass, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub phase: Phase,
    /// Some run of it spawned a process.
    pub ever_started: bool,
    /// Running and ready (its `ready` probe passed, or it has none).
    pub ready_now: bool,
    /// Its latest run was ready at some point.
    pub was_ready: bool,
}

impl View {
    pub fn initial(autostart: bool) -> View {
        View {
            phase: if autostart {
                Phase::Pending
            } else {
                Phase::Dormant
            },
            ever_started: false,
            ready_now: false,
            was_ready: false,
        }
    }
}

/// What the graph tells a job task.
pub enum Gate {
    /// Every dependency allows the start; `request` is its place in the `-j` queue.
    Go {
        generation: u64,
        request: Option<Request>,
    },
    /// A dependency can no longer allow it.
    Skip { generation: u64, reason: String },
    /// Still waiting for these (dormant: only on jobs that need a command).
    Waiting {
        generation: u64,
        unmet: Vec<WaitingFor>,
        dormant: bool,
    },
    /// Every job that depends on this one has stopped (the job asked, see [`Graph::hold`]).
    DependentsStopped,
}

/// One condition on one dependency, now.
enum Check {
    Met,
    Wait { dormant: bool },
    Impossible(String),
}

fn check(condition: Condition, name: &str, view: &View) -> Check {
    let wait = Check::Wait {
        dormant: view.phase == Phase::Dormant,
    };
    let ended = |class: ResultClass, text: &str| match class {
        ResultClass::Succeeded => format!("{name} exited 0 before it was ready"),
        ResultClass::Failed => format!("{name} failed: {text}"),
        ResultClass::TimedOut => format!("{name} timed out"),
        ResultClass::Stopped => format!("{name} was stopped"),
        ResultClass::Skipped => format!("{name} was skipped"),
    };
    match condition {
        Condition::Started => match &view.phase {
            _ if view.ever_started => Check::Met,
            Phase::Done(class, text) => Check::Impossible(match class {
                ResultClass::Failed => format!("{name} failed: {text}"),
                ResultClass::Skipped => format!("{name} was skipped"),
                _ => format!("{name} never started"),
            }),
            _ => wait,
        },
        Condition::Ready => match &view.phase {
            _ if view.ready_now => Check::Met,
            Phase::Done(ResultClass::Succeeded, _) if view.was_ready => Check::Met,
            Phase::Done(class, text) => Check::Impossible(ended(*class, text)),
            _ => wait,
        },
        Condition::Succeeded => match &view.phase {
            Phase::Done(ResultClass::Succeeded, _) => Check::Met,
            Phase::Done(ResultClass::Failed, text) => {
                Check::Impossible(format!("{name} failed: {text}"))
            }
            Phase::Done(ResultClass::TimedOut, _) => Check::Impossible(format!("{name} timed out")),
            Phase::Done(ResultClass::Stopped, _) => {
                Check::Impossible(format!("{name} was stopped"))
            }
            Phase::Done(ResultClass::Skipped, _) => {
                Check::Impossible(format!("{name} was skipped"))
            }
            _ => wait,
        },
        Condition::Finished => match &view.phase {
            Phase::Done(..) => Check::Met,
            _ => wait,
        },
    }
}

struct Inner {
    deps: Vec<Vec<Dependency>>,
    dependents: Vec<Vec<JobId>>,
    views: Vec<View>,
    /// The generation of each job's current wait, while it waits.
    waiting: Vec<Option<u64>>,
    /// The last `Gate::Waiting` sent, so an unchanged one is not sent again.
    shown: Vec<Option<(Vec<WaitingFor>, bool)>>,
    /// Jobs held at shutdown until their dependents stop.
    holding: Vec<bool>,
    gates: Vec<mpsc::UnboundedSender<Gate>>,
    slots: Option<Slots>,
    next_generation: u64,
}

/// Shared by the job tasks of one supervisor.
pub struct Graph {
    inner: Mutex<Inner>,
}

impl Graph {
    /// `deps[i]`: job i's dependencies; `gates[i]`: how to reach job i's task.
    pub fn new(
        deps: Vec<Vec<Dependency>>,
        initial: Vec<View>,
        gates: Vec<mpsc::UnboundedSender<Gate>>,
        slots: Option<Slots>,
    ) -> Graph {
        let count = deps.len();
        let mut dependents: Vec<Vec<JobId>> = vec![Vec::new(); count];
        for (job, list) in deps.iter().enumerate() {
            for dep in list {
                if let Some(d) = dependents.get_mut(dep.job)
                    && !d.contains(&job)
                {
                    d.push(job);
                }
            }
        }
        // Config order (jobs were visited in order, so each list is sorted already).
        Graph {
            inner: Mutex::new(Inner {
                deps,
                dependents,
                views: initial,
                waiting: vec![None; count],
                shown: vec![None; count],
                holding: vec![false; count],
                gates,
                slots,
                next_generation: 1,
            }),
        }
    }

    /// A job added to the run (a reload): its dependencies, how it looks, its gate.
    /// Returns its id (the next one).
    pub fn add(
        &self,
        deps: Vec<Dependency>,
        view: View,
        gate: mpsc::UnboundedSender<Gate>,
    ) -> JobId {
        let mut inner = self.lock();
        let id = inner.deps.len();
        for dep in &deps {
            if let Some(d) = inner.dependents.get_mut(dep.job)
                && !d.contains(&id)
            {
                d.push(id);
            }
        }
        inner.deps.push(deps);
        inner.dependents.push(Vec::new());
        inner.views.push(view);
        inner.waiting.push(None);
        inner.shown.push(None);
        inner.holding.push(false);
        inner.gates.push(gate);
        id
    }

    /// Job `old` was replaced by `new` (a reload): whatever depended on `old` depends on
    /// `new` from now on, and a job waiting for it is decided again.
    pub fn redirect(&self, old: JobId, new: JobId) {
        let mut inner = self.lock();
        let Some(dependents) = inner.dependents.get_mut(old).map(std::mem::take) else {
            return;
        };
        for &job in &dependents {
            for dep in &mut inner.deps[job] {
                if dep.job == old {
                    dep.job = new;
                }
            }
            if let Some(list) = inner.dependents.get_mut(new)
                && !list.contains(&job)
            {
                list.push(job);
            }
        }
        for job in dependents {
            if inner.waiting[job].is_some() {
                inner.evaluate(job);
            }
        }
        // An old version already stopping for its dependents has none left to wait for.
        if inner.holding.get(old).copied().unwrap_or(false) {
            inner.holding[old] = false;
            let _ = inner.gates[old].send(Gate::DependentsStopped);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Job `id` now looks like `view`: decide for the jobs that wait on it, and release
    /// the jobs it depends on that wait for it to stop.
    pub fn update(&self, id: JobId, view: View) {
        let mut inner = self.lock();
        let Some(slot) = inner.views.get_mut(id) else {
            return;
        };
        if *slot == view {
            return;
        }
        *slot = view;
        let dependents = inner.dependents[id].clone();
        for dependent in dependents {
            if inner.waiting[dependent].is_some() {
                inner.evaluate(dependent);
            }
        }
        let deps: Vec<JobId> = inner.deps[id].iter().map(|d| d.job).collect();
        for dep in deps {
            if inner.holding.get(dep).copied().unwrap_or(false) && !inner.any_dependent_active(dep)
            {
                inner.holding[dep] = false;
                let _ = inner.gates[dep].send(Gate::DependentsStopped);
            }
        }
    }

    /// Job `id` starts waiting for its dependencies; the answer comes through its gate
    /// (at once if they are already decided). Returns the wait's generation: answers
    /// to an earlier wait carry another one.
    pub fn wait(&self, id: JobId) -> u64 {
        let mut inner = self.lock();
        let generation = inner.next_generation;
        inner.next_generation += 1;
        if let Some(w) = inner.waiting.get_mut(id) {
            *w = Some(generation);
            inner.shown[id] = None;
            inner.evaluate(id);
        }
        generation
    }

    /// Job `id` no longer waits (stopped, shut down).
    pub fn unwait(&self, id: JobId) {
        if let Some(w) = self.lock().waiting.get_mut(id) {
            *w = None;
        }
    }

    /// At shutdown: whether some job depending on `id` still runs. If so, `id` is told
    /// through its gate ([`Gate::DependentsStopped`]) once none does.
    pub fn hold(&self, id: JobId) -> bool {
        let mut inner = self.lock();
        let active = inner.any_dependent_active(id);
        if let Some(h) = inner.holding.get_mut(id) {
            *h = active;
        }
        active
    }
}

impl Inner {
    fn any_dependent_active(&self, id: JobId) -> bool {
        self.dependents
            .get(id)
            .is_some_and(|list| list.iter().any(|d| self.views[*d].phase == Phase::Active))
    }

    /// Decides for a waiting job: go (with its slot request), skip, or still waiting.
    fn evaluate(&mut self, id: JobId) {
        let Some(generation) = self.waiting[id] else {
            return;
        };
        let mut unmet = Vec::new();
        let mut dormant = true;
        for dep in &self.deps[id] {
            let Some(view) = self.views.get(dep.job) else {
                continue;
            };
            match check(dep.condition, &dep.name, view) {
                Check::Met => {}
                Check::Wait { dormant: d } => {
                    dormant &= d;
                    unmet.push(WaitingFor {
                        name: dep.name.clone(),
                        condition: dep.condition,
                    });
                }
                Check::Impossible(reason) => {
                    self.waiting[id] = None;
                    let _ = self.gates[id].send(Gate::Skip { generation, reason });
                    return;
                }
            }
        }
        if unmet.is_empty() {
            self.waiting[id] = None;
            let request = self.slots.as_ref().map(Slots::request);
            let _ = self.gates[id].send(Gate::Go {
                generation,
                request,
            });
            return;
        }
        let shown = Some((unmet.clone(), dormant));
        if self.shown[id] != shown {
            self.shown[id] = shown;
            let _ = self.gates[id].send(Gate::Waiting {
                generation,
                unmet,
                dormant,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: Phase, started: bool, ready: bool) -> View {
        View {
            phase,
            ever_started: started,
            ready_now: ready,
            was_ready: ready,
        }
    }

    #[test]
    fn conditions() {
        let done = |class| Phase::Done(class, "exit 1".into());
        let met = |c, v: &View| matches!(check(c, "db", v), Check::Met);
        let impossible = |c, v: &View| matches!(check(c, "db", v), Check::Impossible(_));
        let running = view(Phase::Active, true, false);
        assert!(met(Condition::Started, &running));
        assert!(!met(Condition::Ready, &running));
        assert!(met(Condition::Ready, &view(Phase::Active, true, true)));
        let succeeded = View {
            was_ready: true,
            ..view(done(ResultClass::Succeeded), true, false)
        };
        assert!(met(Condition::Ready, &succeeded));
        assert!(met(Condition::Succeeded, &succeeded));
        let failed = view(done(ResultClass::Failed), true, false);
        assert!(impossible(Condition::Ready, &failed));
        assert!(impossible(Condition::Succeeded, &failed));
        assert!(met(Condition::Finished, &failed));
        assert!(met(Condition::Started, &failed));
        let never = view(done(ResultClass::Failed), false, false);
        assert!(impossible(Condition::Started, &never));
        let stopped = view(done(ResultClass::Stopped), true, false);
        assert!(impossible(Condition::Succeeded, &stopped));
        assert!(matches!(
            check(Condition::Ready, "db", &View::initial(false)),
            Check::Wait { dormant: true }
        ));
        assert!(matches!(
            check(
                Condition::Ready,
                "db",
                &view(Phase::Restarting, true, false)
            ),
            Check::Wait { dormant: false }
        ));
    }

    /// A reload replaces `db` while `api` (which depends on it) keeps running: the old
    /// `db`, stopping for its dependents, is released, and `api` now waits on the new one.
    #[test]
    fn a_replaced_job_does_not_wait_for_dependents_it_handed_over() {
        let dep = |job| Dependency {
            job,
            name: "db".into(),
            condition: Condition::Started,
        };
        let running = view(Phase::Active, true, false);
        let (gates, mut rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::unbounded_channel()).unzip();
        let graph = Graph::new(
            vec![Vec::new(), vec![dep(0)]],
            vec![running.clone(), running.clone()],
            gates,
            None,
        );
        assert!(graph.hold(0), "api still runs");
        let (gate, _rx) = mpsc::unbounded_channel();
        let new = graph.add(Vec::new(), View::initial(false), gate);
        graph.redirect(0, new);
        assert!(matches!(rxs[0].try_recv(), Ok(Gate::DependentsStopped)));
        assert!(!graph.hold(0), "the old db has no dependents left");
        assert!(graph.hold(new), "api depends on the new db");
        assert!(rxs[1].try_recv().is_err());
    }
}
